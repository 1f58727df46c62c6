/**
 * DMD for a hop past the first (`deno task dmd --hop N`, N >= 1): hop N joins tier N and tier N + 1, and its
 * switcher decides from tier N's answer alone, so its candidates are the confidence rules over tier N's
 * probabilities (max probability, margin, entropy). The pairs are the logged tier rows (db/schema.ts
 * `decisionTiers`) of decisions that reached both tiers — escalated, or explored (`explore` of tier N + 1) — each
 * weighted by the inverse of the probability it reached tier N + 1 (switcher/propensity.ts); the DMD label is the
 * disagreement of the two tiers. Selection, calibration and the gate against the active hop-N release are the
 * same as hop 0's (switcher/selection.ts); the release is a rule release of hop N, published through the registry
 * (the manifest keeps hop 0's switcher only).
 *
 * @module
 */
import type { DecisionTierRecord } from "../db/schema.ts";
import type { Pair } from "../switcher/dmd.ts";
import { DEFAULT_CANDIDATES } from "../switcher/candidates.ts";
import { probabilityStats } from "../switcher/features.ts";
import { ipwWeight } from "../switcher/propensity.ts";
import {
  gateSelection,
  type Selection,
  type SelectionOptions,
  selectionSummary,
  selectSwitcher,
} from "../switcher/selection.ts";
import { ruleScore, type SwitcherRelease } from "../release/release.ts";
import { ruleRelease } from "../release/release.ts";

/** The DMD pool of a hop: one pair per decision that reached both tiers with probabilities. */
export interface HopPool {
  pairs: Pair[];
  /** The decision ids, in pair order (the group key of the folds: time blocks). */
  decisions: string[];
  /** Decisions that reached tier N + 1 without a usable answer there (errors), or gave no probabilities. */
  skipped: number;
}

/**
 * The pairs of hop N from the logged tier rows.
 *
 * @param rows tier rows (any tiers, any order)
 * @param hop the hop (>= 1)
 * @returns the pool
 */
export function hopPairs(rows: DecisionTierRecord[], hop: number): HopPool {
  const lower = new Map<string, DecisionTierRecord>();
  const upper = new Map<string, DecisionTierRecord>();
  for (const r of rows) {
    if (r.tier === hop) lower.set(r.decisionId, r);
    else if (r.tier === hop + 1) upper.set(r.decisionId, r);
  }
  const pool: HopPool = { pairs: [], decisions: [], skipped: 0 };
  for (const [id, up] of upper) {
    const low = lower.get(id);
    if (!low?.probs || !up.probs || low.hasProbabilities === false) {
      pool.skipped++;
      continue;
    }
    const s = probabilityStats(low.probs);
    pool.pairs.push({
      features: Float32Array.of(s.pMax, s.margin, s.entropy),
      edgeProbs: low.probs,
      cloudProbs: up.probs,
      weight: ipwWeight(up.propensity),
    });
    pool.decisions.push(id);
  }
  return pool;
}

/** What {@link hopDmd} decided. */
export interface HopDmdResult {
  selection: Selection;
  verdict: ReturnType<typeof gateSelection>;
  release: SwitcherRelease;
}

/**
 * Choose, calibrate and gate hop N's switcher on its pool.
 *
 * @param pool the pairs ({@link hopPairs})
 * @param options the hop, the active release of the hop, the version to give, selection and gate settings
 * @returns the selection, the gate's verdict and the release (status candidate, or rejected when the gate refused)
 * @throws RangeError with fewer than 20 usable pairs
 */
export function hopDmd(
  pool: HopPool,
  options: SelectionOptions & {
    hop: number;
    active: SwitcherRelease | null;
    version: string;
    calibrate: { offloadRate: number } | { agreement: number };
    folds: number;
    tolerance: number;
    provenance: Record<string, unknown>;
  },
): HopDmdResult {
  const selection = selectSwitcher(pool.pairs, pool.decisions.map(() => null), {
    ...options,
    candidates: DEFAULT_CANDIDATES.filter((c) => c.kind === "rule"),
    calibrate: options.calibrate,
    folds: { k: options.folds, fallback: "blocks" },
  });
  const scorer = options.active?.scorer;
  const active = scorer?.kind === "rule"
    ? { name: options.active!.version, scores: pool.pairs.map((p) => ruleScore(scorer.rule, p.features)) }
    : null;
  const verdict = gateSelection(selection, active, { tolerance: options.tolerance });
  const fitted = selection.fitted;
  if (fitted.candidate.kind !== "rule") throw new TypeError("Cannot publish hop DMD: expected a rule");
  const release = ruleRelease({
    version: options.version,
    rule: fitted.candidate.rule,
    threshold: fitted.threshold,
    hop: options.hop,
    calibration: fitted.calibration,
    provenance: { ...options.provenance, selection: selectionSummary(selection), gate: verdict },
    metrics: {
      data:
        `${selection.folds.k}-fold cross-validation on the logged pairs of hop ${options.hop} (${selection.folds.basis})`,
      meanFoldAuc: selection.chosen.mean,
      standardError: selection.chosen.standardError,
      gate: verdict.comparisons,
    },
  });
  return { selection, verdict, release: { ...release, status: verdict.promote ? "candidate" : "rejected" } };
}
