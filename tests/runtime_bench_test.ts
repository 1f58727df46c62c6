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

/** `deno task bench:runtime` with the given flags: exit code and output. */
async function benchRuntime(...args: string[]) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-all", new URL("../scripts/bench_runtime.ts", import.meta.url).pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).output();
  return { code: out.code, stdout: new TextDecoder().decode(out.stdout), stderr: new TextDecoder().decode(out.stderr) };
}

Deno.test("bench:runtime times each model it is given in both runtimes, with symbolic dimensions set to --batch", async () => {
  const r = await benchRuntime(
    "--model",
    TINY.pathname,
    "--model",
    TINY.pathname,
    "--batch",
    "2",
    "--runs",
    "30",
    "--reps",
    "2",
    "--warmup",
    "5",
    "--json",
  );
  assert.equal(r.code, 0, r.stderr);
  const report = JSON.parse(r.stdout);
  assert.equal(report.results.length, 2);
  for (const m of report.results) {
    assert.equal(m.input.name, "frames");
    assert.deepEqual(m.input.shape, [2, 4, 2, 3]);
    assert.equal(m.webP50Ms.values.length, 2);
    assert.ok(m.webP50Ms.median > 0);
    assert.ok(m.nativeP50Ms, `native onnxruntime did not load: ${m.nativeError}`);
    assert.ok(m.webOverNative.median > 0);
  }
  assert.ok(report.settings.nativeInt8InstructionSets.length > 0);
});

Deno.test("bench:runtime refuses a missing model list, a bad count and a missing file in one line each", async () => {
  const none = await benchRuntime();
  assert.equal(none.code, 2);
  assert.match(none.stderr, /^Cannot run: name at least one --model \(usage: deno task bench:runtime --help\)\n$/);
  const bad = await benchRuntime("--model", TINY.pathname, "--runs", "0");
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /--runs must be an integer >= 1/);
  const missing = await benchRuntime("--model", "/nonexistent/model.onnx");
  assert.equal(missing.code, 1);
  assert.equal(missing.stderr.trim().split("\n").length, 1, missing.stderr);
  assert.match(missing.stderr, /Cannot read \/nonexistent\/model\.onnx/);
});
