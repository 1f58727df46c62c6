/**
 * The worker pool: a fixed number of inference workers behind a bounded queue, with the same signature as
 * in-process inference ({@link EdgeInference}). Inputs travel as transferred typed arrays.
 *
 * Lifecycle: spawn -> load + warm-up in every worker -> ready -> close (terminate).
 *
 * Micro-batching: a free worker takes every queued job at once, up to `batchMax` sequences (a job larger than that
 * goes alone), and classifies them in one forward pass; with `batchWaitMs` > 0, a worker that finds fewer waits up
 * to that long for more. A busy worker is also sent the next batch (up to `depth` batches held), which waits in its
 * message queue and starts the moment the running one ends, without a round trip through this thread; when a reply
 * comes, the next batch is sent before the replied callers are resumed. A batch that fails in the engine is
 * retried job by job in the worker, so one bad input fails its own job only.
 *
 * Load shedding: a call is refused with 503 `OVERLOADED` when `queueMax` jobs wait, or when at least a full batch
 * waits and the expected wait of a new job (the sequences queued, and those waiting inside busy workers behind the
 * batch each runs, x the measured time per sequence, post to reply, / the workers alive) passes `maxQueueWaitMs`:
 * past saturation the queue holds what the workers can serve in that time, whatever the request size, so accepted
 * requests keep a bounded latency instead of all of them slowing down.
 *
 * Faults: a worker that crashes (an uncaught error, an out-of-memory abort) or holds one task past
 * `taskTimeoutMs` (a hang) is terminated and replaced with the same models. The task it held fails with 503
 * `INFERENCE_FAILED` and `Retry-After` (every job of the batch it held does); it is not retried, because an input
 * that crashes or hangs a worker would take a second one down with it, and the caller can retry. Batches waiting
 * behind it in that worker never started: they go back to the head of the queue (they were posted as copies, so
 * their sequences are still here). Queued tasks wait for the replacement or another worker. A replacement that
 * fails to start is tried again with backoff (up to 30 s apart) until the pool closes, so the pool never shrinks for
 * good.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { ScoredBy, SwitcherRelease } from "../release/release.ts";
import {
  type EdgeResult,
  type EngineInit,
  type EngineTimings,
  type EngineVersions,
  type JobOutcome,
  type SequenceInput,
  transferablesOf,
  type WorkerRequest,
  type WorkerResponse,
} from "./protocol.ts";
import { createJobQueue, type Job } from "./job_queue.ts";
import { createRespawner, startAll } from "./respawn.ts";

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
  /** Batches sent to workers, and the sequences in them (their ratio is the mean batch size). */
  batches?: number;
  batchedItems?: number;
  /** Sequences waiting for a worker. */
  queuedItems?: number;
  /** What a new job would wait now, from the measured time per sequence, in milliseconds. */
  expectedWaitMs?: number;
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
  /**
   * The error a new call would be shed with now (the queue full, or its expected wait past the bound), or null: for
   * refusing a request before its body is read. Absent: never shed early.
   */
  overloaded?(): AppError | null;
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
  /**
   * Calls that may wait for a worker; past it, calls fail with 503 OVERLOADED. A batch posted behind a busy worker
   * (see `depth`) has left the queue.
   */
  queueMax: number;
  /** Module URL of the inference worker. @default workers/inference_worker.ts beside this module */
  workerUrl?: URL;
  /** Deadline of one batch in a worker, in milliseconds; past it the worker is replaced. @default 10000 */
  taskTimeoutMs?: number;
  /** Most sequences in one batch (a single job larger than this goes alone). @default 32 */
  batchMax?: number;
  /** Longest a free worker waits for a batch to fill, in milliseconds (0: take what is queued). @default 0 */
  batchWaitMs?: number;
  /**
   * Batches a worker may hold at once: with 2, the next batch waits in the worker's message queue while it runs one,
   * so it starts the moment the first ends instead of a round trip through this thread later. 1: one at a time. With
   * `batchWaitMs` > 0 a busy worker is sent only full batches ahead. @default 2
   */
  depth?: number;
  /**
   * Shed a call when the expected wait of a new job passes this, in milliseconds. @default Infinity (only
   * `queueMax` bounds the queue, as scripts that queue a whole dataset want)
   */
  maxQueueWaitMs?: number;
}

/** A batch posted to a worker and not answered yet. */
interface Posted {
  id: number;
  jobs: Job[];
  /** Sequences in the batch. */
  items: number;
}

interface Slot {
  worker: Worker;
  /**
   * The batches the worker holds, oldest first: the head is the one it runs (or will run next), the others wait in
   * its message queue (see `depth`). Empty when the worker is free.
   */
  posted: Posted[];
  /** When the head batch started: posted to a free worker, or the reply before it came. */
  startedAt: number;
  /** Fires when the head batch passes its deadline. */
  deadline: ReturnType<typeof setTimeout> | undefined;
  /** Resolvers of control messages (init, set_switcher) by id. */
  control: Map<number, { resolve: (m: WorkerResponse) => void; reject: (e: unknown) => void }>;
  alive: boolean;
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
  const slots: Slot[] = [];
  let nextId = 1;
  let current: EngineInit = init;
  let versions: EngineVersions = { edge: init.edge.spec.version, switcher: init.switcher.version };
  let closed = false;
  const taskTimeoutMs = options.taskTimeoutMs ?? 10_000;
  const batchMax = Math.max(1, options.batchMax ?? 32);
  const batchWaitMs = Math.max(0, options.batchWaitMs ?? 0);
  const depth = Math.max(1, Math.floor(options.depth ?? 2));
  const counters = { completed: 0, failed: 0, restarts: 0, crashed: 0, batches: 0, batchedItems: 0 };
  // A batch's time per sequence is measured from its post to the worker to the reply.
  const queue = createJobQueue({
    queueMax: options.queueMax,
    batchMax,
    maxQueueWaitMs: options.maxQueueWaitMs ?? Infinity,
  });
  /** Fires when the oldest queued job has waited `batchWaitMs` (a worker is free but the batch is not full). */
  let fillTimer: ReturnType<typeof setTimeout> | undefined;
  /** Restarts crashed workers (a failed replacement waits before the next try). */
  const respawner = createRespawner((index) => spawn(index), { what: "inference worker", closed: () => closed });

  function control(slot: Slot, msg: WorkerRequest): Promise<WorkerResponse> {
    return new Promise((resolve, reject) => {
      slot.control.set(msg.id, { resolve, reject });
      slot.worker.postMessage(msg);
    });
  }

  function aliveCount(): number {
    let n = 0;
    for (const s of slots) if (s?.alive) n++;
    return n;
  }

  /** Sequences posted to workers behind the batch each one runs: work ahead of a new call, outside the queue. */
  function waitingInWorkers(): number {
    let n = 0;
    for (const s of slots) if (s?.alive) { for (let i = 1; i < s.posted.length; i++) n += s.posted[i].items; }
    return n;
  }

  /** The error a new call gets now, or null when it may queue (never while a worker is free). */
  function overloaded(): AppError | null {
    if (slots.some((s) => s?.alive && s.posted.length === 0)) return null;
    return queue.shed(queue.length, aliveCount(), waitingInWorkers());
  }

  /** Whether a free worker should wait for the batch to fill (only with `batchWaitMs` > 0). */
  function shouldWait(): boolean {
    if (batchWaitMs === 0 || queue.items >= batchMax) return false;
    const waited = performance.now() - (queue.oldestAt() ?? performance.now());
    if (waited >= batchWaitMs) return false;
    if (fillTimer === undefined) {
      fillTimer = setTimeout(() => {
        fillTimer = undefined;
        dispatch();
      }, batchWaitMs - waited);
    }
    return true;
  }

  /** Arm the deadline of the slot's head batch, which starts now. */
  function startHead(slot: Slot, now: number): void {
    slot.startedAt = now;
    slot.deadline = setTimeout(
      () => onCrash(slots.indexOf(slot), slot, `task passed its ${taskTimeoutMs} ms deadline`),
      taskTimeoutMs,
    );
  }

  /** Disarm the deadline of the slot's head batch (it ended, or never went out). */
  function stopHead(slot: Slot): void {
    clearTimeout(slot.deadline);
    slot.deadline = undefined;
  }

  function send(slot: Slot): void {
    const { jobs, items } = queue.take();
    const id = nextId++;
    const behind = slot.posted.length > 0;
    slot.posted.push({ id, jobs, items });
    if (!behind) startHead(slot, performance.now());
    counters.batches++;
    counters.batchedItems += items;
    const batch = jobs.map((j) => j.items);
    // A batch that waits behind another is copied, not transferred: if the worker dies first, its sequences are
    // still here to go back to the queue.
    try {
      slot.worker.postMessage(
        { type: "classify", id, jobs: batch } satisfies WorkerRequest,
        behind ? [] : transferablesOf(batch),
      );
    } catch (err) {
      // A sequence that cannot be posted (a detached buffer) fails its batch here, never the dispatch loop.
      slot.posted.pop();
      if (!behind) stopHead(slot);
      const message = `Cannot classify: the batch could not be posted to a worker (${(err as Error).message})`;
      for (const job of jobs) {
        counters.failed++;
        job.reject(new AppError("INTERNAL", message));
      }
    }
  }

  function dispatch(): void {
    // Free workers first (a batch each), then a next batch behind each busy one, up to `depth`.
    for (let held = 0; held < depth; held++) {
      for (const slot of slots) {
        if (queue.length === 0) return;
        if (!slot?.alive || slot.posted.length !== held) continue;
        if (held === 0 && shouldWait()) return;
        // Waiting for batches to fill (`batchWaitMs`) asks for fuller batches: a busy worker gets only a full one.
        if (held > 0 && batchWaitMs > 0 && queue.items < batchMax) return;
        send(slot);
      }
    }
  }

  function onMessage(slot: Slot, msg: WorkerResponse): void {
    const pending = slot.control.get(msg.id);
    if (pending) {
      slot.control.delete(msg.id);
      pending.resolve(msg);
      return;
    }
    const head = slot.posted[0];
    if (!head || head.id !== msg.id) return;
    const jobs = head.jobs;
    const startedAt = slot.startedAt;
    const now = performance.now();
    queue.measured(now - startedAt, head.items);
    slot.posted.shift();
    stopHead(slot);
    // The batch queued behind it in the worker starts now.
    if (slot.posted.length > 0) startHead(slot, now);
    // The worker's next batch goes out before the replied callers resume.
    dispatch();
    const outcomes: JobOutcome[] = msg.type === "result"
      ? msg.outcomes
      : jobs.map(() =>
        msg.type === "error"
          ? { ok: false, code: msg.code, message: msg.message }
          : { ok: false, code: "INTERNAL", message: `Cannot classify: the worker replied "${msg.type}" to a batch` }
      );
    const done = queue.finish(jobs, outcomes, startedAt);
    counters.completed += done.completed;
    counters.failed += done.failed;
  }

  async function spawn(index: number): Promise<void> {
    const worker = new WebWorker(workerUrl.href, { type: "module" });
    const slot: Slot = {
      worker,
      posted: [],
      startedAt: 0,
      deadline: undefined,
      control: new Map(),
      alive: false,
    };
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
    if (!slot.alive && slot.posted.length === 0 && slot.control.size === 0) return;
    slot.alive = false;
    clearTimeout(slot.deadline);
    slot.worker.terminate();
    const err = new AppError("INFERENCE_FAILED", "Cannot classify: the inference worker failed on this request", {
      cause: reason,
      headers: { "Retry-After": "1" },
    });
    const [head, ...waiting] = slot.posted.splice(0);
    for (const job of head?.jobs ?? []) {
      counters.failed++;
      counters.crashed++;
      job.reject(err);
    }
    // The batches behind it had not started: they go back to the head of the queue, in order, for another worker.
    queue.requeue(waiting.flatMap((p) => p.jobs));
    dispatch();
    for (const p of slot.control.values()) p.reject(err);
    slot.control.clear();
    console.error(JSON.stringify({ level: "error", msg: "inference worker failed; replacing it", reason }));
    if (closed) return;
    counters.restarts++;
    respawner.respawn(index);
  }

  await startAll(options.size, spawn, () => {
    closed = true;
    for (const s of slots) s?.worker.terminate();
  });

  return {
    classify(items) {
      if (closed) return Promise.reject(new AppError("MODEL_NOT_READY", "Cannot classify: the pool is closed"));
      const refused = overloaded();
      if (refused) return Promise.reject(refused);
      const answered = queue.push(items);
      dispatch();
      return answered;
    },
    overloaded,
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
      alive: aliveCount(),
      busy: slots.filter((s) => s && s.posted.length > 0).length,
      queued: queue.length,
      queueMax: options.queueMax,
      queuedItems: queue.items,
      expectedWaitMs: queue.expectedWaitMs(aliveCount(), waitingInWorkers()),
      ...counters,
    }),
    async close() {
      closed = true;
      respawner.close();
      clearTimeout(fillTimer);
      const err = new AppError("MODEL_NOT_READY", "Cannot classify: the pool is closed");
      queue.rejectAll(err);
      for (const s of slots) {
        s.alive = false;
        clearTimeout(s.deadline);
        s.worker.terminate();
        for (const job of s.posted.splice(0).flatMap((p) => p.jobs)) job.reject(err);
      }
      await Promise.resolve();
    },
  };
}
