/**
 * The one helper for deadlines, pauses and backoff.
 */
import assert from "node:assert/strict";
import { backoffMs, DeadlineError, sleep, withDeadline, within } from "../lib/deadline.ts";

Deno.test("backoffMs() doubles from the base per attempt, up to the cap, with jitter taken off", () => {
  const options = { baseMs: 50, maxMs: 5000 };
  assert.deepEqual([1, 2, 3, 4, 8, 100].map((n) => backoffMs(n, options)), [50, 100, 200, 400, 5000, 5000]);
  assert.equal(backoffMs(0, options), 50);
  assert.equal(backoffMs(3, { ...options, jitter: 0.25, random: () => 1 }), 150);
  assert.equal(backoffMs(3, { ...options, jitter: 0.25, random: () => 0 }), 200);
});

Deno.test("within() tells whether the work ended in time, and rethrows its failure when it did", async () => {
  assert.equal(await within(sleep(5), 1000), true);
  assert.equal(await within(sleep(200), 10), false);
  await assert.rejects(within(Promise.reject(new Error("boom")), 1000), /boom/);
});

Deno.test("withDeadline() returns the result in time, or a DeadlineError naming the work", async () => {
  assert.equal(await withDeadline(Promise.resolve(7), 100, "the write"), 7);
  await assert.rejects(withDeadline(sleep(200).then(() => 1), 10, "the write"), (e: unknown) => {
    assert.ok(e instanceof DeadlineError);
    assert.equal((e as Error).message, "the write took longer than 10 ms");
    return true;
  });
});

Deno.test("sleep() ends early when its signal aborts", async () => {
  const c = new AbortController();
  const t = performance.now();
  const pause = sleep(5000, c.signal);
  c.abort();
  await pause;
  assert.ok(performance.now() - t < 1000);
});
