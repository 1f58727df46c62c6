/**
 * Fitting a chosen candidate on the whole DMD pool and calibrating its threshold; scoring and exporting what was
 * fitted. Pure: numbers in, numbers out.
 *
 * @module
 */
import { thresholdForAgreement, thresholdForOffloadRate } from "./calibration.ts";
import { allColumns, type Candidate, derivePairs, fitTransform, labelPool, RANK_COLUMNS } from "./candidates.ts";
import { type DmdEvaluation, type Pair, trainDmdSwitcher } from "./dmd.ts";
import { applyEmbeddingTransform, type EmbeddingTransform } from "./embedding_transform.ts";
import { featureColumns, selectColumns } from "./features.ts";
import { type MlpModel, predictMlp } from "./mlp.ts";
import { exportSwitcherOnnx } from "./onnx_writer.ts";
import { fitRankAverage } from "./rank.ts";
import { ruleColumn, ruleScores } from "./rules.ts";

/** Networks averaged in a fitted MLP switcher (see {@link FitOptions.ensemble}). */
export const DEFAULT_ENSEMBLE = 5;

/** Options of {@link fitCandidate} (and of selection). */
export interface FitOptions {
  /** Which DMD label the MLPs learn. @default "soft" */
  target?: "hard" | "soft";
  seed?: number;
  /** MLP epochs. @default 60 */
  epochs?: number;
  /**
   * Networks averaged in the fitted MLP switcher (trained with seeds `seed`, `seed + 1`, ...; one network in the end,
   * `mergeMlps`). Cross-validation scores single networks; the installed one averages several, so it is not a lucky
   * or unlucky draw of the trainer. @default 5
   */
  ensemble?: number;
}

/** A candidate fitted on the whole pool, ready to export: a network reading some columns, and its threshold. */
export interface FittedSwitcher {
  candidate: Candidate;
  /**
   * The network (null for a rule: it is published as a rule release, no model file; for the rules' rank average a
   * fixed network built from the pool's quantiles, switcher/rank.ts).
   */
  model: MlpModel | null;
  /** Columns the network reads: of the full feature vector, or of the transform's output when there is one. */
  columns: number[];
  /** The embedding transform in front of the network, if any. */
  transform: EmbeddingTransform | null;
  threshold: number;
  calibration: Record<string, number>;
  /** The MLP's held-out figures from its own fit (absent for a rule, which is not trained). */
  heldOut: DmdEvaluation | null;
  bestEpoch: number | null;
}

/** How to calibrate: an offload rate, or an agreement with the cloud. */
export type Calibrate = { offloadRate: number } | { agreement: number };

/**
 * Scores of a fitted switcher.
 *
 * @param fitted the switcher
 * @param rows full feature vectors
 * @returns one score per row, as the exported ONNX computes it
 */
export function scoreFitted(fitted: FittedSwitcher, rows: ArrayLike<number>[]): Float32Array {
  if (fitted.candidate.kind === "rule" || !fitted.model) {
    if (fitted.candidate.kind !== "rule") throw new TypeError(`Cannot score ${fitted.candidate.name}: no network`);
    return Float32Array.from(ruleScores(fitted.candidate.rule, rows));
  }
  const x = new Float32Array(rows.length * fitted.columns.length);
  rows.forEach((r, i) => {
    const v = fitted.transform ? applyEmbeddingTransform(fitted.transform, r) : r;
    x.set(selectColumns(v, fitted.columns), i * fitted.columns.length);
  });
  return predictMlp(fitted.model, x, rows.length);
}

/**
 * Export a fitted switcher as ONNX (its transform, if any, in the graph).
 *
 * @param fitted the switcher
 * @param options `version` and `features` (names of the full feature vector)
 * @returns the ONNX bytes
 */
export function exportFitted(fitted: FittedSwitcher, options: { version: string; features: string[] }): Uint8Array {
  if (!fitted.model) throw new TypeError(`Cannot export ${fitted.candidate.name}: a rule has no network`);
  return exportSwitcherOnnx(fitted.model, {
    ...options,
    ...(fitted.transform ? { transform: fitted.transform } : { columns: fitted.columns }),
  });
}

/**
 * Fit one candidate on the whole pool and calibrate its threshold: an MLP through the DMD trainer (threshold on its
 * held-out pairs), a rule or the rules' rank average on every pool row (they learn nothing from the labels, so no
 * pair needs holding out).
 *
 * @param candidate the candidate
 * @param pairs the pool
 * @param options target, seed, epochs and calibration (default: offload rate 0.2)
 * @returns the fitted switcher
 */
export function fitCandidate(
  candidate: Candidate,
  pairs: Pair[],
  options: FitOptions & { calibrate?: Calibrate } = {},
): FittedSwitcher {
  const calibrate = options.calibrate ?? { offloadRate: 0.2 };
  if (candidate.kind === "mlp") {
    const featureCount = pairs[0]?.features.length ?? 0;
    const transform = fitTransform(candidate, pairs.map((p) => p.features), options.seed ?? 1);
    const rows = transform ? derivePairs(pairs, transform) : pairs;
    const result = trainDmdSwitcher(rows, {
      target: options.target,
      seed: options.seed,
      calibrate,
      columns: transform ? allColumns(rows) : featureColumns(candidate.set, featureCount),
      train: { hidden: candidate.hidden, l2: candidate.l2, epochs: options.epochs ?? 60 },
      ensemble: options.ensemble ?? DEFAULT_ENSEMBLE,
    });
    return {
      candidate,
      model: result.model,
      columns: result.columns,
      transform,
      threshold: result.threshold,
      calibration: result.calibration,
      heldOut: result.evaluation,
      bestEpoch: result.bestEpoch,
    };
  }
  const pool = labelPool(pairs);
  // A rule, or the rules' rank average (fitted on the pool's rule scores, no label): neither learns from the labels,
  // so every pool row calibrates the threshold.
  const fitted: FittedSwitcher = {
    candidate,
    model: candidate.kind === "rank"
      ? fitRankAverage(candidate.rules, pool.pairs.map((p) => p.features), candidate.knots).model
      : null,
    columns: candidate.kind === "rank" ? RANK_COLUMNS : [ruleColumn(candidate.rule)],
    transform: null,
    threshold: 0,
    calibration: {},
    heldOut: null,
    bestEpoch: null,
  };
  const scores = scoreFitted(fitted, pool.pairs.map((p) => p.features));
  if ("offloadRate" in calibrate) {
    fitted.threshold = thresholdForOffloadRate(scores, calibrate.offloadRate);
    fitted.calibration = { ...calibrate, poolOffloadRate: calibrate.offloadRate };
  } else {
    const t = thresholdForAgreement(scores, pool.disagree, calibrate.agreement);
    fitted.threshold = t.threshold;
    fitted.calibration = { ...calibrate, poolOffloadRate: t.offloadRate };
  }
  return fitted;
}
