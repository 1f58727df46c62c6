/**
 * DMD for a hop past the first (`deno task dmd --hop N`, N >= 1): hop N joins tier N and tier N + 1, and its
 * switcher decides from tier N's answer alone: its features are the confidence features of tier N's probabilities
 * (max probability, margin, entropy), and its candidates are those of hop 0 that read no more (switcher/candidates.ts:
 * the rules' rank average, each rule, and an MLP trained on the three, which can learn a disagreement that no single
 * threshold on one of them separates). The pairs are the logged tier rows (db/schema.ts `decisionTiers`) of decisions
 * that reached both tiers — escalated, or explored (`explore` of tier N + 1) — each weighted by the inverse of the
 * probability it reached tier N + 1 (switcher/propensity.ts); the DMD label is the disagreement of the two tiers.
 * Selection (one-SE toward the simpler), calibration and the gate against the active hop-N release are the same as
 * hop 0's (switcher/selection.ts); the release is a rule release, or an ONNX network of the three features (the rank
 * average, the MLP) that the service scores in JavaScript (serve/hop_switchers.ts), published through the registry
 * (the manifest keeps hop 0's switcher only).
 *
 * @module
 */
import type { DecisionTierRecord } from "../db/schema.ts";
import type { Pair } from "../switcher/dmd.ts";
import { DEFAULT_CANDIDATES } from "../switcher/candidates.ts";
import { BASE_FEATURES, probabilityStats } from "../switcher/features.ts";
import { switcherMlp } from "../workers/switcher_mlp.ts";
import { fittedRelease } from "./registry.ts";
import { ipwWeight } from "../switcher/propensity.ts";
import {
  type gateSelection,
  gateWithFallback,
  type Selection,
  type SelectionOptions,
  selectionSummary,
  selectSwitcher,
} from "../switcher/selection.ts";
import { ruleScore, type SwitcherRelease } from "../release/release.ts";

/** What a switcher past hop 0 reads: the confidence features of the tier below, in this order. */
export const HOP_FEATURES: readonly string[] = BASE_FEATURES.slice(0, 3);

/** The candidates of a hop past the first: those of hop 0 that read the confidence features only. */
export const HOP_CANDIDATES = DEFAULT_CANDIDATES.filter((c) => c.kind !== "mlp" || c.set === "confidence");

/**
 * A scorer of hop-N feature rows (`[p_max, margin, entropy]`) for a hop release: its rule, or its ONNX network read
 * into JavaScript.
 *
 * @param release a switcher release of a hop past the first
 * @returns the scorer, or null when the release reads other features or its network has another form
 */
export function hopScorer(release: SwitcherRelease): ((features: ArrayLike<number>) => number) | null {
  const scorer = release.scorer;
  if (scorer.kind === "rule") return (features) => ruleScore(scorer.rule, features);
  if (!release.artefact || release.features.join(",") !== HOP_FEATURES.join(",")) return null;
  const score = switcherMlp(release.artefact, HOP_FEATURES.length);
  if (!score) return null;
  return (features) => score(Float32Array.from(features), 1)[0];
}

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
export async function hopDmd(
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
): Promise<HopDmdResult> {
  const chosen = selectSwitcher(pool.pairs, pool.decisions.map(() => null), {
    ...options,
    candidates: HOP_CANDIDATES,
    calibrate: options.calibrate,
    folds: { k: options.folds, fallback: "blocks" },
  });
  const activeScore = options.active ? hopScorer(options.active) : null;
  const active = activeScore
    ? {
      name: options.active!.version,
      scores: pool.pairs.map((p) => activeScore(p.features)),
      rule: options.active!.scorer.kind === "rule" ? options.active!.scorer.rule : undefined,
    }
    : null;
  const { selection, verdict } = gateWithFallback(chosen, active, { tolerance: options.tolerance });
  const fitted = selection.fitted;
  const provenance = { ...options.provenance, selection: selectionSummary(selection), gate: verdict };
  const metrics = {
    data:
      `${selection.folds.k}-fold cross-validation on the logged pairs of hop ${options.hop} (${selection.folds.basis})`,
    meanFoldAuc: selection.chosen.mean,
    standardError: selection.chosen.standardError,
    gate: verdict.comparisons,
  };
  const release = await fittedRelease(fitted, {
    version: options.version,
    features: [...HOP_FEATURES],
    hop: options.hop,
    provenance,
    metrics,
  });
  return { selection, verdict, release: { ...release, status: verdict.promote ? "candidate" : "rejected" } };
}
