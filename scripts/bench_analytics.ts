/**
 * `deno task bench:analytics [--db URL] [--runs N] [--load] [--concurrency C] [--seconds S] [--json]`: the analytics
 * queries' time on a seeded database (`deno task seed:decisions`, one million decisions by default), and with
 * `--load` the cost of `GET /metrics` and `GET /v1/stats` under load: the service started as a child process on
 * loopback over the same database, a closed loop of C concurrent clients for S seconds per endpoint (bounded).
 *
 * Prints Markdown tables (or JSON with `--json`). Never part of the test suite.
 *
 * @module
 */
import {
  byEdgeLocation,
  bySwitcherVersion,
  fallbackCauses,
  labelSeries,
  latencyPercentiles,
  recentDecisions,
  statsReport,
  summary,
} from "../db/analytics.ts";
import { type AnalyticsQuery, parseAnalyticsParams } from "../db/analytics_params.ts";
import { type Db, openDatabase } from "../db/client.ts";
import { countDecisions, listDecisions } from "../db/queries.ts";
import { parseFlags } from "./cli.ts";
import { spawn } from "./procs.ts";

const USAGE =
  "usage: deno task bench:analytics [--db URL] [--runs N] [--load] [--concurrency C] [--seconds S] [--json]";

/** One timed query: median and min over the runs, in milliseconds. */
interface QueryTiming {
  scenario: string;
  query: string;
  medianMs: number;
  minMs: number;
  rows: number;
}

/** One endpoint under load. */
interface LoadResult {
  endpoint: string;
  concurrency: number;
  seconds: number;
  requests: number;
  errors: number;
  requestsPerS: number;
  p50Ms: number;
  p95Ms: number;
  p99Ms: number;
  meanBytes: number;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)];
const rank = (sorted: number[], p: number) => sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? NaN;

async function time(runs: number, fn: () => Promise<unknown>): Promise<{ ms: number[]; rows: number }> {
  const ms: number[] = [];
  let rows = 0;
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    const out = await fn();
    ms.push(performance.now() - t0);
    rows = Array.isArray(out) ? out.length : 1;
  }
  return { ms, rows };
}

/** The scenarios: windows ending at the newest decision. */
function scenarios(newestMs: number): { name: string; query: AnalyticsQuery }[] {
  const to = String(newestMs + 1);
  const q = (raw: Record<string, string>) => parseAnalyticsParams({ to, ...raw }, { nowMs: newestMs });
  return [
    { name: "7 days, 1 h buckets", query: q({ from: "7d", bucket: "1h" }) },
    { name: "24 h, 15 min buckets", query: q({ from: "24h", bucket: "15m" }) },
    { name: "1 h, 1 min buckets", query: q({ from: "1h", bucket: "1m" }) },
    { name: "7 days, one location", query: q({ from: "7d", bucket: "1h", edgeLocation: "ap-south-1" }) },
    { name: "7 days, one switcher", query: q({ from: "7d", bucket: "1h", switcherVersion: "switcher-v2" }) },
  ];
}

async function benchQueries(db: Db, runs: number): Promise<QueryTiming[]> {
  const [newest] = await listDecisions(db, { order: "desc", limit: 1 });
  if (!newest) throw new Error("Cannot bench: the database has no decisions (run deno task seed:decisions)");
  const out: QueryTiming[] = [];
  const queries: [string, (db: Db, q: AnalyticsQuery) => Promise<unknown>][] = [
    ["summary + time series", summary],
    ["latency percentiles", latencyPercentiles],
    ["fallback causes", fallbackCauses],
    ["label distribution", labelSeries],
    ["per switcher version", bySwitcherVersion],
    ["per edge location", byEdgeLocation],
    ["recent decisions (25)", (db, q) => recentDecisions(db, q, { limit: 25 })],
    ["whole report (/v1/stats)", (db, q) => statsReport(db, q, { recent: 25 })],
  ];
  for (const s of scenarios(newest.createdAt)) {
    for (const [name, fn] of queries) {
      await fn(db, s.query); // warm the page cache
      const { ms, rows } = await time(runs, () => fn(db, s.query));
      out.push({ scenario: s.name, query: name, medianMs: median(ms), minMs: Math.min(...ms), rows });
      console.error(`${s.name} / ${name}: ${median(ms).toFixed(1)} ms`);
    }
  }
  return out;
}

/** Start the service over the database on loopback, as `deno task start` would. */
async function startService(dbUrl: string, token: string): Promise<{ url: string; stop(): Promise<void> }> {
  const { child, url } = await spawn(
    ["run", "-A", new URL("../main.ts", import.meta.url).pathname],
    { DATABASE_URL: dbUrl, PORT: "0", HOST: "127.0.0.1", ADMIN_TOKEN: token, LOG_LEVEL: "warn" },
    /"url":"(http:\/\/[^"]+)"/,
  );
  return {
    url,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

/** A closed loop: `concurrency` clients each sending the next request when the last one is answered. */
async function load(
  url: (i: number) => string,
  headers: Record<string, string>,
  options: { concurrency: number; seconds: number; maxRequests: number },
): Promise<Omit<LoadResult, "endpoint">> {
  const latencies: number[] = [];
  let errors = 0;
  let bytes = 0;
  const started = performance.now();
  const endAt = started + options.seconds * 1000;
  let sent = 0;
  const client = async () => {
    while (performance.now() < endAt && sent < options.maxRequests) {
      const t0 = performance.now();
      try {
        const res = await fetch(url(sent++), { headers });
        const body = await res.arrayBuffer();
        if (res.ok) {
          latencies.push(performance.now() - t0);
          bytes += body.byteLength;
        } else errors++;
      } catch {
        errors++;
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, client));
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  return {
    concurrency: options.concurrency,
    seconds: Number(seconds.toFixed(2)),
    requests: latencies.length,
    errors,
    requestsPerS: Number((latencies.length / seconds).toFixed(1)),
    p50Ms: Number(rank(sorted, 0.5).toFixed(2)),
    p95Ms: Number(rank(sorted, 0.95).toFixed(2)),
    p99Ms: Number(rank(sorted, 0.99).toFixed(2)),
    meanBytes: latencies.length ? Math.round(bytes / latencies.length) : 0,
  };
}

async function benchLoad(dbUrl: string, options: { concurrency: number; seconds: number }): Promise<LoadResult[]> {
  const token = crypto.randomUUID();
  const service = await startService(dbUrl, token);
  const auth = { authorization: `Bearer ${token}` };
  const out: LoadResult[] = [];
  try {
    // No classify traffic: it would add decisions at "now" to the seeded log and move the windows below. The load
    // itself fills /metrics' request series.
    // The seeded log ends at its newest decision; "uncached" gives each request its own `to` (a distinct cache key),
    // so every one runs the queries.
    const [newest] = await (async () => {
      const database = await openDatabase(dbUrl);
      try {
        return await listDecisions(database.db, { order: "desc", limit: 1 });
      } finally {
        database.close();
      }
    })();
    const end = (newest?.createdAt ?? Date.now()) + 1;
    const endpoints: [string, (i: number) => string][] = [
      ["GET /healthz (baseline)", () => "/healthz"],
      ["GET /metrics", () => "/metrics"],
      ["GET /v1/stats 1 h of data (2 s cache)", () => `/v1/stats?from=1h&to=${end}&recent=25`],
      ["GET /v1/stats 24 h of data (2 s cache)", () => `/v1/stats?from=24h&to=${end}&recent=25`],
      ["GET /v1/stats 1 h of data, uncached", (i) => `/v1/stats?from=1h&to=${end - i}&recent=25`],
      ["GET /v1/stats 24 h of data, uncached", (i) => `/v1/stats?from=24h&to=${end - i}&recent=25`],
      ["GET /v1/stats 7 days of data, uncached", (i) => `/v1/stats?from=7d&bucket=1h&to=${end - i}&recent=25`],
    ];
    for (const [name, path] of endpoints) {
      const r = await load((i) => `${service.url}${path(i)}`, auth, { ...options, maxRequests: 100_000 });
      out.push({ endpoint: name, ...r });
      console.error(`${name}: ${r.requestsPerS} req/s, p50 ${r.p50Ms} ms, p99 ${r.p99Ms} ms`);
    }
  } finally {
    await service.stop();
  }
  return out;
}

function markdown(headers: string[], rows: (string | number)[][]): string {
  const line = (cells: (string | number)[]) => `| ${cells.join(" | ")} |`;
  return [line(headers), line(headers.map(() => "---")), ...rows.map(line)].join("\n");
}

if (import.meta.main) {
  const values = parseFlags({
    db: { type: "string", default: "file:build/bench/decisions-1m.db" },
    runs: { type: "string", default: "3" },
    load: { type: "boolean", default: false },
    "no-queries": { type: "boolean", default: false },
    concurrency: { type: "string", default: "4" },
    seconds: { type: "string", default: "5" },
    json: { type: "boolean", default: false },
  }, USAGE);
  const runs = Number(values.runs);
  const concurrency = Number(values.concurrency);
  const seconds = Number(values.seconds);
  if (![runs, concurrency].every((n) => Number.isInteger(n) && n >= 1 && n <= 64) || !(seconds > 0 && seconds <= 60)) {
    console.error(`Cannot bench: --runs and --concurrency are integers in [1, 64], --seconds in (0, 60]\n${USAGE}`);
    Deno.exit(2);
  }
  const database = await openDatabase(values.db);
  const rows = await countDecisions(database.db);
  const queries = values["no-queries"] ? [] : await benchQueries(database.db, runs);
  database.close();
  const loadResults = values.load ? await benchLoad(values.db, { concurrency, seconds }) : [];
  if (values.json) {
    console.log(JSON.stringify({ db: values.db, decisions: rows, runs, queries, load: loadResults }, null, 2));
  } else {
    console.log(`# Analytics on ${rows.toLocaleString("en-US")} decisions (${values.db}), median of ${runs} runs\n`);
    if (queries.length) {
      console.log(markdown(
        ["scenario", "query", "median ms", "min ms", "rows out"],
        queries.map((q) => [q.scenario, q.query, q.medianMs.toFixed(1), q.minMs.toFixed(1), q.rows]),
      ));
    }
    if (loadResults.length) {
      console.log(`\n# Under load: ${concurrency} concurrent clients, ${seconds} s per endpoint, loopback\n`);
      console.log(markdown(
        ["endpoint", "requests", "errors", "req/s", "p50 ms", "p95 ms", "p99 ms", "bytes"],
        loadResults.map((
          r,
        ) => [r.endpoint, r.requests, r.errors, r.requestsPerS, r.p50Ms, r.p95Ms, r.p99Ms, r.meanBytes]),
      ));
    }
  }
}
