/**
 * A PNG decoder in TypeScript: the chunks (every CRC checked), the zlib stream through the runtime's own
 * `DecompressionStream`, the five scanline filters, Adam7 interlacing, and every colour type and bit depth of the
 * standard, to 8-bit RGBA (16-bit samples keep their high byte; `tRNS` becomes alpha).
 *
 * It replaces a WASM decoder that leaked its linear memory on every image it refused (10,000 truncated PNGs
 * grew a process from 45 MiB to 1.1 GiB, still growing), so that a client sending broken images could exhaust the
 * pose workers' memory. Here a refused image costs nothing after the call, and the error says what is wrong:
 * truncated, a bad checksum, corrupt compressed data, more or less image data than the header's size, a bad filter.
 * The compressed data is never inflated past the size the header declares, so a small file cannot expand into a large
 * allocation.
 *
 * @module
 */
import type { Rgba } from "./image.ts";

/** Why a PNG cannot be decoded; the message says what is wrong with the data. */
export class PngError extends Error {}

/** The most pixels a PNG may declare (the caller's limits are usually tighter). */
export const MAX_PNG_PIXELS = 1 << 26;

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];

/** Bit depths each colour type allows (PNG 11.2.2). */
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
/** Samples per pixel of each colour type. */
const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7 passes: x start, y start, x step, y step. */
const ADAM7 = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

let crcTable: Uint32Array | null = null;

/** CRC-32 (ISO 3309) of `bytes[from, to)`. */
function crc32(bytes: Uint8Array, from: number, to: number): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = from; i < to; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

interface Header {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
}

/** The chunks a decoder needs: the header, the palette and transparency if any, and the compressed data. */
function readChunks(
  bytes: Uint8Array,
): { header: Header; palette: Uint8Array | null; trns: Uint8Array | null; idat: Uint8Array[] } {
  if (bytes.length < 8 || SIGNATURE.some((b, i) => bytes[i] !== b)) throw new PngError("not a PNG (no signature)");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let header: Header | null = null;
  let palette: Uint8Array | null = null;
  let trns: Uint8Array | null = null;
  const idat: Uint8Array[] = [];
  let at = 8;
  for (;;) {
    if (at + 12 > bytes.length) {
      throw new PngError(`truncated: the file ends at byte ${bytes.length}, inside a chunk's frame`);
    }
    const length = view.getUint32(at);
    const type = String.fromCharCode(bytes[at + 4], bytes[at + 5], bytes[at + 6], bytes[at + 7]);
    const end = at + 8 + length;
    if (length > 0x7fffffff || end + 4 > bytes.length) {
      throw new PngError(`truncated: the ${JSON.stringify(type)} chunk needs ${length} bytes, the file ends first`);
    }
    if (crc32(bytes, at + 4, end) !== view.getUint32(end)) {
      throw new PngError(`the ${JSON.stringify(type)} chunk's checksum does not match its data`);
    }
    const data = bytes.subarray(at + 8, end);
    at = end + 4;
    if (header === null && type !== "IHDR") throw new PngError(`the first chunk is ${JSON.stringify(type)}, not IHDR`);
    switch (type) {
      case "IHDR": {
        if (header !== null) throw new PngError("more than one IHDR chunk");
        if (length !== 13) throw new PngError(`the IHDR chunk has ${length} bytes, not 13`);
        const fields = new DataView(data.buffer, data.byteOffset, 13);
        header = {
          width: fields.getUint32(0),
          height: fields.getUint32(4),
          depth: data[8],
          colorType: data[9],
          interlaced: data[12] === 1,
        };
        const { width, height, depth, colorType } = header;
        if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) {
          throw new PngError(`bad size ${width}x${height}`);
        }
        if (width * height > MAX_PNG_PIXELS) throw new PngError(`${width}x${height} is over ${MAX_PNG_PIXELS} pixels`);
        if (!(colorType in DEPTHS)) throw new PngError(`unknown colour type ${colorType}`);
        if (!DEPTHS[colorType].includes(depth)) {
          throw new PngError(`colour type ${colorType} cannot have bit depth ${depth}`);
        }
        if (data[10] !== 0 || data[11] !== 0) throw new PngError("unknown compression or filter method");
        if (data[12] > 1) throw new PngError(`unknown interlace method ${data[12]}`);
        break;
      }
      case "PLTE":
        if (length % 3 !== 0 || length === 0 || length > 768) throw new PngError(`a palette of ${length} bytes`);
        palette = data;
        break;
      case "tRNS":
        trns = data;
        break;
      case "IDAT":
        idat.push(data);
        break;
      case "IEND":
        if (idat.length === 0) throw new PngError("no image data (IDAT) before IEND");
        if (header!.colorType === 3 && palette === null) {
          throw new PngError("an indexed-colour image without a palette");
        }
        return { header: header!, palette, trns, idat };
      default:
        // An unknown critical chunk (upper-case first letter) changes how the image reads: refused, as the standard asks.
        if (type.charCodeAt(0) < 0x61) throw new PngError(`unknown critical chunk ${JSON.stringify(type)}`);
    }
  }
}

/** Inflate the zlib stream to exactly `expected` bytes; never more (the rest is not read). */
async function inflate(idat: Uint8Array[], expected: number): Promise<Uint8Array> {
  const out = new Uint8Array(expected);
  let filled = 0;
  const stream = new Blob(idat as BlobPart[]).stream().pipeThrough(new DecompressionStream("deflate"));
  const reader = stream.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      if (filled + value.length > expected) throw new PngError(`more image data than its ${expected} bytes`);
      out.set(value, filled);
      filled += value.length;
    }
  } catch (err) {
    if (err instanceof PngError) throw err;
    // A stream that breaks off or fails its checksum after every pixel arrived still holds the whole image.
    if (filled < expected) {
      throw new PngError(`corrupt or truncated image data (${filled} of ${expected} bytes inflated)`);
    }
  } finally {
    reader.cancel().catch(() => {});
  }
  if (filled < expected) throw new PngError(`truncated image data: ${filled} of ${expected} bytes`);
  return out;
}

/** Bytes of one scanline (without its filter byte) of a `width`-pixel row. */
function stride(h: Header, width: number): number {
  return Math.ceil((width * h.depth * SAMPLES[h.colorType]) / 8);
}

/** The (x start, y start, x step, y step, width, height) of each pass that holds pixels. */
function passes(h: Header): number[][] {
  if (!h.interlaced) return [[0, 0, 1, 1, h.width, h.height]];
  return ADAM7.map(([x0, y0, dx, dy]) => [
    x0,
    y0,
    dx,
    dy,
    Math.ceil((h.width - x0) / dx),
    Math.ceil((h.height - y0) / dy),
  ]).filter(([, , , , w, ht]) => w > 0 && ht > 0);
}

/** Undo one scanline's filter in place (`prev` is the unfiltered line above, zeros for the first). */
function unfilter(type: number, line: Uint8Array, prev: Uint8Array, bpp: number, row: number): void {
  const n = line.length;
  switch (type) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) line[i] = (line[i] + line[i - bpp]) & 0xff;
      return;
    case 2:
      for (let i = 0; i < n; i++) line[i] = (line[i] + prev[i]) & 0xff;
      return;
    case 3:
      for (let i = 0; i < bpp; i++) line[i] = (line[i] + (prev[i] >> 1)) & 0xff;
      for (let i = bpp; i < n; i++) line[i] = (line[i] + ((line[i - bpp] + prev[i]) >> 1)) & 0xff;
      return;
    case 4:
      for (let i = 0; i < bpp; i++) line[i] = (line[i] + prev[i]) & 0xff;
      for (let i = bpp; i < n; i++) {
        const a = line[i - bpp];
        const b = prev[i];
        const c = prev[i - bpp];
        // |p - a|, |p - b|, |p - c| for p = a + b - c, without calls.
        let pa = b - c;
        let pb = a - c;
        let pc = pa + pb;
        if (pa < 0) pa = -pa;
        if (pb < 0) pb = -pb;
        if (pc < 0) pc = -pc;
        // Branch-free choice (the pick is data-dependent, so branches mispredict): a, else b, else c.
        const ma = ~((pb - pa) >> 31) & ~((pc - pa) >> 31);
        const mb = ~ma & ~((pc - pb) >> 31);
        line[i] = (line[i] + ((a & ma) | (b & mb) | (c & ~(ma | mb)))) & 0xff;
      }
      return;
    default:
      throw new PngError(`unknown filter type ${type} on scanline ${row}`);
  }
}

/**
 * Decode a PNG to 8-bit RGBA.
 *
 * @param bytes the file
 * @returns its pixels, row by row
 * @throws PngError when the file is not a PNG, is truncated, fails a checksum, or holds corrupt or mis-sized data
 */
export async function decodePng(bytes: Uint8Array): Promise<Rgba> {
  const { header: h, palette, trns, idat } = readChunks(bytes);
  const layout = passes(h);
  const expected = layout.reduce((s, [, , , , w, ht]) => s + ht * (1 + stride(h, w)), 0);
  const raw = await inflate(idat, expected);
  const { width, depth, colorType } = h;
  const out = new Uint8ClampedArray(width * h.height * 4);
  // The pixels as 32-bit words where the platform stores RGBA little-endian in them (else the byte paths serve).
  const words = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1 ? new Uint32Array(out.buffer) : null;
  const samples = SAMPLES[colorType];
  const bpp = Math.max(1, (depth * samples) >> 3);
  // Palette and transparency, as RGBA (a palette entry without tRNS is opaque).
  let lut: Uint8Array | null = null;
  if (colorType === 3) {
    // An index past the palette reads as opaque black, as common decoders read it.
    lut = new Uint8Array(256 * 4);
    for (let i = 0; i < 256; i++) lut[i * 4 + 3] = 255;
    for (let i = 0; i < palette!.length / 3; i++) {
      lut.set(palette!.subarray(i * 3, i * 3 + 3), i * 4);
      lut[i * 4 + 3] = trns && i < trns.length ? trns[i] : 255;
    }
  }
  // The colour that tRNS makes transparent in grey and RGB images (in the image's own sample depth).
  const key = trns && (colorType === 0 || colorType === 2) && trns.length >= (colorType === 0 ? 2 : 6)
    ? Array.from({ length: colorType === 0 ? 1 : 3 }, (_, i) => (trns[i * 2] << 8) | trns[i * 2 + 1])
    : null;
  const scale = depth < 8 ? 255 / ((1 << depth) - 1) : 1;
  let offset = 0;
  let row = 0;
  for (const [x0, y0, dx, dy, pw, ph] of layout) {
    const n = stride(h, pw);
    let prev: Uint8Array = new Uint8Array(n);
    for (let y = 0; y < ph; y++, row++) {
      const type = raw[offset];
      const line = raw.subarray(offset + 1, offset + 1 + n);
      offset += 1 + n;
      unfilter(type, line, prev, bpp, row);
      prev = line;
      let o = ((y0 + y * dy) * width + x0) * 4;
      const step = dx * 4;
      if (depth === 8 && !key) {
        // The common cases, read straight from the line.
        if (colorType === 6) {
          if (dx === 1) out.set(line, o);
          else for (let i = 0; i < n; i += 4, o += step) out.set(line.subarray(i, i + 4), o);
          continue;
        }
        if (colorType === 2) {
          for (let i = 0; i < n; i += 3, o += step) {
            out[o] = line[i];
            out[o + 1] = line[i + 1];
            out[o + 2] = line[i + 2];
            out[o + 3] = 255;
          }
          continue;
        }
        if (colorType === 0 && words) {
          // One 32-bit store a pixel: grey in R, G and B, opaque.
          for (let i = 0, w = o >> 2, dw = step >> 2; i < n; i++, w += dw) words[w] = 0xff000000 | (line[i] * 0x010101);
          continue;
        }
        if (colorType === 4) {
          for (let i = 0; i < n; i += 2, o += step) {
            out[o] = out[o + 1] = out[o + 2] = line[i];
            out[o + 3] = line[i + 1];
          }
          continue;
        }
        if (colorType === 3) {
          for (let i = 0; i < n; i++, o += step) {
            const e = line[i] * 4;
            out[o] = lut![e];
            out[o + 1] = lut![e + 1];
            out[o + 2] = lut![e + 2];
            out[o + 3] = lut![e + 3];
          }
          continue;
        }
      }
      for (let x = 0; x < pw; x++, o += step) {
        // Each sample at the image's depth; 16-bit ones keep the value for the tRNS key and their high byte for output.
        const sample = (k: number): number => {
          const s = x * samples + k;
          if (depth === 16) return (line[s * 2] << 8) | line[s * 2 + 1];
          if (depth === 8) return line[s];
          const bit = s * depth;
          return (line[bit >> 3] >> (8 - depth - (bit & 7))) & ((1 << depth) - 1);
        };
        const to8 = (v: number) => depth === 16 ? v >> 8 : depth < 8 ? Math.round(v * scale) : v;
        switch (colorType) {
          case 0: {
            const g = sample(0);
            out[o] = out[o + 1] = out[o + 2] = to8(g);
            out[o + 3] = key && g === key[0] ? 0 : 255;
            break;
          }
          case 2: {
            const r = sample(0);
            const g = sample(1);
            const b = sample(2);
            out[o] = to8(r);
            out[o + 1] = to8(g);
            out[o + 2] = to8(b);
            out[o + 3] = key && r === key[0] && g === key[1] && b === key[2] ? 0 : 255;
            break;
          }
          case 3: {
            const i = sample(0) * 4;
            out[o] = lut![i];
            out[o + 1] = lut![i + 1];
            out[o + 2] = lut![i + 2];
            out[o + 3] = lut![i + 3];
            break;
          }
          case 4:
            out[o] = out[o + 1] = out[o + 2] = to8(sample(0));
            out[o + 3] = to8(sample(1));
            break;
          case 6:
            out[o] = to8(sample(0));
            out[o + 1] = to8(sample(1));
            out[o + 2] = to8(sample(2));
            out[o + 3] = to8(sample(3));
            break;
        }
      }
    }
  }
  return { width, height: h.height, data: out };
}
