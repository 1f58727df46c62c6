/**
 * The switcher scored in plain JS (workers/switcher_mlp.ts) against the same ONNX model in onnxruntime-web: the
 * shipped switcher and freshly trained ones (one and two hidden layers, with and without a column subset), on
 * seeded feature rows and on the features of the committed samples. Scores agree within float32 rounding, and
 * every offload decision at the release's threshold is the same.
 */
import assert from "node:assert/strict";
import { featureNames } from "../switcher/features.ts";
import { trainMlp } from "../switcher/mlp.ts";
import { exportSwitcherOnnx } from "../switcher/onnx_writer.ts";
import { createPrng } from "../switcher/prng.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { scoreWithSession } from "../workers/runtime.ts";
import { switcherMlp } from "../workers/switcher_mlp.ts";

const DIR = new URL("../wasm-models", import.meta.url).pathname;
/** Largest |JS - onnxruntime| allowed: a few float32 ulps of a score in (0, 1). */
const TOLERANCE = 1e-6;

function rows(n: number, f: number, seed: number): Float32Array[] {
  const rng = createPrng(seed);
  return Array.from({ length: n }, () => Float32Array.from({ length: f }, () => rng.normal() * (1 + 3 * rng.next())));
}

async function compare(bytes: Uint8Array, data: Float32Array[], f: number, threshold: number): Promise<number> {
  const mlp = switcherMlp(bytes, f);
  assert.ok(mlp, "the exporter's graph is read as a plain-JS MLP");
  const x = new Float32Array(data.length * f);
  data.forEach((r, i) => x.set(r, i * f));
  const js = mlp(x, data.length);
  const ort = await scoreWithSession(bytes, data, f);
  let worst = 0;
  for (let i = 0; i < data.length; i++) {
    worst = Math.max(worst, Math.abs(js[i] - ort[i]));
    if (Math.abs(ort[i] - threshold) > TOLERANCE) assert.equal(js[i] >= threshold, ort[i] >= threshold, `row ${i}`);
  }
  assert.ok(worst <= TOLERANCE, `max |JS - onnxruntime| = ${worst}`);
  return worst;
}

Deno.test("switcherMlp() scores the shipped switcher as onnxruntime-web does", async () => {
  const { manifest, init } = await loadModelSet(DIR, { warmupRuns: 0 });
  const release = init.switcher;
  assert.equal(release.scorer.kind, "onnx");
  const f = release.features.length;
  // Real features: the committed samples through the in-process engine.
  const { createInProcessInference } = await import("../workers/in_process.ts");
  const { flattenFrames } = await import("../sequence/preprocess.ts");
  const engine = await createInProcessInference(init);
  const real: Float32Array[] = [];
  try {
    for (const file of [...Deno.readDirSync(`${DIR}/samples`)].map((e) => e.name).filter((n) => n.endsWith(".json"))) {
      const body = JSON.parse(await Deno.readTextFile(`${DIR}/samples/${file}`));
      const e = manifest.edge;
      const seq = flattenFrames(body.frames, { joints: e.joints, channels: e.channels, maxFrames: 100_000 });
      real.push((await engine.classify([seq])).results[0].features);
    }
  } finally {
    await engine.close();
  }
  assert.ok(real.length >= 3);
  // Rows like real traffic: each column drawn from the samples' values plus noise of that column's own spread (a
  // feature constant in the samples stays constant, as it was in training, where its std is floored at 1e-6).
  const rng = createPrng(11);
  const near = Array.from({ length: 2000 }, () =>
    Float32Array.from({ length: f }, (_, c) => {
      const values = real.map((r) => r[c]);
      const spread = Math.max(...values) - Math.min(...values);
      return values[rng.int(values.length)] + rng.normal() * spread;
    }));
  await compare(release.artefact!, [...real, ...near], f, release.threshold);
});

Deno.test("switcherMlp() scores trained switchers (1 and 2 hidden layers, column subsets) as onnxruntime-web does", async () => {
  const f = featureNames(8).length;
  const train = rows(300, f, 3);
  const x = new Float32Array(train.length * f);
  train.forEach((r, i) => x.set(r, i * f));
  const targets = train.map((r) => (r[0] + r[3] > 0 ? 1 : 0));
  for (const hidden of [[16], [12, 6]]) {
    const { model } = trainMlp({ x, n: train.length, f, targets }, { hidden, epochs: 4 });
    const bytes = exportSwitcherOnnx(model, { version: "t", features: featureNames(8) });
    await compare(bytes, rows(1000, f, 5), f, 0.5);
  }
  const columns = [0, 2, 3, 7, 10];
  const sub = new Float32Array(train.length * columns.length);
  train.forEach((r, i) => columns.forEach((c, k) => (sub[i * columns.length + k] = r[c])));
  const { model } = trainMlp({ x: sub, n: train.length, f: columns.length, targets }, { hidden: [8], epochs: 4 });
  const bytes = exportSwitcherOnnx(model, { version: "t", features: featureNames(8), columns });
  await compare(bytes, rows(1000, f, 6), f, 0.5);
});

Deno.test("switcherMlp() returns null for a graph of another form, and refuses rows of the wrong width", () => {
  assert.equal(switcherMlp(new Uint8Array([1, 2, 3]), 4), null);
  assert.equal(switcherMlp(Deno.readFileSync(`${DIR}/edge.int8.onnx`), 4), null);
  const { model } = trainMlp({ x: new Float32Array([0, 1, 1, 0]), n: 2, f: 2, targets: [0, 1] }, { epochs: 1 });
  const mlp = switcherMlp(exportSwitcherOnnx(model, { version: "t", features: ["a", "b"] }), 2)!;
  assert.throws(() => mlp(new Float32Array(3), 2), {
    name: "TypeError",
    message: "Cannot score features: expected 4 values, got 3",
  });
});

Deno.test("a switcher exported with an embedding transform is left to onnxruntime, with the session's scores", async () => {
  const { fitEmbeddingTransform, applyEmbeddingTransform } = await import("../switcher/embedding_transform.ts");
  const { scoreWithOnnx } = await import("../workers/runtime.ts");
  const names = featureNames(8);
  const f = names.length;
  const start = f - 8;
  const train = rows(200, f, 21);
  const transform = fitEmbeddingTransform(train, { start, components: 2 });
  const derived = train.map((r) => applyEmbeddingTransform(transform, r));
  const g = derived[0].length;
  const x = new Float32Array(derived.length * g);
  derived.forEach((r, i) => x.set(r, i * g));
  const { model } = trainMlp({ x, n: derived.length, f: g, targets: train.map((r) => (r[1] > 0 ? 1 : 0)) }, {
    hidden: [8],
    epochs: 3,
  });
  const bytes = exportSwitcherOnnx(model, { version: "t", features: names, transform });
  assert.equal(switcherMlp(bytes, f), null);
  const data = rows(50, f, 22);
  assert.deepEqual(Array.from(await scoreWithOnnx(bytes, data, f)), Array.from(await scoreWithSession(bytes, data, f)));
});
