/**
 * One HTTP call to a cloud model server under one deadline and one reply-size bound: the part every cloud client
 * shares (the Open Inference Protocol client, cloud/oip_client.ts, and the OpenAI-compatible chat client,
 * cloud/vlm_client.ts). The deadline (`AbortSignal.timeout`, combined with the caller's signal) covers the
 * connection, the headers, the whole body and its parsing: a reply complete only after the deadline is a timeout
 * too. A reply larger than its bound (by its `content-length`, or while it streams) is cut off and refused, so a
 * broken or hostile server cannot make the edge app read and parse 100 MB. Every failure is an `AppError`
 * (`OFFLOAD_TIMEOUT` or `OFFLOAD_FAILED`); messages never contain the server's address or the credential: they may
 * reach API callers.
 *
 * @module
 */
import { redactUrl } from "../config.ts";
import { AppError } from "../errors.ts";

/**
 * Why a call failed, for callers that report more than the code (cloud/vlm_client.ts): the transport's reasons,
 * and the two a client finds reading a reply: `malformed_reply` (not JSON, or not the protocol's shape) and
 * `answer_not_in_labels` (a constrained answer outside the label set).
 */
export type CallFailure =
  | "timeout"
  | "unreachable"
  | "cancelled"
  | "broken_reply"
  | "too_large"
  | "http_error"
  | "malformed_reply"
  | "answer_not_in_labels";

/** An `AppError` from {@link createBoundedCaller}, with the reason it failed. */
export class CallError extends AppError {
  /** Why the call failed. */
  readonly reason: CallFailure;

  /**
   * @param reason why the call failed (`timeout` gives `OFFLOAD_TIMEOUT`, the rest `OFFLOAD_FAILED`)
   * @param message a message for the caller
   * @param cause what was thrown underneath, logged only
   */
  constructor(reason: CallFailure, message: string, cause?: unknown) {
    super(reason === "timeout" ? "OFFLOAD_TIMEOUT" : "OFFLOAD_FAILED", message, { cause });
    this.reason = reason;
  }
}

/** Options of {@link createBoundedCaller}. */
export interface BoundedCallerOptions {
  /** Server base URL (a trailing slash is ignored); refused unless http(s). */
  baseUrl: string;
  /** Names the client in the error thrown for a bad base URL, e.g. "the cloud client". */
  client: string;
  /** A credential sent with every call; never logged or put in a message. */
  auth?: { header: string; value: string };
  /** The clock, in milliseconds (tests). @default performance.now */
  now?: () => number;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** Per-call options of {@link BoundedCaller.call}. */
export interface BoundedCallInit extends RequestInit {
  /** The call's deadline, in milliseconds. */
  timeoutMs: number;
  /** Aborts the call; a `TimeoutError` reason counts as a timeout. */
  signal?: AbortSignal;
  /** Most bytes of the reply read. */
  maxBytes: number;
}

/** Calls to one server. */
export interface BoundedCaller {
  /**
   * Fetch and read the whole body under one deadline.
   *
   * @param action names the call in messages ("offload" -> "Cannot offload: ...")
   * @param path the path under the base URL
   * @param init method, headers, body, deadline, signal, reply bound
   * @returns the status and the body's text
   * @throws CallError timeout, unreachable, cancelled, broken reply or too large
   */
  call(action: string, path: string, init: BoundedCallInit): Promise<{ status: number; text: string }>;
  /**
   * {@link call}, requiring a 2xx reply that is JSON; the error of a non-2xx reply quotes at most 200 characters of
   * the server's `error` (a string, or an object's `message`).
   *
   * @returns the reply, parsed
   * @throws CallError as {@link call}; `http_error` on a non-2xx reply; `malformed_reply` when it is not JSON
   */
  callJson(action: string, path: string, init: BoundedCallInit): Promise<unknown>;
}

function isTimeoutReason(reason: unknown): boolean {
  return reason instanceof DOMException && reason.name === "TimeoutError";
}

/**
 * The body as text, at most `maxBytes` of it: a longer body is cancelled and refused.
 *
 * @param res the response
 * @param action names the call in the message
 * @param maxBytes the bound
 * @returns the text
 */
async function readBounded(res: Response, action: string, maxBytes: number): Promise<string> {
  const declared = Number(res.headers.get("content-length") ?? NaN);
  const tooLarge = () => new CallError("too_large", `Cannot ${action}: the reply is larger than ${maxBytes} bytes`);
  if (declared > maxBytes) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge();
  }
  if (!res.body) return "";
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge();
    }
    chunks.push(value);
  }
  const all = new Uint8Array(bytes);
  let off = 0;
  for (const c of chunks) all.set(c, (off += c.byteLength) - c.byteLength);
  return new TextDecoder().decode(all);
}

/**
 * Create the caller of one server.
 *
 * @param options the base URL, the credential, the clock and fetch
 * @returns the caller
 * @throws TypeError when `baseUrl` is not an http(s) URL (the message shows it redacted)
 */
export function createBoundedCaller(options: BoundedCallerOptions): BoundedCaller {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? (() => performance.now());
  const base = options.baseUrl.replace(/\/+$/, "");
  if (!/^https?:\/\/[^/]/.test(base)) {
    throw new TypeError(
      `Cannot create ${options.client}: expected an http(s) base URL, got "${redactUrl(options.baseUrl)}"`,
    );
  }

  async function call(action: string, path: string, init: BoundedCallInit): Promise<{ status: number; text: string }> {
    const { timeoutMs, signal, maxBytes, ...rest } = init;
    const started = now();
    const deadline = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([deadline, signal]) : deadline;

    function failure(err: unknown, what: string): CallError {
      if (deadline.aborted || (signal?.aborted && isTimeoutReason(signal.reason))) {
        return new CallError("timeout", `Cannot ${action}: ${what} within ${timeoutMs} ms`, err);
      }
      if (signal?.aborted) return new CallError("cancelled", `Cannot ${action}: the call was cancelled`, err);
      return what === "no reply"
        ? new CallError("unreachable", `Cannot ${action}: the cloud model server is unreachable`, err)
        : new CallError("broken_reply", `Cannot ${action}: the reply broke off`, err);
    }

    let res: Response;
    const headers = new Headers(rest.headers);
    if (options.auth) headers.set(options.auth.header, options.auth.value);
    try {
      res = await doFetch(`${base}${path}`, { ...rest, headers, signal: combined });
    } catch (err) {
      throw failure(err, "no reply");
    }
    let text: string;
    try {
      text = await readBounded(res, action, maxBytes);
    } catch (err) {
      if (err instanceof AppError) throw err;
      throw failure(err, "reply not complete");
    }
    if (now() - started > timeoutMs) {
      throw new CallError("timeout", `Cannot ${action}: reply not complete within ${timeoutMs} ms`);
    }
    return { status: res.status, text };
  }

  return {
    call,
    async callJson(action, path, init) {
      const { status, text } = await call(action, path, init);
      if (status < 200 || status > 299) {
        let detail = "";
        try {
          const error = (JSON.parse(text) as { error?: unknown }).error;
          const message = typeof error === "string"
            ? error
            : typeof (error as { message?: unknown })?.message === "string"
            ? (error as { message: string }).message
            : "";
          if (message) detail = `: ${message.slice(0, 200)}`;
        } catch {
          // not JSON: the status says enough
        }
        throw new CallError("http_error", `Cannot ${action}: the cloud answered ${status}${detail}`);
      }
      try {
        return JSON.parse(text);
      } catch (err) {
        throw new CallError("malformed_reply", `Cannot ${action}: the cloud's reply is not JSON`, err);
      }
    },
  };
}
