/**
 * The decision log: a batched writer off the answer's path. `append` only queues; batches are written in one
 * transaction when `batchSize` rows wait or `flushIntervalMs` has passed. A failed write keeps its rows, in order,
 * and retries with backoff; rows are never dropped. `close` flushes everything.
 *
 * Lifecycle: open -> append/flush... -> close (final flush; afterwards `append` throws).
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { Db } from "./client.ts";
import { getDecision, insertDecisions } from "./queries.ts";
import type { DecisionRecord } from "./schema.ts";

/** Writer statistics, for health and metrics. */
export interface DecisionLogStats {
  written: number;
  failedWrites: number;
  backlog: number;
  lastError: string | null;
}

/** The batched decision log. */
export interface DecisionLog {
  /** Queue one decision; never blocks. @throws AppError DB_UNAVAILABLE after close */
  append(record: DecisionRecord): void;
  /** A decision by id, whether still queued or written. */
  get(id: string): Promise<DecisionRecord | null>;
  /** Write everything queued now. */
  flush(): Promise<void>;
  /** Stop the timer and write everything; throws DB_UNAVAILABLE naming how many rows remain if it cannot. */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /** Decisions accepted but not yet written. */
  backlog(): number;
  stats(): DecisionLogStats;
}

/** Options of {@link createDecisionLog}. */
export interface DecisionLogOptions {
  /** Rows per write. */
  batchSize: number;
  /** Longest a row waits before its batch is written, in milliseconds. */
  flushIntervalMs: number;
  /** The write itself (default: a multi-row insert in one transaction); tests pass a failing one. */
  write?: (rows: DecisionRecord[]) => Promise<void>;
  /** Largest wait between retries of a failed write, in milliseconds. @default 5000 */
  maxBackoffMs?: number;
}

/**
 * Create the decision log over a database.
 *
 * @param db the database
 * @param options batching and retry settings
 * @returns the log
 */
export function createDecisionLog(db: Db, options: DecisionLogOptions): DecisionLog {
  const write = options.write ?? ((rows: DecisionRecord[]) => insertDecisions(db, rows));
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const queue: DecisionRecord[] = [];
  const queued = new Map<string, DecisionRecord>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let writing: Promise<void> | null = null;
  let failures = 0;
  let closed = false;
  const counters: DecisionLogStats = { written: 0, failedWrites: 0, backlog: 0, lastError: null };

  function schedule(delayMs: number): void {
    if (timer !== undefined || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      flush().catch(() => {/* counted in stats; retried */});
    }, delayMs);
  }

  async function writeAll(): Promise<void> {
    while (queue.length > 0) {
      const batch = queue.slice(0, options.batchSize);
      try {
        await write(batch);
      } catch (err) {
        failures++;
        counters.failedWrites++;
        counters.lastError = err instanceof Error ? err.message : String(err);
        console.error(JSON.stringify({
          level: "error",
          msg: "decision log write failed; keeping rows and retrying",
          rows: queue.length,
          error: counters.lastError,
        }));
        schedule(Math.min(maxBackoffMs, 50 * 2 ** Math.min(failures, 10)));
        throw new AppError("DB_UNAVAILABLE", `Cannot write decisions: ${counters.lastError}`, { cause: err });
      }
      failures = 0;
      queue.splice(0, batch.length);
      for (const r of batch) queued.delete(r.id);
      counters.written += batch.length;
    }
  }

  function flush(): Promise<void> {
    if (timer !== undefined) {
      clearTimeout(timer);
      timer = undefined;
    }
    // One write at a time, in order; a flush during a write waits for it and then writes what is left.
    const run = (writing ?? Promise.resolve()).then(writeAll);
    const settled = run.catch(() => {});
    writing = settled;
    settled.then(() => {
      if (writing === settled) writing = null;
    });
    return run;
  }

  return {
    append(record) {
      if (closed) throw new AppError("DB_UNAVAILABLE", "Cannot log decision: the decision log is closed");
      queue.push(record);
      queued.set(record.id, record);
      if (queue.length >= options.batchSize && failures === 0) flush().catch(() => {});
      else {schedule(
          failures === 0 ? options.flushIntervalMs : Math.min(maxBackoffMs, 50 * 2 ** Math.min(failures, 10)),
        );}
    },
    async get(id) {
      return queued.get(id) ?? await getDecision(db, id);
    },
    flush,
    async close(closeOptions = {}) {
      closed = true;
      const deadline = performance.now() + (closeOptions.timeoutMs ?? 10_000);
      for (;;) {
        try {
          await flush();
          break;
        } catch {
          if (performance.now() > deadline) break;
          await new Promise((r) => setTimeout(r, Math.min(maxBackoffMs, 50 * 2 ** Math.min(failures, 10))));
        }
      }
      if (timer !== undefined) clearTimeout(timer);
      timer = undefined;
      if (queue.length > 0) {
        throw new AppError(
          "DB_UNAVAILABLE",
          `Cannot close the decision log: ${queue.length} decisions are not written`,
        );
      }
    },
    backlog: () => queue.length,
    stats: () => ({ ...counters, backlog: queue.length }),
  };
}
