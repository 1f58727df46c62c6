/**
 * `deno task eval`: every routing policy on a labelled dataset and a model set, measured so that the measurement
 * cannot flatter the learned switcher. With no arguments: the default models on the default held-out data.
 *
 *   deno task eval [--dataset FILE] [--models DIR] [--out DIR] [--protocol deploy|pool] [--dmd-dataset FILE]
 *                  [--seeds 1,2,3] [--offload-rate 0.2] [--target soft|hard] [--features auto|SET] [--folds 5]
 *                  [--epochs 60] [--resamples 500] [--consistency] [--cloud-runtime auto|native|wasm]
 *
 * Protocols (where the unlabeled DMD traffic comes from matters):
 *  - deploy (default): per seed, the dataset is split in two halves by subject (at random when the rows carry fewer
 *    than 4 subjects); one half is the DMD pool, unlabeled traffic as a deployed edge site would log it (labels
 *    ignored), the other half is evaluated;
 *  - pool: the DMD pool is --dmd-dataset (labels ignored), and all of --dataset is evaluated.
 *
 * On the pool, exactly what `deno task dmd` does with the same flags: every candidate (the rules' rank average
 * `rank:confidence`, the confidence rules `rule:max_prob`, `rule:margin`, `rule:entropy` and the MLPs
 * `mlp:<feature set>`) cross-validated on folds grouped
 * by subject, the one-standard-error choice, the fit, the threshold calibrated to --offload-rate and the gate on the
 * held-out folds against the best rule and the model set's switcher as the active release. Rows are named as dmd
 * names releases: `installed by dmd` is what dmd installs (the chosen candidate, or the served switcher when the gate
 * refuses it; named per seed), each candidate also has its own row, `served (<version>)` is the model set's
 * switcher as shipped.
 *
 * Per policy, on the evaluation half: ROC AUC for edge/cloud disagreement, the area under accuracy against offload
 * rate, accuracy at 10/20/30/50% offload, the offload rate reaching cloud-only accuracy, each as a difference to the
 * best confidence rule (the rule with the highest disagreement AUC on the evaluation half: the hardest bar) with a
 * paired bootstrap standard error; and the operating point: the threshold calibrated on the pool, applied to the
 * evaluation half (offload rate and accuracy there). Nothing is chosen on the evaluation half. Every figure is
 * reported per seed and as mean and spread over seeds.
 *
 * --consistency also measures the edge model's self-consistency (its answer on a copy of each input shifted by 1/8 of
 * its length, switcher/consistency.ts), which the served feature vector does not carry yet: `measured: consistency`
 * (the distance between the two answers as a rule) and `measured: mlp:confidence+quality+consistency`, fitted on the
 * pool like the candidates; both are reported, neither can be installed.
 *
 * --cloud-runtime: where the reference cloud server runs the cloud model when `CLOUD_URL` is not set: auto (native
 * onnxruntime where it loads, else WASM), native, or wasm (the same outputs bit for bit on every CPU; native
 * onnxruntime picks its kernels by the CPU's instruction set). `deno task eval:record` uses wasm.
 *
 * Outputs in --out (default build/eval): eval.json (every figure, per seed and aggregated, and the plotted curves),
 * eval.md (the tables) and curves.svg (scripts/eval_figure.ts: accuracy against offload for the switcher dmd
 * installs, the best confidence rule and the oracle, mean over seeds, with edge only and cloud only).
 *
 * @module
 */
import { builtinSwitcherRelease } from "../release/release.ts";
import { createOipClient } from "../cloud/oip_client.ts";
import { startReferenceServer } from "../cloud/reference_server.ts";
import { loadConfig } from "../config.ts";
import { type CollectedPair, collectPairs } from "../loop/pairs.ts";
import { type ComparedPolicy, comparePolicies, policyFigures } from "../switcher/comparison.ts";
import { consistencyStats, timeShifted } from "../switcher/consistency.ts";
import { type Pair } from "../switcher/dmd.ts";
import { evaluatePolicies } from "../switcher/evaluation.ts";
import { FEATURE_SETS, type FeatureSet, probabilityStats } from "../switcher/features.ts";
import { policies as baselines } from "../switcher/metrics.ts";
import { createPrng } from "../switcher/prng.ts";
import { type Candidate, candidatesFor, DEFAULT_CANDIDATES } from "../switcher/candidates.ts";
import { fitCandidate, scoreFitted } from "../switcher/fit.ts";
import { gateWithFallback, selectSwitcher } from "../switcher/selection.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { parseFlags, usageError } from "./cli.ts";
import { aggregate, type EvalCost, markdown, type SeedRun } from "./eval_report.ts";
import { type FigureCurves, figureData, meanCurvePct, renderFigure } from "./eval_figure.ts";
import { readDatasetItems, skippedLine } from "./dataset_pairs.ts";
import { progressBar } from "./progress.ts";

const DEFAULT_DATASET = "datasets/mocap/test.jsonl.gz";
const USAGE = `usage: deno task eval [--dataset FILE] [--models DIR] [--out DIR] [--protocol deploy|pool]
  [--dmd-dataset FILE] [--seeds 1,2,3] [--offload-rate 0.2] [--target soft|hard] [--features auto|SET] [--folds 5]
  [--epochs 60] [--resamples 500] [--consistency] [--cloud-runtime auto|native|wasm]`;
const args = parseFlags({
  dataset: { type: "string", default: DEFAULT_DATASET },
  models: { type: "string" },
  out: { type: "string", default: "build/eval" },
  "dmd-dataset": { type: "string" },
  protocol: { type: "string", default: "deploy" },
  seeds: { type: "string", default: "1,2,3" },
  "offload-rate": { type: "string", default: "0.2" },
  target: { type: "string", default: "soft" },
  features: { type: "string", default: "auto" },
  folds: { type: "string", default: "5" },
  epochs: { type: "string", default: "60" },
  resamples: { type: "string", default: "500" },
  consistency: { type: "boolean", default: false },
  "cloud-runtime": { type: "string", default: "auto" },
}, USAGE);
function fail(message: string): never {
  usageError(`Cannot evaluate: ${message}`, USAGE);
}
const seeds = args.seeds!.split(",").map(Number);
const offloadRate = Number(args["offload-rate"]);
const folds = Number(args.folds);
const epochs = Number(args.epochs);
const resamples = Number(args.resamples);
if (seeds.length === 0 || seeds.some((s) => !Number.isInteger(s))) fail("--seeds must be integers, e.g. 1,2,3");
if (!(offloadRate > 0 && offloadRate < 1)) fail("--offload-rate must be in (0, 1)");
if (!Number.isInteger(folds) || folds < 2) fail("--folds must be an integer >= 2");
if (!(epochs >= 1) || !Number.isInteger(resamples) || resamples < 2) fail("--epochs >= 1 and --resamples >= 2");
if (args.protocol !== "deploy" && args.protocol !== "pool") fail(`--protocol must be deploy or pool`);
if (args.protocol === "pool" && !args["dmd-dataset"]) fail("the pool protocol needs --dmd-dataset FILE");
if (args.target !== "soft" && args.target !== "hard") fail("--target must be soft or hard");
const cloudRuntime = args["cloud-runtime"] as "auto" | "native" | "wasm";
if (!["auto", "native", "wasm"].includes(cloudRuntime)) fail("--cloud-runtime must be auto, native or wasm");
if (args.features !== "auto" && !(FEATURE_SETS as readonly string[]).includes(args.features!)) {
  fail(`--features must be auto or one of ${FEATURE_SETS.join(", ")}`);
}
const featureSets: readonly FeatureSet[] = args.features === "auto" ? FEATURE_SETS : [args.features as FeatureSet];
const RATES = [0.1, 0.2, 0.3, 0.5];

const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const { manifest, init } = await loadModelSet(modelsDir, { warmupRuns: 1 });
const edgeSpec = manifest.edge;
const labels = edgeSpec.labels;
// The inputs are read (one row at a time, keeping the model's window of each) and ground truth checked before any
// model runs (unlabeled traffic belongs in --dmd-dataset).
const testInputs = await readDatasetItems(args.dataset!, edgeSpec, { keepLabels: true, labels });
const poolInputs = args.protocol === "pool"
  ? await readDatasetItems(args["dmd-dataset"]!, edgeSpec, { keepLabels: true })
  : null;
// Rows the edge model cannot take are not evaluated: said here and in the report, never dropped silently.
const skipped = [
  skippedLine(args.dataset!, testInputs),
  poolInputs && skippedLine(args["dmd-dataset"]!, poolInputs),
].filter((l): l is string => !!l);
for (const line of skipped) console.error(`eval: ${line}`);
const server = config.cloudUrl ? null : await startReferenceServer({
  host: "127.0.0.1",
  port: 0,
  modelsDir,
  modelName: config.cloudModelName,
  runtime: cloudRuntime,
});
const cloud = createOipClient({
  baseUrl: config.cloudUrl ?? server!.url,
  modelName: config.cloudModelName,
  timeoutMs: 60_000,
  auth: config.cloudAuth,
});
const pool = await createWorkerPool(init, { size: config.workers, queueMax: 1024 });
const BATCH = 64;

/** Self-consistency of each pair (distance, flipped), by source row id. */
type Consistency = Map<string, { distance: number; flipped: number }>;

/** Both models over a dataset; each pair with its row's subject (and its self-consistency with --consistency). */
async function outputsOf(
  inputs: Awaited<ReturnType<typeof readDatasetItems>>,
  path: string,
  name: string,
): Promise<{ pairs: CollectedPair[]; subjects: (string | null)[]; consistency: Consistency | null }> {
  const { items, rows } = inputs;
  const subjectOf = new Map(rows.map((r) => [String(r.id), r.subject == null ? null : String(r.subject)]));
  // Shifted copies first: the pool takes ownership of (transfers) each input's buffer.
  const shifted = args.consistency ? items.map((b) => timeShifted(b.item.data, b.item.length)) : [];
  const bar = progressBar(name);
  const { pairs, cloudFailures } = await collectPairs(items, {
    inference: pool,
    cloud,
    edgeSpec,
    cloudSpec: manifest.cloud,
    batchSize: BATCH,
    cloudTimeoutMs: 60_000,
    onProgress: bar.update,
  });
  bar.end();
  if (cloudFailures > 0) throw new Error(`Cannot evaluate: ${cloudFailures} cloud calls failed on ${path}`);
  let consistency: Consistency | null = null;
  if (args.consistency) {
    consistency = new Map();
    const probsOf = new Map(pairs.map((p) => [p.sourceRef, p.record.edgeProbs]));
    for (let s = 0; s < items.length; s += BATCH) {
      const batch = items.map((b, i) => ({ ...b, data: shifted[i] })).slice(s, s + BATCH)
        .filter((b) => probsOf.has(b.sourceRef));
      const { results } = await pool.classify(batch.map((b) => ({ ...b.item, data: b.data })));
      results.forEach((r, i) => {
        consistency!.set(batch[i].sourceRef, consistencyStats(probsOf.get(batch[i].sourceRef)!, r.probs));
      });
    }
  }
  return { pairs, subjects: pairs.map((p) => subjectOf.get(p.sourceRef) ?? null), consistency };
}

const asPair = (p: CollectedPair): Pair => ({
  features: p.record.features,
  edgeProbs: p.record.edgeProbs,
  cloudProbs: p.record.cloudProbs!,
});

/** The measured-only candidate: an MLP on confidence, input quality and self-consistency (distance, flipped). */
const CONSISTENCY_CANDIDATE: Candidate = {
  kind: "mlp",
  name: "measured: mlp:confidence+quality+consistency",
  set: "all",
  complexity: 9,
  hidden: [16],
  l2: 1e-4,
};

/** Pairs whose features are the base features followed by the self-consistency distance and flip. */
function withConsistency(pairs: CollectedPair[], consistency: Consistency): Pair[] {
  return pairs.map((p) => {
    const c = consistency.get(p.sourceRef)!;
    return { ...asPair(p), features: Float32Array.from([...p.record.features.subarray(0, 6), c.distance, c.flipped]) };
  });
}

function runSeed(
  seed: number,
  poolPairs: CollectedPair[],
  poolGroups: (string | null)[],
  evalPairs: CollectedPair[],
  evalGroups: (string | null)[],
  split: string,
  consistency: Consistency | null,
): { run: SeedRun; curves: SeedCurves } {
  const options = {
    target: args.target as "soft" | "hard",
    seed,
    epochs,
    calibrate: { offloadRate },
    candidates: candidatesFor(featureSets),
    folds: { k: folds, fallback: "random" as const },
  };
  const selection = selectSwitcher(poolPairs.map(asPair), poolGroups, options);
  const evalRows = evalPairs.map((p) => p.record.features);
  const truth = evalPairs.map((p) => labels.indexOf(p.trueLabel ?? ""));
  if (truth.some((t) => t < 0)) throw new Error("Cannot evaluate: every sequence needs a label the models know");
  const edgePred = evalPairs.map((p) => probabilityStats(p.record.edgeProbs).top);
  const cloudPred = evalPairs.map((p) => probabilityStats(p.record.cloudProbs!).top);
  const policies: ComparedPolicy[] = [{ name: "random", scores: baselines.random(evalPairs.length, seed) }];
  // Every candidate fitted on the whole pool, as dmd would fit it; the chosen one is the installed row.
  for (const trial of selection.trials) {
    const fitted = trial === selection.chosen
      ? selection.fitted
      : fitCandidate(trial.candidate, selection.pool.pairs, options);
    // Scored as the exported release scores (a rule's network ranks exactly as the rule does).
    policies.push({ name: fitted.candidate.name, scores: scoreFitted(fitted, evalRows), threshold: fitted.threshold });
  }
  const served: ComparedPolicy = {
    name: `served (${manifest.switcher?.version ?? "built-in max probability"})`,
    scores: evalPairs.map((p) => p.record.switcherScore),
    // Without a switcher in the model set, the service serves the built-in max-probability rule at its threshold.
    threshold: manifest.switcher?.threshold ?? builtinSwitcherRelease().threshold,
  };
  // dmd's gate, with the model set's switcher as the active release: a refused learned candidate gives way to the
  // label-free choice, gated in turn; when that is refused too, nothing is installed and the served switcher stays.
  const gated = gateWithFallback(selection, {
    name: served.name,
    scores: poolPairs.map((p) => p.record.switcherScore),
    rule: manifest.switcher ? manifest.switcher.rule : "max_prob",
  });
  const verdict = gated.verdict;
  const candidate = gated.selection.chosen.candidate.name;
  const refused = gated.selection.refused ? [gated.selection.refused.candidate] : [];
  const chosen = verdict.promote ? policies.find((p) => p.name === candidate)! : served;
  const installedName = verdict.promote
    ? `${candidate}${refused.length ? ` (the gate refused ${refused[0]})` : ""}`
    : `${served.name}, kept: the gate refused ${[...refused, candidate].join(", then ")}`;
  policies.push({ name: "installed by dmd", scores: chosen.scores, threshold: chosen.threshold });
  policies.push(served);
  const measured: SeedRun["selection"] = [];
  if (consistency) {
    const poolC = withConsistency(poolPairs, consistency);
    const evalC = withConsistency(evalPairs, consistency);
    // Cross-validated on the same kind of folds as the candidates, beside the base features' MLP.
    const cv = selectSwitcher(poolC, poolGroups, {
      ...options,
      candidates: [DEFAULT_CANDIDATES.find((c) => c.name === "mlp:confidence+quality")!, CONSISTENCY_CANDIDATE],
    });
    const trial = cv.trials[1];
    measured.push({ name: trial.candidate.name, meanAuc: trial.mean, standardError: trial.standardError });
    const fitted = fitCandidate(CONSISTENCY_CANDIDATE, cv.pool.pairs, options);
    policies.push({
      name: "measured: consistency",
      scores: evalPairs.map((p) => consistency.get(p.sourceRef)!.distance + 1e-9 * p.record.features[2]),
    });
    policies.push({
      name: CONSISTENCY_CANDIDATE.name,
      scores: scoreFitted(fitted, evalC.map((p) => p.features)),
      threshold: fitted.threshold,
    });
  }
  const inputs = { truth, edgePred, cloudPred };
  // The bar: the rule with the highest disagreement AUC on the evaluated rows (the hardest one to beat).
  const everyRow = Array.from({ length: evalPairs.length }, (_, i) => i);
  const ruleAuc = (p: ComparedPolicy) => policyFigures(inputs, p.scores, everyRow, RATES).disagreementAuc;
  const bestRule = policies.filter((p) => p.name.startsWith("rule:"))
    .reduce((b, p) => (ruleAuc(p) > ruleAuc(b) ? p : b)).name;
  policies.push({ name: "oracle", scores: baselines.oracle({ edgePred, cloudPred, truth }) });
  const comparisons = comparePolicies(inputs, policies, bestRule, { resamples, seed, rates: RATES });
  // The bar a deployer without labels has: the rule the same cross-validation ranks best on the pool.
  const poolRule = selection.bestRule.candidate.name;
  const installedVsPoolRule = comparePolicies(
    inputs,
    policies.filter((p) => p.name === "installed by dmd" || p.name === poolRule),
    poolRule,
    { resamples, seed, rates: RATES },
  ).find((c) => c.name === "installed by dmd")!.vsBaseline;
  const acc = (pred: number[]) => pred.filter((p, i) => p === truth[i]).length / truth.length;
  // The figure's curves: the installed switcher, the best rule and the oracle, on a grid of offload rates.
  const figured = ["installed by dmd", bestRule, "oracle"].map((name) => policies.find((p) => p.name === name)!);
  const [installed, rule, oracle] = evaluatePolicies(
    {
      truth,
      edgeProbs: evalPairs.map((p) => p.record.edgeProbs),
      cloudProbs: evalPairs.map((p) => p.record.cloudProbs!),
      classes: labels.length,
    },
    figured.map((p) => ({ name: p.name, scores: p.scores })),
  ).policies.map((p) => p.curve);
  return {
    run: {
      seed,
      poolRows: poolPairs.length,
      evalRows: evalPairs.length,
      split,
      groups: { pool: distinctGroups(poolGroups), evaluated: distinctGroups(evalGroups) },
      installed: installedName,
      gate: verdict.reason,
      folds: `${selection.folds.k} by ${selection.folds.basis}${
        selection.folds.groups > 1 ? ` (${selection.folds.groups} groups)` : ""
      }`,
      bestRule,
      poolRule,
      installedVsPoolRule,
      selection: [
        ...selection.trials.map((t) => ({
          name: t.candidate.name,
          meanAuc: t.mean,
          standardError: t.standardError,
        })),
        ...measured,
      ],
      comparisons,
      edgeAccuracy: acc(edgePred),
      cloudAccuracy: acc(cloudPred),
    },
    curves: { installed, rule, oracle },
  };
}

/** The distinct groups (subjects) of some rows, sorted; a row without one counts as "". */
const distinctGroups = (groups: (string | null)[]) => [...new Set(groups.map((g) => g ?? ""))].sort();

/** One seed's curves for the figure (accuracy against offload rate, fractions). */
type SeedCurves = Record<keyof FigureCurves, { rate: number; accuracy: number }[]>;

try {
  const test = await outputsOf(testInputs, args.dataset!, "evaluation set");
  const pairs = test.pairs;
  const edgeMs = pairs.reduce((a, p) => a + p.record.edgeMs, 0) / pairs.length / BATCH;
  const cloudMs = pairs.reduce((a, p) => a + (p.record.cloudMs ?? 0), 0) / pairs.length / BATCH;
  const dmdPool = poolInputs ? await outputsOf(poolInputs, args["dmd-dataset"]!, "DMD pool") : null;
  const runs: SeedRun[] = [];
  const curves: SeedCurves[] = [];
  for (const seed of seeds) {
    let poolPairs: CollectedPair[];
    let poolGroups: (string | null)[];
    let evalPairs: CollectedPair[];
    let evalGroups: (string | null)[];
    let split: string;
    if (dmdPool) {
      poolPairs = dmdPool.pairs;
      poolGroups = dmdPool.subjects;
      evalPairs = pairs;
      evalGroups = test.subjects;
      split = `DMD pool ${args["dmd-dataset"]}, all of ${args.dataset} evaluated`;
    } else {
      const subjects = [...new Set(test.subjects.map((s) => s ?? ""))].sort();
      const rng = createPrng(seed);
      let inPool: (i: number) => boolean;
      if (subjects.length >= 4) {
        const chosen = new Set(rng.shuffle(subjects).slice(0, Math.floor(subjects.length / 2)));
        inPool = (i) => chosen.has(test.subjects[i] ?? "");
        split = `half of the subjects (${chosen.size} of ${subjects.length}) as the DMD pool, the others evaluated`;
      } else {
        const half = new Set(rng.shuffle(pairs.map((_, i) => i)).slice(0, Math.floor(pairs.length / 2)));
        inPool = (i) => half.has(i);
        split = `a random half as the DMD pool (the rows carry ${subjects.length} subject), the other evaluated`;
      }
      poolPairs = pairs.filter((_, i) => inPool(i));
      poolGroups = test.subjects.filter((_, i) => inPool(i));
      evalPairs = pairs.filter((_, i) => !inPool(i));
      evalGroups = test.subjects.filter((_, i) => !inPool(i));
    }
    console.error(`seed ${seed}: choosing on ${poolPairs.length} pool pairs, evaluating on ${evalPairs.length}`);
    const consistency = test.consistency && dmdPool?.consistency
      ? new Map([...test.consistency, ...dmdPool.consistency])
      : test.consistency;
    const seedRun = runSeed(seed, poolPairs, poolGroups, evalPairs, evalGroups, split, consistency);
    runs.push(seedRun.run);
    curves.push(seedRun.curves);
  }
  const rows = aggregate(runs);
  const header = [
    `## dmd-edge evaluation: ${args.dataset}, ${args.protocol} protocol`,
    "",
    `Models: ${edgeSpec.version} / ${manifest.cloud.version}; served switcher ${
      manifest.switcher?.version ?? "built-in max probability"
    }. DMD: ${args.target} labels, ${folds}-fold grouped cross-validation, features ${args.features}. Cost per ` +
    `sequence: edge ${edgeMs.toFixed(3)} ms, cloud ${cloudMs.toFixed(3)} ms (batches of ${BATCH}, shared machine).`,
    ...(skipped.length ? ["", ...skipped.map((l) => `Not evaluated: ${l}.`)] : []),
  ].join("\n");
  const cost: EvalCost = {
    edgeMsPerSequence: edgeMs,
    cloudMsPerSequence: cloudMs,
    edgeFlops: edgeSpec.flops ?? null,
    cloudFlops: manifest.cloud.flops ?? null,
  };
  const mean = (k: keyof FigureCurves) => meanCurvePct(curves.map((c) => c[k]));
  const figureCurves: FigureCurves = { installed: mean("installed"), rule: mean("rule"), oracle: mean("oracle") };
  const md = markdown(runs, rows, { header, offloadRate, rates: RATES, cost, figure: "curves.svg" });
  const data = {
    file: args.dataset!,
    sequences: testInputs.items.length,
    skipped: testInputs.skipped,
    firstSkipped: testInputs.firstSkip,
    description: args.dataset === DEFAULT_DATASET
      ? "motion capture, new cameras and time spans; one performance per action"
      : null,
  };
  await Deno.mkdir(args.out!, { recursive: true });
  const json = {
    dataset: args.dataset,
    data,
    protocol: args.protocol,
    dmdDataset: args["dmd-dataset"] ?? null,
    models: { edge: edgeSpec.version, cloud: manifest.cloud.version, switcher: manifest.switcher?.version ?? null },
    settings: {
      seeds,
      offloadRate,
      target: args.target,
      features: args.features,
      folds,
      epochs,
      resamples,
      rates: RATES,
    },
    cost: { ...cost, batch: BATCH },
    aggregate: rows,
    runs,
    curves: figureCurves,
  };
  await Deno.writeTextFile(`${args.out}/eval.json`, JSON.stringify(json, null, 1) + "\n");
  await Deno.writeTextFile(`${args.out}/eval.md`, md + "\n");
  await Deno.writeTextFile(`${args.out}/curves.svg`, await renderFigure(figureData(json)));
  console.log(md);
  console.log(`\nwrote ${args.out}/eval.json, eval.md, curves.svg`);
} finally {
  await pool.close();
  await server?.shutdown();
}
