/**
 * Golden outputs: for the committed sample requests, the model build recorded what native onnxruntime returns
 * (`wasm-models/golden.json`). The worker pool (onnxruntime-web, WASM) must reproduce them, resampling included,
 * within the tolerance the build states. And the frame rate: the same motion at any rate gets the same answer, since
 * the model reads a fixed span of time (sequence/window.ts).
 */
import assert from "node:assert/strict";
import { softmax } from "../switcher/features.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { AppError } from "../errors.ts";
import { flattenFrames, resample } from "../sequence/preprocess.ts";
import { toModelTime } from "../sequence/window.ts";

const DIR = new URL("../wasm-models", import.meta.url).pathname;

interface Golden {
  tolerance: { centredLogit: number; embeddingRelative: number; note?: string };
  samples: { file: string; label?: string; edgeLogits: number[]; embedding: number[]; cloudLogits?: number[] }[];
}

function maxAbsDiff(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.equal(a.length, b.length);
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

/** The index of the highest value. */
const top = (p: ArrayLike<number>) => Array.from(p).indexOf(Math.max(...Array.from(p)));

/**
 * The worker pool against a model set's golden outputs: centred logits and embedding within the build's tolerance,
 * the same top-1 label, each sample answered with its true label; returns how many samples were resampled.
 */
async function checkGolden(dir: string): Promise<number> {
  const golden: Golden = JSON.parse(await Deno.readTextFile(`${dir}/golden.json`));
  assert.ok(golden.samples.length >= 3, "expected at least 3 golden samples");
  const { manifest, init } = await loadModelSet(dir, { warmupRuns: 0, switcher: null });
  const pool = await createWorkerPool(init, { size: 1, queueMax: 64 });
  const e = manifest.edge;
  const { centredLogit, embeddingRelative } = golden.tolerance;
  let resampled = 0;
  try {
    for (const s of golden.samples) {
      const body = JSON.parse(await Deno.readTextFile(`${dir}/${s.file}`));
      // As the service takes a request: at the model's rate, its most recent window.
      const flat = flattenFrames(body.frames, { joints: e.joints, channels: e.channels, maxFrames: 100_000 });
      if (flat.length !== e.windowFrames) resampled++;
      const seq = toModelTime(flat.data, {
        inFrames: flat.length,
        fps: body.fps,
        pointSize: e.joints * e.channels,
        model: e,
      });
      const { results } = await pool.classify([seq]);
      // Log-probabilities minus their mean equal the logits minus theirs: compare those.
      const centred = (v: ArrayLike<number>) => {
        const a = Array.from(v);
        const m = a.reduce((x, y) => x + y, 0) / a.length;
        return a.map((x) => x - m);
      };
      const dl = maxAbsDiff(centred(Array.from(results[0].probs, Math.log)), centred(s.edgeLogits));
      assert.ok(dl <= centredLogit, `${s.file}: centred logits differ by ${dl} > ${centredLogit}`);
      const scale = Math.max(...s.embedding.map(Math.abs));
      const de = maxAbsDiff(results[0].embedding, s.embedding);
      assert.ok(
        de <= embeddingRelative * scale,
        `${s.file}: embedding differs by ${de} > ${embeddingRelative * scale}`,
      );
      const expected = softmax(s.edgeLogits);
      assert.equal(top(results[0].probs), top(expected), `${s.file}: top-1 label differs`);
      // The samples are drawn from the test data with their true labels, and both models answer them correctly.
      if (s.label !== undefined) {
        assert.equal(e.labels[top(results[0].probs)], s.label, `${s.file}: the edge model's answer is not its label`);
        if (s.cloudLogits) {
          assert.equal(e.labels[top(s.cloudLogits)], s.label, `${s.file}: the cloud model's answer is not its label`);
        }
      }
    }
  } finally {
    await pool.close();
  }
  return resampled;
}

Deno.test("golden: the worker pool reproduces native onnxruntime's edge outputs on the committed samples", async () => {
  const resampled = await checkGolden(DIR);
  assert.ok(resampled >= 1, "expected a golden sample whose length differs from the model window");
});

Deno.test("golden, 3D: a Kinect v1 pair (centred, scaled, turned to a canonical facing inside the graph) answers held-out view windows as native onnxruntime does", async () => {
  // tests/fixtures/kinect3d: a small pair built from the 3D cross-view benchmark (its manifest names the command);
  // the samples come from the held-out camera view and held-out performers, answered with their true labels.
  const dir = new URL("./fixtures/kinect3d", import.meta.url).pathname;
  const { manifest } = await loadModelSet(dir, { warmupRuns: 0, switcher: null });
  assert.deepEqual([manifest.edge.layout, manifest.edge.joints, manifest.edge.channels], ["kinect-v1-20", 20, 3]);
  await checkGolden(dir);
});

Deno.test("fps: the same motion at 60 fps gets the 30 fps answer; the 30 fps frames played at 60 fps are too short", async () => {
  const { manifest, init } = await loadModelSet(DIR, { warmupRuns: 0, switcher: null });
  const pool = await createWorkerPool(init, { size: 1, queueMax: 64 });
  const e = manifest.edge;
  const pointSize = e.joints * e.channels;
  const read = async (name: string) => {
    const body = JSON.parse(await Deno.readTextFile(`${DIR}/samples/${name}.json`));
    return { fps: body.fps as number, ...flattenFrames(body.frames, { ...e, maxFrames: 100_000 }) };
  };
  const answer = async (data: Float32Array, inFrames: number, fps: number) => {
    // A copy: the pool takes (transfers) the buffer it is given.
    const { results } = await pool.classify([toModelTime(data.slice(), { inFrames, fps, pointSize, model: e })]);
    return results[0].probs;
  };
  try {
    const walk = await read("walk");
    assert.deepEqual([walk.length, walk.fps], [e.windowFrames, e.fps]);
    const original = await answer(walk.data, walk.length, walk.fps);
    // Recorded at twice the rate: 2 x 31 + 1 frames over the same 1.03 s, at 60 fps.
    const doubled = resample(walk.data, { inFrames: walk.length, outFrames: 2 * (walk.length - 1) + 1, pointSize });
    const at60 = await answer(doubled, 2 * (walk.length - 1) + 1, 2 * walk.fps);
    assert.ok(maxAbsDiff(at60, original) <= 1e-6, `60 fps: probabilities differ by ${maxAbsDiff(at60, original)}`);
    // The 32 frames said to be at 60 fps are half a second: another input, shorter than the model reads.
    await assert.rejects(
      () => answer(walk.data, walk.length, 2 * walk.fps),
      (err: unknown) =>
        err instanceof AppError && err.code === "SEQUENCE_TOO_SHORT" && /at least 50 frames at 60/.test(err.message),
    );
    // A longer recording is read as its most recent window: a backflip followed by the walk answers as the walk.
    const backflip = await read("backflip");
    const both = new Float32Array(backflip.data.length + walk.data.length);
    both.set(backflip.data);
    both.set(walk.data, backflip.data.length);
    const long = await answer(both, backflip.length + walk.length, walk.fps);
    assert.ok(maxAbsDiff(long, original) <= 1e-6, `most recent window: differs by ${maxAbsDiff(long, original)}`);
    assert.notEqual(e.labels[top(await answer(backflip.data, backflip.length, backflip.fps))], "walk");
  } finally {
    await pool.close();
  }
});
