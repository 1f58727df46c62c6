/**
 * The pose pool: pose workers (workers/pose_worker.ts) behind a bounded FIFO queue, one clip per worker at a time.
 *
 * Apart from the inference pool (workers/pool.ts) on purpose: a 32-frame clip keeps a worker busy for seconds
 * (decode + pose, ~100 ms a frame) while a keypoint request takes milliseconds, so sharing workers would put every
 * keypoint request behind clips. Two pools let each be sized on its own (`POSE_WORKERS`, `WORKERS`) and the keypoints
 * a clip yields still go through the inference pool like any other request.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { ClipPose, PoseInference, PoseRequest, PoseResponse } from "./pose_protocol.ts";

export type { PoseInference };

/** Options of {@link createPosePool}. */
export interface PosePoolOptions {
  size: number;
  queueMax: number;
  /** workers/pose_worker.ts (or its bundled form). */
  workerUrl: URL;
}

interface Job {
  images: Uint8Array[];
  enqueuedAt: number;
  resolve: (r: ClipPose & { queueMs: number }) => void;
  reject: (e: unknown) => void;
}

/**
 * Start the pose workers and load the model in each.
 *
 * @param model the pose model's ONNX bytes
 * @param options pool size, queue bound, worker module
 * @returns the pool, once every worker is ready
 */
export async function createPosePool(model: Uint8Array, options: PosePoolOptions): Promise<PoseInference> {
  let nextId = 1;
  let closed = false;
  const queue: Job[] = [];
  const slots: { worker: Worker; job: (Job & { id: number; startedAt: number }) | null }[] = [];
  const pump = () => {
    for (const slot of slots) {
      if (slot.job || queue.length === 0) continue;
      const job = queue.shift()!;
      const id = nextId++;
      slot.job = { ...job, id, startedAt: performance.now() };
      slot.worker.postMessage({ type: "pose", id, images: job.images } satisfies PoseRequest);
    }
  };
  await Promise.all(Array.from({ length: options.size }, () =>
    new Promise<void>((resolve, reject) => {
      const worker = new Worker(options.workerUrl, { type: "module" });
      const slot: (typeof slots)[number] = { worker, job: null };
      slots.push(slot);
      const id = nextId++;
      worker.onmessage = (e: MessageEvent<PoseResponse>) => {
        const msg = e.data;
        if (msg.id === id) {
          if (msg.type === "ready") resolve();
          else reject(new AppError("MODEL_NOT_READY", `pose worker: ${msg.type === "error" ? msg.message : msg.type}`));
          return;
        }
        const job = slot.job;
        if (!job || job.id !== msg.id) return;
        slot.job = null;
        if (msg.type === "poses") {
          const { type: _t, id: _i, ...clip } = msg;
          job.resolve({ ...clip, queueMs: job.startedAt - job.enqueuedAt });
        } else if (msg.type === "error") job.reject(new AppError(msg.code, msg.message));
        pump();
      };
      worker.onerror = (e) => {
        e.preventDefault();
        const job = slot.job;
        slot.job = null;
        job?.reject(new AppError("INFERENCE_FAILED", `pose worker failed: ${e.message}`));
        reject(new AppError("MODEL_NOT_READY", `pose worker failed: ${e.message}`));
      };
      worker.postMessage({ type: "init", id, model } satisfies PoseRequest);
    })));
  return {
    pose(images) {
      if (closed) return Promise.reject(new AppError("MODEL_NOT_READY", "Cannot pose: the pose workers are closed"));
      const idle = slots.some((s) => !s.job);
      if (!idle && queue.length >= options.queueMax) {
        return Promise.reject(
          new AppError("OVERLOADED", "Cannot pose: the pose queue is full", { headers: { "Retry-After": "1" } }),
        );
      }
      return new Promise((resolve, reject) => {
        queue.push({ images, enqueuedAt: performance.now(), resolve, reject });
        pump();
      });
    },
    stats: () => ({
      workers: slots.length,
      busy: slots.filter((s) => s.job).length,
      queued: queue.length,
      queueMax: options.queueMax,
    }),
    close() {
      closed = true;
      const err = new AppError("MODEL_NOT_READY", "Cannot pose: the service is shutting down");
      for (const job of queue.splice(0)) job.reject(err);
      for (const s of slots) {
        s.job?.reject(err);
        s.worker.terminate();
      }
      return Promise.resolve();
    },
  };
}
