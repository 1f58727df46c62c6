/**
 * The wire between the service and its database process (`db/host.ts`, started by `db/hosted_client.ts`): frames of
 * a 4-byte little-endian length and a V8-serialised value (`node:v8`), which keeps what JSON cannot (bigints,
 * `ArrayBuffer`s and typed arrays, non-finite numbers), over the child's stdin and stdout.
 *
 * Requests name a connection (`cid`) opened by `open`, or a transaction (`tid`) begun by `begin`; every reply names
 * its request's `id`. Results travel as plain arrays ({@link WireResult}) and become libSQL `ResultSet`s again on
 * the service's side ({@link resultFromWire}); errors travel as their cause chain ({@link WireError}) and become
 * errors of the same kind ({@link errorFromWire}), so that `sqliteCode()` and `instanceof DatabaseFileError` work on
 * either side.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { deserialize, serialize } from "node:v8";
import type { InStatement, ResultSet, Row, TransactionMode, Value } from "@libsql/client";
import { AppError, type ErrorCode } from "../errors.ts";
import { DatabaseFileError } from "./preflight.ts";

/** A request to the database process. */
export type HostRequest =
  | { id: number; op: "open"; url: string; authToken?: string; busyTimeoutMs?: number }
  | { id: number; op: "execute"; cid: number; stmt: InStatement }
  | { id: number; op: "batch"; cid: number; stmts: InStatement[]; mode?: TransactionMode }
  | { id: number; op: "migrate"; cid: number; stmts: InStatement[] }
  | { id: number; op: "executeMultiple"; cid: number; sql: string }
  | { id: number; op: "close"; cid: number }
  | { id: number; op: "begin"; cid: number; mode?: TransactionMode }
  | { id: number; op: "txExecute"; tid: number; stmt: InStatement }
  | { id: number; op: "txBatch"; tid: number; stmts: InStatement[] }
  | { id: number; op: "txExecuteMultiple"; tid: number; sql: string }
  | { id: number; op: "commit" | "rollback" | "txClose"; tid: number };

/** A reply: `value` is a connection or transaction id, a {@link WireResult}, a list of them, or null. */
export type HostReply =
  | { id: number; ok: true; value: unknown }
  | { id: number; ok: false; error: WireError[] };

/** A libSQL result as plain data. */
export interface WireResult {
  columns: string[];
  columnTypes: string[];
  rows: Value[][];
  rowsAffected: number;
  lastInsertRowid: bigint | undefined;
}

/** One error of a cause chain, outermost first. */
export interface WireError {
  name: string;
  message: string;
  code?: string;
  extendedCode?: string;
  rawCode?: number;
  /** A {@link DatabaseFileError}'s file and errno. */
  file?: string;
  errno?: string;
}

/** The largest frame either side accepts (a frame is one request or reply). */
export const MAX_FRAME_BYTES = 256 * 1024 * 1024;

/**
 * Encode one frame.
 *
 * @param value a request or reply
 * @returns the length prefix and the serialised value
 */
export function encodeFrame(value: unknown): Uint8Array {
  const body = serialize(value);
  const frame = new Uint8Array(4 + body.length);
  new DataView(frame.buffer).setUint32(0, body.length, true);
  frame.set(body, 4);
  return frame;
}

/**
 * Read frames from a byte stream until it ends.
 *
 * @param stream the child's stdout or the process's stdin
 * @returns each decoded value, in order
 * @throws RangeError on a frame over {@link MAX_FRAME_BYTES} (the stream is not this protocol)
 */
export async function* readFrames(stream: ReadableStream<Uint8Array>): AsyncGenerator<unknown> {
  let buffer: Uint8Array = new Uint8Array(0);
  for await (const chunk of stream) {
    buffer = buffer.length === 0 ? chunk : concat(buffer, chunk);
    while (buffer.length >= 4) {
      const length = new DataView(buffer.buffer, buffer.byteOffset, 4).getUint32(0, true);
      if (length > MAX_FRAME_BYTES) throw new RangeError(`A database process frame of ${length} bytes is too large`);
      if (buffer.length < 4 + length) break;
      yield deserialize(buffer.subarray(4, 4 + length));
      buffer = buffer.subarray(4 + length);
    }
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * A statement as plain data: `Date`s and booleans become numbers, as the libSQL client stores them.
 *
 * @param stmt a statement or SQL text
 * @returns the statement with plain arguments
 */
export function statementToWire(stmt: InStatement | [string, unknown[]?]): InStatement {
  if (typeof stmt === "string") return { sql: stmt };
  if (Array.isArray(stmt)) return statementToWire({ sql: stmt[0], args: (stmt[1] ?? []) as Value[] });
  const args = stmt.args;
  if (args === undefined) return { sql: stmt.sql };
  const plain = (v: unknown): unknown =>
    v instanceof Date ? v.valueOf() : typeof v === "boolean" ? (v ? 1 : 0) : v === undefined ? null : v;
  if (Array.isArray(args)) return { sql: stmt.sql, args: args.map(plain) as Value[] };
  return {
    sql: stmt.sql,
    args: Object.fromEntries(Object.entries(args).map(([k, v]) => [k, plain(v)])) as Record<string, Value>,
  };
}

/**
 * A result as plain data.
 *
 * @param result a libSQL result
 * @returns its columns, types, rows as arrays, counts
 */
export function resultToWire(result: ResultSet): WireResult {
  return {
    columns: result.columns,
    columnTypes: result.columnTypes,
    rows: result.rows.map((row) => Array.from({ length: row.length }, (_, i) => row[i])),
    rowsAffected: result.rowsAffected,
    lastInsertRowid: result.lastInsertRowid,
  };
}

/** A libSQL `ResultSet` rebuilt from its plain data, `toJSON` included. */
class HostedResultSet implements ResultSet {
  constructor(
    readonly columns: string[],
    readonly columnTypes: string[],
    readonly rows: Row[],
    readonly rowsAffected: number,
    readonly lastInsertRowid: bigint | undefined,
  ) {}

  toJSON() {
    const json = (v: Value) =>
      typeof v === "bigint" ? `${v}` : v instanceof ArrayBuffer ? Buffer.from(v).toString("base64") : v;
    return {
      columns: this.columns,
      columnTypes: this.columnTypes,
      rows: this.rows.map((row) => Array.prototype.map.call(row, json)),
      rowsAffected: this.rowsAffected,
      lastInsertRowid: this.lastInsertRowid !== undefined ? `${this.lastInsertRowid}` : null,
    };
  }
}

/**
 * The `ResultSet` the libSQL client would have returned: each row is array-like (indexed, non-enumerable `length`)
 * with a property per column name, the first column of a name winning.
 *
 * @param wire a result as plain data
 * @returns the result
 */
export function resultFromWire(wire: WireResult): ResultSet {
  const rows = wire.rows.map((values) => {
    const row: Record<string | number, Value> = {};
    Object.defineProperty(row, "length", { value: values.length });
    for (let i = 0; i < values.length; i++) {
      Object.defineProperty(row, i, { value: values[i] });
      const column = wire.columns[i];
      if (!Object.hasOwn(row, column)) {
        Object.defineProperty(row, column, { value: values[i], enumerable: true, configurable: true, writable: true });
      }
    }
    return row as unknown as Row;
  });
  return new HostedResultSet(wire.columns, wire.columnTypes, rows, wire.rowsAffected, wire.lastInsertRowid);
}

/**
 * An error and its causes as plain data.
 *
 * @param err what was thrown
 * @returns its cause chain, outermost first (at most 8)
 */
export function errorToWire(err: unknown): WireError[] {
  const chain: WireError[] = [];
  for (let e: unknown = err; e !== undefined && chain.length < 8; e = e instanceof Error ? e.cause : undefined) {
    if (!(e instanceof Error)) {
      chain.push({ name: "Error", message: String(e) });
      break;
    }
    const fields = e as Error & { code?: unknown; extendedCode?: unknown; rawCode?: unknown };
    chain.push({
      name: e.name,
      message: e.message,
      code: typeof fields.code === "string" ? fields.code : undefined,
      extendedCode: typeof fields.extendedCode === "string" ? fields.extendedCode : undefined,
      rawCode: typeof fields.rawCode === "number" ? fields.rawCode : undefined,
      file: e instanceof DatabaseFileError ? e.file : undefined,
      errno: e instanceof DatabaseFileError ? e.errno : undefined,
    });
  }
  return chain;
}

/**
 * The error a cause chain describes: an {@link AppError}, a {@link DatabaseFileError}, or an `Error` with the
 * driver's name and codes.
 *
 * @param chain from {@link errorToWire}
 * @returns the outermost error, its causes attached
 */
export function errorFromWire(chain: WireError[]): Error {
  let cause: Error | undefined;
  for (const w of [...chain].reverse()) {
    let e: Error;
    if (w.name === "DatabaseFileError" && w.file !== undefined) {
      e = new DatabaseFileError(w.file, w.errno ?? "", w.message);
      if (cause) e.cause = cause;
    } else if (w.name === "AppError" && w.code) {
      e = new AppError(w.code as ErrorCode, w.message, cause ? { cause } : undefined);
    } else {
      e = Object.assign(new Error(w.message, cause ? { cause } : undefined), {
        code: w.code,
        extendedCode: w.extendedCode,
        rawCode: w.rawCode,
      });
      e.name = w.name;
    }
    cause = e;
  }
  return cause ?? new Error("The database process failed without an error");
}
