/**
 * The decision writer: the one part of the decision log that talks to the database. It owns a write-only
 * connection ({@link connectForWrites}) and trusts it only while it works.
 *
 * States ({@link WriterState}):
 * - `disconnected`: no connection; the next write opens one (it never creates a missing local file);
 * - `ready`: the last write on this connection committed, to the file that is still at the database's path;
 * - `failing`: the last write failed (busy, locked, disk full, read-only, timeout, unreachable); its connection
 *   was dropped, and the next write opens a fresh one. When the failure was a database file this process cannot
 *   write (`db/preflight.ts`: e.g. an immutable `-shm`, which SQLite would map), {@link DecisionWriter.blocked} says
 *   so until a write commits: that fault needs an operator, it does not pass by itself;
 * - `gone`: the local database file was deleted or replaced under the service; what was written since the last
 *   check may be in an unlinked file, so that write counts as failed; the writer stays `gone` until a file is at
 *   the path again;
 * - `closed`.
 *
 * A write is: connect if needed -> insert (bounded by `writeTimeoutMs`) -> check that the file is still the one
 * opened -> `ready`. Any failure drops the connection, except a write the pre-flight refused (it never reached
 * SQLite). Rows of a failed write are the caller's to keep (the decision log moves them to the outbox); inserts ignore
 * ids already written, so writing them again is safe.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { withDeadline } from "../lib/deadline.ts";
import { type WriteConnection } from "./client.ts";
import { DatabaseProcessError } from "./hosted_client.ts";
import { DatabaseFileError } from "./preflight.ts";
import { insertDecisions } from "./queries.ts";
import type { DecisionRecord } from "./schema.ts";

/** The writer's state; see the module doc. */
export type WriterState = "disconnected" | "ready" | "failing" | "gone" | "closed";

/** Writes decision rows to the database on a connection it owns. */
export interface DecisionWriter {
  /**
   * Write rows (ids already in the database are ignored).
   *
   * @param rows the decisions
   * @throws AppError DB_UNAVAILABLE (or what the insert threw) when they may not be in the database
   */
  write(rows: DecisionRecord[]): Promise<void>;
  /** @returns the state now */
  state(): WriterState;
  /**
   * Why no write can succeed until a database file is made writable (`db/preflight.ts`), or null; cleared by the
   * next write that commits.
   *
   * @returns the message naming the file and the fix, or null
   */
  blocked?(): string | null;
  /**
   * Check now whether the database file is still the one the connection opened (no query is made).
   *
   * @returns the state after the check
   */
  check(): Promise<WriterState>;
  /** Drop the connection; later writes fail. */
  close(): void;
}

/** Options of {@link createDecisionWriter}. */
export interface DecisionWriterOptions {
  /** Opens a write connection (e.g. `() => connectForWrites(url, { busyTimeoutMs })`). */
  connect: () => Promise<WriteConnection>;
  /** A write not finished after this long counts as failed, in milliseconds. @default 5000 */
  writeTimeoutMs?: number;
  /** Called on every state change (logs). */
  onStateChange?: (from: WriterState, to: WriterState, reason: string) => void;
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * The message of a {@link DatabaseFileError} in an error's cause chain, or null.
 *
 * @param err what a connect or a write threw
 * @returns the message, or null
 */
function fileProblemOf(err: unknown): string | null {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof DatabaseFileError) return messageOf(err);
  }
  return null;
}

/**
 * Why a write failed, for the state change: the error's message, and how the database process ended when that was
 * the cause (the message alone says only "the database is unavailable").
 *
 * @param err what a connect or a write threw
 * @returns the reason
 */
function reasonOf(err: unknown): string {
  for (let e = err, depth = 0; e instanceof Error && depth < 5; e = e.cause, depth++) {
    if (e instanceof DatabaseProcessError && e !== err) {
      return `${messageOf(err)} (${e.message.replace(/^Cannot use the decision database: /, "")})`;
    }
  }
  return messageOf(err);
}

/**
 * Create the decision writer.
 *
 * @param options how to connect, the write deadline
 * @returns the writer (disconnected until the first write)
 * @example
 * const writer = createDecisionWriter({ connect: () => connectForWrites("file:data/decisions.db") });
 * const log = createDecisionLog(database.db, { batchSize: 200, flushIntervalMs: 200, write: writer.write });
 */
export function createDecisionWriter(options: DecisionWriterOptions): DecisionWriter {
  const writeTimeoutMs = options.writeTimeoutMs ?? 5000;
  let connection: WriteConnection | null = null;
  let state: WriterState = "disconnected";
  let blockedBy: string | null = null;

  function become(next: WriterState, reason: string): void {
    if (next === state) return;
    const from = state;
    state = next;
    options.onStateChange?.(from, next, reason);
  }

  /** Stop trusting the connection: close it once the work on it has settled. */
  function drop(work?: Promise<unknown>): void {
    const old = connection;
    connection = null;
    if (!old) return;
    const closeOld = () => {
      try {
        old.close();
      } catch {
        // already closed
      }
    };
    if (work) work.then(closeOld, closeOld);
    else closeOld();
  }

  async function moved(): Promise<"deleted" | "replaced" | null> {
    return connection ? await connection.moved() : null;
  }

  return {
    async write(rows) {
      if (state === "closed") throw new AppError("DB_UNAVAILABLE", "Cannot write decisions: the writer is closed");
      if (!connection) {
        try {
          connection = await options.connect();
        } catch (err) {
          // A local file that is missing: gone until one is back; anything else: failing.
          const missing = err instanceof AppError && err.cause instanceof Deno.errors.NotFound;
          blockedBy = fileProblemOf(err);
          become(missing ? "gone" : "failing", reasonOf(err));
          throw err;
        }
      }
      const conn = connection;
      const work = insertDecisions(conn.db, rows);
      let what: "deleted" | "replaced" | null;
      try {
        await withDeadline(work, writeTimeoutMs, "the write");
        what = await conn.moved();
      } catch (err) {
        blockedBy = fileProblemOf(err);
        // A write the pre-flight refused never reached SQLite: the connection is sound, and is kept for the next
        // write. Closing it would checkpoint into the mapping of the unwritable -shm; and @libsql/client 0.18.0 closes
        // the native connection only when garbage collection finalises its statements, which could be after the file
        // became unwritable again.
        if (!blockedBy) drop(work);
        become("failing", reasonOf(err));
        throw err;
      }
      if (what) {
        // The rows may be in an unlinked file: they count as not written (the caller keeps them).
        drop();
        become("gone", `the database file was ${what}`);
        throw new AppError("DB_UNAVAILABLE", `Cannot write decisions: the database file was ${what} under the service`);
      }
      blockedBy = null;
      become("ready", "a write committed");
    },
    state: () => state,
    blocked: () => blockedBy,
    async check() {
      if (state === "ready" || state === "disconnected") {
        const what = await moved().catch(() => null);
        if (what) {
          drop();
          become("gone", `the database file was ${what}`);
        }
      }
      return state;
    },
    close() {
      drop();
      become("closed", "closed");
    },
  };
}
