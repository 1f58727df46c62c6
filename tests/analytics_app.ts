/**
 * The real app (`createApp`) with fake inference and cloud adapters and real observability (metrics, a logger that
 * keeps its lines, `/v1/stats` over a migrated in-memory or file database) for the stats, metrics and dashboard
 * tests. The decision sink writes straight to the database (`insertDecisions`) so that stats see each decision.
 *
 * @module
 */
import { type Database, openDatabase } from "../db/client.ts";
import { insertDecisions } from "../db/queries.ts";
import type { DecisionRecord } from "../db/schema.ts";
import { createHybridClassifier } from "../serve/classifier.ts";
import { createApp, type ObservabilityDeps } from "../main.ts";
import { createLogger } from "../observability/logger.ts";
import { createServiceMetrics, observeSink } from "../observability/metrics.ts";
import { fakeCloud, fakeInference, MANIFEST, SPEC, SWITCHER } from "./fixtures/fake_models.ts";

/** The admin token of the test app. */
export const TOKEN = "test-admin-token-0123456789";

/** A classify body the fake models accept. */
export function classifyBody(extra: Record<string, unknown> = {}): string {
  const frames = Array.from({ length: 5 }, () => Array.from({ length: 2 }, () => [0.5, 0.5, 0.5]));
  return JSON.stringify({ layout: "tiny", fps: 10, frames, ...extra });
}

/** Options of {@link testApp}. */
export interface TestAppOptions {
  /** The admin token configured; `null` for none. @default TOKEN */
  adminToken?: string | null;
  /** The switcher score every request gets (threshold 0.5). @default 0.1 */
  score?: number;
  /** Make the cloud fail with this error. */
  cloudError?: Error;
  /** Database URL. @default ":memory:" */
  databaseUrl?: string;
  /** Queue depth the fake pool reports. @default 3 */
  queued?: number;
}

/** An app ready for `app.request()` or `Deno.serve`. */
export interface TestApp {
  app: ReturnType<typeof createApp>;
  database: Database;
  /** Decisions the classifier produced. */
  rows: DecisionRecord[];
  /** Log lines written (JSON). */
  lines: string[];
  close(): void;
}

/**
 * Build the test app.
 *
 * @param options token, score, cloud failure, database
 * @returns the app, its database, the logged decisions and log lines
 */
export async function testApp(options: TestAppOptions = {}): Promise<TestApp> {
  const database = await openDatabase(options.databaseUrl ?? ":memory:");
  const rows: DecisionRecord[] = [];
  const lines: string[] = [];
  let n = 0;
  const newId = () => `id-${++n}`;
  const inference = fakeInference({
    score: () => options.score ?? 0.1,
    timings: { queueMs: 0.5 },
    stats: () => ({ size: 2, busy: 1, queued: options.queued ?? 3, completed: 5, failed: 1 }),
  });
  const cloud = fakeCloud({ fail: () => options.cloudError ?? null });
  const threshold = () => SWITCHER.threshold;
  const adminToken = options.adminToken === null ? undefined : options.adminToken ?? TOKEN;
  const observability: ObservabilityDeps = {
    metrics: createServiceMetrics({
      pool: () => inference.stats(),
      log: () => ({ written: rows.length, failedWrites: 0, rejected: 0, backlog: 4, lastError: null }),
      versions: () => ({ ...inference.versions(), cloud: "cloud-test" }),
      threshold,
      edgeLocation: "test-location",
    }),
    logger: createLogger({ level: "debug", write: (line) => lines.push(line) }),
    adminToken,
    db: database.db,
    edgeLocation: "test-location",
  };
  const sink = {
    append(r: DecisionRecord) {
      rows.push(r);
      insertDecisions(database.db, [r]).catch((err) => console.error(err));
    },
  };
  const classifier = createHybridClassifier({
    inference,
    cloud,
    log: observeSink(sink, observability.metrics),
    edgeSpec: SPEC,
    cloudSpec: MANIFEST.cloud,
    cloudTimeoutMs: 100,
    takeOffloadToken: () => true,
    edgeLocation: "test-location",
    newId,
  });
  const app = createApp({
    config: { maxBodyBytes: 64 * 1024, maxFrames: 8, maxBatchItems: 3 },
    manifest: MANIFEST,
    classifier,
    inference,
    switcher: () => SWITCHER,
    cloudUrl: "http://127.0.0.1:1",
    decisions: { getDecision: (id) => Promise.resolve(rows.find((r) => r.id === id) ?? null) },
    health: {
      modelsReady: () => true,
      database: () => Promise.resolve(true),
      cloud: () => Promise.resolve(true),
      logBacklog: () => 0,
    },
    newId,
    observability,
  });
  return { app, database, rows, lines, close: () => database.close() };
}
