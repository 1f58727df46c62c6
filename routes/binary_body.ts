/**
 * The binary body of `POST /v1/classify`, for cameras and gateways that send many sequences: the frames as raw
 * little-endian float32 values (`content-type: application/octet-stream`), `T x J x C` in frame, point, channel
 * order, with the shape and the other fields in headers:
 *
 * | header | meaning |
 * |---|---|
 * | `x-frames` | T, the number of frames (1 to `MAX_FRAMES`) |
 * | `x-joints`, `x-channels` | J and C; must be the loaded model's |
 * | `x-layout` | the keypoint layout; must be the loaded model's |
 * | `x-fps` | frames per second (> 0); when missing, the edge model's rate |
 * | `x-route` | optional: `edge` or `cloud` to force the route |
 * | `x-sequence-id` | optional: the caller's id of the sequence (at most 256 characters) |
 *
 * Every limit is checked from the headers before the body is read (its size must be exactly T x J x C x 4 bytes),
 * and the values are read once, straight into the Float32Array the pool takes. The answer is the JSON answer of a
 * JSON request.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { MAX_ID_LENGTH } from "./schemas.ts";
import type { SequenceItem } from "../serve/classifier.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";

/** The media type of the binary body. */
export const BINARY_MEDIA_TYPE = "application/octet-stream";

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function invalid(message: string): AppError {
  return new AppError("INVALID_INPUT", `Cannot read binary request: ${message}`);
}

function intHeader(headers: Headers, name: string, min: number, max: number): number {
  const raw = headers.get(name);
  if (raw === null) throw invalid(`the ${name} header is required`);
  if (!/^\d{1,9}$/.test(raw.trim())) throw invalid(`${name} must be an integer, got "${raw.slice(0, 32)}"`);
  const n = Number(raw.trim());
  if (n < min || n > max) throw invalid(`${name} must be in [${min}, ${max}], got ${n}`);
  return n;
}

/** What the headers say, checked against the model and the limits: the sequence's shape and fields. */
export interface BinaryHeader {
  frames: number;
  layout: string;
  fps: number;
  route: "edge" | "cloud" | undefined;
  clientId: string | null;
  /** The exact body size, in bytes. */
  bytes: number;
}

/**
 * Read and check the headers of a binary request, before its body is read.
 *
 * @param headers the request headers
 * @param options the loaded edge model's spec and the most frames accepted
 * @returns the sequence's fields and the exact body size
 * @throws AppError INVALID_INPUT naming the header that does not fit
 */
export function readBinaryHeader(headers: Headers, options: { spec: ClassifierSpec; maxFrames: number }): BinaryHeader {
  const { spec, maxFrames } = options;
  const frames = intHeader(headers, "x-frames", 1, maxFrames);
  const joints = intHeader(headers, "x-joints", 1, 1_000_000);
  const channels = intHeader(headers, "x-channels", 1, 1_000_000);
  if (joints !== spec.joints || channels !== spec.channels) {
    throw invalid(
      `the loaded model takes ${spec.joints} points x ${spec.channels} channels, got ${joints} x ${channels}`,
    );
  }
  const layout = headers.get("x-layout");
  if (layout === null) throw invalid("the x-layout header is required");
  if (layout !== spec.layout) {
    throw invalid(`the loaded model was built for layout "${spec.layout}", got "${layout.slice(0, 64)}"`);
  }
  const rawFps = headers.get("x-fps");
  const fps = rawFps === null ? spec.fps : Number(rawFps);
  if (!(Number.isFinite(fps) && fps > 0 && fps <= 10_000)) throw invalid("x-fps must be a number in (0, 10000]");
  const rawRoute = headers.get("x-route");
  if (rawRoute !== null && rawRoute !== "edge" && rawRoute !== "cloud") {
    throw invalid(`x-route must be "edge" or "cloud", got "${rawRoute.slice(0, 32)}"`);
  }
  const clientId = headers.get("x-sequence-id");
  if (clientId !== null && (clientId.length === 0 || clientId.length > MAX_ID_LENGTH)) {
    throw invalid(`x-sequence-id must be 1 to ${MAX_ID_LENGTH} characters`);
  }
  const bytes = frames * joints * channels * 4;
  const length = headers.get("content-length");
  if (length !== null && Number(length) !== bytes) {
    throw invalid(`expected ${bytes} bytes (${frames} x ${joints} x ${channels} float32), content-length is ${length}`);
  }
  return { frames, layout, fps, route: rawRoute ?? undefined, clientId, bytes };
}

/**
 * The sequence of a binary request: the body's float32 values, checked to be finite, with the header's fields.
 *
 * @param header what {@link readBinaryHeader} returned
 * @param body the body's bytes
 * @returns the sequence ready for the classifier
 * @throws AppError INVALID_INPUT when the size differs from the header's shape or a value is not finite
 */
export function toBinarySequence(header: BinaryHeader, body: ArrayBuffer): SequenceItem {
  if (body.byteLength !== header.bytes) {
    throw invalid(
      `expected ${header.bytes} bytes from the x-frames, x-joints and x-channels headers, got ${body.byteLength}`,
    );
  }
  let data: Float32Array;
  if (LITTLE_ENDIAN) data = new Float32Array(body);
  else {
    const view = new DataView(body);
    data = new Float32Array(body.byteLength / 4);
    for (let i = 0; i < data.length; i++) data[i] = view.getFloat32(i * 4, true);
  }
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i])) throw invalid(`value ${i} is not finite`);
  }
  return { data, length: header.frames, fps: header.fps, layout: header.layout, clientId: header.clientId };
}
