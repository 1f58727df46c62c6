/**
 * `scripts/start.sh`: the service started with Deno from npm, Deno in the script's place, so that a SIGTERM sent to
 * the started process alone (a supervisor's stop) drains the service and flushes its log, as a SIGTERM to the service
 * does.
 */
import assert from "node:assert/strict";
import { classify, spawnService, tinyBody } from "./reliability_helpers.ts";
import { readDecision } from "./fixtures/db_records.ts";

const SCRIPT = new URL("../scripts/start.sh", import.meta.url).pathname;

Deno.test({
  name: "start.sh: a SIGTERM to the process it started stops the service cleanly, its answered decision logged",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const dbUrl = `file:${dir}/d.db`;
    try {
      const svc = await spawnService({ DATABASE_URL: dbUrl, LOG_FLUSH_MS: "60000" }, {
        command: "sh",
        args: [SCRIPT],
      });
      const answered = await classify(svc.url, tinyBody({ route: "edge" }));
      assert.equal(answered?.status, 200, svc.output());
      // The pid `spawn` returned is the script's, which is now Deno's: signalled alone, as a supervisor does.
      Deno.kill(svc.child.pid, "SIGTERM");
      assert.equal((await svc.status).code, 0, svc.output());
      assert.match(svc.output(), /"msg":"stopped"/);
      // The flush interval (60 s) never came: the decision is in the database because shutdown flushed it.
      assert.ok(await readDecision(dbUrl, answered!.json.decisionId as string), "the answered decision is logged");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
