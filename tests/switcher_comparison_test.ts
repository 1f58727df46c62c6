/** The policy comparison of `deno task eval`: figures on hand-checked rows and paired bootstrap standard errors. */
import assert from "node:assert/strict";
import { comparePolicies, policyFigures } from "../switcher/comparison.ts";
import { createPrng } from "../switcher/prng.ts";

// Edge right on rows 0 and 2, cloud right on 0, 1 and 3; they disagree on rows 1, 2 and 3.
const inputs = { truth: [0, 0, 0, 0], edgePred: [0, 1, 0, 1], cloudPred: [0, 0, 1, 0] };

Deno.test("policyFigures() measures AUC, accuracy area and points, and the rate reaching cloud accuracy", () => {
  const f = policyFigures(inputs, [0.1, 0.9, 0.5, 0.8], [0, 1, 2, 3], [0.25, 0.5]);
  // Offload order 1, 3, 2, 0: accuracy 0.5, 0.75, 1, 0.75, 0.75.
  assert.deepEqual(f.accuracyAt, [0.75, 1]);
  assert.equal(f.accuracyArea, (0.5 + 0.75 + 0.75 + 1 + 1 + 0.75 + 0.75 + 0.75) / 8);
  assert.equal(f.rateToCloudAccuracy, 0.25);
  assert.equal(f.disagreementAuc, 1);
  // A resample with repeats counts each row as often as it is drawn.
  const r = policyFigures(inputs, [0.1, 0.9, 0.5, 0.8], [2, 2, 0, 0], [0.5]);
  assert.deepEqual(r.accuracyAt, [0.5]);
  assert.equal(r.rateToCloudAccuracy, 0);
});

Deno.test("comparePolicies() reports the operating point at a threshold fixed beforehand", () => {
  const [c] = comparePolicies(inputs, [{ name: "a", scores: [0.1, 0.9, 0.5, 0.8], threshold: 0.8 }], "a", {
    resamples: 10,
  });
  assert.deepEqual(c.operatingPoint, { threshold: 0.8, offloadRate: 0.5, accuracy: 1 });
  assert.deepEqual(c.vsBaseline.disagreementAuc, { difference: 0, standardError: 0 });
});

Deno.test("comparePolicies() pairs the bootstrap: near-identical policies differ with a small standard error", () => {
  const rng = createPrng(5);
  const n = 600;
  const truth = new Array(n).fill(0);
  const edgePred: number[] = [];
  const cloudPred: number[] = [];
  const signal: number[] = [];
  for (let i = 0; i < n; i++) {
    const hard = rng.next() < 0.3;
    edgePred.push(hard && rng.next() < 0.7 ? 1 : 0);
    cloudPred.push(rng.next() < 0.1 ? 2 : 0);
    signal.push((hard ? 0.6 : 0.3) + 0.4 * rng.next());
  }
  const rows = { truth, edgePred, cloudPred };
  const policies = [
    { name: "rule", scores: signal },
    { name: "rule+noise", scores: signal.map((s) => s + 1e-3 * rng.next()) },
    { name: "reversed", scores: signal.map((s) => -s) },
  ];
  const out = comparePolicies(rows, policies, "rule", { resamples: 200, seed: 3 });
  assert.deepEqual(out.map((c) => c.name), ["rule", "rule+noise", "reversed"]);
  assert.equal(out[0].vsBaseline.accuracyArea.standardError, 0);
  const near = out[1].vsBaseline.disagreementAuc;
  const far = out[2].vsBaseline.disagreementAuc;
  assert.ok(near.standardError > 0 && near.standardError < 0.005, `near SE ${near.standardError}`);
  assert.ok(far.difference < -0.3 && far.standardError > near.standardError * 5);
  assert.ok(out[2].vsBaseline.accuracyAt[0].difference < 0);
  assert.deepEqual(comparePolicies(rows, policies, "rule", { resamples: 200, seed: 3 }), out);
});

Deno.test("comparePolicies() rejects a missing baseline and mismatched lengths with the exact error", () => {
  assert.throws(
    () => comparePolicies(inputs, [{ name: "a", scores: [1, 2, 3, 4] }], "b"),
    (e: Error) => e instanceof RangeError && e.message === 'Cannot compare policies: no policy named "b"',
  );
  assert.throws(
    () => comparePolicies(inputs, [{ name: "a", scores: [1, 2, 3] }], "a"),
    (e: Error) => e instanceof TypeError && e.message === "Cannot compare policies: a has 3 scores, expected 4",
  );
  assert.throws(
    () => comparePolicies({ truth: [], edgePred: [], cloudPred: [] }, [], "a"),
    (e: Error) => e instanceof RangeError && e.message === "Cannot compare policies: expected at least 1 row, got 0",
  );
});
