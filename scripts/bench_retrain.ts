/**
 * `deno task bench:retrain`: time the retraining job on N logged pairs (default 100,000). The pairs are the
 * default models' outputs on datasets/mocap/deploy.jsonl.gz (collected once through the worker pool and the
 * reference cloud server), repeated with fresh ids and times to N decisions in a fresh libSQL file: half offloaded
 * (propensity 1), half shadowed (propensity EXPLORATION_RATE). Prints read, train and total seconds.
 *
 *   deno task bench:retrain [--pairs 100000]
 *
 * @module
 */
import { openDatabase } from "../db/client.ts";
import { uuidv7 } from "../db/ids.ts";
import { insertDecisions } from "../db/queries.ts";
import type { NewDecision } from "../db/schema.ts";
import { retrain } from "../loop/retrain.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { parseFlags, usageError } from "./cli.ts";
import { copyModelSet, datasetPairs } from "./dataset_pairs.ts";

const USAGE = "usage: deno task bench:retrain [--pairs 100000]\n" +
  "Time the retraining job on N logged pairs (the default models on datasets/mocap/deploy.jsonl.gz).";
const args = parseFlags({ pairs: { type: "string", default: "100000" } }, USAGE);
const n = Number(args.pairs);
if (!Number.isInteger(n) || n < 1) usageError("Cannot benchmark: --pairs must be a positive integer", USAGE);
const dir = await Deno.makeTempDir();
const models = `${dir}/models`;
await copyModelSet("wasm-models", models);
const { manifest, init } = await loadModelSet(models, { warmupRuns: 1 });
const pairs = await datasetPairs("datasets/mocap/deploy.jsonl.gz", { modelsDir: models, manifest, init });

const database = await openDatabase(`file:${dir}/decisions.db`, {});
const t0 = Date.now() - 86_400_000;
const batch: NewDecision[] = [];
let written = 0;
const tWrite = performance.now();
for (let i = 0; i < n; i++) {
  const p = pairs[i % pairs.length].record;
  const shadow = i % 2 === 1;
  batch.push(
    {
      ...p,
      id: uuidv7(),
      createdAt: t0 + Math.floor((i / n) * 86_400_000),
      shadow,
      offloadProbability: shadow ? 0.05 : 1,
      route: shadow ? "edge" : "cloud",
    } as NewDecision,
  );
  if (batch.length === 1000) {
    await insertDecisions(database.db, batch.splice(0));
    written += 1000;
  }
}
if (batch.length) await insertDecisions(database.db, batch.splice(0));
const writeSeconds = (performance.now() - tWrite) / 1000;
const report = await retrain({
  db: database.db,
  modelsDir: models,
  manifest,
  dryRun: true,
  onStep: (s) => console.error(s),
});
console.log(`\n| logged pairs | seeding (s) | read (s) | train + calibrate (s) | total retrain (s) | outcome |`);
console.log(`|---|---|---|---|---|---|`);
console.log(
  `| ${report.counts.pairs} | ${writeSeconds.toFixed(1)} | ${report.seconds.read.toFixed(1)} | ${
    report.seconds.train.toFixed(1)
  } | ${report.seconds.total.toFixed(1)} | ${report.outcome} (${report.reason}) |`,
);
database.close();
await Deno.remove(dir, { recursive: true });
