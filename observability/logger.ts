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
  /** Where a line goes. @default debug and info to stdout, warn and error to stderr */
  write?: (line: string, level: Exclude<LogLevel, "silent">) => void;
  /** The clock, Unix milliseconds. @default Date.now */
  now?: () => number;
}

const encoder = new TextEncoder();

function defaultWrite(line: string, level: Exclude<LogLevel, "silent">): void {
  const out = level === "warn" || level === "error" ? Deno.stderr : Deno.stdout;
  out.writeSync(encoder.encode(`${line}\n`));
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
