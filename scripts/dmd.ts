/**
 * `deno task dmd`: Dual-Model Distillation. Runs both models over unlabeled sequences (a dataset file; labels, if
 * present, are never used), stores the pairs in libSQL, trains a switcher on DMD labels, calibrates its threshold on
 * held-out pairs, and publishes it as the active switcher release through the release registry (loop/registry.ts:
 * `switcher_versions`, and the manifest's switcher), under the models folder's job lock.
 *
 *   deno task dmd --dataset datasets/mocap/dmd.jsonl.gz
 *
 * Flags:
 *   --dataset FILE        unlabeled sequences (JSONL or JSONL.gz), or
 *   --from-log            the pairs the service logged (offloaded and shadowed decisions) in DATABASE_URL
 *   --since ISO-DATE      with --from-log: only decisions from then on
 *   --models DIR          model set to read and install into (default: MODELS_DIR or wasm-models)
 *   --target hard|soft    DMD label to learn (default soft)
 *   --features SET        auto | confidence | confidence+quality | all (default auto: train each subset, keep the
 *                         highest held-out AUC for disagreement): the feature columns
 *                         the switcher reads; its ONNX input stays the full feature vector
 *   --offload-rate R      calibrate to this offload rate (default 0.2), or
 *   --agreement A         calibrate to this agreement with the cloud model
 *   --hidden 32,16        hidden layer widths; --epochs N; --seed N
 *   --version NAME        switcher version (default switcher-<date>-<time>)
 *   --dry-run             train and report, install nothing
 *   --json                print the report as JSON
 * The cloud model is reached at CLOUD_URL, or on a reference server started here on loopback.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startReferenceServer } from "../cloud/reference_server.ts";
import { createOipClient } from "../cloud/oip_client.ts";
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/client.ts";
import { listLoggedPairs, upsertPairs } from "../db/queries.ts";
import { type CollectedPair, collectPairs } from "../loop/pairs.ts";
import { onnxRelease, publishRelease } from "../loop/registry.ts";
import { dmdLabel } from "../switcher/dmd_labels.ts";
import { trainDmdSwitcherSelected } from "../switcher/dmd.ts";
import { FEATURE_SETS, featureNames, type FeatureSet } from "../switcher/features.ts";
import { exportSwitcherOnnx } from "../switcher/onnx_writer.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { readDataset } from "./dataset.ts";
import { datasetItems } from "./dataset_pairs.ts";
import { progressBar } from "./progress.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    dataset: { type: "string" },
    "from-log": { type: "boolean", default: false },
    since: { type: "string" },
    models: { type: "string" },
    target: { type: "string", default: "soft" },
    features: { type: "string", default: "auto" },
    "offload-rate": { type: "string" },
    agreement: { type: "string" },
    hidden: { type: "string", default: "32" },
    epochs: { type: "string", default: "60" },
    seed: { type: "string", default: "1" },
    version: { type: "string" },
    "dry-run": { type: "boolean", default: false },
    json: { type: "boolean", default: false },
  },
});
if (!args.dataset === !args["from-log"]) {
  console.error("Cannot run DMD: give either --dataset FILE or --from-log (see the header of scripts/dmd.ts)");
  Deno.exit(2);
}
if (args.target !== "hard" && args.target !== "soft") {
  console.error(`Cannot run DMD: --target must be hard or soft, got "${args.target}"`);
  Deno.exit(2);
}
if (args.features !== "auto" && !(FEATURE_SETS as readonly string[]).includes(args.features!)) {
  console.error(`Cannot run DMD: --features must be auto or one of ${FEATURE_SETS.join(", ")}, got "${args.features}"`);
  Deno.exit(2);
}
const featureSets: readonly FeatureSet[] = args.features === "auto" ? FEATURE_SETS : [args.features as FeatureSet];
const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const seed = Number(args.seed);
const calibrate = args.agreement !== undefined
  ? { agreement: Number(args.agreement) }
  : { offloadRate: Number(args["offload-rate"] ?? 0.2) };
const now = new Date();
const version = args.version ??
  `switcher-${now.toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-")}`;

const { manifest, init } = await loadModelSet(modelsDir, { warmupRuns: 1, switcher: null });
const edgeSpec = manifest.edge;
const database = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });

/** Pairs from a corpus file: both models run here, through the service's own pool and cloud client. */
async function corpusPairs(path: string): Promise<{ pairs: CollectedPair[]; cloudFailures: number }> {
  const { items, skipped: invalid } = datasetItems(await readDataset(path), edgeSpec, {
    maxFrames: config.maxFrames,
    keepLabels: true,
  });
  console.error(`DMD: ${items.length} sequences from ${path} (${invalid} skipped: wrong layout or shape)`);
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
  try {
    return await collectPairs(items, {
      inference: pool,
      cloud,
      edgeSpec,
      cloudSpec: manifest.cloud,
      batchSize: 64,
      cloudTimeoutMs: 30_000,
      onProgress: bar.update,
    });
  } finally {
    bar.end();
    await pool.close();
    await server?.shutdown();
  }
}

/** Pairs the service logged: decisions that carry both outputs, of the serving edge model. */
async function loggedPairs(): Promise<{ pairs: CollectedPair[]; cloudFailures: number }> {
  const sinceMs = args.since ? Date.parse(args.since) : undefined;
  if (sinceMs !== undefined && Number.isNaN(sinceMs)) {
    throw new RangeError(`Cannot run DMD: --since "${args.since}" is not a date`);
  }
  const rows = await listLoggedPairs(database.db, { sinceMs, edgeModelVersion: edgeSpec.version });
  console.error(`DMD: ${rows.length} logged pairs of ${edgeSpec.version} in the decision log`);
  return { pairs: rows.map((record) => ({ sourceRef: record.id, trueLabel: null, record })), cloudFailures: 0 };
}

try {
  const t0 = performance.now();
  const source = args.dataset ?? "decision log";
  const { pairs, cloudFailures } = args.dataset ? await corpusPairs(args.dataset) : await loggedPairs();
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

  console.error(`training the switcher on ${args.target} DMD labels ...`);
  const t1 = performance.now();
  const { chosen, trials } = trainDmdSwitcherSelected(
    pairs.map((p) => ({
      features: p.record.features,
      edgeProbs: p.record.edgeProbs,
      cloudProbs: p.record.cloudProbs!,
    })),
    featureSets,
    {
      target: args.target,
      calibrate,
      seed,
      train: { hidden: args.hidden!.split(",").map(Number), epochs: Number(args.epochs) },
    },
  );
  const result = chosen.result;
  const featureSet = chosen.set;
  const trainSeconds = (performance.now() - t1) / 1000;
  const features = featureNames(edgeSpec.embeddingSize ?? 0);
  const bytes = exportSwitcherOnnx(result.model, { version, features, columns: result.columns });
  const provenance = {
    data: source,
    pairs: result.counts,
    cloudFailures,
    target: args.target,
    featureSet,
    featureSetAuc: Object.fromEntries(trials.map((t) => [t.set, t.result.evaluation.switcherAuc])),
    columns: result.columns.length,
    seed,
    hidden: args.hidden,
    edgeModel: edgeSpec.version,
    cloudModel: manifest.cloud.version,
    bestEpoch: result.bestEpoch,
    command: `deno task dmd ${Deno.args.join(" ")}`,
  };
  const metrics = { data: `held-out pairs of ${source}`, ...result.evaluation };
  if (!args["dry-run"]) {
    const release = await onnxRelease(bytes, {
      version,
      inputs: [{ name: "features", shape: [-1, features.length], dtype: "float32" }],
      outputs: [{ name: "score", shape: [-1, 1], dtype: "float32" }],
      features,
      threshold: result.threshold,
      calibration: result.calibration,
      params: result.model.layers.reduce((a, l) => a + l.weight.length + l.bias.length, 0),
      flops: result.model.layers.reduce((a, l) => a + 2 * l.weight.length, 0),
      provenance,
      metrics,
    });
    // Recorded and made active (the previous one is retired and stays a rollback target), in the manifest too.
    await publishRelease(database.db, release, { modelsDir, activate: true });
  }
  const report = {
    version,
    installed: !args["dry-run"],
    modelsDir,
    threshold: result.threshold,
    calibration: result.calibration,
    counts: result.counts,
    cloudFailures,
    seconds: { collect: collectSeconds, train: trainSeconds },
    heldOut: result.evaluation,
  };
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    const e = result.evaluation;
    const f = (v: number) => v.toFixed(4);
    console.log(
      `\nDMD switcher ${version} (${args.target} labels) ${
        args["dry-run"] ? "(dry run)" : `installed in ${modelsDir}`
      }`,
    );
    console.log(
      `pairs: ${result.counts.train} train, ${result.counts.holdout} held out; collected in ${
        collectSeconds.toFixed(1)
      } s, trained in ${trainSeconds.toFixed(1)} s`,
    );
    console.log(`threshold ${result.threshold.toFixed(4)} for ${JSON.stringify(calibrate)}`);
    if (trials.length > 1) {
      console.log(`\n| feature set | held-out AUC | |\n|---|---|---|`);
      for (const t of trials) {
        console.log(`| ${t.set} | ${f(t.result.evaluation.switcherAuc)} | ${t === chosen ? "chosen" : ""} |`);
      }
    }
    console.log(
      `\n| held-out pairs (${e.pairs}, disagreement ${f(e.disagreementRate)}) | DMD switcher | max-probability |`,
    );
    console.log(`|---|---|---|`);
    console.log(`| AUC for edge/cloud disagreement | ${f(e.switcherAuc)} | ${f(e.maxProbabilityAuc)} |`);
    console.log(
      `| agreement with cloud at ${(e.offloadRate * 100).toFixed(1)}% offload | ${f(e.switcherAgreement)} | ${
        f(e.maxProbabilityAgreement)
      } |`,
    );
  }
} finally {
  database.close();
}
