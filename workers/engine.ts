/**
 * The inference engine: the edge model and the switcher in onnxruntime-web (WASM), pre-process -> forward ->
 * post-process kept apart. It runs inside an inference worker; tests also run it in-process, behind the same
 * signature as the pool.
 *
 * Lifecycle: load (sessions from bytes) -> warm-up (dummy runs) -> ready -> release.
 *
 * @module
 */
import * as ort from "onnxruntime-web/wasm";
import { featureNames, qualityStats, softmax, switcherFeatures } from "../switcher/features.ts";
import type { ClassifierSpec, SwitcherSpec } from "../wasm-models/manifest.ts";
import { resample } from "./preprocess.ts";
import type {
  EdgeResult,
  EngineInit,
  EngineTimings,
  EngineVersions,
  ModelArtefact,
  SequenceInput,
} from "./protocol.ts";

/** Version reported when no switcher model is loaded and the score is `1 - max probability`. */
export const BUILTIN_SWITCHER_VERSION = "builtin-max-probability";

/** A loaded engine. */
export interface Engine {
  /** Classify a batch of sequences in one forward pass of each model. */
  classify(items: SequenceInput[]): Promise<{ results: EdgeResult[]; timings: EngineTimings }>;
  /** Replace the switcher (null: the built-in max-probability score); the old one keeps serving on failure. */
  setSwitcher(switcher: ModelArtefact<SwitcherSpec> | null): Promise<EngineVersions>;
  versions(): EngineVersions;
  release(): Promise<void>;
}

interface LoadedSwitcher {
  session: ort.InferenceSession | null;
  spec: SwitcherSpec | null;
}

function configureRuntime(wasmBinary: Uint8Array): void {
  // One thread per worker: the pool provides the parallelism, and WASM threads would need SharedArrayBuffer
  // workers of their own.
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  if (!ort.env.wasm.wasmBinary) ort.env.wasm.wasmBinary = wasmBinary;
  ort.env.logLevel = "error";
}

function outputName(spec: ClassifierSpec | SwitcherSpec, wanted: string): string {
  const found = spec.outputs.find((o) => o.name === wanted);
  if (!found) throw new TypeError(`Cannot load model ${spec.version}: it has no output named "${wanted}"`);
  return found.name;
}

async function loadSwitcher(
  artefact: ModelArtefact<SwitcherSpec> | null,
  edge: ClassifierSpec,
): Promise<LoadedSwitcher> {
  if (artefact === null) return { session: null, spec: null };
  const expected = featureNames(edge.embeddingSize ?? 0);
  const names = artefact.spec.features;
  if (names.length !== expected.length || names.some((n, i) => n !== expected[i])) {
    throw new TypeError(
      `Cannot load switcher ${artefact.spec.version}: its ${names.length} features do not match the edge model's ${expected.length}`,
    );
  }
  const session = await ort.InferenceSession.create(artefact.bytes, { executionProviders: ["wasm"] });
  outputName(artefact.spec, "score");
  return { session, spec: artefact.spec };
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

  const versions = (): EngineVersions => ({
    edge: spec.version,
    switcher: switcher.spec?.version ?? BUILTIN_SWITCHER_VERSION,
  });

  async function classify(items: SequenceInput[]): Promise<{ results: EdgeResult[]; timings: EngineTimings }> {
    if (items.length === 0) return { results: [], timings: { preprocessMs: 0, edgeMs: 0, switcherMs: 0 } };
    const t0 = performance.now();
    const n = items.length;
    const batch = new Float32Array(n * windowSize);
    const windows: Float32Array[] = [];
    for (let i = 0; i < n; i++) {
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
      results.push({ probs, embedding, features, score: 1 - features[0], window: windows[i] });
    }
    const current = switcher;
    if (current.session && current.spec) {
      const f = current.spec.features.length;
      const x = new Float32Array(n * f);
      results.forEach((r, i) => x.set(r.features, i * f));
      const sOut = await current.session.run({
        [current.spec.inputs[0]?.name ?? "features"]: new ort.Tensor("float32", x, [n, f]),
      });
      const scores = sOut.score.data as Float32Array;
      results.forEach((r, i) => (r.score = scores[i]));
      sOut.score.dispose();
    }
    const t3 = performance.now();
    return { results, timings: { preprocessMs: t1 - t0, edgeMs: t2 - t1, switcherMs: t3 - t2 } };
  }

  async function setSwitcher(next: ModelArtefact<SwitcherSpec> | null): Promise<EngineVersions> {
    const loaded = await loadSwitcher(next, spec);
    const old = switcher;
    switcher = loaded;
    await old.session?.release();
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
