/**
 * The worker pool: a fixed number of inference workers behind a bounded queue, with the same signature as
 * in-process inference ({@link EdgeInference}). Inputs travel as transferred typed arrays.
 *
 * Lifecycle: spawn -> load + warm-up in every worker -> ready -> close (terminate).
 *
 * Faults: a worker that crashes (an uncaught error, an out-of-memory abort) or holds one task past
 * `taskTimeoutMs` (a hang) is terminated and replaced with the same models. The task it held fails with 503
 * `INFERENCE_FAILED` and `Retry-After`; it is not retried, because an input that crashes or hangs a worker would
 * take a second one down with it, and the caller can retry. Queued tasks wait for the replacement or another
 * worker. A replacement that fails to start is tried again with backoff (up to 30 s apart) until the pool closes,
 * so the pool never shrinks for good.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { ScoredBy, SwitcherRelease } from "../release/release.ts";
import type {
  EdgeResult,
  EngineInit,
  EngineTimings,
  EngineVersions,
  SequenceInput,
  WorkerRequest,
  WorkerResponse,
} from "./protocol.ts";

// onnxruntime-web replaces the global `Worker` once it initialises in a realm; keep the Web Worker constructor
// from before that.
const WebWorker: typeof Worker = globalThis.Worker;

/** Timings of one classify call, in milliseconds. */
export interface InferenceTimings extends EngineTimings {
  /** Time spent waiting for a free worker. */
  queueMs: number;
}

/** Pool state, for health checks and metrics. */
export interface PoolStats {
  size: number;
  /** Workers loaded and serving now (below `size` while a replacement starts). */
  alive?: number;
  busy: number;
  queued: number;
  queueMax: number;
  completed: number;
  failed: number;
  restarts: number;
  /** Tasks that failed because their worker crashed or passed its deadline. */
  crashed?: number;
}

/** What one classify call returns: a result per sequence, timings, and the switcher release that scored them. */
export interface InferenceOutput {
  results: EdgeResult[];
  timings: InferenceTimings;
  /** The switcher release and threshold that scored every result of the call. */
  scoredBy: ScoredBy;
}

/**
 * Edge inference, in a worker pool or in-process (workers/in_process.ts, which this module does not import: the
 * pool never loads the engine on the calling thread).
 */
export interface EdgeInference {
  /** Classify sequences in one batch. @throws AppError OVERLOADED when the queue is full */
  classify(items: SequenceInput[]): Promise<InferenceOutput>;
  /** Load a new switcher release everywhere, or keep the old one everywhere if any load fails. */
  setSwitcher(switcher: SwitcherRelease): Promise<EngineVersions>;
  versions(): EngineVersions;
  stats(): PoolStats;
  close(): Promise<void>;
}

/** Options of {@link createWorkerPool}. */
export interface PoolOptions {
  /** Number of workers. */
  size: number;
  /** Calls that may wait for a worker; past it, calls fail with 503 OVERLOADED. */
  queueMax: number;
  /** Module URL of the inference worker. @default workers/inference_worker.ts beside this module */
  workerUrl?: URL;
  /** Deadline of one task in a worker, in milliseconds; past it the worker is replaced. @default 10000 */
  taskTimeoutMs?: number;
}

interface Job {
  items: SequenceInput[];
  enqueuedAt: number;
  resolve: (v: InferenceOutput) => void;
  reject: (e: unknown) => void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  startedAt: number;
  /** Fires when the job passes its deadline. */
  deadline: ReturnType<typeof setTimeout> | undefined;
  /** Resolvers of control messages (init, set_switcher) by id. */
  control: Map<number, { resolve: (m: WorkerResponse) => void; reject: (e: unknown) => void }>;
  alive: boolean;
}

function errorFrom(msg: Extract<WorkerResponse, { type: "error" }>): AppError {
  return new AppError(msg.code, msg.message);
}

/**
 * Start a pool of inference workers and wait until every one has loaded and warmed up its models.
 *
 * @param init models and runtime, copied to every worker
 * @param options pool size, queue bound and worker module
 * @returns the ready pool
 * @throws AppError MODEL_NOT_READY when a worker cannot load the models
 */
export async function createWorkerPool(init: EngineInit, options: PoolOptions): Promise<EdgeInference> {
  const workerUrl = options.workerUrl ?? new URL("./inference_worker.ts", import.meta.url);
  const queue: Job[] = [];
  const slots: Slot[] = [];
  let nextId = 1;
  let current: EngineInit = init;
  let versions: EngineVersions = { edge: init.edge.spec.version, switcher: init.switcher.version };
  let closed = false;
  const taskTimeoutMs = options.taskTimeoutMs ?? 10_000;
  const counters = { completed: 0, failed: 0, restarts: 0, crashed: 0 };
  /** Pending restarts (a failed replacement waits before the next try). */
  const respawnTimers = new Set<ReturnType<typeof setTimeout>>();

  function control(slot: Slot, msg: WorkerRequest): Promise<WorkerResponse> {
    return new Promise((resolve, reject) => {
      slot.control.set(msg.id, { resolve, reject });
      slot.worker.postMessage(msg);
    });
  }

  function dispatch(): void {
    for (const slot of slots) {
      if (queue.length === 0) return;
      if (!slot.alive || slot.job) continue;
      const job = queue.shift()!;
      slot.job = job;
      slot.startedAt = performance.now();
      slot.deadline = setTimeout(
        () => onCrash(slots.indexOf(slot), slot, `task passed its ${taskTimeoutMs} ms deadline`),
        taskTimeoutMs,
      );
      const items = job.items;
      slot.worker.postMessage(
        { type: "classify", id: nextId++, items } satisfies WorkerRequest,
        items.map((i) => i.data.buffer as ArrayBuffer),
      );
    }
  }

  function onMessage(slot: Slot, msg: WorkerResponse): void {
    const pending = slot.control.get(msg.id);
    if (pending) {
      slot.control.delete(msg.id);
      pending.resolve(msg);
      return;
    }
    const job = slot.job;
    if (!job) return;
    slot.job = null;
    clearTimeout(slot.deadline);
    const queueMs = slot.startedAt - job.enqueuedAt;
    if (msg.type === "result") {
      counters.completed++;
      job.resolve({ results: msg.results, timings: { ...msg.timings, queueMs }, scoredBy: msg.scoredBy });
    } else if (msg.type === "error") {
      counters.failed++;
      job.reject(errorFrom(msg));
    }
    dispatch();
  }

  async function spawn(index: number): Promise<void> {
    const worker = new WebWorker(workerUrl.href, { type: "module" });
    const slot: Slot = { worker, job: null, startedAt: 0, deadline: undefined, control: new Map(), alive: false };
    slots[index] = slot;
    worker.onmessage = (e: MessageEvent<WorkerResponse>) => onMessage(slot, e.data);
    worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      onCrash(index, slot, e.message);
    };
    const reply = await control(slot, { type: "init", id: nextId++, init: current });
    if (reply.type === "error") {
      worker.terminate();
      throw new AppError("MODEL_NOT_READY", `Cannot start inference worker: ${reply.message}`);
    }
    if (closed) {
      worker.terminate();
      return;
    }
    if (reply.type === "ready") versions = reply.versions;
    slot.alive = true;
    dispatch();
  }

  function onCrash(index: number, slot: Slot, reason: string): void {
    if (slots[index] !== slot) return;
    if (!slot.alive && slot.job === null && slot.control.size === 0) return;
    slot.alive = false;
    clearTimeout(slot.deadline);
    slot.worker.terminate();
    const err = new AppError("INFERENCE_FAILED", "Cannot classify: the inference worker failed on this request", {
      cause: reason,
      headers: { "Retry-After": "1" },
    });
    if (slot.job) {
      counters.failed++;
      counters.crashed++;
      slot.job.reject(err);
      slot.job = null;
    }
    for (const p of slot.control.values()) p.reject(err);
    slot.control.clear();
    console.error(JSON.stringify({ level: "error", msg: "inference worker failed; replacing it", reason }));
    if (closed) return;
    counters.restarts++;
    respawn(index, 1);
  }

  /** Replace the worker in `index`, trying again with backoff until it starts or the pool closes. */
  function respawn(index: number, attempt: number): void {
    spawn(index).catch((e) => {
      console.error(JSON.stringify({
        level: "error",
        msg: "inference worker restart failed; trying again",
        attempt,
        error: String(e),
      }));
      if (closed) return;
      const t = setTimeout(() => {
        respawnTimers.delete(t);
        if (!closed) respawn(index, attempt + 1);
      }, Math.min(30_000, 100 * 2 ** Math.min(attempt, 10)));
      respawnTimers.add(t);
    });
  }

  try {
    await Promise.all(Array.from({ length: options.size }, (_, i) => spawn(i)));
  } catch (err) {
    closed = true;
    for (const s of slots) s?.worker.terminate();
    throw err;
  }

  return {
    classify(items) {
      if (closed) return Promise.reject(new AppError("MODEL_NOT_READY", "Cannot classify: the pool is closed"));
      const idle = slots.some((s) => s.alive && !s.job);
      if (!idle && queue.length >= options.queueMax) {
        return Promise.reject(
          new AppError("OVERLOADED", "Cannot classify: the inference queue is full", {
            headers: { "Retry-After": "1" },
          }),
        );
      }
      return new Promise((resolve, reject) => {
        queue.push({ items, enqueuedAt: performance.now(), resolve, reject });
        dispatch();
      });
    },
    async setSwitcher(switcher) {
      const previous = current.switcher;
      const live = slots.filter((s) => s.alive);
      const replies = await Promise.allSettled(
        live.map((s) => control(s, { type: "set_switcher", id: nextId++, switcher })),
      );
      const failure = replies.find((r) => r.status === "rejected" || r.value.type === "error");
      if (failure) {
        // Put back the previous switcher wherever the new one loaded, so every worker serves one version.
        await Promise.allSettled(
          live.map((s) => control(s, { type: "set_switcher", id: nextId++, switcher: previous })),
        );
        const reason = failure.status === "rejected"
          ? String(failure.reason)
          : (failure.value as Extract<WorkerResponse, { type: "error" }>).message;
        throw new AppError("MODEL_NOT_READY", `Cannot load switcher: ${reason}`);
      }
      current = { ...current, switcher };
      const first = replies[0];
      if (first?.status === "fulfilled" && first.value.type === "switcher_set") versions = first.value.versions;
      return versions;
    },
    versions: () => versions,
    stats: () => ({
      size: options.size,
      alive: slots.filter((s) => s?.alive).length,
      busy: slots.filter((s) => s.job).length,
      queued: queue.length,
      queueMax: options.queueMax,
      ...counters,
    }),
    async close() {
      closed = true;
      for (const t of respawnTimers) clearTimeout(t);
      respawnTimers.clear();
      const err = new AppError("MODEL_NOT_READY", "Cannot classify: the pool is closed");
      for (const job of queue.splice(0)) job.reject(err);
      for (const s of slots) {
        s.alive = false;
        clearTimeout(s.deadline);
        s.worker.terminate();
        s.job?.reject(err);
      }
      await Promise.resolve();
    },
  };
}
