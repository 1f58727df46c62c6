/**
 * Camera frames in: a clip of JPEG or PNG frames is checked against the limits from the image headers alone (count,
 * bytes, pixels, one size for the whole clip) before anything is decoded, decoded and posed in the pose workers,
 * and its keypoints then take the path every keypoint sequence takes (edge model, switcher, offload, log). A clip in
 * which the pose model finds nobody is answered `NO_PERSON`, never with a label. Frames are never stored.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { fullCrop, ImageHeaderError, type ImageKind, readImageHeader } from "../sequence/image.ts";
import { checkSpan, toModelTime } from "../sequence/window.ts";
import type { ClipPose, PoseInference } from "../workers/pose_protocol.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import type { Answer, HybridClassifier, SequenceItem } from "./classifier.ts";

/** Limits of one clip, all checked before decoding. */
export interface FrameLimits {
  /** Most frames in a clip. */
  maxFrames: number;
  /** Most bytes in one encoded frame. */
  maxImageBytes: number;
  /** Most pixels (width x height) in one frame. */
  maxPixels: number;
}

/** Below this mean keypoint score the clip has nobody in it (MoveNet scores empty scenes about 0.05-0.15). */
export const NO_PERSON_QUALITY = 0.2;

/** A keypoint scored below this is dropped (0, 0, 0), the convention of the training data (scripts/models/mocap.py). */
export const KEYPOINT_DROPPED = 0.1;

/** One clip as the routes read it. */
export interface Clip {
  id?: string;
  /** Frames per second; missing: the edge model's rate. */
  fps?: number;
  images: Uint8Array[];
}

/** What a clip's answer adds to a sequence's answer. */
export interface ClipInput {
  kind: ImageKind;
  frames: number;
  width: number;
  height: number;
  decodeMs: number;
  poseMs: number;
  poseQueueMs: number;
  /** Mean keypoint score over all frames and joints. */
  poseQuality: number;
}

/**
 * Check a clip against the limits from its headers alone.
 *
 * @param images the encoded frames
 * @param limits the limits
 * @returns the kind and size shared by every frame
 * @throws AppError INVALID_INPUT (not an image, mixed kinds or sizes, too many frames or pixels),
 *   PAYLOAD_TOO_LARGE (a frame over the byte limit)
 */
export function checkClip(
  images: Uint8Array[],
  limits: FrameLimits,
): { kind: ImageKind; width: number; height: number } {
  if (images.length === 0) throw new AppError("INVALID_INPUT", "Cannot read frames: expected at least 1 image, got 0");
  if (images.length > limits.maxFrames) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot read frames: expected at most ${limits.maxFrames} images, got ${images.length}`,
    );
  }
  let first: { kind: ImageKind; width: number; height: number } | null = null;
  images.forEach((bytes, i) => {
    if (bytes.length > limits.maxImageBytes) {
      throw new AppError(
        "PAYLOAD_TOO_LARGE",
        `Cannot read frames: image ${i} has ${bytes.length} bytes, the limit is ${limits.maxImageBytes}`,
      );
    }
    let h;
    try {
      h = readImageHeader(bytes);
    } catch (err) {
      if (err instanceof ImageHeaderError) {
        throw new AppError("INVALID_INPUT", `Cannot read frames: image ${i}: ${err.message}`, { cause: err });
      }
      throw err;
    }
    if (h.width < 1 || h.height < 1 || h.width * h.height > limits.maxPixels) {
      throw new AppError(
        "INVALID_INPUT",
        `Cannot read frames: image ${i} is ${h.width}x${h.height}, expected 1 to ${limits.maxPixels} pixels`,
      );
    }
    if (first === null) first = h;
    else if (h.kind !== first.kind || h.width !== first.width || h.height !== first.height) {
      throw new AppError(
        "INVALID_INPUT",
        `Cannot read frames: image ${i} is a ${h.width}x${h.height} ${h.kind}, image 0 a ${first.width}x${first.height} ${first.kind}; a clip has one kind and size`,
      );
    }
  });
  return first!;
}

/**
 * A clip's poses as a COCO-17 keypoint sequence in the models' coordinates: x and y normalised to the frame padded
 * to a square (0..1, aspect kept, as the training data's virtual cameras), the keypoint score as confidence; points
 * scored below {@link KEYPOINT_DROPPED} are (0, 0, 0).
 *
 * @param pose the clip's poses
 * @returns flattened `[T, 17, 3]`
 */
export function posesToSequence(pose: ClipPose): Float32Array {
  const crop = fullCrop(pose.width, pose.height);
  const out = new Float32Array(pose.frames.length * 17 * 3);
  pose.frames.forEach((f, t) => {
    f.keypoints.forEach(([x, y, s], j) => {
      if (s < KEYPOINT_DROPPED) return;
      const o = (t * 17 + j) * 3;
      out[o] = (x - crop.x) / crop.size;
      out[o + 1] = (y - crop.y) / crop.size;
      out[o + 2] = s;
    });
  });
  return out;
}

/** What {@link classifyClips} needs. */
export interface FramesDeps {
  pose: PoseInference;
  classifier: HybridClassifier;
  edgeSpec: ClassifierSpec;
  limits: FrameLimits;
}

/** One clip's outcome: its answer, or its own error. */
export type ClipOutcome =
  | { ok: true; answer: Answer; input: ClipInput; keypoints: number[][][] }
  | { ok: false; error: AppError };

/**
 * Pose every clip (limits first), then classify the clips with a person in one classifier call.
 *
 * @param clips the clips
 * @param deps the pose pool, the classifier, the edge model's spec and the limits
 * @param opts the forced route, the request and batch ids
 * @returns one outcome per clip, in order
 */
export async function classifyClips(
  clips: Clip[],
  deps: FramesDeps,
  opts: { forced?: "edge" | "cloud"; requestId: string; batchId?: string },
): Promise<ClipOutcome[]> {
  const spec = deps.edgeSpec;
  if (spec.layout !== "coco17" || spec.joints !== 17 || spec.channels !== 3) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot classify frames: the loaded model was built for layout "${spec.layout}", the pose model gives "coco17"`,
    );
  }
  type Posed = { item: SequenceItem; input: ClipInput; keypoints: number[][][] } | { error: AppError };
  const posed = await Promise.all(clips.map(async (clip): Promise<Posed> => {
    try {
      const head = checkClip(clip.images, deps.limits);
      // A clip too short for the edge model is refused before its frames are decoded and posed (one frame each).
      checkSpan(clip.images.length, clip.fps ?? spec.fps, spec);
      const pose = await deps.pose.pose(clip.images);
      const quality = pose.frames.reduce((s, f) => s + f.score, 0) / pose.frames.length;
      const input: ClipInput = {
        kind: head.kind,
        frames: pose.frames.length,
        width: pose.width,
        height: pose.height,
        decodeMs: pose.decodeMs,
        poseMs: pose.poseMs,
        poseQueueMs: pose.queueMs,
        poseQuality: quality,
      };
      if (quality < NO_PERSON_QUALITY) {
        throw new AppError(
          "NO_PERSON",
          `Cannot classify frames: no person found (mean keypoint score ${quality.toFixed(3)} < ${NO_PERSON_QUALITY})`,
        );
      }
      // The span of time the edge model reads, as for a keypoint request (sequence/window.ts).
      const timed = toModelTime(posesToSequence(pose), {
        inFrames: pose.frames.length,
        fps: clip.fps,
        pointSize: spec.joints * spec.channels,
        model: spec,
      });
      const item: SequenceItem = {
        ...timed,
        layout: "coco17",
        clientId: clip.id ?? null,
        input: { kind: head.kind, decodeMs: pose.decodeMs, poseMs: pose.poseMs, poseQuality: quality },
        // For tiers that take frames (serve/cascade.ts).
        clip: { kind: head.kind, images: clip.images },
      };
      return { item, input, keypoints: pose.frames.map((f) => f.keypoints) };
    } catch (err) {
      if (err instanceof AppError) return { error: err };
      throw err;
    }
  }));
  const ready = posed.flatMap((p, index) => ("item" in p ? [{ ...p, index }] : []));
  const outcomes: ClipOutcome[] = posed.map((p) => ("error" in p ? { ok: false, error: p.error } : null!));
  if (ready.length > 0) {
    const answers = await deps.classifier.classify(ready.map((r) => r.item), opts);
    answers.forEach((answer, k) => {
      const r = ready[k];
      outcomes[r.index] = { ok: true, answer, input: r.input, keypoints: r.keypoints };
    });
  }
  return outcomes;
}
