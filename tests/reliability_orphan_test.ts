/**
 * The child processes the service starts (the reference cloud server on loopback, its database processes) never
 * outlive it: killed with SIGKILL (as any crash would end it), the service leaves none running.
 */
import assert from "node:assert/strict";
import { childPids } from "../scripts/procs.ts";
import { classify, readyz, spawnService, waitFor } from "./reliability_helpers.ts";

/** Running: the process exists and is not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

Deno.test({
  name: "kill -9 of the service: the reference cloud server and the database processes it started exit too",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // No CLOUD_URL: the service starts the reference server itself.
      const svc = await spawnService({ DATABASE_URL: `file:${dir}/d.db`, CLOUD_URL: "" });
      const [cloud] = childPids(svc.child.pid, "reference_server");
      assert.ok(cloud, "the service started the reference server");
      // One for the HTTP thread's connection, one for the decision writer's thread (it connects at its first write).
      assert.equal((await classify(svc.url))?.status, 200);
      await waitFor("the decision to be written", async () => (await readyz(svc.url)).json.logBacklog === 0, 10_000);
      const hosts = childPids(svc.child.pid, "db/host");
      assert.equal(hosts.length, 2, `database processes among the children ${childPids(svc.child.pid, "")}`);
      svc.child.kill("SIGKILL");
      // The process itself, not its output: an orphan holding the inherited stderr would keep that open.
      await svc.child.status;
      const deadline = performance.now() + 10_000;
      const all = [cloud, ...hosts];
      while (all.some(running) && performance.now() < deadline) {
        await new Promise((r) => setTimeout(r, 50));
      }
      const alive = all.filter(running);
      for (const pid of alive) Deno.kill(pid, "SIGKILL");
      assert.deepEqual(alive, [], "no child process outlived the service");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
