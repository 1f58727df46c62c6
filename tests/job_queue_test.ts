/**
 * The inference call queue shared by the pool and the in-process engine (workers/job_queue.ts): batches taken from
 * the head up to the batch size, a single larger call alone, shedding by waiting calls and by expected wait, each
 * call settled with its own time in the queue.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { createJobQueue } from "../workers/job_queue.ts";
import type { InferenceOutput } from "../workers/pool.ts";

const seq = (n: number) => Array.from({ length: n }, () => ({ data: new Float32Array(6), length: 1 }));
const output: InferenceOutput = {
  results: [],
  timings: { preprocessMs: 0, edgeMs: 1, switcherMs: 0, queueMs: 0 },
  scoredBy: { version: "v", threshold: 0.5 },
};

Deno.test("job queue: batches from the head up to batchMax; a call larger than a batch goes alone", () => {
  const q = createJobQueue({ queueMax: 100, batchMax: 8, maxQueueWaitMs: Infinity });
  for (const n of [3, 4, 2, 20, 1]) void q.push(seq(n));
  assert.equal(q.length, 5);
  assert.equal(q.items, 30);
  const a = q.take();
  assert.deepEqual(a.jobs.map((j) => j.items.length), [3, 4]);
  assert.equal(a.items, 7);
  const b = q.take();
  assert.deepEqual(b.jobs.map((j) => j.items.length), [2]);
  const c = q.take();
  assert.deepEqual(c.jobs.map((j) => j.items.length), [20]);
  assert.deepEqual(q.take().jobs.map((j) => j.items.length), [1]);
  assert.equal(q.length, 0);
  assert.equal(q.items, 0);
  assert.equal(q.oldestAt(), null);
});

Deno.test("job queue: sheds past queueMax waiting calls, and past maxQueueWaitMs of expected work", () => {
  const q = createJobQueue({ queueMax: 3, batchMax: 4, maxQueueWaitMs: 10 });
  assert.equal(q.shed(2, 1), null);
  assert.equal((q.shed(3, 1) as AppError).code, "OVERLOADED");
  assert.equal((q.shed(3, 1) as AppError).headers["Retry-After"], "1");
  // 2 ms a sequence measured; 8 sequences waiting for one server: 16 ms of work.
  q.measured(8, 4);
  for (let i = 0; i < 8; i++) void q.push(seq(1));
  assert.equal(q.expectedWaitMs(1), 16);
  assert.match((q.shed(0, 1) as AppError).message, /more than 10 ms of work/);
  // Two servers halve it: 8 ms, under the bound.
  assert.equal(q.shed(0, 2), null);
  // Unless 4 more sequences wait inside the servers, behind the batches they run: 12 ms.
  assert.equal(q.expectedWaitMs(2, 4), 12);
  assert.match((q.shed(0, 2, 4) as AppError).message, /more than 10 ms of work/);
});

Deno.test("job queue: a settled call gets its own time in the queue; rejectAll empties it", async () => {
  const q = createJobQueue({ queueMax: 10, batchMax: 4, maxQueueWaitMs: Infinity });
  const first = q.push(seq(1));
  const second = q.push(seq(1));
  const { jobs } = q.take();
  const startedAt = jobs[0].enqueuedAt + 5;
  q.settle(jobs[0], output, startedAt);
  const answered = await first;
  // 5 ms, up to the rounding of adding 5 to a fractional clock reading and taking it away again.
  assert.ok(Math.abs(answered.timings.queueMs - 5) < 1e-9, `queueMs ${answered.timings.queueMs}`);
  assert.equal(answered.timings.edgeMs, 1);
  const third = q.push(seq(2));
  q.rejectAll(new AppError("MODEL_NOT_READY", "closed"));
  await assert.rejects(third, (e: AppError) => e.code === "MODEL_NOT_READY");
  assert.equal(q.items, 0);
  // The taken call is the caller's to settle; the queue no longer holds it.
  q.settle(jobs[1], output, jobs[1].enqueuedAt);
  assert.equal((await second).timings.queueMs, 0);
});

Deno.test("job queue: requeue puts taken jobs back at the head, in order, with their sequences counted", () => {
  const q = createJobQueue({ queueMax: 100, batchMax: 4, maxQueueWaitMs: Infinity });
  for (const n of [1, 2, 3]) void q.push(seq(n));
  const a = q.take();
  assert.deepEqual(a.jobs.map((j) => j.items.length), [1, 2]);
  assert.equal(q.items, 3);
  q.requeue(a.jobs);
  assert.equal(q.length, 3);
  assert.equal(q.items, 6);
  assert.deepEqual(q.take().jobs.map((j) => j.items.length), [1, 2]);
  assert.deepEqual(q.take().jobs.map((j) => j.items.length), [3]);
  assert.equal(q.items, 0);
});
