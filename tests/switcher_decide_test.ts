import assert from "node:assert/strict";
import { createOffloadBudget, decide } from "../switcher/decide.ts";

const base = { budgetAvailable: true, cloudAvailable: true };

Deno.test("decide() keeps a score below the threshold", () => {
  assert.deepEqual(decide({ ...base, score: 0.4999, threshold: 0.5 }), { offload: false, reason: "below_threshold" });
});

Deno.test("decide() offloads at the threshold", () => {
  assert.deepEqual(decide({ ...base, score: 0.5, threshold: 0.5 }), { offload: true, reason: "above_threshold" });
});

Deno.test("decide() offloads above the threshold", () => {
  assert.deepEqual(decide({ ...base, score: 0.9, threshold: 0.5 }), { offload: true, reason: "above_threshold" });
});

Deno.test("decide() follows a forced route whatever the score", () => {
  assert.deepEqual(decide({ ...base, score: 1, threshold: 0, forced: "edge" }), {
    offload: false,
    reason: "forced_edge",
  });
  assert.deepEqual(decide({ ...base, score: 0, threshold: 1, forced: "cloud" }), {
    offload: true,
    reason: "forced_cloud",
  });
});

Deno.test("decide() keeps the request when the budget is spent or the cloud is down", () => {
  assert.deepEqual(decide({ ...base, score: 0.9, threshold: 0.5, budgetAvailable: false }), {
    offload: false,
    reason: "budget_exhausted",
  });
  assert.deepEqual(decide({ ...base, score: 0.9, threshold: 0.5, cloudAvailable: false }), {
    offload: false,
    reason: "cloud_unavailable",
  });
});

Deno.test("decide() rejects a non-finite score or threshold", () => {
  assert.throws(
    () => decide({ ...base, score: NaN, threshold: 0.5 }),
    (e: Error) => e instanceof RangeError && e.message === "Cannot decide: score must be finite, got NaN",
  );
  assert.throws(
    () => decide({ ...base, score: 0.5, threshold: Infinity }),
    (e: Error) => e instanceof RangeError && e.message === "Cannot decide: threshold must be finite, got Infinity",
  );
});

Deno.test("createOffloadBudget() allows the rate, refills with time and is unlimited at 0", () => {
  const budget = createOffloadBudget({ ratePerS: 2 });
  assert.equal(budget.take(0), true);
  assert.equal(budget.take(0), true);
  assert.equal(budget.take(0), false);
  assert.equal(budget.take(499), false);
  assert.equal(budget.take(500), true);
  const unlimited = createOffloadBudget({ ratePerS: 0 });
  assert.ok(Array.from({ length: 1000 }, () => unlimited.take(0)).every(Boolean));
  assert.throws(() => createOffloadBudget({ ratePerS: -1 }), RangeError);
});
