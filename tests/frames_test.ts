/**
 * Camera frames end to end: the whole service (default models, real pose workers, the reference cloud server, a
 * libSQL file) answering clips of real JPEG frames (Debian's opencv-doc `vtest.avi`, see scripts/testdata_opencv.sh)
 * as JSON and as multipart, the limits checked from the headers, a clip with nobody in it, and the decision rows.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import encodePng from "@jsquash/png/encode.js";
import { loadConfig } from "../config.ts";
import { startService } from "../main.ts";
import { readDecision } from "./fixtures/db_records.ts";
import { framesServiceEnv } from "./fixtures/opencv_frames.ts";
import { checkClip } from "../serve/frames.ts";
import { AppError } from "../errors.ts";

const DATA = new URL("../build/testdata/opencv/vtest/", import.meta.url);
let haveClip = true;
try {
  Deno.statSync(new URL("frame-032.jpg", DATA));
} catch {
  haveClip = false;
  console.error("frames_test: no build/testdata/opencv (run scripts/testdata_opencv.sh); the clip tests are ignored");
}
const readClip = (n: number) =>
  Promise.all(
    Array.from({ length: n }, (_, i) => Deno.readFile(new URL(`frame-${String(i + 1).padStart(3, "0")}.jpg`, DATA))),
  );
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString("base64");

async function withService(fn: (url: string, dbUrl: string) => Promise<void>, env: Record<string, string> = {}) {
  const dir = await Deno.makeTempDir();
  const dbUrl = `file:${dir}/decisions.db`;
  const service = await startService(loadConfig({ ...framesServiceEnv(dbUrl), ...env }));
  try {
    await fn(service.url, dbUrl);
  } finally {
    await service.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
}

const post = async (url: string, path: string, body: unknown) => {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
};

Deno.test("frames: limits come from the headers, before decoding", () => {
  const limits = { maxFrames: 4, maxImageBytes: 1000, maxPixels: 640 * 480 };
  // A PNG header claiming 100000 x 100000 pixels, with no image data at all: refused from the header.
  const huge = new Uint8Array(33);
  huge.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
  new DataView(huge.buffer).setUint32(16, 100_000);
  new DataView(huge.buffer).setUint32(20, 100_000);
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (e) {
      assert.ok(e instanceof AppError);
      return e.code + " " + e.message;
    }
    return "accepted";
  };
  assert.match(code(() => checkClip([huge], limits)), /^INVALID_INPUT .*100000x100000/);
  assert.match(code(() => checkClip([new Uint8Array(1001)], limits)), /^PAYLOAD_TOO_LARGE/);
  assert.match(code(() => checkClip([new Uint8Array([1, 2, 3])], limits)), /^INVALID_INPUT .*not a JPEG or PNG/);
  assert.match(code(() => checkClip(Array(5).fill(huge), limits)), /^INVALID_INPUT .*at most 4 images/);
  assert.match(code(() => checkClip([], limits)), /^INVALID_INPUT .*at least 1/);
});

Deno.test({
  name: "frames: a real 32-frame JPEG clip is answered like a keypoint request and logged with its frame columns",
  ignore: !haveClip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const clip = await readClip(32);
    await withService(async (url, dbUrl) => {
      const res = await post(url, "/v1/classify/frames", {
        id: "cam-1",
        fps: 10,
        images: clip.map(b64),
        route: "edge",
        keypoints: true,
      });
      assert.equal(res.status, 200, JSON.stringify(res.body));
      const a = res.body;
      assert.equal(a.id, "cam-1");
      assert.equal(a.route, "edge");
      assert.ok(a.probability > 0 && a.probability <= 1);
      assert.deepEqual(Object.keys(a.probabilities).length, 15);
      assert.equal(a.input.kind, "jpeg");
      assert.deepEqual([a.input.frames, a.input.width, a.input.height], [32, 640, 480]);
      assert.ok(a.input.decodeMs > 0 && a.input.poseMs > 0);
      assert.ok(a.input.poseQuality > 0.3, `pose quality ${a.input.poseQuality}`);
      assert.equal(a.keypoints.length, 32);
      assert.equal(a.keypoints[0].length, 17);

      // The same answer shape as a keypoint request (plus input and keypoints).
      const seq = await post(url, "/v1/classify", {
        layout: "coco17",
        fps: 10,
        frames: a.keypoints.map((f: number[][]) => f.map(([x, y, s]) => [x / 640, (y + 80) / 640, s])),
        route: "edge",
      });
      assert.equal(seq.status, 200);
      assert.deepEqual(
        Object.keys(a).filter((k) => k !== "input" && k !== "keypoints").sort(),
        Object.keys(seq.body).sort(),
      );

      // Multipart: the same clip as file parts gives the same edge answer.
      const form = new FormData();
      form.set("fps", "10");
      form.set("route", "edge");
      for (const [i, bytes] of clip.entries()) {
        form.append("frames", new Blob([bytes], { type: "image/jpeg" }), `${i}.jpg`);
      }
      const mp = await fetch(`${url}/v1/classify/frames`, { method: "POST", body: form });
      const mpBody = await mp.json();
      assert.equal(mp.status, 200, JSON.stringify(mpBody));
      assert.equal(mpBody.edge.label, a.edge.label);
      assert.ok(Math.abs(mpBody.edge.probability - a.edge.probability) < 1e-6);
      assert.equal(mpBody.keypoints, undefined);

      const row = await readDecision(dbUrl, a.decisionId);
      assert.ok(row);
      assert.equal(row.inputKind, "jpeg");
      assert.equal(row.frames, 32);
      assert.equal(row.layout, "coco17");
      assert.ok(row.decodeMs! > 0 && row.poseMs! > 0);
      assert.ok(Math.abs(row.poseQuality! - a.input.poseQuality) < 1e-9);

      // A keypoint request's row leaves the frame columns empty.
      const seqRow = await readDecision(dbUrl, seq.body.decisionId);
      assert.equal(seqRow?.inputKind, null);
      assert.equal(seqRow?.poseQuality, null);

      // The pose pool in readiness and metrics: warm, two clips of 32 frames posed.
      const ready = await (await fetch(`${url}/readyz`)).json();
      assert.deepEqual([ready.ready, ready.pose], [true, true]);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /^dmd_pose_clips_total\{[^}]*\} 2$/m);
      assert.match(metrics, /^dmd_pose_frames_total\{[^}]*\} 64$/m);
      assert.match(metrics, /^dmd_pose_workers\{state="idle"[^}]*\} 1$/m);
    });
  },
});

Deno.test({
  name: "frames: nobody in the frames is NO_PERSON (422), not a label; bad or short clips in a batch fail alone",
  ignore: !haveClip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const grey = new ImageData(new Uint8ClampedArray(320 * 240 * 4).fill(128), 320, 240);
    const empty = new Uint8Array(await encodePng(grey));
    // 10 frames at 10 fps: 0.9 s, more than the 0.83 s the default edge model reads at least (sequence/window.ts).
    const clip = await readClip(10);
    await withService(async (url) => {
      // Ten frames at 10 fps span what the edge model reads: nobody in them, not a short clip, is the answer.
      const nobodyClip = Array(10).fill(b64(empty));
      const none = await post(url, "/v1/classify/frames", { fps: 10, images: nobodyClip });
      assert.equal(none.status, 422, JSON.stringify(none.body));
      assert.equal(none.body.code, "NO_PERSON");

      const bad = await post(url, "/v1/classify/frames", { fps: 10, images: ["not base64!"] });
      assert.equal(bad.status, 400);
      assert.equal(bad.body.code, "INVALID_INPUT");

      // Whole headers but broken data: the answer says which image and what is wrong with it.
      const cutPng = empty.slice(0, empty.length - 40);
      const cut = await post(url, "/v1/classify/frames", { fps: 10, images: [...nobodyClip.slice(1), b64(cutPng)] });
      assert.equal(cut.status, 400, JSON.stringify(cut.body));
      assert.equal(cut.body.code, "INVALID_INPUT");
      assert.match(cut.body.message, /^Cannot decode frames: image 9: the PNG cannot be decoded: truncated/);
      // Cut before its scan (SOS): libjpeg cannot read it (a cut inside the scan decodes, the rest grey).
      const sos = clip[0].findIndex((b, i) => b === 0xff && clip[0][i + 1] === 0xda);
      const cutJpeg = await post(url, "/v1/classify/frames", {
        fps: 10,
        images: [b64(clip[0].slice(0, sos)), ...clip.slice(1).map(b64)],
      });
      assert.equal(cutJpeg.status, 400, JSON.stringify(cutJpeg.body));
      assert.match(cutJpeg.body.message, /^Cannot decode frames: image 0: the JPEG cannot be decoded: .*JPEG/);

      // Refused before any frame is decoded or posed: a clip too short for the edge model, unknown or bad fields.
      const posed = async () =>
        Number(/^dmd_pose_clips_total\{[^}]*\} (\d+)$/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? 0);
      const posedBefore = await posed();
      const tooShort = await post(url, "/v1/classify/frames", { fps: 10, images: [b64(clip[0]), b64(clip[1])] });
      assert.equal(tooShort.status, 422, JSON.stringify(tooShort.body));
      assert.equal(tooShort.body.code, "SEQUENCE_TOO_SHORT");
      const typo = await post(url, "/v1/classify/frames", { fps: 10, images: [b64(clip[0])], keypoint: true });
      assert.equal(typo.status, 400);
      assert.match(typo.body.message, /Unrecognized key: "keypoint"/);
      const multipart = async (fields: [string, string][]) => {
        const form = new FormData();
        for (const [k, v] of fields) form.append(k, v);
        for (const bytes of clip) form.append("frames", new Blob([bytes], { type: "image/jpeg" }), "f.jpg");
        const res = await fetch(`${url}/v1/classify/frames`, { method: "POST", body: form });
        return { status: res.status, body: await res.json() };
      };
      for (
        const [fields, message] of [
          [[["keypoint", "true"]], /unknown field "keypoint" \(the fields are fps, id, route, keypoints, frames\)/],
          [[["id", "x".repeat(257)]], /id: expected at most 256 characters, got 257/],
          [[["keypoints", "yes"]], /keypoints: expected "true" or "false", got "yes"/],
        ] as [[string, string][], RegExp][]
      ) {
        const res = await multipart(fields);
        assert.equal(res.status, 400, JSON.stringify(res.body));
        assert.match(res.body.message, message);
      }
      assert.equal(await posed(), posedBefore, "nothing above reached the pose workers");

      const batch = await post(url, "/v1/classify/frames/batch", {
        route: "edge",
        items: [
          { id: "walkers", fps: 10, images: clip.map(b64) },
          { id: "empty", fps: 10, images: nobodyClip },
          { id: "mixed", fps: 10, images: [b64(clip[0]), b64(empty)] },
          { id: "short", fps: 10, images: clip.slice(0, 8).map(b64) },
        ],
      });
      assert.equal(batch.status, 200, JSON.stringify(batch.body));
      const [walkers, nobody, mixed, short] = batch.body.results;
      assert.equal(walkers.ok, true);
      assert.equal(walkers.id, "walkers");
      assert.equal(walkers.input.frames, 10);
      assert.deepEqual([nobody.ok, nobody.code], [false, "NO_PERSON"]);
      assert.deepEqual([mixed.ok, mixed.code], [false, "INVALID_INPUT"]);
      // 8 frames at 10 fps (0.7 s) are 22 at the edge model's 30 fps: fewer than the 26 it reads at least.
      assert.deepEqual([short.ok, short.code], [false, "SEQUENCE_TOO_SHORT"]);
      assert.match(short.message, /at least 10 frames at 10 fps/);

      const doc = await (await fetch(`${url}/openapi.json`)).json();
      assert.ok(doc.paths["/v1/classify/frames"].post.requestBody.content["multipart/form-data"]);
      assert.ok(doc.paths["/v1/classify/frames/batch"]);
    });
  },
});
