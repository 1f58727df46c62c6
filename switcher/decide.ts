/**
 * The per-request routing decision, kept apart from scoring and from choosing the threshold (score, threshold and
 * decision are separate steps), and the offload budget. Pure: time is passed in.
 *
 * @module
 */

/** Why a request went where it went; logged with every decision. */
export type RouteReason =
  | "below_threshold"
  | "above_threshold"
  | "forced_edge"
  | "forced_cloud"
  | "budget_exhausted"
  | "cloud_unavailable";

/** Inputs of {@link decide}. */
export interface DecideInput {
  /** The switcher's score: predicted probability that the cloud would answer differently. */
  score: number;
  threshold: number;
  /** A route forced by the caller, for debugging. */
  forced?: "edge" | "cloud";
  /** False when the offload budget has no token for this request. */
  budgetAvailable: boolean;
  /** False when the cloud is known to be down (e.g. an open circuit). */
  cloudAvailable: boolean;
}

/**
 * Decide whether to offload one request. A score exactly at the threshold offloads.
 *
 * @param input score, threshold, forced route and availability
 * @returns whether to offload, and why
 * @throws RangeError when the score or threshold is not a finite number
 * @example
 * decide({ score: 0.5, threshold: 0.5, budgetAvailable: true, cloudAvailable: true }); // { offload: true, reason: "above_threshold" }
 */
export function decide(input: DecideInput): { offload: boolean; reason: RouteReason } {
  const { score, threshold, forced } = input;
  if (!Number.isFinite(score)) throw new RangeError(`Cannot decide: score must be finite, got ${score}`);
  if (!Number.isFinite(threshold)) throw new RangeError(`Cannot decide: threshold must be finite, got ${threshold}`);
  if (forced === "edge") return { offload: false, reason: "forced_edge" };
  if (forced === "cloud") return { offload: true, reason: "forced_cloud" };
  if (score < threshold) return { offload: false, reason: "below_threshold" };
  if (!input.cloudAvailable) return { offload: false, reason: "cloud_unavailable" };
  if (!input.budgetAvailable) return { offload: false, reason: "budget_exhausted" };
  return { offload: true, reason: "above_threshold" };
}

/** A token bucket limiting offloads per second. */
export interface OffloadBudget {
  /** Take one token at `nowMs`; false when none is left. */
  take(nowMs: number): boolean;
  /** Whether a token is left at `nowMs`, without taking it. */
  available(nowMs: number): boolean;
}

/**
 * An offload budget: at most `ratePerS` offloads per second on average, with bursts up to `burst`.
 *
 * @param options `ratePerS` (0 means no limit) and `burst` (default: one second's worth, at least 1)
 * @returns the budget
 * @throws RangeError when the rate is negative or not finite
 */
export function createOffloadBudget(options: { ratePerS: number; burst?: number }): OffloadBudget {
  const { ratePerS } = options;
  if (!Number.isFinite(ratePerS) || ratePerS < 0) {
    throw new RangeError(`Cannot create offload budget: rate must be a finite number >= 0, got ${ratePerS}`);
  }
  if (ratePerS === 0) return { take: () => true, available: () => true };
  const burst = options.burst ?? Math.max(1, ratePerS);
  let tokens = burst;
  let last: number | null = null;
  const refill = (nowMs: number) => {
    if (last !== null) tokens = Math.min(burst, tokens + ((nowMs - last) / 1000) * ratePerS);
    last = nowMs;
  };
  return {
    take(nowMs) {
      refill(nowMs);
      if (tokens < 1) return false;
      tokens -= 1;
      return true;
    },
    available(nowMs) {
      refill(nowMs);
      return tokens >= 1;
    },
  };
}
