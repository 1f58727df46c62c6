/**
 * Pose at the edge: decode camera frames (JPEG in WASM, `@jsquash/jpeg`; PNG in TypeScript, sequence/png.ts) and
 * run a COCO-17 single-person pose model
 * (MoveNet converted to ONNX, `scripts/models/tfjs_to_onnx.py`) in onnxruntime-web, following the person across
 * frames by cropping around the previous frame's keypoints. Runs in a pose worker (workers/pose_worker.ts) or, for
 * scripts and tests, in the calling realm.
 *
 * @module
 */
import * as ort from "onnxruntime-web/wasm";
import decodeJpeg, { init as initJpeg } from "@jsquash/jpeg/decode.js";
import { decodePng, PngError } from "../sequence/png.ts";
import { cropToInput, fullCrop, nextCrop, readImageHeader, type Rgba, toImageKeypoints } from "../sequence/image.ts";
import { configureRuntime } from "./runtime.ts";
import { readRuntimeBinary } from "./artefacts.ts";
import type { ClipPose, FramePose } from "./pose_protocol.ts";

export type { ClipPose, FramePose };

/** Why an image's data cannot be decoded (its header was read); the message says what is wrong. */
export class ImageDecodeError extends Error {}

/** What the JPEG decoder printed during the current decode (libjpeg's warnings and errors), instead of stderr. */
let jpegMessages: string[] = [];
let jpegReady = false;

/**
 * Decode one JPEG or PNG to RGBA: JPEG in WASM (mozjpeg), PNG in TypeScript. A JPEG that libjpeg can read with a
 * warning (a few stray bytes, an early end: the rest of the image grey) is decoded as libjpeg decodes it.
 *
 * @param bytes the encoded image
 * @returns the pixels
 * @throws ImageHeaderError when the header is not a JPEG's or a PNG's
 * @throws ImageDecodeError when the data after the header is corrupt or truncated
 */
export async function decodeImage(bytes: Uint8Array): Promise<Rgba> {
  const { kind } = readImageHeader(bytes);
  if (kind === "png") {
    try {
      return await decodePng(bytes);
    } catch (err) {
      throw err instanceof PngError ? new ImageDecodeError(`the PNG cannot be decoded: ${err.message}`) : err;
    }
  }
  if (!jpegReady) {
    // libjpeg's messages go to the error, not to the process's stderr (they are not log lines).
    initJpeg({ print: () => {}, printErr: (line: string) => jpegMessages.push(line) });
    jpegReady = true;
  }
  jpegMessages = [];
  const buf = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  let img: ImageData;
  try {
    img = await decodeJpeg(buf);
  } catch (err) {
    // libjpeg ends a failed decode with exit(1) (an ExitStatus) after printing why; the module stays usable.
    const why = jpegMessages.join("; ") || (err instanceof Error ? err.message : String(err));
    throw new ImageDecodeError(`the JPEG cannot be decoded: ${why}`);
  }
  return { width: img.width, height: img.height, data: img.data as Uint8ClampedArray };
}

/** An 8x8 grey JPEG and PNG, decoded once at load so that the JPEG decoder's WASM is compiled before the first clip. */
const WARMUP_IMAGES = [
  "/9j/4AAQSkZJRgABAgAAAQABAAD//gAQTGF2YzU5LjM3LjEwMAD/2wBDAAgUFBcUFxsbGxsbGyAeICEhISAgICAhISEkJCQqKiokJCQhISQkKCgqKi4vLisrKisvLzIyMjw8OTlGRkhWVmf/xABKAAEAAAAAAAAAAAAAAAAAAAAAAQEAAAAAAAAAAAAAAAAAAAAAEAEAAAAAAAAAAAAAAAAAAAAAEQEAAAAAAAAAAAAAAAAAAAAA/8AAEQgACAAIAwEiAAIRAAMRAP/aAAwDAQACEQMRAD8AAA//2Q==",
  "iVBORw0KGgoAAAANSUhEUgAAAAgAAAAICAIAAABLbSncAAAACXBIWXMAAAABAAAAAQBPJcTWAAAAD0lEQVR4nGNowAEYhpYEAILzYAGc7g8kAAAAAElFTkSuQmCC",
];

/** How the model takes its input: TF's int32 NHWC (as published), or float32 NCHW (straight to the convolutions). */
type InputLayout = "nhwc-int32" | "nchw-float32";

/** A loaded pose model: one onnxruntime-web session, its input side and layout, and its reused input buffer. */
export class PoseModel {
  private readonly planes: Float32Array | null;

  private constructor(
    private readonly session: ort.InferenceSession,
    readonly side: number,
    private readonly layout: InputLayout,
  ) {
    this.planes = layout === "nchw-float32" ? new Float32Array(3 * side * side) : null;
  }

  /**
   * Load the pose model in this realm's runtime and warm it up (one run of the model and of both decoders, so the
   * first clip pays no set-up).
   *
   * @param bytes the ONNX model: int32 [1, S, S, 3] or float32 [1, 3, S, S] RGB 0..255 in, float32 [1, 1, 17, 3] out
   */
  static async load(bytes: Uint8Array): Promise<PoseModel> {
    configureRuntime(await readRuntimeBinary());
    const session = await ort.InferenceSession.create(bytes);
    const meta = session.inputMetadata[0];
    const shape = meta && "shape" in meta ? meta.shape : [];
    const nchw = shape[1] === 3;
    const side = Number((nchw ? shape[2] : shape[1]) ?? 192);
    const type = meta && "type" in meta ? meta.type : "int32";
    const model = new PoseModel(session, side, nchw && type === "float32" ? "nchw-float32" : "nhwc-int32");
    await model.run(new Int32Array(side * side * 3));
    for (const b64 of WARMUP_IMAGES) await decodeImage(Uint8Array.from(atob(b64), (c) => c.charCodeAt(0)));
    return model;
  }

  /**
   * Run the model on one S x S x 3 int32 RGB input (sequence/image.ts `cropToInput`, the TF.js reference's input).
   *
   * @returns 17 x [y, x, score], normalised to the crop
   */
  async run(input: Int32Array): Promise<Float32Array> {
    const s = this.side;
    let x: ort.Tensor;
    if (this.planes) {
      // HWC -> CHW once here, so the graph starts at its first convolution with no transpose or cast.
      const planes = this.planes;
      const n = s * s;
      for (let p = 0, i = 0; p < n; p++, i += 3) {
        planes[p] = input[i];
        planes[n + p] = input[i + 1];
        planes[2 * n + p] = input[i + 2];
      }
      x = new ort.Tensor("float32", planes, [1, 3, s, s]);
    } else {
      x = new ort.Tensor("int32", input, [1, s, s, 3]);
    }
    const out = await this.session.run({ [this.session.inputNames[0]]: x });
    return out[this.session.outputNames[0]].data as Float32Array;
  }

  /**
   * Decode a clip and follow one person through it.
   *
   * @param images the encoded frames, in order
   * @returns one pose per frame, and the time spent decoding and in the model
   */
  async clip(images: Uint8Array[]): Promise<ClipPose> {
    const frames: FramePose[] = [];
    let decodeMs = 0;
    let poseMs = 0;
    let width = 0;
    let height = 0;
    let crop = null as ReturnType<typeof fullCrop> | null;
    for (const [i, bytes] of images.entries()) {
      let t = performance.now();
      const img = await decodeImage(bytes).catch((err) => {
        throw err instanceof ImageDecodeError ? new ImageDecodeError(`image ${i}: ${err.message}`) : err;
      });
      decodeMs += performance.now() - t;
      if (img.width !== width || img.height !== height) crop = null;
      width = img.width;
      height = img.height;
      t = performance.now();
      const c = crop ?? fullCrop(width, height);
      let kp = toImageKeypoints(await this.run(cropToInput(img, c, this.side)), c);
      let score = meanScore(kp);
      if (crop !== null && score < 0.2) {
        // Lost the person inside the tracked crop: look at the whole frame again.
        const full = fullCrop(width, height);
        kp = toImageKeypoints(await this.run(cropToInput(img, full, this.side)), full);
        score = meanScore(kp);
      }
      poseMs += performance.now() - t;
      frames.push({ keypoints: kp, score });
      crop = nextCrop(kp, width, height);
    }
    return { frames, width, height, decodeMs, poseMs };
  }

  /** Release the session. */
  async release(): Promise<void> {
    await this.session.release();
  }
}

function meanScore(kp: number[][]): number {
  return kp.reduce((s, p) => s + p[2], 0) / kp.length;
}

export { readPoseModel } from "./pose_artefact.ts";
