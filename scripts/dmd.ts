/**
 * `deno task dmd`: Dual-Model Distillation. Runs both models over unlabeled sequences (a dataset file; labels, if
 * present, are never used), stores the pairs in libSQL, chooses a switcher among the confidence rules' rank average
 * (an ONNX network fitted on the pairs without labels, switcher/rank.ts), the confidence rules and MLPs on
 * DMD labels by cross-validated disagreement AUC on folds grouped by subject (dataset rows) or by client / edge
 * location (logged pairs; time blocks without them), with the one-standard-error rule toward the simpler candidate
 * (switcher/selection.ts), calibrates its threshold, and publishes it as the active switcher release through the
 * release registry (loop/registry.ts: `switcher_versions` and the manifest's switcher; a rule is a rule release, no
 * model file) only if it is not worse than the active release and the best confidence rule on the held-out folds
 * (`--force` installs anyway, and says so in the release's provenance; a refused one is recorded as rejected).
 *
 *   deno task dmd --dataset datasets/mocap/dmd.jsonl.gz
 *
 * Flags:
 *   --dataset FILE        unlabeled sequences (JSONL or JSONL.gz), or
 *   --from-log            the pairs the service logged (offloaded and shadowed decisions) in DATABASE_URL
 *   --since ISO-DATE      with --from-log: only decisions from then on
 *   --models DIR          model set to read and install into (default: MODELS_DIR or wasm-models)
 *   --target hard|soft    DMD label to learn (default soft)
 *   --features SET        auto | confidence | confidence+quality | all (default auto: every MLP candidate; a set
 *                         keeps only that MLP beside the rules and their rank average): the feature columns an
 *                         MLP candidate reads; the ONNX input stays the full feature vector
 *   --folds K             cross-validation folds (default 5)
 *   --tolerance T         the gate lets the chosen switcher be this much worse in fold AUC (default 0)
 *   --force               install even when the gate refuses
 *   --offload-rate R      calibrate to this offload rate (default 0.2), or
 *   --agreement A         calibrate to this agreement with the cloud model
 *   --epochs N; --seed N  MLP training (each MLP candidate has its own widths and L2 penalty)
 *   --version NAME        switcher version (default switcher-<date>-<time>)
 *   --dry-run             train and report, install nothing
 *   --json                print the report as JSON
 *   --hop N               the hop to train (default 0: edge -> first cloud tier); N >= 1 (more than two tiers
 *                         configured) learns from the logged tier rows (--from-log), among the confidence rules over
 *                         tier N's answer (scripts/dmd_hop.ts)
 * The cloud model is reached at CLOUD_URL, or on a reference server started here on loopback.
 * Exit codes: 0 installed (or dry run), 2 bad flags, 4 the gate refused (nothing installed).
 *
 * @module
 */
import { startReferenceServer } from "../cloud/reference_server.ts";
import { createOipClient } from "../cloud/oip_client.ts";
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/client.ts";
import { listLoggedPairs, upsertPairs } from "../db/queries.ts";
import { type CollectedPair, collectPairs } from "../loop/pairs.ts";
import { fittedRelease, publishRelease, seedFromManifest } from "../loop/registry.ts";
import { scoreRelease } from "../loop/retrain.ts";
import { dmdLabel } from "../switcher/dmd_labels.ts";
import { FEATURE_SETS, featureNames, type FeatureSet } from "../switcher/features.ts";
import { candidatesFor } from "../switcher/candidates.ts";
import { gateSelection, gateWithFallback, selectionSummary, selectSwitcher } from "../switcher/selection.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { readDatasetItems, skippedLine } from "./dataset_pairs.ts";
import { parseFlags, usageError } from "./cli.ts";
import { progressBar } from "./progress.ts";
import { runHopDmd } from "./dmd_hop.ts";

const USAGE = `usage: deno task dmd (--dataset FILE | --from-log [--since ISO-DATE]) [--models DIR]
  [--target hard|soft] [--features auto|SET] [--folds K] [--tolerance T] [--force]
  [--offload-rate R | --agreement A] [--epochs N] [--seed N] [--version NAME] [--dry-run] [--json] [--hop N]
--hop N >= 1 (more than two tiers): hop N's switcher from the logged tier rows (with --from-log).
Exit codes: 0 installed (or dry run), 2 bad flags, 4 the gate refused (nothing installed).`;

const args = parseFlags({
  dataset: { type: "string" },
  "from-log": { type: "boolean", default: false },
  since: { type: "string" },
  models: { type: "string" },
  target: { type: "string", default: "soft" },
  features: { type: "string", default: "auto" },
  "offload-rate": { type: "string" },
  agreement: { type: "string" },
  folds: { type: "string", default: "5" },
  tolerance: { type: "string", default: "0" },
  force: { type: "boolean", default: false },
  epochs: { type: "string", default: "60" },
  seed: { type: "string", default: "1" },
  version: { type: "string" },
  "dry-run": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
  hop: { type: "string", default: "0" },
}, USAGE);
if (!args.dataset === !args["from-log"]) {
  usageError("Cannot run DMD: give either --dataset FILE or --from-log", USAGE);
}
if (args.target !== "hard" && args.target !== "soft") {
  usageError(`Cannot run DMD: --target must be hard or soft, got "${args.target}"`, USAGE);
}
if (args.features !== "auto" && !(FEATURE_SETS as readonly string[]).includes(args.features!)) {
  usageError(
    `Cannot run DMD: --features must be auto or one of ${FEATURE_SETS.join(", ")}, got "${args.features}"`,
    USAGE,
  );
}
const featureSets: readonly FeatureSet[] = args.features === "auto" ? FEATURE_SETS : [args.features as FeatureSet];
const folds = Number(args.folds);
const tolerance = Number(args.tolerance);
if (!Number.isInteger(folds) || folds < 2 || !(tolerance >= 0 && tolerance <= 1)) {
  usageError("Cannot run DMD: --folds must be an integer >= 2 and --tolerance a number in [0, 1]", USAGE);
}
const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const seed = Number(args.seed);
const calibrate = args.agreement !== undefined
  ? { agreement: Number(args.agreement) }
  : { offloadRate: Number(args["offload-rate"] ?? 0.2) };
const now = new Date();
const version = args.version ??
  `switcher-${now.toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-")}`;

const hop = Number(args.hop);
if (!Number.isInteger(hop) || hop < 0) {
  usageError(`Cannot run DMD: --hop must be an integer >= 0, got "${args.hop}"`, USAGE);
}
if (hop > 0) {
  // A hop past the first: tier rows from the log, confidence rules (scripts/dmd_hop.ts).
  if (!args["from-log"]) usageError("Cannot run DMD: --hop N >= 1 learns from the log: give --from-log", USAGE);
  const sinceMs = args.since ? Date.parse(args.since) : undefined;
  if (sinceMs !== undefined && Number.isNaN(sinceMs)) {
    usageError(`Cannot run DMD: --since "${args.since}" is not a date`, USAGE);
  }
  const database = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });
  try {
    Deno.exitCode = await runHopDmd({
      db: database.db,
      hop,
      modelsDir,
      sinceMs,
      version: args.version ?? `${version}-hop${hop}`,
      target: args.target as "hard" | "soft",
      calibrate,
      folds,
      tolerance,
      seed,
      force: args.force,
      dryRun: args["dry-run"],
      json: args.json,
    });
  } finally {
    database.close();
  }
  Deno.exit();
}

const { manifest, init } = await loadModelSet(modelsDir, { warmupRuns: 1, switcher: null });
const edgeSpec = manifest.edge;
const database = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });

/** Pairs from a corpus file: both models run here, through the service's own pool and cloud client. */
async function corpusPairs(
  path: string,
): Promise<{ pairs: CollectedPair[]; cloudFailures: number; groups: (string | null)[] }> {
  const read = await readDatasetItems(path, edgeSpec, { maxFrames: config.maxFrames, keepLabels: true });
  const { items, rows } = read;
  console.error(`DMD: ${items.length} sequences from ${path}`);
  const skipped = skippedLine(path, read);
  if (skipped) console.error(`DMD: ${skipped}`);
  const server = config.cloudUrl ? null : await startReferenceServer({
    host: "127.0.0.1",
    port: 0,
    modelsDir,
    modelName: config.cloudModelName,
    runtime: "auto",
  });
  const cloud = createOipClient({
    baseUrl: config.cloudUrl ?? server!.url,
    modelName: config.cloudModelName,
    timeoutMs: 30_000,
    auth: config.cloudAuth,
  });
  const pool = await createWorkerPool(init, { size: config.workers, queueMax: 1024 });
  const bar = progressBar("edge + cloud");
  const subjectOf = new Map(rows.map((r) => [String(r.id), r.subject === undefined ? null : String(r.subject)]));
  try {
    const collected = await collectPairs(items, {
      inference: pool,
      cloud,
      edgeSpec,
      cloudSpec: manifest.cloud,
      batchSize: 64,
      cloudTimeoutMs: 30_000,
      onProgress: bar.update,
    });
    return { ...collected, groups: collected.pairs.map((p) => subjectOf.get(p.sourceRef) ?? null) };
  } finally {
    bar.end();
    await pool.close();
    await server?.shutdown();
  }
}

/** Pairs the service logged: decisions that carry both outputs, of the serving edge model. */
async function loggedPairs(): Promise<{ pairs: CollectedPair[]; cloudFailures: number; groups: (string | null)[] }> {
  const sinceMs = args.since ? Date.parse(args.since) : undefined;
  if (sinceMs !== undefined && Number.isNaN(sinceMs)) {
    throw new RangeError(`Cannot run DMD: --since "${args.since}" is not a date`);
  }
  const rows = await listLoggedPairs(database.db, { sinceMs, edgeModelVersion: edgeSpec.version });
  console.error(`DMD: ${rows.length} logged pairs of ${edgeSpec.version} in the decision log`);
  return {
    pairs: rows.map((record) => ({ sourceRef: record.id, trueLabel: null, record })),
    cloudFailures: 0,
    // Oldest first, so without clients or locations the folds are blocks of time.
    groups: rows.map((r) => r.clientId ?? r.edgeLocation ?? null),
  };
}

try {
  const t0 = performance.now();
  const source = args.dataset ?? "decision log";
  const { pairs, cloudFailures, groups } = args.dataset ? await corpusPairs(args.dataset) : await loggedPairs();
  const collectSeconds = (performance.now() - t0) / 1000;

  // Store the pairs so that later jobs reuse them.
  await upsertPairs(
    database.db,
    pairs.map((p) => {
      const label = dmdLabel(p.record.edgeProbs, p.record.cloudProbs)!;
      return {
        source: args.dataset ? "corpus" as const : "log" as const,
        sourceRef: p.sourceRef,
        dataset: args.dataset ?? null,
        createdAt: Date.now(),
        edgeModelVersion: p.record.edgeModelVersion,
        cloudModelVersion: p.record.cloudModelVersion ?? manifest.cloud.version,
        edgeProbs: p.record.edgeProbs,
        cloudProbs: p.record.cloudProbs!,
        embedding: p.record.embedding,
        features: p.record.features,
        hardLabel: label.hard,
        softLabel: label.soft,
        propensity: p.record.offloadProbability || 1,
        trueLabel: p.trueLabel,
      };
    }),
  );

  console.error(`choosing the switcher on ${args.target} DMD labels (grouped ${folds}-fold cross-validation) ...`);
  const t1 = performance.now();
  const chosen = selectSwitcher(
    pairs.map((p) => ({
      features: p.record.features,
      edgeProbs: p.record.edgeProbs,
      cloudProbs: p.record.cloudProbs!,
    })),
    groups,
    {
      target: args.target,
      calibrate,
      seed,
      epochs: Number(args.epochs),
      candidates: candidatesFor(featureSets),
      folds: { k: folds, fallback: args.dataset ? "random" : "blocks" },
    },
  );
  // The active release (the registry's; seeded from the manifest on first use), scored on the same pairs.
  const features = featureNames(edgeSpec.embeddingSize ?? 0);
  const activeRelease = await seedFromManifest(database.db, { modelsDir });
  const active = {
    name: activeRelease.version,
    scores: await scoreRelease(activeRelease, pairs.map((p) => p.record.features)),
    rule: activeRelease.scorer.kind === "rule" ? activeRelease.scorer.rule : undefined,
  };
  if (activeRelease.provenance.data === source) {
    console.error(`note: the active switcher was trained on ${source}; its fold AUCs are in-sample and flatter it`);
  }
  // A learned candidate the gate refuses gives way to the label-free choice, gated in turn; with --force, the first
  // choice is what the operator overrides the gate for.
  const { selection, verdict } = args.force
    ? { selection: chosen, verdict: gateSelection(chosen, active, { tolerance }) }
    : gateWithFallback(chosen, active, { tolerance });
  const fitted = selection.fitted;
  const install = !args["dry-run"] && (verdict.promote || args.force);
  if (!verdict.promote && args.force && !args["dry-run"]) {
    console.error(`--force: installing although the gate refused (${verdict.reason})`);
  }
  const trainSeconds = (performance.now() - t1) / 1000;
  const provenance = {
    data: source,
    pairs: { pairs: pairs.length, crossValidated: selection.pool.pairs.length },
    cloudFailures,
    target: args.target,
    kind: fitted.candidate.kind,
    candidate: fitted.candidate.name,
    selection: selectionSummary(selection),
    gate: { ...verdict, tolerance, forced: !verdict.promote && args.force },
    columns: fitted.columns.length,
    seed,
    edgeModel: edgeSpec.version,
    cloudModel: manifest.cloud.version,
    bestEpoch: fitted.bestEpoch,
    command: `deno task dmd ${Deno.args.join(" ")}`,
  };
  const metrics = {
    data: `grouped ${selection.folds.k}-fold cross-validation on ${source} (${selection.folds.basis})`,
    meanFoldAuc: selection.chosen.mean,
    standardError: selection.chosen.standardError,
    gate: verdict.comparisons,
    ...(fitted.heldOut ? { heldOut: fitted.heldOut } : {}),
  };
  if (!args["dry-run"]) {
    const release = await fittedRelease(fitted, { version, features, provenance, metrics });
    // Recorded either way; made active (the previous one retired, a rollback target), in the manifest too, only
    // when the gate passed or --force.
    await publishRelease(database.db, { ...release, status: install ? "candidate" : "rejected" }, {
      modelsDir,
      activate: install,
    });
  }
  const report = {
    version,
    installed: install,
    candidate: fitted.candidate.name,
    modelsDir,
    threshold: fitted.threshold,
    calibration: fitted.calibration,
    selection: selectionSummary(selection),
    gate: verdict,
    forced: install && !verdict.promote,
    cloudFailures,
    seconds: { collect: collectSeconds, train: trainSeconds },
    heldOut: fitted.heldOut,
  };
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    const f = (v: number) => v.toFixed(4);
    const where = install
      ? `installed in ${modelsDir}${report.forced ? " (forced past the gate)" : ""}`
      : args["dry-run"]
      ? "(dry run)"
      : "NOT installed: the gate refused";
    console.log(`\nDMD switcher ${version}: ${fitted.candidate.name} (${args.target} labels) ${where}`);
    console.log(
      `${pairs.length} pairs, ${selection.pool.pairs.length} cross-validated in ${selection.folds.k} folds by ${selection.folds.basis}` +
        `${selection.folds.groups ? ` (${selection.folds.groups} groups)` : ""}; collected in ${
          collectSeconds.toFixed(1)
        } s, chosen in ${trainSeconds.toFixed(1)} s`,
    );
    console.log(`threshold ${fitted.threshold.toFixed(4)} for ${JSON.stringify(calibrate)}`);
    console.log(`\n| candidate | mean fold AUC for disagreement | SE | |\n|---|---|---|---|`);
    for (const t of selection.trials) {
      const mark = t === selection.chosen
        ? "chosen"
        : t.candidate.name === selection.refused?.candidate
        ? "refused by the gate"
        : t === selection.best
        ? "best mean"
        : "";
      console.log(`| ${t.candidate.name} | ${f(t.mean)} | ${f(t.standardError)} | ${mark} |`);
    }
    console.log(`\ngate on held-out folds: ${verdict.promote ? "passes" : "refuses"} — ${verdict.reason}`);
  }
  if (!install && !args["dry-run"]) Deno.exitCode = 4;
} finally {
  database.close();
}
