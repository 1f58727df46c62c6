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
import {
  allColumns,
  type Candidate,
  DEFAULT_CANDIDATES,
  derivePairs,
  fitTransform,
  type LabelledPool,
  labelPool,
  pack,
  RANK_COLUMNS,
  usableCandidates,
} from "./candidates.ts";
import type { Pair } from "./dmd.ts";
import { featureColumns } from "./features.ts";
import { type Calibrate, fitCandidate, type FitOptions, type FittedSwitcher } from "./fit.ts";
import { type FoldOptions, type Folds, groupedFolds } from "./folds.ts";
import { type FoldGateVerdict, gateOnFolds } from "./gate.ts";
import { weightedAuc } from "./metrics.ts";
import { predictMlp, trainMlp } from "./mlp.ts";
import { createPrng } from "./prng.ts";
import { fitRankAverage } from "./rank.ts";
import { type ConfidenceRule, ruleScores } from "./rules.ts";

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
export interface SelectionOptions extends FitOptions {
  /** The candidates. @default DEFAULT_CANDIDATES */
  candidates?: readonly Candidate[];
  /** Cross-validate on a seeded sample of at most this many pairs (the fit reads them all). @default 20000 */
  maxCrossValidationRows?: number;
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
    const rows = foldRows(folds, f).test;
    return weightedAuc(
      rows.map((i) => scores[i]),
      rows.map((i) => pool.disagree[i]),
      rows.map((i) => pool.weight[i]),
    );
  });
}

/** The rows of fold `f` (test) and of the other folds (train), in row order. */
function foldRows(folds: Folds, f: number): { train: number[]; test: number[] } {
  const train: number[] = [];
  const test: number[] = [];
  for (let i = 0; i < folds.fold.length; i++) (folds.fold[i] === f ? test : train).push(i);
  return { train, test };
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
    else if (candidate.kind === "rank") {
      // The quantiles, though label-free, come from the training folds only, as they would in deployment.
      for (let f = 0; f < folds.k; f++) {
        const { train, test } = foldRows(folds, f);
        if (test.length === 0) continue;
        const { model } = fitRankAverage(candidate.rules, train.map((i) => pool.pairs[i].features), candidate.knots);
        const scores = predictMlp(model, pack(pool.pairs, test, RANK_COLUMNS), test.length);
        test.forEach((row, j) => (oof[row] = scores[j]));
      }
    } else {
      for (let f = 0; f < folds.k; f++) {
        const { train, test } = foldRows(folds, f);
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
  /** Fit another candidate on the same pairs with the same options (for the label-free fallback). */
  refit: (candidate: Candidate) => FittedSwitcher;
  /** Set when the gate refused the learned candidate first chosen and this selection is the label-free fallback. */
  refused?: { candidate: string; reason: string };
}

/** The fewest usable pairs a selection runs on (fewer cannot be split into folds that measure anything). */
export const MIN_SELECTION_PAIRS = 20;

/** Too few usable pairs to choose a switcher: an expected outcome of a small pool or log, not a bug. */
export class TooFewPairsError extends RangeError {
  override name = "TooFewPairsError";
}

/**
 * Select and fit the switcher to install.
 *
 * @param pairs the DMD pool
 * @param groups one group key per pair (subject, client, location), or null for none
 * @param options target, seed, epochs, candidates, calibration, folds
 * @returns the choice, every candidate's figures, the folds and the fitted release
 * @throws TooFewPairsError with fewer than {@link MIN_SELECTION_PAIRS} usable pairs
 */
export function selectSwitcher(
  pairs: Pair[],
  groups: readonly (string | null)[],
  options: SelectionOptions & { calibrate?: Calibrate; folds?: Omit<FoldOptions, "seed"> } = {},
): Selection {
  if (groups.length !== pairs.length) throw new TypeError(`Cannot select a switcher: expected ${pairs.length} groups`);
  const all = labelPool(pairs);
  if (all.pairs.length < MIN_SELECTION_PAIRS) {
    throw new TooFewPairsError(
      `Cannot select a switcher: expected at least ${MIN_SELECTION_PAIRS} usable pairs, got ${all.pairs.length}`,
    );
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
  const refit = (candidate: Candidate) => fitCandidate(candidate, all.pairs, options);
  return { chosen, best, trials, bestRule, folds, pool, fitted: refit(chosen.candidate), refit };
}

/**
 * The gate on held-out grouped folds for a selection: the chosen candidate's out-of-fold AUC against the active
 * release's and the best confidence rule's, fold by fold (switcher/gate.ts).
 *
 * A label-free candidate (a rule, the rules' rank average) that the one-standard-error rule chose over a rule with a
 * higher mean may trail that rule by that standard error: refusing it would undo the choice. The same holds when the
 * active release is itself a confidence rule (the built-in max probability is one): its scores are that rule's, so
 * it is held to the same bar as the rule's candidate. Against an active learned release there is no tolerance.
 *
 * @param selection what {@link selectSwitcher} returned
 * @param active the active release's name and scores, one per input pair, and its rule when it is a confidence rule
 *   (null: no active release)
 * @param options `tolerance` (default 0)
 * @returns the verdict
 */
export function gateSelection(
  selection: Selection,
  active: { name: string; scores: ArrayLike<number>; rule?: ConfidenceRule } | null,
  options: { tolerance?: number } = {},
): FoldGateVerdict {
  const rule = selection.bestRule;
  const labelFree = selection.chosen.candidate.kind !== "mlp";
  const oneSe = (other: Candidate | null) =>
    labelFree && other !== null && other !== selection.chosen.candidate ? selection.best.standardError : 0;
  const ruleTolerance = oneSe(rule.candidate);
  // A learned candidate must hold on every held-out fold (no group of traffic on which it loses); a label-free one,
  // which fits nothing to the labels, is held to the mean.
  const everyFold = !labelFree;
  const opponents: { name: string; foldAuc: number[]; tolerance?: number; everyFold?: boolean }[] = [{
    name: `best rule (${rule.candidate.name}${ruleTolerance > 0 ? "; the chosen one is simpler, within one SE" : ""})`,
    foldAuc: rule.foldAuc,
    tolerance: ruleTolerance,
    everyFold,
  }];
  if (active) {
    const scores = selection.pool.index.map((i) => active.scores[i]);
    const asRule = active.rule
      ? selection.trials.find((t) => t.candidate.kind === "rule" && t.candidate.rule === active.rule)?.candidate ?? null
      : null;
    const tolerance = oneSe(asRule);
    opponents.push({
      name: `active (${active.name}${
        tolerance > 0 ? `, the ${active.rule} rule; the chosen one is simpler, within one SE` : ""
      })`,
      foldAuc: foldAucs(scores, selection.pool, selection.folds),
      tolerance,
      everyFold,
    });
  }
  return gateOnFolds(selection.chosen.foldAuc, opponents, options);
}

/**
 * The gate, with a fallback: when it refuses a learned candidate, the choice is made again among the label-free
 * candidates alone (the rank average and the rules, by the same one-standard-error rule), and that one is gated in
 * turn. So a refused MLP does not leave a worse rule active where a label-free candidate passes: on a pool whose best
 * rule is not the active one, the gate's refusal of an MLP that loses on one fold still installs that rule (or the rank
 * average).
 *
 * @param selection what {@link selectSwitcher} returned
 * @param active as for {@link gateSelection}
 * @param options `tolerance` (default 0)
 * @returns the selection gated last (the original, or the fallback with `refused` set) and its verdict
 */
export function gateWithFallback(
  selection: Selection,
  active: Parameters<typeof gateSelection>[1],
  options: { tolerance?: number } = {},
): { selection: Selection; verdict: FoldGateVerdict } {
  const verdict = gateSelection(selection, active, options);
  if (verdict.promote || selection.chosen.candidate.kind !== "mlp") return { selection, verdict };
  const labelFree = selection.trials.filter((t) => t.candidate.kind !== "mlp" && !Number.isNaN(t.mean));
  if (labelFree.length === 0) return { selection, verdict };
  const { chosen, best } = oneStandardErrorChoice(labelFree);
  const fallback: Selection = {
    ...selection,
    chosen,
    best,
    fitted: selection.refit(chosen.candidate),
    refused: { candidate: selection.chosen.candidate.name, reason: verdict.reason },
  };
  const second = gateSelection(fallback, active, options);
  return {
    selection: fallback,
    verdict: {
      ...second,
      reason: `${second.reason}; before it, ${selection.chosen.candidate.name} was refused: ${verdict.reason}`,
    },
  };
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
    ...(selection.refused ? { refused: selection.refused } : {}),
    folds: { basis: selection.folds.basis, k: selection.folds.k, groups: selection.folds.groups },
    candidates: selection.trials.map((t) => ({
      name: t.candidate.name,
      meanAuc: r(t.mean),
      standardError: r(t.standardError),
      foldAuc: t.foldAuc.map(r),
    })),
  };
}
