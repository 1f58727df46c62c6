/**
 * Deadlines, pauses and backoff: the one place the service's waits are written. The database writer, the outbox
 * replay, the cloud circuit and the service's shutdown all bound their waits with these.
 *
 * Pure timing helpers: no I/O.
 *
 * @module
 */

/** Options of {@link backoffMs}. */
export interface BackoffOptions {
  /** Delay after the first failure, in milliseconds. */
  baseMs: number;
  /** Longest delay, in milliseconds. */
  maxMs: number;
  /**
   * Share of the delay drawn at random and taken off, in [0, 1], so that processes retrying the same resource do
   * not retry in step. @default 0
   */
  jitter?: number;
  /** Source of randomness in [0, 1). @default Math.random */
  random?: () => number;
}

/**
 * The delay before retry number `attempt`: `baseMs` doubled per attempt after the first, capped at `maxMs`, minus
 * up to `jitter` of it at random.
 *
 * @param attempt consecutive failures so far (1 for the first)
 * @param options base, cap and jitter
 * @returns the delay, in milliseconds
 * @example
 * backoffMs(3, { baseMs: 50, maxMs: 5000 }); // 200
 */
export function backoffMs(attempt: number, options: BackoffOptions): number {
  const doublings = Math.min(Math.max(attempt - 1, 0), 30);
  const ms = Math.min(options.maxMs, options.baseMs * 2 ** doublings);
  const jitter = options.jitter ?? 0;
  return jitter > 0 ? ms * (1 - jitter * (options.random ?? Math.random)()) : ms;
}

/**
 * Wait `ms` milliseconds, or less when `signal` aborts (then it resolves, it does not throw).
 *
 * @param ms the pause, in milliseconds
 * @param signal ends the pause early
 */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal?.addEventListener("abort", done, { once: true });
  });
}

/**
 * Wait for `work`, at most `ms` milliseconds; `work` goes on when the time is up (its failure is then ignored).
 *
 * @param work what to wait for
 * @param ms the longest wait, in milliseconds
 * @returns true when `work` settled in time (resolved, or rejected: its error is thrown), false when time ran out
 */
export async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  work.catch(() => {/* thrown below when in time, too late to matter otherwise */});
  try {
    return await Promise.race([
      work.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), Math.max(0, ms))),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** Thrown by {@link withDeadline} when the time is up. */
export class DeadlineError extends Error {
  /**
   * @param message what did not finish in time
   */
  constructor(message: string) {
    super(message);
    this.name = "DeadlineError";
  }
}

/**
 * `work`'s result, or a {@link DeadlineError} once `ms` milliseconds have passed; `work` goes on regardless (an
 * outcome after the deadline is ignored, so it must be safe to happen late, e.g. an idempotent insert).
 *
 * @param work what to wait for
 * @param ms the deadline, in milliseconds
 * @param what names the work in the error: "the write" -> "the write took longer than 5000 ms"
 * @returns what `work` returns
 * @throws DeadlineError past the deadline; whatever `work` throws before it
 */
export async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  work.catch(() => {/* reported by the race, or too late to matter */});
  try {
    return await Promise.race([
      work,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new DeadlineError(`${what} took longer than ${ms} ms`)), Math.max(0, ms));
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
