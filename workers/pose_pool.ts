/**
 * The pose pool: pose workers (workers/pose_worker.ts) behind a bounded FIFO queue, one clip per worker at a time.
 *
 * Apart from the inference pool (workers/pool.ts) on purpose: a 32-frame clip keeps a worker busy for seconds
 * (decode + pose, ~100 ms a frame) while a keypoint request takes milliseconds, so sharing workers would put every
 * keypoint request behind clips. Two pools let each be sized on its own (`POSE_WORKERS`, `WORKERS`) and the keypoints
 * a clip yields still go through the inference pool like any other request.
 *
 * Lifecycle: spawn -> load the model + warm up (a run of the model and of both image decoders) in every worker ->
 * ready -> close (terminate). The pool is ready ({@link PoseInference.ready}) while at least one worker is warm.
 *
 * Faults, as the inference pool handles them: a worker that crashes, or holds one clip past `clipTimeoutMs` (a
 * hang), is terminated and replaced with the same model (workers/respawn.ts: backoff while a replacement fails to
 * start). The clip it held fails, with 503 `POSE_TIMEOUT` for a hang and 503 `INFERENCE_FAILED` for a crash, both
 * with `Retry-After`; it is not retried, because a clip that hangs or crashes a worker would take the next one down
 * too. Queued clips wait for the replacement or another worker.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { ClipPose, PoseInference, PosePoolStats, PoseRequest, PoseResponse } from "./pose_protocol.ts";
import { createRespawner, startAll } from "./respawn.ts";

export type { PoseInference, PosePoolStats };

// onnxruntime-web replaces the global `Worker` once it initialises in a realm; keep the Web Worker constructor
// from before that.
const WebWorker: typeof Worker = globalThis.Worker;

/** Options of {@link createPosePool}. */
export interface PosePoolOptions {
  size: number;
  queueMax: number;
  /** workers/pose_worker.ts (or its bundled form). */
  workerUrl: URL;
  /** Longest one clip may hold a worker, in milliseconds; past it the worker is replaced. @default 60000 */
  clipTimeoutMs?: number;
}

interface Job {
  images: Uint8Array[];
  enqueuedAt: number;
  resolve: (r: ClipPose & { queueMs: number }) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  job: (Job & { id: number; startedAt: number }) | null;
  /** Fires when the clip passes its deadline. */
  deadline: ReturnType<typeof setTimeout> | undefined;
  /** Loaded and warm. */
  alive: boolean;
  /** Settles the start of this worker (init -> ready). */
  started: { resolve: () => void; reject: (e: unknown) => void } | null;
}

/**
 * Start the pose workers and load and warm the model in each.
 *
 * @param model the pose model's ONNX bytes
 * @param options pool size, queue bound, worker module, clip deadline
 * @returns the pool, once every worker is warm
 * @throws AppError MODEL_NOT_READY when a worker cannot load the model
 */
export async function createPosePool(model: Uint8Array, options: PosePoolOptions): Promise<PoseInference> {
  const clipTimeoutMs = options.clipTimeoutMs ?? 60_000;
  let nextId = 1;
  let closed = false;
  const queue: Job[] = [];
  const slots: Slot[] = [];
  const counters = {
    completed: 0,
    failed: 0,
    crashed: 0,
    timedOut: 0,
    restarts: 0,
    frames: 0,
    decodeMs: 0,
    poseMs: 0,
    warmupMs: 0,
  };
  const respawner = createRespawner((index) => spawn(index), { what: "pose worker", closed: () => closed });

  function pump(): void {
    for (const slot of slots) {
      if (queue.length === 0) return;
      if (!slot?.alive || slot.job) continue;
      const job = queue.shift()!;
      const id = nextId++;
      slot.job = { ...job, id, startedAt: performance.now() };
      slot.deadline = setTimeout(() => onFault(slot, "timeout"), clipTimeoutMs);
      slot.worker.postMessage({ type: "pose", id, images: job.images } satisfies PoseRequest);
    }
  }

  function onMessage(slot: Slot, msg: PoseResponse): void {
    if (slot.started) {
      const started = slot.started;
      slot.started = null;
      if (msg.type === "ready") {
        counters.warmupMs = msg.warmupMs;
        started.resolve();
      } else {
        started.reject(
          new AppError("MODEL_NOT_READY", `pose worker: ${msg.type === "error" ? msg.message : msg.type}`),
        );
      }
      return;
    }
    const job = slot.job;
    if (!job || job.id !== msg.id) return;
    slot.job = null;
    clearTimeout(slot.deadline);
    if (msg.type === "poses") {
      const { type: _t, id: _i, ...clip } = msg;
      counters.completed++;
      counters.frames += clip.frames.length;
      counters.decodeMs += clip.decodeMs;
      counters.poseMs += clip.poseMs;
      job.resolve({ ...clip, queueMs: job.startedAt - job.enqueuedAt });
    } else {
      counters.failed++;
      job.reject(
        msg.type === "error"
          ? new AppError(msg.code, msg.message)
          : new AppError("INTERNAL", `Cannot pose: the pose worker replied "${msg.type}" to a clip`),
      );
    }
    pump();
  }

  /** A crash or a hang: terminate the worker, fail its clip, replace it. */
  function onFault(slot: Slot, kind: "crash" | "timeout", reason = `clip passed its ${clipTimeoutMs} ms deadline`) {
    const index = slots.indexOf(slot);
    if (index < 0) return;
    slot.alive = false;
    clearTimeout(slot.deadline);
    slot.worker.terminate();
    const err = kind === "timeout"
      ? new AppError("POSE_TIMEOUT", `Cannot pose: the clip held a pose worker past ${clipTimeoutMs} ms`, {
        cause: reason,
        headers: { "Retry-After": "1" },
      })
      : new AppError("INFERENCE_FAILED", "Cannot pose: the pose worker failed on this clip", {
        cause: reason,
        headers: { "Retry-After": "1" },
      });
    if (slot.job) {
      counters.failed++;
      if (kind === "timeout") counters.timedOut++;
      else counters.crashed++;
      slot.job.reject(err);
      slot.job = null;
    }
    if (slot.started) {
      slot.started.reject(new AppError("MODEL_NOT_READY", `pose worker failed to start: ${reason}`));
      slot.started = null;
      return; // spawn's caller decides: startup fails, or the respawner tries again
    }
    console.error(JSON.stringify({ level: "error", msg: "pose worker failed; replacing it", kind, reason }));
    if (closed) return;
    counters.restarts++;
    respawner.respawn(index);
  }

  async function spawn(index: number): Promise<void> {
    const worker = new WebWorker(options.workerUrl.href, { type: "module" });
    const slot: Slot = { worker, job: null, deadline: undefined, alive: false, started: null };
    slots[index] = slot;
    worker.onmessage = (e: MessageEvent<PoseResponse>) => onMessage(slot, e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      onFault(slot, "crash", e.message);
    };
    try {
      await new Promise<void>((resolve, reject) => {
        slot.started = { resolve, reject };
        worker.postMessage({ type: "init", id: nextId++, model } satisfies PoseRequest);
      });
    } catch (err) {
      worker.terminate();
      throw err;
    }
    if (closed) {
      worker.terminate();
      return;
    }
    slot.alive = true;
    pump();
  }

  await startAll(options.size, spawn, () => {
    closed = true;
    for (const s of slots) s?.worker.terminate();
  });

  const aliveCount = () => slots.filter((s) => s?.alive).length;
  return {
    pose(images) {
      if (closed) return Promise.reject(new AppError("MODEL_NOT_READY", "Cannot pose: the pose workers are closed"));
      const idle = slots.some((s) => s?.alive && !s.job);
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
    ready: () => !closed && aliveCount() > 0,
    stats: () => ({
      workers: options.size,
      alive: aliveCount(),
      busy: slots.filter((s) => s?.job).length,
      queued: queue.length,
      queueMax: options.queueMax,
      ...counters,
    }),
    close() {
      closed = true;
      respawner.close();
      const err = new AppError("MODEL_NOT_READY", "Cannot pose: the service is shutting down");
      for (const job of queue.splice(0)) job.reject(err);
      for (const s of slots) {
        s.alive = false;
        clearTimeout(s.deadline);
        s.job?.reject(err);
        s.job = null;
        s.worker.terminate();
      }
      return Promise.resolve();
    },
  };
}
