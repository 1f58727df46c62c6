/**
 * The reference large-model server: the cloud model from a model set's manifest, served over the Open Inference
 * Protocol (KServe v2 REST) with onnxruntime — native (onnxruntime-node) where it loads, WASM (onnxruntime-web)
 * otherwise. On a GPU host, Triton or KServe serve the same protocol; this server makes the project run on one
 * machine. `deno task cloud` starts it alone.
 *
 * Lifecycle: read manifest -> check sha256 -> load session -> listen -> SIGINT/SIGTERM: drain, release.
 *
 * @module
 */
import { Hono } from "hono";
import type { CloudServerConfig } from "../config.ts";
import { loadCloudServerConfig } from "../config.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import { readArtefact, readManifest, readRuntimeBinary } from "../workers/artefacts.ts";
import type { OipInferRequest, OipInferResponse, OipModelMetadata } from "./oip_types.ts";

/** Most sequences in one infer call. */
const MAX_BATCH = 1024;

/** A loaded model: run a `[N, T, J, C]` batch, get `[N, K]` logits. */
export interface CloudSession {
  runtime: "native" | "wasm";
  run(frames: Float32Array, n: number): Promise<Float32Array>;
  release(): Promise<void>;
}

/**
 * Load the cloud model in the chosen runtime.
 *
 * @param bytes the ONNX model
 * @param options the manifest entry and the runtime (`auto`: native, else WASM)
 * @returns the session
 */
export async function loadCloudSession(
  bytes: Uint8Array,
  options: { spec: ClassifierSpec; runtime: CloudServerConfig["runtime"] },
): Promise<CloudSession> {
  const { spec } = options;
  const inputName = spec.inputs[0]?.name ?? "frames";
  const dims = [spec.windowFrames, spec.joints, spec.channels];
  if (options.runtime !== "wasm") {
    try {
      const ort = await import("onnxruntime-node");
      const session = await ort.InferenceSession.create(bytes);
      return {
        runtime: "native",
        async run(frames, n) {
          const out = await session.run({ [inputName]: new ort.Tensor("float32", frames, [n, ...dims]) });
          return out.logits.data as Float32Array;
        },
        release: () => session.release(),
      };
    } catch (err) {
      if (options.runtime === "native") throw err;
      console.error(JSON.stringify({
        level: "warn",
        msg: "native onnxruntime unavailable; serving with onnxruntime-web",
        error: String(err),
      }));
    }
  }
  const ort = await import("onnxruntime-web/wasm");
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.wasmBinary ??= await readRuntimeBinary();
  const session = await ort.InferenceSession.create(bytes, { executionProviders: ["wasm"] });
  return {
    runtime: "wasm",
    async run(frames, n) {
      const out = await session.run({ [inputName]: new ort.Tensor("float32", frames, [n, ...dims]) });
      return out.logits.data as Float32Array;
    },
    release: () => session.release(),
  };
}

class BadRequest extends Error {}

function parseInfer(body: unknown, spec: ClassifierSpec): { frames: Float32Array; n: number; id?: string } {
  const req = body as OipInferRequest;
  if (!req || typeof req !== "object" || !Array.isArray(req.inputs) || req.inputs.length === 0) {
    throw new BadRequest("expected a body with a non-empty inputs array");
  }
  const name = spec.inputs[0]?.name ?? "frames";
  const input = req.inputs.find((i) => i?.name === name) ?? (req.inputs.length === 1 ? req.inputs[0] : undefined);
  if (!input) throw new BadRequest(`expected an input named "${name}"`);
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
  const count = shape.reduce((a, b) => a * b, 1);
  if (!Array.isArray(input.data) || input.data.length !== count) {
    throw new BadRequest(`expected ${count} values, got ${Array.isArray(input.data) ? input.data.length : "none"}`);
  }
  const frames = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    const v = input.data[i];
    if (typeof v !== "number" || !Number.isFinite(v)) throw new BadRequest(`value ${i} is not a finite number`);
    frames[i] = v;
  }
  return { frames, n: shape[0], id: typeof req.id === "string" ? req.id : undefined };
}

/**
 * The reference server's HTTP app.
 *
 * @param options the loaded session, its manifest entry and the name it is served under
 * @returns a Hono app
 */
export function createReferenceApp(options: { session: CloudSession; spec: ClassifierSpec; modelName: string }): Hono {
  const { session, spec, modelName } = options;
  const app = new Hono();
  const k = spec.labels.length;
  // Runs are queued one at a time: a WASM session cannot run twice at once, and one model instance per process
  // is what a GPU server would batch behind.
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
  const known = (name: string) => name === modelName;

  app.get("/v2/health/live", (c) => c.json({ live: true }));
  app.get("/v2/health/ready", (c) => c.json({ ready: true }));
  app.get("/v2", (c) => c.json({ name: "dmd-edge-reference", version: "2", extensions: [] }));
  app.get(
    "/v2/models/:name",
    (c) =>
      known(c.req.param("name")) ? c.json(metadata) : c.json({ error: `unknown model "${c.req.param("name")}"` }, 404),
  );
  app.get(
    "/v2/models/:name/ready",
    (c) =>
      known(c.req.param("name")) ? c.json({ name: modelName, ready: true }) : c.json({ error: "unknown model" }, 404),
  );
  app.post("/v2/models/:name/infer", async (c) => {
    if (!known(c.req.param("name"))) return c.json({ error: `unknown model "${c.req.param("name")}"` }, 404);
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
      ...(id ? { id } : {}),
      outputs: [{ name: "logits", shape: [n, k], datatype: "FP32", data: Array.from(logits) }],
    };
    return c.json(reply);
  });
  app.notFound((c) => c.json({ error: "not found" }, 404));
  app.onError((err, c) => {
    console.error(JSON.stringify({ level: "error", msg: "inference failed", error: String(err) }));
    return c.json({ error: "Cannot infer: internal error" }, 500);
  });
  return app;
}

/** A running reference server. */
export interface ReferenceServer {
  url: string;
  runtime: "native" | "wasm";
  shutdown(): Promise<void>;
}

/**
 * Load the cloud model of a model set and serve it.
 *
 * @param config host, port, models folder, model name, runtime
 * @returns the running server
 */
export async function startReferenceServer(config: Readonly<CloudServerConfig>): Promise<ReferenceServer> {
  const manifest = await readManifest(config.modelsDir);
  const { bytes, spec } = await readArtefact(config.modelsDir, manifest.cloud);
  const session = await loadCloudSession(bytes, { spec, runtime: config.runtime });
  const app = createReferenceApp({ session, spec, modelName: config.modelName });
  const server = Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, app.fetch);
  return {
    url: `http://${config.host}:${server.addr.port}`,
    runtime: session.runtime,
    async shutdown() {
      await server.shutdown();
      await session.release();
    },
  };
}

if (import.meta.main) {
  const config = loadCloudServerConfig();
  const server = await startReferenceServer(config);
  console.log(JSON.stringify({
    level: "info",
    msg: "reference cloud server listening",
    url: server.url,
    runtime: server.runtime,
    model: config.modelName,
  }));
  const stop = async () => {
    await server.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
