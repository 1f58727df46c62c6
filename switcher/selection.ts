/**
 * Choosing the switcher to install, so that it cannot do worse than a confidence rule: every candidate (each
 * confidence rule, MLPs on growing feature sets) is scored by cross-validated ROC AUC for edge/cloud disagreement on
 * the DMD pool, with folds grouped by what the traffic carries (switcher/folds.ts), and the one-standard-error rule
 * picks the simplest candidate whose mean fold AUC is within one standard error of the best. A rule is the simplest
 * candidate, so a learned switcher is installed only when it beats every rule by more than the noise of the folds.
 * Pure: pairs in, a fitted release and the figures behind the choice out.
 *
 * Why grouped folds: a switcher that reads the edge embedding can learn the subjects (or clients, or cameras) of its
 * pool, and a random split then rewards it for recognising them; held-out groups measure what carries over to new
 * ones.
 *
 * @module
 */
import { thresholdForAgreement, thresholdForOffloadRate } from "./calibration.ts";
import { type DmdEvaluation, type Pair, trainDmdSwitcher } from "./dmd.ts";
import { dmdLabel } from "./dmd_labels.ts";
import { applyEmbeddingTransform, type EmbeddingTransform, fitEmbeddingTransform } from "./embedding_transform.ts";
import { BASE_FEATURES, featureColumns, type FeatureSet, selectColumns } from "./features.ts";
import { type FoldOptions, type Folds, groupedFolds } from "./folds.ts";
import { type FoldGateVerdict, gateOnFolds } from "./gate.ts";
import { weightedAuc } from "./metrics.ts";
import { type MlpModel, predictMlp, trainMlp } from "./mlp.ts";
import { exportSwitcherOnnx } from "./onnx_writer.ts";
import { createPrng } from "./prng.ts";
import { type ConfidenceRule, ruleColumn, ruleScores } from "./rules.ts";

/** A confidence rule as a candidate. */
export interface RuleCandidate {
  kind: "rule";
  /** `rule:<rule>`, the name the release and the evaluation carry. */
  name: string;
  rule: ConfidenceRule;
  /** Order for the one-standard-error rule: lower is simpler. */
  complexity: number;
}

/** An MLP on a feature set as a candidate. */
export interface MlpCandidate {
  kind: "mlp";
  /** `mlp:<feature set>`. */
  name: string;
  set: FeatureSet;
  complexity: number;
  hidden: number[];
  /** L2 penalty: stronger for wider inputs (the embedding). */
  l2: number;
  /** Read the embedding through a transform fitted on the training rows: novelty and this many components. */
  embedding?: { components: number };
}

/** A candidate switcher. */
export type Candidate = RuleCandidate | MlpCandidate;

/** The candidates `deno task dmd` and retraining choose from, simplest first. */
export const DEFAULT_CANDIDATES: readonly Candidate[] = [
  { kind: "rule", name: "rule:max_prob", rule: "max_prob", complexity: 0 },
  { kind: "rule", name: "rule:margin", rule: "margin", complexity: 0 },
  { kind: "rule", name: "rule:entropy", rule: "entropy", complexity: 0 },
  { kind: "mlp", name: "mlp:confidence", set: "confidence", complexity: 1, hidden: [16], l2: 1e-4 },
  { kind: "mlp", name: "mlp:confidence+quality", set: "confidence+quality", complexity: 2, hidden: [16], l2: 1e-4 },
  {
    kind: "mlp",
    name: "mlp:confidence+quality+novelty",
    set: "confidence+quality+novelty",
    complexity: 3,
    hidden: [16],
    l2: 1e-4,
    embedding: { components: 0 },
  },
  {
    kind: "mlp",
    name: "mlp:confidence+quality+pca",
    set: "confidence+quality+pca",
    complexity: 4,
    hidden: [16],
    l2: 1e-3,
    embedding: { components: 8 },
  },
  { kind: "mlp", name: "mlp:all", set: "all", complexity: 5, hidden: [32], l2: 1e-3 },
];

/**
 * The candidates restricted to some feature sets (the rules always stay: they are the bar).
 *
 * @param sets feature sets allowed for MLP candidates
 * @returns the rules and the MLPs on those sets
 */
export function candidatesFor(sets: readonly FeatureSet[]): Candidate[] {
  return DEFAULT_CANDIDATES.filter((c) => c.kind === "rule" || sets.includes(c.set));
}

/** One candidate's cross-validated figures. */
export interface CandidateCv {
  candidate: Candidate;
  /** Weighted disagreement AUC on each held-out fold (NaN where a fold lacks agreements or disagreements). */
  foldAuc: number[];
  /** Mean over the folds with a number, and its standard error (sd / sqrt(folds)). */
  mean: number;
  standardError: number;
  /** Out-of-fold scores: each row scored by the candidate trained without its fold. */
  oof: Float64Array;
}

/** Options of {@link crossValidate} and {@link selectSwitcher}. */
export interface SelectionOptions {
  /** Which DMD label the MLPs learn. @default "soft" */
  target?: "hard" | "soft";
  seed?: number;
  /** MLP epochs. @default 60 */
  epochs?: number;
  /** The candidates. @default DEFAULT_CANDIDATES */
  candidates?: readonly Candidate[];
  /** Cross-validate on a seeded sample of at most this many pairs (the fit reads them all). @default 20000 */
  maxCrossValidationRows?: number;
}

/** DMD pool rows with their labels, as selection uses them. */
export interface LabelledPool {
  pairs: Pair[];
  /** Index of each usable pair in the input. */
  index: number[];
  disagree: Float64Array;
  soft: Float64Array;
  weight: Float64Array;
}

/**
 * Keep the pairs that have a DMD label.
 *
 * @param pairs the pool
 * @returns the usable pairs with hard and soft labels and weights
 */
export function labelPool(pairs: Pair[]): LabelledPool {
  const index: number[] = [];
  const disagree: number[] = [];
  const soft: number[] = [];
  for (let i = 0; i < pairs.length; i++) {
    const label = dmdLabel(pairs[i].edgeProbs, pairs[i].cloudProbs);
    if (!label) continue;
    index.push(i);
    disagree.push(label.hard);
    soft.push(label.soft);
  }
  const kept = index.map((i) => pairs[i]);
  return {
    pairs: kept,
    index,
    disagree: Float64Array.from(disagree),
    soft: Float64Array.from(soft),
    weight: Float64Array.from(kept, (p) => p.weight ?? 1),
  };
}

function pack(pairs: Pair[], rows: number[], columns: number[]): Float32Array {
  const x = new Float32Array(rows.length * columns.length);
  rows.forEach((r, i) => x.set(selectColumns(pairs[r].features, columns), i * columns.length));
  return x;
}

function meanAndSe(values: number[]): { mean: number; standardError: number } {
  const v = values.filter((x) => !Number.isNaN(x));
  if (v.length === 0) return { mean: NaN, standardError: NaN };
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  const sd = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / (v.length - 1)) : 0;
  return { mean, standardError: sd / Math.sqrt(v.length) };
}

/**
 * Weighted disagreement AUC of some scores on each fold.
 *
 * @param scores one score per pool row
 * @param pool the labelled pool
 * @param folds its folds
 * @returns one AUC per fold (NaN where the fold has one class only)
 */
export function foldAucs(scores: ArrayLike<number>, pool: LabelledPool, folds: Folds): number[] {
  return Array.from({ length: folds.k }, (_, f) => {
    const rows: number[] = [];
    for (let i = 0; i < folds.fold.length; i++) if (folds.fold[i] === f) rows.push(i);
    return weightedAuc(
      rows.map((i) => scores[i]),
      rows.map((i) => pool.disagree[i]),
      rows.map((i) => pool.weight[i]),
    );
  });
}

/** Candidates that can read this feature vector: those reading the embedding need one. */
function usableCandidates(candidates: readonly Candidate[], featureCount: number): Candidate[] {
  return candidates.filter((c) => c.kind === "rule" || !c.embedding || featureCount > BASE_FEATURES.length);
}

function fitTransform(candidate: MlpCandidate, rows: Float32Array[], seed: number): EmbeddingTransform | null {
  if (!candidate.embedding) return null;
  const start = BASE_FEATURES.length;
  const components = Math.min(candidate.embedding.components, (rows[0]?.length ?? 0) - start);
  return fitEmbeddingTransform(rows, { start, components, seed });
}

function derivePairs(pairs: Pair[], transform: EmbeddingTransform): Pair[] {
  return pairs.map((p) => ({ ...p, features: applyEmbeddingTransform(transform, p.features) }));
}

function allColumns(pairs: Pair[]): number[] {
  return Array.from({ length: pairs[0]?.features.length ?? 0 }, (_, i) => i);
}

/**
 * Score every candidate by grouped cross-validation.
 *
 * @param pool the labelled pool
 * @param folds folds of its rows
 * @param options target, seed, epochs, candidates
 * @returns one entry per candidate, in the candidates' order
 */
export function crossValidate(pool: LabelledPool, folds: Folds, options: SelectionOptions = {}): CandidateCv[] {
  const n = pool.pairs.length;
  if (folds.fold.length !== n) throw new TypeError(`Cannot cross-validate: expected ${n} fold indices`);
  const featureCount = pool.pairs[0]?.features.length ?? 0;
  const targets = options.target === "hard" ? pool.disagree : pool.soft;
  return usableCandidates(options.candidates ?? DEFAULT_CANDIDATES, featureCount).map((candidate) => {
    const oof = new Float64Array(n);
    if (candidate.kind === "rule") oof.set(ruleScores(candidate.rule, pool.pairs.map((p) => p.features)));
    else {
      for (let f = 0; f < folds.k; f++) {
        const train: number[] = [];
        const test: number[] = [];
        for (let i = 0; i < n; i++) (folds.fold[i] === f ? test : train).push(i);
        if (test.length === 0) continue;
        // The transform, like the network, learns from the training folds only.
        const transform = fitTransform(candidate, train.map((i) => pool.pairs[i].features), (options.seed ?? 1) + f);
        const rows = transform ? derivePairs(pool.pairs, transform) : pool.pairs;
        const columns = transform ? allColumns(rows) : featureColumns(candidate.set, featureCount);
        const { model } = trainMlp({
          x: pack(rows, train, columns),
          n: train.length,
          f: columns.length,
          targets: train.map((i) => targets[i]),
          weights: train.map((i) => pool.weight[i]),
        }, { hidden: candidate.hidden, l2: candidate.l2, epochs: options.epochs ?? 60, seed: (options.seed ?? 1) + f });
        const scores = predictMlp(model, pack(rows, test, columns), test.length);
        test.forEach((row, j) => (oof[row] = scores[j]));
      }
    }
    const foldAuc = foldAucs(oof, pool, folds);
    return { candidate, foldAuc, ...meanAndSe(foldAuc), oof };
  });
}

/**
 * The one-standard-error rule: the simplest candidate whose mean fold AUC is at least the best mean minus the best
 * candidate's standard error (ties in simplicity: the higher mean).
 *
 * @param trials cross-validated candidates
 * @returns the chosen one and the best by mean
 * @throws RangeError when no candidate has a fold AUC
 */
export function oneStandardErrorChoice(trials: CandidateCv[]): { chosen: CandidateCv; best: CandidateCv } {
  const scored = trials.filter((t) => !Number.isNaN(t.mean));
  if (scored.length === 0) {
    throw new RangeError("Cannot select a switcher: no fold has both agreements and disagreements");
  }
  const best = scored.reduce((b, t) => (t.mean > b.mean ? t : b));
  const bar = best.mean - best.standardError;
  const chosen = scored
    .filter((t) => t.mean >= bar - 1e-12)
    .reduce((c, t) =>
      t.candidate.complexity < c.candidate.complexity ||
        (t.candidate.complexity === c.candidate.complexity && t.mean > c.mean)
        ? t
        : c
    );
  return { chosen, best };
}

/** A candidate fitted on the whole pool, ready to export: a network reading some columns, and its threshold. */
export interface FittedSwitcher {
  candidate: Candidate;
  /** The network (null for a rule: it is published as a rule release, no model file). */
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
 * held-out pairs), a rule on every pool row (it learns nothing, so no pair needs holding out).
 *
 * @param candidate the candidate
 * @param pairs the pool
 * @param options target, seed, epochs and calibration (default: offload rate 0.2)
 * @returns the fitted switcher
 */
export function fitCandidate(
  candidate: Candidate,
  pairs: Pair[],
  options: SelectionOptions & { calibrate?: Calibrate } = {},
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
  const fitted: FittedSwitcher = {
    candidate,
    model: null,
    columns: [ruleColumn(candidate.rule)],
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

/** What selection produced. */
export interface Selection {
  chosen: CandidateCv;
  best: CandidateCv;
  trials: CandidateCv[];
  /** The best confidence rule by cross-validated AUC (the bar the gate holds the chosen one to). */
  bestRule: CandidateCv;
  folds: Folds;
  /** The pairs cross-validated (all usable pairs, or a sample of a large pool). */
  pool: LabelledPool;
  fitted: FittedSwitcher;
}

/**
 * Select and fit the switcher to install.
 *
 * @param pairs the DMD pool
 * @param groups one group key per pair (subject, client, location), or null for none
 * @param options target, seed, epochs, candidates, calibration, folds
 * @returns the choice, every candidate's figures, the folds and the fitted release
 * @throws RangeError with fewer than 20 usable pairs
 */
export function selectSwitcher(
  pairs: Pair[],
  groups: readonly (string | null)[],
  options: SelectionOptions & { calibrate?: Calibrate; folds?: Omit<FoldOptions, "seed"> } = {},
): Selection {
  if (groups.length !== pairs.length) throw new TypeError(`Cannot select a switcher: expected ${pairs.length} groups`);
  const all = labelPool(pairs);
  if (all.pairs.length < 20) {
    throw new RangeError(`Cannot select a switcher: expected at least 20 usable pairs, got ${all.pairs.length}`);
  }
  // A large pool is cross-validated on a seeded sample (order kept, for time blocks); the fit uses every pair.
  const maxRows = options.maxCrossValidationRows ?? 20_000;
  let pool = all;
  if (all.pairs.length > maxRows) {
    const keep = createPrng(options.seed ?? 1).shuffle(Array.from({ length: all.pairs.length }, (_, i) => i))
      .slice(0, maxRows).sort((a, b) => a - b);
    pool = {
      pairs: keep.map((j) => all.pairs[j]),
      index: keep.map((j) => all.index[j]),
      disagree: Float64Array.from(keep, (j) => all.disagree[j]),
      soft: Float64Array.from(keep, (j) => all.soft[j]),
      weight: Float64Array.from(keep, (j) => all.weight[j]),
    };
  }
  const folds = groupedFolds(pool.index.map((i) => groups[i]), { ...options.folds, seed: options.seed });
  const trials = crossValidate(pool, folds, options);
  const { chosen, best } = oneStandardErrorChoice(trials);
  const rules = trials.filter((t) => t.candidate.kind === "rule" && !Number.isNaN(t.mean));
  const bestRule = rules.reduce((b, t) => (t.mean > b.mean ? t : b), rules[0] ?? chosen);
  return { chosen, best, trials, bestRule, folds, pool, fitted: fitCandidate(chosen.candidate, all.pairs, options) };
}

/**
 * The gate on held-out grouped folds for a selection: the chosen candidate's out-of-fold AUC against the active
 * release's and the best confidence rule's, fold by fold (switcher/gate.ts).
 *
 * @param selection what {@link selectSwitcher} returned
 * @param active the active release's name and scores, one per input pair (null: no active release)
 * @param options `tolerance` (default 0)
 * @returns the verdict
 */
export function gateSelection(
  selection: Selection,
  active: { name: string; scores: ArrayLike<number> } | null,
  options: { tolerance?: number } = {},
): FoldGateVerdict {
  const opponents = [{ name: `best rule (${selection.bestRule.candidate.name})`, foldAuc: selection.bestRule.foldAuc }];
  if (active) {
    const scores = selection.pool.index.map((i) => active.scores[i]);
    opponents.push({ name: `active (${active.name})`, foldAuc: foldAucs(scores, selection.pool, selection.folds) });
  }
  return gateOnFolds(selection.chosen.foldAuc, opponents, options);
}

/**
 * What a selection records in a release's provenance: the candidate, the folds and every candidate's figures.
 *
 * @param selection what {@link selectSwitcher} returned
 * @returns a plain object for JSON
 */
export function selectionSummary(selection: Selection): Record<string, unknown> {
  const r = (v: number) => Math.round(v * 1e6) / 1e6;
  return {
    candidate: selection.chosen.candidate.name,
    rule: "one standard error: the simplest candidate within one SE of the best mean fold AUC",
    folds: { basis: selection.folds.basis, k: selection.folds.k, groups: selection.folds.groups },
    candidates: selection.trials.map((t) => ({
      name: t.candidate.name,
      meanAuc: r(t.mean),
      standardError: r(t.standardError),
      foldAuc: t.foldAuc.map(r),
    })),
  };
}
