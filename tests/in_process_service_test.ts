/**
 * `WORKERS=0`: the service with the edge model on its HTTP thread (workers/in_process.ts) answers as the worker pool
 * does, request for request, logs every decision, and serves concurrent requests in micro-batches.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { startService } from "../main.ts";
import { readDecision } from "./fixtures/db_records.ts";

const TINY = new URL("./fixtures/tiny_models", import.meta.url).pathname;
const frames = (t: number, k: number) =>
  Array.from({ length: t }, (_, i) => [[0.1 * i, 0.2 + 0.01 * k, 0.9], [0.3, 0.1 * i + 0.02 * k, 0.8]]);

async function startOn(workers: string, dir: string) {
  return await startService(loadConfig({
    PORT: "0",
    MODELS_DIR: TINY,
    DATABASE_URL: `file:${dir}/decisions-${workers}.db`,
    WORKERS: workers,
    WARMUP_RUNS: "1",
    LOG_FLUSH_MS: "20",
    LOG_LEVEL: "warn",
  }));
}

async function classify(url: string, k: number) {
  const res = await fetch(`${url}/v1/classify`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ layout: "tiny", fps: 10, frames: frames(5 + (k % 4), k), route: "edge" }),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test({
  name: "WORKERS=0: answers equal the worker pool's, concurrent requests are batched, decisions are logged",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const pooled = await startOn("1", dir);
    const local = await startOn("0", dir);
    try {
      for (let k = 0; k < 6; k++) {
        const [a, b] = [await classify(pooled.url, k), await classify(local.url, k)];
        assert.equal(a.status, 200);
        assert.equal(b.status, 200, JSON.stringify(b.body));
        assert.equal(b.body.label, a.body.label);
        assert.deepEqual(b.body.probabilities, a.body.probabilities);
        assert.deepEqual(b.body.switcher, a.body.switcher);
        assert.equal(b.body.route, "edge");
      }
      const answers = await Promise.all(Array.from({ length: 24 }, (_, k) => classify(local.url, k)));
      assert.ok(answers.every((r) => r.status === 200));
      const metrics = await (await fetch(`${local.url}/metrics`)).text();
      const value = (name: string) =>
        Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, "m").exec(metrics)?.[1] ?? NaN);
      const batches = value("dmd_inference_batches_total");
      const items = value("dmd_inference_batched_sequences_total");
      assert.equal(items, 30, metrics.split("\n").filter((l) => l.includes("batch")).join("\n"));
      assert.ok(batches < items, `${batches} batches for ${items} sequences`);
      assert.equal(await fetch(`${local.url}/readyz`).then((r) => (r.body?.cancel(), r.status)), 200);
      // Every answer's decision reaches the database, as the pool's do.
      for (const r of [answers[0], answers[23]]) {
        const row = await readDecision(`file:${dir}/decisions-0.db`, r.body.decisionId);
        assert.ok(row);
        assert.equal(row.route, "edge");
        assert.equal(row.edgeLabel, r.body.edge.label);
      }
    } finally {
      await local.shutdown();
      await pooled.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
