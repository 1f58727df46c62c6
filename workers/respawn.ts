/**
 * Starting a pool's workers (all or none), and replacing a worker that crashed or hung: start it again, and when
 * the replacement fails to start, try again with backoff (200 ms doubling to 30 s) until it starts or its pool
 * closes, so a pool never shrinks for good. One helper for the inference pool (workers/pool.ts) and the pose pool
 * (workers/pose_pool.ts).
 *
 * @module
 */
import { backoffMs } from "../lib/deadline.ts";

/** Restarts the workers of one pool. */
export interface Respawner {
  /** Start the worker in slot `index` again now; a failed start is retried with backoff. */
  respawn(index: number): void;
  /** Cancel every pending retry (the pool is closing). */
  close(): void;
}

/** Options of {@link createRespawner}. */
export interface RespawnOptions {
  /** What is restarted, for the log line of a failed start, e.g. "inference worker". */
  what: string;
  /** Whether the pool has closed: then nothing is retried. */
  closed: () => boolean;
}

/**
 * Create the respawner of a pool.
 *
 * @param spawn starts the worker of a slot, resolving once it serves, rejecting when it cannot start
 * @param options what is restarted and whether the pool has closed
 * @returns the respawner
 * @example
 * const respawner = createRespawner((i) => spawn(i), { what: "pose worker", closed: () => closed });
 * respawner.respawn(0);
 */
export function createRespawner(spawn: (index: number) => Promise<void>, options: RespawnOptions): Respawner {
  const timers = new Set<ReturnType<typeof setTimeout>>();
  function attempt(index: number, n: number): void {
    spawn(index).catch((e) => {
      console.error(JSON.stringify({
        level: "error",
        msg: `${options.what} restart failed; trying again`,
        attempt: n,
        error: String(e),
      }));
      if (options.closed()) return;
      const t = setTimeout(() => {
        timers.delete(t);
        if (!options.closed()) attempt(index, n + 1);
      }, backoffMs(n + 1, { baseMs: 100, maxMs: 30_000 }));
      timers.add(t);
    });
  }
  return {
    respawn: (index) => attempt(index, 1),
    close() {
      for (const t of timers) clearTimeout(t);
      timers.clear();
    },
  };
}

/**
 * Start every worker of a pool; when one cannot start, terminate all (those started and those starting) and fail.
 *
 * @param size the number of workers
 * @param spawn starts the worker of a slot
 * @param abort marks the pool closed and terminates its workers
 * @throws the first start failure
 */
export async function startAll(
  size: number,
  spawn: (index: number) => Promise<void>,
  abort: () => void,
): Promise<void> {
  try {
    await Promise.all(Array.from({ length: size }, (_, i) => spawn(i)));
  } catch (err) {
    abort();
    throw err;
  }
}
