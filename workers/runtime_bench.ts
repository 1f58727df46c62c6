/**
 * Bare-model timing in both runtimes, for the benchmark: the same model and input through onnxruntime-web (WASM,
 * one thread, as in the workers) and native onnxruntime (onnxruntime-node). Nothing in the request path uses it.
 *
 * @module
 */
import "./worker_env.ts";
import * as web from "onnxruntime-web/wasm";
import { configureRuntime } from "./runtime.ts";

/** Timing of one runtime: per-run milliseconds, sorted. */
export interface RuntimeTiming {
  runtime: "onnxruntime-web" | "onnxruntime-node";
  runs: number;
  p50Ms: number;
  p99Ms: number;
  meanMs: number;
  /** Output of the first run, to check that both runtimes agree. */
  firstOutput: Float32Array;
}

function summarise(runtime: RuntimeTiming["runtime"], times: number[], firstOutput: Float32Array): RuntimeTiming {
  const sorted = [...times].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return {
    runtime,
    runs: times.length,
    p50Ms: at(0.5),
    p99Ms: at(0.99),
    meanMs: times.reduce((a, b) => a + b, 0) / times.length,
    firstOutput,
  };
}

/**
 * Time a model in onnxruntime-web and in native onnxruntime on the same input, interleaved run by run so that
 * machine noise hits both alike.
 *
 * @param model the model bytes
 * @param options input name and tensor, output name, runs, the WASM binary, native intra-op threads
 * @returns both timings
 */
export async function timeBothRuntimes(
  model: Uint8Array,
  options: {
    inputName: string;
    input: Float32Array;
    shape: number[];
    outputName: string;
    runs: number;
    wasmBinary: Uint8Array;
    nativeThreads: number;
  },
): Promise<{ web: RuntimeTiming; native: RuntimeTiming | null; nativeError?: string }> {
  configureRuntime(options.wasmBinary);
  const webSession = await web.InferenceSession.create(model, { executionProviders: ["wasm"] });
  // deno-lint-ignore no-explicit-any
  let native: any = null;
  // deno-lint-ignore no-explicit-any
  let nativeSession: any = null;
  let nativeError: string | undefined;
  try {
    native = await import("onnxruntime-node");
    nativeSession = await native.InferenceSession.create(model, {
      intraOpNumThreads: options.nativeThreads,
      interOpNumThreads: 1,
    });
  } catch (err) {
    nativeError = String(err);
  }
  const webTimes: number[] = [];
  const nativeTimes: number[] = [];
  let webFirst = new Float32Array(0);
  let nativeFirst = new Float32Array(0);
  for (let i = -5; i < options.runs; i++) {
    const t0 = performance.now();
    const w = await webSession.run({ [options.inputName]: new web.Tensor("float32", options.input, options.shape) });
    const t1 = performance.now();
    if (i >= 0) webTimes.push(t1 - t0);
    if (i === 0) webFirst = (w[options.outputName].data as Float32Array).slice();
    if (nativeSession) {
      const t2 = performance.now();
      const n = await nativeSession.run({
        [options.inputName]: new native.Tensor("float32", options.input, options.shape),
      });
      const t3 = performance.now();
      if (i >= 0) nativeTimes.push(t3 - t2);
      if (i === 0) nativeFirst = (n[options.outputName].data as Float32Array).slice();
    }
  }
  await webSession.release();
  await nativeSession?.release();
  return {
    web: summarise("onnxruntime-web", webTimes, webFirst),
    native: nativeSession ? summarise("onnxruntime-node", nativeTimes, nativeFirst) : null,
    nativeError,
  };
}
