/**
 * Edge inference on the calling thread, behind the pool's signature ({@link EdgeInference}): the service's
 * `WORKERS=0` (a device with one core, or the lowest latency at low load: no hop to a worker and back), and scripts
 * and tests that want no workers (the contract suite runs both). The pool does not import this module, so the engine
 * is loaded on the HTTP thread only when asked for.
 *
 * Like a worker of the pool, it micro-batches: calls queue, and when the engine is free it takes every queued
 * sequence (up to `batchMax`) as one forward pass. Between batches it yields to the event loop (a message, not a
 * timer: timers nested this deep wait 2 ms or more), so that requests that arrived during a batch are read and join
 * the next one. Calls are shed like the pool's: past `queueMax` queued calls, or past `maxQueueWaitMs` of expected
 * wait. A forward pass holds the thread it runs on for its whole duration (about 0.3 ms a sequence for the default
 * edge model).
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { classifyJobs, createEngine } from "./engine.ts";
import { createJobQueue } from "./job_queue.ts";
import type { EdgeInference } from "./pool.ts";
import type { EngineInit } from "./protocol.ts";

/** How long the engine keeps its scheduling channel open without a call, in milliseconds. */
const IDLE_CLOSE_MS = 1000;

/** Options of {@link createInProcessInference}. */
export interface InProcessOptions {
  /** Calls that may wait; past it, calls fail with 503 OVERLOADED. @default Infinity */
  queueMax?: number;
  /** Most sequences in one forward pass (a single call larger than this goes alone). @default 32 */
  batchMax?: number;
  /** Shed a call when the expected wait of a new one passes this, in milliseconds. @default Infinity */
  maxQueueWaitMs?: number;
}

/**
 * Edge inference on the calling thread, with the same signature as the pool.
 *
 * @param init models and runtime
 * @param options queue bound, batch size and shedding
 * @returns the ready engine behind the {@link EdgeInference} signature
 */
export async function createInProcessInference(
  init: EngineInit,
  options: InProcessOptions = {},
): Promise<EdgeInference> {
  const { engine } = await createEngine(init);
  const queueMax = options.queueMax ?? Infinity;
  const queue = createJobQueue({
    queueMax,
    batchMax: options.batchMax ?? 32,
    maxQueueWaitMs: options.maxQueueWaitMs ?? Infinity,
  });
  const counters = { completed: 0, failed: 0, batches: 0, batchedItems: 0 };
  let running = false;
  let scheduled = false;
  let closed = false;
  /**
   * The next batch starts from a message to this thread: after the I/O that is ready (requests that arrived during
   * the batch join the next one), without a timer's clamp. A channel's first message comes before that I/O, so one
   * channel serves while calls keep coming; it is closed after a second without any (an unref'd timer), so that an idle
   * engine keeps no process alive.
   */
  let tick: MessageChannel | null = null;
  let idle: ReturnType<typeof setTimeout> | undefined;

  function schedule(): void {
    if (scheduled || running || closed) return;
    clearTimeout(idle);
    idle = undefined;
    if (queue.length === 0) {
      idle = setTimeout(closeTick, IDLE_CLOSE_MS);
      Deno.unrefTimer(idle);
      return;
    }
    scheduled = true;
    if (!tick) {
      tick = new MessageChannel();
      tick.port1.onmessage = () => {
        scheduled = false;
        void runBatch();
      };
    }
    tick.port2.postMessage(null);
  }

  function closeTick(): void {
    clearTimeout(idle);
    idle = undefined;
    tick?.port1.close();
    tick?.port2.close();
    tick = null;
  }

  function overloaded(): AppError | null {
    // As in the pool, the call a free engine is about to take does not wait.
    return queue.shed(running ? queue.length : Math.max(0, queue.length - 1), 1);
  }

  /** One forward pass over the jobs at the head of the queue; each job gets its own results. */
  async function runBatch(): Promise<void> {
    if (running || queue.length === 0 || closed) return;
    running = true;
    const { jobs, items } = queue.take();
    counters.batches++;
    counters.batchedItems += items;
    const startedAt = performance.now();
    try {
      const outcomes = await classifyJobs(engine, jobs.map((j) => j.items));
      queue.measured(performance.now() - startedAt, items);
      const done = queue.finish(jobs, outcomes, startedAt);
      counters.completed += done.completed;
      counters.failed += done.failed;
    } finally {
      running = false;
      schedule();
    }
  }

  return {
    classify(items) {
      if (closed) return Promise.reject(new AppError("MODEL_NOT_READY", "Cannot classify: the engine is closed"));
      const refused = overloaded();
      if (refused) return Promise.reject(refused);
      const answered = queue.push(items);
      schedule();
      return answered;
    },
    overloaded,
    setSwitcher: (s) => engine.setSwitcher(s),
    versions: () => engine.versions(),
    stats: () => ({
      size: 1,
      alive: 1,
      busy: running ? 1 : 0,
      queued: queue.length,
      queueMax,
      queuedItems: queue.items,
      expectedWaitMs: queue.expectedWaitMs(1),
      restarts: 0,
      crashed: 0,
      ...counters,
    }),
    async close() {
      closed = true;
      closeTick();
      queue.rejectAll(new AppError("MODEL_NOT_READY", "Cannot classify: the engine is closed"));
      await engine.release();
    },
  };
}
