/**
 * `deno run -A scripts/seed_decisions.ts [--rows N] [--db URL] [--days D] [--end MS] [--seed S]`: write realistic
 * synthetic decisions to a database, for measuring the analytics queries (`deno task bench:analytics`) and for the
 * dashboard test. Never used by the service.
 *
 * The traffic: three edge locations with their own cloud round trips, a daily rhythm, three switcher versions
 * promoted in turn (each offloading a little less), the default models' labels and vector sizes (64-float
 * embedding, 70 switcher features, 15 probabilities), scores for which P(edge != cloud) ~ score, 0.5% forced
 * routes, a spent budget or an open circuit now and then, 1.5% failed offloads (mostly timeouts), 2% shadow calls.
 * Seeded: the same flags give the same rows (ids aside, which are UUIDv7 of the row's time).
 *
 * @module
 */
import { openDatabase } from "../db/client.ts";
import { uuidv7 } from "../db/ids.ts";
import { countDecisions, insertDecisions } from "../db/queries.ts";
import type { DecisionRecord } from "../db/schema.ts";
import { createPrng, type Prng } from "../switcher/prng.ts";
import { progressBar } from "./progress.ts";
import { parseFlags } from "./cli.ts";

/** The default models' labels (wasm-models/manifest.json), with a skewed prior. */
const LABELS = [
  "backflip",
  "cartwheel",
  "crawl",
  "dance_a",
  "dance_b",
  "getup_facedown",
  "getup_faceup",
  "jump",
  "kick",
  "punch",
  "roll",
  "run",
  "spin",
  "spinkick",
  "walk",
];
const LABEL_WEIGHTS = [1, 1, 2, 2, 2, 1, 1, 4, 3, 4, 1, 8, 2, 1, 12];
const LOCATIONS = [
  { name: "eu-west-1", weight: 0.5, cloudMedianMs: 28 },
  { name: "us-east-1", weight: 0.3, cloudMedianMs: 45 },
  { name: "ap-south-1", weight: 0.2, cloudMedianMs: 85 },
];
const SWITCHERS = [
  { version: "switcher-v1", threshold: 0.42 },
  { version: "switcher-v2", threshold: 0.46 },
  { version: "switcher-v3", threshold: 0.5 },
];
const EDGE_VERSION = "edge-coco17-20261124-s7";
const CLOUD_VERSION = "cloud-coco17-tcn-20261124-s7";
const CLOUD_TIMEOUT_MS = 1000;

/** Options of {@link syntheticDecisions}. */
export interface SyntheticOptions {
  rows: number;
  /** Exclusive end of the time span, Unix milliseconds. */
  endMs: number;
  /** Length of the time span, in milliseconds. */
  spanMs: number;
  seed: number;
}

function pickWeighted(rng: Prng, weights: number[]): number {
  const total = weights.reduce((a, b) => a + b, 0);
  let u = rng.next() * total;
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return weights.length - 1;
}

const lognormal = (rng: Prng, median: number, sigma: number) => median * Math.exp(sigma * rng.normal());
const round2 = (x: number) => Math.round(x * 100) / 100;

/** A probability vector with `top` at `pTop` and the rest spread at random. */
function probs(rng: Prng, top: number, pTop: number): number[] {
  const rest = LABELS.map((_, i) => (i === top ? 0 : rng.next() + 0.05));
  const sum = rest.reduce((a, b) => a + b, 0);
  return rest.map((r, i) => (i === top ? pTop : ((1 - pTop) * r) / sum));
}

function randomFloats(rng: Prng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rng.normal();
  return out;
}

/**
 * Row times: hours weighted by a daily rhythm (busiest mid-afternoon UTC, quietest at night), uniform within the
 * hour, in time order.
 */
function* times(rng: Prng, options: SyntheticOptions): Generator<number> {
  const hours = Math.max(1, Math.ceil(options.spanMs / 3600_000));
  const startMs = options.endMs - options.spanMs;
  const weights = Array.from({ length: hours }, (_, h) => {
    const hourOfDay = new Date(startMs + h * 3600_000).getUTCHours();
    return 1 + 0.7 * Math.sin(((hourOfDay - 9) / 24) * 2 * Math.PI);
  });
  const total = weights.reduce((a, b) => a + b, 0);
  let emitted = 0;
  let acc = 0;
  for (let h = 0; h < hours; h++) {
    acc += weights[h];
    const upto = h === hours - 1 ? options.rows : Math.round((acc / total) * options.rows);
    const n = upto - emitted;
    const hourStart = startMs + h * 3600_000;
    const hourMs = Math.min(3600_000, options.endMs - hourStart);
    const inHour = Array.from({ length: n }, () => hourStart + Math.floor(rng.next() * hourMs)).sort((a, b) => a - b);
    for (const t of inHour) yield t;
    emitted = upto;
  }
}

/**
 * Generate realistic decisions in time order.
 *
 * @param options how many, over which span, and the seed
 * @returns the decisions, lazily
 */
export function* syntheticDecisions(options: SyntheticOptions): Generator<DecisionRecord> {
  const rng = createPrng(options.seed);
  const startMs = options.endMs - options.spanMs;
  let n = 0;
  for (const createdAt of times(rng, options)) {
    n++;
    const loc = LOCATIONS[pickWeighted(rng, LOCATIONS.map((l) => l.weight))];
    const phase = Math.min(SWITCHERS.length - 1, Math.floor(((createdAt - startMs) / options.spanMs) * 3));
    const sw = SWITCHERS[phase];
    const score = 1 / (1 + Math.exp(-(1.3 * rng.normal() - 1.2)));
    const edgeTop = pickWeighted(rng, LABEL_WEIGHTS);
    const edgeProbs = probs(rng, edgeTop, 0.97 - 0.6 * score + 0.02 * rng.next());
    const disagree = rng.next() < score;
    const cloudTop = disagree ? (edgeTop + 1 + rng.int(LABELS.length - 1)) % LABELS.length : edgeTop;

    const forcedDraw = rng.next();
    const forced = forcedDraw < 0.005 ? (forcedDraw < 0.0025 ? "edge" : "cloud") : null;
    let routeReason: DecisionRecord["routeReason"];
    let offload = false;
    if (forced === "edge") routeReason = "forced_edge";
    else if (forced === "cloud") (routeReason = "forced_cloud"), (offload = true);
    else if (score < sw.threshold) routeReason = "below_threshold";
    else if (rng.next() < 0.005) routeReason = "cloud_unavailable";
    else if (rng.next() < 0.02) routeReason = "budget_exhausted";
    else (routeReason = "above_threshold"), (offload = true);
    const shadow = !offload && rng.next() < 0.02;

    const queueMs = round2(rng.next() < 0.05 ? lognormal(rng, 6, 0.8) : lognormal(rng, 0.3, 0.6));
    const edgeMs = round2(lognormal(rng, 4.2, 0.25));
    let route: DecisionRecord["route"] = "edge";
    let cloudMs: number | null = null;
    let cloudError: string | null = null;
    let cloudOk = false;
    if (offload || shadow) {
      const failure = rng.next();
      if (failure < 0.01) (cloudError = "OFFLOAD_TIMEOUT"), (cloudMs = CLOUD_TIMEOUT_MS + round2(rng.next() * 3));
      else if (failure < 0.015) (cloudError = "OFFLOAD_FAILED"), (cloudMs = round2(lognormal(rng, 5, 0.5)));
      else (cloudOk = true), (cloudMs = round2(lognormal(rng, loc.cloudMedianMs, 0.35)));
      if (offload) route = cloudOk ? "cloud" : "edge_fallback";
    }
    const cloudProbs = cloudOk ? probs(rng, cloudTop, 0.7 + 0.29 * rng.next()) : null;
    const answerCloud = route === "cloud";
    const top = answerCloud ? cloudTop : edgeTop;
    const answerProbs = answerCloud ? cloudProbs! : edgeProbs;
    yield {
      id: uuidv7(createdAt),
      requestId: `seed-${options.seed}-${n}`,
      clientId: rng.next() < 0.3 ? `cam-${rng.int(200)}` : null,
      edgeLocation: loc.name,
      createdAt,
      layout: "coco17",
      frames: 32 + rng.int(64),
      joints: 17,
      channels: 3,
      fps: 30,
      route,
      routeReason,
      forced: forced !== null,
      offloadProbability: offload ? 1 : 0,
      shadow,
      edgeModelVersion: EDGE_VERSION,
      edgeLabel: LABELS[edgeTop],
      edgeProb: edgeProbs[edgeTop],
      edgeProbs,
      embedding: randomFloats(rng, 64),
      features: randomFloats(rng, 70),
      switcherVersion: sw.version,
      switcherScore: score,
      switcherThreshold: sw.threshold,
      cloudModelVersion: cloudOk ? CLOUD_VERSION : null,
      cloudLabel: cloudOk ? LABELS[cloudTop] : null,
      cloudProb: cloudOk ? cloudProbs![cloudTop] : null,
      cloudProbs,
      cloudError,
      label: LABELS[top],
      prob: answerProbs[top],
      queueMs,
      edgeMs,
      cloudMs,
      totalMs: round2(queueMs + edgeMs + (offload ? cloudMs ?? 0 : 0) + 0.3),
      batchId: null,
    };
  }
}

/**
 * Write synthetic decisions to a database in batches.
 *
 * @param url the database URL
 * @param options what to write, `batchRows` per atomic batch (default 5000) and `onProgress`
 * @returns rows written and seconds taken
 */
export async function seedDecisions(
  url: string,
  options: SyntheticOptions & { batchRows?: number; onProgress?: (done: number) => void },
): Promise<{ rows: number; seconds: number }> {
  const database = await openDatabase(url);
  const started = performance.now();
  try {
    const batchRows = options.batchRows ?? 5000;
    let batch: DecisionRecord[] = [];
    let done = 0;
    for (const row of syntheticDecisions(options)) {
      batch.push(row);
      if (batch.length === batchRows) {
        await insertDecisions(database.db, batch);
        done += batch.length;
        batch = [];
        options.onProgress?.(done);
      }
    }
    await insertDecisions(database.db, batch);
    done += batch.length;
    options.onProgress?.(done);
    return { rows: done, seconds: (performance.now() - started) / 1000 };
  } finally {
    database.close();
  }
}

const USAGE = "usage: deno task seed:decisions [--rows N] [--db URL] [--days D] [--end UNIX_MS] [--seed S]";

if (import.meta.main) {
  const values = parseFlags({
    rows: { type: "string", default: "1000000" },
    db: { type: "string", default: "file:build/bench/decisions-1m.db" },
    days: { type: "string", default: "7" },
    end: { type: "string" },
    seed: { type: "string", default: "1" },
  }, USAGE);
  const rows = Number(values.rows);
  const days = Number(values.days);
  const endMs = values.end === undefined ? Date.now() : Number(values.end);
  const seed = Number(values.seed);
  if (!Number.isInteger(rows) || rows < 1 || !(days > 0) || !Number.isFinite(endMs) || !Number.isInteger(seed)) {
    console.error(
      `Cannot seed: --rows must be a positive integer, --seed an integer, --days positive, --end Unix ms\n${USAGE}`,
    );
    Deno.exit(2);
  }
  const bar = progressBar("seeding decisions");
  const result = await seedDecisions(values.db, {
    rows,
    endMs,
    spanMs: days * 86_400_000,
    seed,
    onProgress: (done) => bar.update(done, rows),
  });
  bar.end();
  const database = await openDatabase(values.db);
  const total = await countDecisions(database.db);
  database.close();
  console.log(JSON.stringify({
    db: values.db,
    rowsWritten: result.rows,
    seconds: Number(result.seconds.toFixed(1)),
    rowsPerSecond: Math.round(result.rows / result.seconds),
    rowsInDatabase: total,
  }));
}
