/**
 * The climb past the first cloud tier, when more than two tiers are configured (serve/tiers.ts). The hybrid
 * classifier (serve/classifier.ts) runs the edge model, hop 0's switcher and the offload to tier 1 as always; for
 * each request tier 1 answered, the climb goes on: hop N's switcher scores tier N's answer (from the confidence
 * features of its probabilities: a confidence rule, or a network `deno task dmd --hop N` trained on them; see
 * loop/hop_dmd.ts), and the request goes to tier N + 1 when the
 * score reaches the threshold, the tier's budget has a token and its circuit is closed, until a switcher keeps it or
 * the last tier answers. A tier that fails leaves the best answer so far (the highest tier that answered) as the
 * answer. A request without frames (a keypoint request) stops below the first tier that takes frames: the edge
 * never sends frames to a tier that takes keypoints, nor keypoints to one that takes frames.
 *
 * Hop exploration: when hop N's switcher keeps a request, tier N + 1 is still called with probability `explore`
 * (its own budget and circuit permitting) after the answer is settled; its output is logged (a shadow row), never
 * given, so `deno task dmd --hop N` sees pairs the switcher kept.
 *
 * Every tier reached leaves a row (db/schema.ts `decisionTiers`): output or error, measured and configured cost,
 * the hop's switcher, score and threshold, and why the climb went on or stopped.
 *
 * Adapters (the tier models, the hop switchers, randomness, the clock) are passed in, so tests can fake any.
 *
 * @module
 */
import type { DecisionTierRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { probabilityStats } from "../switcher/features.ts";
import type { CloudTier } from "./tiers.ts";

/** What a request offers the tiers past the first: the cloud model's keypoint window, and its frames if it had any. */
export interface ClimbInput {
  window: Float32Array;
  clip: { kind: "jpeg" | "png"; images: Uint8Array[] } | null;
}

/** One tier's outcome: its probabilities (one per label), or why it has none. */
export type TierOutcome =
  | { probs: Float64Array; hasProbabilities: boolean; version: string; ms: number }
  | { error: AppError; reason: string | null; ms: number };

/** A cloud tier as the climb calls it (cloud/tier_models.ts builds them: client, breaker, budget). */
export interface TierModel {
  tier: CloudTier;
  /** Call the tier for one request. Never throws. */
  call(input: ClimbInput): Promise<TierOutcome>;
  /** Why the tier is known to be down now (an open circuit), or null. */
  down(): AppError | null;
  /** Take a token of the tier's budget; false when it is spent. */
  takeToken(): boolean;
}

/** Hop N's switcher: a score of tier N's confidence features, with the release's version and threshold. */
export interface HopSwitcher {
  version: string;
  /** The score of `[p_max, margin, entropy]` of tier N's probabilities; the request climbs when it is >= threshold. */
  score(features: ArrayLike<number>): number;
  threshold: number;
}

/** Where a climb starts: tier 1's answer. */
export interface ClimbStart {
  input: ClimbInput;
  probs: Float64Array;
  version: string;
  ms: number;
}

/** A tier row without the decision's id and time (the classifier adds them). */
export type TierRow = Omit<DecisionTierRecord, "decisionId" | "createdAt">;

/** Where a climb ended. */
export interface Climb {
  /** The answer given: the highest tier that answered. */
  probs: Float64Array;
  hasProbabilities: boolean;
  /** Its position and name. */
  tier: number;
  tierName: string;
  version: string;
  /** Time spent past tier 1, in milliseconds. */
  ms: number;
  /** One row per tier reached (tier 1 first). */
  rows: TierRow[];
  /** The exploration call in flight, whose row joins `rows` when it ends; null when none was drawn. */
  explored: Promise<TierRow> | null;
}

/** Options of {@link createCascade}. */
export interface CascadeOptions {
  /** Tier 1 (the first cloud tier, called by the classifier) and the later tiers' models, in order. */
  first: CloudTier;
  models: TierModel[];
  /** Hop N's switcher now (N >= 1). */
  switcher: (hop: number) => HopSwitcher;
  labels: string[];
  /** In [0, 1). @default Math.random */
  random?: () => number;
  /** The clock, in milliseconds. @default performance.now */
  now?: () => number;
}

/** The climb past tier 1. */
export interface Cascade {
  /**
   * Climb from tier 1's answers, each request on its own (in parallel).
   *
   * @param starts tier 1's answers and the requests' inputs
   * @returns one climb per start, in order
   */
  climb(starts: ClimbStart[]): Promise<Climb[]>;
}

function row(
  tier: CloudTier,
  index: number,
  outcome: TierOutcome | { error: AppError; reason: string | null; ms: null },
  labels: string[],
  extra: Pick<TierRow, "propensity" | "shadow">,
): TierRow {
  const ok = "probs" in outcome;
  const stats = ok ? probabilityStats(outcome.probs) : null;
  return {
    tier: index,
    tierName: tier.name,
    modelVersion: ok ? outcome.version : null,
    label: stats ? labels[stats.top] : null,
    prob: stats ? stats.pMax : null,
    probs: ok ? Array.from(outcome.probs) : null,
    hasProbabilities: ok ? outcome.hasProbabilities : null,
    error: ok ? null : outcome.error.code,
    errorReason: ok ? null : outcome.reason,
    ms: outcome.ms,
    costMs: outcome.ms === null ? null : tier.costMs ?? outcome.ms,
    price: outcome.ms === null ? null : tier.pricePerCall,
    propensity: extra.propensity,
    shadow: extra.shadow,
    answered: false,
    switcherVersion: null,
    switcherScore: null,
    switcherThreshold: null,
    next: "last_tier",
  };
}

/**
 * Build the climb.
 *
 * @param options tier 1, the later tiers' models, the hop switchers, the labels
 * @returns the cascade
 */
export function createCascade(options: CascadeOptions): Cascade {
  const { models, labels } = options;
  const random = options.random ?? Math.random;
  const now = options.now ?? (() => performance.now());
  const tierAt = (index: number): CloudTier => (index === 1 ? options.first : models[index - 2].tier);

  async function climbOne(start: ClimbStart): Promise<Climb> {
    const t0 = now();
    let best = { probs: start.probs, hasProbabilities: true, tier: 1, version: start.version };
    const rows: TierRow[] = [
      row(
        options.first,
        1,
        { probs: start.probs, hasProbabilities: true, version: start.version, ms: start.ms },
        labels,
        {
          propensity: 1,
          shadow: false,
        },
      ),
    ];
    let explored: Promise<TierRow> | null = null;
    for (let hop = 1; hop <= models.length; hop++) {
      const here = rows[rows.length - 1];
      const next = models[hop - 1];
      const switcher = options.switcher(hop);
      const stats = probabilityStats(best.probs);
      const score = switcher.score([stats.pMax, stats.margin, stats.entropy]);
      here.switcherVersion = switcher.version;
      here.switcherScore = score;
      here.switcherThreshold = switcher.threshold;
      const nextIndex = hop + 1;
      if (next.tier.input === "frames" && !start.input.clip) {
        here.next = "no_frames";
        break;
      }
      if (score < switcher.threshold) {
        here.next = "kept";
        if (next.tier.explore > 0 && next.down() === null && random() < next.tier.explore && next.takeToken()) {
          explored = next.call(start.input).then((o) =>
            row(next.tier, nextIndex, o, labels, { propensity: next.tier.explore, shadow: true })
          );
        }
        break;
      }
      const down = next.down();
      if (down) {
        here.next = "cloud_unavailable";
        rows.push(row(next.tier, nextIndex, { error: down, reason: "circuit_open", ms: null }, labels, {
          propensity: 1,
          shadow: false,
        }));
        break;
      }
      if (!next.takeToken()) {
        here.next = "budget_exhausted";
        break;
      }
      here.next = "escalated";
      const outcome = await next.call(start.input);
      const reached = row(next.tier, nextIndex, outcome, labels, { propensity: 1, shadow: false });
      rows.push(reached);
      if (!("probs" in outcome)) {
        // A failed tier: the best answer so far stands.
        reached.next = "failed";
        break;
      }
      best = {
        probs: outcome.probs,
        hasProbabilities: outcome.hasProbabilities,
        tier: nextIndex,
        version: outcome.version,
      };
    }
    rows.find((r) => r.tier === best.tier)!.answered = true;
    return {
      probs: best.probs,
      hasProbabilities: best.hasProbabilities,
      tier: best.tier,
      tierName: tierAt(best.tier).name,
      version: best.version,
      ms: now() - t0,
      rows,
      explored,
    };
  }

  return {
    climb: (starts) => Promise.all(starts.map(climbOne)),
  };
}

/**
 * A tier's error for a call that could not be made or failed in an unexpected way, as a {@link TierOutcome}.
 *
 * @param err what was thrown
 * @param ms how long it took
 * @returns the outcome
 */
export function failedOutcome(err: unknown, ms: number): TierOutcome {
  const error = err instanceof AppError
    ? err
    : new AppError("OFFLOAD_FAILED", "Cannot offload: the cloud call failed", { cause: err });
  const reason = (err as { reason?: unknown })?.reason;
  return {
    error,
    reason: typeof reason === "string" ? reason : error.code === "CIRCUIT_OPEN" ? "circuit_open" : null,
    ms,
  };
}
