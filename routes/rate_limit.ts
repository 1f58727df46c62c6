/**
 * Per-client rate limits: a token bucket per client key, refilled at `ratePerS` up to `burst`. A request that
 * finds its bucket empty gets 429 `RATE_LIMITED` with `Retry-After` (whole seconds until a token is back), before
 * its body is read.
 *
 * The key is the peer's IP address, or a header the operator names (e.g. `x-client-id` set by a trusted gateway;
 * requests without it fall back to the address). A client that may set the header itself can pick a new key per
 * request: name a header only behind a gateway that sets it. At most `maxClients` buckets are kept; the least
 * recently seen is dropped first (a dropped client starts again with a full bucket), so memory stays bounded
 * whatever keys arrive.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import { AppError } from "../errors.ts";

/** Options of {@link rateLimit}. */
export interface RateLimitOptions {
  /** Tokens added per second per client. */
  ratePerS: number;
  /** Bucket size: the most requests a client may make at once after a pause. @default max(1, ceil(ratePerS)) */
  burst?: number;
  /** `address`, or `header:NAME`. @default "address" */
  key?: string;
  /** Most clients tracked at once. @default 10000 */
  maxClients?: number;
  /** The clock, in milliseconds. @default performance.now */
  now?: () => number;
}

interface Bucket {
  tokens: number;
  at: number;
}

/** The peer's address: from Deno's connection info when served, "unknown" in `app.request()` tests. */
function address(c: Context): string {
  try {
    return getConnInfo(c).remote.address ?? "unknown";
  } catch {
    return "unknown";
  }
}

/**
 * Middleware that limits each client to `ratePerS` requests per second on average, bursts up to `burst`.
 *
 * @param options rate, burst, key, bound on clients, clock
 * @returns the middleware (429 `RATE_LIMITED` with `Retry-After` when a client is over its rate)
 * @throws RangeError when the rate or the burst is not positive, or the key is not `address` or `header:NAME`
 * @example
 * app.use("/v1/*", rateLimit({ ratePerS: 50, burst: 100, key: "header:x-client-id" }));
 */
export function rateLimit(options: RateLimitOptions): MiddlewareHandler {
  const { ratePerS } = options;
  if (!Number.isFinite(ratePerS) || ratePerS <= 0) {
    throw new RangeError(`Cannot create the rate limit: ratePerS must be a positive number, got ${ratePerS}`);
  }
  const burst = options.burst ?? Math.max(1, Math.ceil(ratePerS));
  if (!Number.isFinite(burst) || burst < 1) {
    throw new RangeError(`Cannot create the rate limit: burst must be at least 1, got ${burst}`);
  }
  const key = options.key ?? "address";
  const header = key === "address" ? null : /^header:(.+)$/.exec(key)?.[1]?.toLowerCase();
  if (header === undefined) {
    throw new RangeError(`Cannot create the rate limit: key must be address or header:NAME, got "${key}"`);
  }
  const maxClients = options.maxClients ?? 10_000;
  const now = options.now ?? (() => performance.now());
  /** Insertion order is recency order: a client seen again is moved to the end. */
  const buckets = new Map<string, Bucket>();

  return async (c, next) => {
    const id = (header ? c.req.header(header)?.slice(0, 256) : undefined) || address(c);
    const t = now();
    let bucket = buckets.get(id);
    if (bucket) {
      buckets.delete(id);
      bucket.tokens = Math.min(burst, bucket.tokens + ((t - bucket.at) / 1000) * ratePerS);
      bucket.at = t;
    } else {
      bucket = { tokens: burst, at: t };
      if (buckets.size >= maxClients) buckets.delete(buckets.keys().next().value!);
    }
    buckets.set(id, bucket);
    if (bucket.tokens < 1) {
      const retryAfterS = Math.max(1, Math.ceil((1 - bucket.tokens) / ratePerS));
      throw new AppError("RATE_LIMITED", `Cannot accept the request: over the limit of ${ratePerS} per second`, {
        headers: { "Retry-After": String(retryAfterS) },
      });
    }
    bucket.tokens -= 1;
    await next();
  };
}
