/**
 * `deno task analytics [flags]`: the analytics report of the decision log in the terminal (tables), as JSON
 * (`--json`) or as CSV (`--csv`), from the same queries as `GET /v1/stats` (`db/analytics.ts`). Reads
 * `DATABASE_URL` (and `DATABASE_AUTH_TOKEN`) like the service, or `--db`.
 *
 * Exit codes: 0 done, 1 the database failed, 2 bad flags or parameters.
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { type Figures, parseAnalyticsParams, type StatsReport, statsReport } from "../db/analytics.ts";
import { openDatabase } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { parseFlags, usageError } from "./cli.ts";

const USAGE = `usage: deno task analytics [--from 24h|ISO|UNIX_MS] [--to ISO|UNIX_MS] [--bucket 15m]
                          [--edge-location NAME] [--switcher-version V] [--recent N]
                          [--report ${"summary|series|latency|fallbacks|labels|versions|locations|recent"}]
                          [--json | --csv] [--db URL]
  Analytics of the decision log (offload, shadow, agreement, latency, savings against cloud-only, fallbacks,
  labels, per switcher version and edge location). Window [from, to), default the last 24 hours; bucket default
  about 96 buckets. Reads DATABASE_URL unless --db is given. Tables by default; --json prints the report as
  GET /v1/stats returns it; --csv prints one CSV block per section (labels per bucket), or one with --report.`;

/** The report's sections, in print order. */
const SECTIONS = ["summary", "series", "latency", "fallbacks", "labels", "versions", "locations", "recent"] as const;
type Section = (typeof SECTIONS)[number];

type Cell = string | number | boolean | null;
interface Table {
  columns: string[];
  rows: Cell[][];
}

const iso = (ms: number) => new Date(ms).toISOString();
const round = (x: number | null, digits = 4) => (x === null ? null : Number(x.toFixed(digits)));

const FIGURE_COLUMNS = [
  "decisions",
  "offloadRate",
  "shadowRate",
  "agreementRate",
  "fallbackRate",
  "cloudCalls",
  "cloudErrors",
  "savedCloudCalls",
  "savedCloudMs",
  "meanTotalMs",
] as const;
const figureCells = (f: Figures): Cell[] => FIGURE_COLUMNS.map((k) => round(f[k] as number | null));

/** Each section as a table; `terminal` shows label totals instead of labels per bucket. */
function tables(report: StatsReport, options: { terminal: boolean }): Record<Section, Table> {
  const s = report.summary;
  const labelTotals = new Map<string, number>();
  for (const l of report.labels) labelTotals.set(l.label, (labelTotals.get(l.label) ?? 0) + l.count);
  return {
    summary: {
      columns: ["figure", "value"],
      rows: [
        ["from", iso(report.query.fromMs)],
        ["to", iso(report.query.toMs)],
        ["bucketMs", report.query.bucketMs],
        ["edgeLocation", report.query.edgeLocation ?? "all"],
        ["switcherVersion", report.query.switcherVersion ?? "all"],
        ...Object.entries(s).map(([k, v]) => [k, typeof v === "number" ? round(v) : v] as Cell[]),
      ],
    },
    series: {
      columns: ["start", ...FIGURE_COLUMNS],
      rows: report.series.map((b) => [iso(b.startMs), ...figureCells(b)]),
    },
    latency: {
      columns: ["route", "stage", "count", "meanMs", "p50Ms", "p90Ms", "p95Ms", "p99Ms", "maxMs"],
      rows: report.latency.map((l) => [
        l.route,
        l.stage,
        l.count,
        round(l.mean, 3),
        l.p50,
        l.p90,
        l.p95,
        l.p99,
        l.max,
      ]),
    },
    fallbacks: {
      columns: ["kind", "route", "routeReason", "cloudError", "count", "rate"],
      rows: report.fallbacks.map((f) => [f.kind, f.route, f.routeReason, f.cloudError, f.count, round(f.rate)]),
    },
    labels: options.terminal
      ? {
        columns: ["label", "answers", "share"],
        rows: [...labelTotals].sort((a, b) => b[1] - a[1]).map(([l, n]) => [l, n, round(n / (s.decisions || 1))]),
      }
      : { columns: ["start", "label", "count"], rows: report.labels.map((l) => [iso(l.startMs), l.label, l.count]) },
    versions: {
      columns: ["switcherVersion", "first", "last", "meanScore", "minThreshold", "maxThreshold", ...FIGURE_COLUMNS],
      rows: report.switcherVersions.map((v) => [
        v.switcherVersion,
        iso(v.firstMs),
        iso(v.lastMs),
        round(v.meanScore),
        v.minThreshold,
        v.maxThreshold,
        ...figureCells(v),
      ]),
    },
    locations: {
      columns: ["edgeLocation", "first", "last", ...FIGURE_COLUMNS],
      rows: report.edgeLocations.map((l) => [l.edgeLocation, iso(l.firstMs), iso(l.lastMs), ...figureCells(l)]),
    },
    recent: {
      columns: ["time", "id", "requestId", "edgeLocation", "route", "routeReason", "label", "edgeLabel", "cloudLabel"]
        .concat(["cloudError", "switcherScore", "totalMs"]),
      rows: report.recent.map((r) => [
        iso(r.createdAt),
        r.id,
        r.requestId,
        r.edgeLocation,
        r.route + (r.shadow ? "+shadow" : ""),
        r.routeReason,
        r.label,
        r.edgeLabel,
        r.cloudLabel,
        r.cloudError,
        round(r.switcherScore),
        r.totalMs,
      ]),
    },
  };
}

/** A table as aligned text columns (numbers right-aligned). */
export function formatTable(table: Table): string {
  const text = (c: Cell) => (c === null ? "-" : String(c));
  const widths = table.columns.map((h, i) => Math.max(h.length, ...table.rows.map((r) => text(r[i]).length)));
  const line = (cells: Cell[], header = false) =>
    cells.map((c, i) => !header && typeof c === "number" ? text(c).padStart(widths[i]) : text(c).padEnd(widths[i]))
      .join("  ").trimEnd();
  if (table.rows.length === 0) return `${line(table.columns, true)}\n(none)`;
  return [line(table.columns, true), widths.map((w) => "-".repeat(w)).join("  "), ...table.rows.map((r) => line(r))]
    .join("\n");
}

/** A table as CSV (RFC 4180: fields with commas, quotes or line breaks quoted; empty for null). */
export function formatCsv(table: Table): string {
  const field = (c: Cell) => {
    const s = c === null ? "" : String(c);
    return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
  };
  return [table.columns, ...table.rows].map((r) => r.map(field).join(",")).join("\n");
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
