/**
 * Evaluation of multi-tier policies: accuracy against total cost, for a labelled set whose every item has every
 * tier's probabilities (tier 0 the edge model). A policy escalates at each hop the items whose score (a confidence
 * rule over the current tier's answer, a seeded random score, or given scores such as the DMD switcher's at hop 0)
 * is among the highest `rate` of those that reached the hop; the answer is the highest tier reached. Sweeping the
 * rates of every hop on a grid gives each policy's points; its frontier keeps the points no cheaper point beats.
 *
 * The figures are the two-tier evaluation's (switcher/metrics.ts), in cost instead of offload rate: each point's
 * accuracy with its standard error; per policy the area under the frontier over normalised cost (0: the edge alone,
 * 1: every tier for every item), the least cost that matches the best single tier's accuracy, and the paired
 * difference with that tier at that point. Baselines: each tier alone (edge + that tier), random, and the oracle
 * (each item climbs until a tier is right, or to the top).
 *
 * Cost of a request: the sum of the costs of the tiers it reached (the edge always runs). Pure: numbers in, numbers
 * out.
 *
 * @module
 */
import { thresholdForOffloadRate } from "./calibration.ts";
import { probabilityStats } from "./features.ts";
import { accuracyStandardError, pairedDifference } from "./metrics.ts";
import { createPrng } from "./prng.ts";
import { CONFIDENCE_RULES, type ConfidenceRule, ruleScore } from "./rules.ts";

/** The labelled items, each tier's probabilities and cost per call. */
export interface CascadeData {
  /** True class index per item. */
  truth: ArrayLike<number>;
  /** Tier 0 is the edge model; each tier's probabilities per item, and its cost per call (ms or price). */
  tiers: { name: string; probs: ArrayLike<number>[]; cost: number }[];
}

/** One operating point of a policy. */
export interface CascadePoint {
  /** Escalation rate per hop, among the items that reached it. */
  rates: number[];
  /** Mean cost per request. */
  cost: number;
  /** Cost normalised: 0 the edge alone, 1 every tier for every item. */
  normalisedCost: number;
  accuracy: number;
  standardError: number;
  /** Share of the items answered by each tier. */
  share: number[];
}

/** A policy's points, frontier and summary figures. */
export interface CascadePolicy {
  name: string;
  points: CascadePoint[];
  frontier: CascadePoint[];
  /** Area under the frontier (a step function) over normalised cost in [0, 1]. */
  area: number;
  /** The cheapest frontier point whose accuracy reaches the best single tier's, with the paired difference. */
  match: { point: CascadePoint; difference: number; standardError: number } | null;
}

/** What {@link evaluateCascade} returns. */
export interface CascadeEvaluation {
  n: number;
  /** Each tier alone (edge + that tier; the edge alone for tier 0). */
  tiers: { name: string; accuracy: number; standardError: number; cost: number }[];
  /** The tier whose accuracy the policies are asked to match. */
  best: string;
  oracle: { accuracy: number; standardError: number; cost: number };
  policies: CascadePolicy[];
}

/** Options of {@link evaluateCascade}. */
export interface CascadeEvalOptions {
  /** Grid steps per hop (rates 0, 1/steps, ..., 1); the grid has (steps + 1)^hops points. @default 10 */
  steps?: number;
  /** Seed of the random policy. @default 1 */
  seed?: number;
  /** Scores to use at hop 0 instead of a rule, by policy name (e.g. the DMD switcher's); later hops use max_prob. */
  hop0Scores?: Record<string, ArrayLike<number>>;
}

function top(probs: ArrayLike<number>): number {
  let t = 0;
  for (let i = 1; i < probs.length; i++) if (probs[i] > probs[t]) t = i;
  return t;
}

/**
 * Evaluate the multi-tier policies.
 *
 * @param data labels, the tiers' probabilities and costs
 * @param options grid, seed, hop-0 scores
 * @returns baselines, oracle and each policy's points and figures
 * @throws RangeError with fewer than 2 tiers, no items, ragged inputs, or a grid too large (over 20,000 points)
 */
export function evaluateCascade(data: CascadeData, options: CascadeEvalOptions = {}): CascadeEvaluation {
  const n = data.truth.length;
  const tiers = data.tiers;
  if (tiers.length < 2 || n === 0) throw new RangeError("Cannot evaluate tiers: expected 2 or more tiers and items");
  for (const t of tiers) {
    if (t.probs.length !== n) {
      throw new RangeError(`Cannot evaluate tiers: tier ${t.name} has ${t.probs.length} outputs for ${n} items`);
    }
  }
  const hops = tiers.length - 1;
  const steps = options.steps ?? 10;
  if ((steps + 1) ** hops > 20_000) {
    throw new RangeError(`Cannot evaluate tiers: a grid of ${(steps + 1) ** hops} points; lower the steps`);
  }
  const correct = tiers.map((t) => Float64Array.from(t.probs, (p, i) => (top(p) === data.truth[i] ? 1 : 0)));
  const allCost = tiers.reduce((a, t) => a + t.cost, 0);
  const c0 = tiers[0].cost;
  const normalise = (cost: number) => (allCost > c0 ? (cost - c0) / (allCost - c0) : 0);
  const mean = (v: ArrayLike<number>) => {
    let sum = 0;
    for (let i = 0; i < v.length; i++) sum += v[i];
    return sum / n;
  };

  const single = tiers.map((t, k) => {
    const accuracy = mean(correct[k]);
    return {
      name: t.name,
      accuracy,
      standardError: accuracyStandardError(accuracy, n),
      cost: k === 0 ? c0 : c0 + t.cost,
    };
  });
  const bestTier = single.reduce((b, t, k) => (t.accuracy > single[b].accuracy ? k : b), 0);

  // The oracle climbs until a tier is right.
  let oracleCost = 0;
  const oracleCorrect = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let k = 0;
    oracleCost += c0;
    while (!correct[k][i] && k < hops) oracleCost += tiers[++k].cost;
    oracleCorrect[i] = correct[k][i];
  }
  const oracleAccuracy = mean(oracleCorrect);

  /** Simulate one setting: each hop's scores (per item) and rates; returns the point and per-item correctness. */
  function simulate(scores: ArrayLike<number>[], rates: number[]): { point: CascadePoint; right: Float64Array } {
    let reached = Array.from({ length: n }, (_, i) => i);
    const final = new Int32Array(n);
    let cost = c0 * n;
    for (let h = 0; h < hops && reached.length > 0; h++) {
      const s = reached.map((i) => scores[h][i]);
      const threshold = thresholdForOffloadRate(s, rates[h]);
      const up = reached.filter((_, j) => s[j] >= threshold && rates[h] > 0);
      for (const i of up) final[i] = h + 1;
      cost += up.length * tiers[h + 1].cost;
      reached = up;
    }
    const right = Float64Array.from(final, (k, i) => correct[k][i]);
    const accuracy = mean(right);
    const share = tiers.map((_, k) => final.filter((f) => f === k).length / n);
    return {
      point: {
        rates,
        cost: cost / n,
        normalisedCost: normalise(cost / n),
        accuracy,
        standardError: accuracyStandardError(accuracy, n),
        share,
      },
      right,
    };
  }

  const grid: number[][] = [];
  const walk = (prefix: number[]) => {
    if (prefix.length === hops) return void grid.push(prefix);
    for (let k = 0; k <= steps; k++) walk([...prefix, k / steps]);
  };
  walk([]);

  function policy(name: string, scores: ArrayLike<number>[]): CascadePolicy {
    const runs = grid.map((rates) => simulate(scores, rates));
    const points = runs.map((r) => r.point);
    const order = runs.map((_, i) => i).sort((a, b) =>
      points[a].cost - points[b].cost || points[b].accuracy - points[a].accuracy
    );
    const frontierIdx: number[] = [];
    for (const i of order) {
      const last = frontierIdx.at(-1);
      if (last === undefined || points[i].accuracy > points[last].accuracy) frontierIdx.push(i);
    }
    const frontier = frontierIdx.map((i) => points[i]);
    let area = 0;
    frontier.forEach((p, j) => {
      const until = j + 1 < frontier.length ? frontier[j + 1].normalisedCost : 1;
      area += p.accuracy * Math.max(0, Math.min(1, until) - Math.max(0, p.normalisedCost));
    });
    const target = single[bestTier].accuracy;
    const at = frontierIdx.find((i) => points[i].accuracy >= target);
    const match = at === undefined ? null : (() => {
      const d = pairedDifference(runs[at].right, correct[bestTier]);
      return { point: points[at], difference: d.difference, standardError: d.standardError };
    })();
    return { name, points, frontier, area, match };
  }

  const ruleScores = (rule: ConfidenceRule) =>
    tiers.slice(0, hops).map((t) =>
      Float64Array.from(t.probs, (p) => {
        const s = probabilityStats(p);
        return ruleScore(rule, [s.pMax, s.margin, s.entropy]);
      })
    );
  const policies = CONFIDENCE_RULES.map((rule) => policy(rule, ruleScores(rule)));
  const rng = createPrng(options.seed ?? 1);
  policies.push(policy("random", tiers.slice(0, hops).map(() => Float64Array.from({ length: n }, () => rng.next()))));
  for (const [name, hop0] of Object.entries(options.hop0Scores ?? {})) {
    if (hop0.length !== n) {
      throw new RangeError(`Cannot evaluate tiers: ${name} has ${hop0.length} scores for ${n} items`);
    }
    policies.push(policy(name, [hop0, ...ruleScores("max_prob").slice(1)]));
  }
  return {
    n,
    tiers: single,
    best: single[bestTier].name,
    oracle: { accuracy: oracleAccuracy, standardError: accuracyStandardError(oracleAccuracy, n), cost: oracleCost / n },
    policies,
  };
}
