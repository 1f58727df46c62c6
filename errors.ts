/**
 * The service's one error type and its one error handler.
 *
 * @module
 */
import type { Context } from "hono";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** Every machine-readable error code the API returns. */
export type ErrorCode =
  | "INVALID_INPUT"
  | "NO_PERSON"
  | "PAYLOAD_TOO_LARGE"
  | "UNSUPPORTED_MEDIA_TYPE"
  | "NOT_FOUND"
  | "METHOD_NOT_ALLOWED"
  | "NO_USABLE_INPUT"
  | "SEQUENCE_TOO_SHORT"
  | "CONFLICT"
  | "UNAUTHORIZED"
  | "OVERLOADED"
  | "RATE_LIMITED"
  | "INFERENCE_FAILED"
  | "CIRCUIT_OPEN"
  | "MODEL_NOT_READY"
  | "OFFLOAD_TIMEOUT"
  | "OFFLOAD_FAILED"
  | "DB_UNAVAILABLE"
  | "SHUTTING_DOWN"
  | "REQUEST_TIMEOUT"
  | "INTERNAL";

const DEFAULT_STATUS: Record<ErrorCode, ContentfulStatusCode> = {
  INVALID_INPUT: 400,
  /** Camera frames in which the pose model found nobody (serve/frames.ts): no label is given. */
  NO_PERSON: 422,
  PAYLOAD_TOO_LARGE: 413,
  UNSUPPORTED_MEDIA_TYPE: 415,
  NOT_FOUND: 404,
  /** A known path with another method; the answer's `Allow` lists the methods it has. */
  METHOD_NOT_ALLOWED: 405,
  /** Well-formed input with nothing to classify (every point missing: nobody in view); nothing is logged. */
  NO_USABLE_INPUT: 422,
  /** Well-formed input spanning less time than the model reads (sequence/window.ts); the message names the minimum. */
  SEQUENCE_TOO_SHORT: 422,
  /** Another job holds the models folder's lock (loop/job_lock.ts); try again when it is done. */
  CONFLICT: 409,
  UNAUTHORIZED: 401,
  OVERLOADED: 503,
  /** Per-client rate limit (routes/rate_limit.ts), with Retry-After. */
  RATE_LIMITED: 429,
  /** An inference worker crashed or passed its deadline on this request; it is being replaced (workers/pool.ts). */
  INFERENCE_FAILED: 503,
  /** The cloud circuit is open (cloud/circuit_breaker.ts); reported as a fallback's cloudError, not as a status. */
  CIRCUIT_OPEN: 503,
  MODEL_NOT_READY: 503,
  OFFLOAD_TIMEOUT: 504,
  OFFLOAD_FAILED: 502,
  DB_UNAVAILABLE: 503,
  /** The service is draining after SIGTERM (routes/drain.ts), with `Connection: close` and `Retry-After`. */
  SHUTTING_DOWN: 503,
  /** A request head slower than `HEADER_TIMEOUT_MS`, answered by the connection guard (serve/conn_guard.ts). */
  REQUEST_TIMEOUT: 408,
  INTERNAL: 500,
};

/**
 * An error with an HTTP status and a code from {@link ErrorCode}. The message is safe to show to a caller; the
 * cause is logged, never returned.
 *
 * @example
 * throw new AppError("INVALID_INPUT", "Cannot classify: expected 17 joints, got 12");
 */
export class AppError extends Error {
  readonly code: ErrorCode;
  readonly status: ContentfulStatusCode;
  /** Extra response headers, e.g. `Retry-After` when shedding load. */
  readonly headers: Record<string, string>;

  /**
   * @param code the error code
   * @param message a message for the caller, naming the action, without a final period
   * @param options `status` (default: the code's), `cause`, `headers`
   */
  constructor(
    code: ErrorCode,
    message: string,
    options: { status?: ContentfulStatusCode; cause?: unknown; headers?: Record<string, string> } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "AppError";
    this.code = code;
    this.status = options.status ?? DEFAULT_STATUS[code];
    this.headers = options.headers ?? {};
  }
}

/**
 * Map any thrown value to an {@link AppError}: an `AppError` stays as it is; anything else, `TypeError` and
 * `RangeError` included, is a bug or a broken invariant and becomes `INTERNAL`. Input is validated once, at the
 * boundary (`routes/validation.ts`), into `INVALID_INPUT`; an error thrown deeper never blames the client.
 *
 * @param err what was thrown
 * @returns the error to report
 */
export function toAppError(err: unknown): AppError {
  if (err instanceof AppError) return err;
  return new AppError("INTERNAL", "Internal error", { cause: err });
}

/**
 * The app's `onError`: JSON `{ code, message }` with the error's status. Unknown errors are logged and become a
 * 500 `INTERNAL`; causes and stacks are never returned.
 *
 * @param err the thrown error
 * @param c the Hono context
 * @returns the error response
 */
export function onError(err: Error, c: Context): Response {
  const appErr = err instanceof AppError ? err : fromHttpException(err) ?? toAppError(err);
  if (appErr.code === "INTERNAL") {
    console.error(JSON.stringify({
      level: "error",
      msg: "unhandled error",
      requestId: c.get("requestId"),
      path: c.req.path,
      error: String(err),
      stack: err.stack,
    }));
  }
  for (const [k, v] of Object.entries(appErr.headers)) c.header(k, v);
  return c.json({ code: appErr.code, message: appErr.message }, appErr.status);
}

/** Hono's own `HTTPException`s (malformed JSON, body limit) carry a status; give them our codes and messages. */
function fromHttpException(err: Error): AppError | null {
  if (!(err instanceof HTTPException)) return null;
  switch (err.status) {
    case 400:
      return new AppError("INVALID_INPUT", "Cannot parse request body: malformed JSON", { cause: err });
    case 413:
      return new AppError("PAYLOAD_TOO_LARGE", "Cannot read request: body exceeds the size limit", { cause: err });
    case 415:
      return new AppError("UNSUPPORTED_MEDIA_TYPE", "Cannot read request: expected application/json", { cause: err });
    case 404:
      return new AppError("NOT_FOUND", "Cannot find the resource", { cause: err });
    default:
      return null;
  }
}
