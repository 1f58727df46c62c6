/**
 * Bare-model timing in both runtimes, for the benchmark: the same model and input through onnxruntime-web (WASM,
 * one thread, as in the workers) and native onnxruntime (onnxruntime-node). Nothing in the request path uses it.
 *
 * @module
 */
import "./worker_env.ts";
import * as web from "onnxruntime-web/wasm";
import { configureRuntime } from "./runtime.ts";

/** How {@link timeBothRuntimes} runs each runtime, for the benchmarks' reports. */
export const RUNTIME_SETTINGS = {
  onnxruntimeWeb: "WASM SIMD (ort-wasm-simd-threaded.wasm), 1 thread, no proxy",
  onnxruntimeNative: "onnxruntime-node, 1 intra-op thread, 1 inter-op thread",
} as const;

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
 * Time a model in onnxruntime-web and in native onnxruntime on the same input, in alternating blocks of runs: close
 * enough in time that machine noise hits both alike, long enough that each runtime runs with its own code and data in
 * the caches. Alternating run by run flatters WASM: each run then starts with caches the other runtime filled, which
 * costs native onnxruntime (0.10 -> 0.14 ms a run here) more than WASM (0.27 -> 0.29), and the ratio read 2.1
 * instead of 2.7 on the shipped edge model.
 *
 * @param model the model bytes
 * @param options input name and tensor, output name, runs, warm-up runs, the WASM binary, native intra-op threads
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
    /** Untimed runs of each runtime first: WASM code is tiered up over the first thousand or so. @default 5 */
    warmupRuns?: number;
    /** Timed runs of one runtime before the other takes its turn. @default 100 */
    block?: number;
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
  const runWeb = async () =>
    (await webSession.run({ [options.inputName]: new web.Tensor("float32", options.input, options.shape) }))[
      options.outputName
    ].data as Float32Array;
  const runNative = async () =>
    (await nativeSession.run({ [options.inputName]: new native.Tensor("float32", options.input, options.shape) }))[
      options.outputName
    ].data as Float32Array;
  for (let i = 0; i < (options.warmupRuns ?? 5); i++) {
    await runWeb();
    if (nativeSession) await runNative();
  }
  const webFirst = (await runWeb()).slice();
  const nativeFirst = nativeSession ? (await runNative()).slice() : new Float32Array(0);
  const block = Math.max(1, Math.floor(options.block ?? 100));
  for (let done = 0; done < options.runs; done += block) {
    const n = Math.min(block, options.runs - done);
    await timeRuns(runWeb, n, webTimes);
    if (nativeSession) await timeRuns(runNative, n, nativeTimes);
  }
  await webSession.release();
  await nativeSession?.release();
  return {
    web: summarise("onnxruntime-web", webTimes, webFirst),
    native: nativeSession ? summarise("onnxruntime-node", nativeTimes, nativeFirst) : null,
    nativeError,
  };
}

/** Run `n` times, each run's milliseconds pushed to `into`. */
async function timeRuns(run: () => Promise<unknown>, n: number, into: number[]): Promise<void> {
  for (let i = 0; i < n; i++) {
    const t0 = performance.now();
    await run();
    into.push(performance.now() - t0);
  }
}

/** A model's first input and first output, as onnxruntime-web reads them. */
export interface ModelIo {
  inputName: string;
  /** The input's element type (`float32`, ...), or null when it is not a tensor. */
  inputType: string | null;
  /** The input's dimensions: a number, or a name where the dimension is symbolic. */
  inputShape: (number | string)[];
  outputName: string;
}

/**
 * Read a model's first input and output (for timing a model given by path).
 *
 * @param model the model bytes
 * @param wasmBinary the onnxruntime-web WASM binary
 * @returns its first input and output
 */
export async function describeModel(model: Uint8Array, wasmBinary: Uint8Array): Promise<ModelIo> {
  configureRuntime(wasmBinary);
  const session = await web.InferenceSession.create(model, { executionProviders: ["wasm"] });
  try {
    const input = session.inputMetadata[0];
    return {
      inputName: input?.name ?? "",
      inputType: input?.isTensor ? input.type : null,
      inputShape: input?.isTensor ? [...input.shape] : [],
      outputName: session.outputNames[0] ?? "",
    };
  } finally {
    await session.release();
  }
}
