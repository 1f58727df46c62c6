/**
 * Open Inference Protocol client for the cloud model: one deadline per call, and every failure mapped to
 * `OFFLOAD_TIMEOUT` or `OFFLOAD_FAILED` so that the caller can fall back to the edge answer.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { OipInferRequest, OipInferResponse, OipModelMetadata } from "./oip_types.ts";

/** Options of {@link createOipClient}. */
export interface OipClientOptions {
  /** Server base URL, e.g. `http://127.0.0.1:8001`. */
  baseUrl: string;
  modelName: string;
  /** Default deadline of one call, in milliseconds. */
  timeoutMs: number;
  /** The fetch to use (tests pass their own). @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** The reply of {@link OipClient.infer}. */
export interface OipInferResult {
  logits: Float32Array;
  shape: number[];
  modelVersion: string | null;
  /** Round-trip time, in milliseconds. */
  ms: number;
}

/** A client for one model on one server. */
export interface OipClient {
  /** Run the model on a `[N, ...]` float32 tensor named `frames`; returns the `logits` output. */
  infer(
    frames: Float32Array,
    shape: number[],
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<OipInferResult>;
  /** True when the server says the model is ready within the deadline. */
  ready(options?: { timeoutMs?: number }): Promise<boolean>;
  metadata(options?: { timeoutMs?: number }): Promise<OipModelMetadata>;
}

function isTimeout(err: unknown): boolean {
  return err instanceof DOMException && (err.name === "TimeoutError" || err.name === "AbortError");
}

/**
 * Create an Open Inference Protocol client.
 *
 * @param options server, model name, deadline
 * @returns the client
 */
export function createOipClient(options: OipClientOptions): OipClient {
  const doFetch = options.fetch ?? fetch;
  const base = options.baseUrl.replace(/\/+$/, "");
  const model = encodeURIComponent(options.modelName);

  /** Fetch and read the JSON body under one deadline, so a server that stalls mid-body times out too. */
  async function call<T>(path: string, init: RequestInit, timeoutMs: number, signal?: AbortSignal): Promise<T> {
    const deadline = AbortSignal.timeout(timeoutMs);
    const combined = signal ? AbortSignal.any([deadline, signal]) : deadline;
    let res: Response;
    try {
      res = await doFetch(`${base}${path}`, { ...init, signal: combined });
    } catch (err) {
      if (isTimeout(err) || deadline.aborted) {
        throw new AppError("OFFLOAD_TIMEOUT", `Cannot offload: no reply within ${timeoutMs} ms`, { cause: err });
      }
      throw new AppError("OFFLOAD_FAILED", "Cannot offload: the cloud model server is unreachable", { cause: err });
    }
    let text: string;
    try {
      text = await res.text();
    } catch (err) {
      if (isTimeout(err) || deadline.aborted) {
        throw new AppError("OFFLOAD_TIMEOUT", `Cannot offload: reply not complete within ${timeoutMs} ms`, {
          cause: err,
        });
      }
      throw new AppError("OFFLOAD_FAILED", "Cannot offload: the reply broke off", { cause: err });
    }
    if (!res.ok) {
      let detail = "";
      try {
        detail = String((JSON.parse(text) as { error?: unknown }).error ?? "").slice(0, 200);
      } catch {
        // not JSON: the status says enough
      }
      throw new AppError(
        "OFFLOAD_FAILED",
        `Cannot offload: the cloud answered ${res.status}${detail ? `: ${detail}` : ""}`,
      );
    }
    try {
      return JSON.parse(text) as T;
    } catch (err) {
      throw new AppError("OFFLOAD_FAILED", "Cannot offload: the cloud's reply is not JSON", { cause: err });
    }
  }

  return {
    async infer(frames, shape, callOptions = {}) {
      const started = performance.now();
      const n = shape[0];
      const body: OipInferRequest = {
        inputs: [{ name: "frames", shape, datatype: "FP32", data: Array.from(frames) }],
        outputs: [{ name: "logits" }],
      };
      const reply = await call<OipInferResponse>(
        `/v2/models/${model}/infer`,
        { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) },
        callOptions.timeoutMs ?? options.timeoutMs,
        callOptions.signal,
      );
      const outputs = Array.isArray(reply?.outputs) ? reply.outputs : [];
      const out = outputs.find((o) => o?.name === "logits") ?? (outputs.length === 1 ? outputs[0] : undefined);
      if (!out || !Array.isArray(out.data) || !Array.isArray(out.shape)) {
        throw new AppError("OFFLOAD_FAILED", "Cannot offload: the reply has no logits output");
      }
      const count = out.shape.reduce((a, b) => a * b, 1);
      if (out.shape.length !== 2 || out.shape[0] !== n || out.data.length !== count) {
        throw new AppError(
          "OFFLOAD_FAILED",
          `Cannot offload: expected logits of shape [${n}, K], got [${
            out.shape.join(", ")
          }] with ${out.data.length} values`,
        );
      }
      const logits = new Float32Array(out.data.length);
      for (let i = 0; i < out.data.length; i++) {
        const v = out.data[i];
        if (typeof v !== "number" || !Number.isFinite(v)) {
          throw new AppError("OFFLOAD_FAILED", "Cannot offload: the reply holds a non-finite logit");
        }
        logits[i] = v;
      }
      return { logits, shape: out.shape, modelVersion: reply.model_version ?? null, ms: performance.now() - started };
    },
    async ready(callOptions = {}) {
      try {
        await call(`/v2/models/${model}/ready`, { method: "GET" }, callOptions.timeoutMs ?? options.timeoutMs);
        return true;
      } catch {
        return false;
      }
    },
    metadata(callOptions = {}) {
      return call<OipModelMetadata>(
        `/v2/models/${model}`,
        { method: "GET" },
        callOptions.timeoutMs ?? options.timeoutMs,
      );
    },
  };
}
