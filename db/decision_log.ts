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
 * @module
 */
import { getTableColumns } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { AppError } from "../errors.ts";
import type { Db } from "./client.ts";
import type { Outbox } from "./outbox.ts";
import { getDecision, insertDecisions, isDataError } from "./queries.ts";
import { type DecisionRecord, decisions } from "./schema.ts";

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
}

/** Options of {@link createDecisionLog}. */
export interface DecisionLogOptions {
  /** Most rows per write; a full batch is written at once. */
  batchSize: number;
  /** Longest a row waits before its batch is written, in milliseconds. */
  flushIntervalMs: number;
  /** Longest wait between retries of a failed write, in milliseconds. @default 5000 */
  maxBackoffMs?: number;
  /** The write itself. @default a multi-row insert in one batch ({@link insertDecisions}) */
  write?: (rows: DecisionRecord[]) => Promise<void>;
  /** Where rows go when the database cannot take them; without one, they wait in memory. */
  outbox?: Outbox;
  /** Resolve `append` only once the row is durable (see the module doc). @default false */
  durable?: boolean;
  /** With an outbox: a write that has not finished after this long counts as failed, in milliseconds. @default 5000 */
  writeTimeoutMs?: number;
}

/** First retry delay, in milliseconds; it doubles per consecutive failure. */
const BASE_BACKOFF_MS = 50;

/** Rows moved to the outbox that `get` still finds in memory. */
const RECENT_MAX = 10_000;

const COLUMNS = Object.entries(getTableColumns(decisions)) as [keyof DecisionRecord, SQLiteColumn][];

/** What is wrong with one value for its column, or null. */
function valueProblem(column: SQLiteColumn, value: unknown): string | null {
  switch (column.dataType) {
    case "string": {
      if (typeof value !== "string") return "is not a string";
      const allowed = (column as SQLiteColumn & { enumValues?: string[] }).enumValues;
      return allowed && !allowed.includes(value) ? `is not one of ${allowed.join(", ")}` : null;
    }
    case "number":
      if (typeof value !== "number" || !Number.isFinite(value)) return "is not a finite number";
      return column.columnType === "SQLiteInteger" && !Number.isInteger(value) ? "is not an integer" : null;
    case "boolean":
      return typeof value === "boolean" ? null : "is not a boolean";
    default:
      if (column.getSQLType() === "blob") return value instanceof Float32Array ? null : "is not a Float32Array";
      return Array.isArray(value) && value.every((v) => typeof v === "number" && Number.isFinite(v))
        ? null
        : "is not an array of finite numbers";
  }
}

/** Refuse a record the database would refuse later, while the caller is still on the stack. */
function checkDecision(record: DecisionRecord): void {
  if (record === null || typeof record !== "object") {
    throw new AppError("INTERNAL", "Cannot log decision: expected a record");
  }
  for (const [key, column] of COLUMNS) {
    const value: unknown = record[key];
    if (value === null || value === undefined) {
      if (column.notNull && !column.hasDefault) {
        throw new AppError("INTERNAL", `Cannot log decision ${record.id}: ${key} is missing`);
      }
      continue;
    }
    const problem = valueProblem(column, value);
    if (problem) throw new AppError("INTERNAL", `Cannot log decision ${record.id}: ${key} ${problem}`);
  }
}

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
 * @param db the database
 * @param options batching and retry settings
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
  const write = options.write ?? ((rows: DecisionRecord[]) => insertDecisions(db, rows));
  const maxBackoffMs = options.maxBackoffMs ?? 5000;
  const outbox = options.outbox ?? null;
  const durable = options.durable ?? false;
  const writeTimeoutMs = options.writeTimeoutMs ?? 5000;
  /** Accepted rows, oldest first; only the writer loop removes rows, always from the front. */
  const queue: DecisionRecord[] = [];
  const queued = new Map<string, DecisionRecord>();
  /** Durable mode: how to acknowledge each queued row, by id. */
  const acks = new Map<string, { promise: Promise<void>; resolve: () => void; reject: (e: unknown) => void }>();
  /** Rows recently moved to the outbox, so that read-after-write holds while the database is down. */
  const recent = new Map<string, DecisionRecord>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let loop: Promise<void> | null = null;
  let failures = 0;
  let closed = false;
  let closing: Promise<void> | null = null;
  /** The last direct write failed: rows go to the outbox until a replay empties it. */
  let dbDown = false;
  let replaying: Promise<void> | null = null;
  let stopReplay = false;
  let wakeReplay: (() => void) | null = null;
  const counters = { written: 0, failedWrites: 0, rejected: 0, spilled: 0, lastError: null as string | null };

  function backoffMs(n = failures): number {
    const ms = Math.min(maxBackoffMs, BASE_BACKOFF_MS * 2 ** Math.min(Math.max(n - 1, 0), 16));
    // Jitter, so that edge apps sharing a database do not retry in step.
    return ms * (0.75 + Math.random() * 0.25);
  }

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

  /** A row the database refuses: set it apart, loudly. */
  function refuse(row: DecisionRecord, err: unknown): void {
    counters.rejected++;
    console.error(JSON.stringify({
      level: "error",
      msg: "decision refused by the database; set apart, not retried",
      error: describe(err),
      decision: printable(row),
    }));
  }

  /** Write rows; if the database refuses some, find them one by one and set them apart. */
  async function writeRows(rows: DecisionRecord[]): Promise<void> {
    try {
      await write(rows);
      counters.written += rows.length;
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (rows.length === 1) return refuse(rows[0], err);
      for (const row of rows) await writeRows([row]);
    }
  }

  /**
   * With an outbox, a write that hangs counts as failed after `writeTimeoutMs`: its rows go to the outbox, and if
   * the write completes after all, the replay's inserts are ignored.
   */
  function bounded(work: Promise<void>): Promise<void> {
    if (!outbox) return work;
    let t: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`the write took longer than ${writeTimeoutMs} ms`)), writeTimeoutMs);
    });
    work.catch(() => {/* reported by the race, or too late to matter */});
    return Promise.race([work, late]).finally(() => clearTimeout(t));
  }

  /** The first `n` queued rows are in the database (or the outbox): forget them and acknowledge them. */
  function settle(n: number, where: "database" | "outbox"): void {
    for (const r of queue.splice(0, n)) {
      queued.delete(r.id);
      if (where === "outbox") {
        recent.set(r.id, r);
        if (recent.size > RECENT_MAX) recent.delete(recent.keys().next().value!);
      }
      const ack = acks.get(r.id);
      if (ack) {
        acks.delete(r.id);
        ack.resolve();
      }
    }
  }

  /** Tell the callers waiting for queued rows that they are not durable yet (the rows stay queued). */
  function nack(err: AppError): void {
    for (const r of queue) {
      const ack = acks.get(r.id);
      if (ack) {
        acks.delete(r.id);
        ack.reject(err);
      }
    }
  }

  function writeFailed(err: unknown, what: string): AppError {
    failures++;
    counters.failedWrites++;
    counters.lastError = describe(err);
    console.error(JSON.stringify({
      level: "error",
      msg: what,
      backlog: queue.length,
      failures,
      error: counters.lastError,
    }));
    if (!closed) {
      clearTimer();
      schedule(backoffMs());
    }
    const error = new AppError("DB_UNAVAILABLE", `Cannot write decisions: ${counters.lastError}`, { cause: err });
    nack(error);
    return error;
  }

  /** The writer loop: runs until the queue is empty (rows appended meanwhile included) or a write fails. */
  async function drain(): Promise<void> {
    try {
      while (queue.length > 0) {
        if (outbox && (dbDown || outbox.size() > 0)) {
          // After rows already in the outbox, in order.
          const rows = queue.slice();
          try {
            await outbox.append(rows);
          } catch (err) {
            throw writeFailed(err, "decision outbox append failed; keeping the rows in memory and retrying");
          }
          failures = 0;
          counters.spilled += rows.length;
          settle(rows.length, "outbox");
          startReplay();
          continue;
        }
        const batch = queue.slice(0, options.batchSize);
        try {
          await bounded(writeRows(batch));
          failures = 0;
          settle(batch.length, "database");
        } catch (err) {
          if (outbox) {
            counters.failedWrites++;
            counters.lastError = describe(err);
            console.error(JSON.stringify({
              level: "error",
              msg: "decision log write failed; moving the rows to the outbox",
              backlog: queue.length,
              error: counters.lastError,
            }));
            dbDown = true;
            continue;
          }
          throw writeFailed(err, "decision log write failed; keeping the rows and retrying");
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
    if (queue.length === 0) return Promise.resolve();
    loop = drain();
    return loop;
  }

  /** The replay loop: writes the outbox to the database, with backoff between failed attempts, until it is empty. */
  function startReplay(): void {
    if (!outbox || replaying || stopReplay) return;
    replaying = (async () => {
      let attempts = 0;
      while (!stopReplay && outbox.size() > 0) {
        try {
          await outbox.replay((rows) => bounded(writeRows(rows)), { batchSize: options.batchSize });
          attempts = 0;
        } catch (err) {
          attempts++;
          counters.failedWrites++;
          counters.lastError = describe(err);
          console.error(JSON.stringify({
            level: "error",
            msg: "decision outbox replay failed; retrying",
            outbox: outbox.size(),
            failures: attempts,
            error: counters.lastError,
          }));
          if (stopReplay) break;
          await new Promise<void>((resolve) => {
            const t = setTimeout(() => (wakeReplay = null, resolve()), backoffMs(attempts));
            wakeReplay = () => (clearTimeout(t), wakeReplay = null, resolve());
          });
        }
      }
      if (outbox.size() === 0) dbDown = false;
      // In the same step as the loop's last check: a spill after it starts a new loop.
      replaying = null;
    })();
  }

  async function flush(): Promise<void> {
    clearTimer();
    while (queue.length > 0) await kick();
  }

  /** Wait for `work`, at most until `deadline`; false when the deadline came first. */
  async function until(work: Promise<unknown>, deadline: number): Promise<boolean> {
    let t: ReturnType<typeof setTimeout> | undefined;
    const left = Math.max(0, deadline - performance.now());
    try {
      return await Promise.race([
        work.then(() => true),
        new Promise<false>((r) => t = setTimeout(() => r(false), left)),
      ]);
    } finally {
      clearTimeout(t);
    }
  }

  async function closeLog(timeoutMs: number): Promise<void> {
    closed = true;
    clearTimer();
    const deadline = performance.now() + timeoutMs;
    while (queue.length > 0 && deadline - performance.now() > 0) {
      try {
        // A write that hangs must not hold close past its deadline.
        await until(flush(), deadline);
      } catch {
        const pauseMs = Math.min(backoffMs(), deadline - performance.now());
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      }
    }
    if (outbox) {
      // Use the time left to empty the outbox into the database; what remains is replayed at the next start.
      if (outbox.size() > 0) startReplay();
      if (replaying) await until(replaying, deadline);
      stopReplay = true;
      wakeReplay?.();
      // An attempt in flight ends within writeTimeoutMs.
      await replaying;
    }
    if (queue.length > 0) {
      throw new AppError(
        "DB_UNAVAILABLE",
        `Cannot close the decision log: ${queue.length} decisions are not written`,
      );
    }
  }

  /** The promise that a queued row is durable, made on first request. */
  function ack(id: string): Promise<void> {
    let entry = acks.get(id);
    if (!entry) {
      let resolve!: () => void;
      let reject!: (e: unknown) => void;
      const promise = new Promise<void>((res, rej) => (resolve = res, reject = rej));
      // Handled here too, so that a caller that does not wait cannot cause an unhandled rejection.
      promise.catch(() => {});
      entry = { promise, resolve, reject };
      acks.set(id, entry);
    }
    return entry.promise;
  }

  if (outbox && outbox.size() > 0) startReplay();

  return {
    append(record) {
      if (closed) throw new AppError("DB_UNAVAILABLE", "Cannot log decision: the decision log is closed");
      checkDecision(record);
      queue.push(record);
      queued.set(record.id, record);
      if (!durable) {
        if (failures > 0) schedule(backoffMs());
        else if (queue.length >= options.batchSize) kick().catch(() => {/* counted in stats and retried */});
        else schedule(options.flushIntervalMs);
        return;
      }
      const acked = ack(record.id);
      if (failures > 0) schedule(backoffMs());
      else kick().catch(() => {/* counted in stats and retried */});
      return acked;
    },
    async whenLogged(ids) {
      await Promise.all(ids.map((id) => (queued.has(id) ? ack(id) : undefined)));
    },
    async get(id) {
      return queued.get(id) ?? recent.get(id) ?? await getDecision(db, id);
    },
    flush,
    close(closeOptions = {}) {
      closing ??= closeLog(closeOptions.timeoutMs ?? 10_000);
      return closing;
    },
    backlog: () => queue.length + (outbox?.size() ?? 0),
    pending: () => queue.slice(),
    stats: () => ({ ...counters, backlog: queue.length + (outbox?.size() ?? 0), outbox: outbox?.size() ?? 0 }),
  };
}
