/**
 * The hybrid classifier, the request path's core: edge inference in the worker pool (which scores with the switcher
 * release in service and names it), the decision (switcher/decide.ts: score, threshold, offload budget, whether the
 * cloud is up), the offload to the cloud model for the sequences it picks (serve/offload.ts), the answer, and one
 * decision record per sequence for the log.
 *
 * A decision row names exactly what decided it: the switcher release and threshold that scored the batch travel
 * with the edge result (`scoredBy`), never looked up again, so a hot swap cannot mislabel a row. Its
 * `offload_probability` is the probability with which the request reached the cloud, as it was in force: 1 when
 * offloaded; for a kept request, the exploration rate when a shadow call could have been made (the cloud up and
 * the shadow budget holding a token), else 0; forced routes 1 or 0.
 *
 * Adapters (inference, cloud, log, clock, ids) are passed in as plain objects, so tests can fake any of them.
 *
 * @module
 */
import type { DecisionRecord } from "../db/schema.ts";
import type { AppError, ErrorCode } from "../errors.ts";
import { decide, type RouteReason } from "../switcher/decide.ts";
import { probabilityStats } from "../switcher/features.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import type { EdgeInference } from "../workers/pool.ts";
import type { Cascade, Climb } from "./cascade.ts";
import { type CloudAdapter, createOffloader } from "./offload.ts";

export type { CloudAdapter } from "./offload.ts";

/** Where an answer came from: the edge model, the cloud model, or the edge model because the cloud failed. */
export type Route = "edge" | "cloud" | "edge_fallback";

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
  /** Set when the sequence came from camera frames (serve/frames.ts): logged with the decision. */
  input?: FrameInput;
  /** The camera frames themselves, for tiers that take frames (serve/cascade.ts); never logged or stored. */
  clip?: { kind: "jpeg" | "png"; images: Uint8Array[] };
}

/** How a sequence made from camera frames was made: the decision row's frame columns. */
export interface FrameInput {
  kind: "jpeg" | "png";
  decodeMs: number;
  poseMs: number;
  /** Mean keypoint score over all frames and joints. */
  poseQuality: number;
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
  /**
   * With more than two tiers configured, for a request that reached tier 1: the tier that answered, and each tier
   * reached (tier 1 first). Absent otherwise.
   */
  tiers?: {
    answered: string;
    reached: {
      name: string;
      label: string | null;
      probability: number | null;
      hasProbabilities: boolean | null;
      error: ErrorCode | null;
      ms: number | null;
    }[];
  };
}

/** Options of {@link createHybridClassifier}. */
export interface HybridOptions {
  inference: EdgeInference;
  cloud: CloudAdapter;
  log: DecisionSink;
  edgeSpec: ClassifierSpec;
  cloudSpec: ClassifierSpec;
  /**
   * A threshold that replaces the scoring release's own for every decision (the operator's `SWITCHER_THRESHOLD`);
   * unset: each decision uses the threshold of the release that scored it.
   */
  thresholdOverride?: number;
  /** Deadline of one offload call, in milliseconds. */
  cloudTimeoutMs: number;
  /** Takes one offload token; false when the offload budget is spent. */
  takeOffloadToken: () => boolean;
  /**
   * Why the cloud is known to be down now (an open circuit: `CIRCUIT_OPEN`), or null. While it is, requests the
   * switcher would offload stay on the edge with reason `cloud_unavailable` and spend no offload token, and no
   * shadow call is drawn. @default never down
   */
  cloudDown?: () => AppError | null;
  edgeLocation: string;
  newId: () => string;
  now?: () => number;
  /**
   * Exploration: each request the switcher keeps on the edge is also sent to the cloud in the background with
   * probability `rate` (a shadow call, off the answer's path) while the shadow budget has a token (`hasToken`;
   * `takeToken` spends it), so the log holds unbiased pairs. Every automatic decision logs the probability with
   * which it reached the cloud, as it was in force (0 while the budget is empty).
   */
  exploration?: { rate: number; hasToken: () => boolean; takeToken: () => boolean; random?: () => number };
  /**
   * The tiers past the first (more than two configured): each request tier 1 answered climbs on (serve/cascade.ts);
   * the answer is the highest tier that answered. Forced routes and shadow calls do not climb. @default none
   */
  cascade?: Cascade;
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
  const { inference, log, edgeSpec } = options;
  const now = options.now ?? Date.now;
  const labels = edgeSpec.labels;
  const explorationRate = options.exploration?.rate ?? 0;
  if (!(explorationRate >= 0 && explorationRate <= 1)) {
    throw new RangeError(`Cannot explore: rate must be in [0, 1], got ${explorationRate}`);
  }
  const random = options.exploration?.random ?? Math.random;
  const cloudDown = options.cloudDown ?? (() => null);
  const offloader = createOffloader(options.cloud, {
    edgeSpec,
    cloudSpec: options.cloudSpec,
    timeoutMs: options.cloudTimeoutMs,
  });
  const shadows = new Set<Promise<void>>();

  async function classify(items: SequenceItem[], opts: ClassifyOptions): Promise<Answer[]> {
    const started = performance.now();
    const createdAt = now();
    // The pool takes the buffers; keep the input only when the cloud model needs another window length.
    const raw = offloader.needsRaw ? items.map((i) => ({ data: i.data.slice(), length: i.length })) : null;
    const { results, timings, scoredBy } = await inference.classify(
      items.map((i) => ({ data: i.data, length: i.length })),
    );
    const edgeVersion = inference.versions().edge;
    const threshold = options.thresholdOverride ?? scoredBy.threshold;
    const down = opts.forced === undefined ? cloudDown() : null;

    const decisions = results.map((r) => {
      const wouldOffload = opts.forced === "cloud" || (opts.forced === undefined && r.score >= threshold);
      return decide({
        score: r.score,
        threshold,
        forced: opts.forced,
        // A token is spent only on a request that would go to a cloud that is up.
        budgetAvailable: wouldOffload && opts.forced === undefined && !down ? options.takeOffloadToken() : true,
        cloudAvailable: down === null,
      });
    });
    const cloudInput = (i: number) => offloader.input(results[i].window, raw?.[i] ?? null);
    const offloaded = decisions.flatMap((d, i) => (d.offload ? [i] : []));
    const cloudReply = offloaded.length > 0 ? await offloader.call(offloaded.map(cloudInput)) : null;
    const climbs: (Climb | undefined)[] = options.cascade && opts.forced === undefined && cloudReply &&
        !("error" in cloudReply)
      ? await options.cascade.climb(offloaded.map((i, slot) => ({
        input: { window: cloudInput(i), clip: items[i].clip ?? null },
        probs: cloudReply.probs[slot],
        version: cloudReply.version,
        ms: cloudReply.ms,
      })))
      : [];
    const totalMs = performance.now() - started;
    // Exploration, for the automatic decisions kept on the edge: the probability in force is the rate while a
    // shadow call can be made (the cloud up, a token in the shadow budget), else 0; fallbacks are not explored.
    const propensity: number[] = decisions.map((d) => (d.offload ? 1 : 0));
    const shadowed = new Set<number>();
    if (explorationRate > 0 && opts.forced === undefined && down === null) {
      decisions.forEach((d, i) => {
        if (d.offload || !options.exploration!.hasToken()) return;
        propensity[i] = explorationRate;
        if (random() < explorationRate && options.exploration!.takeToken()) shadowed.add(i);
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
      if (d.reason === "cloud_unavailable") {
        route = "edge_fallback";
        cloudError = { code: down!.code, message: down!.message };
      } else if (slot >= 0 && cloudReply) {
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
      const climb = slot >= 0 ? climbs[slot] : undefined;
      let final = route === "cloud" ? cloudAnswer! : edge;
      if (climb) {
        const s = probabilityStats(climb.probs);
        final = { label: labels[s.top], probability: s.pMax };
        finalProbs = climb.probs;
      }
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
        switcher: { score: r.score, threshold, version: scoredBy.version },
        models: { edge: edgeVersion, cloud: cloudVersion, switcher: scoredBy.version },
        timings: {
          queueMs: timings.queueMs,
          preprocessMs: timings.preprocessMs,
          edgeMs: timings.edgeMs,
          switcherMs: timings.switcherMs,
          cloudMs,
          totalMs,
        },
        ...(climb
          ? {
            tiers: {
              answered: climb.tierName,
              reached: climb.rows.map((t) => ({
                name: t.tierName,
                label: t.label,
                probability: t.prob,
                hasProbabilities: t.hasProbabilities,
                error: t.error as ErrorCode | null,
                ms: t.ms,
              })),
            },
          }
          : {}),
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
        offloadProbability: propensity[i],
        shadow: false,
        edgeModelVersion: edgeVersion,
        edgeLabel: edge.label,
        edgeProb: edge.probability,
        edgeProbs: Array.from(r.probs),
        embedding: r.embedding,
        features: r.features,
        switcherVersion: scoredBy.version,
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
        inputKind: item.input?.kind ?? null,
        decodeMs: item.input?.decodeMs ?? null,
        poseMs: item.input?.poseMs ?? null,
        poseQuality: item.input?.poseQuality ?? null,
        ...(climb ? { tiers: climb.rows.map((t) => ({ ...t, decisionId, createdAt })) } : {}),
      };
      if (shadowed.has(i)) delayed.push({ index: i, record });
      else if (climb?.explored) {
        // A hop explored past the answer: the row is logged once the exploration call ends, with its tier's row.
        const explored: Promise<void> = climb.explored.then((t) => {
          record.tiers!.push({ ...t, decisionId, createdAt });
          log.append(record);
        }).catch((err) => {
          console.error(JSON.stringify({ level: "error", msg: "explored decision not logged", error: String(err) }));
        }).finally(() => shadows.delete(explored));
        shadows.add(explored);
      } else log.append(record);
      return answer;
    });
    if (delayed.length > 0) {
      const shadow: Promise<void> = offloader.call(delayed.map(({ index }) => cloudInput(index))).then((reply) => {
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
