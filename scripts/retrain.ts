/**
 * `deno task retrain`: the learning loop's job. Safe to run from cron at any time: one run at a time per models
 * folder (a second is refused, exit 3), and a run with too few new pairs does nothing (exit 0).
 *
 *   deno task retrain [--models DIR] [--window-days 7] [--since ISO-DATE] [--offload-rate R] [--no-ipw]
 *                     [--target soft|hard] [--features auto|confidence|confidence+quality|all]
 *                     [--min-new-pairs 200] [--holdout 0.2] [--tolerance 0] [--seed 1] [--force] [--dry-run] [--json]
 *
 * Takes the pairs the service logged (offloaded and shadowed decisions) of the serving edge model, weights them by
 * inverse propensity, chooses a candidate switcher among the confidence rules and MLPs by cross-validation on folds
 * grouped by client or edge location (loop/retrain.ts, switcher/selection.ts), calibrates its threshold on recent traffic, and
 * promotes it only if it is at least as good as the active switcher and the best confidence rule on the same
 * held-out recent pairs (the gate metric: weighted ROC AUC for edge/cloud disagreement, switcher/gate.ts); `--force`
 * promotes a refused candidate and records that it was forced. Every candidate is stored with its
 * provenance, metrics and artefact (in the database and beside the manifest); a promoted one becomes the
 * manifest's switcher and every edge app sharing the database loads it (SWITCHER_POLL_MS, or POST
 * /admin/switcher/reload). Drift against the active version's training window is reported.
 *
 * Exit codes: 0 promoted, skipped or (dry run) reported; 1 failed; 2 bad flags; 3 another run holds the lock;
 * 4 the candidate was rejected by the gate.
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/client.ts";
import { acquireJobLockOrExit, jobLockPath } from "../loop/job_lock.ts";
import { retrain, type RetrainReport } from "../loop/retrain.ts";
import { FEATURE_SETS, type FeatureSet } from "../switcher/features.ts";
import { readManifest } from "../workers/artefacts.ts";
import { parseFlags, usageError } from "./cli.ts";

const USAGE =
  `usage: deno task retrain [--models DIR] [--window-days 7] [--since ISO-DATE] [--offload-rate R] [--no-ipw]
  [--target soft|hard] [--features auto|confidence|confidence+quality|all] [--min-new-pairs 200] [--holdout 0.2]
  [--tolerance 0] [--seed 1] [--force] [--dry-run] [--json]`;

const args = parseFlags({
  models: { type: "string" },
  "window-days": { type: "string", default: "7" },
  since: { type: "string" },
  "offload-rate": { type: "string" },
  "no-ipw": { type: "boolean", default: false },
  target: { type: "string", default: "soft" },
  features: { type: "string", default: "auto" },
  "min-new-pairs": { type: "string", default: "200" },
  holdout: { type: "string", default: "0.2" },
  tolerance: { type: "string", default: "0" },
  seed: { type: "string", default: "1" },
  force: { type: "boolean", default: false },
  "dry-run": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
}, USAGE);

function fail(message: string): never {
  usageError(message, USAGE);
}
const num = (name: string, v: string | undefined, lo: number, hi: number): number | undefined => {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isFinite(n) || n < lo || n > hi) fail(`Cannot retrain: --${name} must be a number in [${lo}, ${hi}]`);
  return n;
};
if (args.target !== "soft" && args.target !== "hard") fail("Cannot retrain: --target must be soft or hard");
if (args.features !== "auto" && !(FEATURE_SETS as readonly string[]).includes(args.features!)) {
  fail(`Cannot retrain: --features must be auto or one of ${FEATURE_SETS.join(", ")}`);
}
const sinceMs = args.since !== undefined ? Date.parse(args.since) : undefined;
if (sinceMs !== undefined && Number.isNaN(sinceMs)) fail(`Cannot retrain: --since "${args.since}" is not a date`);
const windowDays = num("window-days", args["window-days"], 0, 3650)!;
const offloadRate = num("offload-rate", args["offload-rate"], 0, 1);
const minNewPairs = num("min-new-pairs", args["min-new-pairs"], 0, 1e9)!;
const holdout = num("holdout", args.holdout, 0.01, 0.9)!;
const tolerance = num("tolerance", args.tolerance, 0, 1)!;
const seed = num("seed", args.seed, 0, 2 ** 31)!;

const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const lock = await acquireJobLockOrExit(jobLockPath(modelsDir));

let report: RetrainReport | undefined;
const database = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });
try {
  const manifest = await readManifest(modelsDir);
  let n = 0;
  report = await retrain({
    db: database.db,
    modelsDir,
    manifest,
    windowMs: windowDays * 86_400_000,
    sinceMs,
    offloadRate,
    ipw: !args["no-ipw"],
    target: args.target as "soft" | "hard",
    featureSets: args.features === "auto" ? FEATURE_SETS : [args.features as FeatureSet],
    minNewPairs,
    holdoutFraction: holdout,
    gate: { tolerance },
    seed,
    dryRun: args["dry-run"],
    force: args.force,
    lock,
    codeVersion: (await gitVersion()) ?? undefined,
    onStep: (s) => console.error(`[${++n}] ${s} ...`),
  });
} catch (err) {
  // Reported here; the exit waits for the lock's release below (Deno.exit would skip it and leave the lock behind).
  console.error(`Cannot retrain: ${(err as Error).message}`);
} finally {
  database.close();
  await lock.release();
}
if (report === undefined) Deno.exit(1);

async function gitVersion(): Promise<string | null> {
  try {
    const out = await new Deno.Command("git", { args: ["rev-parse", "--short", "HEAD"], stderr: "null" }).output();
    return out.success ? new TextDecoder().decode(out.stdout).trim() : null;
  } catch {
    return null;
  }
}

if (args.json) console.log(JSON.stringify(report, null, 2));
else {
  const f = (v: number | undefined | null) => (v === undefined || v === null || Number.isNaN(v) ? "-" : v.toFixed(4));
  const c = report.counts;
  console.log(`\nretrain: ${report.outcome}${report.version ? ` ${report.version}` : ""} — ${report.reason}`);
  console.log(
    `window ${new Date(report.window.fromMs).toISOString()} .. ${new Date(report.window.toMs).toISOString()}; ` +
      `${c.pairs} pairs (${c.newPairs} new; ${c.offloaded} offloaded, ${c.shadow} shadow), ${c.train} train, ` +
      `${c.holdout} held out; ${report.seconds.total.toFixed(1)} s (train ${report.seconds.train.toFixed(1)} s)`,
  );
  const v = report.verdict;
  if (v) {
    console.log(
      `\n| held-out recent pairs (${v.pairs}, ${v.disagreements} disagreements) | candidate | active (${
        report.active ?? "none"
      }) |`,
    );
    console.log(`|---|---|---|`);
    console.log(`| weighted AUC for disagreement (gate) | ${f(v.candidate.auc)} | ${f(v.active?.auc)} |`);
    console.log(`| offload rate at its threshold | ${f(v.candidate.offloadRate)} | ${f(v.active?.offloadRate)} |`);
    console.log(`| agreement with cloud | ${f(v.candidate.agreement)} | ${f(v.active?.agreement)} |`);
    console.log(
      `\ncandidate: ${report.candidateName}; threshold ${f(report.threshold)} for offload rate ${
        f(report.offloadRate)
      }`,
    );
  }
  if (report.drift) {
    const d = report.drift;
    console.log(
      `\ndrift vs the active version's training window: score PSI ${f(d.scorePsi)}, label PSI ${f(d.labelPsi)}` +
        (d.agreement ? `, shadow agreement ${f(d.agreement.reference)} -> ${f(d.agreement.recent)}` : ""),
    );
    for (const s of d.shifts) console.log(`  shift: ${s} (retrain on it: deno task retrain --since <when it began>)`);
  } else console.log("\ndrift: no reference window (the active version was not trained on logged traffic)");
}
Deno.exit(report.outcome === "rejected" && !args["dry-run"] ? 4 : 0);
