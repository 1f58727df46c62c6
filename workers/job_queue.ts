/**
 * The queue of edge inference calls shared by the worker pool (workers/pool.ts) and the in-process engine
 * (workers/in_process.ts): calls wait as jobs, a free server takes the jobs at the head that fit one batch, the
 * measured time per sequence predicts the wait of a new call, and a call is shed (503 OVERLOADED) past the bound on
 * waiting calls or on expected wait.
 *
 * Pure bookkeeping: no threads, no timers.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { InferenceOutput } from "./pool.ts";
import type { JobOutcome, SequenceInput } from "./protocol.ts";

/** One waiting call. */
export interface Job {
  items: SequenceInput[];
  enqueuedAt: number;
  resolve: (v: InferenceOutput) => void;
  reject: (e: unknown) => void;
}

/** Options of {@link createJobQueue}. */
export interface JobQueueOptions {
  /** Calls that may wait; past it, calls are shed. */
  queueMax: number;
  /** Most sequences in one batch (a single call larger than this goes alone). */
  batchMax: number;
  /** Shed a call when the expected wait passes this, in milliseconds (Infinity: never by wait). */
  maxQueueWaitMs: number;
}

/** Weight of the newest batch in the moving average of the time per sequence. */
const EWMA_WEIGHT = 0.2;

/** The error a shed call gets: 503 OVERLOADED with Retry-After. */
export function overloadedError(why: string): AppError {
  return new AppError("OVERLOADED", `Cannot classify: ${why}`, { headers: { "Retry-After": "1" } });
}

/** The queue of {@link createJobQueue}. */
export interface JobQueue {
  /** Calls waiting. */
  readonly length: number;
  /** Sequences in the waiting calls. */
  readonly items: number;
  /** When the oldest waiting call came (performance.now()), or null when none waits. */
  oldestAt(): number | null;
  /** Queue a call; it settles when its batch is answered (see {@link JobQueue.settle}). */
  push(items: SequenceInput[]): Promise<InferenceOutput>;
  /** The jobs at the head that fit one batch (at least one; the queue must not be empty). */
  take(): { jobs: Job[]; items: number };
  /**
   * The error a new call gets now, or null when it may wait.
   *
   * @param waiting the calls that count as waiting (a free server's next call does not)
   * @param servers the servers taking batches (workers alive, or 1)
   * @param ahead sequences already handed to a server but not started (a batch waiting behind a busy worker)
   */
  shed(waiting: number, servers: number, ahead?: number): AppError | null;
  /**
   * What a new call would wait now, in milliseconds, from the measured time per sequence: the queued sequences and
   * `ahead` (see {@link JobQueue.shed}) over the servers.
   */
  expectedWaitMs(servers: number, ahead?: number): number;
  /** Count a batch's time, in milliseconds, into the moving average per sequence. */
  measured(ms: number, items: number): void;
  /** Resolve a job with its output and its time in the queue (`startedAt`: its batch's start). */
  settle(job: Job, output: InferenceOutput, startedAt: number): void;
  /**
   * Settle a batch's jobs by their outcomes, in order: each resolved (see {@link JobQueue.settle}) or rejected with
   * its error's code and message.
   *
   * @returns how many completed and how many failed
   */
  finish(jobs: Job[], outcomes: JobOutcome[], startedAt: number): { completed: number; failed: number };
  /** Put jobs taken earlier back at the head of the queue, in their order (their batch never ran). */
  requeue(taken: Job[]): void;
  /** Reject every waiting call with `err`. */
  rejectAll(err: unknown): void;
}

/**
 * Create the queue.
 *
 * @param options the bounds and the batch size
 * @returns the queue
 */
export function createJobQueue(options: JobQueueOptions): JobQueue {
  const jobs: Job[] = [];
  const batchMax = Math.max(1, options.batchMax);
  let items = 0;
  /** Moving average of a batch's time per sequence, in milliseconds; 0 until measured. */
  let msPerItem = 0;
  const expectedWaitMs = (servers: number, ahead = 0) => msPerItem * (items + ahead) / Math.max(1, servers);
  const settle = (job: Job, output: InferenceOutput, startedAt: number) =>
    job.resolve({ ...output, timings: { ...output.timings, queueMs: startedAt - job.enqueuedAt } });
  return {
    get length() {
      return jobs.length;
    },
    get items() {
      return items;
    },
    oldestAt: () => jobs[0]?.enqueuedAt ?? null,
    push(batch) {
      return new Promise((resolve, reject) => {
        jobs.push({ items: batch, enqueuedAt: performance.now(), resolve, reject });
        items += batch.length;
      });
    },
    take() {
      const taken: Job[] = [jobs.shift()!];
      let n = taken[0].items.length;
      while (jobs.length > 0 && n + jobs[0].items.length <= batchMax) {
        const job = jobs.shift()!;
        n += job.items.length;
        taken.push(job);
      }
      items -= n;
      return { jobs: taken, items: n };
    },
    shed(waiting, servers, ahead = 0) {
      if (waiting >= options.queueMax) return overloadedError("the inference queue is full");
      // Below a full batch, the next free server takes the whole queue at once: the wait is about one batch time.
      if (items >= batchMax && expectedWaitMs(servers, ahead) > options.maxQueueWaitMs) {
        return overloadedError(`the inference queue holds more than ${options.maxQueueWaitMs} ms of work`);
      }
      return null;
    },
    expectedWaitMs,
    measured(ms, n) {
      const sample = ms / Math.max(1, n);
      msPerItem = msPerItem === 0 ? sample : msPerItem + EWMA_WEIGHT * (sample - msPerItem);
    },
    settle,
    finish(taken, outcomes, startedAt) {
      let completed = 0;
      taken.forEach((job, i) => {
        const outcome: JobOutcome = outcomes[i] ??
          { ok: false, code: "INTERNAL", message: "Cannot classify: the batch's reply has no outcome for this call" };
        if (outcome.ok) {
          completed++;
          settle(job, {
            results: outcome.results,
            timings: { ...outcome.timings, queueMs: 0 },
            scoredBy: outcome.scoredBy,
          }, startedAt);
        } else {
          job.reject(new AppError(outcome.code, outcome.message));
        }
      });
      return { completed, failed: taken.length - completed };
    },
    requeue(taken) {
      jobs.unshift(...taken);
      for (const job of taken) items += job.items.length;
    },
    rejectAll(err) {
      for (const job of jobs.splice(0)) job.reject(err);
      items = 0;
    },
  };
}
