/**
 * The reference cloud server that the service starts on loopback never outlives it: killed with SIGKILL (as a
 * SIGBUS or any crash would end it), the service leaves no server running.
 */
import assert from "node:assert/strict";
import { spawnService } from "./reliability_helpers.ts";

/** Child processes of `pid` (all its threads), with their command lines. */
function children(pid: number): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
    const list = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
    for (const c of list ? list.split(/\s+/).map(Number) : []) {
      out.push({ pid: c, cmdline: Deno.readTextFileSync(`/proc/${c}/cmdline`).replaceAll("\0", " ") });
    }
  }
  return out;
}

/** Running: the process exists and is not a zombie. */
function running(pid: number): boolean {
  try {
    return !/^State:\s+Z/m.test(Deno.readTextFileSync(`/proc/${pid}/status`));
  } catch {
    return false;
  }
}

Deno.test({
  name: "kill -9 of the service: the reference cloud server it started exits too",
  ignore: Deno.build.os !== "linux",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      // No CLOUD_URL: the service starts the reference server itself.
      const svc = await spawnService({ DATABASE_URL: `file:${dir}/d.db`, CLOUD_URL: "" });
      const cloud = children(svc.child.pid).find((c) => c.cmdline.includes("reference_server"));
      assert.ok(cloud, "the service started the reference server");
      svc.child.kill("SIGKILL");
      // The process itself, not its output: an orphan holding the inherited stderr would keep that open.
      await svc.child.status;
      const deadline = performance.now() + 10_000;
      while (running(cloud.pid) && performance.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const alive = running(cloud.pid);
      if (alive) Deno.kill(cloud.pid, "SIGKILL");
      assert.ok(!alive, "the reference server outlived the service");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
