/**
 * Checking a `POST /v1/chat/completions` body the way OpenAI-compatible servers do (vLLM's and llama.cpp's
 * request validation: the model name, the messages' shape, image parts, the structured-output fields and the
 * `logprobs`/`top_logprobs` bounds), for the reference VLM server (cloud/vlm_reference_server.ts). A refused body is
 * a {@link ChatRequestError} with the HTTP status and the OpenAI error `type` the server answers with.
 *
 * Pure: no I/O; images are base64-decoded here, not image-decoded.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { type ChatContentPart, MAX_TOP_LOGPROBS } from "./vlm_protocol.ts";

/** A refused request: its status (400 or 404) and the OpenAI error type. */
export class ChatRequestError extends Error {
  /** 400 for a bad body, 404 for an unknown model. */
  readonly status: 400 | 404;
  /** `BadRequestError` or `NotFoundError`, as vLLM names them. */
  readonly type: string;
  /** The member at fault, or null. */
  readonly param: string | null;

  /**
   * @param message what is wrong
   * @param options status (default 400) and the member at fault
   */
  constructor(message: string, options: { status?: 400 | 404; param?: string } = {}) {
    super(message);
    this.name = "ChatRequestError";
    this.status = options.status ?? 400;
    this.type = this.status === 404 ? "NotFoundError" : "BadRequestError";
    this.param = options.param ?? null;
  }
}

/** A checked request: what the reference server needs to answer it. */
export interface ChatRequest {
  /** The images, decoded from their data URLs, in order; each with its kind. */
  images: { kind: "jpeg" | "png"; bytes: Uint8Array }[];
  /** All text of the messages, joined by newlines (the prompt naming the options). */
  text: string;
  /** The strings the answer must be one of. */
  choices: string[];
  /** How the answer is written: `{"<member>": KEY}` under a JSON schema, or the bare key. */
  form: { json: string } | { bare: true };
  /** Candidates per generated token; null when no log probabilities were asked for. */
  topLogprobs: number | null;
  /** Most tokens to generate, if set. */
  maxTokens: number | null;
}

const ROLES = new Set(["system", "developer", "user", "assistant"]);
const DATA_URL = /^data:image\/(jpeg|jpg|png);base64,([A-Za-z0-9+/]*={0,2})$/;

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function positiveInt(body: Record<string, unknown>, name: string): number | null {
  const v = body[name];
  if (v === undefined || v === null) return null;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new ChatRequestError(`${name} must be a positive integer, got ${JSON.stringify(v)}`, { param: name });
  }
  return v;
}

/** One image part's bytes. */
function readImage(part: Record<string, unknown>, where: string): { kind: "jpeg" | "png"; bytes: Uint8Array } {
  const image = part.image_url;
  const url = isObject(image) ? image.url : undefined;
  if (typeof url !== "string") {
    throw new ChatRequestError(`${where}.image_url.url must be a string`, { param: "messages" });
  }
  if (isObject(image) && image.detail !== undefined && !["auto", "low", "high"].includes(image.detail as string)) {
    throw new ChatRequestError(`${where}.image_url.detail must be auto, low or high`, { param: "messages" });
  }
  if (/^https?:/i.test(url)) {
    throw new ChatRequestError(
      `${where}: the reference server fetches no URLs; send the image as a data:image/jpeg or png;base64 URL`,
      { param: "messages" },
    );
  }
  const m = DATA_URL.exec(url);
  if (!m) {
    throw new ChatRequestError(`${where}: expected a data:image/jpeg or data:image/png base64 URL`, {
      param: "messages",
    });
  }
  const bytes = new Uint8Array(Buffer.from(m[2], "base64"));
  if (bytes.length === 0) throw new ChatRequestError(`${where}: the image is empty`, { param: "messages" });
  return { kind: m[1] === "png" ? "png" : "jpeg", bytes };
}

/** The messages' images and text. */
function readMessages(messages: unknown): Pick<ChatRequest, "images" | "text"> {
  if (!Array.isArray(messages) || messages.length === 0) {
    throw new ChatRequestError("messages must be a non-empty array", { param: "messages" });
  }
  const images: ChatRequest["images"] = [];
  const texts: string[] = [];
  messages.forEach((msg, i) => {
    const where = `messages[${i}]`;
    if (!isObject(msg) || typeof msg.role !== "string" || !ROLES.has(msg.role)) {
      throw new ChatRequestError(`${where}.role must be system, developer, user or assistant`, { param: "messages" });
    }
    if (typeof msg.content === "string") return void texts.push(msg.content);
    if (!Array.isArray(msg.content)) {
      throw new ChatRequestError(`${where}.content must be a string or an array of parts`, { param: "messages" });
    }
    (msg.content as unknown[]).forEach((part, j) => {
      const at = `${where}.content[${j}]`;
      const type = isObject(part) ? (part as Partial<ChatContentPart>).type : undefined;
      if (type === "text" && typeof (part as { text?: unknown }).text === "string") {
        texts.push((part as { text: string }).text);
      } else if (type === "image_url") {
        if (msg.role !== "user") {
          throw new ChatRequestError(`${at}: images are allowed in user messages only`, { param: "messages" });
        }
        images.push(readImage(part as Record<string, unknown>, at));
      } else {
        throw new ChatRequestError(
          `${at}: expected a part of type text (with a string text) or image_url, got ${JSON.stringify(type ?? null)}`,
          { param: "messages" },
        );
      }
    });
  });
  if (images.length === 0) {
    throw new ChatRequestError("the reference VLM needs at least one image_url part", { param: "messages" });
  }
  return { images, text: texts.join("\n") };
}

/** The strings a JSON schema allows: a string enum, itself or as the one property of an object. */
function schemaChoices(schema: unknown): { choices: string[]; member: string | null } | null {
  const enumOf = (s: unknown) =>
    isObject(s) && Array.isArray(s.enum) && s.enum.length > 0 && s.enum.every((e) => typeof e === "string")
      ? s.enum as string[]
      : null;
  const direct = enumOf(schema);
  if (direct) return { choices: direct, member: null };
  if (isObject(schema) && isObject(schema.properties)) {
    const names = Object.keys(schema.properties);
    const inner = names.length === 1 ? enumOf(schema.properties[names[0]]) : null;
    if (inner) return { choices: inner, member: names[0] };
  }
  return null;
}

/** The answer's constraint: from `response_format` or `structured_outputs`, never both. */
function readConstraint(body: Record<string, unknown>): Pick<ChatRequest, "choices" | "form"> {
  const rf = body.response_format;
  const so = body.structured_outputs;
  if (rf !== undefined && rf !== null && !isObject(rf)) {
    throw new ChatRequestError("response_format must be an object", { param: "response_format" });
  }
  const rfType = isObject(rf) ? rf.type : undefined;
  if (rfType !== undefined && !["text", "json_object", "json_schema"].includes(rfType as string)) {
    throw new ChatRequestError(`response_format.type must be text, json_object or json_schema`, {
      param: "response_format",
    });
  }
  const constrainsRf = rfType === "json_schema" || rfType === "json_object";
  if (so !== undefined && so !== null) {
    if (constrainsRf) {
      throw new ChatRequestError(
        "only one kind of structured output may be used: response_format or structured_outputs",
        {
          param: "structured_outputs",
        },
      );
    }
    if (!isObject(so)) {
      throw new ChatRequestError("structured_outputs must be an object", { param: "structured_outputs" });
    }
    const kinds = Object.keys(so).filter((k) => so[k] !== undefined && so[k] !== null);
    if (kinds.length !== 1 || kinds[0] !== "choice") {
      throw new ChatRequestError(
        `the reference server supports structured_outputs.choice alone, got ${kinds.join(", ") || "nothing"}`,
        { param: "structured_outputs" },
      );
    }
    const choice = so.choice;
    if (!Array.isArray(choice) || choice.length === 0 || !choice.every((c) => typeof c === "string" && c !== "")) {
      throw new ChatRequestError("structured_outputs.choice must be a non-empty array of non-empty strings", {
        param: "structured_outputs",
      });
    }
    return { choices: choice as string[], form: { bare: true } };
  }
  if (rfType === "json_schema") {
    const spec = (rf as Record<string, unknown>).json_schema;
    if (!isObject(spec) || !isObject(spec.schema)) {
      throw new ChatRequestError("response_format.json_schema.schema must be an object", { param: "response_format" });
    }
    if (spec.name !== undefined && (typeof spec.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(spec.name))) {
      throw new ChatRequestError("response_format.json_schema.name must be 1 to 64 letters, digits, _ or -", {
        param: "response_format",
      });
    }
    const found = schemaChoices(spec.schema);
    if (found) return { choices: found.choices, form: found.member ? { json: found.member } : { bare: true } };
  }
  throw new ChatRequestError(
    "the reference server answers constrained choices only: send response_format json_schema with a string enum " +
      "(or an object of one such property), or structured_outputs.choice",
    { param: "response_format" },
  );
}

/**
 * Check a chat completions body.
 *
 * @param body the parsed JSON body
 * @param modelName the model the server serves
 * @returns the checked request
 * @throws ChatRequestError 404 for another model, 400 for anything else the servers refuse
 */
export function readChatRequest(body: unknown, modelName: string): ChatRequest {
  if (!isObject(body)) throw new ChatRequestError("the body must be a JSON object");
  if (typeof body.model !== "string" || body.model === "") {
    throw new ChatRequestError("model must be a non-empty string", { param: "model" });
  }
  if (body.model !== modelName) {
    throw new ChatRequestError(`The model \`${body.model}\` does not exist.`, { status: 404, param: "model" });
  }
  if (body.stream === true) {
    throw new ChatRequestError("stream is not supported by the reference server", { param: "stream" });
  }
  if (body.n !== undefined && body.n !== null && body.n !== 1) {
    throw new ChatRequestError("n must be 1", { param: "n" });
  }
  const t = body.temperature;
  if (t !== undefined && t !== null && (typeof t !== "number" || !(t >= 0 && t <= 2))) {
    throw new ChatRequestError("temperature must be a number in [0, 2]", { param: "temperature" });
  }
  if (body.logprobs !== undefined && body.logprobs !== null && typeof body.logprobs !== "boolean") {
    throw new ChatRequestError("logprobs must be a boolean", { param: "logprobs" });
  }
  const top = body.top_logprobs;
  if (top !== undefined && top !== null) {
    if (typeof top !== "number" || !Number.isInteger(top) || top < 0 || top > MAX_TOP_LOGPROBS) {
      throw new ChatRequestError(`top_logprobs must be an integer in [0, ${MAX_TOP_LOGPROBS}]`, {
        param: "top_logprobs",
      });
    }
    if (body.logprobs !== true) {
      throw new ChatRequestError("logprobs must be true when top_logprobs is set", { param: "top_logprobs" });
    }
  }
  const maxTokens = positiveInt(body, "max_completion_tokens") ?? positiveInt(body, "max_tokens");
  const { images, text } = readMessages(body.messages);
  const { choices, form } = readConstraint(body);
  return {
    images,
    text,
    choices,
    form,
    topLogprobs: body.logprobs === true ? (typeof top === "number" ? top : 0) : null,
    maxTokens,
  };
}
