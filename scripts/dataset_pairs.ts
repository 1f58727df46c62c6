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
import { type DatasetRow, readDataset } from "./dataset.ts";

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

/**
 * Dataset rows as the edge model's inputs, in the span of time the model reads, as the service takes a request
 * (sequence/window.ts: resampled to the model's rate, the most recent window). Rows of another layout, or whose
 * frames do not fit the model (joints, channels, at most `maxFrames` frames, finite numbers, at least the frames the
 * model reads), are skipped and counted.
 *
 * @param rows the dataset's rows
 * @param edge the edge model's spec
 * @param options `maxFrames` (default 100,000), `keepLabels` (default false: items carry no true label)
 * @returns the items, the rows they came from (same order) and how many were skipped
 */
export function datasetItems(
  rows: DatasetRow[],
  edge: ClassifierSpec,
  options: { maxFrames?: number; keepLabels?: boolean } = {},
): { items: DatasetItem[]; rows: DatasetRow[]; skipped: number } {
  const items: DatasetItem[] = [];
  const kept: DatasetRow[] = [];
  for (const r of rows) {
    if (r.layout !== edge.layout) continue;
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
    } catch {
      continue;
    }
    items.push({
      item: { ...timed, layout: r.layout, clientId: String(r.id) },
      sourceRef: String(r.id),
      trueLabel: options.keepLabels ? r.label ?? null : null,
    });
    kept.push(r);
  }
  return { items, rows: kept, skipped: rows.length - kept.length };
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
  const { items } = datasetItems(await readDataset(path), manifest.edge, { keepLabels: options.keepLabels });
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
