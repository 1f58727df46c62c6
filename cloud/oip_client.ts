/**
 * Open Inference Protocol (KServe v2 REST) client for the cloud model. Every call has one deadline
 * (`AbortSignal.timeout`, combined with the caller's signal) covering the connection, the headers, the whole body
 * and its parsing (a reply complete only after the deadline is a timeout too), and every failure is mapped to
 * `OFFLOAD_TIMEOUT` or `OFFLOAD_FAILED`, so that the caller can fall back to the edge answer. Messages never contain
 * the server's address: they may reach API callers.
 *
 * Reply size: an infer reply may hold at most `N x outputSize` numbers (the model's metadata: its output is
 * `[N, K]`), so it is read at most up to {@link MAX_BYTES_PER_VALUE} bytes per value plus
 * {@link REPLY_SLACK_BYTES}; other replies at most {@link MAX_OTHER_REPLY_BYTES}. A larger reply (by its
 * `content-length`, or while it streams) is cut off and refused, so that a broken or hostile server cannot make the
 * edge app read and parse 100 MB.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { createBoundedCaller } from "./bounded_call.ts";
import type { OipInferRequest, OipInferResponse, OipModelMetadata, OipTensor } from "./oip_types.ts";

/** Options of {@link createOipClient}. */
export interface OipClientOptions {
  /** Server base URL, e.g. `http://127.0.0.1:8001` (a trailing slash is ignored). */
  baseUrl: string;
  /** Model name under `/v2/models/{name}`. */
  modelName: string;
  /** Model version to call (`/v2/models/{name}/versions/{version}`); the server's default when absent. */
  modelVersion?: string;
  /** Default deadline of one call, in milliseconds. */
  timeoutMs: number;
  /** Name of the model's input. @default "frames" */
  inputName?: string;
  /** Name of the output to read; the only output is read when none has this name. @default "logits" */
  outputName?: string;
  /**
   * Values per row of the output (K of `[N, K]`: the number of classes, from the model's metadata); bounds the size
   * of an infer reply. @default 1024
   */
  outputSize?: number;
  /** The clock, in milliseconds (tests). @default performance.now */
  now?: () => number;
  /** A credential sent with every call (e.g. `authorization: Bearer ...`); never logged or put in a message. */
  auth?: { header: string; value: string };
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** Per-call options of {@link OipClient.infer}. */
export interface OipInferOptions {
  /** Deadline of this call, in milliseconds. @default the client's `timeoutMs` */
  timeoutMs?: number;
  /** Aborts the call (e.g. the request was cancelled); a `TimeoutError` reason counts as a timeout. */
  signal?: AbortSignal;
  /** Sent as the request's `id`, echoed by the server: correlates logs on both sides. */
  requestId?: string;
}

/** The reply of {@link OipClient.infer}. */
export interface OipInferResult {
  /** Row-major `[N, K]` logits. */
  logits: Float32Array;
  /** `[N, K]`. */
  shape: number[];
  /** The version the server says answered, or null. */
  modelVersion: string | null;
  /** Round-trip time, in milliseconds. */
  ms: number;
}

/** A client for one model on one server. */
export interface OipClient {
  /**
   * Run the model on a `[N, ...]` float32 tensor; return its logits.
   *
   * @param frames the values, row-major
   * @param shape their shape, batch first
   * @param options deadline, signal, request id
   * @returns logits `[N, K]`, the model version and the round-trip time
   * @throws AppError OFFLOAD_TIMEOUT past the deadline; OFFLOAD_FAILED when unreachable, on a non-2xx reply, or
   *   on a reply that is not JSON or lacks finite `[N, K]` logits; TypeError when `shape` does not fit `frames`
   */
  infer(frames: Float32Array, shape: number[], options?: OipInferOptions): Promise<OipInferResult>;
  /**
   * Whether the server says the model is ready, within the deadline. Never throws.
   *
   * @param options `timeoutMs` (default: the client's)
   * @returns true when ready
   */
  ready(options?: { timeoutMs?: number }): Promise<boolean>;
  /**
   * The model's metadata: name, versions, platform, inputs and outputs.
   *
   * @param options `timeoutMs` (default: the client's)
   * @returns the metadata
   * @throws AppError OFFLOAD_TIMEOUT or OFFLOAD_FAILED, as for `infer`
   */
  metadata(options?: { timeoutMs?: number }): Promise<OipModelMetadata>;
}

/** Longest JSON text of one number the reply bound allows for (e.g. `-1.23456789012345678e-300`, a comma). */
export const MAX_BYTES_PER_VALUE = 32;
/** Room for the reply's names, shape and version, in bytes. */
export const REPLY_SLACK_BYTES = 16 * 1024;
/** Bound of a metadata or readiness reply, in bytes. */
export const MAX_OTHER_REPLY_BYTES = 1024 * 1024;

/** Datatypes whose JSON data are plain numbers the client can read as logits. */
const FLOAT_TYPES = new Set(["FP32", "FP16", "FP64"]);

/**
 * A float32 value as a decimal of at most 9 significant digits, which always reads back as the same float32
 * (FLT_DECIMAL_DIG): request bodies about half the size of full float64 decimals, and exact.
 */
function compact(v: number): number {
  return Number(v.toPrecision(9));
}

/**
 * Create an Open Inference Protocol client.
 *
 * @param options server, model, deadline
 * @returns the client
 * @throws TypeError when `baseUrl` is not an http(s) URL
 * @example
 * const cloud = createOipClient({ baseUrl: "http://127.0.0.1:8001", modelName: "cloud", timeoutMs: 1000 });
 * const { logits } = await cloud.infer(frames, [1, 64, 17, 3]);
 */
export function createOipClient(options: OipClientOptions): OipClient {
  const { call, callJson } = createBoundedCaller({
    baseUrl: options.baseUrl,
    client: "the cloud client",
    auth: options.auth,
    now: options.now,
    fetch: options.fetch,
  });
  const modelPath = `/v2/models/${encodeURIComponent(options.modelName)}` +
    (options.modelVersion ? `/versions/${encodeURIComponent(options.modelVersion)}` : "");
  const inputName = options.inputName ?? "frames";
  const outputName = options.outputName ?? "logits";

  const now = options.now ?? (() => performance.now());
  const outputSize = options.outputSize ?? 1024;

  /** The logits of a reply, checked: `[n, K]`, numeric, finite. */
  function readLogits(reply: unknown, n: number): { logits: Float32Array; shape: number[] } {
    const outputs = (reply as Partial<OipInferResponse> | null)?.outputs;
    const list: Partial<OipTensor>[] = Array.isArray(outputs) ? outputs : [];
    const out = list.find((o) => o?.name === outputName) ?? (list.length === 1 ? list[0] : undefined);
    if (!out || typeof out !== "object" || !Array.isArray(out.data) || !Array.isArray(out.shape)) {
      throw new AppError("OFFLOAD_FAILED", `Cannot offload: the reply has no ${outputName} output`);
    }
    if (out.datatype !== undefined && !FLOAT_TYPES.has(out.datatype)) {
      throw new AppError("OFFLOAD_FAILED", `Cannot offload: expected FP32 ${outputName}, got ${out.datatype}`);
    }
    const shape = out.shape;
    const data: unknown[] = out.data.some(Array.isArray) ? out.data.flat(3) : out.data;
    const k = shape[1];
    if (shape.length !== 2 || shape[0] !== n || !Number.isInteger(k) || k < 1 || data.length !== n * k) {
      throw new AppError(
        "OFFLOAD_FAILED",
        `Cannot offload: expected ${outputName} of shape [${n}, K], got [${
          shape.join(", ")
        }] with ${data.length} values`,
      );
    }
    const logits = new Float32Array(data.length);
    for (let i = 0; i < data.length; i++) {
      const v = data[i];
      if (typeof v !== "number" || !Number.isFinite(v)) {
        throw new AppError("OFFLOAD_FAILED", `Cannot offload: ${outputName} value ${i} is not a finite number`);
      }
      logits[i] = v;
    }
    return { logits, shape: [n, k] };
  }

  return {
    async infer(frames, shape, callOptions = {}) {
      const started = now();
      if (!shape.every((d) => Number.isInteger(d) && d >= 1) || shape.length < 1) {
        throw new TypeError(`Cannot offload: expected a shape of positive integers, got [${shape.join(", ")}]`);
      }
      const count = shape.reduce((a, b) => a * b, 1);
      if (count !== frames.length) {
        throw new TypeError(`Cannot offload: shape [${shape.join(", ")}] holds ${count} values, got ${frames.length}`);
      }
      const body: OipInferRequest = {
        ...(callOptions.requestId !== undefined ? { id: callOptions.requestId } : {}),
        inputs: [{ name: inputName, shape, datatype: "FP32", data: Array.from(frames, compact) }],
        outputs: [{ name: outputName }],
      };
      const timeoutMs = callOptions.timeoutMs ?? options.timeoutMs;
      const reply = await callJson("offload", `${modelPath}/infer`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        timeoutMs,
        signal: callOptions.signal,
        maxBytes: shape[0] * outputSize * MAX_BYTES_PER_VALUE + REPLY_SLACK_BYTES,
      });
      const { logits, shape: outShape } = readLogits(reply, shape[0]);
      if (now() - started > timeoutMs) {
        throw new AppError("OFFLOAD_TIMEOUT", `Cannot offload: reply not complete within ${timeoutMs} ms`);
      }
      const version = (reply as Partial<OipInferResponse>).model_version;
      return {
        logits,
        shape: outShape,
        modelVersion: typeof version === "string" ? version : null,
        ms: performance.now() - started,
      };
    },
    async ready(callOptions = {}) {
      try {
        // Triton answers 200 with an empty body, KServe `{ "name", "ready" }`: the status decides, unless the body
        // says otherwise.
        const { status, text } = await call("check the cloud model", `${modelPath}/ready`, {
          method: "GET",
          timeoutMs: callOptions.timeoutMs ?? options.timeoutMs,
          maxBytes: MAX_OTHER_REPLY_BYTES,
        });
        if (status < 200 || status > 299) return false;
        try {
          return (JSON.parse(text) as { ready?: unknown })?.ready !== false;
        } catch {
          return true;
        }
      } catch {
        return false;
      }
    },
    async metadata(callOptions = {}) {
      const action = "read the cloud model's metadata";
      const reply = await callJson(action, modelPath, {
        method: "GET",
        timeoutMs: callOptions.timeoutMs ?? options.timeoutMs,
        maxBytes: MAX_OTHER_REPLY_BYTES,
      }) as Partial<OipModelMetadata> | null;
      if (
        !reply || typeof reply.name !== "string" || !Array.isArray(reply.inputs) || !Array.isArray(reply.outputs)
      ) {
        throw new AppError("OFFLOAD_FAILED", `Cannot ${action}: expected name, inputs and outputs`);
      }
      return reply as OipModelMetadata;
    },
  };
}
