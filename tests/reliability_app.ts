/**
 * The HTTP app for reliability, fuzz and security tests: `createApp` with the real routes, validation and hybrid
 * classifier, and fake inference, cloud and log adapters (no workers, no network, no database).
 *
 * @module
 */
import type { CircuitBreaker } from "../cloud/circuit_breaker.ts";
import { cloudDownWhenOpen, withCircuitBreaker } from "../cloud/circuit_breaker.ts";
import type { DecisionRecord } from "../db/schema.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import type { AppError } from "../errors.ts";
import { type CloudAdapter, createHybridClassifier } from "../serve/classifier.ts";
import { createApp } from "../main.ts";
import type { RateLimitOptions } from "../routes/rate_limit.ts";
import { fakeCloud as fakeModelsCloud, fakeInference, MANIFEST, SPEC, SWITCHER } from "./fixtures/fake_models.ts";

/** The edge model the fake serves: layout "tiny", 2 joints, 3 channels. */
export { SPEC };

/** Limits the app is built with. */
export const LIMITS = { maxBodyBytes: 64 * 1024, maxFrames: 16, maxBatchItems: 4 };

/** A cloud that answers class "b", or fails with `fail()` when it returns an error; counts its calls. */
export function fakeCloud(fail: () => AppError | null = () => null): CloudAdapter & { calls: number } {
  return fakeModelsCloud({ fail, ms: 1 });
}

/**
 * Build the app.
 *
 * @param options switcher score (>= 0.5 offloads), cloud, breaker, rate limit, what the inference says about being
 *   overloaded (`overloaded`: the error a new request is shed with, or null)
 * @returns the app, the logged rows and the cloud
 */
export function testApp(
  options: {
    score?: number;
    cloud?: ReturnType<typeof fakeCloud>;
    breaker?: CircuitBreaker;
    rateLimit?: RateLimitOptions;
    /** Body, frame and batch limits. @default {@link LIMITS} */
    limits?: typeof LIMITS;
    /** The cloud URL `GET /v1/models` shows. @default "http://127.0.0.1:1" */
    cloudUrl?: string;
    /** Replaces the fake edge model. */
    inference?: ReturnType<typeof fakeInference>;
    /** What the inference says about being overloaded: the error a new request is shed with, or null. */
    overloaded?: () => AppError | null;
    /** The edge model's spec. @default {@link SPEC} */
    spec?: ClassifierSpec;
  } = {},
) {
  const rows: DecisionRecord[] = [];
  let n = 0;
  const newId = () => `id-${++n}`;
  const cloud = options.cloud ?? fakeCloud();
  const score = options.score ?? 0.1;
  const inference = options.inference ?? fakeInference({
    score: () => score,
    check(items) {
      for (const item of items) {
        if (item.data.length !== item.length * SPEC.joints * SPEC.channels || !item.data.every(Number.isFinite)) {
          throw new Error("the fake edge model got an input that validation should have refused");
        }
      }
    },
  });
  if (options.overloaded) inference.overloaded = options.overloaded;
  const spec = options.spec ?? SPEC;
  const manifest = { ...MANIFEST, edge: spec };
  const classifier = createHybridClassifier({
    inference,
    cloud: options.breaker ? withCircuitBreaker(cloud, options.breaker) : cloud,
    cloudDown: options.breaker ? cloudDownWhenOpen(options.breaker) : undefined,
    log: { append: (r) => void rows.push(r) },
    edgeSpec: spec,
    cloudSpec: manifest.cloud,
    cloudTimeoutMs: 100,
    takeOffloadToken: () => true,
    edgeLocation: "test",
    newId,
  });
  const app = createApp({
    config: options.limits ?? LIMITS,
    manifest,
    classifier,
    inference,
    switcher: () => SWITCHER,
    cloudUrl: options.cloudUrl ?? "http://127.0.0.1:1",
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
