/**
 * The OpenAI-compatible chat completions protocol as the video-language model tier speaks it (the client,
 * cloud/vlm_client.ts, and the reference server, cloud/vlm_reference_server.ts): the message types, the label keys,
 * the prompt, the answer's constraint, and reading class probabilities from the answer token's `top_logprobs`.
 * Served by vLLM, llama.cpp's server (`--mmproj`), Ollama, SGLang and TGI; see
 * https://platform.openai.com/docs/api-reference/chat/create and vLLM's structured outputs
 * (`structured_outputs: { choice }`, vLLM >= 0.12).
 *
 * Pure: no I/O.
 *
 * @module
 */

/** A text part of a user message. */
export interface ChatTextPart {
  type: "text";
  text: string;
}

/** An image part of a user message: here always a `data:image/jpeg|png;base64,...` URL. */
export interface ChatImagePart {
  type: "image_url";
  image_url: { url: string; detail?: "auto" | "low" | "high" };
}

/** One content part. */
export type ChatContentPart = ChatTextPart | ChatImagePart;

/** One message of the conversation. */
export interface ChatMessage {
  role: "system" | "developer" | "user" | "assistant";
  content: string | ChatContentPart[];
}

/** The portable answer constraint: a JSON schema the server's grammar enforces. */
export interface JsonSchemaFormat {
  type: "json_schema";
  json_schema: { name: string; schema: Record<string, unknown>; strict?: boolean };
}

/** `POST /v1/chat/completions` body, the members this project sends or the reference server reads. */
export interface ChatCompletionRequest {
  model: string;
  messages: ChatMessage[];
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  n?: number;
  stream?: boolean;
  seed?: number;
  logprobs?: boolean;
  top_logprobs?: number;
  response_format?: { type: "text" } | { type: "json_object" } | JsonSchemaFormat;
  /** vLLM >= 0.12: the answer is one of these strings. */
  structured_outputs?: { choice: string[] };
}

/** A candidate token and its log probability. */
export interface TopLogprob {
  token: string;
  logprob: number;
  bytes?: number[] | null;
}

/** One generated token with its log probability and the most likely alternatives. */
export interface TokenLogprob extends TopLogprob {
  top_logprobs?: TopLogprob[];
}

/** One choice of a reply. */
export interface ChatChoice {
  index: number;
  message: { role: "assistant"; content: string | null };
  logprobs?: { content: TokenLogprob[] | null } | null;
  finish_reason: string | null;
}

/** The reply of `POST /v1/chat/completions`. */
export interface ChatCompletionResponse {
  id: string;
  object: "chat.completion";
  created: number;
  model: string;
  choices: ChatChoice[];
  usage?: { prompt_tokens: number; completion_tokens: number; total_tokens: number };
}

/** How the answer is constrained to the label keys. */
export type AnswerConstraint = "json_schema" | "structured_outputs";

/** The answer object's one member under the `json_schema` constraint: `{"answer": "C"}`. */
export const ANSWER_MEMBER = "answer";

/** Most `top_logprobs` the OpenAI API and vLLM (its default `max_logprobs`) accept. */
export const MAX_TOP_LOGPROBS = 20;

/**
 * The prompt's default template. `{options}` becomes one line per label (`A: walk`), `{keys}` the keys joined with
 * ", ", `{frames}` the number of frames sent.
 */
export const DEFAULT_PROMPT = "These {frames} frames are sampled evenly from a short video of one person. " +
  "Which action does the person perform? Answer with the key of exactly one option.\nOptions:\n{options}";

/**
 * The default keys of a label set: capital letters for up to 26 labels (one token in every tokenizer we know),
 * else the numbers 1..N.
 *
 * @param count the number of labels
 * @returns one key per label, in label order
 */
export function defaultKeys(count: number): string[] {
  if (count <= 26) return Array.from({ length: count }, (_, i) => String.fromCharCode(65 + i));
  return Array.from({ length: count }, (_, i) => String(i + 1));
}

/**
 * Check that keys can stand for a label set: one per label, distinct, short, of letters and digits only (so a
 * token matches at most one key once quotes and spaces are stripped, see {@link tokenKey}).
 *
 * @param keys the keys
 * @param labels the labels
 * @returns the keys
 * @throws RangeError naming what is wrong
 */
export function checkKeys(keys: string[], labels: string[]): string[] {
  if (keys.length !== labels.length) {
    throw new RangeError(`Cannot use the label keys: expected ${labels.length} keys, got ${keys.length}`);
  }
  if (new Set(keys).size !== keys.length) throw new RangeError("Cannot use the label keys: they must be distinct");
  const bad = keys.find((k) => !/^[A-Za-z0-9]{1,8}$/.test(k));
  if (bad !== undefined) {
    throw new RangeError(`Cannot use the label keys: "${bad}" is not 1 to 8 letters or digits`);
  }
  return keys;
}

/**
 * The prompt text: the template with the options, keys and frame count filled in. A label's underscores read as
 * spaces (`getup_faceup` -> `getup faceup`).
 *
 * @param template the template ({@link DEFAULT_PROMPT})
 * @param options labels, their keys, and the frames sent
 * @returns the text
 */
export function renderPrompt(template: string, options: { labels: string[]; keys: string[]; frames: number }): string {
  const lines = options.labels.map((l, i) => `${options.keys[i]}: ${labelText(l)}`).join("\n");
  return template.replaceAll("{options}", lines).replaceAll("{keys}", options.keys.join(", "))
    .replaceAll("{frames}", String(options.frames));
}

/**
 * A label as the prompt writes it.
 *
 * @param label the label
 * @returns the label with underscores as spaces
 */
export function labelText(label: string): string {
  return label.replaceAll("_", " ");
}

/**
 * The `response_format` that constrains the answer to `{"answer": KEY}`.
 *
 * @param keys the label keys
 * @returns the format
 */
export function answerFormat(keys: string[]): JsonSchemaFormat {
  return {
    type: "json_schema",
    json_schema: {
      name: "action",
      strict: true,
      schema: {
        type: "object",
        properties: { [ANSWER_MEMBER]: { type: "string", enum: keys } },
        required: [ANSWER_MEMBER],
        additionalProperties: false,
      },
    },
  };
}

/**
 * The key a generated token spells, once whitespace and JSON punctuation around it are stripped (`" C"`, `"C"`,
 * `C"}` all spell `C`).
 *
 * @param token the token's text
 * @returns the stripped text
 */
export function tokenKey(token: string): string {
  return token.replace(/^[\s"'{}\[\]:,]+|[\s"'{}\[\]:,]+$/g, "");
}

/**
 * Class probabilities from the answer token: every candidate of its `top_logprobs` (and the token itself) that
 * spells a key adds its probability to that key's; the sums are renormalised over the keys. Keys absent from the
 * candidates get 0. A constrained server may report the model's raw log probabilities, before the constraint
 * masked other tokens; renormalising over the keys is what the constraint does.
 *
 * @param entry the answer token's log probabilities
 * @param keys the label keys
 * @returns one probability per key, summing to 1; null when no candidate spells a key
 * @throws RangeError when a log probability is not a finite number <= 0 (a tolerance of 1e-6 for rounding)
 */
export function keyProbabilities(entry: TokenLogprob, keys: string[]): Float64Array | null {
  const index = new Map(keys.map((k, i) => [k, i]));
  const mass = new Float64Array(keys.length);
  const seen = new Set<string>();
  const candidates = [entry, ...(Array.isArray(entry.top_logprobs) ? entry.top_logprobs : [])];
  for (const c of candidates) {
    if (!c || typeof c.token !== "string" || typeof c.logprob !== "number") {
      throw new RangeError("Cannot read the answer's log probabilities: expected { token, logprob } candidates");
    }
    if (!Number.isFinite(c.logprob) && c.logprob !== -Infinity || c.logprob > 1e-6) {
      throw new RangeError(`Cannot read the answer's log probabilities: ${c.logprob} is not a log probability`);
    }
    // The answer token also appears among its own top candidates: count each token once.
    if (seen.has(c.token)) continue;
    seen.add(c.token);
    const i = index.get(tokenKey(c.token));
    if (i !== undefined) mass[i] += Math.exp(Math.min(0, c.logprob));
  }
  const total = mass.reduce((a, b) => a + b, 0);
  if (!(total > 0)) return null;
  return mass.map((m) => m / total);
}

/**
 * Indices of `count` frames sampled evenly from a clip of `total` (first and last included); all of them when the
 * clip has no more than `count`.
 *
 * @param total frames in the clip
 * @param count frames wanted (at least 1)
 * @returns increasing indices
 */
export function sampleFrames(total: number, count: number): number[] {
  if (total <= count) return Array.from({ length: total }, (_, i) => i);
  if (count === 1) return [Math.floor((total - 1) / 2)];
  return Array.from({ length: count }, (_, i) => Math.round((i * (total - 1)) / (count - 1)));
}
