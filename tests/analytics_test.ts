/**
 * The analytics queries (`db/analytics.ts`) on a hand-built log (`tests/analytics_fixture.ts`), against an
 * in-memory and a file database with real migrations: every figure is exact and worked out by hand.
 */
import assert from "node:assert/strict";
import {
  byEdgeLocation,
  bySwitcherVersion,
  fallbackCauses,
  type Figures,
  labelSeries,
  latencyPercentiles,
  recentDecisions,
  statsReport,
  summary,
  timeSeries,
} from "../db/analytics.ts";
import { type AnalyticsQuery, bucketStarts, parseAnalyticsParams, parseDurationMs } from "../db/analytics_params.ts";
import { type Database, openDatabase } from "../db/client.ts";
import { insertDecisions } from "../db/queries.ts";
import { AppError } from "../errors.ts";
import { H, handBuiltLog, T0 } from "./analytics_fixture.ts";
import { DB_TARGETS } from "./fixtures/db_records.ts";

const Q: AnalyticsQuery = { fromMs: T0, toMs: T0 + 3 * H, bucketMs: H };

/** Figures with every field, from the counts given; the rest follow the definitions in db/analytics.ts. */
function expected(f: Partial<Figures>): Figures {
  return {
    decisions: 0,
    edge: 0,
    cloud: 0,
    edgeFallback: 0,
    offloaded: 0,
    forced: 0,
    shadow: 0,
    pairs: 0,
    agreements: 0,
    cloudCalls: 0,
    cloudErrors: 0,
    fallbacks: 0,
    offloadRate: null,
    shadowRate: null,
    agreementRate: null,
    fallbackRate: null,
    cloudMsSpent: 0,
    meanCloudMs: null,
    savedCloudCalls: 0,
    savedCloudMs: null,
    meanTotalMs: null,
    ...f,
  };
}

// Successful cloud calls in the window: d2 (10 ms), d3 (20), d6 (30, a shadow), d8 (60): mean 30 ms.
const WHOLE = expected({
  decisions: 8,
  edge: 4,
  cloud: 3,
  edgeFallback: 1,
  offloaded: 4,
  forced: 1,
  shadow: 2,
  pairs: 4,
  agreements: 2,
  cloudCalls: 6,
  cloudErrors: 2,
  fallbacks: 2,
  offloadRate: 0.5,
  shadowRate: 0.25,
  agreementRate: 0.5,
  fallbackRate: 0.25,
  cloudMsSpent: 260,
  meanCloudMs: 30,
  savedCloudCalls: 2,
  savedCloudMs: 60,
  meanTotalMs: 37.375,
});
const BUCKET0 = expected({
  decisions: 5,
  edge: 2,
  cloud: 2,
  edgeFallback: 1,
  offloaded: 3,
  pairs: 2,
  agreements: 1,
  cloudCalls: 3,
  cloudErrors: 1,
  fallbacks: 2,
  offloadRate: 0.6,
  shadowRate: 0,
  agreementRate: 0.5,
  fallbackRate: 0.4,
  cloudMsSpent: 130,
  meanCloudMs: 30,
  savedCloudCalls: 2,
  savedCloudMs: 60,
  meanTotalMs: 35.2,
});
const BUCKET1 = expected({
  decisions: 3,
  edge: 2,
  cloud: 1,
  offloaded: 1,
  forced: 1,
  shadow: 2,
  pairs: 2,
  agreements: 1,
  cloudCalls: 3,
  cloudErrors: 1,
  offloadRate: 1 / 3,
  shadowRate: 2 / 3,
  agreementRate: 0.5,
  fallbackRate: 0,
  cloudMsSpent: 130,
  meanCloudMs: 30,
  savedCloudCalls: 0,
  savedCloudMs: 0,
  meanTotalMs: 41,
});

for (const target of DB_TARGETS) {
  const test = (name: string, fn: (database: Database) => Promise<void>) =>
    Deno.test(`analytics, ${target.name}: ${name}`, async () => {
      const { url, options, cleanup } = await target.open();
      const database = await openDatabase(url, options);
      try {
        await insertDecisions(database.db, handBuiltLog());
        await fn(database);
      } finally {
        database.close();
        await cleanup();
      }
    });

  test("timeSeries() gives every bucket of the window, the empty one included", async ({ db }) => {
    const series = await timeSeries(db, Q);
    assert.deepEqual(series.map((b) => b.startMs), [T0, T0 + H, T0 + 2 * H]);
    assert.deepEqual(series[0], { startMs: T0, ...BUCKET0 });
    assert.deepEqual(series[1], { startMs: T0 + H, ...BUCKET1 });
    assert.deepEqual(series[2], { startMs: T0 + 2 * H, ...expected({ meanCloudMs: 30, savedCloudMs: 0 }) });
  });

  test("summary() counts the window only, with the savings against cloud-only", async ({ db }) => {
    assert.deepEqual(await summary(db, Q), WHOLE);
  });

  test("summary() filters by edge location and by switcher version", async ({ db }) => {
    // edge-b: d3 (cloud, agrees, 20 ms), d4 (timeout, 100 ms), d8 (forced cloud, disagrees, 60 ms).
    assert.deepEqual(
      await summary(db, { ...Q, edgeLocation: "edge-b" }),
      expected({
        decisions: 3,
        cloud: 2,
        edgeFallback: 1,
        offloaded: 3,
        forced: 1,
        pairs: 2,
        agreements: 1,
        cloudCalls: 3,
        cloudErrors: 1,
        fallbacks: 1,
        offloadRate: 1,
        shadowRate: 0,
        agreementRate: 0.5,
        fallbackRate: 1 / 3,
        cloudMsSpent: 180,
        meanCloudMs: 40,
        savedCloudCalls: 0,
        savedCloudMs: 0,
        meanTotalMs: 226 / 3,
      }),
    );
    const v2 = await summary(db, { ...Q, switcherVersion: "v2" });
    assert.deepEqual(v2, { ...BUCKET1, meanCloudMs: 45, savedCloudMs: 0 });
    const nothing = await summary(db, { ...Q, edgeLocation: "nowhere" });
    assert.deepEqual(nothing, expected({}));
  });

  test("latencyPercentiles() gives nearest-rank percentiles per route and stage", async ({ db }) => {
    const rows = await latencyPercentiles(db, Q);
    const get = (route: string, stage: string) => rows.find((r) => r.route === route && r.stage === stage);
    // Totals of the window, sorted: 3 15 16 18 21 30 84 112.
    assert.deepEqual(get("all", "total"), {
      route: "all",
      stage: "total",
      count: 8,
      mean: 37.375,
      p50: 18,
      p90: 112,
      p95: 112,
      p99: 112,
      max: 112,
    });
    // Queue times 1..8: rank ceil(0.5 x 8) = 4.
    assert.deepEqual(get("all", "queue"), {
      route: "all",
      stage: "queue",
      count: 8,
      mean: 4.5,
      p50: 4,
      p90: 8,
      p95: 8,
      p99: 8,
      max: 8,
    });
    // Cloud calls: 10 20 30 40 60 100.
    assert.deepEqual(get("all", "cloud"), {
      route: "all",
      stage: "cloud",
      count: 6,
      mean: 260 / 6,
      p50: 30,
      p90: 100,
      p95: 100,
      p99: 100,
      max: 100,
    });
    // Edge route totals: 3 15 18 21 (rank ceil(0.9 x 4) = 4).
    assert.deepEqual(get("edge", "total"), {
      route: "edge",
      stage: "total",
      count: 4,
      mean: 14.25,
      p50: 15,
      p90: 21,
      p95: 21,
      p99: 21,
      max: 21,
    });
    // The shadows' cloud calls belong to the edge route.
    assert.equal(get("edge", "cloud")?.p50, 30);
    assert.equal(get("edge_fallback", "cloud")?.p50, 100);
    assert.equal(get("cloud", "edge")?.p50, 6);
    // all + 3 routes, 4 stages each.
    assert.equal(rows.length, 16);
    assert.deepEqual(rows.slice(0, 4).map((r) => `${r.route}/${r.stage}`), [
      "all/queue",
      "all/edge",
      "all/cloud",
      "all/total",
    ]);
  });

  test("fallbackCauses() lists each cause with its count and rate", async ({ db }) => {
    assert.deepEqual(await fallbackCauses(db, Q), [
      {
        kind: "shadow_failed",
        route: "edge",
        routeReason: "below_threshold",
        cloudError: "OFFLOAD_FAILED",
        count: 1,
        rate: 0.125,
      },
      {
        kind: "budget_exhausted",
        route: "edge",
        routeReason: "budget_exhausted",
        cloudError: null,
        count: 1,
        rate: 0.125,
      },
      {
        kind: "cloud_failed",
        route: "edge_fallback",
        routeReason: "above_threshold",
        cloudError: "OFFLOAD_TIMEOUT",
        count: 1,
        rate: 0.125,
      },
    ]);
    assert.deepEqual(await fallbackCauses(db, { ...Q, switcherVersion: "nowhere" }), []);
  });

  test("labelSeries() counts answers per label per bucket", async ({ db }) => {
    assert.deepEqual(await labelSeries(db, Q), [
      { startMs: T0, label: "jump", count: 1 },
      { startMs: T0, label: "run", count: 2 },
      { startMs: T0, label: "walk", count: 2 },
      { startMs: T0 + H, label: "walk", count: 3 },
    ]);
    // Two-hour buckets (T0 is a multiple of two hours): every decision of the window in the first.
    assert.deepEqual(await labelSeries(db, { ...Q, bucketMs: 2 * H }), [
      { startMs: T0, label: "jump", count: 1 },
      { startMs: T0, label: "run", count: 2 },
      { startMs: T0, label: "walk", count: 5 },
    ]);
  });

  test("bySwitcherVersion() and byEdgeLocation() give each group's figures", async ({ db }) => {
    const versions = await bySwitcherVersion(db, Q);
    assert.deepEqual(versions, [
      {
        switcherVersion: "v1",
        firstMs: T0,
        lastMs: T0 + H - 1,
        meanScore: 0.75,
        minThreshold: 0.6,
        maxThreshold: 0.6,
        ...BUCKET0,
      },
      {
        switcherVersion: "v2",
        firstMs: T0 + H,
        lastMs: T0 + 2 * H - 1,
        meanScore: 0.25,
        minThreshold: 0.5,
        maxThreshold: 0.5,
        ...BUCKET1,
      },
    ]);
    const locations = await byEdgeLocation(db, Q);
    assert.deepEqual(locations.map((l) => l.edgeLocation), ["edge-a", "edge-b"]);
    // edge-a: d1 d2 d5 d6 d7.
    assert.deepEqual(locations[0], {
      edgeLocation: "edge-a",
      firstMs: T0,
      lastMs: T0 + H + 5,
      ...expected({
        decisions: 5,
        edge: 4,
        cloud: 1,
        offloaded: 1,
        shadow: 2,
        pairs: 2,
        agreements: 1,
        cloudCalls: 3,
        cloudErrors: 1,
        fallbacks: 1,
        offloadRate: 0.2,
        shadowRate: 0.4,
        agreementRate: 0.5,
        fallbackRate: 0.2,
        cloudMsSpent: 80,
        meanCloudMs: 30,
        savedCloudCalls: 2,
        savedCloudMs: 60,
        meanTotalMs: 73 / 5,
      }),
    });
    assert.equal(locations[1].decisions, 3);
    assert.equal(locations[1].offloadRate, 1);
  });

  test("recentDecisions() lists the newest first, without vectors", async ({ db }) => {
    const recent = await recentDecisions(db, Q, { limit: 3 });
    assert.deepEqual(recent.map((r) => r.id), ["d8", "d7", "d6"]);
    assert.deepEqual(recent[0], {
      id: "d8",
      createdAt: T0 + 2 * H - 1,
      requestId: "r8",
      edgeLocation: "edge-b",
      route: "cloud",
      routeReason: "forced_cloud",
      shadow: false,
      edgeLabel: "jump",
      cloudLabel: "walk",
      label: "walk",
      prob: 0.875,
      switcherVersion: "v2",
      switcherScore: 0.25,
      switcherThreshold: 0.5,
      cloudError: null,
      cloudMs: 60,
      totalMs: 84,
    });
  });

  test("statsReport() puts every query together", async ({ db }) => {
    const report = await statsReport(db, Q, { recent: 2 });
    assert.deepEqual(report.query, Q);
    assert.deepEqual(report.summary, WHOLE);
    assert.equal(report.series.length, 3);
    assert.equal(report.latency.length, 16);
    assert.equal(report.fallbacks.length, 3);
    assert.equal(report.labels.length, 4);
    assert.deepEqual(report.switcherVersions.map((v) => v.switcherVersion), ["v1", "v2"]);
    assert.deepEqual(report.edgeLocations.map((v) => v.edgeLocation), ["edge-a", "edge-b"]);
    assert.deepEqual(report.recent.map((r) => r.id), ["d8", "d7"]);
    const empty = await statsReport(db, { ...Q, fromMs: T0 + 10 * H, toMs: T0 + 11 * H }, { recent: 0 });
    assert.deepEqual(empty.summary, expected({}));
    assert.deepEqual(empty.latency, []);
    assert.deepEqual(empty.recent, []);
  });
}

const isInvalid = (message: RegExp) => (e: unknown) => {
  assert.ok(e instanceof AppError, String(e));
  assert.equal(e.code, "INVALID_INPUT");
  assert.equal(e.status, 400);
  assert.match(e.message, message);
  return true;
};

Deno.test("parseAnalyticsParams() defaults to the last 24 hours in 15-minute buckets", () => {
  const now = 1_790_000_000_000;
  assert.deepEqual(parseAnalyticsParams({}, { nowMs: now }), {
    fromMs: now - 24 * H,
    toMs: now,
    bucketMs: 900_000,
    edgeLocation: undefined,
    switcherVersion: undefined,
  });
  // A week: the smallest ladder step with at most 96 buckets is 3 hours.
  assert.equal(parseAnalyticsParams({ from: "7d" }, { nowMs: now }).bucketMs, 3 * H);
  assert.equal(parseAnalyticsParams({ from: "1h" }, { nowMs: now }).bucketMs, 60_000);
});

Deno.test("parseAnalyticsParams() reads Unix ms, ISO date-times, durations and filters", () => {
  const q = parseAnalyticsParams({
    from: "2026-01-01T00:00:00Z",
    to: "1767229200000",
    bucket: "5m",
    edgeLocation: "edge-a",
    switcherVersion: "v2",
  }, { nowMs: 0 });
  assert.deepEqual(q, {
    fromMs: 1_767_225_600_000,
    toMs: 1_767_229_200_000,
    bucketMs: 300_000,
    edgeLocation: "edge-a",
    switcherVersion: "v2",
  });
  assert.equal(parseAnalyticsParams({ from: "90m", to: "10800000" }, { nowMs: 0 }).fromMs, 5_400_000);
  assert.equal(parseDurationMs("2500", "bucket"), 2500);
  assert.equal(parseDurationMs("1d", "bucket"), 86_400_000);
});

Deno.test("parseAnalyticsParams() refuses bad windows and buckets with INVALID_INPUT", () => {
  const now = 1_790_000_000_000;
  const parse = (raw: Record<string, string>) => () => parseAnalyticsParams(raw, { nowMs: now });
  assert.throws(parse({ from: "yesterday" }), isInvalid(/Cannot read from: expected Unix milliseconds/));
  assert.throws(parse({ to: "2026-13-45T00:00:00Z" }), isInvalid(/Cannot read to/));
  assert.throws(parse({ from: "2026-01-02T00:00:00Z", to: "2026-01-01T00:00:00Z" }), isInvalid(/must be before/));
  assert.throws(parse({ from: "500d" }), isInvalid(/at most 400 days/));
  assert.throws(parse({ bucket: "0m" }), isInvalid(/must be positive/));
  assert.throws(parse({ bucket: "-5m" }), isInvalid(/expected a duration/));
  assert.throws(parse({ bucket: "5x" }), isInvalid(/expected a duration/));
  assert.throws(parse({ bucket: "500ms" }), isInvalid(/at least 1s/));
  assert.throws(parse({ from: "30d", bucket: "1m" }), isInvalid(/43201 buckets, at most 5000/));
  assert.throws(parse({ edgeLocation: "x".repeat(257) }), isInvalid(/edgeLocation: at most 256/));
});

Deno.test("bucketStarts() aligns buckets to the epoch and covers the window", () => {
  assert.deepEqual(bucketStarts({ fromMs: 1500, toMs: 4000, bucketMs: 1000 }), [1000, 2000, 3000]);
  assert.deepEqual(bucketStarts({ fromMs: 2000, toMs: 3000, bucketMs: 1000 }), [2000]);
});
