/**
 * The video-language model tier's client: a clip's frames to an OpenAI-compatible chat server
 * (`POST /v1/chat/completions`, cloud/vlm_protocol.ts), its answer read back as a label with class probabilities.
 *
 * - The request: a configured number of frames sampled evenly from the clip, each an `image_url` part (a data
 *   URL), then the prompt naming every label with a short key (`A: backflip`, ...); temperature 0; the answer
 *   constrained to the keys by the portable `response_format` JSON schema (`{"answer": KEY}`), or by vLLM's
 *   `structured_outputs: { choice: KEYS }` where configured.
 * - The probabilities: `logprobs` with `top_logprobs` are asked for; the answer token's candidates that spell a key
 *   are renormalised over the keys. A server that returns no log probabilities still gives an answer: the result is
 *   one-hot on it with `hasProbabilities: false` (never a made-up probability).
 * - Deadlines, reply bounds and credentials as for the Open Inference Protocol client (cloud/bounded_call.ts): one
 *   deadline covers the connection, the headers, the whole body and its parsing; the reply is read at most up to
 *   what `maxTokens` tokens with their candidates can take; the API key goes in `authorization: Bearer` and never
 *   into a message or a log line.
 * - Errors: `AppError` `OFFLOAD_TIMEOUT` or `OFFLOAD_FAILED`, as {@link CallError} with a reason: `timeout`,
 *   `http_error`, `malformed_reply` (not JSON, no choice, no content, not the constrained shape, bad log
 *   probabilities), `answer_not_in_labels`, `too_large`, `unreachable`, `broken_reply`, `cancelled`.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { CallError, createBoundedCaller } from "./bounded_call.ts";
import {
  ANSWER_MEMBER,
  type AnswerConstraint,
  answerFormat,
  type ChatCompletionRequest,
  type ChatCompletionResponse,
  type ChatContentPart,
  checkKeys,
  DEFAULT_PROMPT,
  defaultKeys,
  keyProbabilities,
  MAX_TOP_LOGPROBS,
  renderPrompt,
  sampleFrames,
  tokenKey,
} from "./vlm_protocol.ts";

/** Options of {@link createVlmClient}. */
export interface VlmClientOptions {
  /** Server base URL without `/v1`, e.g. `http://127.0.0.1:8002` (a trailing slash is ignored). */
  baseUrl: string;
  /** The `model` of every request (vLLM: the served model name; llama.cpp: its `--alias`; Ollama: the tag). */
  model: string;
  /** The label set, in the cloud model's order. */
  labels: string[];
  /** One short key per label. @default capital letters (numbers past 26 labels) */
  keys?: string[];
  /** Deadline of one call, in milliseconds. */
  timeoutMs: number;
  /** Frames sent per clip, sampled evenly. @default 8 */
  frames?: number;
  /** The prompt's template (cloud/vlm_protocol.ts {@link DEFAULT_PROMPT}). @default DEFAULT_PROMPT */
  prompt?: string;
  /** How the answer is constrained. @default "json_schema" */
  constraint?: AnswerConstraint;
  /** Ask for log probabilities (turn off for a server that refuses them). @default true */
  logprobs?: boolean;
  /** Candidates per token, at most 20. @default min(20, labels) */
  topLogprobs?: number;
  /** Most tokens generated. @default 16 for json_schema, 4 for structured_outputs */
  maxTokens?: number;
  /** The API key, sent as `authorization: Bearer <key>`; never logged or put in a message. */
  apiKey?: string;
  /** The clock, in milliseconds (tests). @default performance.now */
  now?: () => number;
  /** The fetch to use. @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** A clip as the client sends it: encoded frames of one kind. */
export interface VlmClip {
  kind: "jpeg" | "png";
  images: Uint8Array[];
}

/** Per-call options of {@link VlmClient.classify}. */
export interface VlmCallOptions {
  /** Deadline of this call, in milliseconds. @default the client's `timeoutMs` */
  timeoutMs?: number;
  /** Aborts the call; a `TimeoutError` reason counts as a timeout. */
  signal?: AbortSignal;
}

/** The answer for one clip. */
export interface VlmResult {
  /** One value per label, summing to 1: renormalised key probabilities, or one-hot when `hasProbabilities` is false. */
  probs: Float64Array;
  /** False when the server gave no usable log probabilities: `probs` is then the answer alone, one-hot. */
  hasProbabilities: boolean;
  /** The key answered and its label. */
  key: string;
  label: string;
  /** The model the server says answered, or null. */
  modelVersion: string | null;
  /** Round-trip time, in milliseconds. */
  ms: number;
}

/** A client for one model on one OpenAI-compatible server. */
export interface VlmClient {
  /**
   * Classify one clip.
   *
   * @param clip the clip's encoded frames
   * @param options deadline, signal
   * @returns the label, the probabilities and whether they came from the server
   * @throws CallError (an `AppError` `OFFLOAD_TIMEOUT` or `OFFLOAD_FAILED`) with its reason
   */
  classify(clip: VlmClip, options?: VlmCallOptions): Promise<VlmResult>;
  /**
   * Whether the server lists the model (`GET /v1/models`), within the deadline. Never throws.
   *
   * @param options `timeoutMs` (default: the client's)
   * @returns true when listed
   */
  ready(options?: { timeoutMs?: number }): Promise<boolean>;
  /** The request body a clip becomes (what {@link classify} sends), for logs and tests; holds no credential. */
  request(clip: VlmClip): ChatCompletionRequest;
}

/** Bytes allowed per generated token and candidate in a reply (its text, log probability and `bytes` array). */
export const MAX_BYTES_PER_CANDIDATE = 512;
/** Room for the reply's ids, names and usage, in bytes. */
export const VLM_REPLY_SLACK_BYTES = 64 * 1024;
/** Bound of a `/v1/models` reply, in bytes. */
export const MAX_MODELS_REPLY_BYTES = 1024 * 1024;

/**
 * Create the client.
 *
 * @param options server, model, labels, deadline, constraint
 * @returns the client
 * @throws TypeError when `baseUrl` is not an http(s) URL; RangeError on bad keys, frames or `topLogprobs`
 * @example
 * const vlm = createVlmClient({ baseUrl: "http://127.0.0.1:8002", model: "dmd-reference-vlm", labels, timeoutMs: 5000 });
 * const { label, probs, hasProbabilities } = await vlm.classify({ kind: "jpeg", images });
 */
export function createVlmClient(options: VlmClientOptions): VlmClient {
  const { labels, model } = options;
  const keys = checkKeys(options.keys ?? defaultKeys(labels.length), labels);
  const frames = options.frames ?? 8;
  if (!Number.isInteger(frames) || frames < 1 || frames > 256) {
    throw new RangeError(`Cannot create the VLM client: frames must be an integer in [1, 256], got ${frames}`);
  }
  const constraint = options.constraint ?? "json_schema";
  const logprobs = options.logprobs ?? true;
  const topLogprobs = options.topLogprobs ?? Math.min(MAX_TOP_LOGPROBS, keys.length);
  if (!Number.isInteger(topLogprobs) || topLogprobs < 0 || topLogprobs > MAX_TOP_LOGPROBS) {
    throw new RangeError(
      `Cannot create the VLM client: topLogprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}], got ${topLogprobs}`,
    );
  }
  const maxTokens = options.maxTokens ?? (constraint === "json_schema" ? 16 : 4);
  const template = options.prompt ?? DEFAULT_PROMPT;
  const now = options.now ?? (() => performance.now());
  const caller = createBoundedCaller({
    baseUrl: options.baseUrl,
    client: "the VLM client",
    auth: options.apiKey ? { header: "authorization", value: `Bearer ${options.apiKey}` } : undefined,
    now: options.now,
    fetch: options.fetch,
  });
  const maxReplyBytes = maxTokens * (topLogprobs + 1) * MAX_BYTES_PER_CANDIDATE + VLM_REPLY_SLACK_BYTES;
  const action = "classify with the VLM";

  function request(clip: VlmClip): ChatCompletionRequest {
    const picked = sampleFrames(clip.images.length, frames);
    const parts: ChatContentPart[] = picked.map((i) => ({
      type: "image_url",
      image_url: { url: `data:image/${clip.kind};base64,${Buffer.from(clip.images[i]).toString("base64")}` },
    }));
    parts.push({ type: "text", text: renderPrompt(template, { labels, keys, frames: picked.length }) });
    return {
      model,
      messages: [{ role: "user", content: parts }],
      max_tokens: maxTokens,
      temperature: 0,
      ...(logprobs ? { logprobs: true, top_logprobs: topLogprobs } : {}),
      ...(constraint === "json_schema"
        ? { response_format: answerFormat(keys) }
        : { structured_outputs: { choice: keys } }),
    };
  }

  function malformed(what: string): CallError {
    return new CallError("malformed_reply", `Cannot ${action}: ${what}`);
  }

  /** The key the content answers, under the configured constraint. */
  function answeredKey(content: string): string {
    let key: unknown = content.trim();
    if (constraint === "json_schema") {
      try {
        key = (JSON.parse(content) as Record<string, unknown> | null)?.[ANSWER_MEMBER];
      } catch {
        throw malformed(`expected a JSON object with "${ANSWER_MEMBER}", got text`);
      }
      if (typeof key !== "string") throw malformed(`expected a JSON object with a string "${ANSWER_MEMBER}"`);
    }
    if (!keys.includes(key as string)) {
      throw new CallError(
        "answer_not_in_labels",
        `Cannot ${action}: the answer "${String(key).slice(0, 40)}" is none of the keys ${keys.join(", ")}`,
      );
    }
    return key as string;
  }

  /** The answer's key probabilities from the reply's log probabilities, or null when it has none. */
  function probabilities(reply: ChatCompletionResponse, key: string): Float64Array | null {
    const content = reply.choices[0].logprobs?.content;
    if (!logprobs || !Array.isArray(content)) return null;
    const entry = content.find((t) => t && typeof t.token === "string" && tokenKey(t.token) === key);
    if (!entry) return null;
    try {
      return keyProbabilities(entry, keys);
    } catch (err) {
      throw malformed((err as Error).message.replace(/^Cannot read /, "cannot read "));
    }
  }

  return {
    request,
    async classify(clip, callOptions = {}) {
      const started = now();
      if (clip.images.length === 0) throw new TypeError("Cannot classify with the VLM: the clip has no frames");
      const timeoutMs = callOptions.timeoutMs ?? options.timeoutMs;
      const reply = await caller.callJson(action, "/v1/chat/completions", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(request(clip)),
        timeoutMs,
        signal: callOptions.signal,
        maxBytes: maxReplyBytes,
      }) as Partial<ChatCompletionResponse> | null;
      const choice = Array.isArray(reply?.choices) ? reply.choices[0] : undefined;
      const content = choice?.message?.content;
      if (typeof content !== "string") throw malformed("expected choices[0].message.content to be text");
      const key = answeredKey(content);
      const keyProbs = probabilities(reply as ChatCompletionResponse, key);
      if (now() - started > timeoutMs) {
        throw new CallError("timeout", `Cannot ${action}: reply not complete within ${timeoutMs} ms`);
      }
      const probs = keyProbs ?? Float64Array.from(keys, (k) => (k === key ? 1 : 0));
      return {
        probs,
        hasProbabilities: keyProbs !== null,
        key,
        label: labels[keys.indexOf(key)],
        modelVersion: typeof reply!.model === "string" ? reply!.model : null,
        ms: now() - started,
      };
    },
    async ready(callOptions = {}) {
      try {
        const list = await caller.callJson("check the VLM", "/v1/models", {
          method: "GET",
          timeoutMs: callOptions.timeoutMs ?? options.timeoutMs,
          maxBytes: MAX_MODELS_REPLY_BYTES,
        }) as { data?: { id?: unknown }[] } | null;
        return Array.isArray(list?.data) && list.data.some((m) => m?.id === model);
      } catch {
        return false;
      }
    },
  };
}
