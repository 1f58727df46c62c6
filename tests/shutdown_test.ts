/**
 * SIGTERM on the real service process: it stops accepting, lets requests in flight finish within
 * SHUTDOWN_TIMEOUT_MS, flushes the decision log, and exits 0; past the bound it exits anyway. Secrets never appear
 * in its output.
 */
import assert from "node:assert/strict";
import { classify, loggedIds, spawnService, tinyBody } from "./reliability_helpers.ts";

/** A cloud that answers after `delayMs` (the tiny cloud model has 3 classes). */
function slowCloud(delayMs: number) {
  const waiting = new Map<ReturnType<typeof setTimeout>, () => void>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const path = new URL(req.url).pathname;
    if (!path.endsWith("/infer")) return Response.json({ name: "cloud", ready: true });
    const body = await req.json();
    const n = body.inputs[0].shape[0];
    await new Promise<void>((r) => {
      const t = setTimeout(() => (waiting.delete(t), r()), delayMs);
      waiting.set(t, r);
    });
    return Response.json({
      model_name: "cloud",
      model_version: "slow-1",
      outputs: [{ name: "logits", shape: [n, 3], datatype: "FP32", data: Array(n * 3).fill(0).map((_, i) => i % 3) }],
    });
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    async close() {
      // Answer whatever still waits, so that the server can stop.
      for (const [t, release] of waiting) {
        clearTimeout(t);
        release();
      }
      await server.shutdown();
    },
  };
}

const ADMIN_TOKEN = "admin-secret-7f3a9c1e5b2d4086";
const DB_TOKEN = "db-secret-token-91c4e7a2f05b";

Deno.test({
  name: "SIGTERM: requests in flight finish, new ones are answered 503, the log is flushed, exit 0, no secret printed",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const cloud = slowCloud(700);
    const dbUrl = `file:${dir}/d.db`;
    try {
      const svc = await spawnService({
        DATABASE_URL: dbUrl,
        DATABASE_AUTH_TOKEN: DB_TOKEN,
        ADMIN_TOKEN,
        CLOUD_URL: cloud.url,
        CLOUD_TIMEOUT_MS: "5000",
        // Rows stay in memory until shutdown: the flush at SIGTERM is what writes them.
        LOG_FLUSH_MS: "60000",
        LOG_BATCH_SIZE: "1000",
        SHUTDOWN_TIMEOUT_MS: "5000",
      });
      const quick = await Promise.all([1, 2, 3].map(() => classify(svc.url, tinyBody({ route: "edge" }))));
      assert.ok(quick.every((r) => r?.status === 200));
      // A wrong admin token: refused, and the configured one is never echoed.
      const denied = await fetch(`${svc.url}/admin/switcher/reload`, {
        method: "POST",
        headers: { authorization: "Bearer wrong-token-wrong-token" },
      });
      assert.equal(denied.status, 401);
      await denied.body?.cancel();

      // Two requests wait on the slow cloud when SIGTERM arrives.
      const inFlight = [1, 2].map(() => classify(svc.url, tinyBody({ route: "cloud" })));
      await new Promise((r) => setTimeout(r, 250));
      const t0 = performance.now();
      svc.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 100));
      // While requests are in flight, a new one is answered 503 SHUTTING_DOWN (Connection: close), not reset.
      const late = await classify(svc.url, tinyBody({ route: "edge" }));
      assert.equal(late?.status, 503);
      assert.equal(late?.json.code, "SHUTTING_DOWN");
      const finished = await Promise.all(inFlight);
      for (const r of finished) {
        assert.equal(r?.status, 200);
        assert.equal(r?.json.route, "cloud", "the request in flight got its cloud answer");
      }
      const status = await svc.status;
      assert.equal(status.code, 0, svc.output());
      assert.ok(performance.now() - t0 < 5000);
      const ids = await loggedIds(dbUrl);
      for (const r of [...quick, ...finished]) assert.ok(ids.has(String(r!.json.decisionId)));
      const out = svc.output();
      assert.match(out, /"msg":"shutting down"/);
      assert.ok(!out.includes(ADMIN_TOKEN), "ADMIN_TOKEN printed");
      assert.ok(!out.includes(DB_TOKEN), "DATABASE_AUTH_TOKEN printed");
    } finally {
      await cloud.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "SIGTERM: a request on a kept-alive connection is answered 503 SHUTTING_DOWN, not reset",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: 1 });
    try {
      const svc = await spawnService({ DATABASE_URL: `file:${dir}/d.db`, SHUTDOWN_DRAIN_MS: "1500" });
      const post = () =>
        fetch(`${svc.url}/v1/classify`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: tinyBody({ route: "edge" }),
          client,
        }).then(async (r) => ({ status: r.status, connection: r.headers.get("connection"), json: await r.json() }));
      // Open a connection, and leave it idle in the pool.
      assert.equal((await post()).status, 200);
      svc.child.kill("SIGTERM");
      await new Promise((r) => setTimeout(r, 300));
      const late = await post();
      assert.equal(late.status, 503);
      assert.equal(late.json.code, "SHUTTING_DOWN");
      assert.equal(late.connection, "close");
      assert.equal((await svc.status).code, 0, svc.output());
    } finally {
      client.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "SIGTERM: a request that outlives SHUTDOWN_TIMEOUT_MS does not hold the exit; the log is still flushed",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const cloud = slowCloud(8000);
    const dbUrl = `file:${dir}/d.db`;
    try {
      const svc = await spawnService({
        DATABASE_URL: dbUrl,
        CLOUD_URL: cloud.url,
        CLOUD_TIMEOUT_MS: "20000",
        LOG_FLUSH_MS: "60000",
        SHUTDOWN_TIMEOUT_MS: "500",
      });
      const kept = await classify(svc.url, tinyBody({ route: "edge" }));
      assert.equal(kept?.status, 200);
      const stuck = classify(svc.url, tinyBody({ route: "cloud" }));
      await new Promise((r) => setTimeout(r, 200));
      const t0 = performance.now();
      svc.child.kill("SIGTERM");
      const status = await svc.status;
      const elapsed = performance.now() - t0;
      assert.equal(status.code, 0, svc.output());
      assert.ok(elapsed < 4000, `exited after ${elapsed.toFixed(0)} ms`);
      assert.match(svc.output(), /requests still in flight at the shutdown deadline/);
      assert.equal(await stuck, null, "the stuck request is cut at exit");
      assert.ok((await loggedIds(dbUrl)).has(String(kept!.json.decisionId)));
    } finally {
      await cloud.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
