/**
 * The decision log: a batched writer off the answer's path, with a durable local outbox for when the database
 * cannot take the rows. `append` checks and queues the row; batches are written atomically (one multi-row insert)
 * when `batchSize` rows wait or `flushIntervalMs` has passed, or at once in durable mode.
 *
 * Nothing accepted is dropped silently:
 * - with an outbox ({@link openOutbox}): a write that fails or passes `writeTimeoutMs` moves the queued rows to the
 *   outbox (appended in order, fsynced); while the outbox holds rows, newer rows go there too, after them, and a
 *   replay loop writes them to the database oldest first (exponential backoff between failed attempts, capped at
 *   `maxBackoffMs`); when it is empty, rows go straight to the database again. Memory stays bounded by what
 *   arrives between two flushes;
 * - without an outbox: a failed write keeps its rows in memory, in order, and is retried with backoff;
 * - every insert ignores ids already written (`ON CONFLICT DO NOTHING` on the UUIDv7 key), so a retry or a replay
 *   after a lost reply or a crash writes nothing twice;
 * - a row the database itself refuses (a constraint; retrying cannot help) is set apart from its batch, logged in
 *   full as a JSON line and counted in `stats().rejected`, so that one bad row cannot block the log;
 * - `close` writes everything to the database, or to the outbox, within its deadline; it throws `DB_UNAVAILABLE`
 *   naming how many rows remain only when neither can take them (`pending()` returns them).
 *
 * What "acknowledged as logged" means:
 * - `durable: false` (default): `append` returns at once; the row is in memory until its batch is written (at most
 *   `flushIntervalMs` later while the database answers). A clean shutdown (SIGTERM) loses nothing; a crash of the
 *   process (kill -9) loses the rows of the last `flushIntervalMs` or so.
 * - `durable: true`: `append` returns a promise that resolves once the row is committed to the database or fsynced
 *   in the outbox (group commit: rows arriving while a write is in flight share the next one). The service answers
 *   only after it resolves, so every answered decision survives a kill -9, and is replayed at the next start.
 *
 * Lifecycle: create (replays an outbox left by an earlier process) -> append / flush ... -> close (final flush;
 * afterwards `append` throws).
 *
 * Parts, each with its own state:
 * - the queue (`db/decision_queue.ts`): accepted rows, oldest first, and their acknowledgements;
 * - the writer (`db/decision_writer.ts`, when given as `writer`): the database connection, trusted only while it
 *   works (`disconnected | ready | failing | gone | closed`);
 * - the outbox replay (`db/outbox_replay.ts`): `idle | replaying | backing_off | stopped`;
 * - this module: the writer loop (`idle | draining`) and where new rows go ({@link LogMode}: `direct` to the
 *   database, or `outbox` while it holds rows), plus the write-health report ({@link DecisionLogHealth}).
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { backoffMs, type BackoffOptions, sleep, withDeadline, within } from "../lib/deadline.ts";
import type { Db } from "./client.ts";
import { checkDecision } from "./decision_check.ts";
import { createDecisionQueue } from "./decision_queue.ts";
import type { DecisionWriter, WriterState } from "./decision_writer.ts";
import type { Outbox } from "./outbox.ts";
import { createOutboxReplay, type ReplayState } from "./outbox_replay.ts";
import { getDecision, insertDecisions, isDataError } from "./queries.ts";
import type { DecisionRecord } from "./schema.ts";

/** Writer statistics, for health checks and metrics. */
export interface DecisionLogStats {
  /** Rows written to the database since the log was created (replayed rows included). */
  written: number;
  /** Write attempts that failed (each is retried, or its rows moved to the outbox). */
  failedWrites: number;
  /** Rows the database refused (logged in full, not retried). */
  rejected: number;
  /** Rows accepted and not yet in the database (in memory and in the outbox). */
  backlog: number;
  /** Rows in the outbox. */
  outbox: number;
  /** Rows moved to the outbox since the log was created. */
  spilled: number;
  /** The last write error's message, or null. */
  lastError: string | null;
  /** Where new rows go now. */
  mode: LogMode;
  /** The writer's state (`ready` when the log has no writer and its last write succeeded, else `failing`). */
  writer: WriterState;
  /** The replay loop's state (`idle` without an outbox). */
  replay: ReplayState;
  /** Unix ms of the last successful database write, or null. */
  lastWriteAt: number | null;
  /** Age of the oldest decision not yet in the database (in memory or in the outbox), in milliseconds; 0 when none. */
  oldestUnwrittenMs: number;
}

/** Where new rows go: `direct` to the database, or `outbox` while the outbox holds rows (after them, in order). */
export type LogMode = "direct" | "outbox";

/**
 * Whether decisions are reaching durable storage, for readiness: `healthy` is false when the database file is gone,
 * when a database file cannot be written (`DecisionWriter.blocked`), or when the oldest decision not yet in the
 * database is older than `maxLagMs`.
 */
export interface DecisionLogHealth {
  healthy: boolean;
  /** Why not, or null. */
  reason: string | null;
  writer: WriterState;
  oldestUnwrittenMs: number;
  outbox: number;
  backlog: number;
}

/** The batched decision log. */
export interface DecisionLog {
  /**
   * Check and queue one decision; never waits in the default mode.
   *
   * @param record the decision
   * @returns in durable mode, a promise that resolves once the row is in the database or fsynced in the outbox
   * @throws AppError INTERNAL when a field is missing or of the wrong type; DB_UNAVAILABLE after close
   */
  append(record: DecisionRecord): void | Promise<void>;
  /**
   * A decision by id, whether still queued, recently moved to the outbox, or written (read-after-write holds).
   *
   * @param id the decision id
   * @returns the decision, or null
   */
  get(id: string): Promise<DecisionRecord | null>;
  /**
   * Write everything queued now (to the database, or to the outbox when it has one and the database fails).
   *
   * @throws AppError DB_UNAVAILABLE when a write fails (the rows stay queued and a retry is scheduled)
   */
  flush(): Promise<void>;
  /**
   * Stop the timers, write everything (to the database, else to the outbox), and replay the outbox while time is
   * left, within `timeoutMs` (default 10000).
   *
   * @throws AppError DB_UNAVAILABLE naming how many rows remain in memory when it cannot
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /**
   * Wait until decisions are committed to the database or fsynced in the outbox (ids not held in memory count as
   * done).
   *
   * @param ids the decision ids
   * @throws AppError DB_UNAVAILABLE when neither could take them (they stay queued and are retried)
   */
  whenLogged(ids: string[]): Promise<void>;
  /** @returns the number of decisions accepted but not yet in the database (in memory and in the outbox) */
  backlog(): number;
  /** @returns a copy of the decisions held in memory, not yet written, oldest first (e.g. when close failed) */
  pending(): DecisionRecord[];
  /** @returns the writer's counters */
  stats(): DecisionLogStats;
  /**
   * Whether decisions reach the database in time (checks the database file's identity first, when it has a writer).
   *
   * @param maxLagMs the oldest decision not yet in the database may be at most this old, in milliseconds
   * @returns the health report
   */
  health(maxLagMs: number): Promise<DecisionLogHealth>;
}

/** Options of {@link createDecisionLog}. */
export interface DecisionLogOptions {
  /** Most rows per write; a full batch is written at once. */
  batchSize: number;
  /** Longest a row waits before its batch is written, in milliseconds. */
  flushIntervalMs: number;
  /** Longest wait between retries of a failed write, in milliseconds. @default 5000 */
  maxBackoffMs?: number;
  /**
   * The write itself. @default `writer.write` when a writer is given, else a multi-row insert in one batch on `db`
   * ({@link insertDecisions})
   */
  write?: (rows: DecisionRecord[]) => Promise<void>;
  /** The database writer (its own connection, replaced after a failure; see `db/decision_writer.ts`). */
  writer?: DecisionWriter;
  /** Where rows go when the database cannot take them; without one, they wait in memory. */
  outbox?: Outbox;
  /** Resolve `append` only once the row is durable (see the module doc). @default false */
  durable?: boolean;
  /** With an outbox: a write that has not finished after this long counts as failed, in milliseconds. @default 5000 */
  writeTimeoutMs?: number;
}

/** First retry delay, in milliseconds; it doubles per consecutive failure. */
const BASE_BACKOFF_MS = 50;

/** A row as a JSON-safe object, for the log line of a refused row. */
function printable(record: DecisionRecord): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(record).map(([k, v]) => [k, v instanceof Float32Array ? Array.from(v) : v]),
  );
}

/** The most telling message of an error: the driver's, under our wrapper. */
function describe(err: unknown): string {
  if (err instanceof AppError && err.cause instanceof Error) return `${err.message}: ${describe(err.cause)}`;
  if (err instanceof Error && err.cause instanceof Error && err.message.startsWith("Failed query")) {
    return describe(err.cause);
  }
  return err instanceof Error ? err.message : String(err);
}

/**
 * Create the decision log over a database.
 *
 * @param db the database (reads, and writes when neither `writer` nor `write` is given)
 * @param options batching, retry and durability settings
 * @returns the log
 * @example
 * const log = createDecisionLog(database.db, { batchSize: 200, flushIntervalMs: 200 });
 * log.append(record);
 * await log.close();
 */
export function createDecisionLog(db: Db, options: DecisionLogOptions): DecisionLog {
  if (!Number.isInteger(options.batchSize) || options.batchSize < 1) {
    throw new RangeError(`Cannot create the decision log: batchSize must be a positive integer`);
  }
  const writer = options.writer ?? null;
  const write = options.write ?? writer?.write ?? ((rows: DecisionRecord[]) => insertDecisions(db, rows));
  const outbox = options.outbox ?? null;
  const durable = options.durable ?? false;
  const writeTimeoutMs = options.writeTimeoutMs ?? 5000;
  const backoff: BackoffOptions = { baseMs: BASE_BACKOFF_MS, maxMs: options.maxBackoffMs ?? 5000, jitter: 0.25 };
  const queue = createDecisionQueue();
  const counters = {
    written: 0,
    failedWrites: 0,
    rejected: 0,
    spilled: 0,
    lastError: null as string | null,
    lastWriteAt: null as number | null,
  };
  /** Consecutive failures of the writer loop (no outbox, or the outbox itself failing). */
  let failures = 0;
  /** The last database write (direct or replayed) failed. */
  let lastWriteFailed = false;
  let mode: LogMode = "direct";
  /** The writer loop: null when idle, the running drain when draining. */
  let loop: Promise<void> | null = null;
  let timer: ReturnType<typeof setTimeout> | undefined;
  let closed = false;
  let closing: Promise<void> | null = null;

  function clearTimer(): void {
    if (timer !== undefined) clearTimeout(timer);
    timer = undefined;
  }

  function schedule(delayMs: number): void {
    if (timer !== undefined || closed) return;
    timer = setTimeout(() => {
      timer = undefined;
      kick().catch(() => {/* counted in stats and retried */});
    }, delayMs);
  }

  function logError(msg: string, fields: Record<string, unknown>): void {
    console.error(JSON.stringify({ level: "error", msg, ...fields }));
  }

  /** A row the database refuses: set it apart, loudly. */
  function refuse(row: DecisionRecord, err: unknown): void {
    counters.rejected++;
    logError("decision refused by the database; set apart, not retried", {
      error: describe(err),
      decision: printable(row),
    });
  }

  /** Write rows; if the database refuses some, find them one by one and set them apart. */
  async function writeRows(rows: DecisionRecord[]): Promise<void> {
    try {
      await write(rows);
      counters.written += rows.length;
      counters.lastWriteAt = Date.now();
      lastWriteFailed = false;
    } catch (err) {
      if (!isDataError(err)) {
        lastWriteFailed = true;
        throw err;
      }
      if (rows.length === 1) return refuse(rows[0], err);
      for (const row of rows) await writeRows([row]);
    }
  }

  /**
   * With an outbox, a write that hangs counts as failed after `writeTimeoutMs`: its rows go to the outbox, and if
   * the write completes after all, the replay's inserts are ignored. (A writer bounds its own writes.)
   */
  function bounded(work: Promise<void>): Promise<void> {
    return outbox && !writer ? withDeadline(work, writeTimeoutMs, "the write") : work;
  }

  const replay = outbox
    ? createOutboxReplay(outbox, {
      write: (rows) => bounded(writeRows(rows)),
      batchSize: options.batchSize,
      backoff,
      onFailure(err, attempts) {
        counters.failedWrites++;
        counters.lastError = describe(err);
        logError("decision outbox replay failed; retrying", {
          outbox: outbox.size(),
          failures: attempts,
          writer: writer?.state(),
          error: counters.lastError,
        });
      },
      // A spill after this starts a new loop, so the mode cannot flip back while rows wait.
      onEmpty: () => (mode = "direct"),
    })
    : null;

  function writeFailed(err: unknown, what: string): AppError {
    failures++;
    counters.failedWrites++;
    counters.lastError = describe(err);
    logError(what, { backlog: queue.size(), failures, error: counters.lastError });
    if (!closed) {
      clearTimer();
      schedule(backoffMs(failures, backoff));
    }
    const error = new AppError("DB_UNAVAILABLE", `Cannot write decisions: ${counters.lastError}`, { cause: err });
    queue.nack(error);
    return error;
  }

  /** Move every queued row to the outbox, after the rows already there, and let the replay take them. */
  async function spill(): Promise<void> {
    const rows = queue.head();
    try {
      await outbox!.append(rows);
    } catch (err) {
      throw writeFailed(err, "decision outbox append failed; keeping the rows in memory and retrying");
    }
    failures = 0;
    counters.spilled += rows.length;
    queue.settle(rows.length, "outbox");
    replay!.start();
  }

  /**
   * The writer loop: runs until the queue is empty or a write fails. Rows appended while it writes go in the same run
   * in durable mode (their answers wait) and when a full batch waits; otherwise fewer than `batchSize` of them wait for
   * the flush interval, as any row does, instead of a commit of their own. Before, a write of 200 rows was followed by
   * one of the few that came meanwhile, then one of fewer still, each a commit with its fsync and the same index pages
   * written again: under load the database process spent twice the CPU per decision.
   */
  async function drain(): Promise<void> {
    let wrote = false;
    try {
      while (queue.size() > 0) {
        if (outbox && (mode === "outbox" || outbox.size() > 0)) {
          await spill();
          continue;
        }
        if (wrote && !durable && !closed && queue.size() < options.batchSize) {
          schedule(options.flushIntervalMs);
          break;
        }
        wrote = true;
        const batch = queue.head(options.batchSize);
        try {
          await bounded(writeRows(batch));
          failures = 0;
          queue.settle(batch.length, "database");
        } catch (err) {
          if (!outbox) throw writeFailed(err, "decision log write failed; keeping the rows and retrying");
          counters.failedWrites++;
          counters.lastError = describe(err);
          logError("decision log write failed; moving the rows to the outbox", {
            backlog: queue.size(),
            writer: writer?.state(),
            error: counters.lastError,
          });
          mode = "outbox";
        }
      }
    } finally {
      // No await between the loop's last check and here: an append cannot join a loop that has ended.
      loop = null;
    }
  }

  /** Start the writer loop, or join the running one. */
  function kick(): Promise<void> {
    if (loop) return loop;
    if (queue.size() === 0) return Promise.resolve();
    loop = drain();
    return loop;
  }

  async function flush(): Promise<void> {
    clearTimer();
    while (queue.size() > 0) await kick();
  }

  /** Wait for `work`, at most until `deadline` (a `performance.now()` time); false when the deadline came first. */
  function until(work: Promise<unknown>, deadline: number): Promise<boolean> {
    return within(work, deadline - performance.now());
  }

  async function closeLog(timeoutMs: number): Promise<void> {
    closed = true;
    clearTimer();
    const deadline = performance.now() + timeoutMs;
    while (queue.size() > 0 && deadline - performance.now() > 0) {
      try {
        // A write that hangs must not hold close past its deadline.
        await until(flush(), deadline);
      } catch {
        await sleep(Math.min(backoffMs(failures, backoff), deadline - performance.now()));
      }
    }
    if (replay) {
      // Use the time left to empty the outbox into the database; what remains is replayed at the next start.
      replay.start();
      replay.wake();
      const running = replay.running();
      if (running) await until(running, deadline);
      // An attempt in flight ends within writeTimeoutMs.
      await replay.stop();
    }
    if (queue.size() > 0) {
      throw new AppError(
        "DB_UNAVAILABLE",
        `Cannot close the decision log: ${queue.size()} decisions are not written`,
      );
    }
  }

  function oldestUnwrittenMs(): number {
    const times = [queue.oldestCreatedAt(), outbox?.oldestCreatedAt() ?? null].filter((t): t is number => t !== null);
    return times.length === 0 ? 0 : Math.max(0, Date.now() - Math.min(...times));
  }

  function writerState(): WriterState {
    if (writer) return writer.state();
    return lastWriteFailed ? "failing" : "ready";
  }

  function stats(): DecisionLogStats {
    const inOutbox = outbox?.size() ?? 0;
    return {
      ...counters,
      backlog: queue.size() + inOutbox,
      outbox: inOutbox,
      mode,
      writer: writerState(),
      replay: replay?.state() ?? "idle",
      oldestUnwrittenMs: oldestUnwrittenMs(),
    };
  }

  replay?.start();

  return {
    append(record) {
      if (closed) throw new AppError("DB_UNAVAILABLE", "Cannot log decision: the decision log is closed");
      checkDecision(record);
      queue.push(record);
      if (!durable) {
        if (failures > 0) schedule(backoffMs(failures, backoff));
        else if (queue.size() >= options.batchSize) kick().catch(() => {/* counted in stats and retried */});
        else schedule(options.flushIntervalMs);
        return;
      }
      const acked = queue.whenSettled(record.id);
      if (failures > 0) schedule(backoffMs(failures, backoff));
      else kick().catch(() => {/* counted in stats and retried */});
      return acked;
    },
    async whenLogged(ids) {
      await Promise.all(ids.map((id) => queue.whenSettled(id)));
    },
    async get(id) {
      return queue.find(id) ?? await getDecision(db, id);
    },
    flush,
    close(closeOptions = {}) {
      closing ??= closeLog(closeOptions.timeoutMs ?? 10_000);
      return closing;
    },
    backlog: () => queue.size() + (outbox?.size() ?? 0),
    pending: () => queue.head(),
    stats,
    async health(maxLagMs) {
      if (writer) await writer.check();
      const s = stats();
      let reason: string | null = null;
      if (s.writer === "gone") reason = "the database file was deleted or replaced";
      else if (writer?.blocked?.()) reason = writer.blocked!();
      else if (s.oldestUnwrittenMs > maxLagMs) {
        reason = `the oldest decision not in the database is ${Math.round(s.oldestUnwrittenMs)} ms old ` +
          `(at most ${maxLagMs} ms)`;
      }
      return {
        healthy: reason === null,
        reason,
        writer: s.writer,
        oldestUnwrittenMs: s.oldestUnwrittenMs,
        outbox: s.outbox,
        backlog: s.backlog,
      };
    },
  };
}
