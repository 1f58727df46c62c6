/**
 * One DMD training run (Wei et al. 2024, section 3), pure: pairs of edge and cloud outputs in, a calibrated switcher
 * and its held-out figures out. No human label is read.
 *
 * pairs -> DMD labels (hard or soft) -> weights -> split train / held-out -> train the MLP -> calibrate the
 * threshold on held-out pairs -> compare with the max-probability baseline on the same held-out pairs.
 *
 * @module
 */
import { thresholdForAgreement, thresholdForOffloadRate } from "./calibration.ts";
import { dmdLabel } from "./dmd_labels.ts";
import { probabilityStats, selectColumns } from "./features.ts";
import { rocAuc } from "./metrics.ts";
import { mergeMlps, type MlpModel, predictMlp, trainMlp, type TrainOptions } from "./mlp.ts";
import { createPrng } from "./prng.ts";

/** One pair: what the edge knew (features, probabilities) and what the cloud answered. */
export interface Pair {
  features: Float32Array;
  edgeProbs: ArrayLike<number>;
  cloudProbs: ArrayLike<number>;
  /** Sample weight (e.g. inverse propensity); default 1. */
  weight?: number;
}

/** Options of {@link trainDmdSwitcher}. */
export interface DmdOptions {
  /** Which DMD label to learn. @default "soft" */
  target?: "hard" | "soft";
  /** Calibrate to this offload rate, or to this agreement with the cloud. @default { offloadRate: 0.2 } */
  calibrate?: { offloadRate: number } | { agreement: number };
  /** Fraction of pairs held out for calibration and evaluation. @default 0.25 */
  holdoutFraction?: number;
  seed?: number;
  /** Feature columns the switcher reads (default: all). */
  columns?: number[];
  /** MLP settings. */
  train?: Omit<TrainOptions, "seed">;
  /**
   * Networks trained (seeds `seed`, `seed + 1`, ...) on the same rows and merged into one whose logit is their mean
   * (`mergeMlps`): one network is one draw of a trainer whose draws differ, an average of several is steadier.
   * @default 1
   */
  ensemble?: number;
}

/** Held-out figures of a switcher against the max-probability baseline, on the same pairs. */
export interface DmdEvaluation {
  pairs: number;
  /** Fraction of held-out pairs where edge and cloud disagree. */
  disagreementRate: number;
  /** AUC of predicting disagreement: the switcher, and 1 - max probability. */
  switcherAuc: number;
  maxProbabilityAuc: number;
  /** Agreement of the hybrid with the cloud at the calibrated offload rate: switcher vs baseline. */
  offloadRate: number;
  switcherAgreement: number;
  maxProbabilityAgreement: number;
}

/** What a DMD run produced. */
export interface DmdResult {
  model: MlpModel;
  /** Feature columns the model reads. */
  columns: number[];
  threshold: number;
  calibration: Record<string, number>;
  evaluation: DmdEvaluation;
  counts: { pairs: number; train: number; holdout: number; skipped: number };
  bestEpoch: number;
}

/** Agreement with the cloud when the top `k` scores are offloaded. */
function agreementAt(scores: ArrayLike<number>, disagree: ArrayLike<number>, rate: number): number {
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
  const k = Math.round(rate * n);
  let kept = 0;
  for (let j = k; j < n; j++) kept += disagree[order[j]];
  return 1 - kept / n;
}

/**
 * Train and calibrate a switcher from pairs.
 *
 * @param pairs edge features and probabilities with cloud probabilities
 * @param options target, calibration, hold-out, seed, MLP settings
 * @returns the switcher, its threshold and held-out figures
 * @throws RangeError when too few usable pairs remain
 */
export function trainDmdSwitcher(pairs: Pair[], options: DmdOptions = {}): DmdResult {
  const target = options.target ?? "soft";
  const seed = options.seed ?? 1;
  const usable: { pair: Pair; hard: number; soft: number }[] = [];
  for (const pair of pairs) {
    const label = dmdLabel(pair.edgeProbs, pair.cloudProbs);
    if (label) usable.push({ pair, hard: label.hard, soft: label.soft });
  }
  if (usable.length < 20) {
    throw new RangeError(`Cannot train switcher: expected at least 20 usable pairs, got ${usable.length}`);
  }
  const columns = options.columns ?? Array.from({ length: usable[0].pair.features.length }, (_, i) => i);
  const f = columns.length;
  const rng = createPrng(seed);
  const order = rng.shuffle(Array.from({ length: usable.length }, (_, i) => i));
  const nHold = Math.max(10, Math.round(usable.length * (options.holdoutFraction ?? 0.25)));
  const hold = order.slice(0, nHold).map((i) => usable[i]);
  const train = order.slice(nHold).map((i) => usable[i]);

  const pack = (rows: typeof usable) => {
    const x = new Float32Array(rows.length * f);
    const full = usable[0].pair.features.length;
    rows.forEach((r, i) => {
      if (r.pair.features.length !== full) {
        throw new TypeError(`Cannot train switcher: expected ${full} features per pair, got ${r.pair.features.length}`);
      }
      x.set(selectColumns(r.pair.features, columns), i * f);
    });
    return x;
  };
  const data = {
    x: pack(train),
    n: train.length,
    f,
    targets: train.map((r) => (target === "hard" ? r.hard : r.soft)),
    weights: train.map((r) => r.pair.weight ?? 1),
  };
  const members = Array.from(
    { length: Math.max(1, Math.floor(options.ensemble ?? 1)) },
    (_, m) => trainMlp(data, { ...options.train, seed: seed + m }),
  );
  const result = { model: mergeMlps(members.map((m) => m.model)), bestEpoch: members[0].bestEpoch };

  const holdScores = predictMlp(result.model, pack(hold), hold.length);
  const disagree = hold.map((r) => r.hard);
  const calibrate = options.calibrate ?? { offloadRate: 0.2 };
  let threshold: number;
  let rate: number;
  if ("offloadRate" in calibrate) {
    threshold = thresholdForOffloadRate(holdScores, calibrate.offloadRate);
    rate = calibrate.offloadRate;
  } else {
    const t = thresholdForAgreement(holdScores, disagree, calibrate.agreement);
    threshold = t.threshold;
    rate = t.offloadRate;
  }
  const baseline = hold.map((r) => 1 - probabilityStats(r.pair.edgeProbs).pMax);
  return {
    model: result.model,
    columns,
    threshold,
    calibration: { ...calibrate, heldOutOffloadRate: rate },
    evaluation: {
      pairs: hold.length,
      disagreementRate: disagree.reduce((a, b) => a + b, 0) / hold.length,
      switcherAuc: rocAuc(holdScores, disagree),
      maxProbabilityAuc: rocAuc(baseline, disagree),
      offloadRate: rate,
      switcherAgreement: agreementAt(holdScores, disagree, rate),
      maxProbabilityAgreement: agreementAt(baseline, disagree, rate),
    },
    counts: { pairs: pairs.length, train: train.length, holdout: hold.length, skipped: pairs.length - usable.length },
    bestEpoch: result.bestEpoch,
  };
}
