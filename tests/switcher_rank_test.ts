/**
 * The rank average of the confidence rules: its CDFs, the network that serves it, selection and the ONNX release.
 */
import assert from "node:assert/strict";
import * as ortWeb from "onnxruntime-web/wasm";
import { DEFAULT_CANDIDATES, labelPool } from "../switcher/candidates.ts";
import { exportFitted, fitCandidate, scoreFitted } from "../switcher/fit.ts";
import { rocAuc } from "../switcher/metrics.ts";
import { predictMlp } from "../switcher/mlp.ts";
import { createPrng } from "../switcher/prng.ts";
import { cdfAt, fitRankAverage, MIN_KNOT_GAP, ruleCdf } from "../switcher/rank.ts";
import { CONFIDENCE_RULES, ruleScore } from "../switcher/rules.ts";
import { probabilityStats } from "../switcher/features.ts";
import { selectSwitcher } from "../switcher/selection.ts";
import { readRuntimeBinary } from "../workers/artefacts.ts";
import { switcherMlp } from "../workers/switcher_mlp.ts";

/** Rows of a 4-class edge model: confident most of the time, some near one-hot (ties at the top of p_max). */
function confidencePool(n: number, seed: number) {
  const rng = createPrng(seed);
  return Array.from({ length: n }, (_, i) => {
    const sharp = rng.next() < 0.3 ? 40 : 1 + 6 * rng.next();
    const logits = Array.from({ length: 4 }, () => sharp * rng.next());
    const e = logits.map((l) => Math.exp(l - Math.max(...logits)));
    const probs = e.map((v) => v / e.reduce((a, b) => a + b, 0));
    const s = probabilityStats(probs);
    const features = Float32Array.from([s.pMax, s.margin, s.entropy, 1, 0, 0.1]);
    // Disagreement more likely when the edge is unsure, by all three confidences alike.
    const disagree = rng.next() < 0.9 * ((2 - s.pMax - s.margin + s.entropy) / 3) ** 2;
    const cloudProbs = probs.map((_, k) => (k === (disagree ? (s.top + 1) % 4 : s.top) ? 0.9 : 0.1 / 3));
    return { features, edgeProbs: probs, cloudProbs, subject: `s${i % 6}` };
  });
}

Deno.test("ruleCdf() is the mid-rank empirical CDF at the quantiles, knots at least MIN_KNOT_GAP apart", () => {
  const rows = [0.9, 0.8, 0.8, 0.8, 0.6, 0.5, 0.2, 0.1].map((p) => [p, 0, 0]);
  const cdf = ruleCdf("max_prob", rows, 7);
  // Scores 1 - p: 0.1, 0.2, 0.2, 0.2, 0.4, 0.5, 0.8, 0.9 (float32).
  assert.deepEqual(Array.from(cdf.at).map((v) => Math.round(v * 10) / 10), [0.1, 0.2, 0.4, 0.5, 0.8, 0.9]);
  assert.deepEqual(Array.from(cdf.level), [0.5 / 8, 2.5 / 8, 4.5 / 8, 5.5 / 8, 6.5 / 8, 7.5 / 8]);
  assert.equal(cdfAt(cdf, 0), 0.5 / 8);
  assert.equal(cdfAt(cdf, 1), 7.5 / 8);
  assert.ok(Math.abs(cdfAt(cdf, 0.3) - 3.5 / 8) < 1e-6);
  const dense = ruleCdf("entropy", Array.from({ length: 1000 }, (_, i) => [0, 0, i * 1e-5]), 64);
  for (let j = 1; j < dense.at.length; j++) assert.ok(dense.at[j] - dense.at[j - 1] >= MIN_KNOT_GAP);
  assert.throws(
    () => ruleCdf("margin", [], 4),
    (e: Error) => e instanceof RangeError && e.message === "Cannot fit a rank average: expected at least 1 row, got 0",
  );
  assert.throws(
    () => ruleCdf("margin", rows, 0),
    (e: Error) =>
      e instanceof RangeError && e.message === "Cannot fit a rank average: knots must be an integer >= 1, got 0",
  );
});

Deno.test("the rank average network computes the mean of the rules' piecewise-linear CDFs", () => {
  const pool = confidencePool(600, 1);
  const rows = pool.map((p) => p.features);
  const { model, cdfs } = fitRankAverage(CONFIDENCE_RULES, rows, 64);
  const x = new Float32Array(rows.length * 3);
  rows.forEach((r, i) => x.set(r.subarray(0, 3), i * 3));
  const scores = predictMlp(model, x, rows.length);
  rows.forEach((r, i) => {
    const mean = cdfs.reduce((a, c) => a + cdfAt(c, Math.fround(ruleScore(c.rule, r))), 0) / cdfs.length;
    assert.ok(Math.abs(scores[i] - 1 / (1 + Math.exp(-mean))) < 1e-5, `row ${i}: ${scores[i]} vs mean ${mean}`);
  });
  // Each rule alone: the network ranks exactly as the rule (a monotone map of it).
  for (const rule of CONFIDENCE_RULES) {
    const one = fitRankAverage([rule], rows, 64).model;
    const s = predictMlp(one, x, rows.length);
    const r = rows.map((f) => ruleScore(rule, f));
    for (let i = 1; i < rows.length; i++) {
      if (r[i] > r[i - 1] + 1e-6) assert.ok(s[i] >= s[i - 1], `${rule}: rows ${i - 1}, ${i} out of order`);
      if (r[i] < r[i - 1] - 1e-6) assert.ok(s[i] <= s[i - 1], `${rule}: rows ${i - 1}, ${i} out of order`);
    }
  }
});

Deno.test("rank:confidence is fitted without labels, ranks near the best rule and exports to ONNX that scores the same", async () => {
  const pool = confidencePool(800, 2);
  const candidate = DEFAULT_CANDIDATES.find((c) => c.name === "rank:confidence")!;
  assert.equal(candidate.kind, "rank");
  assert.equal(candidate.complexity, 0);
  const fitted = fitCandidate(candidate, pool, { calibrate: { offloadRate: 0.25 } });
  const flipped = fitCandidate(candidate, pool.map((p) => ({ ...p, cloudProbs: [...p.cloudProbs].reverse() })), {
    calibrate: { offloadRate: 0.25 },
  });
  assert.deepEqual(fitted.model, flipped.model, "the labels change nothing");
  const rows = pool.map((p) => p.features);
  const scores = scoreFitted(fitted, rows);
  assert.equal(scores.filter((v) => v >= fitted.threshold).length, 200);
  const labels = labelPool(pool).disagree;
  const auc = rocAuc(scores, labels);
  const ruleAucs = CONFIDENCE_RULES.map((rule) => rocAuc(rows.map((r) => ruleScore(rule, r)), labels));
  assert.ok(auc >= Math.min(...ruleAucs) && auc > 0.6, `rank ${auc} vs rules ${ruleAucs}`);

  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.wasmBinary ??= await readRuntimeBinary();
  const names = ["p_max", "margin", "entropy", "conf_mean", "missing_frac", "motion_energy"];
  const bytes = exportFitted(fitted, { version: "t", features: names });
  const session = await ortWeb.InferenceSession.create(bytes);
  const x = new Float32Array(rows.length * 6);
  rows.forEach((r, i) => x.set(r, i * 6));
  const out = (await session.run({ features: new ortWeb.Tensor("float32", x, [rows.length, 6]) })).score
    .data as Float32Array;
  for (let i = 0; i < rows.length; i++) {
    assert.ok(Math.abs(out[i] - scores[i]) < 1e-5, `row ${i}: ${out[i]} vs ${scores[i]}`);
  }
  await session.release();
  // The workers score an ONNX switcher of this form in plain JavaScript: the same scores.
  const js = switcherMlp(bytes, 6);
  assert.ok(js, "the workers read the rank average's graph");
  const jsOut = js(x, rows.length);
  for (let i = 0; i < rows.length; i++) {
    assert.ok(Math.abs(jsOut[i] - out[i]) < 1e-5, `row ${i}: ${jsOut[i]} vs ${out[i]}`);
  }
});

Deno.test("selection takes the rank average unless a rule beats it by more than one standard error", () => {
  const pool = confidencePool(900, 3);
  const options = {
    seed: 1,
    candidates: DEFAULT_CANDIDATES.filter((c) => c.kind !== "mlp"),
    folds: { k: 3 },
  };
  const near = selectSwitcher(pool, pool.map((p) => p.subject), options);
  const rank = near.trials.find((t) => t.candidate.name === "rank:confidence")!;
  assert.ok(rank.mean >= near.best.mean - near.best.standardError, JSON.stringify(near.trials.map((t) => t.mean)));
  assert.equal(near.chosen.candidate.name, "rank:confidence");
  assert.ok(near.fitted.model, "served as a network");
  // A pool where only the margin tells: max probability and entropy carry noise, so margin wins clearly.
  const rng = createPrng(9);
  const marginOnly = pool.map((p) => {
    const f = Float32Array.from(p.features);
    f[0] = rng.next();
    f[2] = rng.next();
    return { ...p, features: f };
  });
  const clear = selectSwitcher(marginOnly, marginOnly.map((p) => p.subject), options);
  assert.equal(clear.chosen.candidate.name, "rule:margin");
});
