/**
 * One contract suite for edge inference, run against the worker pool and the in-process engine: the same
 * models must give the same answers through both.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { builtinSwitcherRelease, switcherReleaseFromSpec } from "../release/release.ts";
import { createInProcessInference } from "../workers/in_process.ts";
import { createWorkerPool, type EdgeInference, type InferenceOutput } from "../workers/pool.ts";

const TINY = new URL("./fixtures/tiny_models", import.meta.url).pathname;

function sequence(length: number, seed: number): { data: Float32Array; length: number } {
  const data = new Float32Array(length * 2 * 3);
  for (let i = 0; i < data.length; i++) data[i] = ((i * 7919 + seed * 104729) % 1000) / 1000;
  return { data, length };
}

function contract(name: string, make: () => Promise<EdgeInference>) {
  Deno.test(`${name}: classify() returns probabilities, embedding, features and a score per sequence`, async () => {
    const inf = await make();
    try {
      const { results, timings } = await inf.classify([sequence(4, 1), sequence(9, 2)]);
      assert.equal(results.length, 2);
      for (const r of results) {
        assert.equal(r.probs.length, 3);
        assert.ok(Math.abs(r.probs.reduce((a, b) => a + b, 0) - 1) < 1e-5);
        assert.equal(r.embedding.length, 4);
        assert.equal(r.features.length, 6 + 4);
        assert.equal(r.window.length, 4 * 2 * 3);
        // Without a switcher model the score is 1 - max probability.
        assert.ok(Math.abs(r.score - (1 - Math.max(...r.probs))) < 1e-6);
      }
      assert.ok(timings.edgeMs >= 0 && timings.queueMs >= 0);
      assert.deepEqual(inf.versions(), { edge: "edge-tiny-1", switcher: "builtin-max-probability" });
    } finally {
      await inf.close();
    }
  });
}

async function init() {
  return (await loadModelSet(TINY, { warmupRuns: 1 })).init;
}

contract("worker pool", async () => createWorkerPool(await init(), { size: 2, queueMax: 4 }));
contract("in-process", async () => createInProcessInference(await init()));

Deno.test("worker pool and in-process engine give the same outputs", async () => {
  const pool = await createWorkerPool(await init(), { size: 1, queueMax: 4 });
  const local = await createInProcessInference(await init());
  try {
    const a = await pool.classify([sequence(6, 3)]);
    const b = await local.classify([sequence(6, 3)]);
    assert.deepEqual(Array.from(a.results[0].probs), Array.from(b.results[0].probs));
    assert.deepEqual(Array.from(a.results[0].features), Array.from(b.results[0].features));
  } finally {
    await pool.close();
    await local.close();
  }
});

Deno.test("worker pool sheds calls past its queue bound with OVERLOADED and Retry-After", async () => {
  const pool = await createWorkerPool(await init(), { size: 1, queueMax: 2 });
  try {
    const calls = Array.from({ length: 6 }, (_, i) => pool.classify([sequence(4, i)]));
    const settled = await Promise.allSettled(calls);
    const shed = settled.filter((s) => s.status === "rejected");
    // One call runs, one waits in the worker behind it (depth 2), two wait in the queue, the other two are shed.
    assert.equal(shed.length, 2);
    for (const s of shed) {
      const err = (s as PromiseRejectedResult).reason;
      assert.ok(err instanceof AppError);
      assert.equal(err.code, "OVERLOADED");
      assert.equal(err.status, 503);
      assert.equal(err.headers["Retry-After"], "1");
    }
    assert.equal(pool.stats().completed, 4);
  } finally {
    await pool.close();
  }
});

Deno.test("in-process: concurrent calls are micro-batched, each answered as it would be alone", async () => {
  const local = await createInProcessInference(await init(), { queueMax: 64, batchMax: 8 });
  try {
    const inputs = Array.from({ length: 12 }, (_, i) => sequence(4 + (i % 5), i));
    const alone: InferenceOutput[] = [];
    for (const s of inputs) alone.push(await local.classify([{ data: s.data.slice(), length: s.length }]));
    const before = local.stats();
    const together = await Promise.all(inputs.map((s) => local.classify([s])));
    const after = local.stats();
    // 12 calls in fewer forward passes, none larger than batchMax.
    const batches = after.batches! - before.batches!;
    assert.ok(batches >= 2 && batches < 12, `${batches} batches`);
    assert.equal(after.batchedItems! - before.batchedItems!, 12);
    together.forEach((t, i) => {
      assert.deepEqual(Array.from(t.results[0].probs), Array.from(alone[i].results[0].probs));
      assert.equal(t.results[0].score, alone[i].results[0].score);
      assert.ok(t.timings.queueMs >= 0);
    });
  } finally {
    await local.close();
  }
});

Deno.test("in-process: past its queue bound a call is shed with OVERLOADED; a bad input fails its own call only", async () => {
  const local = await createInProcessInference(await init(), { queueMax: 2 });
  try {
    const settled = await Promise.allSettled(Array.from({ length: 6 }, (_, i) => local.classify([sequence(4, i)])));
    const shed = settled.filter((s) => s.status === "rejected").map((s) => (s as PromiseRejectedResult).reason);
    // The first call is scheduled, two wait, the other three are shed.
    assert.equal(shed.length, 3);
    for (const err of shed) {
      assert.ok(err instanceof AppError);
      assert.equal(err.code, "OVERLOADED");
      assert.equal(err.headers["Retry-After"], "1");
    }
    // A sequence whose values do not fill its frames, batched with two good ones.
    const bad = { data: new Float32Array(5), length: 4 };
    const [a, b, c] = await Promise.allSettled([
      local.classify([sequence(4, 1)]),
      local.classify([bad]),
      local.classify([sequence(5, 2)]),
    ]);
    assert.equal(a.status, "fulfilled");
    assert.equal(c.status, "fulfilled");
    assert.equal(b.status, "rejected");
    assert.equal(((b as PromiseRejectedResult).reason as AppError).code, "INTERNAL");
  } finally {
    await local.close();
  }
});

Deno.test("loadModelSet() refuses a model whose sha256 differs from the manifest", async () => {
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["edge.onnx", "cloud.onnx"]) await Deno.copyFile(`${TINY}/${f}`, `${dir}/${f}`);
    const manifest = JSON.parse(await Deno.readTextFile(`${TINY}/manifest.json`));
    manifest.edge.sha256 = "0".repeat(64);
    await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
    await assert.rejects(
      () => loadModelSet(dir, { warmupRuns: 0 }),
      (e: AppError) => e.code === "MODEL_NOT_READY" && e.message.includes("the manifest says 000000000000"),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a trained switcher installed in the model set scores in the worker as predictMlp() does", async () => {
  const { featureNames } = await import("../switcher/features.ts");
  const { predictMlp, trainMlp } = await import("../switcher/mlp.ts");
  const { exportSwitcherOnnx } = await import("../switcher/onnx_writer.ts");
  const { onnxRelease, publishRelease } = await import("../loop/registry.ts");
  const { openDatabase } = await import("../db/client.ts");
  const dir = await Deno.makeTempDir();
  try {
    for (const f of ["edge.onnx", "cloud.onnx", "manifest.json"]) await Deno.copyFile(`${TINY}/${f}`, `${dir}/${f}`);
    // Features of real edge outputs, with seeded targets: what matters here is serving, not quality.
    const plain = await createInProcessInference(await init());
    const { results } = await plain.classify(Array.from({ length: 40 }, (_, i) => sequence(4 + (i % 5), i)));
    await plain.close();
    const f = results[0].features.length;
    const x = new Float32Array(results.length * f);
    results.forEach((r, i) => x.set(r.features, i * f));
    const { model } = trainMlp({ x, n: results.length, f, targets: results.map((_, i) => i % 2) }, { epochs: 5 });
    const names = featureNames(4);
    const database = await openDatabase(":memory:");
    try {
      const release = await onnxRelease(exportSwitcherOnnx(model, { version: "switcher-t1", features: names }), {
        version: "switcher-t1",
        inputs: [{ name: "features", shape: [-1, f], dtype: "float32" }],
        outputs: [{ name: "score", shape: [-1, 1], dtype: "float32" }],
        features: names,
        threshold: 0.5,
      });
      await publishRelease(database.db, release, { modelsDir: dir, activate: true });
    } finally {
      database.close();
    }
    const pool = await createWorkerPool((await loadModelSet(dir, { warmupRuns: 1 })).init, { size: 1, queueMax: 8 });
    try {
      assert.equal(pool.versions().switcher, "switcher-t1");
      const out = await pool.classify([sequence(6, 99), sequence(4, 98)]);
      const expected = predictMlp(
        model,
        Float32Array.from([...out.results[0].features, ...out.results[1].features]),
        2,
      );
      out.results.forEach((r, i) => assert.ok(Math.abs(r.score - expected[i]) < 1e-5, `${r.score} vs ${expected[i]}`));
      // Hot swap back to the built-in score, and forward again.
      assert.equal((await pool.setSwitcher(builtinSwitcherRelease())).switcher, "builtin-max-probability");
    } finally {
      await pool.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a switcher whose features do not match the edge model is refused and the old one keeps serving", async () => {
  const pool = await createWorkerPool(await init(), { size: 2, queueMax: 8 });
  try {
    const { trainMlp } = await import("../switcher/mlp.ts");
    const { exportSwitcherOnnx } = await import("../switcher/onnx_writer.ts");
    const { model } = trainMlp({ x: new Float32Array([0, 1, 1, 0]), n: 2, f: 2, targets: [0, 1] }, { epochs: 1 });
    const bytes = exportSwitcherOnnx(model, { version: "bad", features: ["a", "b"] });
    await assert.rejects(
      () =>
        pool.setSwitcher(switcherReleaseFromSpec({
          file: "x",
          sha256: "",
          bytes: 0,
          version: "bad",
          inputs: [],
          outputs: [{ name: "score", shape: [-1, 1], dtype: "float32" }],
          features: ["a", "b"],
          threshold: 0.5,
        }, bytes)),
      (e: AppError) => e.code === "MODEL_NOT_READY" && e.message.includes("do not match"),
    );
    assert.equal(pool.versions().switcher, "builtin-max-probability");
    assert.equal((await pool.classify([sequence(4, 1)])).results.length, 1);
  } finally {
    await pool.close();
  }
});
