/**
 * The parameters of every analytics query: a time window, a bucket size and optional filters, parsed and checked
 * once for the CLI (`deno task analytics`) and the API (`GET /v1/stats`). Pure: the clock is passed in.
 *
 * Times are Unix milliseconds or ISO 8601 date-times; `from` may also be a duration before `to` (`24h`, `7d`).
 * Durations are `<n>ms|s|m|h|d` or a bare integer of milliseconds. Buckets are aligned to multiples of the bucket
 * size since the Unix epoch (UTC), so a chart that refreshes keeps the same buckets.
 *
 * @module
 */
import { AppError } from "../errors.ts";

/** A resolved analytics query: window `[fromMs, toMs)`, bucket size and filters. */
export interface AnalyticsQuery {
  /** Inclusive start of the window, Unix milliseconds. */
  fromMs: number;
  /** Exclusive end of the window, Unix milliseconds. */
  toMs: number;
  /** Bucket size of the time series, in milliseconds. */
  bucketMs: number;
  /** Keep one edge location only. */
  edgeLocation?: string;
  /** Keep one switcher version only. */
  switcherVersion?: string;
}

/** Raw parameters, as strings from a query string or command-line flags. */
export interface RawAnalyticsParams {
  from?: string;
  to?: string;
  bucket?: string;
  edgeLocation?: string;
  switcherVersion?: string;
}

/** Default window when `from` is not given: the last 24 hours. */
export const DEFAULT_WINDOW_MS = 24 * 3600_000;
/** Longest window accepted: 400 days. */
export const MAX_WINDOW_MS = 400 * 24 * 3600_000;
/** Smallest bucket accepted: one second. */
export const MIN_BUCKET_MS = 1000;
/** Most buckets in one time series (the series is filled with empty buckets, so this bounds the answer's size). */
export const MAX_BUCKETS = 5000;
/** Bucket sizes chosen automatically: the smallest that gives at most {@link AUTO_BUCKETS} buckets. */
const AUTO_LADDER_MS = [60_000, 300_000, 900_000, 3600_000, 3 * 3600_000, 6 * 3600_000, 86_400_000, 7 * 86_400_000];
/** Target number of buckets when the bucket is not given. */
export const AUTO_BUCKETS = 96;

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000, d: 86_400_000 };

function invalid(message: string): AppError {
  return new AppError("INVALID_INPUT", message);
}

/**
 * Parse a duration: `<n>ms|s|m|h|d` (n a positive integer) or a bare positive integer of milliseconds.
 *
 * @param text the duration
 * @param name the parameter's name, for the error message
 * @returns milliseconds
 * @throws AppError INVALID_INPUT when it is not a duration
 */
export function parseDurationMs(text: string, name: string): number {
  const m = /^(\d{1,12})(ms|s|m|h|d)?$/.exec(text.trim());
  if (!m) throw invalid(`Cannot read ${name}: expected a duration such as 5m, 1h or 1d, got "${text}"`);
  const ms = Number(m[1]) * UNIT_MS[m[2] ?? "ms"];
  if (!Number.isSafeInteger(ms) || ms <= 0) throw invalid(`Cannot read ${name}: must be positive, got "${text}"`);
  return ms;
}

/** Parse a point in time: Unix milliseconds or an ISO 8601 date-time. */
function parseTimeMs(text: string, name: string): number {
  const t = text.trim();
  if (/^\d{1,15}$/.test(t)) return Number(t);
  // Date-times only (a date alone or other formats Date.parse guesses at are refused).
  if (/^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:?\d{2})?)?$/.test(t)) {
    const ms = Date.parse(t);
    if (Number.isFinite(ms)) return ms;
  }
  throw invalid(`Cannot read ${name}: expected Unix milliseconds or an ISO 8601 date-time, got "${text}"`);
}

function parseFilter(text: string | undefined, name: string): string | undefined {
  if (text === undefined || text === "") return undefined;
  if (text.length > 256) throw invalid(`Cannot read ${name}: at most 256 characters`);
  return text;
}

/**
 * Resolve raw parameters to a checked {@link AnalyticsQuery}.
 *
 * Defaults: `to` = now, `from` = 24 hours before `to`, `bucket` = the smallest of 1m, 5m, 15m, 1h, 3h, 6h, 1d, 7d
 * that gives at most 96 buckets.
 *
 * @param raw the parameters as strings
 * @param options `nowMs`, the current time
 * @returns the query
 * @throws AppError INVALID_INPUT naming the parameter: unreadable, `from` not before `to`, a window over 400
 *   days, a bucket under 1 s, or more than 5000 buckets
 * @example
 * parseAnalyticsParams({ from: "7d", bucket: "1h" }, { nowMs: Date.now() });
 */
export function parseAnalyticsParams(raw: RawAnalyticsParams, options: { nowMs: number }): AnalyticsQuery {
  const toMs = raw.to === undefined || raw.to === "" ? options.nowMs : parseTimeMs(raw.to, "to");
  let fromMs: number;
  if (raw.from === undefined || raw.from === "") fromMs = toMs - DEFAULT_WINDOW_MS;
  else if (/^\d{1,12}(ms|s|m|h|d)$/.test(raw.from.trim())) fromMs = toMs - parseDurationMs(raw.from, "from");
  else fromMs = parseTimeMs(raw.from, "from");
  if (fromMs >= toMs) throw invalid(`Cannot read the window: from (${fromMs}) must be before to (${toMs})`);
  if (toMs - fromMs > MAX_WINDOW_MS) throw invalid("Cannot read the window: at most 400 days");
  let bucketMs: number;
  if (raw.bucket === undefined || raw.bucket === "") {
    bucketMs = AUTO_LADDER_MS.find((b) => (toMs - fromMs) / b <= AUTO_BUCKETS) ?? AUTO_LADDER_MS.at(-1)!;
  } else {
    bucketMs = parseDurationMs(raw.bucket, "bucket");
    if (bucketMs < MIN_BUCKET_MS) throw invalid(`Cannot read bucket: at least 1s, got "${raw.bucket}"`);
  }
  const buckets = Math.ceil(toMs / bucketMs) - Math.floor(fromMs / bucketMs);
  if (buckets > MAX_BUCKETS) {
    throw invalid(`Cannot read bucket: the window would have ${buckets} buckets, at most ${MAX_BUCKETS}`);
  }
  return {
    fromMs,
    toMs,
    bucketMs,
    edgeLocation: parseFilter(raw.edgeLocation, "edgeLocation"),
    switcherVersion: parseFilter(raw.switcherVersion, "switcherVersion"),
  };
}

/**
 * The bucket starts of a query's window, in order: every bucket overlapping `[fromMs, toMs)`.
 *
 * @param query the query
 * @returns bucket start times, Unix milliseconds
 */
export function bucketStarts(query: AnalyticsQuery): number[] {
  const out: number[] = [];
  const first = query.fromMs - (((query.fromMs % query.bucketMs) + query.bucketMs) % query.bucketMs);
  for (let t = first; t < query.toMs; t += query.bucketMs) out.push(t);
  return out;
}
