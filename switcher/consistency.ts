/**
 * Self-consistency of the edge model: its answer on a time-shifted copy of the same input. A prediction that moves
 * when the clip starts a few frames later is one the edge is unsure of, whatever its confidence says. Pure: numbers
 * in, numbers out; the caller runs the edge model on the copy.
 *
 * @module
 */

/**
 * A copy of a sequence shifted in time: the first `shift` frames dropped and the last frame repeated to keep the
 * length (so the edge model sees the same speed, a few frames later).
 *
 * @param data the sequence, flattened `[frames, points, channels]`
 * @param frames its frame count
 * @param fraction shift as a fraction of the length (at least one frame) @default 0.125
 * @returns the shifted copy, same length
 * @throws RangeError when the data does not split into `frames` frames, or with fewer than 2 frames
 */
export function timeShifted(data: Float32Array, frames: number, fraction = 0.125): Float32Array {
  if (frames < 2 || data.length % frames !== 0) {
    throw new RangeError(`Cannot shift sequence: ${data.length} values do not make ${frames} frames of 2 or more`);
  }
  const step = data.length / frames;
  const shift = Math.min(frames - 1, Math.max(1, Math.round(frames * fraction)));
  const out = new Float32Array(data.length);
  out.set(data.subarray(shift * step));
  const last = data.subarray((frames - 1) * step);
  for (let f = frames - shift; f < frames; f++) out.set(last, f * step);
  return out;
}

/**
 * How far the edge's answer moved between the original and the copy.
 *
 * @param probs class probabilities on the original
 * @param shifted class probabilities on the copy
 * @returns the total variation distance (half the L1 distance, in [0, 1]) and whether the top-1 class flipped
 */
export function consistencyStats(
  probs: ArrayLike<number>,
  shifted: ArrayLike<number>,
): { distance: number; flipped: number } {
  if (probs.length !== shifted.length || probs.length < 2) {
    throw new TypeError(`Cannot compare answers: ${probs.length} and ${shifted.length} probabilities`);
  }
  let d = 0;
  let a = 0;
  let b = 0;
  for (let i = 0; i < probs.length; i++) {
    d += Math.abs(probs[i] - shifted[i]);
    if (probs[i] > probs[a]) a = i;
    if (shifted[i] > shifted[b]) b = i;
  }
  return { distance: d / 2, flipped: a === b ? 0 : 1 };
}
