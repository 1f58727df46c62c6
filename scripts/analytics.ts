/**
 * `deno task analytics [flags]`: the analytics report of the decision log in the terminal (tables), as JSON
 * (`--json`) or as CSV (`--csv`), from the same queries as `GET /v1/stats` (`db/analytics.ts`). Reads
 * `DATABASE_URL` (and `DATABASE_AUTH_TOKEN`) like the service, or `--db`.
 *
 * Exit codes: 0 done, 1 the database failed, 2 bad flags or parameters, or a local database that does not exist
 * (the report never creates one).
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { type Figures, parseAnalyticsParams, type StatsReport, statsReport } from "../db/analytics.ts";
import { openDatabase } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { parseFlags, usageError } from "./cli.ts";
import {
  type Cell,
  type Column,
  csvValue,
  formatCsv,
  formatTable,
  formatValue,
  type Kind,
  type Table,
} from "./table.ts";

const USAGE = `usage: deno task analytics [--from 24h|ISO|UNIX_MS] [--to ISO|UNIX_MS] [--bucket 15m]
                          [--edge-location NAME] [--switcher-version V] [--recent N]
                          [--report ${"summary|series|latency|fallbacks|labels|versions|locations|recent"}]
                          [--json | --csv] [--db URL]
  Analytics of the decision log (offload, shadow, agreement, latency, savings against cloud-only, fallbacks,
  labels, per switcher version and edge location). Window [from, to), default the last 24 hours; bucket default
  about 96 buckets. Reads DATABASE_URL unless --db is given. Tables by default; --json prints the report as
  GET /v1/stats returns it; --csv prints one CSV block per section (labels per bucket), or one with --report.`;

/** The report's sections, in print order. */
const SECTIONS = [
  "summary",
  "series",
  "latency",
  "fallbacks",
  "labels",
  "versions",
  "locations",
  "tiers",
  "recent",
] as const;
type Section = (typeof SECTIONS)[number];

/** The kind of a {@link Figures} field, from its name: rates end in `Rate`, milliseconds in `Ms` or `MsSpent`. */
function figureKind(key: string): Kind {
  return key.endsWith("Rate") ? "rate" : /Ms(Spent)?$/.test(key) ? "ms" : "count";
}

/** The figures of every series bucket, switcher version and edge location, with their short text headings. */
const FIGURE_COLUMNS: { key: keyof Figures; textName?: string }[] = [
  { key: "decisions" },
  { key: "offloadRate", textName: "offload" },
  { key: "shadowRate", textName: "shadow" },
  { key: "agreementRate", textName: "agree" },
  { key: "fallbackRate", textName: "fallback" },
  { key: "cloudCalls" },
  { key: "cloudErrors", textName: "errors" },
  { key: "savedCloudCalls", textName: "savedCalls" },
  { key: "savedCloudMs", textName: "savedMs" },
  { key: "meanTotalMs", textName: "meanMs" },
];

/** The figure columns; those in `hide` are left out of text output so that the table fits the terminal. */
function figureColumns(hide: (keyof Figures)[] = []): Column[] {
  return FIGURE_COLUMNS.map(({ key, textName }) => ({
    name: key,
    kind: figureKind(key),
    textName: hide.includes(key) ? false : textName,
  }));
}
const figureCells = (f: Figures): Cell[] => FIGURE_COLUMNS.map(({ key }) => f[key] as number | null);

/** A bucket size as text: `15 min`, `1 h`, `10 s`. */
function duration(ms: number): string {
  if (ms % 86_400_000 === 0) return `${ms / 86_400_000} d`;
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  return `${ms / 1000} s`;
}

/**
 * Each section as a table. `terminal` shows label totals instead of labels per bucket, and the summary's values as
 * text; CSV gets every column and row.
 */
function tables(report: StatsReport, options: { terminal: boolean }): Record<Section, Table> {
  const s = report.summary;
  const q = report.query;
  const labelTotals = new Map<string, number>();
  for (const l of report.labels) labelTotals.set(l.label, (labelTotals.get(l.label) ?? 0) + l.count);
  const value = (v: Cell, kind: Kind) => (options.terminal ? formatValue(v, kind) : csvValue(v, kind));
  const utc = (t: number) => (options.terminal ? `${formatValue(t, "time")} UTC` : csvValue(t, "time"));
  const locations = new Set(report.recent.map((r) => r.edgeLocation)).size;
  return {
    summary: {
      columns: [{ name: "figure" }, { name: "value" }],
      rows: [
        ["from", utc(q.fromMs)],
        ["to", utc(q.toMs)],
        options.terminal ? ["bucket", duration(q.bucketMs)] : ["bucketMs", q.bucketMs],
        ["edgeLocation", q.edgeLocation ?? "all"],
        ["switcherVersion", q.switcherVersion ?? "all"],
        ...Object.entries(s).map(([k, v]) => [k, value(v, figureKind(k))]),
      ],
    },
    series: {
      columns: [{ name: "start", kind: "time", textName: "start (UTC)" }, ...figureColumns()],
      rows: report.series.map((b) => [b.startMs, ...figureCells(b)]),
      fold: {
        when: (row) => row[1] === 0,
        describe: (first, last, n) =>
          `${formatValue(first[0], "time")} to ${formatValue(last[0], "time")}: ${n} buckets with no decisions`,
      },
    },
    latency: {
      columns: [
        { name: "route" },
        { name: "stage" },
        { name: "count", kind: "count" },
        ...["meanMs", "p50Ms", "p90Ms", "p95Ms", "p99Ms", "maxMs"].map((name) => ({
          name,
          kind: "ms" as const,
          textName: name.replace(/Ms$/, ""),
        })),
      ],
      rows: report.latency.map((l) => [l.route, l.stage, l.count, l.mean, l.p50, l.p90, l.p95, l.p99, l.max]),
    },
    fallbacks: {
      columns: [
        { name: "kind" },
        { name: "route" },
        { name: "routeReason" },
        { name: "cloudError" },
        { name: "count", kind: "count" },
        { name: "rate", kind: "rate" },
      ],
      rows: report.fallbacks.map((f) => [f.kind, f.route, f.routeReason, f.cloudError, f.count, f.rate]),
    },
    labels: options.terminal
      ? {
        columns: [{ name: "label" }, { name: "answers", kind: "count" }, { name: "share", kind: "rate" }],
        rows: [...labelTotals].sort((a, b) => b[1] - a[1])
          .map(([l, n]) => [l, n, s.decisions ? n / s.decisions : null]),
      }
      : {
        columns: [{ name: "start", kind: "time" }, { name: "label" }, { name: "count", kind: "count" }],
        rows: report.labels.map((l) => [l.startMs, l.label, l.count]),
      },
    versions: {
      columns: [
        { name: "switcherVersion", textName: "switcher" },
        { name: "first", kind: "shortTime" },
        { name: "last", kind: "shortTime" },
        { name: "meanScore", kind: "score", textName: "score" },
        { name: "minThreshold", kind: "score", textName: "minThr" },
        { name: "maxThreshold", kind: "score", textName: "maxThr" },
        ...figureColumns([
          "shadowRate",
          "fallbackRate",
          "cloudCalls",
          "cloudErrors",
          "savedCloudCalls",
          "savedCloudMs",
          "meanTotalMs",
        ]),
      ],
      rows: report.switcherVersions.map((v) => [
        v.switcherVersion,
        v.firstMs,
        v.lastMs,
        v.meanScore,
        v.minThreshold,
        v.maxThreshold,
        ...figureCells(v),
      ]),
    },
    locations: {
      columns: [
        { name: "edgeLocation", textName: "location" },
        { name: "first", kind: "shortTime" },
        { name: "last", kind: "shortTime" },
        ...figureColumns(["shadowRate", "cloudCalls", "cloudErrors", "savedCloudMs"]),
      ],
      rows: report.edgeLocations.map((l) => [l.edgeLocation, l.firstMs, l.lastMs, ...figureCells(l)]),
    },
    // The tiers past the edge (more than two tiers served in the window; else none): db/tier_analytics.ts.
    tiers: {
      columns: [
        { name: "tier", kind: "count" },
        { name: "name" },
        { name: "calls", kind: "count" },
        { name: "explored", kind: "count" },
        { name: "answered", kind: "count" },
        { name: "share", kind: "rate" },
        { name: "errors", kind: "count" },
        { name: "agreement", kind: "rate", textName: "agrees" },
        { name: "meanMs", kind: "ms", textName: "mean ms" },
        { name: "costMs", kind: "ms", textName: "cost ms" },
        { name: "price", kind: "score" },
      ],
      rows: report.tiers.map((t) => [
        t.tier,
        t.name,
        t.calls,
        t.explored,
        t.answered,
        t.share,
        t.errors,
        t.agreement,
        t.meanMs,
        t.costMs,
        t.price,
      ]),
    },
    recent: {
      // Text output keeps what tells decisions apart and why they went where; the request id, the answer (the
      // cloud label when offloaded, else the edge label) and, with one location, the location are in CSV and JSON.
      columns: [
        { name: "time", kind: "shortTime", textName: "time (UTC)" },
        { name: "id" },
        { name: "requestId", textName: false },
        { name: "edgeLocation", textName: locations > 1 ? "location" : false },
        { name: "route" },
        { name: "routeReason", textName: "reason" },
        { name: "label", textName: false },
        { name: "edgeLabel", textName: "edge" },
        { name: "cloudLabel", textName: "cloud" },
        { name: "cloudError", textName: "error" },
        { name: "switcherScore", kind: "score", textName: "score" },
        { name: "totalMs", kind: "ms", textName: "ms" },
      ],
      rows: report.recent.map((r) => [
        r.createdAt,
        r.id,
        r.requestId,
        r.edgeLocation,
        r.route + (r.shadow ? "+shadow" : ""),
        r.routeReason,
        r.label,
        r.edgeLabel,
        r.cloudLabel,
        r.cloudError,
        r.switcherScore,
        r.totalMs,
      ]),
    },
  };
}

/** The first bytes of every SQLite database file. */
const SQLITE_HEADER = "SQLite format 3\0";

/**
 * Why the analytics cannot read the database at `url`, or null when it can. Opening a database creates it (and
 * its folders) and applies the migrations, which is right for the service and wrong for a report: a mistyped
 * `--db file:typo.db` would report 0 decisions from a new empty file. So a local database must already exist and
 * be a SQLite file; remote URLs (`libsql:`, `http(s):`, `ws(s):`) are left to the driver.
 *
 * @param url the database URL
 * @returns a one-line reason, or null
 * @example
 * await missingDatabase("file:typo.db"); // "Cannot read the decision database: typo.db does not exist ..."
 */
export async function missingDatabase(url: string): Promise<string | null> {
  const problem = (what: string) => `Cannot read the decision database: ${what}`;
  if (url === ":memory:") return problem(":memory: is a new, empty database; pass --db with an existing one");
  if (!url.startsWith("file:")) return null;
  let path = url.slice("file:".length).replace(/[?#].*$/, "");
  if (path.startsWith("//")) path = path.replace(/^\/\/[^/]*/, "");
  try {
    path = decodeURIComponent(path);
  } catch {
    // Not percent-encoded: the path as written.
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) return problem(`${path}: ${(err as Error).message}`);
    return problem(`${path} does not exist (the service creates it at first start; check --db or DATABASE_URL)`);
  }
  if (!info.isFile) return problem(`${path} is a folder, not a database file`);
  const header = new Uint8Array(SQLITE_HEADER.length);
  const file = await Deno.open(path, { read: true });
  try {
    const read = await file.read(header);
    if (read !== header.length || new TextDecoder().decode(header) !== SQLITE_HEADER) {
      return problem(`${path} is not a SQLite database`);
    }
  } finally {
    file.close();
  }
  return null;
}

function fail(message: string): never {
  usageError(message, USAGE);
}

if (import.meta.main) {
  const values = parseFlags({
    from: { type: "string" },
    to: { type: "string" },
    bucket: { type: "string" },
    "edge-location": { type: "string" },
    "switcher-version": { type: "string" },
    recent: { type: "string", default: "10" },
    report: { type: "string" },
    json: { type: "boolean", default: false },
    csv: { type: "boolean", default: false },
    db: { type: "string" },
  }, USAGE);
  if (values.json && values.csv) fail("Cannot read flags: --json and --csv exclude each other");
  const report = values.report as Section | undefined;
  if (report !== undefined && !SECTIONS.includes(report)) {
    fail(`Cannot read flags: --report must be one of ${SECTIONS.join(", ")}, got "${report}"`);
  }
  if (report !== undefined && values.json) fail("Cannot read flags: --report applies to tables and CSV");
  const recent = Number(values.recent);
  if (!/^\d+$/.test(values.recent) || recent > 1000) {
    fail("Cannot read flags: --recent must be an integer in [0, 1000]");
  }
  let query;
  try {
    query = parseAnalyticsParams({
      from: values.from,
      to: values.to,
      bucket: values.bucket,
      edgeLocation: values["edge-location"],
      switcherVersion: values["switcher-version"],
    }, { nowMs: Date.now() });
  } catch (err) {
    fail((err as Error).message);
  }
  let url: string;
  let authToken: string | undefined;
  try {
    const config = loadConfig();
    url = values.db ?? config.databaseUrl;
    authToken = config.databaseAuthToken;
  } catch (err) {
    fail((err as Error).message);
  }
  const missing = await missingDatabase(url);
  if (missing) {
    console.error(missing);
    Deno.exit(2);
  }
  let result: StatsReport;
  try {
    const database = await openDatabase(url, { authToken });
    try {
      result = await statsReport(database.db, query, { recent });
    } finally {
      database.close();
    }
  } catch (err) {
    const message = err instanceof AppError && err.cause instanceof Error
      ? `${err.message}: ${err.cause.message}`
      : (err as Error).message;
    console.error(message);
    Deno.exit(1);
  }
  if (values.json) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    const all = tables(result, { terminal: !values.csv });
    const sections = report ? [report] : SECTIONS;
    const blocks = sections.map((name) => {
      if (values.csv) return report ? formatCsv(all[name]) : `# ${name}\n${formatCsv(all[name])}`;
      return `== ${name} ==\n${formatTable(all[name])}`;
    });
    console.log(blocks.join("\n\n"));
  }
}
