/**
 * The switcher's training path: DMD labels, the MLP trainer, the ONNX writer (checked in both onnxruntime-web and
 * native onnxruntime against the TypeScript forward pass) and threshold calibration.
 */
import assert from "node:assert/strict";
import * as ortNode from "onnxruntime-node";
import * as ortWeb from "onnxruntime-web/wasm";
import { offloadRate, thresholdForAgreement, thresholdForOffloadRate } from "../switcher/calibration.ts";
import { dmdLabel } from "../switcher/dmd_labels.ts";
import { mergeMlps, predictMlp, trainMlp } from "../switcher/mlp.ts";
import { trainDmdSwitcher } from "../switcher/dmd.ts";
import { exportSwitcherOnnx } from "../switcher/onnx_writer.ts";
import { createPrng } from "../switcher/prng.ts";
import { readRuntimeBinary } from "../workers/artefacts.ts";

Deno.test("dmdLabel() is 0 when edge and cloud agree, 1 when they disagree, null without a cloud output", () => {
  assert.deepEqual(dmdLabel([0.7, 0.2, 0.1], [0.6, 0.3, 0.1]), { hard: 0, soft: 1 - 0.6 });
  const d = dmdLabel([0.7, 0.2, 0.1], [0.1, 0.8, 0.1]);
  assert.equal(d?.hard, 1);
  assert.ok(Math.abs(d!.soft - 0.9) < 1e-12);
  assert.equal(dmdLabel([0.7, 0.3], null), null);
  assert.throws(
    () => dmdLabel([0.5, 0.5], [0.2, 0.3, 0.5]),
    (e: Error) => e instanceof TypeError && e.message === "Cannot label pair: expected 2 cloud probabilities, got 3",
  );
});

/** A seeded XOR-like problem: the label depends on the sign of x0 * x1, with 10% label noise. */
function xorData(n: number, seed: number) {
  const rng = createPrng(seed);
  const f = 4;
  const x = new Float32Array(n * f);
  const targets = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    for (let k = 0; k < f; k++) x[i * f + k] = rng.normal();
    const label = x[i * f] * x[i * f + 1] > 0 ? 1 : 0;
    targets[i] = rng.next() < 0.1 ? 1 - label : label;
  }
  return { x, n, f, targets };
}

Deno.test("trainMlp() learns a seeded non-linear problem and is deterministic for a seed", () => {
  const train = xorData(3000, 1);
  const test = xorData(1000, 2);
  const a = trainMlp(train, { seed: 3, epochs: 40 });
  const b = trainMlp(train, { seed: 3, epochs: 40 });
  assert.deepEqual(Array.from(a.model.layers[0].weight), Array.from(b.model.layers[0].weight));
  const p = predictMlp(a.model, test.x, test.n);
  let correct = 0;
  for (let i = 0; i < test.n; i++) correct += (p[i] >= 0.5 ? 1 : 0) === test.targets[i] ? 1 : 0;
  // With 10% label noise the best possible accuracy is about 0.9; a linear model gets about 0.5.
  assert.ok(correct / test.n > 0.8, `accuracy ${correct / test.n}`);
});

Deno.test("trainMlp() rejects bad data with the exact error", () => {
  const x = new Float32Array([1, 2, 3, 4]);
  assert.throws(
    () => trainMlp({ x, n: 2, f: 2, targets: [0, 1, 1] }),
    (e: Error) => e instanceof TypeError && e.message === "Cannot train switcher: expected 2 targets, got 3",
  );
  assert.throws(
    () => trainMlp({ x: new Float32Array([1, NaN, 3, 4]), n: 2, f: 2, targets: [0, 1] }),
    (e: Error) => e instanceof RangeError && e.message === "Cannot train switcher: feature value 1 is not finite",
  );
  assert.throws(
    () => trainMlp({ x, n: 2, f: 2, targets: [0, 1.5] }),
    (e: Error) => e instanceof RangeError && e.message === "Cannot train switcher: target 1 is not in [0, 1]",
  );
  assert.throws(
    () => trainMlp({ x: new Float32Array(2), n: 1, f: 2, targets: [0] }),
    (e: Error) => e instanceof RangeError && e.message === "Cannot train switcher: expected at least 2 rows, got 1",
  );
});

Deno.test("exportSwitcherOnnx() scores like predictMlp() in onnxruntime-web and native onnxruntime", async () => {
  const data = xorData(800, 5);
  const { model } = trainMlp(data, { seed: 1, epochs: 10, hidden: [16, 8] });
  const names = ["a", "b", "c", "d"];
  const bytes = exportSwitcherOnnx(model, { version: "switcher-test", features: names });
  assert.deepEqual(bytes, exportSwitcherOnnx(model, { version: "switcher-test", features: names }));
  const expected = predictMlp(model, data.x, data.n);

  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.wasmBinary ??= await readRuntimeBinary();
  const web = await ortWeb.InferenceSession.create(bytes);
  const webOut = await web.run({ features: new ortWeb.Tensor("float32", data.x, [data.n, 4]) });
  const native = await ortNode.InferenceSession.create(bytes);
  const nativeOut = await native.run({ features: new ortNode.Tensor("float32", data.x, [data.n, 4]) });
  for (const out of [webOut.score, nativeOut.score]) {
    assert.deepEqual(out.dims, [data.n, 1]);
    const got = out.data as Float32Array;
    for (let i = 0; i < data.n; i++) {
      assert.ok(Math.abs(got[i] - expected[i]) < 1e-5, `row ${i}: ${got[i]} vs ${expected[i]}`);
    }
  }
  await web.release();
  await native.release();
});

Deno.test("mergeMlps(): one network whose logit is the mean of its members', exported like any other", async () => {
  const data = xorData(600, 7);
  const logit = (p: number) => Math.log(p / (1 - p));
  for (const hidden of [[8], [6, 4], []]) {
    // Members trained on different rows standardise their input differently: the merge folds that in.
    const members = [1, 2, 3].map((seed) => {
      const rows = 200 + 100 * seed;
      const part = { ...data, x: data.x.subarray(0, rows * 4), n: rows, targets: data.targets.slice(0, rows) };
      return trainMlp(part, { seed, epochs: 8, hidden }).model;
    });
    const merged = mergeMlps(members);
    assert.deepEqual(merged.layers.map((l) => l.outSize), [...hidden.map((h) => 3 * h), 1]);
    const each = members.map((m) => predictMlp(m, data.x, data.n));
    const got = predictMlp(merged, data.x, data.n);
    for (let r = 0; r < data.n; r++) {
      const z = each.reduce((a, e) => a + logit(e[r]), 0) / members.length;
      assert.ok(Math.abs(1 / (1 + Math.exp(-z)) - got[r]) < 1e-5, `hidden ${hidden}, row ${r}`);
    }
    if (hidden.length === 2) {
      ortWeb.env.wasm.numThreads = 1;
      ortWeb.env.wasm.wasmBinary ??= await readRuntimeBinary();
      const web = await ortWeb.InferenceSession.create(
        exportSwitcherOnnx(merged, { version: "switcher-merged", features: ["a", "b", "c", "d"] }),
      );
      const out = (await web.run({ features: new ortWeb.Tensor("float32", data.x, [data.n, 4]) })).score
        .data as Float32Array;
      for (let r = 0; r < data.n; r++) assert.ok(Math.abs(out[r] - got[r]) < 1e-5, `onnx row ${r}`);
      await web.release();
    }
  }
  assert.equal(mergeMlps([trainMlp(data, { seed: 1, epochs: 1, hidden: [4] }).model]).layers[0].outSize, 4);
  assert.throws(() => mergeMlps([]), /expected at least one/);
  const a = trainMlp(data, { seed: 1, epochs: 1, hidden: [4] }).model;
  const b = trainMlp(data, { seed: 1, epochs: 1, hidden: [5] }).model;
  assert.throws(() => mergeMlps([a, b]), /expected one shape with one output, got 4x4x1, 4x5x1/);
});

Deno.test("trainDmdSwitcher({ ensemble }): the merged network of that many seeds, the first one alone at 1", () => {
  const rng = createPrng(3);
  const pairs = Array.from({ length: 300 }, () => {
    const p = rng.next();
    const edge = [p, 1 - p];
    const cloud = rng.next() < 0.3 ? [1 - p, p] : edge;
    return { features: Float32Array.from([p, 1 - p, rng.next()]), edgeProbs: edge, cloudProbs: cloud };
  });
  const one = trainDmdSwitcher(pairs, { seed: 4, train: { hidden: [6], epochs: 5 } });
  const five = trainDmdSwitcher(pairs, { seed: 4, ensemble: 5, train: { hidden: [6], epochs: 5 } });
  assert.equal(one.model.layers[0].outSize, 6);
  assert.equal(five.model.layers[0].outSize, 30);
  // The first member of the five is the single network: same seed, same rows.
  assert.deepEqual(Array.from(five.model.layers[0].weight.subarray(0, 6 * 3)), Array.from(one.model.layers[0].weight));
  assert.ok(Number.isFinite(five.threshold) && five.evaluation.pairs === one.evaluation.pairs);
});

Deno.test("thresholdForOffloadRate() hits its target offload rate on a seeded sample", () => {
  const rng = createPrng(11);
  const scores = Float64Array.from({ length: 10_000 }, () => rng.next());
  for (const rate of [0, 0.1, 0.2, 0.3, 0.5, 0.9, 1]) {
    const t = thresholdForOffloadRate(scores, rate);
    // Distinct scores: exactly round(rate * n) of them are at or above the threshold.
    assert.equal(offloadRate(scores, t), Math.round(rate * scores.length) / scores.length);
  }
});

Deno.test("thresholdForOffloadRate() handles ties and rejects bad input", () => {
  const same = [0.5, 0.5, 0.5, 0.5];
  // Ties at the boundary all offload: the rate can only go up.
  assert.equal(offloadRate(same, thresholdForOffloadRate(same, 0.5)), 1);
  assert.equal(offloadRate(same, thresholdForOffloadRate(same, 0)), 0);
  assert.throws(
    () => thresholdForOffloadRate([0.1], 1.5),
    (e: Error) =>
      e instanceof RangeError && e.message === "Cannot calibrate threshold: rate must be in [0, 1], got 1.5",
  );
  assert.throws(
    () => thresholdForOffloadRate([], 0.5),
    (e: Error) =>
      e instanceof RangeError && e.message === "Cannot calibrate threshold: expected at least 1 score, got 0",
  );
  assert.throws(() => thresholdForOffloadRate([0.1, NaN], 0.5), RangeError);
});

Deno.test("thresholdForAgreement() offloads just enough to reach the target agreement", () => {
  // Scores from high to low, with disagreements at the 1st and 3rd highest scores.
  const scores = [0.9, 0.8, 0.7, 0.6, 0.5];
  const disagree = [1, 0, 1, 0, 0];
  assert.deepEqual(thresholdForAgreement(scores, disagree, 0.6), {
    threshold: thresholdForOffloadRate(scores, 0),
    offloadRate: 0,
  });
  assert.deepEqual(thresholdForAgreement(scores, disagree, 0.8), { threshold: 0.9, offloadRate: 0.2 });
  assert.deepEqual(thresholdForAgreement(scores, disagree, 1), { threshold: 0.7, offloadRate: 0.6 });
});

Deno.test("exportSwitcherOnnx() with columns reads only those features, in both runtimes", async () => {
  const data = xorData(400, 9);
  const columns = [0, 1];
  const sub = new Float32Array(data.n * 2);
  for (let i = 0; i < data.n; i++) sub.set([data.x[i * 4], data.x[i * 4 + 1]], i * 2);
  const { model } = trainMlp({ x: sub, n: data.n, f: 2, targets: data.targets }, { seed: 2, epochs: 5 });
  const bytes = exportSwitcherOnnx(model, { version: "cols", features: ["a", "b", "c", "d"], columns });
  const expected = predictMlp(model, sub, data.n);
  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.wasmBinary ??= await readRuntimeBinary();
  const web = await ortWeb.InferenceSession.create(bytes);
  const native = await ortNode.InferenceSession.create(bytes);
  const w = (await web.run({ features: new ortWeb.Tensor("float32", data.x, [data.n, 4]) })).score.data as Float32Array;
  const n = (await native.run({ features: new ortNode.Tensor("float32", data.x, [data.n, 4]) })).score
    .data as Float32Array;
  for (let i = 0; i < data.n; i++) {
    assert.ok(Math.abs(w[i] - expected[i]) < 1e-5);
    assert.ok(Math.abs(n[i] - expected[i]) < 1e-5);
  }
  assert.throws(
    () => exportSwitcherOnnx(model, { version: "x", features: ["a", "b"], columns: [0, 5] }),
    (e: Error) => e instanceof TypeError && e.message === "Cannot export switcher: columns must be integers in [0, 2)",
  );
  await web.release();
  await native.release();
});
