/**
 * `deno task eval:record`: the routing benchmarks of record. Runs `deno task eval` (deploy protocol: DMD on half of
 * the subjects, evaluated on the others) on each benchmark's data and model pair, the same way every time, and writes
 * what the product's routing claim rests on: per benchmark, the switcher `deno task dmd` installs on each seed, every
 * policy's disagreement AUC and accuracy at 10% offload with its paired difference to the best confidence rule, and
 * the installed switcher against both rule bars with the targets' verdicts.
 *
 *   deno task eval:record [--seeds 1,2,3] [--out build/eval-record] [--only NAME[,NAME]] [--hapt FILE]
 *                         [--check FILE] [--write FILE]
 *
 * Benchmarks ({@link BENCHMARKS}): the default data (2D pose from motion capture, one performance per action; the
 * default models), HAPT's test subjects (inertial; `datasets/models/hapt`; skipped, saying so, when `--hapt` is
 * absent) and the 3D cross-view set (new camera sector and new performers; `datasets/models/cross-view-3d`). The cloud
 * model runs on onnxruntime-web (`--cloud-runtime wasm`), whose outputs are the same bit for bit on every CPU, so the
 * record is reproducible: `--check docs/routing-record.json` compares a fresh run with the committed record and exits
 * 1 on any drift (a changed choice, or a figure off by more than {@link TOLERANCE}); `--write` replaces it (only
 * from a run of every benchmark). Each
 * benchmark's full report is in `--out/NAME/` (eval.md, eval.json, curves.svg), the record in `--out/record.json` and
 * `--out/record.md`.
 *
 * Exit codes: 0 done (and, with --check, no drift), 1 drift or a failed eval, 2 bad flags.
 *
 * @module
 */
import { parseFlags, usageError } from "./cli.ts";
import {
  aggregate,
  barMet,
  type InstalledBar,
  installedBars,
  type MeanDifference,
  type SeedRun,
  spread,
} from "./eval_report.ts";

/** One benchmark: a labelled dataset and the model pair evaluated on it. */
export interface Benchmark {
  name: string;
  /** What the data are and what deployment changes between the pool and the evaluated half. */
  title: string;
  dataset: string;
  models: string;
}

/** The benchmarks of record, in the order of `docs/routing.md`. */
export const BENCHMARKS: readonly Benchmark[] = [
  {
    name: "default",
    title: "2D pose from motion capture, new cameras and time spans (one performance per action)",
    dataset: "datasets/mocap/test.jsonl.gz",
    models: "wasm-models",
  },
  {
    name: "hapt",
    title: "HAPT inertial (accelerometer and gyroscope), new subjects",
    dataset: "../shared/datasets/hapt/test.jsonl.gz",
    models: "datasets/models/hapt",
  },
  {
    name: "cross-view-3d",
    title: "3D skeletons, new camera sector and new performers",
    dataset: "datasets/mocap/cross-view-3d-test.jsonl.gz",
    models: "datasets/models/cross-view-3d",
  },
];

/** Figures may differ by this much (absolute) before --check calls it drift; the choices must match exactly. */
export const TOLERANCE = 1e-6;

/** A mean difference over seeds, its sample SD over seeds, its mean paired SE and z. */
export interface Difference {
  difference: number;
  seedSd: number;
  standardError: number;
  z: number | null;
}

/** The installed switcher against one rule bar. */
export interface BarRecord {
  rules: string[];
  auc: Difference;
  acc10: Difference;
  /** Both differences at least −0.5 SE. */
  met: boolean;
}

/** One benchmark's record. */
export interface BenchmarkRecord {
  name: string;
  title: string;
  dataset: string;
  models: { edge: string; cloud: string; switcher: string | null };
  split: string;
  evaluatedRows: number;
  edgeAccuracy: number;
  cloudAccuracy: number;
  seeds: {
    seed: number;
    installed: string;
    bestRule: string;
    poolRule: string;
    poolGroups: string[];
    evaluatedGroups: string[];
  }[];
  /** Every policy: mean disagreement AUC and accuracy at 10% offload, and each minus the best rule. */
  policies: { name: string; auc: number; acc10: number; deltaAuc: Difference; deltaAcc10: Difference }[];
  hindsight: BarRecord;
  pool: BarRecord;
  /** Both measures at least 1 SE above the rule best in hindsight. */
  higherByOneSe: boolean;
}

/** The whole record. */
export interface RoutingRecord {
  about: string;
  settings: { seeds: number[]; offloadRate: number; resamples: number; cloudRuntime: string };
  benchmarks: BenchmarkRecord[];
  /** The benchmarks that were not run, with the reason. */
  skipped: { name: string; reason: string }[];
  /** The routing targets: every benchmark's hindsight bar met, and one benchmark higher by at least 1 SE on both. */
  targets: { everyBarMet: boolean; oneHigherByOneSe: boolean };
}

/** The subset of eval.json the record reads. */
export interface EvalJson {
  models: { edge: string; cloud: string; switcher: string | null };
  settings: { seeds: number[]; offloadRate: number; resamples: number };
  runs: SeedRun[];
}

const difference = (x: MeanDifference): Difference => ({
  difference: x.difference.mean,
  seedSd: x.difference.sd,
  standardError: x.standardError,
  z: x.standardError > 0 ? x.difference.mean / x.standardError : null,
});

const barRecord = (bar: InstalledBar): BarRecord => ({
  rules: bar.rules,
  auc: difference(bar.auc),
  acc10: difference(bar.acc),
  met: barMet(bar.auc) && barMet(bar.acc),
});

/**
 * One benchmark's record from its eval.json.
 *
 * @param benchmark the benchmark
 * @param json `deno task eval`'s eval.json for it
 * @returns the record
 * @throws Error when the eval has no installed row
 */
export function benchmarkRecord(benchmark: Benchmark, json: EvalJson): BenchmarkRecord {
  const rows = aggregate(json.runs);
  const bars = installedBars(json.runs, rows);
  if (bars.length !== 2) throw new Error(`the eval of ${benchmark.name} has no "installed by dmd" row`);
  const [hindsight, pool] = bars.map(barRecord);
  const above = (x: Difference) => x.z !== null && x.z >= 1;
  return {
    name: benchmark.name,
    title: benchmark.title,
    dataset: benchmark.dataset,
    models: json.models,
    split: json.runs[0].split,
    evaluatedRows: json.runs[0].evalRows,
    edgeAccuracy: spread(json.runs.map((r) => r.edgeAccuracy)).mean,
    cloudAccuracy: spread(json.runs.map((r) => r.cloudAccuracy)).mean,
    seeds: json.runs.map((r) => ({
      seed: r.seed,
      installed: r.installed,
      bestRule: r.bestRule,
      poolRule: r.poolRule,
      poolGroups: r.groups.pool,
      evaluatedGroups: r.groups.evaluated,
    })),
    policies: rows.map((r) => ({
      name: r.name,
      auc: r.disagreementAuc.mean,
      acc10: r.accuracyAt[0].mean,
      deltaAuc: difference(r.vsBestRule.disagreementAuc),
      deltaAcc10: difference(r.vsBestRule.accuracyAt[0]),
    })),
    hindsight,
    pool,
    higherByOneSe: above(hindsight.auc) && above(hindsight.acc10),
  };
}

/**
 * The whole record from the benchmarks' records.
 *
 * @param benchmarks the records of the benchmarks that ran
 * @param skipped those that did not, with the reason
 * @param settings the eval settings they share
 * @returns the record, with the targets' verdicts
 */
export function routingRecord(
  benchmarks: BenchmarkRecord[],
  skipped: RoutingRecord["skipped"],
  settings: RoutingRecord["settings"],
): RoutingRecord {
  return {
    about: "deno task eval:record: the routing benchmarks of docs/routing.md (deploy protocol, split by subject or " +
      "performer where the rows carry them). Differences are the installed switcher minus the bar's rule, mean over " +
      "seeds, with the mean paired bootstrap SE; accuracies are fractions.",
    settings,
    benchmarks,
    skipped,
    targets: {
      everyBarMet: benchmarks.length > 0 && benchmarks.every((b) => b.hindsight.met),
      oneHigherByOneSe: benchmarks.some((b) => b.higherByOneSe),
    },
  };
}

/**
 * Where a fresh record departs from the committed one: each changed choice, and each figure off by more than
 * {@link TOLERANCE}. Benchmarks only one side ran are not compared (named in the result).
 *
 * @param fresh the record just measured
 * @param committed the record of reference
 * @returns one line per departure; empty when they agree
 */
export function recordDrift(fresh: RoutingRecord, committed: RoutingRecord): string[] {
  const out: string[] = [];
  const walk = (path: string, a: unknown, b: unknown) => {
    if (typeof a === "number" && typeof b === "number") {
      if (!(Math.abs(a - b) <= TOLERANCE)) out.push(`${path}: ${b} in the record, ${a} now`);
    } else if (Array.isArray(a) && Array.isArray(b)) {
      if (a.length !== b.length) out.push(`${path}: ${b.length} entries in the record, ${a.length} now`);
      else a.forEach((x, i) => walk(`${path}[${i}]`, x, b[i]));
    } else if (a && b && typeof a === "object" && typeof b === "object") {
      const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
      for (const k of keys) {
        walk(`${path}.${k}`, (a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]);
      }
    } else if (a !== b) {
      out.push(`${path}: ${JSON.stringify(b)} in the record, ${JSON.stringify(a)} now`);
    }
  };
  walk("settings", fresh.settings, committed.settings);
  for (const b of fresh.benchmarks) {
    const c = committed.benchmarks.find((x) => x.name === b.name);
    if (c) walk(b.name, b, c);
    else out.push(`${b.name}: not in the record`);
  }
  return out;
}

const sign = (v: number, digits: number) => {
  const text = Math.abs(v).toFixed(digits);
  return parseFloat(text) === 0 ? text : `${v >= 0 ? "+" : "−"}${text}`;
};
const diff = (x: Difference, scale: number, digits: number) =>
  `${sign(x.difference * scale, digits)} (SE ${(x.standardError * scale).toFixed(digits)}; z ${
    x.z === null ? "–" : sign(x.z, 1)
  })`;

/**
 * The record as Markdown: one row per benchmark against the targets.
 *
 * @param record the record
 * @returns Markdown
 */
export function recordMarkdown(record: RoutingRecord): string {
  const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
  const lines = [
    "## Routing benchmarks of record",
    "",
    `Deploy protocol, seeds ${record.settings.seeds.join(", ")}, ${record.settings.resamples} paired bootstrap ` +
    `resamples, the threshold calibrated on the pool to ${pct(record.settings.offloadRate)} offload, the cloud model ` +
    `on ${record.settings.cloudRuntime}. Δ: the installed switcher minus the rule best on the evaluated half (in ` +
    "hindsight), and minus the rule the pool ranks best; mean over seeds, mean paired SE, z. Met: Δ AUC and Δ acc@10 " +
    "against the hindsight rule both at least −0.5 SE.",
    "",
    "| benchmark | edge / cloud | installed per seed | Δ AUC (hindsight rule) | Δ acc@10, points (hindsight rule) | " +
    "Δ AUC (pool's rule) | Δ acc@10, points (pool's rule) | met |",
    "| --- | --- | --- | --- | --- | --- | --- | --- |",
  ];
  for (const b of record.benchmarks) {
    lines.push(
      `| ${b.name}: ${b.title} | ${pct(b.edgeAccuracy)} / ${pct(b.cloudAccuracy)} | ${
        b.seeds.map((s) => s.installed).join("; ")
      } | ${diff(b.hindsight.auc, 1, 3)} | ${diff(b.hindsight.acc10, 100, 1)} | ${diff(b.pool.auc, 1, 3)} | ${
        diff(b.pool.acc10, 100, 1)
      } | ${b.hindsight.met ? "yes" : "no"}${b.higherByOneSe ? ", ≥ +1 SE on both" : ""} |`,
    );
  }
  for (const s of record.skipped) lines.push(`| ${s.name}: not run (${s.reason}) | – | – | – | – | – | – | – |`);
  lines.push(
    "",
    `Targets: every benchmark met: ${record.targets.everyBarMet ? "yes" : "no"}; one higher by at least 1 SE on ` +
      `both measures: ${record.targets.oneHigherByOneSe ? "yes" : "no"}.`,
  );
  return lines.join("\n");
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return false;
    throw err;
  }
}

const USAGE = `usage: deno task eval:record [--seeds 1,2,3] [--out build/eval-record] [--only NAME[,NAME]]
  [--hapt FILE] [--check FILE] [--write FILE]`;

async function main(): Promise<number> {
  const args = parseFlags({
    seeds: { type: "string", default: "1,2,3" },
    out: { type: "string", default: "build/eval-record" },
    only: { type: "string" },
    hapt: { type: "string", default: "../shared/datasets/hapt/test.jsonl.gz" },
    check: { type: "string" },
    write: { type: "string" },
  }, USAGE);
  const seeds = args.seeds!.split(",").map(Number);
  if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s))) {
    usageError("Cannot record: --seeds must be integers, e.g. 1,2,3", USAGE);
  }
  const names = BENCHMARKS.map((b) => b.name);
  const only = args.only?.split(",") ?? names;
  const unknown = only.filter((n) => !names.includes(n));
  if (unknown.length) usageError(`Cannot record: unknown benchmark ${unknown.join(", ")} (${names.join(", ")})`, USAGE);
  const committed = args.check ? JSON.parse(await Deno.readTextFile(args.check)) as RoutingRecord : null;
  const benchmarks = BENCHMARKS.filter((b) => only.includes(b.name));
  /** Where each benchmark's data is read from (`--hapt` moves HAPT's); the record keeps the benchmark's own path. */
  const dataOf = (b: Benchmark) => (b.name === "hapt" ? args.hapt! : b.dataset);
  const skipped: RoutingRecord["skipped"] = [];
  for (const b of benchmarks) {
    if (!(await exists(dataOf(b)))) skipped.push({ name: b.name, reason: `${dataOf(b)} is absent` });
  }
  if (args.write) {
    // The record of reference has every benchmark: a partial run would drop the others from it.
    const missing = [
      ...BENCHMARKS.filter((b) => !benchmarks.includes(b)).map((b) => b.name),
      ...skipped.map((s) => `${s.name} (${s.reason})`),
    ];
    if (missing.length) {
      usageError(`Cannot record: --write needs every benchmark; not run: ${missing.join(", ")}`, USAGE);
    }
  }
  const records: BenchmarkRecord[] = [];
  let settings: RoutingRecord["settings"] | null = null;
  for (const b of benchmarks) {
    const absent = skipped.find((s) => s.name === b.name);
    if (absent) {
      console.error(`eval:record: ${b.name} skipped: ${absent.reason}`);
      continue;
    }
    const out = `${args.out}/${b.name}`;
    console.error(`eval:record: ${b.name}: deno task eval --dataset ${dataOf(b)} --models ${b.models} ...`);
    const env = Deno.env.toObject();
    // The reference server on loopback, whatever the operator's environment points the service at.
    delete env.CLOUD_URL;
    const status = await new Deno.Command(Deno.execPath(), {
      args: [
        "task",
        "--quiet",
        "eval",
        "--dataset",
        dataOf(b),
        "--models",
        b.models,
        "--seeds",
        seeds.join(","),
        "--cloud-runtime",
        "wasm",
        "--out",
        out,
      ],
      env,
      clearEnv: true,
      stdout: "null",
      stderr: "inherit",
    }).output();
    if (!status.success) {
      console.error(`eval:record: the eval of ${b.name} failed (exit ${status.code})`);
      return 1;
    }
    const json = JSON.parse(await Deno.readTextFile(`${out}/eval.json`)) as EvalJson;
    settings ??= {
      seeds: json.settings.seeds,
      offloadRate: json.settings.offloadRate,
      resamples: json.settings.resamples,
      cloudRuntime: "onnxruntime-web (WASM)",
    };
    records.push(benchmarkRecord(b, json));
  }
  const record = routingRecord(
    records,
    skipped,
    settings ?? {
      seeds,
      offloadRate: 0.2,
      resamples: 500,
      cloudRuntime: "onnxruntime-web (WASM)",
    },
  );
  const md = recordMarkdown(record);
  await Deno.mkdir(args.out!, { recursive: true });
  await Deno.writeTextFile(`${args.out}/record.json`, JSON.stringify(record, null, 2) + "\n");
  await Deno.writeTextFile(`${args.out}/record.md`, md + "\n");
  if (args.write) await Deno.writeTextFile(args.write, JSON.stringify(record, null, 2) + "\n");
  console.log(md);
  console.log(`\nwrote ${args.out}/record.json, record.md${args.write ? ` and ${args.write}` : ""}`);
  if (committed) {
    const drift = recordDrift(record, committed);
    if (drift.length) {
      console.error(`eval:record: ${drift.length} departures from ${args.check}:\n  ${drift.join("\n  ")}`);
      return 1;
    }
    console.log(`no drift from ${args.check}`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main());
