/**
 * Structured logs: one JSON object per line, with the time, the level, a message and fields (the request id among
 * them), so that a log shipper can index them and an operator can follow one request from its log line to its
 * response header (`X-Request-Id`) and its decision rows (`decisions.request_id`).
 *
 * @module
 */

/** Log levels, least severe first; `silent` logs nothing. */
export const LOG_LEVELS = ["debug", "info", "warn", "error", "silent"] as const;
/** A log level. */
export type LogLevel = (typeof LOG_LEVELS)[number];

/** Fields of a log line. Values must be JSON-serialisable; never put secrets here. */
export type LogFields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  /** The least severe level written. */
  readonly level: LogLevel;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /**
   * Whether a level would be written (to skip building fields that would be dropped).
   *
   * @param level the level
   * @returns true when written
   */
  enabled(level: Exclude<LogLevel, "silent">): boolean;
}

/** Options of {@link createLogger}. */
export interface LoggerOptions {
  /** Least severe level written. @default "info" */
  level?: LogLevel;
  /**
   * Where a line goes. @default debug and info to standard output in batches ({@link LineBuffer}); warn and error to
   * standard error at once
   */
  write?: (line: string, level: Exclude<LogLevel, "silent">) => void;
  /** The clock, Unix milliseconds. @default Date.now */
  now?: () => number;
}

const encoder = new TextEncoder();

/** Where {@link LineBuffer} writes: standard output, or a stand-in in tests. */
export interface LineSink {
  writeSync(bytes: Uint8Array): number;
}

/** Options of {@link LineBuffer}. */
export interface LineBufferOptions {
  /** The longest a line waits before it is written. @default 25 */
  flushMs?: number;
  /** Waiting bytes that are written at once. @default 32 KiB */
  flushBytes?: number;
}

/**
 * Log lines on their way to a sink, written in batches: a request's line costs an array push, and the thread that
 * answers requests makes one write system call per batch (every `flushMs`, or at `flushBytes`) instead of one per
 * line. Writes are synchronous, so lines keep their order, {@link flushSync} can write what waits before the process
 * exits (the default logger does it on `unload`, which `Deno.exit` and a normal end fire, and on an uncaught error or
 * rejection), and a line written to the same stream directly afterwards comes after them.
 */
export class LineBuffer {
  #pending: string[] = [];
  #bytes = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  readonly #flushMs: number;
  readonly #flushBytes: number;

  /**
   * @param sink where the lines go
   * @param options batching
   */
  constructor(readonly sink: LineSink, options: LineBufferOptions = {}) {
    this.#flushMs = options.flushMs ?? 25;
    this.#flushBytes = options.flushBytes ?? 32 * 1024;
  }

  /**
   * Queue one line (without its newline).
   *
   * @param line the line
   */
  push(line: string): void {
    this.#pending.push(line);
    this.#bytes += line.length + 1;
    if (this.#bytes >= this.#flushBytes) this.flushSync();
    else if (this.#timer === undefined) {
      const timer = this.#timer = setTimeout(() => this.flushSync(), this.#flushMs);
      Deno.unrefTimer(timer);
    }
  }

  /** Lines waiting (not yet written). */
  get pending(): number {
    return this.#pending.length;
  }

  /** Write every waiting line now. A sink that fails loses them; the caller never sees the error. */
  flushSync(): void {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0) return;
    const bytes = encoder.encode(this.#pending.join("\n") + "\n");
    this.#pending = [];
    this.#bytes = 0;
    try {
      for (let off = 0; off < bytes.length;) off += this.sink.writeSync(bytes.subarray(off));
    } catch { /* the sink is gone: the lines are lost, the service goes on */ }
  }
}

let stdoutLines: LineBuffer | null = null;

/** The process's buffered standard output for log lines, made on first use; written out before the process ends. */
function stdoutBuffer(): LineBuffer {
  if (stdoutLines === null) {
    const lines = stdoutLines = new LineBuffer(Deno.stdout);
    // A normal end and Deno.exit fire `unload`; an uncaught error or rejection ends the process without it.
    for (const event of ["unload", "error", "unhandledrejection"]) {
      globalThis.addEventListener(event, () => lines.flushSync());
    }
  }
  return stdoutLines;
}

/**
 * Write the log lines waiting for standard output now, so that a line written to it directly afterwards (the
 * service's start and stop lines) keeps its place after them.
 */
export function flushLogsSync(): void {
  stdoutLines?.flushSync();
}

/** debug and info lines to standard output through the line buffer; warn and error to standard error at once. */
function defaultWrite(line: string, level: Exclude<LogLevel, "silent">): void {
  if (level === "warn" || level === "error") Deno.stderr.writeSync(encoder.encode(`${line}\n`));
  else stdoutBuffer().push(line);
}

/**
 * Create a logger writing JSON lines: `{"time":"2026-...Z","level":"info","msg":"request",...fields}`.
 *
 * @param options level, sink and clock
 * @returns the logger
 * @example
 * const log = createLogger({ level: "info" });
 * log.info("request", { requestId, status: 200, durationMs: 3.2 });
 */
export function createLogger(options: LoggerOptions = {}): Logger {
  const level = options.level ?? "info";
  const min = LOG_LEVELS.indexOf(level);
  const write = options.write ?? defaultWrite;
  const now = options.now ?? Date.now;
  const enabled = (l: Exclude<LogLevel, "silent">) => LOG_LEVELS.indexOf(l) >= min;
  const emit = (l: Exclude<LogLevel, "silent">) => (msg: string, fields: LogFields = {}) => {
    if (!enabled(l)) return;
    let line: string;
    try {
      line = JSON.stringify({ time: new Date(now()).toISOString(), level: l, msg, ...fields });
    } catch {
      line = JSON.stringify({ time: new Date(now()).toISOString(), level: l, msg, fields: "unserialisable" });
    }
    write(line, l);
  };
  return { level, debug: emit("debug"), info: emit("info"), warn: emit("warn"), error: emit("error"), enabled };
}
