/**
 * `deno task bench:frames`: the camera-frames path against its targets, on real frames (Debian's opencv-doc,
 * `scripts/testdata_opencv.sh`), each figure measured side by side in one run:
 *
 * - pose: the ONNX model in onnxruntime-web vs the published TF.js model on tfjs-backend-wasm, same inputs, one
 *   thread each, both warmed (target: ONNX <= 0.5 x TF.js);
 * - keypoints: median distance between the two, as a fraction of the image's longer side (target <= 2%);
 * - decoding: JPEG (@jsquash/jpeg, WASM) and PNG (sequence/png.ts) per frame;
 * - a 32-frame 640x480 JPEG clip answered edge-kept over HTTP vs the same work (decode + pose + edge model) run
 *   bare on one thread (target: <= 1.2 x), the first clip after start-up, and clips per second with 1 and 2 pose
 *   workers (services and pools both up, measured in alternating rounds so both see the same machine load), over
 *   HTTP and at the pose pool alone;
 * - `@huggingface/transformers` where it could serve this path (image pre-processing; the pose ONNX from a local
 *   folder), in a child process with its own dependencies (scripts/bench_transformers.ts), against ours.
 *
 *   deno task bench:frames [--iterations 10] [--out build/bench/frames.json]
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { startService } from "../main.ts";
import { cropToInput, fullCrop, toImageKeypoints } from "../sequence/image.ts";
import { posesToSequence } from "../serve/frames.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createInProcessInference } from "../workers/in_process.ts";
import { decodeImage, PoseModel, readPoseModel } from "../workers/pose.ts";
import decodeWasmPng from "@jsquash/png/decode.js";
import { createPosePool } from "../workers/pose_pool.ts";
import { loadReferencePose } from "./pose_reference.ts";
import { median, timeMedian } from "./timing.ts";
import { parseFlags, usageError } from "./cli.ts";
import { Buffer } from "node:buffer";

const USAGE = `usage: deno task bench:frames [--iterations 10] [--out build/bench/frames.json]
  The camera-frames path against its targets, on Debian's opencv-doc frames (deno task testdata fetches them).`;
const flags = parseFlags({
  iterations: { type: "string", default: "10" },
  out: { type: "string", default: "build/bench/frames.json" },
}, USAGE);
const iterations = Number(flags.iterations);
if (!Number.isInteger(iterations) || iterations < 1) {
  usageError("Cannot benchmark: --iterations must be a positive integer", USAGE);
}
const outPath = flags.out!;
const DATA = new URL("../build/testdata/opencv/", import.meta.url);
const REF = new URL("../build/pose-src/package/models/movenet-lightning.json", import.meta.url);

const time = timeMedian;

const clip = await Promise.all(
  Array.from(
    { length: 32 },
    (_, i) => Deno.readFile(new URL(`vtest/frame-${String(i + 1).padStart(3, "0")}.jpg`, DATA)),
  ),
);
const stills = await Promise.all(
  ["messi5.jpg", "basketball1.png", "basketball2.png", "person_multi_det.jpg"].map((f) =>
    Deno.readFile(new URL(f, DATA))
  ),
);
const png = stills[1];

const loadStart = Deno.loadavg();

// Pose: ONNX (onnxruntime-web) vs TF.js (WASM), same inputs, one run of each in turn so both see the same load.
const ref = await loadReferencePose(REF.pathname);
const { bytes: poseBytes } = await readPoseModel();
const pose = await PoseModel.load(poseBytes);
const frameFiles = ["messi5.jpg", "basketball1.png", "basketball2.png", "person_multi_det.jpg"].map((f) =>
  new URL(f, DATA).pathname
).concat([1, 17].map((i) => new URL(`vtest/frame-${String(i).padStart(3, "0")}.jpg`, DATA).pathname));
const inputs = await Promise.all([...stills, clip[0], clip[16]].map(async (bytes) => {
  const img = await decodeImage(bytes);
  const crop = fullCrop(img.width, img.height);
  return { img, crop, x: cropToInput(img, crop, pose.side) };
}));
const onnxMs: number[] = [];
const tfjsMs: number[] = [];
const dists: number[] = [];
const distance = (a: number[][], b: number[][], size: number) =>
  a.map((p, j) => Math.hypot(p[0] - b[j][0], p[1] - b[j][1]) / size);
for (const { x } of inputs) {
  await pose.run(x);
  ref.run(x);
}
for (let i = 0; i < iterations; i++) {
  for (const { x } of inputs) {
    let t = performance.now();
    await pose.run(x);
    onnxMs.push(performance.now() - t);
    t = performance.now();
    ref.run(x);
    tfjsMs.push(performance.now() - t);
  }
}
for (const { img, crop, x } of inputs) {
  const a = toImageKeypoints(ref.run(x), crop);
  const b = toImageKeypoints(await pose.run(x), crop);
  dists.push(...distance(a, b, Math.max(img.width, img.height)));
}

// Decoding and the crop to the model's input.
const jpegMs = await time(() => decodeImage(clip[0]), iterations);
const pngMs = await time(() => decodeImage(png), iterations);
// The PNG decoder against the WASM one it replaced (which kept the memory of every image it refused), in turns.
const pngTurns: { ours: number; wasm: number }[] = [];
for (let turn = 0; turn < 5; turn++) {
  pngTurns.push({
    ours: await time(() => decodeImage(png), iterations),
    wasm: await time(() => decodeWasmPng(png.slice().buffer), iterations),
  });
}
const cropMs = await time(() => cropToInput(inputs[4].img, inputs[4].crop, pose.side), iterations);

// Bare: decode + pose + edge model for the clip, on this thread.
const modelsDir = loadConfig({}).modelsDir;
const { init } = await loadModelSet(modelsDir, { warmupRuns: 1 });
const edge = await createInProcessInference(init);
const bare = async () => {
  const p = await pose.clip(clip);
  await edge.classify([{ data: posesToSequence(p), length: p.frames.length }]);
};
await bare();

// Served: the same clip over HTTP, edge-kept, with 1 and 2 pose workers (both services up at once); the first clip
// after start-up; then, in alternating rounds with the bare run, latency one clip at a time and throughput with 4
// clips in flight.
const body = JSON.stringify({ fps: 10, images: clip.map((b) => Buffer.from(b).toString("base64")), route: "edge" });
const rounds = Math.max(3, Math.floor(iterations / 3));
const services = [];
for (const workers of [1, 2]) {
  const dir = await Deno.makeTempDir();
  const service = await startService(loadConfig({
    PORT: "0",
    DATABASE_URL: `file:${dir}/decisions.db`,
    WORKERS: "1",
    POSE_WORKERS: String(workers),
    LOG_LEVEL: "error",
    MAX_BODY_BYTES: String(16 * 1024 * 1024),
  }));
  const post = async () => {
    const res = await fetch(`${service.url}/v1/classify/frames`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    const a = await res.json();
    if (res.status !== 200 || a.route !== "edge") throw new Error(`unexpected answer ${res.status}`);
    return a.input as { decodeMs: number; poseMs: number };
  };
  const t = performance.now();
  await post();
  services.push({ workers, dir, service, post, firstClipMs: performance.now() - t });
}
const inFlight = async (post: () => Promise<unknown>) => {
  const t = performance.now();
  await Promise.all(Array.from({ length: 4 }, post));
  return 4 / ((performance.now() - t) / 1000);
};
const latency: number[][] = services.map(() => []);
/** Latency less the decode + pose time the pose worker reported: what serving adds (HTTP, JSON, hand-over, edge). */
const overhead: number[][] = services.map(() => []);
const clipsPerS: number[][] = services.map(() => []);
const bareRuns: number[] = [];
for (let r = 0; r < rounds; r++) {
  // The bare run in the same rounds as the served ones, so the ratio sees one machine load.
  const t = performance.now();
  await bare();
  bareRuns.push(performance.now() - t);
  for (const [k, s] of services.entries()) {
    const t = performance.now();
    const input = await s.post();
    latency[k].push(performance.now() - t);
    overhead[k].push(latency[k].at(-1)! - input.decodeMs - input.poseMs);
    clipsPerS[k].push(await inFlight(s.post));
  }
}
await edge.close();
const bareMs = median(bareRuns);
const served: Record<string, { firstClipMs: number; latencyMs: number; overheadMs: number; clipsPerS: number }> = {};
for (const [k, s] of services.entries()) {
  served[`poseWorkers${s.workers}`] = {
    firstClipMs: s.firstClipMs,
    latencyMs: median(latency[k]),
    overheadMs: median(overhead[k]),
    clipsPerS: median(clipsPerS[k]),
  };
  await s.service.shutdown();
  await Deno.remove(s.dir, { recursive: true });
}

// The pose pool alone (no HTTP, JSON, edge model or database): 1 and 2 workers, 4 clips in flight, alternating.
const pools = [];
for (const size of [1, 2]) {
  pools.push(
    await createPosePool(poseBytes, {
      size,
      queueMax: 16,
      workerUrl: new URL("../workers/pose_worker.ts", import.meta.url),
    }),
  );
}
const poolClipsPerS: number[][] = pools.map(() => []);
for (let r = 0; r < rounds; r++) {
  for (const [k, p] of pools.entries()) poolClipsPerS[k].push(await inFlight(() => p.pose(clip)));
}
for (const p of pools) await p.close();

// transformers.js, in a child process with its own dependencies; ours on the same frames just before, one frame
// at a time (Promise.all would overlap nothing: decoding is synchronous WASM).
const oursDecode: number[] = [];
for (const b of stills.concat([clip[0], clip[16]])) oursDecode.push(await time(() => decodeImage(b), iterations));
const oursDecodeMs = median(oursDecode);
const transformers = await measureTransformers();
let transformersKeypoints: number | undefined;
if (transformers.ok) {
  // The same model on transformers.js's pre-processed input vs ours: how far the keypoints move.
  const d: number[] = [];
  for (const [i, inp] of transformers.inputs.entries()) {
    const { img, crop, x } = inputs[i];
    const a = toImageKeypoints(await pose.run(x), crop);
    const b = toImageKeypoints(await pose.run(Int32Array.from(inp.rgb)), crop);
    d.push(...distance(a, b, Math.max(img.width, img.height)));
  }
  transformersKeypoints = median(d);
}

const result = {
  machine: {
    cores: navigator.hardwareConcurrency,
    loadavg: { start: loadStart, end: Deno.loadavg() },
    note: "shared machine; ratios are side by side in one run",
  },
  pose: {
    model: "MoveNet SinglePose Lightning 192x192",
    frames: inputs.length,
    onnxWebMs: median(onnxMs),
    tfjsWasmMs: median(tfjsMs),
    ratio: median(onnxMs) / median(tfjsMs),
    /** The median of each ONNX run over the TF.js run right after it: steadier while the load drifts. */
    pairedRatio: median(onnxMs.map((v, i) => v / tfjsMs[i])),
    target: "<= 0.5",
  },
  keypoints: {
    medianDistanceOfImageSize: median(dists),
    maxDistanceOfImageSize: Math.max(...dists),
    target: "<= 0.02",
  },
  decode: {
    jpeg640x480Ms: jpegMs,
    png640x480Ms: pngMs,
    /** Five turns of ours then the WASM decoder (@jsquash/png): the medians, and the median of each turn's ratio. */
    pngTurns: {
      oursMs: median(pngTurns.map((t) => t.ours)),
      wasmMs: median(pngTurns.map((t) => t.wasm)),
      oursOverWasm: median(pngTurns.map((t) => t.ours / t.wasm)),
    },
    cropToInputMs: cropMs,
  },
  clip32: {
    bareMs,
    served,
    ratio: served.poseWorkers1.latencyMs / bareMs,
    target: "<= 1.2",
    scaling: served.poseWorkers2.clipsPerS / served.poseWorkers1.clipsPerS,
    posePool: {
      clipsPerS1: median(poolClipsPerS[0]),
      clipsPerS2: median(poolClipsPerS[1]),
      scaling: median(poolClipsPerS[1]) / median(poolClipsPerS[0]),
    },
  },
  transformers: transformers.ok
    ? {
      version: transformers.version,
      runtime: transformers.runtime,
      decodeMs: transformers.decodeMs,
      oursDecodeMs,
      padResizeMs: transformers.padResizeMs,
      oursCropMs: cropMs,
      poseMs: transformers.poseMs,
      oursPoseMs: median(onnxMs),
      modelLoadMs: transformers.modelLoadMs,
      keypointsMovedByItsResize: transformersKeypoints,
      install: transformers.install,
    }
    : { error: transformers.error },
};
await Deno.mkdir(new URL(".", new URL(outPath, `file://${Deno.cwd()}/`)), { recursive: true });
await Deno.writeTextFile(outPath, JSON.stringify(result, null, 2) + "\n");
console.log(JSON.stringify(result, null, 2));
await pose.release();

type TransformersResult =
  | {
    ok: true;
    version: string;
    runtime: string;
    decodeMs: number;
    padResizeMs: number;
    modelLoadMs: number;
    poseMs: number;
    inputs: { rgb: number[] }[];
    install: { bytes: number; nativePackages: string[] };
  }
  | { ok: false; error: string };

/** Install transformers.js under build/transformers/ (npm registry) and run scripts/bench_transformers.ts there. */
async function measureTransformers(): Promise<TransformersResult> {
  const dir = new URL("../build/transformers/", import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    new URL("deno.json", dir),
    JSON.stringify({
      // sharp pinned to the version transformers.js resolves, so that the script sets its thread count.
      imports: { "@huggingface/transformers": "npm:@huggingface/transformers@4.3.1", "sharp": "npm:sharp@0.35.5" },
      nodeModulesDir: "auto",
    }),
  );
  const deno = (args: string[]) =>
    new Deno.Command(Deno.execPath(), { args, cwd: dir.pathname, stdout: "piped", stderr: "piped" }).output();
  const installed = await deno(["install", "--quiet"]);
  if (!installed.success) return { ok: false, error: new TextDecoder().decode(installed.stderr).slice(-500) };
  const out = await deno([
    "run",
    "-A",
    "--config",
    new URL("deno.json", dir).pathname,
    new URL("./bench_transformers.ts", import.meta.url).pathname,
    "--model",
    new URL("../wasm-models/pose/movenet-lightning.onnx", import.meta.url).pathname,
    "--frames",
    frameFiles.join(","),
    "--iterations",
    String(iterations),
  ]);
  if (!out.success) return { ok: false, error: new TextDecoder().decode(out.stderr).slice(-500) };
  const lines = new TextDecoder().decode(out.stdout).trim().split("\n");
  return { ok: true, ...JSON.parse(lines.at(-1)!), install: await installSize(new URL("node_modules/", dir)) };
}

/** Bytes under a node_modules folder, and the packages in it that carry native code (.node addons, .so). */
async function installSize(dir: URL): Promise<{ bytes: number; nativePackages: string[] }> {
  let bytes = 0;
  const native = new Set<string>();
  const walk = async (path: string) => {
    for await (const e of Deno.readDir(path)) {
      const p = `${path}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile) {
        bytes += (await Deno.stat(p)).size;
        if (/\.node$|\.so(\.\d+)*$/.test(e.name)) {
          const m = p.match(/node_modules\/\.deno\/([^/]+)\//);
          if (m) native.add(m[1]);
        }
      }
    }
  };
  await walk(dir.pathname.replace(/\/$/, ""));
  return { bytes, nativePackages: [...native].sort() };
}
