import assert from "node:assert/strict";
import {
  accuracy,
  accuracyStandardError,
  bestPoint,
  curveArea,
  hybridCurve,
  macroF1,
  minRateReaching,
  pairedDifference,
  policies,
  rocAuc,
} from "../switcher/metrics.ts";

// A worked example, 6 sequences, 3 classes:
//   i      0  1  2  3  4  5
//   truth  0  0  1  1  2  2
//   edge   0  1  1  0  2  2   -> correct at 0, 2, 4, 5: accuracy 4/6
//   cloud  0  0  1  1  1  2   -> correct at 0, 1, 2, 3, 5: accuracy 5/6
//   score .1 .9 .2 .8 .7 .3   -> offload order 1, 3, 4, 5, 2, 0
// Offloading k = 1 (i=1): edge wrong -> cloud right: 5/6. k = 2 (i=3): 6/6. k = 3 (i=4): edge right -> cloud wrong:
// 5/6; then i=5, 2, 0 agree: 5/6.
const inputs = { truth: [0, 0, 1, 1, 2, 2], edgePred: [0, 1, 1, 0, 2, 2], cloudPred: [0, 0, 1, 1, 1, 2], classes: 3 };
const scores = [0.1, 0.9, 0.2, 0.8, 0.7, 0.3];

Deno.test("accuracy() and macroF1() match hand-computed values", () => {
  assert.equal(accuracy(inputs.edgePred, inputs.truth), 4 / 6);
  // Edge: class 0 tp1 fp1 fn1 -> F1 .5; class 1 tp1 fp1 fn1 -> .5; class 2 tp2 -> 1. Mean 2/3.
  assert.ok(Math.abs(macroF1(inputs.edgePred, inputs.truth, 3) - 2 / 3) < 1e-12);
  // A class absent from truth and predictions is left out.
  assert.equal(macroF1([0, 0], [0, 0], 5), 1);
});

Deno.test("hybridCurve() walks from edge-only to cloud-only accuracy in score order", () => {
  const curve = hybridCurve(inputs, scores);
  assert.deepEqual(curve.map((p) => Math.round(p.accuracy * 6)), [4, 5, 6, 5, 5, 5, 5]);
  assert.equal(curve[0].accuracy, accuracy(inputs.edgePred, inputs.truth));
  assert.equal(curve[6].accuracy, accuracy(inputs.cloudPred, inputs.truth));
  assert.deepEqual(curve.map((p) => p.rate), [0, 1 / 6, 2 / 6, 3 / 6, 4 / 6, 5 / 6, 1]);
  assert.equal(curve[6].agreement, 1);
  assert.equal(minRateReaching(curve, 5 / 6), 1 / 6);
  assert.equal(bestPoint(curve).accuracy, 1);
  assert.equal(bestPoint(curve).rate, 2 / 6);
  // Trapezoid: (1/6) * sum of adjacent means, in sixths: (4.5 + 5.5 + 5.5 + 5 + 5 + 5) / 6 / 6.
  assert.ok(Math.abs(curveArea(curve) - (4.5 + 5.5 + 5.5 + 5 + 5 + 5) / 36) < 1e-12);
});

Deno.test("the oracle policy is at least as accurate as any other at every offload rate", () => {
  const oracle = hybridCurve(inputs, policies.oracle(inputs));
  for (const s of [scores, policies.random(6, 1), [...scores].reverse()]) {
    const c = hybridCurve(inputs, s);
    c.forEach((p, k) => assert.ok(oracle[k].accuracy >= p.accuracy - 1e-12));
  }
});

Deno.test("rocAuc() counts ties as half and is NaN with one class", () => {
  assert.equal(rocAuc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]), 0.75);
  assert.equal(rocAuc([0.5, 0.5], [0, 1]), 0.5);
  assert.ok(Number.isNaN(rocAuc([0.1, 0.2], [1, 1])));
});

Deno.test("standard errors of an accuracy and of a paired difference", () => {
  assert.equal(accuracyStandardError(0.5, 100), 0.05);
  const d = pairedDifference([1, 1, 0, 1], [1, 0, 0, 0]);
  assert.equal(d.difference, 0.5);
  // Differences 0, 1, 0, 1: sample sd sqrt(1/3), over sqrt(4).
  assert.ok(Math.abs(d.standardError - Math.sqrt(1 / 3) / 2) < 1e-12);
});

Deno.test("metrics reject empty and mismatched inputs with the exact error", () => {
  assert.throws(
    () => accuracy([], []),
    (e: Error) =>
      e instanceof RangeError && e.message === "Cannot compute accuracy: expected at least 1 sequence, got 0",
  );
  assert.throws(
    () => hybridCurve(inputs, [0.1]),
    (e: Error) => e instanceof TypeError && e.message === "Cannot compute hybrid curve: expected 6 scores, got 1",
  );
});
