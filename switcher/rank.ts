/**
 * The rank average of the confidence rules: each request scored by the mean, over the rules, of where its rule score
 * falls among the pool's (the empirical CDF, mid-rank at ties). It reads the rules' own confidences and learns
 * nothing from the labels: the pool's quantiles of each rule score are its only fit, taken from unlabeled traffic.
 * Where the rules are near-equal (which one ranks best moves from one set of subjects to the next), the average does
 * not have to guess which one: on any rows its AUC is typically close to the best rule's.
 *
 * It is served as an ordinary ONNX switcher: each rule's CDF is piecewise linear between the quantiles (one ReLU per
 * knot), the output is the mean of the CDFs through the network's sigmoid, which keeps the order. Knots closer than
 * {@link MIN_KNOT_GAP} on the rule's scale are merged, so no segment is so steep that float32 rounding in the graph
 * reorders requests. Pure: numbers in, numbers out.
 *
 * @module
 */
import type { DenseLayer, MlpModel } from "./mlp.ts";
import { type ConfidenceRule, ruleColumn, ruleScore } from "./rules.ts";

/** Smallest gap between two knots of one rule's CDF, on the rule's scale (scores in [0, 1]). */
export const MIN_KNOT_GAP = 1e-3;

/** One rule's CDF as knots: rule scores (ascending) and the CDF there. */
export interface RuleCdf {
  rule: ConfidenceRule;
  at: Float64Array;
  level: Float64Array;
}

/**
 * The empirical CDF of one rule's scores, at up to `knots + 1` quantiles.
 *
 * @param rule the rule
 * @param rows full feature vectors (unlabeled traffic)
 * @param knots quantile intervals (the CDF is piecewise linear between them)
 * @returns the knots, at least {@link MIN_KNOT_GAP} apart, with the mid-rank CDF at each
 * @throws RangeError without rows or with fewer than 1 interval
 */
export function ruleCdf(rule: ConfidenceRule, rows: ArrayLike<number>[], knots: number): RuleCdf {
  if (rows.length === 0) throw new RangeError("Cannot fit a rank average: expected at least 1 row, got 0");
  if (!Number.isInteger(knots) || knots < 1) {
    throw new RangeError(`Cannot fit a rank average: knots must be an integer >= 1, got ${knots}`);
  }
  const sorted = Float64Array.from(rows, (r) => Math.fround(ruleScore(rule, r))).sort();
  const n = sorted.length;
  const at: number[] = [];
  for (let k = 0; k <= knots; k++) {
    const v = sorted[Math.round((k * (n - 1)) / knots)];
    if (at.length === 0 || v - at[at.length - 1] >= MIN_KNOT_GAP) at.push(v);
  }
  // The CDF at v, mid-rank: (rows below v + rows at or below v) / 2n.
  const below = (v: number, strict: boolean) => {
    let lo = 0;
    let hi = n;
    while (lo < hi) {
      const m = (lo + hi) >> 1;
      if (strict ? sorted[m] < v : sorted[m] <= v) lo = m + 1;
      else hi = m;
    }
    return lo;
  };
  return {
    rule,
    at: Float64Array.from(at),
    level: Float64Array.from(at, (v) => (below(v, true) + below(v, false)) / (2 * n)),
  };
}

/**
 * A piecewise-linear CDF at one score: flat below the first knot and above the last.
 *
 * @param cdf the knots
 * @param score a rule score
 * @returns the CDF there, in [0, 1]
 */
export function cdfAt(cdf: RuleCdf, score: number): number {
  const { at, level } = cdf;
  if (score <= at[0]) return level[0];
  const last = at.length - 1;
  if (score >= at[last]) return level[last];
  let j = 0;
  while (at[j + 1] < score) j++;
  return level[j] + ((level[j + 1] - level[j]) * (score - at[j])) / (at[j + 1] - at[j]);
}

/**
 * The rank average as a network on the three confidence columns (max probability, margin, entropy; a rule not averaged
 * has no unit on its column): one hidden ReLU per knot reading its rule's score, the output the mean of the
 * piecewise-linear CDFs (before the sigmoid).
 *
 * @param cdfs one CDF per rule
 * @returns an {@link MlpModel} whose input is the confidence columns 0..2, unstandardised
 */
export function rankAverageModel(cdfs: RuleCdf[]): MlpModel {
  if (cdfs.length === 0) throw new RangeError("Cannot build a rank average: expected at least 1 rule");
  const inputs = 3;
  const units: { column: number; sign: number; offset: number; out: number }[] = [];
  let bias = 0;
  for (const cdf of cdfs) {
    const column = ruleColumn(cdf.rule);
    // Every rule score is sign * feature + (1 or 0): 1 - p for max_prob and margin, the entropy itself.
    const probe = new Float64Array(inputs);
    const zero = ruleScore(cdf.rule, probe);
    probe[column] = 1;
    const sign = ruleScore(cdf.rule, probe) - zero;
    const { at, level } = cdf;
    bias += level[0] / cdfs.length;
    let before = 0;
    for (let j = 0; j < at.length; j++) {
      const slope = j + 1 < at.length ? (level[j + 1] - level[j]) / (at[j + 1] - at[j]) : 0;
      if (slope !== before) units.push({ column, sign, offset: zero - at[j], out: (slope - before) / cdfs.length });
      before = slope;
    }
  }
  if (units.length === 0) units.push({ column: 0, sign: 0, offset: 0, out: 0 });
  const hidden: DenseLayer = {
    inSize: inputs,
    outSize: units.length,
    weight: new Float32Array(units.length * inputs),
    bias: Float32Array.from(units, (u) => u.offset),
  };
  units.forEach((u, i) => (hidden.weight[i * inputs + u.column] = u.sign));
  const output: DenseLayer = {
    inSize: units.length,
    outSize: 1,
    weight: Float32Array.from(units, (u) => u.out),
    bias: Float32Array.of(bias),
  };
  return { mean: new Float32Array(inputs), std: new Float32Array(inputs).fill(1), layers: [hidden, output] };
}

/**
 * Fit the rank average of some rules on unlabeled rows.
 *
 * @param rules the rules averaged
 * @param rows full feature vectors
 * @param knots quantile intervals per rule
 * @returns the network ({@link rankAverageModel}) and the CDFs behind it
 */
export function fitRankAverage(
  rules: readonly ConfidenceRule[],
  rows: ArrayLike<number>[],
  knots: number,
): { model: MlpModel; cdfs: RuleCdf[] } {
  const cdfs = rules.map((rule) => ruleCdf(rule, rows, knots));
  return { model: rankAverageModel(cdfs), cdfs };
}
