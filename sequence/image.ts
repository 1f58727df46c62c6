/**
 * Pure image pre-processing for camera frames: the container and size read from the header (so limits are checked
 * before any decoding), the square crop a pose model sees (the whole frame padded to a square, or the region around
 * the previous frame's person, as MoveNet's own demo tracks), and bilinear resampling of that crop to the model's
 * int32 RGB input. Shared by the route (limits) and the workers (decode + pose).
 *
 * @module
 */

/** The image containers the service decodes. */
export type ImageKind = "jpeg" | "png";

/** What the header says, read without decoding. */
export interface ImageHeader {
  kind: ImageKind;
  width: number;
  height: number;
}

/** The reason an image is refused before decoding. */
export class ImageHeaderError extends Error {}

/**
 * Read the container and the pixel size from an image's header: PNG's IHDR, or JPEG's first start-of-frame marker.
 *
 * @param bytes the encoded image
 * @returns the kind and size
 * @throws ImageHeaderError when the bytes are neither a PNG nor a JPEG with a frame header
 */
export function readImageHeader(bytes: Uint8Array): ImageHeader {
  if (
    bytes.length >= 24 && bytes[0] === 0x89 && bytes[1] === 0x50 && bytes[2] === 0x4e && bytes[3] === 0x47 &&
    bytes[12] === 0x49 && bytes[13] === 0x48 && bytes[14] === 0x44 && bytes[15] === 0x52
  ) {
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    return { kind: "png", width: v.getUint32(16), height: v.getUint32(20) };
  }
  if (bytes.length >= 4 && bytes[0] === 0xff && bytes[1] === 0xd8) {
    let i = 2;
    while (i + 9 < bytes.length) {
      if (bytes[i] !== 0xff) throw new ImageHeaderError("JPEG: malformed marker segment");
      const marker = bytes[i + 1];
      if (marker === 0xff) {
        i++;
        continue;
      }
      const len = (bytes[i + 2] << 8) | bytes[i + 3];
      // SOF0..SOF15 except DHT (C4), JPG (C8) and DAC (CC) carry the frame size.
      if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) {
        return { kind: "jpeg", height: (bytes[i + 5] << 8) | bytes[i + 6], width: (bytes[i + 7] << 8) | bytes[i + 8] };
      }
      if (marker === 0xd9 || marker === 0xda) break;
      i += 2 + len;
    }
    throw new ImageHeaderError("JPEG: no frame header before the image data");
  }
  throw new ImageHeaderError("not a JPEG or PNG image");
}

/** A decoded frame: RGBA, row-major. */
export interface Rgba {
  width: number;
  height: number;
  data: Uint8Array | Uint8ClampedArray;
}

/** A square crop in image pixels (it may extend past the image; outside is black). */
export interface Crop {
  x: number;
  y: number;
  size: number;
}

/**
 * The whole frame padded to a square, centred.
 *
 * @param width the frame width
 * @param height the frame height
 * @returns the crop
 */
export function fullCrop(width: number, height: number): Crop {
  const size = Math.max(width, height);
  return { x: (width - size) / 2, y: (height - size) / 2, size };
}

/**
 * Resample a square crop of an RGBA frame to an S x S x 3 int32 RGB tensor (bilinear, pixel centres; black outside
 * the frame).
 *
 * @param img the frame
 * @param crop the square region
 * @param s the model's input side
 * @returns S*S*3 int32 values in 0..255
 */
export function cropToInput(img: Rgba, crop: Crop, s: number): Int32Array {
  const out = new Int32Array(s * s * 3);
  const scale = crop.size / s;
  const { width: w, height: h, data } = img;
  const px = (x: number, y: number, c: number) => x < 0 || y < 0 || x >= w || y >= h ? 0 : data[(y * w + x) * 4 + c];
  for (let oy = 0; oy < s; oy++) {
    const fy = crop.y + (oy + 0.5) * scale - 0.5;
    const y0 = Math.floor(fy);
    const dy = fy - y0;
    for (let ox = 0; ox < s; ox++) {
      const fx = crop.x + (ox + 0.5) * scale - 0.5;
      const x0 = Math.floor(fx);
      const dx = fx - x0;
      const o = (oy * s + ox) * 3;
      for (let c = 0; c < 3; c++) {
        const top = px(x0, y0, c) * (1 - dx) + px(x0 + 1, y0, c) * dx;
        const bottom = px(x0, y0 + 1, c) * (1 - dx) + px(x0 + 1, y0 + 1, c) * dx;
        out[o + c] = Math.round(top * (1 - dy) + bottom * dy);
      }
    }
  }
  return out;
}

/** Minimum keypoint score for a keypoint to count as seen (MoveNet's demo uses 0.2-0.3). */
export const KEYPOINT_SEEN = 0.3;

/**
 * The crop for the next frame from this frame's keypoints (image pixels, x y score per COCO-17 joint): a square
 * around the seen keypoints with a margin, as MoveNet's demo tracks one person; the whole frame when fewer than
 * 5 keypoints (or neither hip nor shoulder) are seen.
 *
 * @param kp 17 x [x, y, score] in image pixels
 * @param width the frame width
 * @param height the frame height
 * @returns the next crop
 */
export function nextCrop(kp: number[][], width: number, height: number): Crop {
  const seen = kp.filter((p) => p[2] >= KEYPOINT_SEEN);
  const torso = [5, 6, 11, 12].some((j) => kp[j][2] >= KEYPOINT_SEEN);
  if (seen.length < 5 || !torso) return fullCrop(width, height);
  const xs = seen.map((p) => p[0]);
  const ys = seen.map((p) => p[1]);
  const cx = (Math.min(...xs) + Math.max(...xs)) / 2;
  const cy = (Math.min(...ys) + Math.max(...ys)) / 2;
  const half = Math.max(Math.max(...xs) - Math.min(...xs), Math.max(...ys) - Math.min(...ys)) / 2;
  const full = fullCrop(width, height);
  const size = Math.min(full.size, Math.max(half * 2 * 1.4, 0.2 * full.size));
  return { x: cx - size / 2, y: cy - size / 2, size };
}

/**
 * Map the model's crop-normalised output (17 x [y, x, score]) to image pixels (17 x [x, y, score]).
 *
 * @param out the model's 51 values
 * @param crop the crop it saw
 * @returns 17 x [x, y, score]
 */
export function toImageKeypoints(out: ArrayLike<number>, crop: Crop): number[][] {
  const kp: number[][] = [];
  for (let j = 0; j < 17; j++) {
    kp.push([crop.x + out[j * 3 + 1] * crop.size, crop.y + out[j * 3] * crop.size, out[j * 3 + 2]]);
  }
  return kp;
}
