/**
 * Comparing routing policies so that the comparison cannot flatter one of them: every figure is measured on the same
 * evaluation rows, each policy's difference to a baseline (the best confidence rule) comes with a paired bootstrap
 * standard error (the same resampled rows for both), and the operating point is a threshold fixed beforehand (on
 * the DMD pool), never one picked on the evaluation rows. Pure: predictions, truth and scores in; figures out.
 *
 * @module
 */
import { rocAuc } from "./metrics.ts";
import { createPrng } from "./prng.ts";

/** Evaluation rows: each model's predicted class and the truth. */
export interface ComparisonInputs {
  truth: ArrayLike<number>;
  edgePred: ArrayLike<number>;
  cloudPred: ArrayLike<number>;
}

/** A policy: a score per row (offload the highest first) and, optionally, a threshold calibrated elsewhere. */
export interface ComparedPolicy {
  name: string;
  scores: ArrayLike<number>;
  /** Offload when score >= threshold: the operating point, chosen on the DMD pool. */
  threshold?: number;
}

/** The figures of one policy. */
export interface PolicyFigures {
  /** ROC AUC of the scores for edge/cloud disagreement. */
  disagreementAuc: number;
  /** Area under hybrid accuracy against offload rate (0..1). */
  accuracyArea: number;
  /** Hybrid accuracy at each of the requested offload rates. */
  accuracyAt: number[];
  /** Smallest offload rate reaching cloud-only accuracy (at most 1: offloading everything is the cloud). */
  rateToCloudAccuracy: number;
}

/** A difference to the baseline with its paired bootstrap standard error. */
export interface Difference {
  difference: number;
  standardError: number;
}

/** One policy's comparison. */
export interface PolicyComparison {
  name: string;
  figures: PolicyFigures;
  /** At its threshold, when it has one: offload rate and accuracy on the evaluation rows. */
  operatingPoint: { threshold: number; offloadRate: number; accuracy: number } | null;
  /** This policy minus the baseline, per figure (for the rate to cloud accuracy, lower is better). */
  vsBaseline: {
    disagreementAuc: Difference;
    accuracyArea: Difference;
    accuracyAt: Difference[];
    rateToCloudAccuracy: Difference;
  };
}

/** Options of {@link comparePolicies}. */
export interface ComparisonOptions {
  /** Offload rates for {@link PolicyFigures.accuracyAt}. @default [0.1, 0.2, 0.3, 0.5] */
  rates?: number[];
  /** Bootstrap resamples. @default 500 */
  resamples?: number;
  seed?: number;
}

function checkRows(inputs: ComparisonInputs, policies: ComparedPolicy[]): number {
  const n = inputs.truth.length;
  if (n === 0) throw new RangeError("Cannot compare policies: expected at least 1 row, got 0");
  if (inputs.edgePred.length !== n || inputs.cloudPred.length !== n) {
    throw new TypeError(`Cannot compare policies: expected ${n} edge and cloud predictions`);
  }
  for (const p of policies) {
    if (p.scores.length !== n) {
      throw new TypeError(`Cannot compare policies: ${p.name} has ${p.scores.length} scores, expected ${n}`);
    }
  }
  return n;
}

/**
 * A policy's figures on some rows (all of them, or a bootstrap resample with repeats).
 *
 * @param inputs predictions and truth
 * @param scores the policy's scores
 * @param rows row indices to measure on
 * @param rates offload rates for the accuracy points
 * @returns the figures
 */
export function policyFigures(
  inputs: ComparisonInputs,
  scores: ArrayLike<number>,
  rows: ArrayLike<number>,
  rates: number[],
): PolicyFigures {
  const n = rows.length;
  const order = Array.from({ length: n }, (_, j) => j).sort((a, b) =>
    scores[rows[b]] - scores[rows[a]] || rows[a] - rows[b] || a - b
  );
  let correct = 0;
  let cloudCorrect = 0;
  const disagree = new Float64Array(n);
  const s = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    const i = rows[j];
    if (inputs.edgePred[i] === inputs.truth[i]) correct++;
    if (inputs.cloudPred[i] === inputs.truth[i]) cloudCorrect++;
    disagree[j] = inputs.edgePred[i] === inputs.cloudPred[i] ? 0 : 1;
    s[j] = scores[i];
  }
  const acc = new Float64Array(n + 1);
  acc[0] = correct / n;
  let reach = -1;
  if (acc[0] >= cloudCorrect / n - 1e-12) reach = 0;
  for (let k = 0; k < n; k++) {
    const i = rows[order[k]];
    correct += (inputs.cloudPred[i] === inputs.truth[i] ? 1 : 0) - (inputs.edgePred[i] === inputs.truth[i] ? 1 : 0);
    acc[k + 1] = correct / n;
    if (reach < 0 && acc[k + 1] >= cloudCorrect / n - 1e-12) reach = k + 1;
  }
  let area = 0;
  for (let k = 0; k < n; k++) area += (acc[k] + acc[k + 1]) / (2 * n);
  return {
    disagreementAuc: rocAuc(s, disagree),
    accuracyArea: area,
    accuracyAt: rates.map((r) => acc[Math.round(r * n)]),
    rateToCloudAccuracy: (reach < 0 ? n : reach) / n,
  };
}

function sd(values: number[]): number {
  const v = values.filter((x) => !Number.isNaN(x));
  if (v.length < 2) return NaN;
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  return Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1));
}

/**
 * Compare policies against a baseline on the same rows, with paired bootstrap standard errors.
 *
 * @param inputs predictions and truth of the evaluation rows
 * @param policies the policies (the baseline among them)
 * @param baseline the baseline's name
 * @param options rates, resamples, seed
 * @returns one comparison per policy, in order
 * @throws RangeError when the baseline is not among the policies
 */
export function comparePolicies(
  inputs: ComparisonInputs,
  policies: ComparedPolicy[],
  baseline: string,
  options: ComparisonOptions = {},
): PolicyComparison[] {
  const n = checkRows(inputs, policies);
  const base = policies.find((p) => p.name === baseline);
  if (!base) throw new RangeError(`Cannot compare policies: no policy named "${baseline}"`);
  const rates = options.rates ?? [0.1, 0.2, 0.3, 0.5];
  const resamples = options.resamples ?? 500;
  const all = Int32Array.from({ length: n }, (_, i) => i);
  const point = policies.map((p) => policyFigures(inputs, p.scores, all, rates));
  const baseIndex = policies.indexOf(base);
  // Paired bootstrap: the same resampled rows for every policy, differences to the baseline per resample.
  const rng = createPrng(options.seed ?? 1);
  const diffs = policies.map(() => ({
    auc: [] as number[],
    area: [] as number[],
    at: rates.map(() => [] as number[]),
    reach: [] as number[],
  }));
  for (let b = 0; b < resamples; b++) {
    const rows = Int32Array.from({ length: n }, () => rng.int(n));
    const figs = policies.map((p) => policyFigures(inputs, p.scores, rows, rates));
    const bf = figs[baseIndex];
    figs.forEach((f, k) => {
      diffs[k].auc.push(f.disagreementAuc - bf.disagreementAuc);
      diffs[k].area.push(f.accuracyArea - bf.accuracyArea);
      f.accuracyAt.forEach((a, r) => diffs[k].at[r].push(a - bf.accuracyAt[r]));
      diffs[k].reach.push(f.rateToCloudAccuracy - bf.rateToCloudAccuracy);
    });
  }
  const bp = point[baseIndex];
  return policies.map((p, k) => {
    const f = point[k];
    let operatingPoint: PolicyComparison["operatingPoint"] = null;
    if (p.threshold !== undefined) {
      let off = 0;
      let correct = 0;
      for (let i = 0; i < n; i++) {
        const offload = p.scores[i] >= p.threshold;
        if (offload) off++;
        if ((offload ? inputs.cloudPred[i] : inputs.edgePred[i]) === inputs.truth[i]) correct++;
      }
      operatingPoint = { threshold: p.threshold, offloadRate: off / n, accuracy: correct / n };
    }
    return {
      name: p.name,
      figures: f,
      operatingPoint,
      vsBaseline: {
        disagreementAuc: { difference: f.disagreementAuc - bp.disagreementAuc, standardError: sd(diffs[k].auc) },
        accuracyArea: { difference: f.accuracyArea - bp.accuracyArea, standardError: sd(diffs[k].area) },
        accuracyAt: f.accuracyAt.map((a, r) => ({
          difference: a - bp.accuracyAt[r],
          standardError: sd(diffs[k].at[r]),
        })),
        rateToCloudAccuracy: {
          difference: f.rateToCloudAccuracy - bp.rateToCloudAccuracy,
          standardError: sd(diffs[k].reach),
        },
      },
    };
  });
}
