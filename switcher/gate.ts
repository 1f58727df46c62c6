/**
 * The promotion gate of the retraining job, pure: score candidate and active switchers on the same held-out recent
 * pairs and decide whether the candidate may replace the active one.
 *
 * Gate metric: the inverse-propensity-weighted ROC AUC for edge/cloud disagreement (what the switcher is trained
 * to predict; threshold-free, so a new calibration cannot hide a worse ranking). The candidate is promoted when its
 * AUC is at least the active one's minus `tolerance` (default 0: at least as good), and the held-out set is big
 * enough to mean something (`minPairs` pairs, `minDisagreements` disagreements). Reported beside it: the weighted
 * agreement with the cloud when each switcher offloads at its own threshold, and the offload rate that gives.
 *
 * @module
 */
import { weightedAuc } from "./metrics.ts";

export { weightedAuc };

/** One held-out pair as the gate sees it. */
export interface GatePair {
  /** 1 when edge and cloud disagree (hard DMD label). */
  disagree: number;
  /** Inverse-propensity weight. */
  weight: number;
}

/** Gate settings. */
export interface GateOptions {
  /** The candidate may be this much worse in AUC and still pass. @default 0 */
  tolerance?: number;
  /** @default 50 */
  minPairs?: number;
  /** @default 10 */
  minDisagreements?: number;
  /**
   * Confidence rules the candidate must also match (their scores on the same pairs): a learned switcher that ranks
   * worse than the best rule is refused even when it beats the active one.
   */
  rules?: { name: string; scores: ArrayLike<number> }[];
}

/** One switcher's held-out figures. */
export interface SwitcherFigures {
  auc: number;
  /** Weighted fraction offloaded at its threshold. */
  offloadRate: number;
  /** Weighted agreement of the hybrid with the cloud at its threshold. */
  agreement: number;
}

/** The gate's verdict. */
export interface GateVerdict {
  promote: boolean;
  reason: string;
  candidate: SwitcherFigures;
  active: SwitcherFigures | null;
  pairs: number;
  disagreements: number;
}

/**
 * A switcher's held-out figures at its threshold.
 *
 * @param scores its scores on the held-out pairs
 * @param threshold offload when score >= threshold
 * @param pairs the held-out pairs
 * @returns AUC, offload rate and agreement, weighted
 */
export function switcherFigures(scores: ArrayLike<number>, threshold: number, pairs: GatePair[]): SwitcherFigures {
  let w = 0;
  let off = 0;
  let agree = 0;
  pairs.forEach((p, i) => {
    w += p.weight;
    const offload = scores[i] >= threshold;
    if (offload) off += p.weight;
    if (offload || !p.disagree) agree += p.weight;
  });
  return {
    auc: weightedAuc(scores, pairs.map((p) => p.disagree), pairs.map((p) => p.weight)),
    offloadRate: w > 0 ? off / w : NaN,
    agreement: w > 0 ? agree / w : NaN,
  };
}

/**
 * Decide whether a candidate replaces the active switcher.
 *
 * @param pairs the held-out recent pairs
 * @param candidate the candidate's scores and threshold on them
 * @param active the active switcher's, or null when none is active (the candidate then passes if the set is big
 *   enough)
 * @param options tolerance and minimum sizes
 * @returns the verdict with both switchers' figures and the reason
 */
export function gate(
  pairs: GatePair[],
  candidate: { scores: ArrayLike<number>; threshold: number },
  active: { scores: ArrayLike<number>; threshold: number } | null,
  options: GateOptions = {},
): GateVerdict {
  const tolerance = options.tolerance ?? 0;
  const minPairs = options.minPairs ?? 50;
  const minDisagreements = options.minDisagreements ?? 10;
  const disagreements = pairs.reduce((a, p) => a + (p.disagree ? 1 : 0), 0);
  const c = switcherFigures(candidate.scores, candidate.threshold, pairs);
  const a = active ? switcherFigures(active.scores, active.threshold, pairs) : null;
  const base = { candidate: c, active: a, pairs: pairs.length, disagreements };
  if (pairs.length < minPairs) {
    return { ...base, promote: false, reason: `too few held-out pairs: ${pairs.length} < ${minPairs}` };
  }
  if (disagreements < minDisagreements || disagreements === pairs.length) {
    return {
      ...base,
      promote: false,
      reason: `too few held-out disagreements to rank switchers: ${disagreements} of ${pairs.length}`,
    };
  }
  const f = (v: number) => v.toFixed(4);
  for (const rule of options.rules ?? []) {
    const auc = weightedAuc(rule.scores, pairs.map((p) => p.disagree), pairs.map((p) => p.weight));
    if (c.auc + tolerance < auc) {
      return { ...base, promote: false, reason: `candidate AUC ${f(c.auc)} < ${rule.name} ${f(auc)} - ${tolerance}` };
    }
  }
  if (!a || Number.isNaN(a.auc)) {
    return { ...base, promote: true, reason: "no active switcher to compare with" };
  }
  if (c.auc + tolerance >= a.auc) {
    return { ...base, promote: true, reason: `candidate AUC ${f(c.auc)} >= active ${f(a.auc)} - ${tolerance}` };
  }
  return { ...base, promote: false, reason: `candidate AUC ${f(c.auc)} < active ${f(a.auc)} - ${tolerance}` };
}

/** The candidate against one opponent on the held-out folds. */
export interface FoldComparison {
  name: string;
  /** Mean over folds of (candidate AUC - opponent AUC), and its standard error over the folds. */
  difference: number;
  standardError: number;
  /** The smallest fold's (candidate AUC - opponent AUC): the fold where the candidate fares worst. */
  worst: number;
  folds: number;
  /** Whether the gate held the candidate to every fold against this opponent, not only to the mean. */
  everyFold: boolean;
}

/** The fold gate's verdict. */
export interface FoldGateVerdict {
  promote: boolean;
  reason: string;
  comparisons: FoldComparison[];
}

/**
 * The gate on held-out grouped folds: the candidate's out-of-fold disagreement AUC, fold by fold, against each
 * opponent's AUC on the same fold. It passes when no opponent is better on average by more than `tolerance` (or the
 * opponent's own tolerance, when larger), and, against an opponent marked `everyFold`, better on no single fold by
 * more than that: a candidate that loses on one held-out group of traffic is not installed, whatever its mean.
 *
 * @param candidateFoldAuc the candidate's AUC on each held-out fold (trained without it)
 * @param opponents each opponent's AUC on the same folds, optionally the tolerance allowed against it, and whether
 *   the candidate must hold on every fold against it
 * @param options `tolerance` (default 0)
 * @returns the verdict with one comparison per opponent
 */
export function gateOnFolds(
  candidateFoldAuc: number[],
  opponents: { name: string; foldAuc: number[]; tolerance?: number; everyFold?: boolean }[],
  options: { tolerance?: number } = {},
): FoldGateVerdict {
  const tolerance = options.tolerance ?? 0;
  // Index-aligned with the comparisons: the larger of the gate's tolerance and the opponent's own.
  const allowed = opponents.map((o) => Math.max(tolerance, o.tolerance ?? 0));
  const comparisons = opponents.map((o): FoldComparison => {
    const d = candidateFoldAuc.map((c, f) => c - o.foldAuc[f]).filter((v) => !Number.isNaN(v));
    const mean = d.length ? d.reduce((a, b) => a + b, 0) / d.length : NaN;
    const sd = d.length > 1 ? Math.sqrt(d.reduce((a, b) => a + (b - mean) ** 2, 0) / (d.length - 1)) : 0;
    return {
      name: o.name,
      difference: mean,
      standardError: d.length ? sd / Math.sqrt(d.length) : NaN,
      worst: d.length ? Math.min(...d) : NaN,
      folds: d.length,
      everyFold: o.everyFold ?? false,
    };
  });
  const f = (v: number) => v.toFixed(4);
  const tol = (i: number) => Number(allowed[i].toFixed(4));
  const k = comparisons.findIndex((c, i) => Number.isNaN(c.difference) || c.difference < -allowed[i]);
  if (k >= 0) {
    const c = comparisons[k];
    return {
      promote: false,
      reason: Number.isNaN(c.difference)
        ? `no held-out fold ranks the candidate against ${c.name}`
        : `candidate AUC is ${f(-c.difference)} below ${c.name} on held-out folds (tolerance ${tol(k)})`,
      comparisons,
    };
  }
  const j = comparisons.findIndex((c, i) => c.everyFold && c.worst < -allowed[i]);
  if (j >= 0) {
    const c = comparisons[j];
    return {
      promote: false,
      reason: `candidate AUC is ${f(-c.worst)} below ${c.name} on one held-out fold (of ${c.folds}; tolerance ${
        tol(j)
      }), though ${c.difference >= 0 ? "+" : ""}${f(c.difference)} on average`,
      comparisons,
    };
  }
  const against = comparisons.map((c) => `${c.name} ${c.difference >= 0 ? "+" : ""}${f(c.difference)}`).join(", ");
  return { promote: true, reason: `not worse on held-out folds: ${against || "no opponent"}`, comparisons };
}
