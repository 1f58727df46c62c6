/**
 * The bench's side-by-side runtime timing (workers/runtime_bench.ts): both runtimes run the same model on the same
 * input, in alternating blocks, and agree on the output.
 */
import assert from "node:assert/strict";
import { readRuntimeBinary } from "../workers/artefacts.ts";
import { timeBothRuntimes } from "../workers/runtime_bench.ts";

const TINY = new URL("./fixtures/tiny_models/edge.onnx", import.meta.url);

Deno.test("timeBothRuntimes times every run of both runtimes, in blocks, and both give the same output", async () => {
  const input = Float32Array.from({ length: 4 * 2 * 3 }, (_, i) => (i % 7) / 7);
  const { web, native, nativeError } = await timeBothRuntimes(await Deno.readFile(TINY), {
    inputName: "frames",
    input,
    shape: [1, 4, 2, 3],
    outputName: "logits",
    runs: 250,
    block: 100,
    warmupRuns: 10,
    wasmBinary: await readRuntimeBinary(),
    nativeThreads: 1,
  });
  assert.equal(web.runs, 250);
  assert.ok(web.p50Ms > 0 && web.p50Ms <= web.p99Ms, JSON.stringify(web));
  assert.ok(web.firstOutput.length > 0);
  assert.ok(native, `native onnxruntime did not load: ${nativeError}`);
  assert.equal(native.runs, 250);
  assert.equal(native.firstOutput.length, web.firstOutput.length);
  native.firstOutput.forEach((v, i) => assert.ok(Math.abs(v - web.firstOutput[i]) < 1e-4, `output ${i}`));
});
