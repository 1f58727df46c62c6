/**
 * Choosing the switcher: confidence rules as releases, grouped folds, cross-validated selection with the
 * one-standard-error rule, and the gate on held-out folds.
 */
import assert from "node:assert/strict";
import * as ortWeb from "onnxruntime-web/wasm";
import { consistencyStats, timeShifted } from "../switcher/consistency.ts";
import { applyEmbeddingTransform, fitEmbeddingTransform } from "../switcher/embedding_transform.ts";
import { groupedFolds } from "../switcher/folds.ts";
import { gate, gateOnFolds } from "../switcher/gate.ts";
import { createPrng } from "../switcher/prng.ts";
import { ruleScore } from "../switcher/rules.ts";
import { ruleScore as releaseRuleScore } from "../release/release.ts";
import { candidatesFor, DEFAULT_CANDIDATES } from "../switcher/candidates.ts";
import { exportFitted, fitCandidate, scoreFitted } from "../switcher/fit.ts";
import {
  type CandidateCv,
  gateWithFallback,
  oneStandardErrorChoice,
  type Selection,
  selectSwitcher,
} from "../switcher/selection.ts";
import { readRuntimeBinary } from "../workers/artefacts.ts";

Deno.test("groupedFolds() keeps every group in one fold and balances rows", () => {
  const groups = Array.from({ length: 120 }, (_, i) => `s${i % 12}`);
  const folds = groupedFolds(groups, { k: 4, seed: 3 });
  assert.equal(folds.basis, "group");
  assert.equal(folds.k, 4);
  assert.equal(folds.groups, 12);
  const foldOf = new Map<string, number>();
  groups.forEach((g, i) => {
    if (foldOf.has(g)) assert.equal(folds.fold[i], foldOf.get(g));
    foldOf.set(g, folds.fold[i]);
  });
  const sizes = [0, 0, 0, 0];
  for (const f of folds.fold) sizes[f]++;
  assert.deepEqual(sizes, [30, 30, 30, 30]);
  assert.deepEqual(groupedFolds(groups, { k: 4, seed: 3 }).fold, folds.fold);
});

Deno.test("groupedFolds() uses one fold per group when there are fewer groups than folds", () => {
  const groups = Array.from({ length: 30 }, (_, i) => ["a", "b", "c"][i % 3]);
  const folds = groupedFolds(groups, { k: 5 });
  assert.equal(folds.k, 3);
  assert.equal(new Set(folds.fold).size, 3);
});

Deno.test("groupedFolds() falls back to time blocks, or a seeded random split, without groups", () => {
  const none = new Array<string | null>(10).fill(null);
  const blocks = groupedFolds(none, { k: 5 });
  assert.equal(blocks.basis, "blocks");
  assert.deepEqual(Array.from(blocks.fold), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
  const random = groupedFolds(none, { k: 5, fallback: "random", seed: 2 });
  assert.equal(random.basis, "random");
  assert.deepEqual(Array.from(random.fold).sort(), [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]);
  assert.equal(groupedFolds(["a", "a", "b", "b", "a", "b", "a", "b", "a", "b"], { k: 5 }).basis, "blocks");
  assert.throws(
    () => groupedFolds(none.slice(0, 9), { k: 5 }),
    (e: Error) => e instanceof RangeError && e.message === "Cannot make 5 folds: expected at least 10 rows, got 9",
  );
  assert.throws(() => groupedFolds(none, { k: 1 }), RangeError);
});

Deno.test("a fitted rule scores as the served rule release does, its threshold on the rule's own scale", () => {
  const rng = createPrng(4);
  const pairs = Array.from({ length: 200 }, () => {
    const pMax = 0.3 + 0.7 * rng.next();
    const features = Float32Array.from([pMax, pMax * rng.next(), rng.next(), 0.9, 0, 0.1]);
    return { features, edgeProbs: [pMax, 1 - pMax], cloudProbs: rng.next() < 0.3 ? [0.1, 0.9] : [0.9, 0.1] };
  });
  for (const rule of ["max_prob", "margin", "entropy"] as const) {
    const candidate = DEFAULT_CANDIDATES.find((c) => c.name === `rule:${rule}`)!;
    const fitted = fitCandidate(candidate, pairs, { calibrate: { offloadRate: 0.25 } });
    assert.equal(fitted.model, null);
    const scores = scoreFitted(fitted, pairs.map((p) => p.features));
    pairs.forEach((p, i) => assert.equal(scores[i], Math.fround(releaseRuleScore(rule, p.features))));
    assert.equal(scores.filter((v) => v >= fitted.threshold).length, 50);
    assert.throws(
      () => exportFitted(fitted, { version: "x", features: [] }),
      (e: Error) => e instanceof TypeError && e.message === `Cannot export rule:${rule}: a rule has no network`,
    );
  }
  assert.equal(ruleScore("max_prob", [0.8, 0.5, 0.3]), 1 - 0.8);
  assert.equal(ruleScore("margin", [0.8, 0.5, 0.3]), 0.5);
  assert.equal(ruleScore("entropy", [0.8, 0.5, 0.3]), 0.3);
});

function trial(name: string, complexity: number, mean: number, standardError: number): CandidateCv {
  const candidate = complexity === 0
    ? { kind: "rule" as const, name, rule: "margin" as const, complexity }
    : { kind: "mlp" as const, name, set: "all" as const, complexity, hidden: [4], l2: 0 };
  return { candidate, foldAuc: [], mean, standardError, oof: new Float64Array() };
}

Deno.test("oneStandardErrorChoice() takes the simplest candidate within one standard error of the best", () => {
  const rules = [trial("rule:a", 0, 0.90, 0.01), trial("rule:b", 0, 0.91, 0.01)];
  const within = oneStandardErrorChoice([...rules, trial("mlp:x", 1, 0.915, 0.01), trial("mlp:y", 3, 0.92, 0.01)]);
  assert.equal(within.best.candidate.name, "mlp:y");
  assert.equal(within.chosen.candidate.name, "rule:b");
  const beyond = oneStandardErrorChoice([...rules, trial("mlp:x", 1, 0.93, 0.01), trial("mlp:y", 3, 0.95, 0.01)]);
  assert.equal(beyond.chosen.candidate.name, "mlp:y");
  const simplerWins = oneStandardErrorChoice([...rules, trial("mlp:x", 1, 0.94, 0.01), trial("mlp:y", 3, 0.95, 0.02)]);
  assert.equal(simplerWins.chosen.candidate.name, "mlp:x");
  // Rules within one SE of each other: the one reading the least of the probabilities, not the luckier one.
  const byRule = (name: string) => {
    const candidate = DEFAULT_CANDIDATES.find((c) => c.name === name)!;
    return (mean: number, se: number): CandidateCv => ({
      candidate,
      foldAuc: [],
      mean,
      standardError: se,
      oof: new Float64Array(),
    });
  };
  const closeRules = oneStandardErrorChoice([
    byRule("rule:max_prob")(0.960, 0.011),
    byRule("rule:margin")(0.961, 0.012),
    byRule("rule:entropy")(0.954, 0.013),
  ]);
  assert.equal(closeRules.best.candidate.name, "rule:margin");
  assert.equal(closeRules.chosen.candidate.name, "rule:max_prob");
  const clearRule = oneStandardErrorChoice([byRule("rule:max_prob")(0.90, 0.005), byRule("rule:margin")(0.93, 0.005)]);
  assert.equal(clearRule.chosen.candidate.name, "rule:margin");
  assert.throws(
    () => oneStandardErrorChoice([trial("rule:a", 0, NaN, NaN)]),
    (e: Error) =>
      e instanceof RangeError &&
      e.message === "Cannot select a switcher: no fold has both agreements and disagreements",
  );
});

/**
 * A pool of 12 subjects. Each subject either is hard for the edge (disagreements frequent) or not; the embedding
 * carries the subject's identity; max probability carries a weaker signal that holds for every subject.
 */
function subjectPool(n: number, seed: number) {
  const rng = createPrng(seed);
  const subjects = Array.from({ length: 12 }, (_, s) => ({
    hard: s % 2 === 0,
    code: Array.from({ length: 6 }, () => rng.normal()),
  }));
  const groups: string[] = [];
  const pairs = Array.from({ length: n }, (_, i) => {
    const s = i % 12;
    groups.push(`s${s}`);
    const pMax = 0.4 + 0.6 * rng.next();
    const p = (subjects[s].hard ? 0.55 : 0.05) + 0.3 * (1 - pMax);
    const disagree = rng.next() < p;
    const emb = subjects[s].code.map((c) => c + 0.1 * rng.normal());
    const features = Float32Array.from([pMax, 2 * pMax - 1, 1 - pMax, 0.9, 0, 0.1, ...emb]);
    return { features, edgeProbs: [pMax, 1 - pMax], cloudProbs: disagree ? [0.2, 0.8] : [0.8, 0.2] };
  });
  return { pairs, groups };
}

Deno.test("selectSwitcher() with folds grouped by subject does not reward learning the pool's subjects", () => {
  const { pairs, groups } = subjectPool(1200, 7);
  const options = { seed: 1, epochs: 30, candidates: candidatesFor(["confidence", "all"]) };
  const grouped = selectSwitcher(pairs, groups, options);
  assert.equal(grouped.folds.basis, "group");
  // Every rule ranks as the max probability here, so the label-free rank average of the rules is taken.
  assert.equal(grouped.chosen.candidate.name, "rank:confidence");
  // The same pool split at random: the embedding recognises the subjects and looks far better than it is.
  const random = selectSwitcher(pairs, groups.map(() => null), { ...options, folds: { fallback: "random" } });
  assert.equal(random.folds.basis, "random");
  assert.equal(random.chosen.candidate.name, "mlp:all");
  const all = (s: typeof random) => s.trials.find((t) => t.candidate.name === "mlp:all")!;
  assert.ok(all(random).mean > all(grouped).mean + 0.05, `${all(random).mean} vs ${all(grouped).mean}`);
});

Deno.test("selectSwitcher() installs a learned switcher when it beats every rule on held-out groups", () => {
  // Disagreement follows input quality (missing points), which no confidence rule reads, in every subject.
  const rng = createPrng(9);
  const groups: string[] = [];
  const pairs = Array.from({ length: 1000 }, (_, i) => {
    groups.push(`s${i % 10}`);
    const pMax = 0.5 + 0.5 * rng.next();
    const missing = rng.next();
    const disagree = rng.next() < (missing > 0.7 ? 0.8 : 0.05);
    const features = Float32Array.from([pMax, 2 * pMax - 1, 1 - pMax, 1 - missing, missing, 0.1]);
    return { features, edgeProbs: [pMax, 1 - pMax], cloudProbs: disagree ? [0.2, 0.8] : [0.8, 0.2] };
  });
  const s = selectSwitcher(pairs, groups, {
    seed: 2,
    epochs: 30,
    candidates: candidatesFor(["confidence", "confidence+quality"]),
    calibrate: { offloadRate: 0.3 },
  });
  assert.equal(s.chosen.candidate.name, "mlp:confidence+quality");
  assert.ok(s.chosen.mean > s.bestRule.mean + 0.2);
  assert.equal(s.fitted.candidate.name, "mlp:confidence+quality");
  assert.deepEqual(s.fitted.columns, [0, 1, 2, 3, 4, 5]);
  // The threshold offloads the calibration target of the fitted switcher's held-out pairs.
  const scores = scoreFitted(s.fitted, pairs.map((p) => p.features));
  const rate = scores.filter((v) => v >= s.fitted.threshold).length / scores.length;
  assert.ok(Math.abs(rate - 0.3) < 0.06, `offload rate ${rate}`);
});

Deno.test("selectSwitcher() fits a chosen rule on the whole pool, threshold at the target offload rate", () => {
  const { pairs, groups } = subjectPool(600, 3);
  const s = selectSwitcher(pairs, groups, {
    seed: 1,
    epochs: 20,
    candidates: DEFAULT_CANDIDATES.filter((c) => c.kind === "rule"),
    calibrate: { offloadRate: 0.25 },
  });
  assert.equal(s.fitted.candidate.kind, "rule");
  assert.equal(s.fitted.heldOut, null);
  const scores = scoreFitted(s.fitted, pairs.map((p) => p.features));
  assert.equal(scores.filter((v) => v >= s.fitted.threshold).length, 150);
  // A large pool is cross-validated on a sample; the fit and its threshold still read every pair.
  const sampled = selectSwitcher(pairs, groups, {
    seed: 1,
    candidates: DEFAULT_CANDIDATES.filter((c) => c.kind === "rule"),
    calibrate: { offloadRate: 0.25 },
    maxCrossValidationRows: 200,
  });
  assert.equal(sampled.pool.pairs.length, 200);
  assert.ok(sampled.pool.index.every((v, i) => i === 0 || v > sampled.pool.index[i - 1]));
  const all = scoreFitted(sampled.fitted, pairs.map((p) => p.features));
  assert.equal(all.filter((v) => v >= sampled.fitted.threshold).length, 150);
  assert.throws(
    () => selectSwitcher(pairs.slice(0, 10), groups.slice(0, 10)),
    (e: Error) =>
      e instanceof RangeError && e.message === "Cannot select a switcher: expected at least 20 usable pairs, got 10",
  );
});

Deno.test("gateOnFolds() refuses a candidate worse than the active release or the best rule on held-out folds", () => {
  const pass = gateOnFolds([0.8, 0.82, 0.81], [
    { name: "active", foldAuc: [0.78, 0.8, 0.8] },
    { name: "rule:margin", foldAuc: [0.8, 0.82, 0.81] },
  ]);
  assert.equal(pass.promote, true);
  assert.equal(pass.comparisons[1].difference, 0);
  assert.ok(Math.abs(pass.comparisons[0].difference - 0.05 / 3) < 1e-12);
  const fail = gateOnFolds([0.8, 0.8, 0.8], [{ name: "rule:margin", foldAuc: [0.81, 0.8, 0.82] }]);
  assert.equal(fail.promote, false);
  assert.equal(fail.reason, "candidate AUC is 0.0100 below rule:margin on held-out folds (tolerance 0)");
  assert.equal(
    gateOnFolds([0.8, 0.8, 0.8], [{ name: "rule:margin", foldAuc: [0.81, 0.8, 0.82] }], { tolerance: 0.01 }).promote,
    true,
  );
  // An opponent's own tolerance (a rule chosen within one SE of a better-ranked rule) widens the bar for it alone.
  const ruleOverRule = gateOnFolds([0.8, 0.8, 0.8], [
    { name: "rule:margin", foldAuc: [0.81, 0.8, 0.82], tolerance: 0.012 },
    { name: "active", foldAuc: [0.79, 0.8, 0.8] },
  ]);
  assert.equal(ruleOverRule.promote, true);
  const beyond = gateOnFolds([0.8, 0.8, 0.8], [{ name: "rule:margin", foldAuc: [0.83, 0.8, 0.82], tolerance: 0.012 }]);
  assert.equal(beyond.promote, false);
  assert.equal(beyond.reason, "candidate AUC is 0.0167 below rule:margin on held-out folds (tolerance 0.012)");
  const none = gateOnFolds([NaN, NaN], [{ name: "active", foldAuc: [0.5, 0.5] }]);
  assert.equal(none.promote, false);
  assert.equal(none.reason, "no held-out fold ranks the candidate against active");
});

Deno.test("gateOnFolds() with everyFold refuses a candidate better on average that loses on one held-out fold", () => {
  // +0.02 on average against the rule, but 0.02 below it on the third fold (one group of traffic).
  const folds = [0.84, 0.84, 0.80];
  const rule = [0.80, 0.80, 0.82];
  const onMean = gateOnFolds(folds, [{ name: "rule:max_prob", foldAuc: rule }]);
  assert.equal(onMean.promote, true);
  assert.ok(Math.abs(onMean.comparisons[0].worst + 0.02) < 1e-12);
  assert.equal(onMean.comparisons[0].everyFold, false);
  const everyFold = gateOnFolds(folds, [{ name: "rule:max_prob", foldAuc: rule, everyFold: true }]);
  assert.equal(everyFold.promote, false);
  assert.equal(
    everyFold.reason,
    "candidate AUC is 0.0200 below rule:max_prob on one held-out fold (of 3; tolerance 0), though +0.0200 on average",
  );
  // Within the tolerance on its worst fold: passes; better on every fold: passes.
  assert.equal(gateOnFolds(folds, [{ name: "r", foldAuc: rule, everyFold: true }], { tolerance: 0.02 }).promote, true);
  assert.equal(gateOnFolds([0.84, 0.84, 0.83], [{ name: "r", foldAuc: rule, everyFold: true }]).promote, true);
});

Deno.test("gateWithFallback(): a learned candidate refused on one fold gives way to the label-free choice, gated in turn", () => {
  const byName = (name: string) => DEFAULT_CANDIDATES.find((c) => c.name === name)!;
  const trial = (name: string, foldAuc: number[]): CandidateCv => {
    const mean = foldAuc.reduce((a, b) => a + b, 0) / foldAuc.length;
    const sd = Math.sqrt(foldAuc.reduce((a, b) => a + (b - mean) ** 2, 0) / (foldAuc.length - 1));
    return {
      candidate: byName(name),
      foldAuc,
      mean,
      standardError: sd / Math.sqrt(foldAuc.length),
      oof: new Float64Array(),
    };
  };
  const rank = trial("rank:confidence", [0.80, 0.80, 0.80, 0.80]);
  const maxProb = trial("rule:max_prob", [0.79, 0.79, 0.79, 0.79]);
  const margin = trial("rule:margin", [0.90, 0.90, 0.90, 0.90]); // clearly the best rule: the fallback picks it
  const mlp = trial("mlp:confidence", [0.99, 0.99, 0.99, 0.89]); // better on average, below margin on one fold
  const refits: string[] = [];
  const selection = {
    chosen: mlp,
    best: mlp,
    trials: [rank, maxProb, margin, mlp],
    bestRule: margin,
    refit: (c) => {
      refits.push(c.name);
      return { candidate: c } as Selection["fitted"];
    },
  } as Selection;
  const { selection: gated, verdict } = gateWithFallback(selection, null);
  assert.deepEqual(refits, ["rule:margin"]);
  assert.equal(gated.chosen, margin);
  assert.equal(gated.fitted.candidate.name, "rule:margin");
  assert.equal(gated.refused?.candidate, "mlp:confidence");
  assert.match(gated.refused!.reason, /0\.0100 below best rule \(rule:margin\) on one held-out fold/);
  assert.equal(verdict.promote, true);
  assert.match(verdict.reason, /^not worse on held-out folds: .*; before it, mlp:confidence was refused: /);
  // An MLP that holds on every fold is gated once, and a refused label-free candidate has no fallback.
  const passes = gateWithFallback({ ...selection, chosen: trial("mlp:confidence", [0.95, 0.95, 0.95, 0.91]) }, null);
  assert.equal(passes.selection.refused, undefined);
  assert.equal(passes.verdict.promote, true);
  const ruleRefused = gateWithFallback({ ...selection, chosen: maxProb, best: margin }, null);
  assert.equal(ruleRefused.verdict.promote, false);
  assert.equal(ruleRefused.selection.refused, undefined);
  assert.deepEqual(refits, ["rule:margin"]);
});

Deno.test("gate() refuses a candidate that beats the active switcher but ranks worse than a confidence rule", () => {
  const pairs = Array.from({ length: 60 }, (_, i) => ({ disagree: i % 3 === 0 ? 1 : 0, weight: 1 }));
  const perfect = pairs.map((p) => p.disagree);
  const decent = pairs.map((p, i) => p.disagree * 0.2 + (i % 5) / 10);
  const poor = pairs.map((_, i) => (i % 7) / 7);
  const withRule = gate(pairs, { scores: decent, threshold: 0.5 }, { scores: poor, threshold: 0.5 }, {
    rules: [{ name: "rule:margin", scores: perfect }],
  });
  assert.equal(withRule.promote, false);
  assert.match(withRule.reason, /^candidate AUC 0\.\d{4} < rule:margin 1\.0000 - 0$/);
  const without = gate(pairs, { scores: decent, threshold: 0.5 }, { scores: poor, threshold: 0.5 });
  assert.equal(without.promote, true);
});

Deno.test("fitEmbeddingTransform() finds the embedding's main directions and scores novelty", () => {
  // A 5-value embedding that varies along two directions only, behind 6 base features.
  const rng = createPrng(12);
  const u = [1, 1, 1, 0, 0];
  const v = [0, 0, 0, 1, -1];
  const rows = Array.from({ length: 3000 }, () => {
    const a = rng.normal();
    const b = 0.5 * rng.normal();
    return Float32Array.from([
      0.9,
      0.5,
      0.2,
      1,
      0,
      0.1,
      ...u.map((x, k) => 3 + a * x + b * v[k] * 2 + 0.01 * rng.normal()),
    ]);
  });
  const t = fitEmbeddingTransform(rows, { start: 6, components: 2, seed: 1 });
  const first = Array.from(t.components.subarray(0, 5));
  // Standardised, u spans three columns and v two: the first direction is (1, 1, 1, 0, 0) / sqrt(3) up to noise.
  const third = Math.sqrt(1 / 3);
  assert.ok(first.every((c, k) => Math.abs(c - (k < 3 ? third : 0)) < 0.08), `${first}`);
  const typical = applyEmbeddingTransform(t, rows[0]);
  assert.equal(typical.length, 6 + 2 + 1);
  assert.deepEqual(Array.from(typical.subarray(0, 6)), Array.from(rows[0].subarray(0, 6)));
  const far = applyEmbeddingTransform(t, Float32Array.from([0.9, 0.5, 0.2, 1, 0, 0.1, 30, -30, 30, 30, 3]));
  assert.ok(far[8] > 100 * typical[8], `novelty ${far[8]} vs ${typical[8]}`);
  assert.throws(
    () => fitEmbeddingTransform(rows, { start: 6, components: 6 }),
    (e: Error) =>
      e instanceof RangeError &&
      e.message === "Cannot fit embedding features: components must be an integer in [0, 5], got 6",
  );
  assert.throws(
    () => applyEmbeddingTransform(t, [1, 2, 3]),
    (e: Error) => e instanceof TypeError && e.message === "Cannot derive embedding features: expected 11 values, got 3",
  );
});

Deno.test("an MLP on novelty and principal components exports to ONNX that scores like scoreFitted()", async () => {
  const { pairs } = subjectPool(300, 5);
  ortWeb.env.wasm.numThreads = 1;
  ortWeb.env.wasm.wasmBinary ??= await readRuntimeBinary();
  const f = pairs[0].features.length;
  const names = Array.from({ length: f }, (_, i) => `f${i}`);
  const x = new Float32Array(pairs.length * f);
  pairs.forEach((p, i) => x.set(p.features, i * f));
  for (const name of ["mlp:confidence+quality+novelty", "mlp:confidence+quality+pca"]) {
    const candidate = DEFAULT_CANDIDATES.find((c) => c.name === name)!;
    const fitted = fitCandidate(candidate, pairs, { seed: 1, epochs: 10 });
    assert.ok(fitted.transform);
    const expected = scoreFitted(fitted, pairs.map((p) => p.features));
    const session = await ortWeb.InferenceSession.create(exportFitted(fitted, { version: "t", features: names }));
    const out = (await session.run({ features: new ortWeb.Tensor("float32", x, [pairs.length, f]) })).score
      .data as Float32Array;
    for (let i = 0; i < pairs.length; i++) {
      assert.ok(Math.abs(out[i] - expected[i]) < 1e-5, `${name} row ${i}: ${out[i]} vs ${expected[i]}`);
    }
    await session.release();
  }
});

Deno.test("timeShifted() drops the first frames and repeats the last; consistencyStats() measures the move", () => {
  // 8 frames of 1 point x 2 channels: frame f is [f, 10 f].
  const data = Float32Array.from({ length: 16 }, (_, i) => (i % 2 === 0 ? i / 2 : 5 * i - 5));
  const out = timeShifted(data, 8);
  assert.deepEqual(Array.from(out), [1, 10, 2, 20, 3, 30, 4, 40, 5, 50, 6, 60, 7, 70, 7, 70]);
  assert.deepEqual(Array.from(timeShifted(data, 8, 0.5)).slice(0, 4), [4, 40, 5, 50]);
  assert.throws(
    () => timeShifted(data, 5),
    (e: Error) =>
      e instanceof RangeError && e.message === "Cannot shift sequence: 16 values do not make 5 frames of 2 or more",
  );
  assert.deepEqual(consistencyStats([0.7, 0.2, 0.1], [0.7, 0.2, 0.1]), { distance: 0, flipped: 0 });
  const moved = consistencyStats([0.6, 0.4], [0.3, 0.7]);
  assert.ok(Math.abs(moved.distance - 0.3) < 1e-12);
  assert.equal(moved.flipped, 1);
  assert.throws(() => consistencyStats([1, 0], [1, 0, 0]), TypeError);
});
