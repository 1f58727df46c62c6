/**
 * Collecting DMD pairs from a corpus of sequences: each sequence goes through the service's own path (the worker
 * pool for the edge model and switcher features, the Open Inference Protocol client for the cloud model), forced
 * to the cloud so that both outputs are known. Nothing is written to the decision log.
 *
 * @module
 */
import type { DecisionRecord } from "../db/schema.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import type { EdgeInference } from "../workers/pool.ts";
import { type CloudAdapter, createHybridClassifier, type SequenceItem } from "../serve/classifier.ts";

/** A collected pair, with the sequence it came from. */
export interface CollectedPair {
  sourceRef: string;
  trueLabel: string | null;
  record: DecisionRecord;
}

/**
 * Run sequences through both models in batches.
 *
 * @param items sequences with their id and (optional, never used for training) label
 * @param options the pool, the cloud client, model specs, batch size, deadline and a progress callback
 * @returns one pair per sequence whose cloud call succeeded; failures are counted
 */
export async function collectPairs(
  items: { item: SequenceItem; sourceRef: string; trueLabel: string | null }[],
  options: {
    inference: EdgeInference;
    cloud: CloudAdapter;
    edgeSpec: ClassifierSpec;
    cloudSpec: ClassifierSpec;
    batchSize: number;
    cloudTimeoutMs: number;
    onProgress?: (done: number, total: number) => void;
  },
): Promise<{ pairs: CollectedPair[]; cloudFailures: number }> {
  const records: DecisionRecord[] = [];
  let n = 0;
  const classifier = createHybridClassifier({
    inference: options.inference,
    cloud: options.cloud,
    log: { append: (r) => records.push(r) },
    edgeSpec: options.edgeSpec,
    cloudSpec: options.cloudSpec,
    thresholdOverride: 0,
    cloudTimeoutMs: options.cloudTimeoutMs,
    takeOffloadToken: () => true,
    edgeLocation: "dmd",
    newId: () => `pair-${n++}`,
  });
  const pairs: CollectedPair[] = [];
  let cloudFailures = 0;
  for (let s = 0; s < items.length; s += options.batchSize) {
    const batch = items.slice(s, s + options.batchSize);
    records.length = 0;
    await classifier.classify(batch.map((b) => b.item), { forced: "cloud", requestId: "dmd" });
    records.forEach((record, i) => {
      if (record.cloudProbs === null) cloudFailures++;
      else pairs.push({ sourceRef: batch[i].sourceRef, trueLabel: batch[i].trueLabel, record });
    });
    options.onProgress?.(Math.min(items.length, s + batch.length), items.length);
  }
  return { pairs, cloudFailures };
}
