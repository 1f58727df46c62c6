/**
 * The inference engine: the edge model and the switcher release in onnxruntime-web (WASM), pre-process -> forward
 * -> post-process kept apart. It runs inside an inference worker; scripts and tests may also run it in-process
 * (workers/in_process.ts), behind the same signature as the pool.
 *
 * The switcher is a release (release/release.ts): an ONNX model over the switcher features, scored in plain JS when
 * it is the exporter's MLP (workers/switcher_mlp.ts; no second session, a few microseconds) and in onnxruntime-web
 * otherwise, or a confidence rule scored here from the same features. Each batch is scored by one release, read once, and the batch's output
 * names it (`scoredBy`: version and threshold), so a swap between batches never mislabels a decision.
 *
 * Lifecycle: load (sessions from bytes) -> warm-up (dummy runs) -> ready -> release.
 *
 * @module
 */
import * as ort from "onnxruntime-web/wasm";
import { ruleScore, type SwitcherRelease } from "../release/release.ts";
import { resample } from "../sequence/preprocess.ts";
import { featureNames, qualityStats, softmax, switcherFeatures } from "../switcher/features.ts";
import type { ClassifierSpec, SwitcherSpec } from "../wasm-models/manifest.ts";
import type { EdgeResult, EngineInit, EngineOutput, EngineVersions, JobOutcome, SequenceInput } from "./protocol.ts";
import { configureRuntime } from "./runtime.ts";
import { switcherMlp, type SwitcherScoreFn } from "./switcher_mlp.ts";

/** A loaded engine. */
export interface Engine {
  /** Classify a batch of sequences in one forward pass of each model. */
  classify(items: SequenceInput[]): Promise<EngineOutput>;
  /** Replace the switcher release; the old one keeps serving on failure. */
  setSwitcher(switcher: SwitcherRelease): Promise<EngineVersions>;
  versions(): EngineVersions;
  release(): Promise<void>;
}

/**
 * A switcher release ready to score: a plain-JS network read from its ONNX model (workers/switcher_mlp.ts), an
 * onnxruntime session for an ONNX graph of another form, or neither for a rule.
 */
interface LoadedSwitcher {
  release: SwitcherRelease;
  mlp: SwitcherScoreFn | null;
  session: ort.InferenceSession | null;
  /** Batches scoring with it now; a replaced session is released when the last one ends. */
  inFlight: number;
  replaced: boolean;
}

function outputName(spec: ClassifierSpec | SwitcherSpec, wanted: string): string {
  const found = spec.outputs.find((o) => o.name === wanted);
  if (!found) throw new TypeError(`Cannot load model ${spec.version}: it has no output named "${wanted}"`);
  return found.name;
}

async function loadSwitcher(release: SwitcherRelease, edge: ClassifierSpec): Promise<LoadedSwitcher> {
  if (release.scorer.kind === "rule") return { release, mlp: null, session: null, inFlight: 0, replaced: false };
  const expected = featureNames(edge.embeddingSize ?? 0);
  const names = release.features;
  if (names.length !== expected.length || names.some((n, i) => n !== expected[i])) {
    throw new TypeError(
      `Cannot load switcher ${release.version}: its ${names.length} features do not match the edge model's ${expected.length}`,
    );
  }
  if (!release.artefact) throw new TypeError(`Cannot load switcher ${release.version}: it has no artefact`);
  outputName(release.scorer.spec, "score");
  const mlp = switcherMlp(release.artefact, names.length);
  if (mlp) return { release, mlp, session: null, inFlight: 0, replaced: false };
  const session = await ort.InferenceSession.create(release.artefact, { executionProviders: ["wasm"] });
  return { release, mlp: null, session, inFlight: 0, replaced: false };
}

/** Score with a switcher's onnxruntime session; a replaced session is released when its last batch ends. */
async function scoreInSession(current: LoadedSwitcher, x: Float32Array, dims: number[]): Promise<Float32Array> {
  const spec = (current.release.scorer as { spec: SwitcherSpec }).spec;
  current.inFlight++;
  try {
    const out = await current.session!.run({
      [spec.inputs[0]?.name ?? "features"]: new ort.Tensor("float32", x, dims),
    });
    const scores = (out.score.data as Float32Array).slice();
    out.score.dispose();
    return scores;
  } finally {
    if (--current.inFlight === 0 && current.replaced) await current.session!.release();
  }
}

/**
 * Load the models, warm them up and return a ready engine.
 *
 * @param init model bytes, manifest entries, the runtime binary and the warm-up count
 * @returns the engine and the time warm-up took, in milliseconds
 */
export async function createEngine(init: EngineInit): Promise<{ engine: Engine; warmupMs: number }> {
  configureRuntime(init.wasmBinary);
  const spec = init.edge.spec;
  const edgeSession = await ort.InferenceSession.create(init.edge.bytes, { executionProviders: ["wasm"] });
  const inputName = spec.inputs[0]?.name ?? "frames";
  const logitsName = outputName(spec, "logits");
  const embeddingName = spec.embeddingSize ? outputName(spec, "embedding") : null;
  let switcher = await loadSwitcher(init.switcher, spec);
  const pointSize = spec.joints * spec.channels;
  const windowSize = spec.windowFrames * pointSize;
  const shape = {
    frames: spec.windowFrames,
    joints: spec.joints,
    channels: spec.channels,
    confidenceChannel: spec.confidenceChannel,
  };

  const versions = (): EngineVersions => ({ edge: spec.version, switcher: switcher.release.version });

  async function classify(items: SequenceInput[]): Promise<EngineOutput> {
    if (items.length === 0) {
      const { version, threshold } = switcher.release;
      return { results: [], timings: { preprocessMs: 0, edgeMs: 0, switcherMs: 0 }, scoredBy: { version, threshold } };
    }
    const t0 = performance.now();
    const n = items.length;
    const batch = new Float32Array(n * windowSize);
    const windows: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
      // The routes hand over the model's span of time (sequence/window.ts: at the model's rate, at most one window):
      // a full window is read as it is; a shorter one is stretched to the window, as training's time crops were.
      const w = resample(items[i].data, { inFrames: items[i].length, outFrames: spec.windowFrames, pointSize });
      batch.set(w, i * windowSize);
      windows.push(w);
    }
    const t1 = performance.now();
    const feeds = { [inputName]: new ort.Tensor("float32", batch, [n, spec.windowFrames, spec.joints, spec.channels]) };
    const out = await edgeSession.run(feeds);
    const logits = out[logitsName].data as Float32Array;
    const emb = embeddingName ? out[embeddingName].data as Float32Array : new Float32Array(0);
    for (const t of Object.values(out)) t.dispose();
    const k = spec.labels.length;
    const e = spec.embeddingSize ?? 0;
    const t2 = performance.now();
    const results: EdgeResult[] = [];
    for (let i = 0; i < n; i++) {
      const probs = Float32Array.from(softmax(logits.subarray(i * k, (i + 1) * k)));
      const embedding = emb.slice(i * e, (i + 1) * e);
      const quality = qualityStats(windows[i], shape);
      const features = switcherFeatures(probs, embedding, quality);
      results.push({ probs, embedding, features, score: 0, window: windows[i] });
    }
    // One release scores the whole batch, and the batch names it: read it once, here.
    const current = switcher;
    const scorer = current.release.scorer;
    if (scorer.kind === "rule") {
      for (const r of results) r.score = ruleScore(scorer.rule, r.features);
    } else {
      const f = current.release.features.length;
      const x = new Float32Array(n * f);
      results.forEach((r, i) => x.set(r.features, i * f));
      const scores = current.mlp ? current.mlp(x, n) : await scoreInSession(current, x, [n, f]);
      results.forEach((r, i) => (r.score = scores[i]));
    }
    const t3 = performance.now();
    return {
      results,
      timings: { preprocessMs: t1 - t0, edgeMs: t2 - t1, switcherMs: t3 - t2 },
      scoredBy: { version: current.release.version, threshold: current.release.threshold },
    };
  }

  async function setSwitcher(next: SwitcherRelease): Promise<EngineVersions> {
    const loaded = await loadSwitcher(next, spec);
    const old = switcher;
    switcher = loaded;
    old.replaced = true;
    if (old.inFlight === 0) await old.session?.release();
    return versions();
  }

  const engine: Engine = {
    classify,
    setSwitcher,
    versions,
    async release() {
      await edgeSession.release();
      await switcher.session?.release();
    },
  };

  const tw = performance.now();
  for (let r = 0; r < init.warmupRuns; r++) {
    const dummy = new Float32Array(windowSize);
    if (spec.confidenceChannel !== null) {
      for (let i = spec.confidenceChannel; i < windowSize; i += spec.channels) dummy[i] = 1;
    }
    await classify([{ data: dummy, length: spec.windowFrames }]);
  }
  return { engine, warmupMs: performance.now() - tw };
}

async function classifyOne(engine: Engine, items: SequenceInput[]): Promise<JobOutcome> {
  try {
    return { ok: true, ...(await engine.classify(items)) };
  } catch (err) {
    // Inputs were validated at the HTTP boundary: anything thrown here is a bug, not the client's fault.
    return { ok: false, code: "INTERNAL", message: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * Classify a micro-batch (in a worker, or on the calling thread): every job's sequences in one forward pass, the
 * results split back per job. When the batch fails, each job runs alone, so that one bad input fails its own job only.
 *
 * @param engine the engine
 * @param jobs each caller's sequences
 * @returns one outcome per job, in order
 */
export async function classifyJobs(engine: Engine, jobs: SequenceInput[][]): Promise<JobOutcome[]> {
  if (jobs.length === 1) return [await classifyOne(engine, jobs[0])];
  const all = await classifyOne(engine, jobs.flat());
  if (!all.ok) {
    const outcomes: JobOutcome[] = [];
    for (const items of jobs) outcomes.push(await classifyOne(engine, items));
    return outcomes;
  }
  let at = 0;
  return jobs.map((items) => {
    const results = all.results.slice(at, at + items.length);
    at += items.length;
    return { ok: true, results, timings: all.timings, scoredBy: all.scoredBy };
  });
}
