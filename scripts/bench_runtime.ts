/**
 * onnxruntime-web against native onnxruntime on any model files, side by side in one run: which part of a model
 * makes the WASM runtime slower. `deno task bench` times the whole edge model; this times whatever it is given, for
 * example the two parts of the edge model that scripts/models/split_graph.py writes:
 *
 *     python3 scripts/models/split_graph.py wasm-models/edge.int8.onnx build/parts
 *     deno task bench:runtime --model wasm-models/edge.int8.onnx --model build/parts/float.onnx \
 *       --model build/parts/int8.onnx
 *
 * Each model's first input is fed a fixed pseudo-random float32 tensor (symbolic dimensions set to --batch); its
 * first output is read. Both runtimes run on this thread, one thread each, in alternating blocks of runs
 * (workers/runtime_bench.ts), after a WASM warm-up; each figure is the median [min - max] over --reps repetitions.
 *
 * @module
 */
import { readRuntimeBinary } from "../workers/artefacts.ts";
import { createPrng } from "../switcher/prng.ts";
import { describeModel, RUNTIME_SETTINGS, timeBothRuntimes } from "../workers/runtime_bench.ts";
import { InputError, parseFlags, usageError } from "./cli.ts";
import { spread } from "./timing.ts";

const USAGE = "usage: deno task bench:runtime --model FILE [--model FILE ...] [--batch N] [--runs N] [--reps N] " +
  "[--warmup N] [--json]";
const flags = parseFlags({
  model: { type: "string", multiple: true, default: [] },
  batch: { type: "string", default: "1" },
  runs: { type: "string", default: "2000" },
  reps: { type: "string", default: "3" },
  warmup: { type: "string", default: "3000" },
  json: { type: "boolean", default: false },
}, USAGE);

const count = (name: string, value: string, min: number) => {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) usageError(`Cannot run: --${name} must be an integer >= ${min}`, USAGE);
  return n;
};
const batch = count("batch", flags.batch!, 1);
const runs = count("runs", flags.runs!, 1);
const reps = count("reps", flags.reps!, 1);
const warmup = count("warmup", flags.warmup!, 0);
if (flags.model!.length === 0) usageError("Cannot run: name at least one --model", USAGE);

/** The x86 instruction sets native onnxruntime's int8 kernels can use here; WASM SIMD128 has no int8 dot product. */
function int8DotProduct(): string {
  try {
    const flagsLine = Deno.readTextFileSync("/proc/cpuinfo").split("\n").find((l) => l.startsWith("flags")) ?? "";
    const have = new Set(flagsLine.split(/\s+/));
    const sets = ["avx512_vnni", "avx_vnni", "avx2"].filter((s) => have.has(s));
    return sets.length ? sets.join(", ") : "none of avx2, avx_vnni, avx512_vnni";
  } catch {
    return "unknown (no /proc/cpuinfo)";
  }
}

/** A fixed pseudo-random tensor in [0, 1), so every run and runtime sees the same input. */
function fixedInput(n: number): Float32Array {
  const rng = createPrng(1);
  return Float32Array.from({ length: n }, () => rng.next());
}

const wasmBinary = await readRuntimeBinary();

const results = [];
for (const path of flags.model!) {
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw err instanceof Deno.errors.NotFound ? new InputError(`Cannot read ${path}: no such file`) : err;
  }
  const io = await describeModel(bytes, wasmBinary).catch((err) => {
    throw new InputError(`Cannot load ${path}: ${String(err).split("\n")[0]}`);
  });
  if (io.inputType !== "float32") throw new InputError(`Cannot time ${path}: its first input is not a float32 tensor`);
  const shape = io.inputShape.map((d) => (typeof d === "number" && d > 0 ? d : batch));
  const { inputName, outputName } = io;
  const input = fixedInput(shape.reduce((a, b) => a * b, 1));
  const webMs: number[] = [];
  const nativeMs: number[] = [];
  const ratios: number[] = [];
  let nativeError: string | undefined;
  for (let rep = 0; rep < reps; rep++) {
    const t = await timeBothRuntimes(bytes, {
      inputName,
      input,
      shape,
      outputName,
      runs,
      warmupRuns: warmup,
      wasmBinary,
      nativeThreads: 1,
    });
    webMs.push(t.web.p50Ms);
    if (t.native) {
      nativeMs.push(t.native.p50Ms);
      ratios.push(t.web.p50Ms / t.native.p50Ms);
    } else nativeError = t.nativeError;
  }
  results.push({
    model: path,
    input: { name: inputName, shape },
    webP50Ms: spread(webMs),
    nativeP50Ms: nativeMs.length ? spread(nativeMs) : null,
    webOverNative: ratios.length ? spread(ratios) : null,
    nativeError: nativeError ?? null,
  });
}

const settings = {
  ...RUNTIME_SETTINGS,
  nativeInt8InstructionSets: int8DotProduct(),
  runs,
  reps,
  warmup,
  batch,
};
if (flags.json) {
  console.log(JSON.stringify({ settings, results }, null, 2));
} else {
  const f = (s: { median: number; min: number; max: number } | null, d: number) =>
    s ? `${s.median.toFixed(d)} [${s.min.toFixed(d)} - ${s.max.toFixed(d)}]` : "n/a";
  console.log(`\n${settings.onnxruntimeWeb} vs ${settings.onnxruntimeNative}`);
  console.log(`native int8 instruction sets on this CPU: ${settings.nativeInt8InstructionSets}`);
  console.log(`p50 per run, median [min - max] of ${reps} repetitions of ${runs} runs, batch ${batch}\n`);
  console.log("| model | input | web ms | native ms | web / native |");
  console.log("|---|---|---|---|---|");
  for (const r of results) {
    console.log(
      `| ${r.model} | ${r.input.name} [${r.input.shape.join(", ")}] | ${f(r.webP50Ms, 4)} | ${f(r.nativeP50Ms, 4)} | ${
        f(r.webOverNative, 2)
      } |`,
    );
    if (r.nativeError) console.log(`|  | native failed: ${r.nativeError.split("\n")[0]} | | | |`);
  }
}
