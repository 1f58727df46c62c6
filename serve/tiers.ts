/**
 * Tiers as configuration: the ordered list of models a request may climb (DESIGN.md, "Frames and tiers"). Tier 0 is
 * the WASM edge model; every later tier is a cloud model over the Open Inference Protocol (`oip`, it takes keypoint
 * windows) or an OpenAI-compatible chat API (`openai`, a video-language model: it takes camera frames). Hop N joins
 * tier N and tier N + 1 and has its own switcher release (`hop` N in the registry), budget, deadline and breaker.
 *
 * Read from `TIERS` (JSON) or `TIERS_FILE` (a JSON file) by config.ts; unset, the service has the two default tiers
 * configured by the `CLOUD_*` variables and behaves as it always has. Tier 1 is then the cloud model the edge app
 * offloads to (its `url`, `model`, deadline, breaker and budget replace the `CLOUD_*` values); tiers 2 and up are
 * climbed by serve/cascade.ts.
 *
 * ```json
 * [
 *   { "name": "edge", "kind": "edge", "costMs": 3 },
 *   { "name": "cloud", "kind": "oip", "input": "keypoints", "timeoutMs": 1000 },
 *   { "name": "vlm", "kind": "openai", "input": "frames", "url": "http://127.0.0.1:8002",
 *     "model": "dmd-reference-vlm", "frames": 8, "timeoutMs": 30000, "pricePerCall": 0.002 }
 * ]
 * ```
 *
 * Pure: parses and checks values, reads nothing itself (the environment's API keys are passed in).
 *
 * @module
 */
import type { AnswerConstraint } from "../cloud/vlm_protocol.ts";

/** What a tier takes: keypoint windows, or the clip's camera frames. */
export type TierInput = "keypoints" | "frames";

/** Breaker settings of one tier (cloud/circuit_breaker.ts). */
export interface TierBreaker {
  failures: number;
  failureRatio: number;
  window: number;
  openMs: number;
  maxOpenMs: number;
}

/** What every tier declares. */
interface TierBase {
  /** Unique, lower case letters, digits, `_` or `-`; names the tier in logs, metrics and the decision log. */
  name: string;
  /** A configured cost per call, in milliseconds, when the measured time is not the cost that matters. */
  costMs: number | null;
  /** A configured price per call (any currency; summed as it is). */
  pricePerCall: number | null;
}

/** Tier 0: the WASM edge model. */
export interface EdgeTier extends TierBase {
  kind: "edge";
  input: "keypoints";
}

/** What a cloud tier declares beyond the base. */
interface CloudTierBase extends TierBase {
  /** Server base URL (credentials go in `apiKeyEnv`, never in the URL); tier 1 may omit it (the reference server). */
  url: string | undefined;
  model: string;
  /** Deadline of one call, in milliseconds. */
  timeoutMs: number;
  /** Most calls per second (token bucket); 0 means no limit. */
  budgetPerS: number;
  breaker: TierBreaker;
  /**
   * Hop exploration: of the requests this tier answers and its hop's switcher keeps, this share also calls the
   * next tier (after the answer is settled; its answer is only logged), so that `deno task dmd --hop N` has pairs
   * that are not all escalations. Logged as each tier row's `propensity`.
   */
  explore: number;
  /** The credential, resolved from the variable the tier names (`apiKeyEnv`); never logged. */
  apiKey: string | undefined;
  /**
   * The threshold of the hop that leads to this tier, replacing its switcher release's (as `SWITCHER_THRESHOLD` does
   * for hop 0; tier 1's sets `SWITCHER_THRESHOLD`). Null: the release's own.
   */
  threshold: number | null;
}

/** An Open Inference Protocol cloud model (keypoint windows). */
export interface OipTier extends CloudTierBase {
  kind: "oip";
  input: "keypoints";
}

/** An OpenAI-compatible chat model (camera frames, cloud/vlm_client.ts). */
export interface OpenAiTier extends CloudTierBase {
  kind: "openai";
  input: "frames";
  /** Frames sent per clip. */
  frames: number;
  constraint: AnswerConstraint;
  logprobs: boolean;
  topLogprobs: number | undefined;
  prompt: string | undefined;
  keys: string[] | undefined;
}

/** One tier. */
export type Tier = EdgeTier | OipTier | OpenAiTier;

/** A cloud tier. */
export type CloudTier = OipTier | OpenAiTier;

/** The defaults a cloud tier takes from the `CLOUD_*` settings when it does not set its own. */
export interface TierDefaults {
  timeoutMs: number;
  budgetPerS: number;
  breaker: TierBreaker;
  explore: number;
}

type Raw = Record<string, unknown>;

/** The members a cloud tier of either kind may set. */
const CLOUD_KEYS = [
  "name",
  "kind",
  "input",
  "url",
  "model",
  "timeoutMs",
  "budgetPerS",
  "breaker",
  "explore",
  "apiKeyEnv",
  "costMs",
  "pricePerCall",
  "threshold",
];

const KEYS: Record<Tier["kind"], string[]> = {
  edge: ["name", "kind", "input", "costMs", "pricePerCall"],
  oip: CLOUD_KEYS,
  openai: [...CLOUD_KEYS, "frames", "constraint", "logprobs", "topLogprobs", "prompt", "keys"],
};

function fail(where: string, message: string): never {
  throw new RangeError(`Invalid TIERS: ${where}: ${message}`);
}

function number(raw: Raw, key: string, where: string, range: [number, number], fallback: number): number;
function number(raw: Raw, key: string, where: string, range: [number, number], fallback: null): number | null;
function number(raw: Raw, key: string, where: string, range: [number, number], fallback: number | null) {
  const v = raw[key];
  if (v === undefined || v === null) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v) || v < range[0] || v > range[1]) {
    fail(where, `${key} must be a number in [${range[0]}, ${range[1]}], got ${JSON.stringify(v)}`);
  }
  return v;
}

function integer(raw: Raw, key: string, where: string, range: [number, number], fallback: number): number {
  const v = number(raw, key, where, range, fallback);
  if (!Number.isInteger(v)) fail(where, `${key} must be an integer, got ${v}`);
  return v;
}

function httpUrl(raw: Raw, where: string): string | undefined {
  const v = raw.url;
  if (v === undefined || v === null) return undefined;
  let u: URL | undefined;
  try {
    u = new URL(String(v));
  } catch {
    // reported below, without the value
  }
  if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) fail(where, "url must be an http(s) URL");
  if (u.username || u.password) fail(where, "url must hold no credentials: name a variable in apiKeyEnv");
  return u.href.replace(/\/+$/, "");
}

function breaker(raw: Raw, where: string, d: TierBreaker): TierBreaker {
  const b = raw.breaker;
  if (b === undefined) return d;
  if (typeof b !== "object" || b === null || Array.isArray(b)) fail(where, "breaker must be an object");
  const r = b as Raw;
  const unknown = Object.keys(r).find((k) =>
    !["failures", "failureRatio", "window", "openMs", "maxOpenMs"].includes(k)
  );
  if (unknown) fail(where, `breaker has no member "${unknown}"`);
  const openMs = integer(r, "openMs", where, [1, 86_400_000], d.openMs);
  const maxOpenMs = integer(r, "maxOpenMs", where, [openMs, 86_400_000], Math.max(d.maxOpenMs, openMs));
  return {
    failures: integer(r, "failures", where, [1, 1_000_000], d.failures),
    failureRatio: number(r, "failureRatio", where, [0.01, 1], d.failureRatio),
    window: integer(r, "window", where, [1, 1_000_000], d.window),
    openMs,
    maxOpenMs,
  };
}

/** The cloud tier settings both kinds share. */
function cloudBase(raw: Raw, where: string, d: TierDefaults, env: Record<string, string | undefined>) {
  const model = raw.model;
  if (model !== undefined && (typeof model !== "string" || model === "")) {
    fail(where, "model must be a non-empty string");
  }
  const keyVar = raw.apiKeyEnv;
  if (keyVar !== undefined && (typeof keyVar !== "string" || !/^[A-Z_][A-Z0-9_]*$/.test(keyVar))) {
    fail(where, "apiKeyEnv must name an environment variable (A-Z, 0-9, _)");
  }
  const apiKey = typeof keyVar === "string" ? env[keyVar] || undefined : undefined;
  if (apiKey !== undefined && /[\r\n]/.test(apiKey)) fail(where, `${keyVar} must be one line`);
  return {
    url: httpUrl(raw, where),
    model: model as string | undefined,
    timeoutMs: integer(raw, "timeoutMs", where, [1, 600_000], d.timeoutMs),
    budgetPerS: number(raw, "budgetPerS", where, [0, 1e9], d.budgetPerS),
    breaker: breaker(raw, where, d.breaker),
    explore: number(raw, "explore", where, [0, 1], d.explore),
    apiKey,
    costMs: number(raw, "costMs", where, [0, 1e9], null),
    pricePerCall: number(raw, "pricePerCall", where, [0, 1e9], null),
    threshold: number(raw, "threshold", where, [0, 1], null),
  };
}

/** One tier from its JSON. */
function readTier(raw: unknown, i: number, d: TierDefaults, env: Record<string, string | undefined>): Tier {
  const where = `tier ${i}`;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(where, "expected an object");
  const r = raw as Raw;
  const kind = r.kind;
  if (kind !== "edge" && kind !== "oip" && kind !== "openai") fail(where, "kind must be edge, oip or openai");
  const unknown = Object.keys(r).find((k) => !KEYS[kind].includes(k));
  if (unknown) fail(where, `a ${kind} tier has no member "${unknown}"`);
  const name = r.name;
  if (typeof name !== "string" || !/^[a-z0-9_-]{1,32}$/.test(name)) {
    fail(where, "name must be 1 to 32 lower-case letters, digits, _ or -");
  }
  const input = r.input ?? (kind === "openai" ? "frames" : "keypoints");
  if (kind === "edge") {
    if (input !== "keypoints") fail(where, "the edge model takes keypoints");
    return {
      kind,
      name,
      input,
      costMs: number(r, "costMs", where, [0, 1e9], null),
      pricePerCall: number(r, "pricePerCall", where, [0, 1e9], null),
    };
  }
  const base = cloudBase(r, `${where} (${name})`, d, env);
  if (kind === "oip") {
    // The edge never sends frames to a tier that takes keypoints: an OIP model takes keypoint windows only.
    if (input !== "keypoints") fail(where, "an oip tier takes keypoints");
    return { kind, name, input, ...base, model: base.model ?? "cloud" };
  }
  if (input !== "frames") fail(where, "an openai tier takes frames");
  if (!base.url) fail(where, "an openai tier needs its url");
  if (!base.model) fail(where, "an openai tier needs its model");
  const constraint = r.constraint ?? "json_schema";
  if (constraint !== "json_schema" && constraint !== "structured_outputs") {
    fail(where, "constraint must be json_schema or structured_outputs");
  }
  if (r.logprobs !== undefined && typeof r.logprobs !== "boolean") fail(where, "logprobs must be true or false");
  if (r.prompt !== undefined && typeof r.prompt !== "string") fail(where, "prompt must be a string");
  if (r.keys !== undefined && (!Array.isArray(r.keys) || !r.keys.every((k) => typeof k === "string"))) {
    fail(where, "keys must be an array of strings");
  }
  return {
    kind,
    name,
    input,
    ...base,
    model: base.model!,
    frames: integer(r, "frames", where, [1, 256], 8),
    constraint,
    logprobs: (r.logprobs as boolean | undefined) ?? true,
    topLogprobs: r.topLogprobs === undefined ? undefined : integer(r, "topLogprobs", where, [0, 20], 0),
    prompt: r.prompt as string | undefined,
    keys: r.keys as string[] | undefined,
  };
}

/**
 * Parse and check the tier list.
 *
 * @param text the JSON text of `TIERS` (or of `TIERS_FILE`)
 * @param options the defaults a cloud tier takes, and the environment its `apiKeyEnv` names
 * @returns the tiers, in order
 * @throws RangeError `Invalid TIERS: ...` naming the tier and the member at fault
 */
export function parseTiers(
  text: string,
  options: { defaults: TierDefaults; env: Record<string, string | undefined> },
): Tier[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new RangeError("Invalid TIERS: expected a JSON array of tiers");
  }
  if (!Array.isArray(raw) || raw.length < 2) {
    throw new RangeError("Invalid TIERS: expected an array of 2 or more tiers");
  }
  const tiers = raw.map((t, i) => readTier(t, i, options.defaults, options.env));
  if (tiers[0].kind !== "edge") fail("tier 0", "the first tier is the edge model (kind edge)");
  tiers.slice(1).forEach((t, i) => {
    if (t.kind === "edge") fail(`tier ${i + 1}`, "only the first tier is the edge model");
  });
  // The hop-0 offload sends the edge's keypoint windows (serve/offload.ts): tier 1 takes keypoints.
  if (tiers[1].kind !== "oip") fail("tier 1", "the first cloud tier must be an oip tier (it takes keypoint windows)");
  const names = new Set<string>();
  for (const t of tiers) {
    if (names.has(t.name)) fail(`tier ${t.name}`, "names must be unique");
    names.add(t.name);
  }
  return tiers;
}
