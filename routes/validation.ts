/**
 * Shared request plumbing for the routes: the validation hook that turns schema failures into `INVALID_INPUT`,
 * and the check of a sequence against the loaded model.
 *
 * @module
 */
import type { Hook } from "@hono/zod-openapi";
import type { Env } from "hono";
import { AppError } from "../errors.ts";
import type { SequenceItem } from "../serve/classifier.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import { flattenFrames } from "../sequence/preprocess.ts";
import { toModelTime } from "../sequence/window.ts";

/** The `defaultHook` of every sub-app: a failed schema check throws `INVALID_INPUT` naming the first problem. */
// deno-lint-ignore no-explicit-any
export const validationHook: Hook<any, Env, any, any> = (result) => {
  if (result.success) return;
  const issue = result.error.issues[0];
  const path = issue?.path.length ? issue.path.join(".") : "body";
  throw new AppError("INVALID_INPUT", `Cannot validate request: ${path}: ${issue?.message ?? "invalid"}`);
};

/**
 * Check one sequence against the loaded edge model, flatten it and turn it into the span of time the model reads
 * (sequence/window.ts: resampled to the model's rate, the most recent window).
 *
 * @param body the schema-valid sequence
 * @param options the edge model's spec and the most frames accepted
 * @returns the sequence ready for the classifier, at the model's `fps`, at most its window
 * @throws AppError INVALID_INPUT naming what does not fit; NO_USABLE_INPUT when no point of any frame is usable;
 *   SEQUENCE_TOO_SHORT when it spans less than the model reads
 */
export function toSequenceItem(
  body: { id?: string; layout: string; fps?: number; frames: unknown[] },
  options: { spec: ClassifierSpec; maxFrames: number },
): SequenceItem {
  const { spec, maxFrames } = options;
  checkLayout(body.layout, spec);
  let flat: ReturnType<typeof flattenFrames>;
  try {
    flat = flattenFrames(body.frames, {
      joints: spec.joints,
      channels: spec.channels,
      maxFrames,
      confidenceChannel: spec.confidenceChannel,
    });
  } catch (err) {
    throw asInvalidInput(err);
  }
  return flatToSequenceItem(body, flat, spec);
}

/**
 * The rest of {@link toSequenceItem} for frames already flattened (by `flattenFrames`, or in one pass from the raw
 * body by routes/fast_body.ts): the usable points, then the span of time the model reads.
 *
 * @param body the schema-valid members (`frames` is not read)
 * @param flat the flattened frames, their count and usable points
 * @param spec the edge model's spec
 * @returns the sequence ready for the classifier
 * @throws AppError as {@link toSequenceItem}
 */
export function flatToSequenceItem(
  body: { id?: string; layout: string; fps?: number },
  flat: { data: Float32Array; length: number; usablePoints: number },
  spec: ClassifierSpec,
): SequenceItem {
  checkLayout(body.layout, spec);
  if (flat.usablePoints === 0) {
    throw new AppError(
      "NO_USABLE_INPUT",
      spec.confidenceChannel === null
        ? `Cannot classify: every value of the ${flat.length} frames is 0 (nothing in view)`
        : `Cannot classify: every point of the ${flat.length} frames has confidence 0 (nobody in view)`,
    );
  }
  try {
    const { data, length, fps } = toModelTime(flat.data, {
      inFrames: flat.length,
      fps: body.fps,
      pointSize: spec.joints * spec.channels,
      model: spec,
    });
    return { data, length, fps, layout: body.layout, clientId: body.id ?? null };
  } catch (err) {
    throw asInvalidInput(err);
  }
}

/** A TypeError or RangeError from below validation (a shape, a length, a value) as INVALID_INPUT; others as they are. */
function asInvalidInput(err: unknown): unknown {
  return err instanceof TypeError || err instanceof RangeError
    ? new AppError("INVALID_INPUT", err.message, { cause: err })
    : err;
}

function checkLayout(layout: string, spec: ClassifierSpec): void {
  if (layout !== spec.layout) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot classify: the loaded model was built for layout "${spec.layout}", got "${layout}"`,
    );
  }
}
