/**
 * The offload: one cloud call for the windows of a batch (the answer's offloads, or the background shadow calls),
 * with its deadline, checked against the label map, as probabilities or an `AppError` and the time it took. The
 * cloud is an adapter: the Open Inference Protocol client behind the circuit breaker, or a fake in tests.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { resample } from "../sequence/preprocess.ts";
import { softmax } from "../switcher/features.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";

/** The cloud model as the classifier needs it: an Open Inference Protocol client satisfies it. */
export interface CloudAdapter {
  infer(
    frames: Float32Array,
    shape: number[],
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<{ logits: Float32Array; modelVersion: string | null; ms: number }>;
}

/** What one cloud call gave: a probability vector per window, or the error; and its duration. */
export type CloudReply =
  | { probs: Float64Array[]; version: string; ms: number }
  | { error: AppError; ms: number };

/** An offloader bound to a cloud and a model pair. */
export interface Offloader {
  /** Call the cloud once for these windows (each of the cloud model's window length). Never throws. */
  call(windows: Float32Array[]): Promise<CloudReply>;
  /**
   * The cloud model's input for one sequence: the edge window when both models take the same length, else the raw
   * sequence resampled to the cloud's.
   */
  input(edgeWindow: Float32Array, raw: { data: Float32Array; length: number } | null): Float32Array;
  /** Whether {@link input} needs the raw sequence (the models' windows differ). */
  needsRaw: boolean;
}

/**
 * Bind the cloud call to a model pair.
 *
 * @param cloud the cloud adapter
 * @param options the edge and cloud specs and the deadline of one call in milliseconds
 * @returns the offloader
 */
export function createOffloader(
  cloud: CloudAdapter,
  options: { edgeSpec: ClassifierSpec; cloudSpec: ClassifierSpec; timeoutMs: number },
): Offloader {
  const { edgeSpec, cloudSpec } = options;
  const labels = edgeSpec.labels;
  const cloudWindow = cloudSpec.windowFrames;
  const pointSize = edgeSpec.joints * edgeSpec.channels;
  const sameWindow = cloudWindow === edgeSpec.windowFrames;
  return {
    needsRaw: !sameWindow,
    input(edgeWindow, raw) {
      if (sameWindow) return edgeWindow;
      return resample(raw!.data, { inFrames: raw!.length, outFrames: cloudWindow, pointSize });
    },
    async call(windows) {
      const t0 = performance.now();
      const size = cloudWindow * pointSize;
      const batch = new Float32Array(windows.length * size);
      windows.forEach((w, i) => batch.set(w, i * size));
      try {
        const reply = await cloud.infer(batch, [windows.length, cloudWindow, edgeSpec.joints, edgeSpec.channels], {
          timeoutMs: options.timeoutMs,
        });
        const k = labels.length;
        if (reply.logits.length !== windows.length * k) {
          throw new AppError(
            "OFFLOAD_FAILED",
            `Cannot offload: expected ${windows.length * k} logits, got ${reply.logits.length}`,
          );
        }
        const probs = windows.map((_, i) => softmax(reply.logits.subarray(i * k, (i + 1) * k)));
        return { probs, version: reply.modelVersion ?? cloudSpec.version, ms: performance.now() - t0 };
      } catch (err) {
        const error = err instanceof AppError
          ? err
          : new AppError("OFFLOAD_FAILED", "Cannot offload: the cloud call failed", { cause: err });
        return { error, ms: performance.now() - t0 };
      }
    },
  };
}
