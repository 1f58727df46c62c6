/**
 * `deno task bench:frames`: the camera-frames path against its targets, on real frames (Debian's opencv-doc,
 * `scripts/testdata_opencv.sh`), each figure measured side by side in one run:
 *
 * - pose: the ONNX model in onnxruntime-web vs the published TF.js model on tfjs-backend-wasm, same inputs, one
 *   thread each, both warmed (target: ONNX <= 0.5 x TF.js);
 * - keypoints: median distance between the two, as a fraction of the image's longer side (target <= 2%);
 * - decoding: @jsquash/jpeg and @jsquash/png per frame;
 * - a 32-frame 640x480 JPEG clip answered edge-kept over HTTP vs the same work (decode + pose + edge model) run
 *   bare on one thread (target: <= 1.2 x), and clips per second with 1 and 2 pose workers.
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
import { loadReferencePose } from "./pose_reference.ts";
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

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
async function time(fn: () => unknown, n: number): Promise<number> {
  await fn();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}

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

// Pose: ONNX (onnxruntime-web) vs TF.js (WASM), same inputs, alternating so both see the same machine load.
const ref = await loadReferencePose(REF.pathname);
const pose = await PoseModel.load((await readPoseModel()).bytes);
const inputs = await Promise.all([...stills, clip[0], clip[16]].map(async (bytes) => {
  const img = await decodeImage(bytes);
  const crop = fullCrop(img.width, img.height);
  return { img, crop, x: cropToInput(img, crop, pose.side) };
}));
const onnxMs: number[] = [];
const tfjsMs: number[] = [];
const dists: number[] = [];
for (const { img, crop, x } of inputs) {
  onnxMs.push(await time(() => pose.run(x), iterations));
  tfjsMs.push(await time(() => ref.run(x), iterations));
  const a = toImageKeypoints(ref.run(x), crop);
  const b = toImageKeypoints(await pose.run(x), crop);
  const size = Math.max(img.width, img.height);
  for (let j = 0; j < 17; j++) dists.push(Math.hypot(a[j][0] - b[j][0], a[j][1] - b[j][1]) / size);
}

// Decoding.
const jpegMs = await time(() => decodeImage(clip[0]), iterations);
const pngMs = await time(() => decodeImage(png), iterations);

// Bare: decode + pose + edge model for the clip, on this thread.
const modelsDir = loadConfig({}).modelsDir;
const { init } = await loadModelSet(modelsDir, { warmupRuns: 1 });
const edge = await createInProcessInference(init);
const bare = async () => {
  const p = await pose.clip(clip);
  await edge.classify([{ data: posesToSequence(p), length: p.frames.length }]);
};
const bareMs = await time(bare, Math.max(3, Math.floor(iterations / 3)));
await edge.close();

// Served: the same clip over HTTP, edge-kept, 1 then 2 pose workers; throughput with 4 clips in flight.
const body = JSON.stringify({ fps: 10, images: clip.map((b) => Buffer.from(b).toString("base64")), route: "edge" });
const served: Record<string, { latencyMs: number; clipsPerS: number }> = {};
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
  };
  const latencyMs = await time(post, Math.max(3, Math.floor(iterations / 3)));
  const t = performance.now();
  await Promise.all(Array.from({ length: 4 }, post));
  served[`poseWorkers${workers}`] = { latencyMs, clipsPerS: 4 / ((performance.now() - t) / 1000) };
  await service.shutdown();
  await Deno.remove(dir, { recursive: true });
}

const result = {
  machine: { cores: navigator.hardwareConcurrency, note: "shared machine; ratios are side by side in one run" },
  pose: {
    model: "MoveNet SinglePose Lightning 192x192",
    frames: inputs.length,
    onnxWebMs: median(onnxMs),
    tfjsWasmMs: median(tfjsMs),
    ratio: median(onnxMs) / median(tfjsMs),
    target: "<= 0.5",
  },
  keypoints: {
    medianDistanceOfImageSize: median(dists),
    maxDistanceOfImageSize: Math.max(...dists),
    target: "<= 0.02",
  },
  decode: { jpeg640x480Ms: jpegMs, png640x480Ms: pngMs },
  clip32: {
    bareMs,
    served,
    ratio: served.poseWorkers1.latencyMs / bareMs,
    target: "<= 1.2",
    scaling: served.poseWorkers2.clipsPerS / served.poseWorkers1.clipsPerS,
  },
};
await Deno.mkdir(new URL(".", new URL(outPath, `file://${Deno.cwd()}/`)), { recursive: true });
await Deno.writeTextFile(outPath, JSON.stringify(result, null, 2) + "\n");
console.log(JSON.stringify(result, null, 2));
await pose.release();
