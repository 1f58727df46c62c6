/**
 * Micro-batching and load shedding in the worker pool (workers/pool.ts): jobs queued behind a busy worker go out
 * as one batch and each caller gets exactly its own results, the same as alone; a batch holds at most `batchMax`
 * sequences; one bad input fails its own job only; `batchWaitMs` lets a free worker wait for company; a call is
 * shed when the expected wait passes `maxQueueWaitMs`.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { loadConfig } from "../config.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool, type InferenceOutput, type PoolOptions } from "../workers/pool.ts";

const TINY = new URL("./fixtures/tiny_models", import.meta.url).pathname;

function sequence(length: number, seed: number): { data: Float32Array; length: number } {
  const data = new Float32Array(length * 2 * 3);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 7919 + seed * 104729) % 1000) / 1000;
  return { data, length };
}

/** A pool of one worker; one batch at a time unless `depth` says otherwise, so that batch counts are exact. */
async function pool(options: Partial<PoolOptions> = {}) {
  const { init } = await loadModelSet(TINY, { warmupRuns: 1 });
  return createWorkerPool(init, { size: 1, queueMax: 64, depth: 1, ...options });
}

Deno.test("pool: jobs queued behind a busy worker go out as one batch, each caller gets its own results", async () => {
  const p = await pool();
  try {
    // Alone, one call at a time: the reference outputs.
    const jobs = Array.from({ length: 9 }, (_, i) => Array.from({ length: 1 + (i % 3) }, (_, k) => sequence(3 + k, i)));
    const alone: InferenceOutput[] = [];
    for (const items of jobs) alone.push(await p.classify(items.map((s) => ({ ...s, data: s.data.slice() }))));
    const before = p.stats();
    // All at once: the first goes out alone to the free worker, the rest wait and go out together.
    const together = await Promise.all(jobs.map((items) => p.classify(items)));
    const after = p.stats();
    assert.equal(after.batches! - before.batches!, 2, "one batch for the first job, one for the eight queued behind");
    assert.equal(after.batchedItems! - before.batchedItems!, jobs.flat().length);
    together.forEach((out, j) => {
      assert.equal(out.results.length, jobs[j].length);
      out.results.forEach((r, k) => {
        const ref = alone[j].results[k];
        assert.deepEqual(Array.from(r.probs), Array.from(ref.probs), `job ${j} item ${k}`);
        assert.deepEqual(Array.from(r.features), Array.from(ref.features));
        assert.equal(r.score, ref.score);
      });
      assert.deepEqual(out.scoredBy, alone[j].scoredBy);
    });
    assert.equal(after.completed - before.completed, jobs.length);
  } finally {
    await p.close();
  }
});

Deno.test("pool: with depth 2 the next batch waits in the worker while it runs one; answers are the same", async () => {
  const p = await pool({ depth: 2 });
  try {
    const jobs = Array.from({ length: 9 }, (_, i) => [sequence(3 + (i % 4), i)]);
    const alone: InferenceOutput[] = [];
    for (const items of jobs) alone.push(await p.classify(items.map((s) => ({ ...s, data: s.data.slice() }))));
    const before = p.stats();
    const together = await Promise.all(jobs.map((items) => p.classify(items)));
    const after = p.stats();
    // The first goes to the free worker, the second right behind it, the seven queued behind both go out together.
    assert.equal(after.batches! - before.batches!, 3);
    assert.equal(after.batchedItems! - before.batchedItems!, 9);
    together.forEach((out, j) => {
      assert.deepEqual(Array.from(out.results[0].probs), Array.from(alone[j].results[0].probs), `job ${j}`);
      assert.equal(out.results[0].score, alone[j].results[0].score);
      assert.ok(out.timings.queueMs >= 0);
    });
    assert.equal(p.stats().busy, 0);
    assert.equal(after.completed - before.completed, 9);
  } finally {
    await p.close();
  }
});

Deno.test("INFERENCE_PIPELINE_DEPTH: 2 by default, 1 to 8 accepted, anything else refused by name", () => {
  assert.equal(loadConfig({}).inferencePipelineDepth, 2);
  assert.equal(loadConfig({ INFERENCE_PIPELINE_DEPTH: "1" }).inferencePipelineDepth, 1);
  for (const bad of ["0", "9", "1.5", "two"]) {
    assert.throws(() => loadConfig({ INFERENCE_PIPELINE_DEPTH: bad }), /INFERENCE_PIPELINE_DEPTH/, bad);
  }
});

Deno.test("pool: a batch holds at most batchMax sequences; a larger job goes alone", async () => {
  const p = await pool({ batchMax: 3 });
  try {
    const before = p.stats();
    const calls = [[sequence(4, 0)], ...Array.from({ length: 7 }, (_, i) => [sequence(4, i + 1)]), [
      sequence(4, 8),
      sequence(4, 9),
      sequence(4, 10),
      sequence(4, 11),
    ]];
    const outs = await Promise.all(calls.map((items) => p.classify(items)));
    outs.forEach((o, i) => assert.equal(o.results.length, calls[i].length));
    const after = p.stats();
    // 1 alone (free worker), then 7 singles in batches of 3, 3, 1, then the job of 4 alone.
    assert.equal(after.batches! - before.batches!, 5);
    assert.equal(after.batchedItems! - before.batchedItems!, 12);
  } finally {
    await p.close();
  }
});

Deno.test("pool: one bad input in a batch fails its own job only", async () => {
  const p = await pool();
  try {
    const bad = { data: new Float32Array(5), length: 4 }; // 5 values cannot be 4 frames of 2 x 3
    const calls = [[sequence(4, 1)], [sequence(5, 2)], [bad], [sequence(6, 3)]];
    const settled = await Promise.allSettled(calls.map((items) => p.classify(items)));
    assert.deepEqual(settled.map((s) => s.status), ["fulfilled", "fulfilled", "rejected", "fulfilled"]);
    const err = (settled[2] as PromiseRejectedResult).reason;
    assert.ok(err instanceof AppError);
    assert.equal(err.code, "INTERNAL");
    assert.equal(err.message, "Cannot resample: expected 24 values, got 5");
    assert.equal(p.stats().failed, 1);
  } finally {
    await p.close();
  }
});

Deno.test("pool: with batchWaitMs a free worker waits for the batch to fill", async () => {
  const p = await pool({ batchWaitMs: 50 });
  try {
    const before = p.stats().batches!;
    const outs = await Promise.all([p.classify([sequence(4, 1)]), p.classify([sequence(4, 2)])]);
    assert.equal(outs.length, 2);
    assert.equal(p.stats().batches! - before, 1);
  } finally {
    await p.close();
  }
});

Deno.test("pool: with batchWaitMs and depth 2, a busy worker is sent only a full batch ahead", async () => {
  const p = await pool({ batchWaitMs: 20, batchMax: 3, depth: 2 });
  try {
    const big = Array.from({ length: 4 }, (_, i) => sequence(4, i));
    let before = p.stats().batches!;
    // The job of 4 goes alone to the free worker; the two calls behind it are not a full batch, so neither goes ahead:
    // they wait for the reply (and their 20 ms) and go out together. Sent ahead, the first would have made 3 batches.
    const outs = await Promise.all([p.classify(big), p.classify([sequence(4, 5)]), p.classify([sequence(4, 6)])]);
    assert.deepEqual(outs.map((o) => o.results.length), [4, 1, 1]);
    assert.equal(p.stats().batches! - before, 2);
    // Three calls behind it make a full batch, which goes ahead at once: 2 batches again, the second one full.
    before = p.stats().batches!;
    const items = p.stats().batchedItems!;
    const more = await Promise.all([
      p.classify(Array.from({ length: 4 }, (_, i) => sequence(4, 10 + i))),
      ...[7, 8, 9].map((k) => p.classify([sequence(4, k)])),
    ]);
    assert.deepEqual(more.map((o) => o.results.length), [4, 1, 1, 1]);
    assert.equal(p.stats().batches! - before, 2);
    assert.equal(p.stats().batchedItems! - items, 7);
  } finally {
    await p.close();
  }
});

Deno.test("pool: a call is shed with OVERLOADED when a full batch waits and the expected wait passes maxQueueWaitMs", async () => {
  const p = await pool({ maxQueueWaitMs: 1e-6, batchMax: 1 });
  try {
    await p.classify([sequence(4, 0)]); // measures the time per sequence
    // The first runs; the second waits (nothing queued ahead of it); the third finds a full batch (of 1) waiting.
    const settled = await Promise.allSettled([1, 2, 3].map((i) => p.classify([sequence(4, i)])));
    assert.deepEqual(settled.map((s) => s.status), ["fulfilled", "fulfilled", "rejected"]);
    const err = (settled[2] as PromiseRejectedResult).reason;
    assert.ok(err instanceof AppError);
    assert.equal(err.code, "OVERLOADED");
    assert.equal(err.status, 503);
    assert.equal(err.headers["Retry-After"], "1");
    assert.match(err.message, /more than 0.000001 ms of work/);
    assert.ok(p.stats().expectedWaitMs! >= 0);
  } finally {
    await p.close();
  }
});

Deno.test("pool: less than a full batch waiting is never shed by expected wait", async () => {
  const p = await pool({ maxQueueWaitMs: 1e-6, batchMax: 8 });
  try {
    await p.classify([sequence(4, 0)]);
    const settled = await Promise.allSettled(Array.from({ length: 8 }, (_, i) => p.classify([sequence(4, i)])));
    // One runs, seven wait: fewer than a batch of 8, so the next free worker takes them all.
    assert.ok(settled.every((s) => s.status === "fulfilled"));
    const shed = await Promise.allSettled(Array.from({ length: 10 }, (_, i) => p.classify([sequence(4, i)])));
    // One runs, eight wait (a full batch), the tenth is shed.
    assert.deepEqual(shed.map((s) => s.status), [...Array(9).fill("fulfilled"), "rejected"]);
  } finally {
    await p.close();
  }
});
