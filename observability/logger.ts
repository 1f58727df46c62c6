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
   * Where a line goes. @default debug and info to standard output, batched and written asynchronously
   * ({@link LineBuffer}); warn and error to standard error at once
   */
  write?: (line: string, level: Exclude<LogLevel, "silent">) => void;
  /** The clock, Unix milliseconds. @default Date.now */
  now?: () => number;
}

const encoder = new TextEncoder();

/** Where {@link LineBuffer} writes: standard output, or a stand-in in tests. */
export interface LineSink {
  write(bytes: Uint8Array): Promise<number>;
  writeSync(bytes: Uint8Array): number;
}

/** Options of {@link LineBuffer}. */
export interface LineBufferOptions {
  /** The longest a line waits before its write starts. @default 25 */
  flushMs?: number;
  /** Pending bytes that start a write at once. @default 32 KiB */
  flushBytes?: number;
  /** Pending bytes beyond which new lines are dropped (and counted) while the sink does not keep up. @default 8 MiB */
  maxBytes?: number;
}

/**
 * Log lines on their way to a sink, written in batches and asynchronously: a request's line costs an array push,
 * not a system call on the thread that answers requests, and a sink that stops reading (a full pipe to a log
 * shipper) never stalls that thread. Lines keep their order. While the sink does not keep up, at most `maxBytes`
 * wait and later lines are dropped; the next write starts with a line that counts them. {@link flushSync} writes what
 * waits before the process exits (the default logger does it on `unload`, which `Deno.exit` and a normal end fire).
 */
export class LineBuffer {
  #pending: string[] = [];
  #bytes = 0;
  #dropped = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #writing: Promise<void> | null = null;
  readonly #flushMs: number;
  readonly #flushBytes: number;
  readonly #maxBytes: number;

  /**
   * @param sink where the lines go
   * @param options batching and the bound
   */
  constructor(readonly sink: LineSink, options: LineBufferOptions = {}) {
    this.#flushMs = options.flushMs ?? 25;
    this.#flushBytes = options.flushBytes ?? 32 * 1024;
    this.#maxBytes = options.maxBytes ?? 8 * 1024 * 1024;
  }

  /**
   * Queue one line (without its newline).
   *
   * @param line the line
   */
  push(line: string): void {
    if (this.#bytes + line.length + 1 > this.#maxBytes) {
      this.#dropped++;
      return;
    }
    this.#pending.push(line);
    this.#bytes += line.length + 1;
    if (this.#writing) return; // the running write takes these lines next
    if (this.#bytes >= this.#flushBytes) this.#startWrite();
    else if (this.#timer === undefined) {
      const timer = this.#timer = setTimeout(() => this.#startWrite(), this.#flushMs);
      Deno.unrefTimer(timer);
    }
  }

  /** Lines waiting (not yet handed to the sink). */
  get pending(): number {
    return this.#pending.length;
  }

  /** Lines dropped since the last write, while the sink did not keep up. */
  get dropped(): number {
    return this.#dropped;
  }

  /**
   * The running write, if any, and every line queued before this call, written.
   *
   * @returns when they are
   */
  async flush(): Promise<void> {
    if (this.#pending.length > 0 && !this.#writing) this.#startWrite();
    while (this.#writing) await this.#writing;
  }

  /** Write every waiting line now, synchronously (before the process exits). */
  flushSync(): void {
    const bytes = this.#take();
    if (bytes === null) return;
    try {
      for (let off = 0; off < bytes.length;) off += this.sink.writeSync(bytes.subarray(off));
    } catch { /* the sink is gone: nothing left to tell */ }
  }

  #take(): Uint8Array | null {
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
    if (this.#pending.length === 0 && this.#dropped === 0) return null;
    if (this.#dropped > 0) {
      const note = JSON.stringify({
        time: new Date().toISOString(),
        level: "warn",
        msg: "log lines dropped: standard output did not keep up",
        dropped: this.#dropped,
      });
      this.#pending.unshift(note);
      this.#dropped = 0;
    }
    const text = this.#pending.join("\n") + "\n";
    this.#pending = [];
    this.#bytes = 0;
    return encoder.encode(text);
  }

  #startWrite(): void {
    this.#writing = (async () => {
      for (let bytes = this.#take(); bytes !== null; bytes = this.#take()) {
        try {
          for (let off = 0; off < bytes.length;) off += await this.sink.write(bytes.subarray(off));
        } catch { /* the sink is gone: the lines are lost, the service goes on */ }
      }
    })().finally(() => (this.#writing = null));
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
