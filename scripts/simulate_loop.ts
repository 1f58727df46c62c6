/**
 * `deno task simulate:loop`: a simulated day of traffic through the real service, then the retraining job three
 * ways, each candidate measured on held-out labelled data. Answers: does exploration-weighted retraining give a
 * better switcher than retraining on offloads alone?
 *
 *   deno task simulate:loop [--traffic FILE] [--eval FILE] [--exploration 0.1] [--seeds 3] [--concurrency 8]
 *                           [--out build/simulate-loop.json]
 *
 * 1. The service starts as `deno task start` would (copied default models, a fresh libSQL file, the reference cloud
 *    server on loopback, EXPLORATION_RATE), and every sequence of --traffic (default: the deploy pool) is sent to
 *    `POST /v1/classify` over HTTP. The served switcher routes; kept requests are shadowed at the exploration rate.
 * 2. From that log, the retraining job (loop/retrain.ts, dry run) trains a candidate per seed, three ways:
 *    `ipw` (offloaded + shadow pairs, inverse-propensity weighted, the product's default), `unweighted` (the same
 *    pairs, every weight 1) and `offloads-only` (offloaded pairs only: a loop without exploration).
 * 3. Both models run over --eval (default: the labelled test split); each candidate, the served switcher and the
 *    max-probability baseline are scored with the evaluation harness (switcher/evaluation.ts): AUC for
 *    edge/cloud disagreement, area under accuracy vs offload, accuracy at 10/20/30%, offload to reach the cloud.
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/client.ts";
import { listDecisions } from "../db/queries.ts";
import { retrain } from "../loop/retrain.ts";
import { startService } from "../main.ts";
import { evaluatePolicies, type Policy } from "../switcher/evaluation.ts";
import { probabilityStats } from "../switcher/features.ts";
import { rocAuc } from "../switcher/metrics.ts";
import { loadModelSet, readManifest } from "../workers/artefacts.ts";
import { scoreWithOnnx } from "../workers/runtime.ts";
import { parseFlags, usageError } from "./cli.ts";
import { readDataset } from "./dataset.ts";
import { copyModelSet, datasetPairs } from "./dataset_pairs.ts";
import { progressBar } from "./progress.ts";

const USAGE = "usage: deno task simulate:loop [--traffic FILE] [--eval FILE] [--models DIR] [--exploration 0.1] " +
  "[--seeds 3] [--concurrency 8] [--out FILE]\n" +
  "Replay a day of traffic (--traffic, default datasets/mocap/deploy.jsonl.gz) through the service and compare " +
  "retraining with exploration against offloads alone on the labelled --eval (datasets/mocap/test.jsonl.gz); " +
  "writes --out (build/simulate-loop.json).";
const args = parseFlags({
  traffic: { type: "string", default: "datasets/mocap/deploy.jsonl.gz" },
  eval: { type: "string", default: "datasets/mocap/test.jsonl.gz" },
  models: { type: "string", default: "wasm-models" },
  exploration: { type: "string", default: "0.1" },
  seeds: { type: "string", default: "3" },
  concurrency: { type: "string", default: "8" },
  out: { type: "string", default: "build/simulate-loop.json" },
}, USAGE);
const exploration = Number(args.exploration);
const seeds = Number(args.seeds);
const concurrency = Number(args.concurrency);
if (!(exploration > 0 && exploration <= 1) || !(seeds >= 1) || !(concurrency >= 1)) {
  usageError("Cannot simulate: --exploration in (0, 1], --seeds and --concurrency at least 1", USAGE);
}

const dir = await Deno.makeTempDir({ prefix: "dmd_simulate_" });
try {
  await simulate(dir);
} finally {
  // Also when a step fails (a bad --models, a service that does not start): no folder is left behind.
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** The simulation, its copies of the models and its database in `dir`. */
async function simulate(dir: string): Promise<void> {
  const models = `${dir}/models`;
  await copyModelSet(args.models!, models);
  const dbUrl = `file:${dir}/decisions.db`;

  // 1. The day of traffic, over HTTP.
  const traffic = await readDataset(args.traffic!);
  const service = await startService(loadConfig({
    ...Deno.env.toObject(),
    PORT: "0",
    MODELS_DIR: models,
    DATABASE_URL: dbUrl,
    EXPLORATION_RATE: String(exploration),
    SHADOW_BUDGET_PER_S: "0",
    SWITCHER_POLL_MS: "0",
    LOG_LEVEL: "warn",
  }));
  const bar = progressBar("traffic");
  const statuses: Record<number, number> = {};
  const routes: Record<string, number> = {};
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < traffic.length) {
      const row = traffic[next++];
      const res = await fetch(`${service.url}/v1/classify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ id: row.id, layout: row.layout, fps: row.fps, frames: row.frames }),
      });
      statuses[res.status] = (statuses[res.status] ?? 0) + 1;
      const body = await res.json();
      if (res.ok) routes[body.route] = (routes[body.route] ?? 0) + 1;
      bar.update(next, traffic.length);
    }
  }));
  bar.end();
  const trafficSeconds = (performance.now() - t0) / 1000;
  await service.shutdown();

  // 2. Retraining three ways, several seeds, from the same log.
  const database = await openDatabase(dbUrl, {});
  const logged = await listDecisions(database.db, { limit: 1_000_000 });
  const manifest = await readManifest(models);
  const variants = [
    { name: "ipw", ipw: true, includeShadow: true },
    { name: "unweighted", ipw: false, includeShadow: true },
    { name: "offloads-only", ipw: false, includeShadow: false },
  ] as const;
  const candidates: { variant: string; seed: number; bytes: Uint8Array; pairs: number; heldOutAuc: number }[] = [];
  for (const v of variants) {
    for (let seed = 1; seed <= seeds; seed++) {
      const report = await retrain({
        db: database.db,
        modelsDir: models,
        manifest,
        dryRun: true,
        minNewPairs: 0,
        ipw: v.ipw,
        includeShadow: v.includeShadow,
        seed,
      });
      candidates.push({
        variant: v.name,
        seed,
        bytes: report.candidate!,
        pairs: report.counts.train,
        heldOutAuc: report.verdict?.candidate.auc ?? NaN,
      });
    }
  }
  database.close();

  // 3. Both models over the labelled evaluation data; every switcher scored there.
  const { init } = await loadModelSet(models, { warmupRuns: 1 });
  const labels = manifest.edge.labels;
  const pairs = await datasetPairs(args.eval!, {
    modelsDir: models,
    manifest,
    init,
    keepLabels: true,
    onProgress: progressBar("eval pairs").update,
  });
  const labelled = pairs.filter((p) => p.trueLabel !== null && labels.includes(p.trueLabel));
  const features = labelled.map((p) => p.record.features);
  const f = features[0].length;
  const disagree = labelled.map((p) =>
    probabilityStats(p.record.edgeProbs).top === probabilityStats(p.record.cloudProbs!).top ? 0 : 1
  );
  const inputs = {
    truth: labelled.map((p) => labels.indexOf(p.trueLabel!)),
    edgeProbs: labelled.map((p) => p.record.edgeProbs),
    cloudProbs: labelled.map((p) => p.record.cloudProbs!),
    classes: labels.length,
  };
  const policies: Policy[] = [
    { name: "max-probability", scores: labelled.map((p) => 1 - probabilityStats(p.record.edgeProbs).pMax) },
  ];
  if (init.switcher.artefact) {
    policies.push({
      name: `served (${manifest.switcher!.version})`,
      scores: await scoreWithOnnx(init.switcher.artefact, features, f),
    });
  }
  for (const c of candidates) {
    policies.push({ name: `${c.variant} seed ${c.seed}`, scores: await scoreWithOnnx(c.bytes, features, f) });
  }
  const report = evaluatePolicies(inputs, policies);

  const rows = report.policies.map((p, i) => ({
    name: p.name,
    auc: rocAuc(policies[i].scores, disagree),
    area: p.accuracyArea,
    at: p.at,
    rateToCloud: p.rateToCloudAccuracy,
  }));
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const sd = (xs: number[]) => Math.sqrt(mean(xs.map((x) => (x - mean(xs)) ** 2)));
  const pct = (v: number) => (v * 100).toFixed(2);
  console.log(
    `\nSimulated day: ${traffic.length} requests from ${args.traffic} in ${trafficSeconds.toFixed(1)} s ` +
      `(HTTP ${JSON.stringify(statuses)}, routes ${JSON.stringify(routes)}), exploration ${exploration}; ` +
      `${logged.length} decisions logged, ${logged.filter((d) => d.shadow).length} shadow, ` +
      `${logged.filter((d) => d.route === "cloud").length} offloaded.`,
  );
  console.log(
    `Evaluated on ${args.eval} (${labelled.length} labelled sequences): edge ${pct(report.edgeOnly.accuracy)}%, ` +
      `cloud ${pct(report.cloudOnly.accuracy)}%, agreement ${pct(report.agreement)}%.\n`,
  );
  console.log(
    "| switcher | train pairs | disagreement AUC | area (acc) | acc @10% | @20% | @30% | offload to reach cloud |",
  );
  console.log("|---|---|---|---|---|---|---|---|");
  const line = (name: string, pairsText: string, sel: typeof rows) => {
    const m = (g: (r: typeof rows[number]) => number | null) => {
      const xs = sel.map(g).filter((x): x is number => x !== null);
      return xs.length === 0 ? "-" : sel.length > 1 ? `${pct(mean(xs))} ± ${pct(sd(xs))}` : pct(xs[0]);
    };
    console.log(
      `| ${name} | ${pairsText} | ${m((r) => r.auc)} | ${m((r) => r.area)} | ${m((r) => r.at[0].accuracy)} | ${
        m((r) => r.at[1].accuracy)
      } | ${m((r) => r.at[2].accuracy)} | ${m((r) => r.rateToCloud)} |`,
    );
  };
  for (const r of rows.filter((r) => !r.name.includes(" seed "))) line(r.name, "-", [r]);
  for (const v of variants) {
    const sel = rows.filter((r) => r.name.startsWith(`${v.name} seed `));
    const n = candidates.find((c) => c.variant === v.name)!.pairs;
    line(`${v.name} (mean ± sd over ${seeds} seeds)`, String(n), sel);
  }
  await Deno.mkdir(args.out!.replace(/\/[^/]*$/, ""), { recursive: true }).catch(() => {});
  await Deno.writeTextFile(
    args.out!,
    JSON.stringify({ traffic: args.traffic, eval: args.eval, exploration, statuses, routes, rows }, null, 2),
  );
  console.log(`\nwrote ${args.out}`);
}
