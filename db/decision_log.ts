/**
 * The decision log: a batched writer off the answer's path. `append` only checks and queues the row; batches are
 * written atomically (one multi-row insert) when `batchSize` rows wait or `flushIntervalMs` has passed.
 *
 * Nothing is dropped silently:
 * - a failed write keeps its rows, in order, and is retried with exponential backoff (capped at `maxBackoffMs`);
 *   ids already written are ignored, so a retry after a lost reply writes nothing twice;
 * - a row the database itself refuses (a constraint; retrying cannot help) is set apart from its batch, logged in
 *   full as a JSON line and counted in `stats().rejected`, so that one bad row cannot block the log;
 * - `close` resolves only once everything is written, or throws `DB_UNAVAILABLE` naming how many rows remain
 *   (`pending()` returns them).
 *
 * Lifecycle: create -> append / flush ... -> close (final flush; afterwards `append` throws).
 *
 * @module
 */
import { getTableColumns } from "drizzle-orm";
import type { SQLiteColumn } from "drizzle-orm/sqlite-core";
import { AppError } from "../errors.ts";
import type { Db } from "./client.ts";
import { getDecision, insertDecisions, isDataError } from "./queries.ts";
import { type DecisionRecord, decisions } from "./schema.ts";

/** Writer statistics, for health checks and metrics. */
export interface DecisionLogStats {
  /** Rows written since the log was created. */
  written: number;
  /** Write attempts that failed (each is retried). */
  failedWrites: number;
  /** Rows the database refused (logged in full, not retried). */
  rejected: number;
  /** Rows accepted and not yet written. */
  backlog: number;
  /** The last write error's message, or null. */
  lastError: string | null;
}

/** The batched decision log. */
export interface DecisionLog {
  /**
   * Check and queue one decision; never waits.
   *
   * @param record the decision
   * @throws AppError INTERNAL when a field is missing or of the wrong type; DB_UNAVAILABLE after close
   */
  append(record: DecisionRecord): void;
  /**
   * A decision by id, whether still queued or written (read-after-write holds).
   *
   * @param id the decision id
   * @returns the decision, or null
   */
  get(id: string): Promise<DecisionRecord | null>;
  /**
   * Write everything queued now.
   *
   * @throws AppError DB_UNAVAILABLE when a write fails (the rows stay queued and a retry is scheduled)
   */
  flush(): Promise<void>;
  /**
   * Stop the timers and write everything, retrying for up to `timeoutMs` (default 10000).
   *
   * @throws AppError DB_UNAVAILABLE naming how many rows remain when it cannot
   */
  close(options?: { timeoutMs?: number }): Promise<void>;
  /** @returns the number of decisions accepted but not yet written */
  backlog(): number;
  /** @returns a copy of the decisions not yet written, oldest first (e.g. to save them when close failed) */
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
}

/** First retry delay, in milliseconds; it doubles per consecutive failure. */
const BASE_BACKOFF_MS = 50;

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
  /** Accepted rows, oldest first; only the writer loop removes rows, always from the front. */
  const queue: DecisionRecord[] = [];
  const queued = new Map<string, DecisionRecord>();
  let timer: ReturnType<typeof setTimeout> | undefined;
  let loop: Promise<void> | null = null;
  let failures = 0;
  let closed = false;
  let closing: Promise<void> | null = null;
  const counters = { written: 0, failedWrites: 0, rejected: 0, lastError: null as string | null };

  function backoffMs(): number {
    const ms = Math.min(maxBackoffMs, BASE_BACKOFF_MS * 2 ** Math.min(Math.max(failures - 1, 0), 16));
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

  /** The first `n` queued rows are written. */
  function settle(n: number): void {
    for (const r of queue.splice(0, n)) queued.delete(r.id);
    counters.written += n;
  }

  /** The first queued row is refused by the database: set it apart, loudly. */
  function refuse(err: unknown): void {
    const [row] = queue.splice(0, 1);
    queued.delete(row.id);
    counters.rejected++;
    console.error(JSON.stringify({
      level: "error",
      msg: "decision refused by the database; set apart, not retried",
      error: describe(err),
      decision: printable(row),
    }));
  }

  /** Write a batch from the front of the queue; if the database refuses it, find the refused rows one by one. */
  async function writeBatch(batch: DecisionRecord[]): Promise<void> {
    try {
      await write(batch);
      settle(batch.length);
    } catch (err) {
      if (!isDataError(err)) throw err;
      if (batch.length === 1) return refuse(err);
      for (const row of batch) await writeBatch([row]);
    }
  }

  /** The writer loop: runs until the queue is empty (rows appended meanwhile included) or a write fails. */
  async function drain(): Promise<void> {
    while (queue.length > 0) {
      try {
        await writeBatch(queue.slice(0, options.batchSize));
        failures = 0;
      } catch (err) {
        failures++;
        counters.failedWrites++;
        counters.lastError = describe(err);
        console.error(JSON.stringify({
          level: "error",
          msg: "decision log write failed; keeping the rows and retrying",
          backlog: queue.length,
          failures,
          error: counters.lastError,
        }));
        if (!closed) {
          clearTimer();
          schedule(backoffMs());
        }
        throw new AppError("DB_UNAVAILABLE", `Cannot write decisions: ${counters.lastError}`, { cause: err });
      }
    }
  }

  /** Start the writer loop, or join the running one. */
  function kick(): Promise<void> {
    loop ??= drain().finally(() => {
      loop = null;
    });
    return loop;
  }

  async function flush(): Promise<void> {
    clearTimer();
    while (queue.length > 0) await kick();
  }

  async function closeLog(timeoutMs: number): Promise<void> {
    closed = true;
    clearTimer();
    const deadline = performance.now() + timeoutMs;
    while (queue.length > 0) {
      const leftMs = deadline - performance.now();
      if (leftMs <= 0) break;
      let wait: ReturnType<typeof setTimeout> | undefined;
      try {
        // A write that hangs must not hold close past its deadline.
        await Promise.race([flush(), new Promise<void>((r) => wait = setTimeout(r, leftMs))]);
      } catch {
        const pauseMs = Math.min(backoffMs(), deadline - performance.now());
        if (pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      } finally {
        clearTimeout(wait);
      }
    }
    if (queue.length > 0) {
      throw new AppError(
        "DB_UNAVAILABLE",
        `Cannot close the decision log: ${queue.length} decisions are not written`,
      );
    }
  }

  return {
    append(record) {
      if (closed) throw new AppError("DB_UNAVAILABLE", "Cannot log decision: the decision log is closed");
      checkDecision(record);
      queue.push(record);
      queued.set(record.id, record);
      if (failures > 0) schedule(backoffMs());
      else if (queue.length >= options.batchSize) kick().catch(() => {/* counted in stats and retried */});
      else schedule(options.flushIntervalMs);
    },
    async get(id) {
      return queued.get(id) ?? await getDecision(db, id);
    },
    flush,
    close(closeOptions = {}) {
      closing ??= closeLog(closeOptions.timeoutMs ?? 10_000);
      return closing;
    },
    backlog: () => queue.length,
    pending: () => queue.slice(),
    stats: () => ({ ...counters, backlog: queue.length }),
  };
}
