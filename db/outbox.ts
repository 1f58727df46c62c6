/**
 * The decision outbox: a durable local queue for decisions the database cannot take now. Rows are appended to
 * JSON-lines segment files in one folder and fsynced before `append` resolves; `replay` writes them to the
 * database oldest first and deletes each segment once all its rows are written.
 *
 * Guarantees:
 * - a row whose `append` resolved survives a crash of the process (kill -9) and of the machine, as far as the disk
 *   honours fdatasync;
 * - rows are replayed in the order they were appended; a segment is deleted only after every row in it was
 *   written, so a crash during replay writes some rows again, which the database ignores (decisions have a
 *   UUIDv7 primary key and are inserted with `ON CONFLICT DO NOTHING`): nothing is lost, nothing is written twice;
 * - a torn last line (a crash in the middle of an append that therefore never resolved) is skipped, and counted.
 *
 * One process owns a folder at a time: `openOutbox` takes an exclusive lock on `LOCK` in it and fails when
 * another process holds it.
 *
 * Format: `<dir>/<12-digit sequence>.jsonl`, one decision per line as JSON; Float32Array columns are written as
 * `{"f32":"<base64 of the little-endian bytes>"}`, so they read back bit for bit.
 *
 * Lifecycle: open (lock, adopt segments left by an earlier process) -> append / replay ... -> close (unlock).
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { join } from "node:path";
import { AppError } from "../errors.ts";
import { within } from "../lib/deadline.ts";
import type { DecisionRecord } from "./schema.ts";

/** A durable queue of decisions on local disk. */
export interface Outbox {
  /** The folder. */
  readonly dir: string;
  /** @returns rows appended and not yet replayed */
  size(): number;
  /** @returns the `createdAt` (Unix ms) of the oldest row waiting, or null when empty */
  oldestCreatedAt(): number | null;
  /**
   * Append rows after every row appended before, and fsync. Concurrent calls share one fsync (group commit).
   *
   * @param rows the decisions, in order
   * @throws AppError DB_UNAVAILABLE when the disk refuses the write (then the rows may or may not be kept; a
   *   replay writes them at most once)
   */
  append(rows: DecisionRecord[]): Promise<void>;
  /**
   * Write the waiting rows with `write`, oldest first, `batchSize` at a time, deleting each segment once written.
   *
   * @param write the database write (must ignore ids already written)
   * @param options `batchSize`
   * @returns how many rows were written
   * @throws whatever `write` throws, at the first failed batch; the rows stay for the next replay
   */
  replay(write: (rows: DecisionRecord[]) => Promise<void>, options: { batchSize: number }): Promise<number>;
  /** @returns every waiting row, oldest first (for inspection and tests) */
  rows(): Promise<DecisionRecord[]>;
  /** @returns counters: rows appended and replayed since open, torn lines skipped */
  stats(): { size: number; appended: number; replayed: number; corrupt: number; segments: number };
  /** Wait for appends and replays in progress, and release the folder. */
  close(): Promise<void>;
}

/** Options of {@link openOutbox}. */
export interface OutboxOptions {
  /** fsync after each append (off only for tests that do not need durability). @default true */
  fsync?: boolean;
  /** A segment past this size is closed and the next append starts a new one, in bytes. @default 4 MiB */
  segmentBytes?: number;
  /** How long to wait for another process's lock before failing, in milliseconds. @default 2000 */
  lockTimeoutMs?: number;
}

interface Segment {
  seq: number;
  path: string;
  /** Complete rows in the file. */
  rows: number;
  /** Rows of this segment already written by a replay that later failed (skipped by the next one). */
  done: number;
  /** `createdAt` of the first row not yet written, or null. */
  oldest: number | null;
  bytes: number;
}

const SEGMENT = /^(\d{12})\.jsonl$/;
const encoder = new TextEncoder();

/** Float32Array columns as base64 of their little-endian bytes: bit-exact, -0 and NaN payloads included. */
function f32ToBase64(v: Float32Array): string {
  const bytes = new Uint8Array(v.length * 4);
  const view = new DataView(bytes.buffer);
  v.forEach((x, k) => view.setFloat32(k * 4, x, true));
  return Buffer.from(bytes).toString("base64");
}

function f32FromBase64(text: string): Float32Array {
  const bytes = Buffer.from(text, "base64");
  if (bytes.length % 4 !== 0) throw new RangeError("Cannot read a float32 column: byte count not a multiple of 4");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return Float32Array.from({ length: bytes.length / 4 }, (_, k) => view.getFloat32(k * 4, true));
}

function encodeRow(row: DecisionRecord): string {
  return JSON.stringify(row, (_, v) => (v instanceof Float32Array ? { f32: f32ToBase64(v) } : v));
}

function decodeRow(line: string): DecisionRecord {
  return JSON.parse(
    line,
    (_, v) =>
      v && typeof v === "object" && !Array.isArray(v) && typeof v.f32 === "string" && Object.keys(v).length === 1
        ? f32FromBase64(v.f32)
        : v,
  );
}

/** The complete lines of a segment's text: a last line without its newline was torn by a crash. */
function parseSegment(text: string): { rows: DecisionRecord[]; corrupt: number } {
  const lines = text.split("\n");
  const tail = lines.pop();
  let corrupt = tail ? 1 : 0;
  const rows: DecisionRecord[] = [];
  for (const line of lines) {
    if (!line) continue;
    try {
      rows.push(decodeRow(line));
    } catch {
      corrupt++;
    }
  }
  return { rows, corrupt };
}

function fail(action: string, err: unknown): AppError {
  return new AppError("DB_UNAVAILABLE", `Cannot ${action}: ${err instanceof Error ? err.message : String(err)}`, {
    cause: err,
  });
}

async function syncDir(dir: string): Promise<void> {
  // A new file's name is durable only once its folder is synced (POSIX); not every platform allows it.
  try {
    const handle = await Deno.open(dir, { read: true });
    try {
      await handle.sync();
    } finally {
      handle.close();
    }
  } catch {
    // best effort
  }
}

/**
 * Open (creating it if needed) and lock an outbox folder, adopting the segments an earlier process left.
 *
 * @param dir the folder
 * @param options fsync, segment size, lock wait
 * @returns the outbox
 * @throws AppError DB_UNAVAILABLE when the folder cannot be used or another process holds it
 * @example
 * const outbox = await openOutbox("data/decisions.db.outbox");
 * await outbox.append(rows);
 * await outbox.replay((batch) => insertDecisions(db, batch), { batchSize: 200 });
 */
export async function openOutbox(dir: string, options: OutboxOptions = {}): Promise<Outbox> {
  const fsync = options.fsync ?? true;
  const segmentBytes = options.segmentBytes ?? 4 * 1024 * 1024;
  let lock: Deno.FsFile;
  try {
    await Deno.mkdir(dir, { recursive: true });
    lock = await Deno.open(join(dir, "LOCK"), { read: true, write: true, create: true });
  } catch (err) {
    throw fail(`open the decision outbox at ${dir}`, err);
  }
  const locking = lock.lock(true).then(() => true, () => false);
  const locked = (await within(locking, options.lockTimeoutMs ?? 2000)) && await locking;
  if (!locked) {
    lock.close();
    throw new AppError("DB_UNAVAILABLE", `Cannot open the decision outbox at ${dir}: another process is using it`);
  }

  const segments: Segment[] = [];
  let corrupt = 0;
  try {
    for await (const entry of Deno.readDir(dir)) {
      const m = SEGMENT.exec(entry.name);
      if (!entry.isFile || !m) continue;
      const path = join(dir, entry.name);
      const text = await Deno.readTextFile(path);
      const parsed = parseSegment(text);
      corrupt += parsed.corrupt;
      segments.push({
        seq: Number(m[1]),
        path,
        rows: parsed.rows.length,
        done: 0,
        oldest: parsed.rows[0]?.createdAt ?? null,
        bytes: text.length,
      });
    }
  } catch (err) {
    lock.close();
    throw fail(`read the decision outbox at ${dir}`, err);
  }
  segments.sort((a, b) => a.seq - b.seq);
  if (corrupt > 0) {
    console.error(JSON.stringify({ level: "warn", msg: "decision outbox: skipped torn lines", dir, corrupt }));
  }
  let nextSeq = (segments.at(-1)?.seq ?? 0) + 1;
  /** The segment appends go to, open; null until the next append. Never one adopted at open. */
  let active: { segment: Segment; file: Deno.FsFile } | null = null;
  let size = segments.reduce((n, s) => n + s.rows, 0);
  const counters = { appended: 0, replayed: 0 };
  let closed = false;

  /** Appends and segment changes run one at a time. */
  let chain: Promise<unknown> = Promise.resolve();
  function serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = chain.then(fn);
    chain = run.catch(() => undefined);
    return run;
  }

  /** Rows waiting for the next group commit. */
  let group: { rows: DecisionRecord[]; resolve: () => void; reject: (e: unknown) => void }[] = [];
  let flushing: Promise<void> | null = null;

  function sealActive(): void {
    if (!active) return;
    active.file.close();
    active = null;
  }

  async function commit(): Promise<void> {
    const waiting = group;
    group = [];
    const rows = waiting.flatMap((w) => w.rows);
    try {
      await serial(async () => {
        if (closed) throw new Error("the outbox is closed");
        if (!active) {
          const segment: Segment = {
            seq: nextSeq++,
            path: join(dir, `${String(nextSeq - 1).padStart(12, "0")}.jsonl`),
            rows: 0,
            done: 0,
            oldest: null,
            bytes: 0,
          };
          const file = await Deno.open(segment.path, { write: true, create: true, append: true });
          segments.push(segment);
          active = { segment, file };
          if (fsync) await syncDir(dir);
        }
        const bytes = encoder.encode(rows.map((r) => encodeRow(r) + "\n").join(""));
        const { segment, file } = active;
        try {
          for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
          if (fsync) await file.syncData();
        } catch (err) {
          // What reached the file may be torn: start a new segment; a replay skips the torn line.
          sealActive();
          throw err;
        }
        if (segment.rows === 0) segment.oldest = rows[0]?.createdAt ?? null;
        segment.rows += rows.length;
        segment.bytes += bytes.length;
        size += rows.length;
        counters.appended += rows.length;
        if (segment.bytes >= segmentBytes) sealActive();
      });
      waiting.forEach((w) => w.resolve());
    } catch (err) {
      const error = fail("append decisions to the outbox", err);
      waiting.forEach((w) => w.reject(error));
    }
  }

  async function readSegment(segment: Segment): Promise<DecisionRecord[]> {
    const { rows } = parseSegment(await Deno.readTextFile(segment.path));
    if (rows.length !== segment.rows) {
      // A failed append can leave complete lines that were never counted: they are replayed too.
      size += rows.length - segment.rows;
      segment.rows = rows.length;
    }
    return rows;
  }

  let replaying: Promise<number> | null = null;

  async function replayAll(
    write: (rows: DecisionRecord[]) => Promise<void>,
    batchSize: number,
  ): Promise<number> {
    // Close the segment appends go to, so that replay reads only files nobody writes.
    await serial(() => Promise.resolve(sealActive()));
    let written = 0;
    for (;;) {
      const segment = segments.find((s) => s !== active?.segment);
      if (!segment) return written;
      const rows = await readSegment(segment);
      for (let i = segment.done; i < rows.length; i += batchSize) {
        const batch = rows.slice(i, i + batchSize);
        await write(batch);
        segment.done = i + batch.length;
        segment.oldest = rows[segment.done]?.createdAt ?? null;
        size -= batch.length;
        written += batch.length;
        counters.replayed += batch.length;
      }
      await serial(async () => {
        await Deno.remove(segment.path);
        segments.splice(segments.indexOf(segment), 1);
      });
    }
  }

  return {
    dir,
    size: () => size,
    oldestCreatedAt: () => segments.find((s) => s.rows > s.done)?.oldest ?? null,
    append(rows) {
      if (rows.length === 0) return Promise.resolve();
      if (closed) return Promise.reject(new AppError("DB_UNAVAILABLE", "Cannot append to the outbox: it is closed"));
      return new Promise<void>((resolve, reject) => {
        group.push({ rows, resolve, reject });
        flushing ??= (async () => {
          // Let appends made in the same tick join this group.
          await Promise.resolve();
          while (group.length > 0) await commit();
          // Cleared in the same step as the last check, so that no append can join a loop that has ended.
          flushing = null;
        })();
      });
    },
    replay(write, replayOptions) {
      if (!Number.isInteger(replayOptions.batchSize) || replayOptions.batchSize < 1) {
        throw new RangeError("Cannot replay the outbox: batchSize must be a positive integer");
      }
      replaying ??= (async () => {
        try {
          return await replayAll(write, replayOptions.batchSize);
        } finally {
          replaying = null;
        }
      })();
      return replaying;
    },
    async rows() {
      await flushing;
      const out: DecisionRecord[] = [];
      for (const s of segments) out.push(...(await readSegment(s)).slice(s.done));
      return out;
    },
    stats: () => ({ size, ...counters, corrupt, segments: segments.length }),
    async close() {
      if (closed) return;
      await flushing;
      await replaying?.catch(() => undefined);
      closed = true;
      await serial(() => Promise.resolve(sealActive()));
      lock.close();
    },
  };
}
