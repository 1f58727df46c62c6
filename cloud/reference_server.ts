/**
 * The reference large-model server: the cloud model named by a model set's manifest, served over the Open
 * Inference Protocol (KServe v2 REST) with onnxruntime — native (onnxruntime-node) where it loads, WASM
 * (onnxruntime-web) otherwise. On a GPU host, Triton or KServe serve the same protocol; this server makes the
 * project run on one machine. `deno task cloud` starts it alone; `deno task start` starts it on loopback when no
 * `CLOUD_URL` is set.
 *
 * Endpoints: `GET /v2/health/live`, `GET /v2/health/ready`, `GET /v2`, `GET /v2/models/{name}[/versions/{v}]`,
 * `GET /v2/models/{name}[/versions/{v}]/ready`, `POST /v2/models/{name}[/versions/{v}]/infer`. Errors are
 * `{ "error": "..." }` with 400 (bad request), 404 (unknown model or version), 413 (body too large) or 500.
 *
 * Lifecycle: read manifest -> check sha256 -> load session (native, else WASM) -> listen -> SIGINT/SIGTERM:
 * stop listening, finish requests in flight, release the session.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { CloudServerConfig } from "../config.ts";
import { loadCloudServerConfig } from "../config.ts";
import { AppError } from "../errors.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import { readArtefact, readManifest, readRuntimeBinary } from "../workers/artefacts.ts";
import type { OipInferRequest, OipInferResponse, OipModelMetadata, OipServerMetadata } from "./oip_types.ts";
import { parseFlags } from "../scripts/cli.ts";
import { serveApp, stopOnSignals } from "./serve_app.ts";

/** Most sequences in one infer call. */
const MAX_BATCH = 1024;
/** Largest infer body, in bytes (a full batch of long windows as JSON numbers fits). */
const MAX_BODY_BYTES = 256 * 1024 * 1024;

/** A loaded cloud model: run a `[N, T, J, C]` batch, get `[N, K]` logits. */
export interface CloudSession {
  runtime: "native" | "wasm";
  /**
   * Run the model.
   *
   * @param frames `N * T * J * C` values, row-major
   * @param n the batch size N
   * @returns `N * K` logits, row-major
   */
  run(frames: Float32Array, n: number): Promise<Float32Array>;
  /** Free the session. */
  release(): Promise<void>;
}

/** The part of an onnxruntime `InferenceSession` both runtimes share. */
interface OrtSession {
  readonly inputNames: readonly string[];
  readonly outputNames: readonly string[];
  run(feeds: Record<string, unknown>): Promise<Record<string, { data: unknown }>>;
  release(): Promise<void>;
}

/** Wrap a session after checking that it has the manifest's input and output. */
function wrapSession(
  session: OrtSession,
  options: {
    spec: ClassifierSpec;
    runtime: "native" | "wasm";
    tensor: (data: Float32Array, dims: number[]) => unknown;
  },
): CloudSession {
  const { spec } = options;
  const inputName = spec.inputs[0]?.name ?? "frames";
  const outputName = spec.outputs.find((o) => o.name === "logits")?.name ?? spec.outputs[0]?.name ?? "logits";
  if (!session.inputNames.includes(inputName) || !session.outputNames.includes(outputName)) {
    throw new AppError(
      "MODEL_NOT_READY",
      `Cannot load ${spec.version}: expected input "${inputName}" and output "${outputName}", the model has ` +
        `inputs [${session.inputNames.join(", ")}] and outputs [${session.outputNames.join(", ")}]`,
    );
  }
  const dims = [spec.windowFrames, spec.joints, spec.channels];
  const k = spec.labels.length;
  return {
    runtime: options.runtime,
    async run(frames, n) {
      const out = await session.run({ [inputName]: options.tensor(frames, [n, ...dims]) });
      const logits = out[outputName]?.data;
      if (!(logits instanceof Float32Array) || logits.length !== n * k) {
        throw new Error(`the model returned ${logits instanceof Float32Array ? logits.length : "no float32"} logits`);
      }
      return logits;
    },
    release: () => session.release(),
  };
}

/**
 * Load the cloud model in the chosen runtime. `auto` tries native onnxruntime first and falls back to WASM,
 * logging why.
 *
 * @param bytes the ONNX model (already checked against the manifest's sha256)
 * @param options the manifest entry and the runtime
 * @returns the session
 * @throws AppError MODEL_NOT_READY when the model's signature differs from the manifest's; the runtime's error
 *   when it cannot load (for `native`, or when WASM fails too)
 */
export async function loadCloudSession(
  bytes: Uint8Array,
  options: { spec: ClassifierSpec; runtime: CloudServerConfig["runtime"] },
): Promise<CloudSession> {
  const { spec } = options;
  if (options.runtime !== "wasm") {
    try {
      const ort = await import("onnxruntime-node");
      const session = await ort.InferenceSession.create(bytes);
      return wrapSession(session, {
        spec,
        runtime: "native",
        tensor: (data, dims) => new ort.Tensor("float32", data, dims),
      });
    } catch (err) {
      if (options.runtime === "native" || err instanceof AppError) throw err;
      console.error(JSON.stringify({
        level: "warn",
        msg: "native onnxruntime unavailable; serving the cloud model with onnxruntime-web (WASM)",
        error: String(err),
      }));
    }
  }
  const ort = await import("onnxruntime-web/wasm");
  // One thread: Deno has no cross-origin isolation for threaded WASM, and the server runs one model at a time.
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmBinary ??= await readRuntimeBinary();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  return wrapSession(session, {
    spec,
    runtime: "wasm",
    tensor: (data, dims) => new ort.Tensor("float32", data, dims),
  });
}

/** A request the protocol calls malformed (400). */
class BadRequest extends Error {}

/** Parse and check an infer body against the model's signature. */
function parseInfer(body: unknown, spec: ClassifierSpec): { frames: Float32Array; n: number; id?: string } {
  const req = body as OipInferRequest;
  if (!req || typeof req !== "object" || !Array.isArray(req.inputs) || req.inputs.length === 0) {
    throw new BadRequest("expected a body with a non-empty inputs array");
  }
  const name = spec.inputs[0]?.name ?? "frames";
  const input = req.inputs.find((i) => i?.name === name) ?? (req.inputs.length === 1 ? req.inputs[0] : undefined);
  if (!input || typeof input !== "object") throw new BadRequest(`expected an input named "${name}"`);
  if (input.datatype !== "FP32") throw new BadRequest(`expected datatype FP32, got ${input.datatype}`);
  const want = [spec.windowFrames, spec.joints, spec.channels];
  const shape = input.shape;
  if (
    !Array.isArray(shape) || shape.length !== 4 || !Number.isInteger(shape[0]) || shape[0] < 1 ||
    shape[0] > MAX_BATCH || shape.slice(1).some((d, i) => d !== want[i])
  ) {
    throw new BadRequest(
      `expected shape [N, ${want.join(", ")}] with 1 <= N <= ${MAX_BATCH}, got ${JSON.stringify(shape)}`,
    );
  }
  if (!Array.isArray(input.data)) throw new BadRequest("expected data to be an array");
  // The protocol allows the data flat or nested in row-major order.
  const data: unknown[] = input.data.some(Array.isArray) ? input.data.flat(3) : input.data;
  const count = shape.reduce((a, b) => a * b, 1);
  if (data.length !== count) throw new BadRequest(`expected ${count} values, got ${data.length}`);
  const frames = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const v = data[i];
    if (typeof v !== "number" || !Number.isFinite(v)) throw new BadRequest(`value ${i} is not a finite number`);
    frames[i] = v;
  }
  return { frames, n: shape[0], id: typeof req.id === "string" ? req.id : undefined };
}

/**
 * The reference server's HTTP app. Runs are queued one at a time: a WASM session cannot run twice at once, and
 * one model instance per process is what a GPU server would batch behind.
 *
 * @param options the loaded session, its manifest entry and the name it is served under
 * @returns a Hono app
 */
export function createReferenceApp(options: { session: CloudSession; spec: ClassifierSpec; modelName: string }): Hono {
  const { session, spec, modelName } = options;
  const app = new Hono();
  const k = spec.labels.length;
  let chain: Promise<unknown> = Promise.resolve();
  const metadata: OipModelMetadata = {
    name: modelName,
    versions: [spec.version],
    platform: session.runtime === "native" ? "onnxruntime_onnx" : "onnxruntime_web_wasm",
    inputs: [{
      name: spec.inputs[0]?.name ?? "frames",
      datatype: "FP32",
      shape: [-1, spec.windowFrames, spec.joints, spec.channels],
    }],
    outputs: [{ name: "logits", datatype: "FP32", shape: [-1, k] }],
  };
  const server: OipServerMetadata = { name: "dmd-edge-reference", version: "2", extensions: [] };

  /** The error reply when the path names another model or version, or null. */
  function unknown(c: Context): Response | null {
    const name = c.req.param("name");
    const version = c.req.param("version");
    if (name !== modelName) return c.json({ error: `Cannot find model "${name}"` }, 404);
    if (version !== undefined && version !== spec.version) {
      return c.json({ error: `Cannot find version "${version}" of model "${name}"` }, 404);
    }
    return null;
  }

  app.get("/v2/health/live", (c) => c.json({ live: true }));
  app.get("/v2/health/ready", (c) => c.json({ ready: true }));
  app.get("/v2", (c) => c.json(server));
  for (const base of ["/v2/models/:name", "/v2/models/:name/versions/:version"]) {
    app.get(base, (c) => unknown(c) ?? c.json(metadata));
    app.get(`${base}/ready`, (c) => unknown(c) ?? c.json({ name: modelName, ready: true }));
    app.post(
      `${base}/infer`,
      bodyLimit({
        maxSize: MAX_BODY_BYTES,
        onError: (c) => c.json({ error: `Cannot infer: the body exceeds ${MAX_BODY_BYTES} bytes` }, 413),
      }),
      async (c) => {
        const refused = unknown(c);
        if (refused) return refused;
        let parsed;
        try {
          parsed = parseInfer(await c.req.json(), spec);
        } catch (err) {
          const message = err instanceof BadRequest ? err.message : "expected a JSON body";
          return c.json({ error: `Cannot infer: ${message}` }, 400);
        }
        const { frames, n, id } = parsed;
        const run = chain.then(() => session.run(frames, n));
        chain = run.catch(() => undefined);
        const logits = await run;
        const reply: OipInferResponse = {
          model_name: modelName,
          model_version: spec.version,
          ...(id !== undefined ? { id } : {}),
          outputs: [{ name: "logits", shape: [n, k], datatype: "FP32", data: Array.from(logits) }],
        };
        return c.json(reply);
      },
    );
  }
  app.notFound((c) => c.json({ error: `Cannot find ${c.req.method} ${c.req.path}` }, 404));
  app.onError((err, c) => {
    console.error(JSON.stringify({ level: "error", msg: "inference failed", error: String(err) }));
    return c.json({ error: "Cannot infer: internal error" }, 500);
  });
  return app;
}

/** A running reference server. */
export interface ReferenceServer {
  /** Base URL, e.g. `http://127.0.0.1:8001`. */
  url: string;
  runtime: "native" | "wasm";
  /** The served model's version (the manifest's). */
  modelVersion: string;
  /** Stop listening, finish requests in flight, release the session. */
  shutdown(): Promise<void>;
}

/**
 * Load the cloud model of a model set (checking its sha256 against the manifest) and serve it.
 *
 * @param config host, port (0 picks a free one), models folder, model name, runtime
 * @returns the running server
 * @throws AppError MODEL_NOT_READY when the manifest or model is missing, or the digest differs
 * @example
 * const server = await startReferenceServer(loadCloudServerConfig());
 * // ... createOipClient({ baseUrl: server.url, modelName: "cloud", timeoutMs: 1000 })
 * await server.shutdown();
 */
export async function startReferenceServer(config: Readonly<CloudServerConfig>): Promise<ReferenceServer> {
  const manifest = await readManifest(config.modelsDir);
  const { bytes, spec } = await readArtefact(config.modelsDir, manifest.cloud);
  const session = await loadCloudSession(bytes, { spec, runtime: config.runtime });
  const app = createReferenceApp({ session, spec, modelName: config.modelName });
  const served = await serveApp(app.fetch, { host: config.host, port: config.port, release: () => session.release() });
  return { ...served, runtime: session.runtime, modelVersion: spec.version };
}

if (import.meta.main) {
  parseFlags(
    {},
    "usage: deno task cloud\n" +
      "The reference cloud model server (Open Inference Protocol / KServe v2 REST), configured by the environment:\n" +
      "CLOUD_SERVER_HOST (127.0.0.1), CLOUD_SERVER_PORT (8001), MODELS_DIR (wasm-models), CLOUD_MODEL_NAME (cloud),\n" +
      "CLOUD_RUNTIME (auto: native onnxruntime where it loads, else wasm). No authentication: keep it on loopback.",
  );
  const config = loadCloudServerConfig();
  const server = await startReferenceServer(config);
  console.log(JSON.stringify({
    level: "info",
    msg: "reference cloud server listening",
    url: server.url,
    runtime: server.runtime,
    model: config.modelName,
    version: server.modelVersion,
  }));
  stopOnSignals(server, config.exitWithParent ?? false);
}
