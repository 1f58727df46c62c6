/**
 * The database process (`db/host.ts`, `db/hosted_client.ts`): a SIGBUS inside SQLite ends it, never the service.
 *
 * The fault: the `-shm` of a WAL database truncated under the processes that map it (any process that may write the
 * folder can do it; an immutable `-shm` racing a call does the same, see `tests/shm_preflight_test.ts`). SQLite's next
 * read of its index then touches a page past the end of the file, and the kernel ends that process with SIGBUS.
 * Nothing is lost by it: SQLite rebuilds the index from the WAL at the next open.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { DB_PROCESS_ENDED, stopDatabaseProcess } from "../db/hosted_client.ts";
import { countDecisions, insertDecisions } from "../db/queries.ts";
import { within } from "../lib/deadline.ts";
import { decision } from "./fixtures/db_records.ts";
import { classify, loggedIds, readyz, spawnService, waitFor } from "./reliability_helpers.ts";

const linux = Deno.build.os === "linux";

Deno.test({
  name: "a SIGBUS inside SQLite ends the database process, not the caller; the next call starts a new one",
  ignore: !linux,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "db_process_" });
    const exits: string[] = [];
    const database = await openDatabase(`file:${dir}/d.db`, { process: { onExit: (r) => exits.push(r) } });
    try {
      await insertDecisions(database.db, [decision(), decision()]);
      Deno.truncateSync(`${dir}/d.db-shm`, 0);
      await assert.rejects(
        () => database.client.execute("SELECT count(*) FROM decisions"),
        (err: Error & { code?: string }) => {
          assert.equal(err.code, DB_PROCESS_ENDED);
          assert.match(
            err.message,
            /^Cannot use the decision database: the database process \(pid \d+\) ended with SIGBUS$/,
          );
          return true;
        },
      );
      await waitFor("the exit to be reported", () => Promise.resolve(exits.length > 0), 5000);
      assert.match(exits[0], /ended with SIGBUS/);
      // A new process, the same data.
      assert.equal(await countDecisions(database.db), 2);
      assert.equal(await database.ping(), true);
      assert.equal(exits.length, 1);
    } finally {
      database.close();
      await stopDatabaseProcess();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "the -shm truncated under load: the service keeps answering, loses no decision and becomes ready again",
  ignore: !linux,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "db_process_" });
    const dbUrl = `file:${dir}/d.db`;
    const svc = await spawnService({ DATABASE_URL: dbUrl, LOG_FLUSH_MS: "20", LOG_LEVEL: "warn" });
    let exited = false;
    svc.status.then(() => exited = true);
    let sending = true;
    try {
      const answered: string[] = [];
      const failed: string[] = [];
      // Two clients in a closed loop for the whole test.
      const clients = [0, 1].map(async () => {
        while (sending) {
          const r = await classify(svc.url);
          if (r?.status === 200) answered.push(String(r.json.decisionId));
          else failed.push(`${r?.status ?? "no answer"}: ${JSON.stringify(r?.json)}`);
          // The HTTP thread's database process too: readiness asks the database.
          if (answered.length % 10 === 0) await readyz(svc.url).catch(() => null);
        }
      });
      for (let fault = 0; fault < 3; fault++) {
        await new Promise((r) => setTimeout(r, 400));
        Deno.truncateSync(`${dir}/d.db-shm`, 0);
      }
      // Whichever of the two database processes (the HTTP thread's, the writer's) next reads the index ends; the
      // other may find the file grown back by then.
      await waitFor(
        "a database process to end with SIGBUS",
        () => Promise.resolve(/ended with SIGBUS/.test(svc.output())),
        10_000,
      );
      await new Promise((r) => setTimeout(r, 500));
      sending = false;
      await Promise.all(clients);
      assert.equal(exited, false, `the service is still running:\n${svc.output()}`);
      assert.deepEqual(failed, [], "no request failed");
      assert.ok(answered.length > 20, `requests were answered throughout (${answered.length})`);
      await waitFor("readiness", async () => (await readyz(svc.url)).status === 200, 15_000);
      svc.child.kill("SIGTERM");
      assert.equal((await svc.status).code, 0, svc.output());
      const ids = await loggedIds(dbUrl);
      assert.deepEqual(answered.filter((id) => !ids.has(id)), [], "every answered decision is in the database");
    } finally {
      sending = false;
      if (!exited) svc.child.kill("SIGKILL");
      await svc.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "with DATABASE_PROCESS=false the same fault ends the service itself with SIGBUS",
  ignore: !linux,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "db_process_" });
    const svc = await spawnService({ DATABASE_URL: `file:${dir}/d.db`, DATABASE_PROCESS: "false", LOG_FLUSH_MS: "20" });
    try {
      assert.equal((await classify(svc.url))?.status, 200);
      await waitFor(
        "the first decision to be written",
        async () => (await readyz(svc.url)).json.logBacklog === 0,
        5000,
      );
      Deno.truncateSync(`${dir}/d.db-shm`, 0);
      // The next write, or the next readiness check, reads SQLite's index.
      await classify(svc.url);
      await readyz(svc.url).catch(() => null);
      assert.ok(await within(svc.status, 10_000), "the service ended");
      assert.equal((await svc.status).signal, "SIGBUS");
    } finally {
      try {
        svc.child.kill("SIGKILL");
      } catch { /* already ended */ }
      await svc.status;
      await Deno.remove(dir, { recursive: true });
    }
  },
});
