/**
 * Configuration: the only module that reads the environment. {@link loadConfig} applies defaults, checks ranges
 * and returns a frozen {@link Config}; a bad value stops start-up with the variable's name in the message.
 * `.env.example` lists every variable.
 *
 * @module
 */
import { LOG_LEVELS, type LogLevel } from "./observability/logger.ts";
import { parseTiers, type Tier } from "./serve/tiers.ts";

/** The edge app's resolved configuration. */
export interface Config {
  /** Interface the app listens on. @default "127.0.0.1" */
  host: string;
  /** Port the app listens on (0 picks a free one). @default 8000 */
  port: number;
  /** Folder holding `manifest.json` and the model files. @default "wasm-models" */
  modelsDir: string;
  /** libSQL URL: `file:PATH`, `:memory:`, `libsql://...` or `http(s)://...`. @default "file:data/decisions.db" */
  databaseUrl: string;
  /** libSQL auth token for remote databases; never logged. @default undefined */
  databaseAuthToken: string | undefined;
  /**
   * Base URL of an Open Inference Protocol server hosting the cloud model. Unset: `deno task start` runs the
   * reference server on loopback. @default undefined
   */
  cloudUrl: string | undefined;
  /**
   * How the cloud clients authenticate: `CLOUD_AUTH_TOKEN` sent in `CLOUD_AUTH_HEADER` (default `authorization`, as
   * `Bearer <token>`; any other header carries the token as it is, e.g. `x-api-key`), or the user and password of
   * `CLOUD_URL` as HTTP Basic (they are taken out of the URL, so that it can be shown). Never logged. @default undefined
   */
  cloudAuth: CloudAuth | undefined;
  /** Model name on the cloud server. @default "cloud" */
  cloudModelName: string;
  /** Deadline of one offload call, in milliseconds. @default 1000 */
  cloudTimeoutMs: number;
  /** Consecutive cloud failures that open the circuit breaker (cloud/circuit_breaker.ts). @default 5 */
  cloudBreakerFailures: number;
  /** Share of failed calls among the last `cloudBreakerWindow` that opens the circuit, in (0, 1]. @default 0.5 */
  cloudBreakerFailureRatio: number;
  /** Calls in the breaker's sliding window. @default 20 */
  cloudBreakerWindow: number;
  /** Cool-down of an open circuit before one probe call, in milliseconds. @default 5000 */
  cloudBreakerOpenMs: number;
  /** Longest cool-down (it doubles per failed probe), in milliseconds; at least `cloudBreakerOpenMs`. @default 60000 */
  cloudBreakerMaxOpenMs: number;
  /** Inference workers in the pool; 0: the edge model runs on the HTTP thread. @default min(2, available cores) */
  workers: number;
  /** Requests that may wait for a worker before new ones are shed with 503. @default 256 */
  queueMax: number;
  /**
   * Shed a new request with 503 `OVERLOADED` (before its body is read) when at least a full batch waits and the
   * inference queue holds more than this much work: the sequences queued (and those waiting inside busy workers) x
   * the measured time per sequence / the workers, in milliseconds. @default 50
   */
  queueMaxWaitMs: number;
  /** Most sequences a free worker takes from the queue as one batch. @default 32 */
  inferenceBatchMax: number;
  /** Longest a free worker waits for its batch to fill, in milliseconds (0: take what is queued). @default 0 */
  inferenceBatchWaitMs: number;
  /**
   * Batches an inference worker holds at once: 2 posts the next batch while the worker runs one, so it starts without
   * a round trip through the HTTP thread; 1 posts one at a time. @default 2
   */
  inferencePipelineDepth: number;
  /** Warm-up inferences per worker before it is ready. @default 2 */
  warmupRuns: number;
  /**
   * Deadline of one task in an inference worker, in milliseconds; a worker past it is replaced and the task fails
   * with 503 `INFERENCE_FAILED`. @default 10000
   */
  workerTaskTimeoutMs: number;
  /** Requests per second per client (token bucket, 429 `RATE_LIMITED`); 0 means no limit. @default 0 */
  rateLimitPerS: number;
  /** Burst size of the per-client bucket. @default max(1, ceil(rateLimitPerS)) */
  rateLimitBurst: number;
  /**
   * What identifies a client for rate limiting: `address` (the peer's IP address) or `header:NAME` (e.g.
   * `header:x-client-id`; requests without it fall back to the address). @default "address"
   */
  rateLimitKey: string;
  /** Largest accepted request body, in bytes. @default 4194304 (4 MiB) */
  maxBodyBytes: number;
  /** Most frames in one sequence. @default 1000 */
  maxFrames: number;
  /** Most sequences in one batch request. @default 64 */
  maxBatchItems: number;
  /** Give freed heap memory back to the system every this many ms (glibc `malloc_trim`; serve/memory_trim.ts); 0 turns it off. @default 60000 */
  memoryTrimMs: number;
  /** Pose workers for camera frames (workers/pose_pool.ts); 0 turns the frames routes off. @default 1 */
  poseWorkers: number;
  /** The pose model's folder (manifest.json + model); when it has none, the frames routes are off. @default "wasm-models/pose" */
  poseModelDir: string;
  /** Clips that may wait for a pose worker; past it, 503 OVERLOADED. @default 16 */
  poseQueueMax: number;
  /** Longest one clip may hold a pose worker, in ms; past it the worker is replaced and the clip answered 503 POSE_TIMEOUT. @default 60000 */
  poseTimeoutMs: number;
  /** Most frames in one camera clip. @default 64 */
  maxClipFrames: number;
  /** Most bytes in one encoded camera frame. @default 1048576 (1 MiB) */
  maxImageBytes: number;
  /** Most pixels (width x height) in one camera frame, read from its header before decoding. @default 2073600 (1920x1080) */
  maxImagePixels: number;
  /** Overrides the switcher's calibrated threshold when set, in [0, 1]. @default undefined */
  switcherThreshold: number | undefined;
  /** Most offloads per second (token bucket); 0 means no limit. @default 0 */
  offloadBudgetPerS: number;
  /** Decision-log rows written per batch. @default 200 */
  logBatchSize: number;
  /** Longest a decision waits in memory before its batch is written, in milliseconds. @default 200 */
  logFlushMs: number;
  /**
   * Folder of the decision outbox: decisions the database cannot take are appended there (fsynced) and replayed
   * in order when it is back. @default "<database file>.outbox" for `file:` databases, "data/outbox" for remote
   * ones, none for `:memory:`
   */
  logOutboxDir: string | undefined;
  /**
   * `true`: a classify answer is sent only once its decision is committed to the database or fsynced to the
   * outbox, so a crash loses no answered decision. `false`: decisions wait in memory up to `logFlushMs` first.
   * @default false
   */
  logDurable: boolean;
  /**
   * Readiness threshold of the decision log: `/readyz` answers 503 once the oldest accepted decision not yet in the
   * database (in memory or in the outbox) is older than this, or at once when the database file was deleted or
   * replaced, in milliseconds. @default 30000
   */
  logReadyMaxLagMs: number;
  /** How long a database write waits for another writer's lock, in milliseconds (it blocks the thread). @default 200 */
  databaseBusyTimeoutMs: number;
  /**
   * `true`: the calls on a local database file run in a child process of their own (`db/host.ts`), so that a SIGBUS
   * inside SQLite (its `-shm` made immutable or truncated under the service) ends that process, not the service;
   * `false`: in the service's own process (no child process to start, one pipe round trip less per call).
   * @default true
   */
  databaseProcess: boolean;
  /** On SIGTERM: longest wait for requests in flight, then again for the log to flush, in milliseconds. @default 10000 */
  shutdownTimeoutMs: number;
  /**
   * On SIGTERM: how long new requests, kept-alive connections included, are answered 503 `SHUTTING_DOWN` (with
   * `Connection: close`) before the server stops accepting, at least; longer while requests are in flight (within
   * `shutdownTimeoutMs`), in milliseconds. @default 500
   */
  shutdownDrainMs: number;
  /**
   * Longest time a request head (request line and fields) may take to arrive, in milliseconds: from the connection's
   * opening for its first request, from the first byte for each later one; past it, 408 and the connection is closed
   * (serve/conn_guard.ts). 0 turns the connection guard off: the server listens on the port itself, with no header
   * timeout, idle close or connection limit. @default 10000
   */
  headerTimeoutMs: number;
  /** A kept-alive connection with no request for this long is closed, in milliseconds (with the guard on). @default 30000 */
  keepAliveIdleMs: number;
  /** Most client connections open at once; one more is answered 503 and closed (with the guard on). @default 1000 */
  maxConnections: number;
  /** Name of this edge location, stored on every decision. @default "local" */
  edgeLocation: string;
  /**
   * Exploration: the fraction of requests the switcher keeps on the edge that are also sent to the cloud in the
   * background (shadow calls), so that retraining sees unbiased pairs. @default 0.05
   */
  explorationRate: number;
  /** Most shadow calls per second (token bucket, separate from the offload budget); 0 means no limit. @default 20 */
  shadowBudgetPerS: number;
  /** How often the app checks the database for a newly promoted switcher, in milliseconds; 0: only on /admin reload. @default 30000 */
  switcherPollMs: number;
  /**
   * Bearer token for the admin and analytics endpoints (`Authorization: Bearer <token>`); never logged. Unset: those
   * endpoints answer 401 to everyone. @default undefined
   */
  adminToken: string | undefined;
  /**
   * Least severe structured log line written (JSON lines, `observability/logger.ts`): `debug`, `info`, `warn`,
   * `error` or `silent`. Requests are logged at `info` (scrapes and probes at `debug`). @default "info"
   */
  logLevel: LogLevel;
  /**
   * The tiers a request may climb (serve/tiers.ts), from `TIERS` (JSON) or `TIERS_FILE`: tier 1's url, model,
   * deadline, breaker, budget and key replace the `CLOUD_*` values above; tiers 2 and up are climbed by
   * serve/cascade.ts. API keys are resolved from the variables the tiers name and never logged. @default null (the
   * two default tiers: the edge model and the `CLOUD_*` cloud model)
   */
  tiers: Tier[] | null;
}

/** A credential the cloud clients send with every call: one header and its value. */
export interface CloudAuth {
  /** Header name, lower case, e.g. `authorization` or `x-api-key`. */
  header: string;
  /** Header value; a secret, never logged. */
  value: string;
}

/** The reference cloud server's resolved configuration (`deno task cloud`). */
export interface CloudServerConfig {
  /** @default "127.0.0.1" */
  host: string;
  /** @default 8001 */
  port: number;
  /** @default "wasm-models" */
  modelsDir: string;
  /** Model name served under `/v2/models/{name}`. @default "cloud" */
  modelName: string;
  /** `native` (onnxruntime-node), `wasm` (onnxruntime-web) or `auto` (native, else wasm). @default "auto" */
  runtime: "auto" | "native" | "wasm";
  /**
   * Exit when stdin closes (`CLOUD_SERVER_EXIT_WITH_PARENT=true`): set by the edge app for the server it starts, so
   * that the server never outlives it. @default false
   */
  exitWithParent?: boolean;
}

type Env = Record<string, string | undefined>;

function str(env: Env, name: string, fallback: string): string {
  const v = env[name];
  if (v === undefined || v === "") return fallback;
  return v;
}

function int(env: Env, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new RangeError(`Invalid ${name}: expected an integer in [${min}, ${max}], got "${raw}"`);
  }
  return n;
}

function num(env: Env, name: string, fallback: number | undefined, min: number, max: number): number | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  const n = Number(raw);
  if (!Number.isFinite(n) || n < min || n > max) {
    throw new RangeError(`Invalid ${name}: expected a number in [${min}, ${max}], got "${raw}"`);
  }
  return n;
}

/**
 * A URL safe to show: its user and password (and a query that may carry a key) replaced by `***`. Text that does
 * not parse as a URL is not shown at all.
 *
 * @param raw the URL
 * @returns the URL without secrets
 * @example
 * redactUrl("http://user:secret@host:8001/x?key=k"); // "http://***@host:8001/x?***"
 */
export function redactUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return "(not a URL)";
  }
  const auth = u.username || u.password ? "***@" : "";
  const query = u.search ? "?***" : "";
  return `${u.protocol}//${auth}${u.host}${u.pathname === "/" ? "" : u.pathname}${query}`;
}

/** An http(s) URL setting, without its credentials (see {@link cloudConfig}). */
function url(env: Env, name: string): URL | undefined {
  const raw = env[name];
  if (raw === undefined || raw === "") return undefined;
  let u: URL | undefined;
  try {
    u = new URL(raw);
  } catch {
    // reported below, without the value: it may hold a password
  }
  if (!u || (u.protocol !== "http:" && u.protocol !== "https:")) {
    throw new RangeError(`Invalid ${name}: expected an http(s) URL, got "${redactUrl(raw)}"`);
  }
  return u;
}

/** `CLOUD_URL` without credentials, and the credential the cloud clients send. */
function cloudConfig(env: Env): { cloudUrl: string | undefined; cloudAuth: CloudAuth | undefined } {
  const u = url(env, "CLOUD_URL");
  const header = str(env, "CLOUD_AUTH_HEADER", "authorization").toLowerCase();
  if (!/^[a-z0-9!#$%&'*+.^_`|~-]+$/.test(header)) {
    throw new RangeError(`Invalid CLOUD_AUTH_HEADER: expected a header name, got "${header}"`);
  }
  const token = env.CLOUD_AUTH_TOKEN || undefined;
  let cloudAuth: CloudAuth | undefined;
  if (token !== undefined) {
    if (/[\r\n]/.test(token)) throw new RangeError("Invalid CLOUD_AUTH_TOKEN: expected one line");
    cloudAuth = { header, value: header === "authorization" ? `Bearer ${token}` : token };
  } else if (u && (u.username || u.password)) {
    const basic = `${decodeURIComponent(u.username)}:${decodeURIComponent(u.password)}`;
    cloudAuth = {
      header: "authorization",
      value: `Basic ${btoa(String.fromCharCode(...new TextEncoder().encode(basic)))}`,
    };
  }
  if (u) u.username = u.password = "";
  return { cloudUrl: u?.href.replace(/\/+$/, ""), cloudAuth };
}

function databaseUrl(env: Env): string {
  const v = str(env, "DATABASE_URL", "file:data/decisions.db");
  if (!/^(file:|:memory:$|libsql:\/\/|https?:\/\/|wss?:\/\/)/.test(v)) {
    throw new RangeError(`Invalid DATABASE_URL: expected file:, :memory:, libsql://, http(s):// or ws(s)://`);
  }
  return v;
}

/**
 * Resolve the edge app's configuration.
 *
 * @param env the environment (default: `Deno.env.toObject()`)
 * @returns the frozen configuration
 * @throws RangeError naming the variable when a value is out of range
 */
export function loadConfig(env: Env = Deno.env.toObject()): Readonly<Config> {
  return Object.freeze(withTiers(baseConfig(env), env));
}

/**
 * The configuration with its tiers: `TIERS` or `TIERS_FILE` parsed, and tier 1's settings in the `CLOUD_*` fields
 * (the hop-0 offload reads them), so that two configured tiers behave exactly as the same `CLOUD_*` values do.
 */
function withTiers(base: Config, env: Env): Config {
  const inline = env.TIERS || undefined;
  const file = env.TIERS_FILE || undefined;
  if (inline && file) throw new RangeError("Invalid TIERS: set TIERS or TIERS_FILE, not both");
  if (!inline && !file) return base;
  let text = inline;
  if (file) {
    try {
      text = Deno.readTextFileSync(file);
    } catch (err) {
      throw new RangeError(`Invalid TIERS_FILE: cannot read "${file}": ${(err as Error).message}`);
    }
  }
  const tiers = parseTiers(text!, {
    defaults: {
      timeoutMs: base.cloudTimeoutMs,
      budgetPerS: base.offloadBudgetPerS,
      breaker: {
        failures: base.cloudBreakerFailures,
        failureRatio: base.cloudBreakerFailureRatio,
        window: base.cloudBreakerWindow,
        openMs: base.cloudBreakerOpenMs,
        maxOpenMs: base.cloudBreakerMaxOpenMs,
      },
      explore: base.explorationRate,
    },
    env,
  });
  const first = tiers[1] as Extract<Tier, { kind: "oip" }>;
  return {
    ...base,
    tiers,
    cloudUrl: first.url ?? base.cloudUrl,
    cloudModelName: first.model,
    cloudTimeoutMs: first.timeoutMs,
    cloudAuth: first.apiKey ? { header: "authorization", value: `Bearer ${first.apiKey}` } : base.cloudAuth,
    cloudBreakerFailures: first.breaker.failures,
    cloudBreakerFailureRatio: first.breaker.failureRatio,
    cloudBreakerWindow: first.breaker.window,
    cloudBreakerOpenMs: first.breaker.openMs,
    cloudBreakerMaxOpenMs: first.breaker.maxOpenMs,
    offloadBudgetPerS: first.budgetPerS,
    switcherThreshold: first.threshold ?? base.switcherThreshold,
  };
}

function baseConfig(env: Env): Config {
  const cores = navigator.hardwareConcurrency ?? 2;
  return {
    host: str(env, "HOST", "127.0.0.1"),
    port: int(env, "PORT", 8000, 0, 65535),
    modelsDir: str(env, "MODELS_DIR", "wasm-models"),
    databaseUrl: databaseUrl(env),
    databaseAuthToken: env.DATABASE_AUTH_TOKEN || undefined,
    ...cloudConfig(env),
    cloudModelName: str(env, "CLOUD_MODEL_NAME", "cloud"),
    cloudTimeoutMs: int(env, "CLOUD_TIMEOUT_MS", 1000, 1, 600_000),
    ...breakerConfig(env),
    workers: int(env, "WORKERS", Math.max(1, Math.min(2, cores)), 0, 64),
    queueMax: int(env, "QUEUE_MAX", 256, 1, 1_000_000),
    queueMaxWaitMs: num(env, "QUEUE_MAX_WAIT_MS", 50, 0.001, 600_000) ?? 50,
    inferenceBatchMax: int(env, "INFERENCE_BATCH_MAX", 32, 1, 4096),
    inferenceBatchWaitMs: num(env, "INFERENCE_BATCH_WAIT_MS", 0, 0, 10) ?? 0,
    inferencePipelineDepth: int(env, "INFERENCE_PIPELINE_DEPTH", 2, 1, 8),
    warmupRuns: int(env, "WARMUP_RUNS", 2, 0, 100),
    workerTaskTimeoutMs: int(env, "WORKER_TASK_TIMEOUT_MS", 10_000, 10, 600_000),
    ...rateLimitConfig(env),
    maxBodyBytes: int(env, "MAX_BODY_BYTES", 4 * 1024 * 1024, 1024, 1024 * 1024 * 1024),
    maxFrames: int(env, "MAX_FRAMES", 1000, 1, 100_000),
    maxBatchItems: int(env, "MAX_BATCH_ITEMS", 64, 1, 10_000),
    memoryTrimMs: int(env, "MEMORY_TRIM_MS", 60_000, 0, 86_400_000),
    poseWorkers: int(env, "POSE_WORKERS", 1, 0, 64),
    poseModelDir: str(env, "POSE_MODEL_DIR", "wasm-models/pose"),
    poseQueueMax: int(env, "POSE_QUEUE_MAX", 16, 1, 100_000),
    poseTimeoutMs: int(env, "POSE_TIMEOUT_MS", 60_000, 10, 3_600_000),
    maxClipFrames: int(env, "MAX_CLIP_FRAMES", 64, 1, 10_000),
    maxImageBytes: int(env, "MAX_IMAGE_BYTES", 1024 * 1024, 1024, 256 * 1024 * 1024),
    maxImagePixels: int(env, "MAX_IMAGE_PIXELS", 1920 * 1080, 1, 100_000_000),
    switcherThreshold: num(env, "SWITCHER_THRESHOLD", undefined, 0, 1),
    offloadBudgetPerS: num(env, "OFFLOAD_BUDGET_PER_S", 0, 0, 1e9) ?? 0,
    logBatchSize: int(env, "LOG_BATCH_SIZE", 200, 1, 100_000),
    logFlushMs: int(env, "LOG_FLUSH_MS", 200, 1, 60_000),
    logOutboxDir: outboxDir(env),
    logDurable: bool(env, "LOG_DURABLE", false),
    logReadyMaxLagMs: int(env, "LOG_READY_MAX_LAG_MS", 30_000, 100, 86_400_000),
    databaseBusyTimeoutMs: int(env, "DATABASE_BUSY_TIMEOUT_MS", 200, 0, 60_000),
    databaseProcess: bool(env, "DATABASE_PROCESS", true),
    shutdownTimeoutMs: int(env, "SHUTDOWN_TIMEOUT_MS", 10_000, 0, 600_000),
    shutdownDrainMs: int(env, "SHUTDOWN_DRAIN_MS", 500, 0, 600_000),
    headerTimeoutMs: int(env, "HEADER_TIMEOUT_MS", 10_000, 0, 3_600_000),
    keepAliveIdleMs: int(env, "KEEPALIVE_IDLE_MS", 30_000, 1, 86_400_000),
    maxConnections: int(env, "MAX_CONNECTIONS", 1000, 1, 1_000_000),
    edgeLocation: str(env, "EDGE_LOCATION", "local"),
    explorationRate: num(env, "EXPLORATION_RATE", 0.05, 0, 1) ?? 0.05,
    shadowBudgetPerS: num(env, "SHADOW_BUDGET_PER_S", 20, 0, 1e9) ?? 20,
    switcherPollMs: int(env, "SWITCHER_POLL_MS", 30_000, 0, 86_400_000),
    adminToken: adminToken(env),
    logLevel: logLevel(env),
    tiers: null,
  };
}

function logLevel(env: Env): LogLevel {
  const v = str(env, "LOG_LEVEL", "info");
  if (!(LOG_LEVELS as readonly string[]).includes(v)) {
    throw new RangeError(`Invalid LOG_LEVEL: expected one of ${LOG_LEVELS.join(", ")}, got "${v}"`);
  }
  return v as LogLevel;
}

function bool(env: Env, name: string, fallback: boolean): boolean {
  const raw = env[name];
  if (raw === undefined || raw === "") return fallback;
  if (/^(1|true|yes|on)$/i.test(raw)) return true;
  if (/^(0|false|no|off)$/i.test(raw)) return false;
  throw new RangeError(`Invalid ${name}: expected true or false, got "${raw}"`);
}

function breakerConfig(env: Env) {
  const cloudBreakerOpenMs = int(env, "CLOUD_BREAKER_OPEN_MS", 5000, 1, 86_400_000);
  const cloudBreakerMaxOpenMs = int(
    env,
    "CLOUD_BREAKER_MAX_OPEN_MS",
    Math.max(60_000, cloudBreakerOpenMs),
    1,
    86_400_000,
  );
  if (cloudBreakerMaxOpenMs < cloudBreakerOpenMs) {
    throw new RangeError(
      `Invalid CLOUD_BREAKER_MAX_OPEN_MS: expected at least CLOUD_BREAKER_OPEN_MS (${cloudBreakerOpenMs}), got "${env.CLOUD_BREAKER_MAX_OPEN_MS}"`,
    );
  }
  return {
    cloudBreakerFailures: int(env, "CLOUD_BREAKER_FAILURES", 5, 1, 1_000_000),
    cloudBreakerFailureRatio: num(env, "CLOUD_BREAKER_FAILURE_RATIO", 0.5, 0.01, 1) ?? 0.5,
    cloudBreakerWindow: int(env, "CLOUD_BREAKER_WINDOW", 20, 1, 1_000_000),
    cloudBreakerOpenMs,
    cloudBreakerMaxOpenMs,
  };
}

function rateLimitConfig(env: Env) {
  const rateLimitPerS = num(env, "RATE_LIMIT_PER_S", 0, 0, 1e9) ?? 0;
  const rateLimitKey = str(env, "RATE_LIMIT_KEY", "address");
  if (rateLimitKey !== "address" && !/^header:[A-Za-z0-9!#$%&'*+.^_`|~-]+$/.test(rateLimitKey)) {
    throw new RangeError(`Invalid RATE_LIMIT_KEY: expected address or header:NAME, got "${rateLimitKey}"`);
  }
  return {
    rateLimitPerS,
    rateLimitBurst: int(env, "RATE_LIMIT_BURST", Math.max(1, Math.ceil(rateLimitPerS)), 1, 1_000_000_000),
    rateLimitKey,
  };
}

/** The outbox folder: explicit, beside a file database, `data/outbox` for a remote one, none for `:memory:`. */
function outboxDir(env: Env): string | undefined {
  const explicit = str(env, "LOG_OUTBOX_DIR", "");
  if (explicit) return explicit;
  const db = databaseUrl(env);
  if (db === ":memory:" || db === "file::memory:") return undefined;
  if (db.startsWith("file:")) {
    const path = db.slice("file:".length).replace(/[?#].*$/, "").replace(/^\/\/[^/]*/, "");
    return `${path}.outbox`;
  }
  return "data/outbox";
}

function adminToken(env: Env): string | undefined {
  const v = env.ADMIN_TOKEN;
  if (v === undefined || v === "") return undefined;
  if (v.length < 16) throw new RangeError("Invalid ADMIN_TOKEN: expected at least 16 characters");
  return v;
}

/**
 * Resolve the reference cloud server's configuration (`CLOUD_SERVER_HOST`, `CLOUD_SERVER_PORT`, `MODELS_DIR`,
 * `CLOUD_MODEL_NAME`, `CLOUD_RUNTIME`).
 *
 * @param env the environment (default: `Deno.env.toObject()`)
 * @returns the frozen configuration
 */
export function loadCloudServerConfig(env: Env = Deno.env.toObject()): Readonly<CloudServerConfig> {
  const runtime = str(env, "CLOUD_RUNTIME", "auto");
  if (runtime !== "auto" && runtime !== "native" && runtime !== "wasm") {
    throw new RangeError(`Invalid CLOUD_RUNTIME: expected auto, native or wasm, got "${runtime}"`);
  }
  return Object.freeze({
    host: str(env, "CLOUD_SERVER_HOST", "127.0.0.1"),
    port: int(env, "CLOUD_SERVER_PORT", 8001, 0, 65535),
    modelsDir: str(env, "MODELS_DIR", "wasm-models"),
    modelName: str(env, "CLOUD_MODEL_NAME", "cloud"),
    runtime,
    exitWithParent: bool(env, "CLOUD_SERVER_EXIT_WITH_PARENT", false),
  });
}

/** The reference VLM server's resolved configuration (`deno task cloud:vlm`, cloud/vlm_reference_server.ts). */
export interface VlmServerConfig {
  /** Loopback only (the server has no authentication). @default "127.0.0.1" */
  host: string;
  /** @default 8002 */
  port: number;
  /** @default "wasm-models" */
  modelsDir: string;
  /** @default "wasm-models/pose" */
  poseModelDir: string;
  /** The `model` it answers to and lists. @default "dmd-reference-vlm" */
  modelName: string;
  /** Runtime of the cloud classifier, as for the reference cloud server. @default "auto" */
  runtime: "auto" | "native" | "wasm";
  /** Exit when stdin closes (`VLM_SERVER_EXIT_WITH_PARENT=true`). @default false */
  exitWithParent: boolean;
}

/**
 * Resolve the reference VLM server's configuration (`VLM_SERVER_HOST`, `VLM_SERVER_PORT`, `VLM_SERVER_MODEL`,
 * `MODELS_DIR`, `POSE_MODEL_DIR`, `CLOUD_RUNTIME`, `VLM_SERVER_EXIT_WITH_PARENT`).
 *
 * @param env the environment (default: `Deno.env.toObject()`)
 * @returns the frozen configuration
 */
export function loadVlmServerConfig(env: Env = Deno.env.toObject()): Readonly<VlmServerConfig> {
  const cloud = loadCloudServerConfig(env);
  return Object.freeze({
    host: str(env, "VLM_SERVER_HOST", "127.0.0.1"),
    port: int(env, "VLM_SERVER_PORT", 8002, 0, 65535),
    modelsDir: cloud.modelsDir,
    poseModelDir: str(env, "POSE_MODEL_DIR", "wasm-models/pose"),
    modelName: str(env, "VLM_SERVER_MODEL", "dmd-reference-vlm"),
    runtime: cloud.runtime,
    exitWithParent: bool(env, "VLM_SERVER_EXIT_WITH_PARENT", false),
  });
}
