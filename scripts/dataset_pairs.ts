/**
 * Both models over a dataset file, for the measuring scripts: the service's own worker pool for the edge model and
 * the reference cloud server on loopback (or CLOUD_URL), through the Open Inference Protocol client.
 *
 * @module
 */
import { createOipClient } from "../cloud/oip_client.ts";
import { startReferenceServer } from "../cloud/reference_server.ts";
import { type CollectedPair, collectPairs } from "../loop/pairs.ts";
import type { ClassifierSpec, Manifest } from "../wasm-models/manifest.ts";
import type { EngineInit } from "../workers/protocol.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { flattenFrames } from "../sequence/preprocess.ts";
import { toModelTime } from "../sequence/window.ts";
import { InputError } from "./cli.ts";
import { type DatasetRow, datasetRows, labelCheck } from "./dataset.ts";

/**
 * Copy a model set's files into another folder, so a script can install switchers without touching the original.
 *
 * @param from the model set
 * @param to the copy (created)
 */
export async function copyModelSet(from: string, to: string): Promise<void> {
  await Deno.mkdir(to, { recursive: true });
  for await (const e of Deno.readDir(from)) {
    if (e.isFile) await Deno.copyFile(`${from}/${e.name}`, `${to}/${e.name}`);
  }
}

/** One dataset row as the pair collector takes it. */
export interface DatasetItem {
  item: { data: Float32Array; length: number; fps: number; layout: string; clientId: string };
  sourceRef: string;
  trueLabel: string | null;
}

/** A dataset row without its frames: what the scripts keep of a row once its input window is made. */
export type DatasetMeta = Omit<DatasetRow, "frames">;

/** Options of {@link readDatasetItems}. */
export interface ItemOptions {
  /** Rows with more frames are skipped. @default 100_000 */
  maxFrames?: number;
  /** Items carry the row's label as their true label. @default false */
  keepLabels?: boolean;
}

/**
 * One dataset row as the edge model's input, in the span of time the model reads, as the service takes a request
 * (sequence/window.ts: resampled to the model's rate, the most recent window); or why the model cannot take it: a row
 * of another layout, or whose frames do not fit the model (joints, channels, at most `maxFrames` frames, finite
 * numbers, at least the frames the model reads).
 */
function rowItem(r: DatasetRow, edge: ClassifierSpec, options: ItemOptions): DatasetItem | { skip: string } {
  if (r.layout !== edge.layout) return { skip: `layout "${r.layout}", the edge model takes "${edge.layout}"` };
  let timed;
  try {
    const flat = flattenFrames(r.frames, {
      joints: edge.joints,
      channels: edge.channels,
      maxFrames: options.maxFrames ?? 100_000,
    });
    timed = toModelTime(flat.data, {
      inFrames: flat.length,
      fps: r.fps,
      pointSize: edge.joints * edge.channels,
      model: edge,
    });
  } catch (err) {
    return { skip: (err as Error).message };
  }
  return {
    item: { ...timed, layout: r.layout, clientId: String(r.id) },
    sourceRef: String(r.id),
    trueLabel: options.keepLabels ? r.label ?? null : null,
  };
}

/** What {@link readDatasetItems} read. */
export interface DatasetItems {
  items: DatasetItem[];
  /** The rows the items came from, without their frames, in the same order. */
  rows: DatasetMeta[];
  /** Rows the edge model cannot take. */
  skipped: number;
  /** The first of them and why. */
  firstSkip: { id: string; reason: string } | null;
}

/**
 * A line for the operator when some rows were skipped, e.g. `12 of 3,162 sequences of FILE skipped: the edge model
 * cannot take them (first "s9": layout "x", the edge model takes "coco17")`; null when none were.
 *
 * @param path the dataset file
 * @param read what {@link readDatasetItems} returned
 * @returns the line, or null
 */
export function skippedLine(path: string, read: DatasetItems): string | null {
  if (read.skipped === 0) return null;
  const total = read.items.length + read.skipped;
  return `${read.skipped} of ${total} sequences of ${path} skipped: the edge model cannot take them (first "${
    read.firstSkip!.id
  }": ${read.firstSkip!.reason})`;
}

/**
 * A dataset file as the edge model's inputs, read one row at a time ({@link datasetRows}): only each row's input
 * window and its fields other than the frames are kept, so a file far larger than memory's share for its parsed
 * frames can be evaluated (a parsed row takes about 30 bytes a number, a window 4).
 *
 * @param path the dataset (JSONL or JSONL.gz)
 * @param edge the edge model's spec
 * @param options `maxFrames`, `keepLabels`, and `labels`: check that every row carries one of them (evaluation needs
 *   ground truth; checked over the whole file before anything is returned)
 * @returns the items, the rows they came from without their frames (same order), how many rows were skipped and the
 *   first of them with the reason ({@link skippedLine} says it in one line)
 * @throws InputError as {@link datasetRows}; with `labels`, naming the file, the first sequence without a known label
 *   and how many there are; when the file has rows and the edge model can take none of them
 */
export async function readDatasetItems(
  path: string,
  edge: ClassifierSpec,
  options: ItemOptions & { labels?: readonly string[] } = {},
): Promise<DatasetItems> {
  const check = options.labels ? labelCheck(path, options.labels) : null;
  const items: DatasetItem[] = [];
  const kept: DatasetMeta[] = [];
  let skipped = 0;
  let firstSkip: DatasetItems["firstSkip"] = null;
  for await (const r of datasetRows(path)) {
    check?.see(r);
    const item = rowItem(r, edge, options);
    if ("skip" in item) {
      skipped++;
      firstSkip ??= { id: String(r.id), reason: item.skip };
      continue;
    }
    items.push(item);
    const { frames: _frames, ...meta } = r;
    kept.push(meta);
  }
  check?.finish();
  const read = { items, rows: kept, skipped, firstSkip };
  if (items.length === 0 && skipped > 0) {
    throw new InputError(
      `Cannot use ${path}: none of its ${skipped} sequences fit the edge model (first "${firstSkip!.id}": ${
        firstSkip!.reason
      })`,
    );
  }
  return read;
}

/**
 * Run every sequence of a dataset through the edge model and the cloud model.
 *
 * @param path the dataset (JSONL or JSONL.gz)
 * @param options the model set (`modelsDir`, its `manifest` and workers' `init`), `cloudUrl` (default: a
 *   reference server started here), `keepLabels` (default false: pairs carry no true label), `onProgress`
 * @returns one pair per sequence whose cloud call succeeded
 */
export async function datasetPairs(
  path: string,
  options: {
    modelsDir: string;
    manifest: Manifest;
    init: EngineInit;
    cloudUrl?: string;
    keepLabels?: boolean;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<CollectedPair[]> {
  const { manifest } = options;
  const { items } = await readDatasetItems(path, manifest.edge, { keepLabels: options.keepLabels });
  const server = options.cloudUrl ? null : await startReferenceServer({
    host: "127.0.0.1",
    port: 0,
    modelsDir: options.modelsDir,
    modelName: "cloud",
    runtime: "auto",
  });
  const pool = await createWorkerPool(options.init, { size: 2, queueMax: 4096 });
  try {
    const { pairs } = await collectPairs(items, {
      inference: pool,
      cloud: createOipClient({ baseUrl: options.cloudUrl ?? server!.url, modelName: "cloud", timeoutMs: 30_000 }),
      edgeSpec: manifest.edge,
      cloudSpec: manifest.cloud,
      batchSize: 64,
      cloudTimeoutMs: 30_000,
      onProgress: options.onProgress,
    });
    return pairs;
  } finally {
    await pool.close();
    await server?.shutdown();
  }
}
