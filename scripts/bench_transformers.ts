/**
 * `@huggingface/transformers` (transformers.js) on the camera-frames path, measured for `deno task bench:frames`,
 * which runs this script in a child process with its own import map and `node_modules` under
 * `build/transformers/` (so the service's dependencies stay as they are: transformers.js brings onnxruntime-node,
 * a second onnxruntime-web and sharp with libvips, all native or large). What it measures, on the frames given:
 *
 * - image pre-processing: `RawImage` decode (sharp, libvips on one thread) and pad to a square + resize to the
 *   model's side;
 * - the pose ONNX model loaded from a local folder (`env.allowRemoteModels = false`, `env.localModelPath`) and run
 *   through `AutoModel`, on one intra-op thread, on whatever onnxruntime transformers.js picks under Deno.
 *
 * Prints one JSON object. Not a task of its own.
 *
 *   deno run -A --config build/transformers/deno.json scripts/bench_transformers.ts \
 *     --model wasm-models/pose/movenet-lightning.onnx --frames a.jpg,b.png [--iterations 10]
 *
 * @module
 */
import { parseFlags } from "./cli.ts";
import { median, timeMedian } from "./timing.ts";

/** A transformers.js image (`RawImage`), as far as this script uses it. */
interface HfImage {
  width: number;
  height: number;
  data: ArrayLike<number>;
  rgb(): HfImage;
  pad(padding: number[]): Promise<HfImage>;
  resize(width: number, height: number, options: { resample: number }): Promise<HfImage>;
}

/** The part of transformers.js this script uses. */
interface Transformers {
  env: { version: string; allowRemoteModels: boolean; localModelPath: string };
  RawImage: { fromBlob(blob: Blob): Promise<HfImage> };
  Tensor: new (type: string, data: Float32Array, dims: number[]) => unknown;
  AutoModel: {
    from_pretrained(id: string, options: Record<string, unknown>): Promise<
      ((inputs: Record<string, unknown>) => Promise<unknown>) & { dispose(): Promise<void> }
    >;
  };
}

// Resolved through build/transformers/deno.json's import map at run time; the service's import map has no entry
// for it, so the type checker is not asked to resolve it.
const SPECIFIER = "@huggingface/transformers";
const { AutoModel, env, RawImage, Tensor } = (await import(SPECIFIER)) as Transformers;
// One libvips thread, as every other runtime in the comparison has one.
const SHARP = "sharp";
((await import(SHARP)).default as { concurrency(n: number): number }).concurrency(1);

const flags = parseFlags(
  { model: { type: "string" }, frames: { type: "string" }, iterations: { type: "string", default: "10" } },
  "usage: deno run -A --config build/transformers/deno.json scripts/bench_transformers.ts --model M.onnx " +
    "--frames a.jpg,b.png [--iterations 10]",
);
const iterations = Number(flags.iterations);
const time = (fn: () => Promise<unknown>) => timeMedian(fn, iterations);

const side = 192;
const frames = await Promise.all((flags.frames ?? "").split(",").map((f) => Deno.readFile(f)));
const decodeMs: number[] = [];
const resizeMs: number[] = [];
const inputs: { width: number; height: number; rgb: number[] }[] = [];
for (const bytes of frames) {
  const blob = new Blob([bytes as Uint8Array<ArrayBuffer>]);
  decodeMs.push(await time(() => RawImage.fromBlob(blob)));
  const img = (await RawImage.fromBlob(blob)).rgb();
  const size = Math.max(img.width, img.height);
  const padX = (size - img.width) / 2;
  const padY = (size - img.height) / 2;
  const square = () =>
    img.pad([Math.floor(padX), Math.ceil(padX), Math.floor(padY), Math.ceil(padY)]).then((p) =>
      p.resize(side, side, { resample: 2 })
    );
  resizeMs.push(await time(square));
  const out = await square();
  inputs.push({ width: img.width, height: img.height, rgb: Array.from(out.data as Uint8Array) });
}

// The pose model from a local folder, offline: <dir>/movenet/config.json + onnx/model.onnx.
const dir = await Deno.makeTempDir();
await Deno.mkdir(`${dir}/movenet/onnx`, { recursive: true });
await Deno.copyFile(flags.model!, `${dir}/movenet/onnx/model.onnx`);
await Deno.writeTextFile(`${dir}/movenet/config.json`, JSON.stringify({ model_type: "movenet" }));
env.allowRemoteModels = false;
env.localModelPath = `${dir}/`;
const t0 = performance.now();
const warn = console.warn;
console.warn = () => {}; // "Unknown model class": a bare ONNX graph runs through the base class, as intended here
const model = await AutoModel.from_pretrained("movenet", {
  dtype: "fp32",
  session_options: { intraOpNumThreads: 1, interOpNumThreads: 1 },
});
console.warn = warn;
const loadMs = performance.now() - t0;
const x = new Tensor("float32", new Float32Array(3 * side * side), [1, 3, side, side]);
const poseMs = await time(() => model({ input: x }));
await model.dispose();
await Deno.remove(dir, { recursive: true });

console.log(JSON.stringify({
  version: env.version,
  runtime: "onnxruntime-node (native; transformers.js picks it under Deno, where 'wasm' is not offered)",
  decodeMs: median(decodeMs),
  padResizeMs: median(resizeMs),
  modelLoadMs: loadMs,
  poseMs,
  inputs,
}));
