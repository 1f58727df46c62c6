/**
 * The outbox replay: a loop that writes the rows waiting in the outbox to the database, oldest first, until the
 * outbox is empty, pausing with backoff after each failed attempt.
 *
 * States ({@link ReplayState}): `idle` (nothing to do, or not started) -> `replaying` (an attempt in flight) ->
 * `backing_off` (the last attempt failed; waiting before the next) -> `replaying` ... -> `idle` once the outbox is
 * empty; `stopped` after {@link OutboxReplay.stop} (an attempt in flight finishes first).
 *
 * @module
 */
import { backoffMs, type BackoffOptions, sleep } from "../lib/deadline.ts";
import type { Outbox } from "./outbox.ts";
import type { DecisionRecord } from "./schema.ts";

/** The replay loop's state; see the module doc. */
export type ReplayState = "idle" | "replaying" | "backing_off" | "stopped";

/** The replay loop. */
export interface OutboxReplay {
  /** Start the loop unless it runs, is stopped, or the outbox is empty. */
  start(): void;
  /** @returns the state now */
  state(): ReplayState;
  /** @returns the running loop, which resolves when it ends, or null */
  running(): Promise<void> | null;
  /** Cut a backoff pause short (e.g. at shutdown, to try once more now). */
  wake(): void;
  /** Stop: no new attempt starts; resolves once the attempt in flight has ended. */
  stop(): Promise<void>;
}

/** Options of {@link createOutboxReplay}. */
export interface OutboxReplayOptions {
  /** The database write (must ignore ids already written). */
  write: (rows: DecisionRecord[]) => Promise<void>;
  batchSize: number;
  /** Pause between failed attempts. */
  backoff: BackoffOptions;
  /** Called after each failed attempt, with the consecutive failure count. */
  onFailure?: (err: unknown, attempts: number) => void;
  /** Called when the loop ends with the outbox empty. */
  onEmpty?: () => void;
}

/**
 * Create the replay loop over an outbox (idle until started).
 *
 * @param outbox the outbox
 * @param options the write, batch size, backoff and callbacks
 * @returns the loop
 */
export function createOutboxReplay(outbox: Outbox, options: OutboxReplayOptions): OutboxReplay {
  let state: ReplayState = "idle";
  let stopped = false;
  let loop: Promise<void> | null = null;
  let pause: AbortController | null = null;

  async function run(): Promise<void> {
    let attempts = 0;
    while (!stopped && outbox.size() > 0) {
      state = "replaying";
      try {
        await outbox.replay(options.write, { batchSize: options.batchSize });
        attempts = 0;
      } catch (err) {
        attempts++;
        options.onFailure?.(err, attempts);
        if (stopped) break;
        state = "backing_off";
        pause = new AbortController();
        await sleep(backoffMs(attempts, options.backoff), pause.signal);
        pause = null;
      }
    }
    state = stopped ? "stopped" : "idle";
    if (outbox.size() === 0) options.onEmpty?.();
    // In the same step as the loop's last check: a start() after it begins a new loop.
    loop = null;
  }

  return {
    start() {
      if (loop || stopped || outbox.size() === 0) return;
      loop = run();
    },
    state: () => state,
    running: () => loop,
    wake: () => pause?.abort(),
    async stop() {
      stopped = true;
      state = "stopped";
      pause?.abort();
      await loop;
    },
  };
}
