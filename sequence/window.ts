/**
 * The span of time a model reads: a sequence recorded at any rate becomes the model's window, a fixed span of time.
 *
 * A model is built for `windowFrames` frames at `fps` frames per second (`wasm-models/manifest.json`): the default
 * models read 32 frames at 30 fps, 1.03 s. A request's frames are
 *
 * 1. resampled in time to the model's rate (T frames at `fps` span (T - 1) / `fps` seconds, which at the model's
 *    rate are round((T - 1) x model fps / `fps`) + 1 frames, linearly interpolated; a missing `fps` is the model's);
 * 2. cut to the most recent window when longer: the model reads the last `windowFrames` frames, the latest 1.03 s,
 *    as a live camera's client expects (one inference per request; averaging several windows would multiply the cost
 *    and blur the switcher's features, which were calibrated on one window each);
 * 3. when shorter than the window but at least {@link minimumFrames} long, stretched to the window by the workers
 *    (workers/engine.ts), as the build's time augmentation did in training (`scripts/models/build.py`: half of the
 *    training windows are a crop of 80 to 100% of the window stretched back to it, i.e. replayed up to 1.25 x
 *    slower); shorter than that is refused with 422 `SEQUENCE_TOO_SHORT`, naming the minimum at the request's rate.
 *
 * Pure: numbers in, numbers out.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { resample } from "./preprocess.ts";

/** The time a model reads: its window and its rate, and optionally the fewest frames it was trained to read. */
export interface ModelTime {
  windowFrames: number;
  fps: number;
  /**
   * The fewest frames (at the model's rate) the model reads, stretched to its window.
   * @default the frames of 80% of the window's span (the build's shortest time crop), e.g. 26 of 32
   */
  minFrames?: number;
}

/** The shortest span the build's time augmentation trains on, as a fraction of the window's span. */
export const MIN_SPAN_FRACTION = 0.8;

/**
 * The fewest frames, at the model's rate, that the model reads: its manifest's `minFrames`, or the frames of
 * {@link MIN_SPAN_FRACTION} of its window's span.
 *
 * @param model the model's window and rate
 * @returns a frame count between 1 and the window
 */
export function minimumFrames(model: ModelTime): number {
  const fromSpan = Math.ceil(MIN_SPAN_FRACTION * (model.windowFrames - 1) - 1e-9) + 1;
  return Math.min(model.windowFrames, Math.max(1, model.minFrames ?? fromSpan));
}

/**
 * How many frames a sequence of `inFrames` frames at `fromFps` has at `toFps`, by {@link toModelTime}'s rule.
 *
 * @param inFrames frames at `fromFps`
 * @param rates `fromFps` and `toFps`
 * @returns round((inFrames - 1) x toFps / fromFps) + 1
 */
export function framesAtRate(inFrames: number, rates: { fromFps: number; toFps: number }): number {
  return Math.round(((inFrames - 1) * rates.toFps) / rates.fromFps) + 1;
}

/**
 * The fewest frames at `fps` that reach `frames` frames at the model's rate.
 *
 * @param frames frames at the model's rate
 * @param rates the request's `fps` and the model's `modelFps`
 * @returns the smallest count T with framesAtRate(T, fps -> modelFps) >= frames
 */
export function framesNeededAt(frames: number, rates: { fps: number; modelFps: number }): number {
  const at = (t: number) => framesAtRate(t, { fromFps: rates.fps, toFps: rates.modelFps });
  let t = Math.max(1, Math.floor(((frames - 1) * rates.fps) / rates.modelFps) - 1);
  while (at(t) >= frames && t > 1) t--;
  while (at(t) < frames) t++;
  return t;
}

/**
 * Check that `inFrames` frames at `fps` span at least what the model reads, before anything is computed from them
 * (a camera clip is checked before its frames are decoded and posed).
 *
 * @param inFrames the frames sent
 * @param fps their rate
 * @param model the edge model's rate and window
 * @returns the frame count at the model's rate
 * @throws AppError SEQUENCE_TOO_SHORT (422) naming the minimum at the request's rate
 */
export function checkSpan(inFrames: number, fps: number, model: ModelTime): number {
  const total = fps === model.fps ? inFrames : framesAtRate(inFrames, { fromFps: fps, toFps: model.fps });
  const minFrames = minimumFrames(model);
  if (total < minFrames) {
    const needed = framesNeededAt(minFrames, { fps, modelFps: model.fps });
    throw new AppError(
      "SEQUENCE_TOO_SHORT",
      `Cannot classify: ${inFrames} frames at ${fps} fps span ${((inFrames - 1) / fps).toFixed(3)} s; the model ` +
        `reads at least ${needed} frames at ${fps} fps (${minFrames} at its ${model.fps} fps, ` +
        `${((minFrames - 1) / model.fps).toFixed(3)} s)`,
    );
  }
  return total;
}

/**
 * A sequence as the model reads it: resampled in time to the model's rate and cut to its most recent window.
 *
 * @param data flattened `[inFrames, pointSize]` values
 * @param options the frame count, the request's `fps` (missing: the model's rate), values per frame and the model
 * @returns the values at the model's rate, at most `windowFrames` frames, at least {@link minimumFrames}
 * @throws AppError SEQUENCE_TOO_SHORT (422) when the sequence spans less than the model reads, naming the minimum
 *   frames at the request's rate
 */
export function toModelTime(
  data: Float32Array,
  options: { inFrames: number; fps?: number; pointSize: number; model: ModelTime },
): { data: Float32Array; length: number; fps: number } {
  const { inFrames, pointSize, model } = options;
  const fps = options.fps ?? model.fps;
  const total = checkSpan(inFrames, fps, model);
  const keep = Math.min(total, model.windowFrames);
  if (total === inFrames) {
    // Same rate (or a rate that keeps the frame count): no interpolation, only the most recent window.
    const values = keep === inFrames ? data : data.slice((inFrames - keep) * pointSize);
    return { data: values, length: keep, fps: model.fps };
  }
  return {
    data: resample(data, { inFrames, outFrames: total, pointSize, keepLast: keep }),
    length: keep,
    fps: model.fps,
  };
}
