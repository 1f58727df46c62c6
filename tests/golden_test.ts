/**
 * Golden outputs: for the committed sample requests, the model build recorded what native onnxruntime returns
 * (`wasm-models/golden.json`). The worker pool (onnxruntime-web, WASM) must reproduce them, resampling included,
 * within the tolerance the build states.
 */
import assert from "node:assert/strict";
import { softmax } from "../switcher/features.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool } from "../workers/pool.ts";
import { flattenFrames } from "../sequence/preprocess.ts";

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

Deno.test("golden: the worker pool reproduces native onnxruntime's edge outputs on the committed samples", async () => {
  const golden: Golden = JSON.parse(await Deno.readTextFile(`${DIR}/golden.json`));
  assert.ok(golden.samples.length >= 3, "expected at least 3 golden samples");
  const { manifest, init } = await loadModelSet(DIR, { warmupRuns: 0, switcher: null });
  const pool = await createWorkerPool(init, { size: 1, queueMax: 64 });
  const e = manifest.edge;
  const { centredLogit, embeddingRelative } = golden.tolerance;
  let resampled = 0;
  try {
    for (const s of golden.samples) {
      const body = JSON.parse(await Deno.readTextFile(`${DIR}/${s.file}`));
      const seq = flattenFrames(body.frames, { joints: e.joints, channels: e.channels, maxFrames: 100_000 });
      if (seq.length !== e.windowFrames) resampled++;
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
      const top = (p: ArrayLike<number>) => Array.from(p).indexOf(Math.max(...Array.from(p)));
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
  assert.ok(resampled >= 1, "expected a golden sample whose length differs from the model window");
});
