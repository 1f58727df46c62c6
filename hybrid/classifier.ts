/**
 * The hybrid classifier: edge inference in the worker pool, the switcher's decision, the offload to the cloud
 * model for the sequences it picks, the answer, and one decision record per sequence for the log.
 *
 * Adapters (inference, cloud, log, clock, ids) are passed in as plain objects, so tests can fake any of them.
 *
 * @module
 */
import type { DecisionRecord } from "../db/schema.ts";
import { AppError, type ErrorCode } from "../errors.ts";
import { decide, type RouteReason } from "../switcher/decide.ts";
import { probabilityStats, softmax } from "../switcher/features.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import type { EdgeInference } from "../workers/pool.ts";
import { resample } from "../workers/preprocess.ts";

/** Where an answer came from: the edge model, the cloud model, or the edge model because the cloud failed. */
export type Route = "edge" | "cloud" | "edge_fallback";

/** The cloud model as the classifier needs it: an Open Inference Protocol client satisfies it. */
export interface CloudAdapter {
  infer(
    frames: Float32Array,
    shape: number[],
    options?: { timeoutMs?: number; signal?: AbortSignal },
  ): Promise<{ logits: Float32Array; modelVersion: string | null; ms: number }>;
}

/** Where decisions go: the batched decision log satisfies it. */
export interface DecisionSink {
  append(record: DecisionRecord): void;
}

/** One validated sequence. */
export interface SequenceItem {
  /** Flattened `[length, joints, channels]` values. */
  data: Float32Array;
  length: number;
  fps: number;
  layout: string;
  /** The caller's own id, if any. */
  clientId: string | null;
}

/** The answer for one sequence. */
export interface Answer {
  decisionId: string;
  clientId: string | null;
  label: string;
  probability: number;
  probabilities: Record<string, number>;
  route: Route;
  routeReason: RouteReason;
  forced: boolean;
  edge: { label: string; probability: number };
  cloud: { label: string; probability: number } | null;
  cloudError: { code: ErrorCode; message: string } | null;
  switcher: { score: number; threshold: number; version: string };
  models: { edge: string; cloud: string | null; switcher: string };
  timings: {
    queueMs: number;
    preprocessMs: number;
    edgeMs: number;
    switcherMs: number;
    cloudMs: number | null;
    totalMs: number;
  };
}

/** Options of {@link createHybridClassifier}. */
export interface HybridOptions {
  inference: EdgeInference;
  cloud: CloudAdapter;
  log: DecisionSink;
  edgeSpec: ClassifierSpec;
  cloudSpec: ClassifierSpec;
  /** The switcher's threshold; a function so a newly loaded switcher's threshold applies at once. */
  threshold: () => number;
  /** Deadline of one offload call, in milliseconds. */
  cloudTimeoutMs: number;
  /** Takes one offload token; false when the offload budget is spent. */
  takeOffloadToken: () => boolean;
  edgeLocation: string;
  newId: () => string;
  now?: () => number;
  /**
   * Exploration: each request the switcher keeps on the edge is also sent to the cloud in the background with
   * probability `rate` (a shadow call, off the answer's path, when `takeToken` grants one from its own budget), so
   * the log holds unbiased pairs. Every automatic decision logs the probability with which it reached the cloud.
   */
  exploration?: { rate: number; takeToken: () => boolean; random?: () => number };
}

/** Per-call options of {@link HybridClassifier.classify}. */
export interface ClassifyOptions {
  /** Force every sequence to one route (debugging); recorded in the log. */
  forced?: "edge" | "cloud";
  requestId: string;
  /** Set for batch requests: shared by the batch's decisions. */
  batchId?: string;
}

/** The hybrid classifier. */
export interface HybridClassifier {
  /** Classify sequences together: one edge pass, at most one cloud call (plus one background shadow call). */
  classify(items: SequenceItem[], options: ClassifyOptions): Promise<Answer[]>;
  /** Shadow calls still in flight. */
  shadowsInFlight(): number;
  /** Wait for the shadow calls in flight to settle and their decisions to reach the log (call before closing it). */
  drain(): Promise<void>;
}

function labelled(labels: string[], probs: ArrayLike<number>): Record<string, number> {
  const out: Record<string, number> = {};
  labels.forEach((l, i) => (out[l] = probs[i]));
  return out;
}

/**
 * Build the hybrid classifier.
 *
 * @param options adapters, model specs and policy settings
 * @returns the classifier
 */
export function createHybridClassifier(options: HybridOptions): HybridClassifier {
  const { inference, cloud, log, edgeSpec, cloudSpec } = options;
  const now = options.now ?? Date.now;
  const labels = edgeSpec.labels;
  const cloudWindow = cloudSpec.windowFrames;
  const pointSize = edgeSpec.joints * edgeSpec.channels;
  const sameWindow = cloudWindow === edgeSpec.windowFrames;
  const explorationRate = options.exploration?.rate ?? 0;
  if (!(explorationRate >= 0 && explorationRate <= 1)) {
    throw new RangeError(`Cannot explore: rate must be in [0, 1], got ${explorationRate}`);
  }
  const random = options.exploration?.random ?? Math.random;
  const shadows = new Set<Promise<void>>();

  async function offload(
    windows: Float32Array[],
  ): Promise<{ probs: Float64Array[]; version: string; ms: number } | { error: AppError; ms: number }> {
    const t0 = performance.now();
    const size = cloudWindow * pointSize;
    const batch = new Float32Array(windows.length * size);
    windows.forEach((w, i) => batch.set(w, i * size));
    try {
      const reply = await cloud.infer(batch, [windows.length, cloudWindow, edgeSpec.joints, edgeSpec.channels], {
        timeoutMs: options.cloudTimeoutMs,
      });
      const k = labels.length;
      if (reply.logits.length !== windows.length * k) {
        throw new AppError(
          "OFFLOAD_FAILED",
          `Cannot offload: expected ${windows.length * k} logits, got ${reply.logits.length}`,
        );
      }
      const probs = windows.map((_, i) => softmax(reply.logits.subarray(i * k, (i + 1) * k)));
      return { probs, version: reply.modelVersion ?? cloudSpec.version, ms: performance.now() - t0 };
    } catch (err) {
      const error = err instanceof AppError
        ? err
        : new AppError("OFFLOAD_FAILED", "Cannot offload: the cloud call failed", { cause: err });
      return { error, ms: performance.now() - t0 };
    }
  }

  async function classify(items: SequenceItem[], opts: ClassifyOptions): Promise<Answer[]> {
    const started = performance.now();
    const createdAt = now();
    // The pool takes the buffers; keep the input only when the cloud model needs another window length.
    const raw = sameWindow ? null : items.map((i) => i.data.slice());
    const { results, timings } = await inference.classify(items.map((i) => ({ data: i.data, length: i.length })));
    const versions = inference.versions();
    const threshold = options.threshold();

    const decisions = results.map((r) => {
      const wouldOffload = opts.forced === "cloud" || (opts.forced === undefined && r.score >= threshold);
      return decide({
        score: r.score,
        threshold,
        forced: opts.forced,
        budgetAvailable: wouldOffload && opts.forced === undefined ? options.takeOffloadToken() : true,
        cloudAvailable: true,
      });
    });
    // The cloud model's input for sequence i: the edge window, or the raw sequence resampled to its length.
    const cloudInput = (i: number) =>
      sameWindow
        ? results[i].window
        : resample(raw![i], { inFrames: items[i].length, outFrames: cloudWindow, pointSize });
    const offloaded = decisions.flatMap((d, i) => (d.offload ? [i] : []));
    const cloudReply = offloaded.length > 0 ? await offload(offloaded.map(cloudInput)) : null;
    const totalMs = performance.now() - started;
    // Exploration draws for the automatic decisions kept on the edge (not for fallbacks: the cloud just failed).
    const shadowed = new Set<number>();
    if (explorationRate > 0 && opts.forced === undefined) {
      decisions.forEach((d, i) => {
        if (!d.offload && random() < explorationRate && options.exploration!.takeToken()) shadowed.add(i);
      });
    }
    const delayed: { index: number; record: DecisionRecord }[] = [];

    const answers = results.map((r, i) => {
      const item = items[i];
      const d = decisions[i];
      const edgeStats = probabilityStats(r.probs);
      const edge = { label: labels[edgeStats.top], probability: edgeStats.pMax };
      const slot = offloaded.indexOf(i);
      let route: Route = "edge";
      let cloudAnswer: Answer["cloud"] = null;
      let cloudProbs: number[] | null = null;
      let cloudError: Answer["cloudError"] = null;
      let cloudVersion: string | null = null;
      let cloudMs: number | null = null;
      let finalProbs: ArrayLike<number> = r.probs;
      if (slot >= 0 && cloudReply) {
        cloudMs = cloudReply.ms;
        if ("error" in cloudReply) {
          route = "edge_fallback";
          cloudError = { code: cloudReply.error.code, message: cloudReply.error.message };
        } else {
          const p = cloudReply.probs[slot];
          const s = probabilityStats(p);
          route = "cloud";
          cloudVersion = cloudReply.version;
          cloudAnswer = { label: labels[s.top], probability: s.pMax };
          cloudProbs = Array.from(p);
          finalProbs = p;
        }
      }
      const final = route === "cloud" ? cloudAnswer! : edge;
      const decisionId = options.newId();
      const answer: Answer = {
        decisionId,
        clientId: item.clientId,
        label: final.label,
        probability: final.probability,
        probabilities: labelled(labels, finalProbs),
        route,
        routeReason: d.reason,
        forced: opts.forced !== undefined,
        edge,
        cloud: cloudAnswer,
        cloudError,
        switcher: { score: r.score, threshold, version: versions.switcher },
        models: { edge: versions.edge, cloud: cloudVersion, switcher: versions.switcher },
        timings: {
          queueMs: timings.queueMs,
          preprocessMs: timings.preprocessMs,
          edgeMs: timings.edgeMs,
          switcherMs: timings.switcherMs,
          cloudMs,
          totalMs,
        },
      };
      const record: DecisionRecord = {
        id: decisionId,
        requestId: opts.requestId,
        clientId: item.clientId,
        edgeLocation: options.edgeLocation,
        createdAt,
        layout: item.layout,
        frames: item.length,
        joints: edgeSpec.joints,
        channels: edgeSpec.channels,
        fps: item.fps,
        route,
        routeReason: d.reason,
        forced: opts.forced !== undefined,
        // Forced routes are certain; automatic ones reach the cloud when offloaded (1) or explored (the rate).
        offloadProbability: opts.forced !== undefined ? (d.offload ? 1 : 0) : d.offload ? 1 : explorationRate,
        shadow: false,
        edgeModelVersion: versions.edge,
        edgeLabel: edge.label,
        edgeProb: edge.probability,
        edgeProbs: Array.from(r.probs),
        embedding: r.embedding,
        features: r.features,
        switcherVersion: versions.switcher,
        switcherScore: r.score,
        switcherThreshold: threshold,
        cloudModelVersion: cloudVersion,
        cloudLabel: cloudAnswer?.label ?? null,
        cloudProb: cloudAnswer?.probability ?? null,
        cloudProbs,
        cloudError: cloudError?.code ?? null,
        label: final.label,
        prob: final.probability,
        queueMs: timings.queueMs,
        edgeMs: timings.edgeMs + timings.switcherMs + timings.preprocessMs,
        cloudMs,
        totalMs,
        batchId: opts.batchId ?? null,
      };
      if (shadowed.has(i)) delayed.push({ index: i, record });
      else log.append(record);
      return answer;
    });
    if (delayed.length > 0) {
      const shadow: Promise<void> = offload(delayed.map(({ index }) => cloudInput(index))).then((reply) => {
        delayed.forEach(({ record }, slot) => {
          record.shadow = true;
          record.cloudMs = reply.ms;
          if ("error" in reply) {
            record.cloudError = reply.error.code;
          } else {
            const p = reply.probs[slot];
            const st = probabilityStats(p);
            record.cloudModelVersion = reply.version;
            record.cloudLabel = labels[st.top];
            record.cloudProb = st.pMax;
            record.cloudProbs = Array.from(p);
          }
          log.append(record);
        });
      }).catch((err) => {
        // The log refused the rows (it is closing): say so, the answer was already sent.
        console.error(JSON.stringify({ level: "error", msg: "shadow decisions not logged", error: String(err) }));
      }).finally(() => shadows.delete(shadow));
      shadows.add(shadow);
    }
    return answers;
  }

  return {
    classify,
    shadowsInFlight: () => shadows.size,
    async drain() {
      while (shadows.size > 0) await Promise.allSettled([...shadows]);
    },
  };
}
