/**
 * The routing benchmarks of record (scripts/eval_record.ts): `deno task eval:record` reproduces
 * docs/routing-record.json choice for choice and figure for figure on the default data, the 3D cross-view set and,
 * where `../shared/datasets/hapt/` is beside the clone, HAPT's test subjects; the record says what the evaluation
 * promises (pool and evaluated subjects apart, rows named as dmd names releases, every difference with its SE); and
 * the record's pure parts (verdicts, drift, Markdown) on small inputs.
 */
import assert from "node:assert/strict";
import {
  type BenchmarkRecord,
  benchmarkRecord,
  BENCHMARKS,
  type EvalJson,
  recordDrift,
  recordMarkdown,
  type RoutingRecord,
  routingRecord,
  TOLERANCE,
} from "../scripts/eval_record.ts";
import type { SeedRun } from "../scripts/eval_report.ts";
import type { PolicyComparison } from "../switcher/comparison.ts";

const ROOT = new URL("../", import.meta.url).pathname;

/** A comparison whose figures are fixed and whose differences to the bar are `d` (SE `se`). */
function comparison(name: string, auc: number, d: number, se: number): PolicyComparison {
  const diff = { difference: d, standardError: se };
  return {
    name,
    figures: {
      disagreementAuc: auc,
      accuracyArea: 0.9,
      accuracyAt: [0.91, 0.92],
      rateToCloudAccuracy: 0.4,
    },
    operatingPoint: null,
    vsBaseline: { disagreementAuc: diff, accuracyArea: diff, accuracyAt: [diff, diff], rateToCloudAccuracy: diff },
  };
}

function seedRun(seed: number, installedDelta: number, se: number): SeedRun {
  return {
    seed,
    poolRows: 100,
    evalRows: 120,
    split: "half of the subjects (2 of 4) as the DMD pool, the others evaluated",
    groups: { pool: ["a", "b"], evaluated: ["c", "d"] },
    installed: "rank:confidence",
    gate: "not worse",
    folds: "2 by group (2 groups)",
    bestRule: "rule:max_prob",
    poolRule: "rule:margin",
    installedVsPoolRule: comparison("installed by dmd", 0.9, installedDelta, se).vsBaseline,
    selection: [],
    comparisons: [
      comparison("rule:max_prob", 0.9, 0, 0),
      comparison("installed by dmd", 0.9 + installedDelta, installedDelta, se),
    ],
    edgeAccuracy: 0.8,
    cloudAccuracy: 0.85,
  };
}

const evalJson = (delta: number, se: number): EvalJson => ({
  models: { edge: "edge-x", cloud: "cloud-x", switcher: null },
  settings: { seeds: [1, 2], offloadRate: 0.2, resamples: 500 },
  runs: [seedRun(1, delta, se), seedRun(2, delta, se)],
});

const SETTINGS = { seeds: [1, 2], offloadRate: 0.2, resamples: 500, cloudRuntime: "onnxruntime-web (WASM)" };

Deno.test("eval:record verdicts: met at −0.5 SE, higher by 1 SE on both measures, over every benchmark", () => {
  const bench = BENCHMARKS[0];
  const tie = benchmarkRecord(bench, evalJson(-0.004, 0.01)); // z −0.4: met
  const loses = benchmarkRecord(bench, evalJson(-0.006, 0.01)); // z −0.6: not met
  const wins = benchmarkRecord(bench, evalJson(0.02, 0.01)); // z +2
  assert.equal(tie.hindsight.met, true);
  assert.equal(tie.hindsight.auc.z!.toFixed(2), "-0.40");
  assert.equal(loses.hindsight.met, false);
  assert.equal(wins.higherByOneSe, true);
  assert.equal(tie.higherByOneSe, false);
  assert.deepEqual(tie.seeds.map((s) => [s.installed, s.bestRule, s.poolRule]), [
    ["rank:confidence", "rule:max_prob", "rule:margin"],
    ["rank:confidence", "rule:max_prob", "rule:margin"],
  ]);
  assert.deepEqual(tie.policies.map((p) => p.name), ["rule:max_prob", "installed by dmd"]);
  assert.deepEqual(routingRecord([tie, wins], [], SETTINGS).targets, { everyBarMet: true, oneHigherByOneSe: true });
  assert.deepEqual(routingRecord([tie, loses, wins], [], SETTINGS).targets, {
    everyBarMet: false,
    oneHigherByOneSe: true,
  });
  assert.deepEqual(routingRecord([], [{ name: "hapt", reason: "absent" }], SETTINGS).targets, {
    everyBarMet: false,
    oneHigherByOneSe: false,
  });
  // A difference with no SE (identical policies) has no z and is met only when it is not below zero.
  const same = benchmarkRecord(bench, evalJson(0, 0));
  assert.equal(same.hindsight.auc.z, null);
  assert.equal(same.hindsight.met, true);
  assert.throws(
    () =>
      benchmarkRecord(bench, {
        ...evalJson(0, 0),
        runs: [{ ...seedRun(1, 0, 0), comparisons: [comparison("rule:max_prob", 0.9, 0, 0)] }],
      }),
    /has no "installed by dmd" row/,
  );
});

Deno.test("eval:record drift: a changed choice or a figure beyond the tolerance is named; within it is not", () => {
  const base = routingRecord([benchmarkRecord(BENCHMARKS[0], evalJson(-0.004, 0.01))], [], SETTINGS);
  const copy = () => JSON.parse(JSON.stringify(base)) as RoutingRecord;
  assert.deepEqual(recordDrift(copy(), base), []);
  const nudged = copy();
  nudged.benchmarks[0].hindsight.auc.difference += TOLERANCE / 2;
  assert.deepEqual(recordDrift(nudged, base), []);
  const moved = copy();
  moved.benchmarks[0].hindsight.auc.difference += 0.001;
  moved.benchmarks[0].seeds[1].installed = "mlp:all";
  const drift = recordDrift(moved, base);
  assert.equal(drift.length, 2);
  assert.match(drift[0], /^default\.seeds\[1\]\.installed: "rank:confidence" in the record, "mlp:all" now$/);
  assert.match(drift[1], /^default\.hindsight\.auc\.difference: -0\.004 in the record, -0\.003/);
  const other = copy();
  other.benchmarks[0].name = "elsewhere";
  assert.deepEqual(recordDrift(other, base), ["elsewhere: not in the record"]);
  const seeds = copy();
  seeds.settings.seeds = [1];
  assert.deepEqual(recordDrift(seeds, base), ["settings.seeds: 2 entries in the record, 1 now"]);
});

Deno.test("eval:record Markdown: one row per benchmark with signed differences, the skipped ones and the verdict", () => {
  const record = routingRecord(
    [benchmarkRecord(BENCHMARKS[0], evalJson(-0.004, 0.01))],
    [{ name: "hapt", reason: "../shared/datasets/hapt/test.jsonl.gz is absent" }],
    SETTINGS,
  );
  const md = recordMarkdown(record);
  assert.match(
    md,
    /\| default: 2D pose .* \| 80\.0% \/ 85\.0% \| rank:confidence; rank:confidence \| −0\.004 \(SE 0\.010; z −0\.4\) \| −0\.4 \(SE 1\.0; z −0\.4\) \|/,
  );
  assert.match(md, /\| hapt: not run \(\.\.\/shared\/datasets\/hapt\/test\.jsonl\.gz is absent\) \|/);
  assert.match(md, /Targets: every benchmark met: yes; one higher by at least 1 SE on both measures: no\./);
});

Deno.test("eval:record refuses an unknown benchmark, bad seeds and a --write that would drop a benchmark", async () => {
  const run = async (...args: string[]) => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["task", "--quiet", "eval:record", ...args],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).output();
    return { code: r.code, stderr: new TextDecoder().decode(r.stderr).trim() };
  };
  const usage = " (usage: deno task eval:record --help)";
  assert.deepEqual(await run("--only", "nope"), {
    code: 2,
    stderr: `Cannot record: unknown benchmark nope (default, hapt, cross-view-3d)${usage}`,
  });
  assert.deepEqual(await run("--seeds", "1,x"), {
    code: 2,
    stderr: `Cannot record: --seeds must be integers, e.g. 1,2,3${usage}`,
  });
  assert.deepEqual(await run("--only", "hapt", "--write", "/tmp/never-written.json"), {
    code: 2,
    stderr: `Cannot record: --write needs every benchmark; not run: default, cross-view-3d${usage}`,
  });
  assert.deepEqual(await run("--hapt", "/absent/hapt.jsonl.gz", "--write", "/tmp/never-written.json"), {
    code: 2,
    stderr: `Cannot record: --write needs every benchmark; not run: hapt (/absent/hapt.jsonl.gz is absent)${usage}`,
  });
});

/** Checks that hold for any data: what the deploy protocol and the eval promise, read off the record. */
function checkInvariants(b: BenchmarkRecord): void {
  const names = b.policies.map((p) => p.name);
  for (const n of ["random", "rank:confidence", "rule:max_prob", "rule:margin", "rule:entropy", "oracle"]) {
    assert.ok(names.includes(n), `${b.name}: no ${n} row`);
  }
  assert.ok(names.includes("installed by dmd"), `${b.name}: no installed row`);
  assert.ok(names.some((n) => n.startsWith("served (")), `${b.name}: no served row`);
  for (const s of b.seeds) {
    // Named as dmd names releases: a candidate, or the served switcher kept by the gate.
    const chosen = s.installed.split(" (the gate refused")[0];
    assert.ok(
      names.includes(chosen) || s.installed.startsWith("served ("),
      `${b.name} seed ${s.seed}: installed "${s.installed}" is neither a candidate nor the served switcher`,
    );
    assert.ok(s.bestRule.startsWith("rule:") && s.poolRule.startsWith("rule:"));
    // Split by subject wherever the rows carry at least 4: no subject is both learned from and evaluated.
    if (s.poolGroups.length + s.evaluatedGroups.length >= 4) {
      const overlap = s.poolGroups.filter((g) => s.evaluatedGroups.includes(g));
      assert.deepEqual(overlap, [], `${b.name} seed ${s.seed}: subjects both in the pool and evaluated`);
    }
  }
  // The bar is the rule best on the evaluated half: no rule is above it.
  for (const p of b.policies.filter((p) => p.name.startsWith("rule:"))) {
    assert.ok(p.deltaAuc.difference <= 1e-12, `${b.name}: ${p.name} is above the best rule`);
  }
  // Every difference comes with its paired SE (only a policy that ranks as the bar does has none).
  for (const p of b.policies.filter((p) => p.deltaAuc.difference !== 0)) {
    assert.ok(p.deltaAuc.standardError > 0, `${b.name}: ${p.name} has no paired SE`);
  }
  assert.ok(b.cloudAccuracy > 0 && b.edgeAccuracy > 0 && b.evaluatedRows > 0);
}

Deno.test({
  name: "eval:record reproduces docs/routing-record.json on every benchmark at hand, and the record holds its promises",
  // Three deploy-protocol evals, three seeds each: about two minutes on two cores.
  sanitizeResources: false,
  fn: async () => {
    const out = await Deno.makeTempDir({ prefix: "dmd_record_" });
    try {
      const result = await new Deno.Command(Deno.execPath(), {
        args: ["task", "--quiet", "eval:record", "--out", out, "--check", "docs/routing-record.json"],
        cwd: ROOT,
        stdout: "piped",
        stderr: "piped",
      }).output();
      const stdout = new TextDecoder().decode(result.stdout);
      const stderr = new TextDecoder().decode(result.stderr);
      const tail = stderr.split("\n").filter((l) => !l.includes("[#") && !l.startsWith("seed ")).join("\n");
      assert.equal(result.code, 0, `eval:record exited ${result.code}:\n${tail}\n${stdout}`);
      assert.match(stdout, /no drift from docs\/routing-record\.json/);
      const record = JSON.parse(await Deno.readTextFile(`${out}/record.json`)) as RoutingRecord;
      const committed = JSON.parse(await Deno.readTextFile(`${ROOT}docs/routing-record.json`)) as RoutingRecord;
      // Every benchmark of record ran, except one whose data is absent here (HAPT without ../shared), said so.
      assert.deepEqual(
        [...record.benchmarks.map((b) => b.name), ...record.skipped.map((s) => s.name)].sort(),
        BENCHMARKS.map((b) => b.name).sort(),
      );
      for (const s of record.skipped) {
        assert.match(s.reason, /is absent$/);
        console.log(`not run here: ${s.name} (${s.reason})`);
      }
      assert.deepEqual(committed.skipped, [], "the committed record has every benchmark");
      for (const b of record.benchmarks) checkInvariants(b);
      // The figures of record, in this run's log.
      console.log(stdout.split("\n").filter((l) => l.startsWith("| ") || l.startsWith("Targets")).join("\n"));
    } finally {
      await Deno.remove(out, { recursive: true });
    }
  },
});
