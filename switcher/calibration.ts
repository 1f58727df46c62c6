/**
 * Choosing the switcher's threshold on held-out pairs: for a target offload rate (a quantile of the scores, as
 * RouteLLM calibrates its routers), or for a target agreement with the cloud model.
 *
 * @module
 */

function checkScores(scores: ArrayLike<number>, action: string): void {
  if (scores.length === 0) throw new RangeError(`Cannot ${action}: expected at least 1 score, got 0`);
  for (let i = 0; i < scores.length; i++) {
    if (!Number.isFinite(scores[i])) throw new RangeError(`Cannot ${action}: score ${i} is not finite`);
  }
}

/**
 * The threshold that offloads a target fraction of held-out requests (offload when score >= threshold).
 *
 * With `k = round(rate * n)`, the threshold is the k-th highest score, so exactly `k` scores are at or above it
 * when scores are distinct; tied scores at the boundary all offload, so ties can only raise the rate. A rate of 0
 * returns a threshold above every score (offload nothing); a rate of 1 returns the lowest score.
 *
 * @param scores held-out switcher scores
 * @param rate target offload rate in [0, 1]
 * @returns the threshold
 * @throws RangeError when the rate is outside [0, 1] or a score is not finite
 */
export function thresholdForOffloadRate(scores: ArrayLike<number>, rate: number): number {
  if (!(rate >= 0 && rate <= 1)) {
    throw new RangeError(`Cannot calibrate threshold: rate must be in [0, 1], got ${rate}`);
  }
  checkScores(scores, "calibrate threshold");
  const sorted = Float64Array.from(scores).sort().reverse();
  const k = Math.round(rate * sorted.length);
  if (k === 0) return sorted[0] + Math.max(1e-9, Math.abs(sorted[0]) * 1e-9);
  return sorted[k - 1];
}

/**
 * The fraction of scores at or above a threshold.
 *
 * @param scores switcher scores
 * @param threshold the threshold
 * @returns the offload rate
 */
export function offloadRate(scores: ArrayLike<number>, threshold: number): number {
  checkScores(scores, "measure offload rate");
  let k = 0;
  for (let i = 0; i < scores.length; i++) if (scores[i] >= threshold) k++;
  return k / scores.length;
}

/**
 * The highest threshold (least offloading) whose hybrid agrees with the cloud model on at least `target` of the
 * held-out pairs. An offloaded pair always agrees (the cloud answers it); a kept pair agrees when its hard DMD
 * label is 0.
 *
 * @param scores held-out switcher scores
 * @param disagree hard DMD labels of the same pairs (1 when edge and cloud disagree)
 * @param target agreement in [0, 1]
 * @returns the threshold and the offload rate it gives
 */
export function thresholdForAgreement(
  scores: ArrayLike<number>,
  disagree: ArrayLike<number>,
  target: number,
): { threshold: number; offloadRate: number } {
  if (!(target >= 0 && target <= 1)) {
    throw new RangeError(`Cannot calibrate threshold: agreement must be in [0, 1], got ${target}`);
  }
  checkScores(scores, "calibrate threshold");
  if (disagree.length !== scores.length) {
    throw new TypeError(`Cannot calibrate threshold: expected ${scores.length} labels, got ${disagree.length}`);
  }
  const n = scores.length;
  const order = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[b] - scores[a]);
  let disagreeKept = 0;
  for (let i = 0; i < n; i++) disagreeKept += disagree[i] ? 1 : 0;
  // Offload in score order; agreement = 1 - (disagreements still kept) / n.
  if (1 - disagreeKept / n >= target) {
    return { threshold: thresholdForOffloadRate(scores, 0), offloadRate: 0 };
  }
  for (let k = 1; k <= n; k++) {
    const i = order[k - 1];
    disagreeKept -= disagree[i] ? 1 : 0;
    // Only a cut between distinct scores is a threshold.
    if (k < n && scores[order[k]] === scores[i]) continue;
    if (1 - disagreeKept / n >= target) return { threshold: scores[i], offloadRate: k / n };
  }
  return { threshold: scores[order[n - 1]], offloadRate: 1 };
}
