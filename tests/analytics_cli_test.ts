/**
 * `deno task analytics` (scripts/analytics.ts) as a subprocess on a file database holding the hand-built log:
 * JSON equal to the library's report, CSV and tables (rounded, empty buckets folded, 120 columns at most), exit
 * code 2 with one line for bad flags and for a database that does not exist (which it never creates); and the
 * seeding generator's determinism.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { insertDecisions } from "../db/queries.ts";
import { syntheticDecisions } from "../scripts/seed_decisions.ts";
import { H, handBuiltLog, T0 } from "./analytics_fixture.ts";

const SCRIPT = new URL("../scripts/analytics.ts", import.meta.url).pathname;

async function cli(args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    env: { NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

async function withLog(fn: (url: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dmd_edge_cli_" });
  const url = `file:${dir}/decisions.db`;
  const database = await openDatabase(url);
  await insertDecisions(database.db, handBuiltLog());
  database.close();
  try {
    await fn(url);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const WINDOW = ["--from", String(T0), "--to", String(T0 + 3 * H), "--bucket", "1h"];

Deno.test("deno task analytics --json prints the report of the window, reading DATABASE_URL", async () => {
  await withLog(async (url) => {
    const r = await cli([...WINDOW, "--json", "--recent", "2"], { DATABASE_URL: url });
    assert.equal(r.code, 0, r.stderr);
    const report = JSON.parse(r.stdout);
    assert.equal(report.summary.decisions, 8);
    assert.equal(report.summary.savedCloudMs, 60);
    assert.deepEqual(report.series.map((b: { decisions: number }) => b.decisions), [5, 3, 0]);
    assert.deepEqual(report.recent.map((d: { id: string }) => d.id), ["d8", "d7"]);
  });
});

Deno.test("deno task analytics prints tables by default and CSV with --csv", async () => {
  await withLog(async (url) => {
    const tables = await cli([...WINDOW, "--db", url, "--edge-location", "edge-b"]);
    assert.equal(tables.code, 0, tables.stderr);
    const sections = [
      "summary",
      "series",
      "latency",
      "fallbacks",
      "labels",
      "versions",
      "locations",
      "tiers",
      "recent",
    ];
    for (const section of sections) assert.match(tables.stdout, new RegExp(`^== ${section} ==$`, "m"));
    // Two tiers served: no tier past the first to show.
    assert.match(tables.stdout, /^== tiers ==\ntier .*\n\(none\)$/m);
    assert.match(tables.stdout, /^decisions\s+3$/m);
    const csv = await cli([...WINDOW, "--db", url, "--csv", "--report", "fallbacks"]);
    assert.equal(csv.code, 0, csv.stderr);
    assert.equal(
      csv.stdout.trim(),
      [
        "kind,route,routeReason,cloudError,count,rate",
        "shadow_failed,edge,below_threshold,OFFLOAD_FAILED,1,0.125",
        "budget_exhausted,edge,budget_exhausted,,1,0.125",
        "cloud_failed,edge_fallback,above_threshold,OFFLOAD_TIMEOUT,1,0.125",
      ].join("\n"),
    );
    const all = await cli([...WINDOW, "--db", url, "--csv"]);
    assert.match(all.stdout, /^# labels\nstart,label,count\n2026-/m);
  });
});

Deno.test("deno task analytics exits 2 with a clear message on bad flags", async () => {
  const cases: [string[], RegExp][] = [
    [["--bogus"], /Unknown option '--bogus'/],
    [["--json", "--csv"], /--json and --csv exclude each other/],
    [["--report", "nope"], /--report must be one of/],
    [["--bucket", "5x"], /Cannot read bucket/],
    [["--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"], /must be before/],
    [["--recent", "many"], /--recent must be an integer/],
  ];
  for (const [args, message] of cases) {
    const r = await cli([...args, "--db", "file:/nonexistent/never-opened.db"]);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, message, args.join(" "));
    assert.match(r.stderr, /usage: deno task analytics/);
  }
});

Deno.test("deno task analytics tables: numbers rounded, empty buckets folded, no line over 120 columns", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dmd_edge_cli_" });
  const url = `file:${dir}/decisions.db`;
  try {
    const database = await openDatabase(url);
    // Six hours of traffic at the end of a 24 h window: 72 of the 96 buckets of 15 min are empty.
    const endMs = Date.UTC(2026, 10, 30, 12);
    await insertDecisions(database.db, [...syntheticDecisions({ rows: 2000, endMs, spanMs: 6 * H, seed: 5 })]);
    database.close();
    const r = await cli(["--db", url, "--from", new Date(endMs - 24 * H).toISOString(), "--to", String(endMs)]);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.split("\n");
    const long = lines.filter((l) => l.length > 120);
    assert.deepEqual(long, [], "lines over 120 columns");
    // No unrounded number: at most 3 decimals anywhere (ms under 10 get 2, scores 3, rates are percentages).
    assert.deepEqual(r.stdout.match(/\d\.\d{4,}/g), null);
    assert.match(r.stdout, /^offloadRate\s+\d+\.\d%$/m);
    assert.match(r.stdout, /^bucket\s+15 min$/m);
    // The empty morning is one line; the busy hours are one row per bucket.
    const series = r.stdout.split("== series ==\n")[1].split("\n\n")[0].split("\n");
    assert.equal(series[2], "2026-11-29 12:00:00 to 2026-11-30 05:45:00: 72 buckets with no decisions");
    assert.equal(series.length, 2 + 1 + 24);
    assert.match(series[3], /^2026-11-30 06:00:00 +\d+ +\d+\.\d% /);
    // Latency in milliseconds with the same rounding in every column.
    assert.match(r.stdout, /^all +total +2000 +\d+\.\d +\d+\.\d+ /m);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deno task analytics reads existing databases only: a missing file, folder or non-database is one line, exit 2", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dmd_edge_cli_" });
  try {
    await Deno.writeTextFile(`${dir}/notes.txt`, "not a database\n");
    const cases: [string[], Record<string, string>, RegExp][] = [
      [["--db", `file:${dir}/typo.db`], {}, /typo\.db does not exist/],
      [["--db", `file:${dir}/no/such/folder/decisions.db`], {}, /folder\/decisions\.db does not exist/],
      [[], { DATABASE_URL: `file:${dir}/from-env.db` }, /from-env\.db does not exist/],
      [["--db", `file:${dir}`], {}, /is a folder, not a database file/],
      [["--db", `file:${dir}/notes.txt`], {}, /notes\.txt is not a SQLite database/],
      [["--db", ":memory:"], {}, /:memory: is a new, empty database/],
    ];
    for (const [args, env, message] of cases) {
      const r = await cli(args, env);
      assert.equal(r.code, 2, args.join(" "));
      assert.equal(r.stdout, "");
      const lines = r.stderr.trimEnd().split("\n");
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^Cannot read the decision database: /);
      assert.match(lines[0], message);
    }
    // Nothing was created: no database, no folder.
    const left = [];
    for await (const entry of Deno.readDir(dir)) left.push(entry.name);
    assert.deepEqual(left, ["notes.txt"]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("syntheticDecisions() is deterministic for a seed and realistic in its rates", () => {
  const options = { rows: 5000, endMs: 1_790_000_000_000, spanMs: 86_400_000, seed: 3 };
  const a = [...syntheticDecisions(options)];
  const b = [...syntheticDecisions(options)];
  assert.equal(a.length, 5000);
  assert.deepEqual(a.map(({ id: _, ...r }) => r), b.map(({ id: _, ...r }) => r));
  assert.ok(a.every((r, i) => i === 0 || r.createdAt >= a[i - 1].createdAt));
  assert.ok(a.every((r) => r.createdAt >= options.endMs - options.spanMs && r.createdAt < options.endMs));
  const rate = (f: (r: (typeof a)[number]) => boolean) => a.filter(f).length / a.length;
  const offload = rate((r) => r.route !== "edge");
  assert.ok(offload > 0.1 && offload < 0.35, `offload rate ${offload}`);
  const shadow = rate((r) => r.shadow);
  assert.ok(shadow > 0.005 && shadow < 0.05, `shadow rate ${shadow}`);
  assert.equal(new Set(a.map((r) => r.edgeLocation)).size, 3);
  assert.equal(new Set(a.map((r) => r.switcherVersion)).size, 3);
});
