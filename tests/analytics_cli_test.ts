/**
 * `deno task analytics` (scripts/analytics.ts) as a subprocess on a file database holding the hand-built log:
 * JSON equal to the library's report, CSV and tables, exit code 2 on bad flags; and the seeding generator's
 * determinism.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { insertDecisions } from "../db/queries.ts";
import { formatCsv, formatTable } from "../scripts/analytics.ts";
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
    for (const section of ["summary", "series", "latency", "fallbacks", "labels", "versions", "locations", "recent"]) {
      assert.match(tables.stdout, new RegExp(`^== ${section} ==$`, "m"));
    }
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

Deno.test("formatTable() aligns columns; formatCsv() quotes per RFC 4180", () => {
  const t = { columns: ["name", "n"], rows: [["a,b", 1], ['say "hi"', 22], [null, 3]] };
  assert.equal(
    formatTable(t),
    ["name      n", "--------  --", "a,b        1", 'say "hi"  22', "-          3"].join("\n"),
  );
  assert.equal(formatCsv(t), ["name,n", '"a,b",1', '"say ""hi""",22', ",3"].join("\n"));
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
