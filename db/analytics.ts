/**
 * Analytics over the decision log, written once and used by `deno task analytics` and `GET /v1/stats` (issue 6).
 * Every query takes an {@link AnalyticsQuery} (window `[fromMs, toMs)`, bucket size, optional edge location and
 * switcher version) and goes through drizzle, so every value is a bound parameter.
 *
 * Definitions (the same everywhere):
 * - **offloaded**: the decision chose the cloud (`route` is `cloud`, or `edge_fallback` when the cloud then failed);
 *   offload rate = offloaded / decisions. Forced routes count like any other.
 * - **shadow**: a kept request also sent to the cloud in the background; shadow rate = shadow / decisions.
 * - **pair**: a decision with both an edge and a cloud label (offloaded and answered, or shadowed and answered);
 *   agreement rate = pairs whose labels match / pairs (null without pairs).
 * - **cloud call**: one sequence sent to the cloud model (`cloud_ms` logged, or `shadow`); a batch request's
 *   offloaded sequences share one HTTP call but count one each, as they would if everything went to the cloud.
 * - **savings against cloud-only**: sending every decision to the cloud would make one cloud call per decision, so
 *   saved cloud calls = decisions - cloud calls. Saved cloud milliseconds = saved calls x the mean `cloud_ms` of the
 *   successful cloud calls (a cloud label logged) over the whole window and filters: an estimate of the cloud time
 *   (round trip as the edge measured it) that kept requests did not spend. Null when no call succeeded.
 *   `cloudMsSpent` is what was measured: the sum of `cloud_ms`, failed calls included.
 * - **fallback**: the policy wanted the cloud but the answer came from the edge: the cloud call failed
 *   (`edge_fallback`), the offload budget was spent (`budget_exhausted`) or the cloud was known down
 *   (`cloud_unavailable`). {@link fallbackCauses} also lists failed shadow calls.
 * - **percentiles**: nearest rank: the p-th percentile is the smallest value with at least p% of values at or below
 *   it, counted in fine bins (see {@link latencyPercentiles}: within 0.5% above 1 ms).
 *
 * @module
 */
import { and, desc, eq, gte, isNotNull, lt, type SQL, sql } from "drizzle-orm";
import { type AnalyticsQuery, bucketStarts } from "./analytics_params.ts";
import type { Db } from "./client.ts";
import { run } from "./queries.ts";
import { decisions as d, ROUTES } from "./schema.ts";
import { type TierFigures, tierFigures } from "./tier_analytics.ts";

export { type AnalyticsQuery, parseAnalyticsParams, type RawAnalyticsParams } from "./analytics_params.ts";

/** Additive counts and sums of a set of decisions (what SQL aggregates; figures are derived from them). */
interface RawFigures {
  decisions: number;
  edge: number;
  cloud: number;
  edgeFallback: number;
  forced: number;
  shadow: number;
  pairs: number;
  agreements: number;
  cloudCalls: number;
  cloudOk: number;
  cloudOkMs: number;
  cloudMsSpent: number;
  cloudErrors: number;
  fallbacks: number;
  totalMsSum: number;
}

/** Figures of a set of decisions (a window, a bucket, a switcher version, an edge location). */
export interface Figures {
  decisions: number;
  /** Decisions per route. */
  edge: number;
  cloud: number;
  edgeFallback: number;
  /** `cloud` + `edgeFallback`: the decisions that chose the cloud. */
  offloaded: number;
  forced: number;
  shadow: number;
  /** Decisions with both an edge and a cloud label. */
  pairs: number;
  /** Pairs whose edge and cloud labels match. */
  agreements: number;
  /** Sequences sent to the cloud model (offloads and shadows, failed ones included). */
  cloudCalls: number;
  cloudErrors: number;
  fallbacks: number;
  /** offloaded / decisions; null without decisions. */
  offloadRate: number | null;
  /** shadow / decisions. */
  shadowRate: number | null;
  /** agreements / pairs; null without pairs. */
  agreementRate: number | null;
  /** fallbacks / decisions. */
  fallbackRate: number | null;
  /** Sum of the logged cloud round trips, in milliseconds. */
  cloudMsSpent: number;
  /** Mean round trip of a successful cloud call over the window and filters (the unit cost of the estimate). */
  meanCloudMs: number | null;
  /** decisions - cloudCalls: calls a cloud-only deployment would have made and this one did not. */
  savedCloudCalls: number;
  /** savedCloudCalls x meanCloudMs; null when no cloud call succeeded. */
  savedCloudMs: number | null;
  /** Mean end-to-end time of a decision, in milliseconds. */
  meanTotalMs: number | null;
}

/** Figures of one time bucket. */
export interface BucketFigures extends Figures {
  /** Bucket start, Unix milliseconds (a multiple of the bucket size). */
  startMs: number;
}

/** Figures of one switcher version. */
export interface SwitcherVersionFigures extends Figures {
  switcherVersion: string;
  firstMs: number;
  lastMs: number;
  meanScore: number;
  minThreshold: number;
  maxThreshold: number;
}

/** Figures of one edge location. */
export interface EdgeLocationFigures extends Figures {
  edgeLocation: string;
  firstMs: number;
  lastMs: number;
}

/** The stages of a decision's latency. */
export const STAGES = ["queue", "edge", "cloud", "total"] as const;
/** A latency stage: waiting for a worker, edge work (pre-processing, edge model, switcher), the cloud call, all. */
export type Stage = (typeof STAGES)[number];

/** Latency percentiles of one route (or `all`) and stage, in milliseconds. */
export interface LatencyRow {
  route: "all" | (typeof ROUTES)[number];
  stage: Stage;
  count: number;
  mean: number;
  p50: number;
  p90: number;
  p95: number;
  p99: number;
  max: number;
}

/** What kept an answer at the edge when the cloud was wanted, or a shadow call that failed. */
export type FallbackKind = "cloud_failed" | "budget_exhausted" | "cloud_unavailable" | "shadow_failed";

/** One cause of fallbacks, with its count. */
export interface FallbackCause {
  kind: FallbackKind;
  route: string;
  routeReason: string;
  /** The cloud error code, e.g. `OFFLOAD_TIMEOUT`; null when no call was made. */
  cloudError: string | null;
  count: number;
  /** count / decisions in the window. */
  rate: number;
}

/** Answers per label in one bucket. */
export interface LabelCount {
  startMs: number;
  label: string;
  count: number;
}

/** A recent decision, without its vectors. */
export interface RecentDecision {
  id: string;
  createdAt: number;
  requestId: string;
  edgeLocation: string;
  route: string;
  routeReason: string;
  shadow: boolean;
  edgeLabel: string;
  cloudLabel: string | null;
  label: string;
  prob: number;
  switcherVersion: string;
  switcherScore: number;
  switcherThreshold: number;
  cloudError: string | null;
  cloudMs: number | null;
  totalMs: number;
}

/** Everything `GET /v1/stats` and `deno task analytics` report. */
export interface StatsReport {
  query: AnalyticsQuery;
  summary: Figures;
  series: BucketFigures[];
  latency: LatencyRow[];
  fallbacks: FallbackCause[];
  labels: LabelCount[];
  switcherVersions: SwitcherVersionFigures[];
  edgeLocations: EdgeLocationFigures[];
  recent: RecentDecision[];
  /** The tiers past the edge, when more than two served in the window (db/tier_analytics.ts); else empty. */
  tiers: TierFigures[];
}

/** The window and filters as a WHERE condition. */
function where(q: AnalyticsQuery, extra?: SQL): SQL {
  return and(
    gte(d.createdAt, q.fromMs),
    lt(d.createdAt, q.toMs),
    q.edgeLocation !== undefined ? eq(d.edgeLocation, q.edgeLocation) : undefined,
    q.switcherVersion !== undefined ? eq(d.switcherVersion, q.switcherVersion) : undefined,
    extra,
  )!;
}

/** The bucket start of a row (integer arithmetic: `%` works on integers in SQLite whatever the bound type). */
function bucketOf(q: AnalyticsQuery): SQL<number> {
  return sql<number>`(${d.createdAt} - (${d.createdAt} % ${q.bucketMs}))`;
}

const FALLBACK_REASONS = sql.raw(`('budget_exhausted', 'cloud_unavailable')`);

/** The aggregate columns of {@link RawFigures}; `total()` is 0 (not NULL) over no rows. */
const RAW_COLUMNS = {
  decisions: sql<number>`count(*)`,
  edge: sql<number>`total(${d.route} = 'edge')`,
  cloud: sql<number>`total(${d.route} = 'cloud')`,
  edgeFallback: sql<number>`total(${d.route} = 'edge_fallback')`,
  forced: sql<number>`total(${d.forced})`,
  shadow: sql<number>`total(${d.shadow})`,
  pairs: sql<number>`total(${d.cloudLabel} IS NOT NULL)`,
  agreements: sql<number>`total(${d.cloudLabel} = ${d.edgeLabel})`,
  cloudCalls: sql<number>`total(${d.cloudMs} IS NOT NULL OR ${d.shadow} = 1)`,
  cloudOk: sql<number>`total(${d.cloudLabel} IS NOT NULL AND ${d.cloudMs} IS NOT NULL)`,
  cloudOkMs: sql<number>`total(CASE WHEN ${d.cloudLabel} IS NOT NULL THEN ${d.cloudMs} END)`,
  cloudMsSpent: sql<number>`total(${d.cloudMs})`,
  cloudErrors: sql<number>`total(${d.cloudError} IS NOT NULL)`,
  fallbacks: sql<number>`total(${d.route} = 'edge_fallback' OR ${d.routeReason} IN ${FALLBACK_REASONS})`,
  totalMsSum: sql<number>`total(${d.totalMs})`,
};

const RAW_KEYS = Object.keys(RAW_COLUMNS) as (keyof RawFigures)[];

function toRaw(row: Record<string, unknown>): RawFigures {
  const out = {} as RawFigures;
  for (const k of RAW_KEYS) out[k] = Number(row[k] ?? 0);
  return out;
}

function sumRaw(rows: RawFigures[]): RawFigures {
  const out = Object.fromEntries(RAW_KEYS.map((k) => [k, 0])) as unknown as RawFigures;
  for (const r of rows) for (const k of RAW_KEYS) out[k] += r[k];
  return out;
}

/** The mean successful cloud round trip over rows that partition the window: the savings' unit cost. */
function meanCloudMsOf(rows: RawFigures[]): number | null {
  const all = sumRaw(rows);
  return all.cloudOk > 0 ? all.cloudOkMs / all.cloudOk : null;
}

const ratio = (a: number, b: number): number | null => (b > 0 ? a / b : null);

/**
 * Derive figures from counts and sums.
 *
 * @param raw the counts and sums
 * @param meanCloudMs the unit cost of a cloud call for the savings estimate (null: unknown)
 * @returns the figures
 */
function figures(raw: RawFigures, meanCloudMs: number | null): Figures {
  const offloaded = raw.cloud + raw.edgeFallback;
  const savedCloudCalls = raw.decisions - raw.cloudCalls;
  return {
    decisions: raw.decisions,
    edge: raw.edge,
    cloud: raw.cloud,
    edgeFallback: raw.edgeFallback,
    offloaded,
    forced: raw.forced,
    shadow: raw.shadow,
    pairs: raw.pairs,
    agreements: raw.agreements,
    cloudCalls: raw.cloudCalls,
    cloudErrors: raw.cloudErrors,
    fallbacks: raw.fallbacks,
    offloadRate: ratio(offloaded, raw.decisions),
    shadowRate: ratio(raw.shadow, raw.decisions),
    agreementRate: ratio(raw.agreements, raw.pairs),
    fallbackRate: ratio(raw.fallbacks, raw.decisions),
    cloudMsSpent: raw.cloudMsSpent,
    meanCloudMs,
    savedCloudCalls,
    savedCloudMs: meanCloudMs === null ? null : savedCloudCalls * meanCloudMs,
    meanTotalMs: ratio(raw.totalMsSum, raw.decisions),
  };
}

/** The time series and the whole window's figures, from one grouped scan (the buckets partition the window). */
async function seriesAndSummary(db: Db, q: AnalyticsQuery): Promise<{ series: BucketFigures[]; summary: Figures }> {
  const bucket = bucketOf(q);
  const rows = await run(
    "compute the time series",
    () => db.select({ startMs: bucket, ...RAW_COLUMNS }).from(d).where(where(q)).groupBy(bucket).orderBy(bucket),
  );
  const byStart = new Map(rows.map((r) => [Number(r.startMs), toRaw(r)]));
  const raws = [...byStart.values()];
  const mean = meanCloudMsOf(raws);
  const empty = toRaw({});
  return {
    series: bucketStarts(q).map((startMs) => ({ startMs, ...figures(byStart.get(startMs) ?? empty, mean) })),
    summary: figures(sumRaw(raws), mean),
  };
}

/**
 * Offload, shadow, agreement, fallback and savings figures per time bucket, every bucket of the window included
 * (empty ones with zero counts and null rates).
 *
 * @param db the database
 * @param q the window, bucket and filters
 * @returns one entry per bucket, oldest first
 */
export async function timeSeries(db: Db, q: AnalyticsQuery): Promise<BucketFigures[]> {
  return (await seriesAndSummary(db, q)).series;
}

/**
 * Figures of the whole window and filters.
 *
 * @param db the database
 * @param q the window and filters (the bucket only groups the scan)
 * @returns the figures
 */
export async function summary(db: Db, q: AnalyticsQuery): Promise<Figures> {
  return (await seriesAndSummary(db, q)).summary;
}

/**
 * Figures per switcher version in the window, most decisions first.
 *
 * @param db the database
 * @param q the window and filters (the bucket is not used)
 * @returns one entry per version
 */
export async function bySwitcherVersion(db: Db, q: AnalyticsQuery): Promise<SwitcherVersionFigures[]> {
  const rows = await run(
    "compute figures per switcher version",
    () =>
      db.select({
        switcherVersion: d.switcherVersion,
        firstMs: sql<number>`min(${d.createdAt})`,
        lastMs: sql<number>`max(${d.createdAt})`,
        meanScore: sql<number>`avg(${d.switcherScore})`,
        minThreshold: sql<number>`min(${d.switcherThreshold})`,
        maxThreshold: sql<number>`max(${d.switcherThreshold})`,
        ...RAW_COLUMNS,
      }).from(d).where(where(q)).groupBy(d.switcherVersion).orderBy(desc(sql`count(*)`), d.switcherVersion),
  );
  const mean = meanCloudMsOf(rows.map(toRaw));
  return rows.map((r) => ({
    switcherVersion: r.switcherVersion,
    firstMs: Number(r.firstMs),
    lastMs: Number(r.lastMs),
    meanScore: Number(r.meanScore),
    minThreshold: Number(r.minThreshold),
    maxThreshold: Number(r.maxThreshold),
    ...figures(toRaw(r), mean),
  }));
}

/**
 * Figures per edge location in the window (several edge apps may share one database), most decisions first.
 *
 * @param db the database
 * @param q the window and filters (the bucket is not used)
 * @returns one entry per location
 */
export async function byEdgeLocation(db: Db, q: AnalyticsQuery): Promise<EdgeLocationFigures[]> {
  const rows = await run(
    "compute figures per edge location",
    () =>
      db.select({
        edgeLocation: d.edgeLocation,
        firstMs: sql<number>`min(${d.createdAt})`,
        lastMs: sql<number>`max(${d.createdAt})`,
        ...RAW_COLUMNS,
      }).from(d).where(where(q)).groupBy(d.edgeLocation).orderBy(desc(sql`count(*)`), d.edgeLocation),
  );
  const mean = meanCloudMsOf(rows.map(toRaw));
  return rows.map((r) => ({
    edgeLocation: r.edgeLocation,
    firstMs: Number(r.firstMs),
    lastMs: Number(r.lastMs),
    ...figures(toRaw(r), mean),
  }));
}

/** The percentiles reported, as fractions. */
const PERCENTILES = { p50: 0.5, p90: 0.9, p95: 0.95, p99: 0.99 } as const;

/** The logged columns of each stage. */
const STAGE_COLUMNS = { queue: d.queueMs, edge: d.edgeMs, cloud: d.cloudMs, total: d.totalMs } as const;

/**
 * Values grouped for percentiles: to 0.01 ms under 10 ms, 0.1 ms under 100 ms, 1 ms under 1 s, 10 ms above (half a
 * bin is at most 0.5% of a value above 1 ms). Monotone in the value, so bins sorted by key hold the values in order.
 */
function binOf(column: (typeof STAGE_COLUMNS)[Stage]): SQL<number> {
  return sql<number>`CASE WHEN ${column} < 10 THEN round(${column}, 2) WHEN ${column} < 100 THEN round(${column}, 1)
    WHEN ${column} < 1000 THEN round(${column}) ELSE round(${column} / 10) * 10 END`;
}

interface Bin {
  key: number;
  n: number;
  sum: number;
  lo: number;
  hi: number;
}

/** The value of rank `k` (1-based) in sorted bins: exact at a bin's ends, else the bin's key within its range. */
function valueAtRank(bins: Bin[], k: number): number {
  let before = 0;
  for (const b of bins) {
    if (k <= before + b.n) {
      if (k === before + 1) return b.lo;
      if (k === before + b.n) return b.hi;
      return Math.min(b.hi, Math.max(b.lo, b.key));
    }
    before += b.n;
  }
  return bins.at(-1)?.hi ?? NaN;
}

function latencyRow(route: LatencyRow["route"], stage: Stage, bins: Bin[]): LatencyRow {
  bins.sort((a, b) => a.key - b.key);
  const count = bins.reduce((a, b) => a + b.n, 0);
  const at = (p: number) => valueAtRank(bins, Math.max(1, Math.ceil(p * count - 1e-9)));
  return {
    route,
    stage,
    count,
    mean: bins.reduce((a, b) => a + b.sum, 0) / count,
    p50: at(PERCENTILES.p50),
    p90: at(PERCENTILES.p90),
    p95: at(PERCENTILES.p95),
    p99: at(PERCENTILES.p99),
    max: Math.max(...bins.map((b) => b.hi)),
  };
}

/**
 * Latency percentiles per route (and all routes) and stage, nearest rank. Values are counted in bins of 0.01 ms
 * under 10 ms, 0.1 ms under 100 ms, 1 ms under 1 s and 10 ms above, one grouped scan per stage and no sort of the
 * window: a percentile is exact when its rank falls on the first or last value of a bin (always, when values
 * repeat at that resolution) and otherwise within half a bin (0.005 ms under 10 ms, 0.05 ms under 100 ms, 0.5 ms
 * under 1 s, 5 ms above: at most 0.5% above 1 ms). Means and maxima are exact. The cloud stage
 * covers decisions with a logged cloud call only.
 *
 * @param db the database
 * @param q the window and filters (the bucket is not used)
 * @returns one row per route and stage with values, `all` first, then routes in schema order, stages in
 *   {@link STAGES} order
 */
export async function latencyPercentiles(db: Db, q: AnalyticsQuery): Promise<LatencyRow[]> {
  const out: LatencyRow[] = [];
  for (const stage of STAGES) {
    const column = STAGE_COLUMNS[stage];
    const bin = binOf(column);
    const rows = await run(
      "compute latency percentiles",
      () =>
        db.select({
          route: d.route,
          key: bin,
          n: sql<number>`count(*)`,
          sum: sql<number>`total(${column})`,
          lo: sql<number>`min(${column})`,
          hi: sql<number>`max(${column})`,
        }).from(d).where(where(q, isNotNull(column))).groupBy(d.route, bin),
    );
    if (rows.length === 0) continue;
    const bins = rows.map((r) => ({
      route: r.route,
      key: Number(r.key),
      n: Number(r.n),
      sum: Number(r.sum),
      lo: Number(r.lo),
      hi: Number(r.hi),
    }));
    const all = new Map<number, Bin>();
    for (const b of bins) {
      const m = all.get(b.key);
      if (!m) all.set(b.key, { key: b.key, n: b.n, sum: b.sum, lo: b.lo, hi: b.hi });
      else (m.n += b.n), (m.sum += b.sum), (m.lo = Math.min(m.lo, b.lo)), (m.hi = Math.max(m.hi, b.hi));
    }
    out.push(latencyRow("all", stage, [...all.values()]));
    for (const route of ROUTES) {
      const mine = bins.filter((b) => b.route === route);
      if (mine.length > 0) out.push(latencyRow(route, stage, mine));
    }
  }
  const routeOrder = ["all", ...ROUTES] as string[];
  return out.sort((a, b) =>
    routeOrder.indexOf(a.route) - routeOrder.indexOf(b.route) || STAGES.indexOf(a.stage) - STAGES.indexOf(b.stage)
  );
}

function fallbackKind(route: string, reason: string): FallbackKind {
  // An open circuit answers from the edge flagged as a fallback, with reason cloud_unavailable: the reason says more.
  if (reason === "budget_exhausted" || reason === "cloud_unavailable") return reason;
  if (route === "edge_fallback") return "cloud_failed";
  return "shadow_failed";
}

/**
 * Fallbacks and their causes (route, route reason, cloud error code), and failed shadow calls, most frequent first.
 *
 * @param db the database
 * @param q the window and filters (the bucket is not used)
 * @returns one entry per cause; `rate` is over all decisions in the window
 */
export async function fallbackCauses(db: Db, q: AnalyticsQuery): Promise<FallbackCause[]> {
  const isCause =
    sql`(${d.route} = 'edge_fallback' OR ${d.routeReason} IN ${FALLBACK_REASONS} OR ${d.cloudError} IS NOT NULL)`;
  const [rows, [total]] = await run("compute fallback causes", () =>
    Promise.all([
      db.select({ route: d.route, routeReason: d.routeReason, cloudError: d.cloudError, count: sql<number>`count(*)` })
        .from(d).where(where(q, isCause)).groupBy(d.route, d.routeReason, d.cloudError)
        .orderBy(desc(sql`count(*)`), d.route, d.routeReason, d.cloudError),
      db.select({ n: sql<number>`count(*)` }).from(d).where(where(q)),
    ]));
  return rows.map((r) => ({
    kind: fallbackKind(r.route, r.routeReason),
    route: r.route,
    routeReason: r.routeReason,
    cloudError: r.cloudError,
    count: Number(r.count),
    rate: Number(r.count) / Number(total.n),
  }));
}

/**
 * Answers per label per bucket (non-zero counts only), oldest bucket first, labels in name order.
 *
 * @param db the database
 * @param q the window, bucket and filters
 * @returns the counts
 */
export async function labelSeries(db: Db, q: AnalyticsQuery): Promise<LabelCount[]> {
  const bucket = bucketOf(q);
  const rows = await run(
    "compute the label distribution",
    () =>
      db.select({ startMs: bucket, label: d.label, count: sql<number>`count(*)` }).from(d).where(where(q))
        .groupBy(bucket, d.label).orderBy(bucket, d.label),
  );
  return rows.map((r) => ({ startMs: Number(r.startMs), label: r.label, count: Number(r.count) }));
}

/**
 * The most recent decisions in the window, newest first, without their vectors.
 *
 * @param db the database
 * @param q the window and filters
 * @param options `limit` (default 20)
 * @returns the decisions
 */
export async function recentDecisions(
  db: Db,
  q: AnalyticsQuery,
  options: { limit?: number } = {},
): Promise<RecentDecision[]> {
  return await run(
    "list recent decisions",
    () =>
      db.select({
        id: d.id,
        createdAt: d.createdAt,
        requestId: d.requestId,
        edgeLocation: d.edgeLocation,
        route: d.route,
        routeReason: d.routeReason,
        shadow: d.shadow,
        edgeLabel: d.edgeLabel,
        cloudLabel: d.cloudLabel,
        label: d.label,
        prob: d.prob,
        switcherVersion: d.switcherVersion,
        switcherScore: d.switcherScore,
        switcherThreshold: d.switcherThreshold,
        cloudError: d.cloudError,
        cloudMs: d.cloudMs,
        totalMs: d.totalMs,
      }).from(d).where(where(q)).orderBy(desc(d.createdAt), desc(d.id)).limit(options.limit ?? 20),
  );
}

/**
 * Every analytics figure for one query: what `GET /v1/stats` returns and `deno task analytics` prints.
 *
 * @param db the database
 * @param q the window, bucket and filters
 * @param options `recent`: how many recent decisions to include (default 20, 0 for none)
 * @returns the report
 * @example
 * const report = await statsReport(database.db, parseAnalyticsParams({ from: "24h" }, { nowMs: Date.now() }));
 */
export async function statsReport(db: Db, q: AnalyticsQuery, options: { recent?: number } = {}): Promise<StatsReport> {
  const { series, summary } = await seriesAndSummary(db, q);
  const latency = await latencyPercentiles(db, q);
  const fallbacks = await fallbackCauses(db, q);
  const labels = await labelSeries(db, q);
  const switcherVersions = await bySwitcherVersion(db, q);
  const edgeLocations = await byEdgeLocation(db, q);
  const recent = options.recent === 0 ? [] : await recentDecisions(db, q, { limit: options.recent ?? 20 });
  const tiers = await tierFigures(db, q);
  return {
    query: q,
    summary,
    series,
    latency,
    fallbacks,
    labels,
    switcherVersions,
    edgeLocations,
    recent,
    tiers,
  };
}
