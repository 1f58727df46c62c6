/**
 * Pre-processing of one sequence, shared by the inference workers and the cloud offload: validation of a
 * `T x J x C` frame array into a flat `Float32Array`, and linear resampling in time (sequence/window.ts turns a
 * request's frames into the span of time a model reads).
 *
 * Pure: no runtime, no I/O.
 *
 * @module
 */

/** Limits and the shape a model accepts. */
export interface SequenceLimits {
  joints: number;
  channels: number;
  maxFrames: number;
  /** The channel holding a point's detection confidence, if any: a point is usable when it is above 0. */
  confidenceChannel?: number | null;
}

/**
 * Check a `T x J x C` array of numbers and flatten it, in one pass.
 *
 * @param frames the client's frames
 * @param limits joints and channels the model was built for, and the most frames accepted
 * @returns the flattened values, the frame count and the usable points: with a confidence channel, points whose
 *   confidence is above 0; without one, points with any non-zero value (an all-zero sequence is nobody in view)
 * @throws TypeError on a wrong shape or a non-number; RangeError on a non-finite value or too many frames
 */
export function flattenFrames(
  frames: unknown,
  limits: SequenceLimits,
): { data: Float32Array; length: number; usablePoints: number } {
  const { joints, channels, maxFrames } = limits;
  const confidence = limits.confidenceChannel ?? -1;
  let usablePoints = 0;
  if (!Array.isArray(frames)) throw new TypeError("Cannot read frames: expected an array of frames");
  const t = frames.length;
  if (t === 0) throw new RangeError("Cannot read frames: expected at least 1 frame, got 0");
  if (t > maxFrames) throw new RangeError(`Cannot read frames: expected at most ${maxFrames} frames, got ${t}`);
  const data = new Float32Array(t * joints * channels);
  let o = 0;
  for (let f = 0; f < t; f++) {
    const frame = frames[f];
    if (!Array.isArray(frame)) throw new TypeError(`Cannot read frames: frame ${f} is not an array`);
    if (frame.length !== joints) {
      throw new TypeError(`Cannot read frames: expected ${joints} points in frame ${f}, got ${frame.length}`);
    }
    for (let p = 0; p < joints; p++) {
      const point = frame[p];
      if (!Array.isArray(point)) throw new TypeError(`Cannot read frames: point ${p} of frame ${f} is not an array`);
      if (point.length !== channels) {
        throw new TypeError(
          `Cannot read frames: expected ${channels} channels at frame ${f} point ${p}, got ${point.length}`,
        );
      }
      for (let k = 0; k < channels; k++) {
        const v = point[k];
        if (typeof v !== "number") {
          throw new TypeError(`Cannot read frames: value at frame ${f} point ${p} channel ${k} is not a number`);
        }
        if (!Number.isFinite(v) || Math.abs(v) > 3.4e38) {
          throw new RangeError(`Cannot read frames: value at frame ${f} point ${p} channel ${k} is not finite`);
        }
        data[o++] = v;
      }
      if (confidence >= 0 ? (point[confidence] as number) > 0 : point.some((v) => v !== 0)) usablePoints++;
    }
  }
  return { data, length: t, usablePoints };
}

/**
 * Resample a sequence to `outFrames` frames by linear interpolation over its whole length: output frame `i` reads
 * source position `i * (T - 1) / (outFrames - 1)`. Every channel is interpolated, confidence included. The model
 * build (`scripts/models/`) uses the same definition.
 *
 * @param data flattened `[inFrames, pointSize]` values
 * @param options `inFrames`, `outFrames` and `pointSize` (joints x channels); `keepLast`: only the last this many
 *   of the `outFrames` frames are computed and returned (default all)
 * @returns flattened `[keepLast ?? outFrames, pointSize]` values
 */
export function resample(
  data: Float32Array,
  options: { inFrames: number; outFrames: number; pointSize: number; keepLast?: number },
): Float32Array {
  const { inFrames, outFrames, pointSize } = options;
  const keep = Math.min(options.keepLast ?? outFrames, outFrames);
  if (data.length !== inFrames * pointSize) {
    throw new TypeError(`Cannot resample: expected ${inFrames * pointSize} values, got ${data.length}`);
  }
  if (inFrames < 1 || outFrames < 1) throw new RangeError("Cannot resample: frame counts must be at least 1");
  if (inFrames === outFrames) return data.slice((outFrames - keep) * pointSize);
  const out = new Float32Array(keep * pointSize);
  for (let i = outFrames - keep; i < outFrames; i++) {
    const s = inFrames === 1 || outFrames === 1 ? 0 : (i * (inFrames - 1)) / (outFrames - 1);
    const i0 = Math.floor(s);
    const i1 = Math.min(i0 + 1, inFrames - 1);
    const w = s - i0;
    const a = i0 * pointSize;
    const b = i1 * pointSize;
    const o = (i - (outFrames - keep)) * pointSize;
    for (let k = 0; k < pointSize; k++) out[o + k] = (1 - w) * data[a + k] + w * data[b + k];
  }
  return out;
}
