/**
 * `deno task eval`: accuracy and macro-F1 against offload rate for every routing policy, on a labelled dataset and a
 * model set. With no arguments: the default models on the default held-out data.
 *
 *   deno task eval [--dataset FILE] [--models DIR] [--out DIR] [--dmd-dataset FILE] [--protocol both|pool|test-half]
 *
 * Policies: edge-only and cloud-only (the curve's ends), random, max-probability, margin, entropy, the served switcher
 * (the model set's own), DMD switchers trained here on hard and on soft labels, the soft DMD switcher with fusion
 * (offloaded sequences answer argmax of the averaged edge and cloud probabilities), the oracle, and a feature
 * ablation: soft DMD switchers on the edge confidence alone (max probability, margin, entropy) and on confidence plus
 * input quality, against all features (with the edge embedding).
 *
 * Where the unlabeled DMD traffic comes from matters, so two protocols:
 *  - pool: DMD switchers learn from --dmd-dataset, unlabeled traffic (on the default data: deploy.jsonl.gz, drawn
 *    from the test conditions as a deployed edge site would log it; dmd.jsonl.gz is a pool from the training
 *    conditions, where edge and cloud rarely disagree), and are evaluated on all of --dataset;
 *  - test-half: they learn from one half of --dataset used as unlabeled traffic (split by subject when there are
 *    several, else at random) and are evaluated on the other half.
 *
 * Outputs in --out (default build/eval): eval.json, eval.md, curves-<protocol>.svg (vega-lite).
 *
 * eval.json schema: { dataset, models: { edge, cloud, switcher }, cost: { edgeMsPerSequence, cloudMsPerSequence,
 * edgeFlops, cloudFlops, batch }, protocols: { [name]: { trainedOn, evaluatedOn, report: EvaluationReport
 * (switcher/evaluation.ts), savings: { [policy]: { rate, msSavedVsCloud, flopsSavedVsCloud } | null } } } }.
 *
 * @module
 */
import { parseArgs } from "node:util";
import * as vega from "vega";
import * as vl from "vega-lite";
import { createOipClient } from "../cloud/oip_client.ts";
import { startReferenceServer } from "../cloud/reference_server.ts";
import { loadConfig } from "../config.ts";
import { type CollectedPair, collectPairs } from "../loop/pairs.ts";
import { trainDmdSwitcher } from "../switcher/dmd.ts";
import { evaluatePolicies, type EvaluationReport, type Policy } from "../switcher/evaluation.ts";
import { FEATURE_SETS, featureColumns, probabilityStats, selectColumns } from "../switcher/features.ts";
import { policies as baselines } from "../switcher/metrics.ts";
import { predictMlp } from "../switcher/mlp.ts";
import { createPrng } from "../switcher/prng.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { type DatasetRow, readDataset } from "./dataset.ts";
import { datasetItems } from "./dataset_pairs.ts";
import { progressBar } from "./progress.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    dataset: { type: "string", default: "datasets/mocap/test.jsonl.gz" },
    models: { type: "string" },
    out: { type: "string", default: "build/eval" },
    "dmd-dataset": { type: "string" },
    protocol: { type: "string", default: "both" },
    seed: { type: "string", default: "1" },
    epochs: { type: "string", default: "60" },
  },
});
const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const seed = Number(args.seed);
const dmdDataset = args["dmd-dataset"] ??
  (args.dataset === "datasets/mocap/test.jsonl.gz" ? "datasets/mocap/deploy.jsonl.gz" : undefined);
if (!["both", "pool", "test-half"].includes(args.protocol!)) {
  console.error(`Cannot evaluate protocol "${args.protocol}": use both, pool or test-half`);
  Deno.exit(2);
}
if (!Number.isInteger(seed) || !(Number(args.epochs) >= 1)) {
  console.error("Cannot evaluate: --seed must be an integer and --epochs at least 1");
  Deno.exit(2);
}
const protocols = args.protocol === "both" ? ["pool", "test-half"] : [args.protocol!];
if (protocols.includes("pool") && !dmdDataset) {
  console.error("Cannot evaluate the pool protocol: give --dmd-dataset FILE (or --protocol test-half)");
  Deno.exit(2);
}

const { manifest, init } = await loadModelSet(modelsDir, { warmupRuns: 1 });
const edgeSpec = manifest.edge;
const labels = edgeSpec.labels;
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
  timeoutMs: 60_000,
  auth: config.cloudAuth,
});
const pool = await createWorkerPool(init, { size: config.workers, queueMax: 1024 });
const BATCH = 64;

async function outputsOf(path: string, name: string): Promise<{ rows: DatasetRow[]; pairs: CollectedPair[] }> {
  const { items, rows } = datasetItems(await readDataset(path), edgeSpec, { keepLabels: true });
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
  return { rows, pairs };
}

function switcherPolicies(trainPairs: CollectedPair[], evalPairs: CollectedPair[]): Policy[] {
  const f = evalPairs[0].record.features.length;
  const out: Policy[] = [];
  for (const set of FEATURE_SETS) {
    const columns = featureColumns(set, f);
    const x = new Float32Array(evalPairs.length * columns.length);
    evalPairs.forEach((p, i) => x.set(selectColumns(p.record.features, columns), i * columns.length));
    for (const target of ["hard", "soft"] as const) {
      const { model } = trainDmdSwitcher(
        trainPairs.map((p) => ({
          features: p.record.features,
          edgeProbs: p.record.edgeProbs,
          cloudProbs: p.record.cloudProbs!,
        })),
        { target, seed, columns, train: { epochs: Number(args.epochs) } },
      );
      const scores = predictMlp(model, x, evalPairs.length);
      const name = set === "all" ? `dmd-${target}` : `dmd-${target} (${set} features)`;
      out.push({ name, scores });
      if (set === "all" && target === "soft") out.push({ name: "dmd-soft+fusion", scores, answer: "fusion" });
    }
  }
  return out;
}

function evaluate(trainPairs: CollectedPair[], evalPairs: CollectedPair[]): EvaluationReport {
  const truth = evalPairs.map((p) => labels.indexOf(p.trueLabel ?? ""));
  if (truth.some((t) => t < 0)) throw new Error("Cannot evaluate: every sequence needs a label the models know");
  const stats = evalPairs.map((p) => probabilityStats(p.record.edgeProbs));
  const n = evalPairs.length;
  const policyList: Policy[] = [
    { name: "random", scores: baselines.random(n, seed) },
    { name: "max-probability", scores: baselines.maxProbability(stats.map((s) => s.pMax)) },
    { name: "margin", scores: baselines.margin(stats.map((s) => s.margin)) },
    { name: "entropy", scores: baselines.entropy(stats.map((s) => s.entropy)) },
    {
      name: `served (${manifest.switcher?.version ?? "builtin"})`,
      scores: evalPairs.map((p) => p.record.switcherScore),
    },
    ...switcherPolicies(trainPairs, evalPairs),
  ];
  const edgePred = stats.map((s) => s.top);
  const cloudPred = evalPairs.map((p) => probabilityStats(p.record.cloudProbs!).top);
  policyList.push({ name: "oracle", scores: baselines.oracle({ edgePred, cloudPred, truth }) });
  return evaluatePolicies(
    {
      truth,
      edgeProbs: evalPairs.map((p) => p.record.edgeProbs),
      cloudProbs: evalPairs.map((p) => p.record.cloudProbs!),
      classes: labels.length,
    },
    policyList,
  );
}

function plot(report: EvaluationReport, title: string): Promise<string> {
  const values = report.policies.flatMap((p) =>
    p.curve.map((c) => ({ policy: p.name, offload: c.rate * 100, accuracy: c.accuracy }))
  );
  const spec: vl.TopLevelSpec = {
    title,
    width: 640,
    height: 400,
    data: { values },
    layer: [
      {
        mark: { type: "line", strokeWidth: 1.5 },
        encoding: {
          x: { field: "offload", type: "quantitative", title: "offloaded to the cloud (%)" },
          y: { field: "accuracy", type: "quantitative", title: "hybrid accuracy", scale: { zero: false } },
          color: { field: "policy", type: "nominal" },
        },
      },
      {
        data: { values: [{ y: report.cloudOnly.accuracy, label: "cloud only" }] },
        mark: { type: "rule", strokeDash: [4, 4], color: "gray" },
        encoding: { y: { field: "y", type: "quantitative" } },
      },
    ],
  };
  const view = new vega.View(vega.parse(vl.compile(spec).spec), { renderer: "none" });
  return view.toSVG();
}

const pct = (v: number) => (v * 100).toFixed(2);
function markdown(name: string, report: EvaluationReport, savings: Record<string, unknown>): string {
  const lines = [
    `### Protocol: ${name}`,
    "",
    `${report.sequences} sequences. Edge only ${pct(report.edgeOnly.accuracy)}% ± ${
      pct(report.edgeOnly.standardError)
    } ` +
    `(macro-F1 ${pct(report.edgeOnly.macroF1)}), cloud only ${pct(report.cloudOnly.accuracy)}% ± ` +
    `${pct(report.cloudOnly.standardError)} (macro-F1 ${pct(report.cloudOnly.macroF1)}), agreement ${
      pct(report.agreement)
    }%.`,
    "",
    "| policy | area (acc) | area (F1) | acc @10% | @20% | @30% | @50% | offload to reach cloud | best acc (at) | best − edge (± SE) | best − cloud (± SE) |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  for (const p of report.policies) {
    const at = p.at.map((a) => pct(a.accuracy)).join(" | ");
    const reach = p.rateToCloudAccuracy === null ? "never" : `${pct(p.rateToCloudAccuracy)}%`;
    lines.push(
      `| ${p.name} | ${pct(p.accuracyArea)} | ${pct(p.macroF1Area)} | ${at} | ${reach} | ${pct(p.best.accuracy)} (${
        pct(p.best.rate)
      }%) | ` +
        `${pct(p.bestVsEdge.difference)} ± ${pct(p.bestVsEdge.standardError)} | ${pct(p.bestVsCloud.difference)} ± ${
          pct(p.bestVsCloud.standardError)
        } |`,
    );
  }
  lines.push("", "Compute at cloud-accuracy parity (per sequence, against sending everything to the cloud):", "");
  for (const [k, v] of Object.entries(savings)) {
    lines.push(`- ${k}: ${v === null ? "does not reach cloud accuracy" : JSON.stringify(v)}`);
  }
  return lines.join("\n");
}

try {
  const test = await outputsOf(args.dataset!, "evaluation set");
  const pairs = test.pairs;
  const edgeMs = pairs.reduce((a, p) => a + p.record.edgeMs, 0) / pairs.length / BATCH;
  const cloudMs = pairs.reduce((a, p) => a + (p.record.cloudMs ?? 0), 0) / pairs.length / BATCH;
  const cost = {
    edgeMsPerSequence: edgeMs,
    cloudMsPerSequence: cloudMs,
    edgeFlops: edgeSpec.flops ?? null,
    cloudFlops: manifest.cloud.flops ?? null,
    batch: BATCH,
    note: "measured here in batches of 64: edge in the worker pool (onnxruntime-web), cloud through the reference " +
      "server over loopback",
  };
  const out: Record<string, unknown> = {};
  const md: string[] = [
    `## dmd-edge evaluation`,
    "",
    `Data: ${args.dataset} (${pairs.length} labelled sequences). Models: ${edgeSpec.version} / ${manifest.cloud.version}. ` +
    `Served switcher: ${manifest.switcher?.version ?? "builtin max-probability"}.`,
    `Cost per sequence: edge ${edgeMs.toFixed(3)} ms, ${edgeSpec.flops ?? "?"} FLOPs; cloud ${
      cloudMs.toFixed(3)
    } ms, ` +
    `${manifest.cloud.flops ?? "?"} FLOPs.`,
  ];
  await Deno.mkdir(args.out!, { recursive: true });
  for (const protocol of protocols) {
    let trainPairs: CollectedPair[];
    let evalPairs: CollectedPair[];
    let trainedOn: string;
    if (protocol === "pool") {
      trainPairs = (await outputsOf(dmdDataset!, "unlabeled pool")).pairs;
      evalPairs = pairs;
      trainedOn = `${dmdDataset} (labels ignored)`;
    } else {
      const subjects = [...new Set(test.rows.map((r) => String(r.subject ?? "")))].sort();
      const rng = createPrng(seed);
      let inA: (i: number) => boolean;
      if (subjects.length >= 4) {
        const chosen = new Set(rng.shuffle(subjects).slice(0, Math.floor(subjects.length / 2)));
        inA = (i) => chosen.has(String(test.rows[i].subject ?? ""));
        trainedOn =
          `half of ${args.dataset} by subject (${chosen.size} of ${subjects.length} subjects), labels ignored`;
      } else {
        const half = new Set(rng.shuffle(pairs.map((_, i) => i)).slice(0, Math.floor(pairs.length / 2)));
        inA = (i) => half.has(i);
        trainedOn = `a random half of ${args.dataset}, labels ignored`;
      }
      trainPairs = pairs.filter((_, i) => inA(i));
      evalPairs = pairs.filter((_, i) => !inA(i));
    }
    console.error(
      `protocol ${protocol}: DMD switchers learn from ${trainPairs.length} pairs, evaluated on ${evalPairs.length}`,
    );
    const report = evaluate(trainPairs, evalPairs);
    const savings: Record<string, unknown> = {};
    for (const p of report.policies) {
      if (p.rateToCloudAccuracy === null) savings[p.name] = null;
      else {
        const r = p.rateToCloudAccuracy;
        savings[p.name] = {
          rate: r,
          msSavedVsCloud: 1 - (edgeMs + r * cloudMs) / cloudMs,
          flopsSavedVsCloud: edgeSpec.flops && manifest.cloud.flops
            ? 1 - (edgeSpec.flops + r * manifest.cloud.flops) / manifest.cloud.flops
            : null,
        };
      }
    }
    out[protocol] = { trainedOn, evaluatedOn: `${evalPairs.length} sequences of ${args.dataset}`, report, savings };
    md.push("", markdown(protocol, report, savings));
    await Deno.writeTextFile(`${args.out}/curves-${protocol}.svg`, await plot(report, `${args.dataset} — ${protocol}`));
  }
  const json = {
    dataset: args.dataset,
    models: { edge: edgeSpec.version, cloud: manifest.cloud.version, switcher: manifest.switcher?.version ?? null },
    cost,
    protocols: out,
  };
  await Deno.writeTextFile(`${args.out}/eval.json`, JSON.stringify(json, null, 1) + "\n");
  await Deno.writeTextFile(`${args.out}/eval.md`, md.join("\n") + "\n");
  console.log(md.join("\n"));
  console.log(`\nwrote ${args.out}/eval.json, eval.md, ${protocols.map((p) => `curves-${p}.svg`).join(", ")}`);
} finally {
  await pool.close();
  await server?.shutdown();
}
