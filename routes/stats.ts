/**
 * `GET /v1/stats`: the analytics report of `db/analytics.ts` (the same functions as `deno task analytics`) for a
 * window, bucket size and filters, plus the versions in service. Guarded by the admin token.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { parseAnalyticsParams, type StatsReport, statsReport } from "../db/analytics.ts";
import type { Db } from "../db/client.ts";
import { AppError } from "../errors.ts";
import type { ServiceVersions } from "../observability/metrics.ts";
import { requireAdmin } from "./admin_auth.ts";
import { ErrorSchema, rateLimitedResponse } from "./schemas.ts";
import { validationHook } from "./validation.ts";

/** What the stats route needs. */
export interface StatsDeps {
  /** The decision database. */
  db: Db;
  /** The admin token; undefined refuses every call. */
  adminToken: string | undefined;
  /** The versions in service. */
  versions(): ServiceVersions;
  /** The switcher threshold in force. */
  threshold(): number;
  /** This app's edge location. */
  edgeLocation: string;
  /** The clock, Unix milliseconds. @default Date.now */
  now?: () => number;
}

/** Most recent decisions one call may ask for. */
export const MAX_RECENT = 200;

/**
 * How long a report is reused for the same parameters, in milliseconds. Dashboards refresh every few seconds and
 * a report over a large window scans the log several times; concurrent identical calls share one computation, and
 * a relative window (`from=24h`, no `to`) is at most this much older than `generatedAt` says.
 */
export const STATS_CACHE_MS = 2000;
/** Most cached reports (distinct parameter sets). */
const STATS_CACHE_ENTRIES = 64;

const rate = z.number().nullable();
const FiguresSchema = z.object({
  decisions: z.number().int(),
  edge: z.number().int(),
  cloud: z.number().int(),
  edgeFallback: z.number().int(),
  offloaded: z.number().int().openapi({ description: "cloud + edgeFallback: decisions that chose the cloud" }),
  forced: z.number().int(),
  shadow: z.number().int(),
  pairs: z.number().int().openapi({ description: "Decisions with both an edge and a cloud label" }),
  agreements: z.number().int(),
  cloudCalls: z.number().int().openapi({ description: "Sequences sent to the cloud (offloads and shadows)" }),
  cloudErrors: z.number().int(),
  fallbacks: z.number().int(),
  offloadRate: rate,
  shadowRate: rate,
  agreementRate: rate,
  fallbackRate: rate,
  cloudMsSpent: z.number(),
  meanCloudMs: z.number().nullable().openapi({ description: "Mean successful cloud round trip (unit cost)" }),
  savedCloudCalls: z.number().int().openapi({ description: "decisions - cloudCalls, against cloud-only" }),
  savedCloudMs: z.number().nullable().openapi({ description: "savedCloudCalls x meanCloudMs (an estimate)" }),
  meanTotalMs: z.number().nullable(),
}).openapi("Figures");

const StatsSchema = z.object({
  generatedAt: z.number().int().openapi({ description: "Unix milliseconds" }),
  queryMs: z.number().openapi({ description: "Time the queries took, in milliseconds" }),
  active: z.object({
    edge: z.string(),
    switcher: z.string(),
    cloud: z.string(),
    threshold: z.number(),
    edgeLocation: z.string(),
  }).openapi({ description: "What this app serves now" }),
  query: z.object({
    fromMs: z.number().int(),
    toMs: z.number().int(),
    bucketMs: z.number().int(),
    edgeLocation: z.string().optional(),
    switcherVersion: z.string().optional(),
  }),
  summary: FiguresSchema,
  series: z.array(FiguresSchema.extend({ startMs: z.number().int() })),
  latency: z.array(z.object({
    route: z.enum(["all", "edge", "cloud", "edge_fallback"]),
    stage: z.enum(["queue", "edge", "cloud", "total"]),
    count: z.number().int(),
    mean: z.number(),
    p50: z.number(),
    p90: z.number(),
    p95: z.number(),
    p99: z.number(),
    max: z.number(),
  })),
  fallbacks: z.array(z.object({
    kind: z.enum(["cloud_failed", "budget_exhausted", "cloud_unavailable", "shadow_failed"]),
    route: z.string(),
    routeReason: z.string(),
    cloudError: z.string().nullable(),
    count: z.number().int(),
    rate: z.number(),
  })),
  labels: z.array(z.object({ startMs: z.number().int(), label: z.string(), count: z.number().int() })),
  switcherVersions: z.array(FiguresSchema.extend({
    switcherVersion: z.string(),
    firstMs: z.number().int(),
    lastMs: z.number().int(),
    meanScore: z.number(),
    minThreshold: z.number(),
    maxThreshold: z.number(),
  })),
  edgeLocations: z.array(FiguresSchema.extend({
    edgeLocation: z.string(),
    firstMs: z.number().int(),
    lastMs: z.number().int(),
  })),
  recent: z.array(z.object({
    id: z.string(),
    createdAt: z.number().int(),
    requestId: z.string(),
    edgeLocation: z.string(),
    route: z.string(),
    routeReason: z.string(),
    shadow: z.boolean(),
    edgeLabel: z.string(),
    cloudLabel: z.string().nullable(),
    label: z.string(),
    prob: z.number(),
    switcherVersion: z.string(),
    switcherScore: z.number(),
    switcherThreshold: z.number(),
    cloudError: z.string().nullable(),
    cloudMs: z.number().nullable(),
    totalMs: z.number(),
  })),
  tiers: z.array(z.object({
    tier: z.number().int(),
    name: z.string(),
    calls: z.number().int(),
    explored: z.number().int(),
    answered: z.number().int(),
    share: z.number(),
    errors: z.number().int(),
    agreement: z.number().nullable(),
    meanMs: z.number().nullable(),
    costMs: z.number(),
    price: z.number(),
  })).openapi({ description: "Tiers past the edge (more than two configured): share, agreement, errors and cost" }),
}).openapi("Stats");

const QuerySchema = z.object({
  from: z.string().max(64).optional().openapi({
    description: "Start (inclusive): Unix ms, ISO 8601 date-time, or a duration before `to` (24h, 7d). Default 24h",
    example: "24h",
  }),
  to: z.string().max(64).optional().openapi({ description: "End (exclusive): Unix ms or ISO 8601. Default now" }),
  bucket: z.string().max(32).optional().openapi({
    description: "Bucket size: 30s, 5m, 1h, 1d or ms; at least 1s, at most 5000 buckets. Default: about 96 buckets",
    example: "1h",
  }),
  edgeLocation: z.string().max(256).optional().openapi({ description: "Keep one edge location" }),
  switcherVersion: z.string().max(256).optional().openapi({ description: "Keep one switcher version" }),
  recent: z.string().max(8).optional().openapi({ description: `Recent decisions to list, 0 to ${MAX_RECENT}` }),
});

const route = createRoute({
  method: "get",
  path: "/",
  summary: "Analytics of the decision log",
  description: "Offload, shadow and agreement rates over time, latency percentiles per route and stage, cloud " +
    "calls and milliseconds saved against cloud-only, fallback causes, labels over time, per switcher version and " +
    "edge location, recent decisions. Requires `Authorization: Bearer <ADMIN_TOKEN>`.",
  operationId: "getStats",
  security: [{ bearer: [] }],
  request: { query: QuerySchema },
  responses: {
    200: { content: { "application/json": { schema: StatsSchema } }, description: "The report" },
    400: { content: { "application/json": { schema: ErrorSchema } }, description: "Invalid window or bucket" },
    401: { content: { "application/json": { schema: ErrorSchema } }, description: "Missing or wrong token" },
    ...rateLimitedResponse,
    503: { content: { "application/json": { schema: ErrorSchema } }, description: "Database unavailable" },
  },
});

function parseRecent(text: string | undefined): number {
  if (text === undefined || text === "") return 20;
  const n = Number(text);
  if (!/^\d+$/.test(text) || n > MAX_RECENT) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot read recent: expected an integer from 0 to ${MAX_RECENT}, got "${text}"`,
    );
  }
  return n;
}

/**
 * The stats sub-app, mounted at `/v1/stats`.
 *
 * @param deps the database, the token, what is in service
 * @returns the sub-app
 */
export function statsRoutes(deps: StatsDeps): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const now = deps.now ?? Date.now;
  const cache = new Map<
    string,
    { expiresAt: number; result: Promise<{ report: StatsReport; queryMs: number; generatedAt: number }> }
  >();

  function cached(key: string, generatedAt: number, compute: () => Promise<StatsReport>) {
    const t = performance.now();
    const hit = cache.get(key);
    if (hit && hit.expiresAt > t) return hit.result;
    for (const [k, v] of cache) if (v.expiresAt <= t || cache.size >= STATS_CACHE_ENTRIES) cache.delete(k);
    const result = compute().then((report) => ({
      report,
      generatedAt,
      queryMs: Math.round((performance.now() - t) * 100) / 100,
    }));
    // Shared while it runs, then reused for STATS_CACHE_MS after it is done (a report slower than that is not
    // recomputed by every caller that arrives meanwhile).
    const entry = { expiresAt: Infinity, result };
    cache.set(key, entry);
    result.then(() => (entry.expiresAt = performance.now() + STATS_CACHE_MS), () => cache.delete(key));
    return result;
  }

  // The scheme the admin routes name too (`bearer`): `Authorization: Bearer <ADMIN_TOKEN>`.
  app.openAPIRegistry.registerComponent("securitySchemes", "bearer", { type: "http", scheme: "bearer" });
  app.use("*", requireAdmin(deps.adminToken));
  app.openapi(route, async (c) => {
    const raw = c.req.valid("query");
    const recent = parseRecent(raw.recent);
    const nowMs = now();
    const query = parseAnalyticsParams(raw, { nowMs });
    const key = JSON.stringify([raw.from, raw.to, raw.bucket, raw.edgeLocation, raw.switcherVersion, recent]);
    const { report, queryMs, generatedAt } = await cached(key, nowMs, () => statsReport(deps.db, query, { recent }));
    c.header("Cache-Control", "no-store");
    return c.json({
      generatedAt,
      queryMs,
      active: { ...deps.versions(), threshold: deps.threshold(), edgeLocation: deps.edgeLocation },
      ...report,
    }, 200);
  });
  return app;
}
