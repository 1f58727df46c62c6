/**
 * Camera frames: header limits, the converted pose model against the published TF.js model on real images
 * (Debian's opencv-doc: `scripts/testdata_opencv.sh`, run by `.ci/run`), and plausible skeletons on a walking clip.
 */
import assert from "node:assert/strict";
import { cropToInput, fullCrop, ImageHeaderError, readImageHeader, toImageKeypoints } from "../sequence/image.ts";
import { decodeImage, ImageDecodeError, PoseModel, readPoseModel } from "../workers/pose.ts";

const DATA = new URL("../build/testdata/opencv/", import.meta.url);
const REF = new URL("../build/pose-src/package/models/movenet-lightning.json", import.meta.url);
const exists = (u: URL) => {
  try {
    Deno.statSync(u);
    return true;
  } catch {
    return false;
  }
};
const haveImages = exists(new URL("vtest/frame-032.jpg", DATA));
const haveRef = exists(REF);
if (!haveImages) {
  console.error("pose_test: no build/testdata/opencv (run scripts/testdata_opencv.sh); image tests ignored");
}
const STILLS = ["messi5.jpg", "basketball1.png", "basketball2.png", "person_multi_det.jpg"];
const clip = () =>
  Promise.all(
    Array.from({ length: 32 }, (_, i) =>
      Deno.readFile(new URL(`vtest/frame-${String(i + 1).padStart(3, "0")}.jpg`, DATA))),
  );

Deno.test("image header: refuses what is neither JPEG nor PNG, and truncated JPEG headers", () => {
  assert.throws(() => readImageHeader(new TextEncoder().encode("GIF89a........................")), ImageHeaderError);
  assert.throws(
    () => readImageHeader(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0, 0, 0, 0, 0, 0])),
    ImageHeaderError,
  );
});

Deno.test({
  name: "image header: real JPEG and PNG sizes read without decoding match the decoded sizes",
  ignore: !haveImages,
  fn: async () => {
    for (const f of STILLS) {
      const bytes = await Deno.readFile(new URL(f, DATA));
      const h = readImageHeader(bytes);
      assert.equal(h.kind, f.endsWith(".png") ? "png" : "jpeg");
      const img = await decodeImage(bytes);
      assert.deepEqual([h.width, h.height], [img.width, img.height], f);
      assert.equal(img.data.length, img.width * img.height * 4);
    }
  },
});

Deno.test({
  name:
    "decodeImage: broken data behind a whole header is an ImageDecodeError that says what is wrong, printed nowhere",
  ignore: !haveImages,
  fn: async () => {
    const png = await Deno.readFile(new URL("basketball1.png", DATA));
    const jpg = await Deno.readFile(new URL("messi5.jpg", DATA));
    const refused = (pattern: RegExp) => (err: unknown) => err instanceof ImageDecodeError && pattern.test(err.message);
    const printed: unknown[][] = [];
    const error = console.error;
    console.error = (...args: unknown[]) => printed.push(args);
    try {
      await assert.rejects(
        decodeImage(png.slice(0, png.length >> 1)),
        refused(/^the PNG cannot be decoded: truncated/),
      );
      const flipped = png.slice();
      flipped[png.length - 100] ^= 1;
      await assert.rejects(decodeImage(flipped), refused(/checksum does not match/));
      const sos = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xda);
      await assert.rejects(
        decodeImage(jpg.slice(0, sos)),
        refused(/^the JPEG cannot be decoded: .*missing SOS marker/),
      );
      // The decoders are unharmed.
      assert.deepEqual([(await decodeImage(jpg)).width, (await decodeImage(png)).width], [548, 640]);
    } finally {
      console.error = error;
    }
    assert.deepEqual(printed, []);
  },
});

Deno.test({
  name: "pose: the ONNX model matches the published TF.js model (WASM) on real images, within 2% of image size",
  ignore: !haveImages || !haveRef,
  fn: async () => {
    const { loadReferencePose } = await import("../scripts/pose_reference.ts");
    const ref = await loadReferencePose(REF.pathname);
    const { bytes } = await readPoseModel();
    const model = await PoseModel.load(bytes);
    const frames = [...STILLS.map((f) => new URL(f, DATA)), new URL("vtest/frame-001.jpg", DATA)];
    const dists: number[] = [];
    for (const u of frames) {
      const img = await decodeImage(await Deno.readFile(u));
      const crop = fullCrop(img.width, img.height);
      const x = cropToInput(img, crop, model.side);
      const a = toImageKeypoints(ref.run(x), crop);
      const b = toImageKeypoints(await model.run(x), crop);
      const size = Math.max(img.width, img.height);
      for (let j = 0; j < 17; j++) {
        dists.push(Math.hypot(a[j][0] - b[j][0], a[j][1] - b[j][1]) / size);
        assert.ok(Math.abs(a[j][2] - b[j][2]) < 0.02, `${u.pathname} joint ${j} score ${a[j][2]} vs ${b[j][2]}`);
      }
    }
    dists.sort((p, q) => p - q);
    const median = dists[Math.floor(dists.length / 2)];
    assert.ok(median <= 0.02, `median keypoint distance ${median} of image size`);
    await model.release();
  },
});

Deno.test({
  name: "pose: a walking clip (vtest.avi) gives skeletons with ankles below hips and shoulders above hips",
  ignore: !haveImages,
  fn: async () => {
    const { bytes } = await readPoseModel();
    const model = await PoseModel.load(bytes);
    const out = await model.clip(await clip());
    assert.equal(out.frames.length, 32);
    assert.deepEqual([out.width, out.height], [640, 480]);
    let checked = 0;
    let plausible = 0;
    for (const f of out.frames) {
      const kp = f.keypoints;
      const hipY = (kp[11][1] + kp[12][1]) / 2;
      const seen = [5, 6, 11, 12, 15, 16].every((j) => kp[j][2] >= 0.2);
      if (!seen) continue;
      checked++;
      const shoulderY = (kp[5][1] + kp[6][1]) / 2;
      const ankleY = (kp[15][1] + kp[16][1]) / 2;
      if (ankleY > hipY && shoulderY < hipY) plausible++;
    }
    assert.ok(checked >= 16, `only ${checked} of 32 frames had shoulders, hips and ankles seen`);
    assert.ok(plausible / checked >= 0.9, `${plausible} of ${checked} skeletons upright`);
    const quality = out.frames.reduce((s, f) => s + f.score, 0) / 32;
    assert.ok(quality > 0.3, `mean keypoint score ${quality}`);
    await model.release();
  },
});
