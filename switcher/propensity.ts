/**
 * Inverse-propensity weights for logged pairs.
 *
 * The service only sees the cloud's answer for what reached the cloud: everything the switcher offloaded
 * (propensity 1) and the small exploration sample of kept requests (propensity = the exploration rate). Pairs from
 * offloads alone over-represent hard cases; weighting each pair by 1 / propensity makes the weighted pairs stand for
 * all traffic. Weights are clipped at 1 / {@link DEFAULT_PROPENSITY_CLIP} so that a handful of rare pairs cannot
 * dominate training (the usual bias-variance trade of clipped IPW).
 *
 * @module
 */

/** Propensities below this are treated as this: the largest weight is 20. */
export const DEFAULT_PROPENSITY_CLIP = 0.05;

/**
 * The weight of one logged pair.
 *
 * @param propensity the probability with which the request reached the cloud, in (0, 1]
 * @param clip the smallest propensity used (default {@link DEFAULT_PROPENSITY_CLIP})
 * @returns 1 / max(propensity, clip)
 * @throws RangeError when the propensity is not in (0, 1] or the clip not in (0, 1]
 */
export function ipwWeight(propensity: number, clip = DEFAULT_PROPENSITY_CLIP): number {
  if (!(clip > 0 && clip <= 1)) throw new RangeError(`Cannot weight pair: clip must be in (0, 1], got ${clip}`);
  if (!(propensity > 0 && propensity <= 1)) {
    throw new RangeError(`Cannot weight pair: propensity must be in (0, 1], got ${propensity}`);
  }
  return 1 / Math.max(propensity, clip);
}
