/**
 * The HTTP app for reliability, fuzz and security tests: `createApp` with the real routes, validation and hybrid
 * classifier, and fake inference, cloud and log adapters (no workers, no network, no database).
 *
 * @module
 */
import type { CircuitBreaker } from "../cloud/circuit_breaker.ts";
import { withCircuitBreaker } from "../cloud/circuit_breaker.ts";
import type { DecisionRecord } from "../db/schema.ts";
import type { AppError } from "../errors.ts";
import { type CloudAdapter, createHybridClassifier } from "../hybrid/classifier.ts";
import { createApp } from "../main.ts";
import type { RateLimitOptions } from "../routes/rate_limit.ts";
import type { ClassifierSpec, Manifest } from "../wasm-models/manifest.ts";
import type { EdgeInference } from "../workers/pool.ts";

/** The edge model the fake serves: layout "tiny", 2 joints, 3 channels. */
export const SPEC: ClassifierSpec = {
  file: "edge.onnx",
  sha256: "",
  bytes: 0,
  version: "edge-test",
  inputs: [{ name: "frames", shape: [-1, 4, 2, 3], dtype: "float32" }],
  outputs: [{ name: "logits", shape: [-1, 3], dtype: "float32" }],
  layout: "tiny",
  joints: 2,
  channels: 3,
  confidenceChannel: 2,
  windowFrames: 4,
  fps: 10,
  labels: ["a", "b", "c"],
  embeddingSize: 2,
  precision: "int8-qdq",
};

/** Limits the app is built with. */
export const LIMITS = { maxBodyBytes: 64 * 1024, maxFrames: 16, maxBatchItems: 4 };

function fakeInference(score: number): EdgeInference {
  return {
    classify(items) {
      for (const item of items) {
        if (item.data.length !== item.length * SPEC.joints * SPEC.channels || !item.data.every(Number.isFinite)) {
          throw new Error("the fake edge model got an input that validation should have refused");
        }
      }
      const results = items.map(() => ({
        probs: new Float32Array([0.7, 0.2, 0.1]),
        embedding: new Float32Array([1, 2]),
        features: new Float32Array([0.7, 0.5, 0.3, 1, 0, 0, 1, 2]),
        score,
        window: new Float32Array(4 * 2 * 3),
      }));
      return Promise.resolve({ results, timings: { queueMs: 0, preprocessMs: 0.1, edgeMs: 1, switcherMs: 0.1 } });
    },
    setSwitcher: () => Promise.resolve({ edge: "edge-test", switcher: "switcher-test" }),
    versions: () => ({ edge: "edge-test", switcher: "switcher-test" }),
    stats: () => ({ size: 1, busy: 0, queued: 0, queueMax: 8, completed: 0, failed: 0, restarts: 0 }),
    close: () => Promise.resolve(),
  };
}

/** A cloud that answers class "b", or fails with `fail()` when it returns an error; counts its calls. */
export function fakeCloud(fail: () => AppError | null = () => null): CloudAdapter & { calls: number } {
  const cloud = {
    calls: 0,
    infer(_frames: Float32Array, shape: number[]) {
      cloud.calls++;
      const err = fail();
      if (err) return Promise.reject(err);
      const logits = new Float32Array(shape[0] * 3);
      for (let i = 0; i < shape[0]; i++) logits.set([0, 3, 0], i * 3);
      return Promise.resolve({ logits, modelVersion: "cloud-test", ms: 1 });
    },
  };
  return cloud;
}

/**
 * Build the app.
 *
 * @param options switcher score (>= 0.5 offloads), cloud, breaker, rate limit
 * @returns the app, the logged rows and the cloud
 */
export function testApp(
  options: {
    score?: number;
    cloud?: ReturnType<typeof fakeCloud>;
    breaker?: CircuitBreaker;
    rateLimit?: RateLimitOptions;
  } = {},
) {
  const rows: DecisionRecord[] = [];
  let n = 0;
  const newId = () => `id-${++n}`;
  const cloud = options.cloud ?? fakeCloud();
  const inference = fakeInference(options.score ?? 0.1);
  const manifest: Manifest = { schemaVersion: 1, edge: SPEC, cloud: { ...SPEC, version: "cloud-test" } };
  const classifier = createHybridClassifier({
    inference,
    cloud: options.breaker ? withCircuitBreaker(cloud, options.breaker) : cloud,
    log: { append: (r) => void rows.push(r) },
    edgeSpec: SPEC,
    cloudSpec: manifest.cloud,
    threshold: () => 0.5,
    cloudTimeoutMs: 100,
    takeOffloadToken: () => true,
    edgeLocation: "test",
    newId,
  });
  const app = createApp({
    config: LIMITS,
    manifest,
    classifier,
    inference,
    threshold: () => 0.5,
    cloudUrl: "http://127.0.0.1:1",
    decisions: { getDecision: (id) => Promise.resolve(rows.find((r) => r.id === id) ?? null) },
    health: {
      modelsReady: () => true,
      database: () => Promise.resolve(true),
      cloud: () => Promise.resolve(true),
      logBacklog: () => 0,
    },
    newId,
    rateLimit: options.rateLimit,
  });
  return { app, rows, cloud };
}
