/**
 * `deno task eval:tiers`: multi-tier routing policies on a labelled set, accuracy against total cost
 * (switcher/cascade_eval.ts): each tier alone, the confidence rules and random at every hop, the shipped hop-0
 * switcher followed by max probability, and the oracle; each point with its standard error, each policy's frontier,
 * area, and the least cost matching the best single tier (paired difference and SE). Writes `eval_tiers.json`,
 * `eval_tiers.md` and `eval_tiers.svg` to --out.
 *
 *   deno task eval:tiers --dataset datasets/mocap/test.jsonl.gz --out build/eval-tiers
 *   deno task eval:tiers --outputs outputs.jsonl --out build/eval-tiers
 *
 * The tiers are `TIERS` (serve/tiers.ts; unset: the edge model and the `CLOUD_*` cloud model). With --dataset
 * (labelled keypoint sequences) the edge model runs in the worker pool, tier 1 and the other `oip` tiers over the
 * Open Inference Protocol (tier 1 on a reference server started here when it has no url); a tier that takes frames
 * cannot run on keypoints: give --outputs instead, a JSONL file with one line per item,
 * `{ "label": "walk", "tiers": { "<tier name>": [probabilities in label order], ... }, "switcher"?: score }`.
 * Cost per call: --cost ms (a tier's `costMs`, else its mean measured time in this run) or --cost price (its
 * `pricePerCall`, 0 when unset).
 *
 * @module
 */
import { startReferenceServer } from "../cloud/reference_server.ts";
import { createOipClient } from "../cloud/oip_client.ts";
import { loadConfig } from "../config.ts";
import { resample } from "../sequence/preprocess.ts";
import { collectPairs } from "../loop/pairs.ts";
import { createTierModel } from "../cloud/tier_models.ts";
import type { Tier } from "../serve/tiers.ts";
import { type CascadeEvaluation, evaluateCascade } from "../switcher/cascade_eval.ts";
import { loadModelSet, readManifest } from "../workers/artefacts.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { InputError, parseFlags, usageError } from "./cli.ts";
import { readDatasetItems, skippedLine } from "./dataset_pairs.ts";

const USAGE = `usage: deno task eval:tiers (--dataset FILE | --outputs FILE) [--models DIR] [--out DIR]
  [--cost ms|price] [--steps N] [--seed N] [--limit N] [--json]
Tiers from TIERS or TIERS_FILE (default: edge + the CLOUD_* cloud model).`;

const args = parseFlags({
  dataset: { type: "string" },
  outputs: { type: "string" },
  models: { type: "string" },
  out: { type: "string", default: "build/eval-tiers" },
  cost: { type: "string", default: "ms" },
  steps: { type: "string", default: "10" },
  seed: { type: "string", default: "1" },
  limit: { type: "string" },
  json: { type: "boolean", default: false },
}, USAGE);
if (!args.dataset === !args.outputs) usageError("Cannot evaluate tiers: give either --dataset or --outputs", USAGE);
if (args.cost !== "ms" && args.cost !== "price") usageError(`Cannot evaluate tiers: --cost must be ms or price`, USAGE);
const steps = Number(args.steps);
if (!Number.isInteger(steps) || steps < 1 || steps > 100) {
  usageError("Cannot evaluate tiers: --steps in [1, 100]", USAGE);
}
const limit = args.limit === undefined ? Infinity : Number(args.limit);
if (!(limit >= 1)) usageError("Cannot evaluate tiers: --limit must be a positive number", USAGE);

const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const tiers: Tier[] = config.tiers ?? [
  { kind: "edge", name: "edge", input: "keypoints", costMs: null, pricePerCall: null },
  {
    kind: "oip",
    name: "cloud",
    input: "keypoints",
    url: config.cloudUrl,
    model: config.cloudModelName,
    timeoutMs: config.cloudTimeoutMs,
    budgetPerS: 0,
    breaker: { failures: 1e6, failureRatio: 1, window: 1, openMs: 1, maxOpenMs: 1 },
    explore: 0,
    apiKey: undefined,
    costMs: null,
    pricePerCall: null,
    threshold: null,
  },
];

/** Per item: its label index, each tier's probabilities, the hop-0 switcher's score; measured ms per tier. */
interface Collected {
  truth: number[];
  probs: number[][][];
  switcher: number[] | null;
  measuredMs: (number | null)[];
}

async function fromOutputs(path: string, labels: string[]): Promise<Collected> {
  const text = await Deno.readTextFile(path);
  const lines = text.split("\n").filter((l) => l.trim() !== "").slice(0, limit);
  const out: Collected = { truth: [], probs: tiers.map(() => []), switcher: [], measuredMs: tiers.map(() => null) };
  lines.forEach((line, i) => {
    let row: { label?: unknown; tiers?: Record<string, unknown>; switcher?: unknown };
    try {
      row = JSON.parse(line);
    } catch {
      throw new InputError(`Cannot read ${path}: line ${i + 1} is not JSON`);
    }
    const label = labels.indexOf(String(row.label));
    if (label < 0) throw new InputError(`Cannot read ${path}: line ${i + 1} has no known label`);
    out.truth.push(label);
    tiers.forEach((t, k) => {
      const p = row.tiers?.[t.name];
      if (!Array.isArray(p) || p.length !== labels.length || !p.every((v) => typeof v === "number" && v >= 0)) {
        throw new InputError(`Cannot read ${path}: line ${i + 1} has no ${labels.length} probabilities for ${t.name}`);
      }
      out.probs[k].push(p);
    });
    if (typeof row.switcher === "number") out.switcher!.push(row.switcher);
  });
  if (out.switcher!.length !== out.truth.length) out.switcher = null;
  return out;
}

async function fromDataset(path: string): Promise<Collected> {
  const frames = tiers.find((t) => t.input === "frames");
  if (frames) {
    throw new InputError(
      `Cannot evaluate tier ${frames.name} on ${path}: it takes frames, a keypoint dataset has none; give --outputs FILE`,
    );
  }
  const { manifest, init } = await loadModelSet(modelsDir, { warmupRuns: 1 });
  const labels = manifest.cloud.labels;
  const read = await readDatasetItems(path, manifest.edge, { maxFrames: config.maxFrames, keepLabels: true, labels });
  const { items } = read;
  const skipped = skippedLine(path, read);
  if (skipped) console.error(`eval:tiers: ${skipped}`);
  const used = items.slice(0, limit);
  const cloudSpec = manifest.cloud;
  const pointSize = cloudSpec.joints * cloudSpec.channels;
  // The pool takes the buffers: the later tiers' windows are made first.
  const windows = used.map((d) =>
    resample(d.item.data, { inFrames: d.item.length, outFrames: cloudSpec.windowFrames, pointSize })
  );
  const first = tiers[1] as Extract<Tier, { kind: "oip" }>;
  const server = first.url ? null : await startReferenceServer({
    host: "127.0.0.1",
    port: 0,
    modelsDir,
    modelName: first.model,
    runtime: "auto",
  });
  const pool = await createWorkerPool(init, { size: config.workers, queueMax: 4096 });
  try {
    const cloud = createOipClient({
      baseUrl: first.url ?? server!.url,
      modelName: first.model,
      timeoutMs: 30_000,
      auth: first.apiKey ? { header: "authorization", value: `Bearer ${first.apiKey}` } : undefined,
      outputSize: labels.length,
    });
    console.error(`eval:tiers: ${used.length} sequences from ${path}: edge + ${first.name} ...`);
    // One sequence per call, as the service offloads a request: the measured times are per call.
    const { pairs, cloudFailures } = await collectPairs(used, {
      inference: pool,
      cloud,
      edgeSpec: manifest.edge,
      cloudSpec,
      batchSize: 1,
      cloudTimeoutMs: 30_000,
    });
    if (cloudFailures > 0) {
      throw new InputError(`Cannot evaluate tiers: ${cloudFailures} calls to ${first.name} failed`);
    }
    const out: Collected = {
      truth: pairs.map((p) => labels.indexOf(p.trueLabel!)),
      probs: [pairs.map((p) => p.record.edgeProbs), pairs.map((p) => p.record.cloudProbs!)],
      switcher: pairs.map((p) => p.record.switcherScore),
      measuredMs: [
        pairs.reduce((a, p) => a + p.record.edgeMs, 0) / pairs.length,
        pairs.reduce((a, p) => a + p.record.cloudMs!, 0) / pairs.length,
      ],
    };
    const index = new Map(used.map((d, i) => [d.sourceRef, i]));
    for (const tier of tiers.slice(2)) {
      const model = createTierModel(tier as Extract<Tier, { kind: "oip" }>, { cloudSpec });
      console.error(`eval:tiers: ${tier.name} ...`);
      const probs: number[][] = [];
      let ms = 0;
      for (const p of pairs) {
        const o = await model.call({ window: windows[index.get(p.sourceRef)!], clip: null });
        if (!("probs" in o)) throw new InputError(`Cannot evaluate tiers: ${tier.name} failed: ${o.error.message}`);
        probs.push(Array.from(o.probs));
        ms += o.ms;
      }
      out.probs.push(probs);
      out.measuredMs.push(ms / pairs.length);
    }
    return out;
  } finally {
    await pool.close();
    await server?.shutdown();
  }
}

function costOf(tier: Tier, measured: number | null): number {
  if (args.cost === "price") return tier.pricePerCall ?? 0;
  if (tier.costMs !== null) return tier.costMs;
  if (measured === null) {
    throw new InputError(`Cannot evaluate tiers: tier ${tier.name} has no costMs and no time measured; set costMs`);
  }
  return measured;
}

/** The frontiers as an SVG line chart: accuracy against mean cost per request. */
function svg(result: CascadeEvaluation): string {
  const w = 640, h = 400, m = 50;
  const all: { cost: number; accuracy: number }[] = [...result.policies.flatMap((p) => p.frontier), ...result.tiers];
  const xs = all.map((p) => p.cost), ys = all.map((p) => p.accuracy);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs)], [y0, y1] = [Math.min(...ys), Math.max(...ys)];
  const X = (v: number) => m + ((v - x0) / (x1 - x0 || 1)) * (w - 2 * m);
  const Y = (v: number) => h - m - ((v - y0) / (y1 - y0 || 1)) * (h - 2 * m);
  const colors = ["#1f77b4", "#ff7f0e", "#2ca02c", "#7f7f7f", "#d62728", "#9467bd"];
  const lines = result.policies.map((p, i) => {
    const pts = p.frontier.map((q) => `${X(q.cost).toFixed(1)},${Y(q.accuracy).toFixed(1)}`).join(" ");
    return `<polyline fill="none" stroke="${colors[i % colors.length]}" stroke-width="2" points="${pts}"/>` +
      `<text x="${w - m + 4}" y="${m + 14 * i}" font-size="11" fill="${colors[i % colors.length]}">${p.name}</text>`;
  });
  const dots = result.tiers.map((t) =>
    `<circle cx="${X(t.cost).toFixed(1)}" cy="${Y(t.accuracy).toFixed(1)}" r="4"/><text x="${X(t.cost) + 6}" y="${
      Y(t.accuracy) + 4
    }" font-size="11">${t.name} alone</text>`
  );
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w + 80}" height="${h}" font-family="sans-serif">` +
    `<text x="${m}" y="20" font-size="13">accuracy against mean cost per request (${args.cost}), n = ${result.n}</text>` +
    `<line x1="${m}" y1="${h - m}" x2="${w - m}" y2="${h - m}" stroke="#000"/><line x1="${m}" y1="${m}" x2="${m}" y2="${
      h - m
    }" stroke="#000"/>` +
    `<text x="${m}" y="${h - m + 16}" font-size="11">${x0.toPrecision(3)}</text><text x="${w - m - 30}" y="${
      h - m + 16
    }" font-size="11">${x1.toPrecision(3)}</text>` +
    `<text x="4" y="${h - m}" font-size="11">${y0.toFixed(3)}</text><text x="4" y="${m + 4}" font-size="11">${
      y1.toFixed(3)
    }</text>` +
    lines.join("") + dots.join("") + `</svg>\n`;
}

function markdown(result: CascadeEvaluation): string {
  const f = (v: number) => v.toFixed(4);
  const rows = [
    `Multi-tier policies on ${result.n} labelled items; cost per request in ${args.cost} (${
      tiers.map((t) => t.name).join(" -> ")
    }).`,
    "",
    "| baseline | accuracy | SE | cost |",
    "|---|---|---|---|",
    ...result.tiers.map((t) =>
      `| ${t.name} alone | ${f(t.accuracy)} | ${f(t.standardError)} | ${t.cost.toPrecision(4)} |`
    ),
    `| oracle | ${f(result.oracle.accuracy)} | ${f(result.oracle.standardError)} | ${
      result.oracle.cost.toPrecision(4)
    } |`,
    "",
    `| policy | area (accuracy over normalised cost) | least cost matching ${result.best} alone | accuracy there (SE) | difference with ${result.best} (paired SE) |`,
    "|---|---|---|---|---|",
    ...result.policies.map((p) =>
      p.match
        ? `| ${p.name} | ${f(p.area)} | ${p.match.point.cost.toPrecision(4)} (rates ${
          p.match.point.rates.join(", ")
        }) | ${f(p.match.point.accuracy)} (${f(p.match.point.standardError)}) | ${f(p.match.difference)} (${
          f(p.match.standardError)
        }) |`
        : `| ${p.name} | ${f(p.area)} | not reached | | |`
    ),
  ];
  return rows.join("\n") + "\n";
}

{
  const labels = (await readManifest(modelsDir)).cloud.labels;
  const collected = args.outputs ? await fromOutputs(args.outputs, labels) : await fromDataset(args.dataset!);
  const result = evaluateCascade(
    {
      truth: collected.truth,
      tiers: tiers.map((t, k) => ({
        name: t.name,
        probs: collected.probs[k],
        cost: costOf(t, collected.measuredMs[k]),
      })),
    },
    {
      steps,
      seed: Number(args.seed),
      hop0Scores: collected.switcher ? { "switcher+max_prob": collected.switcher } : {},
    },
  );
  await Deno.mkdir(args.out, { recursive: true });
  const summary = { ...result, policies: result.policies.map(({ points: _, ...p }) => p) };
  await Deno.writeTextFile(`${args.out}/eval_tiers.json`, JSON.stringify(result, null, 2) + "\n");
  await Deno.writeTextFile(`${args.out}/eval_tiers.md`, markdown(result));
  await Deno.writeTextFile(`${args.out}/eval_tiers.svg`, svg(result));
  if (args.json) console.log(JSON.stringify(summary, null, 2));
  else console.log(markdown(result) + `\nwritten to ${args.out}/eval_tiers.{json,md,svg}`);
}
