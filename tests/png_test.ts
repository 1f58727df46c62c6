/**
 * The PNG decoder (sequence/png.ts): every colour type, bit depth, filter and interlacing decodes to the pixels it
 * was made from and to what the WASM reference decoder (`@jsquash/png`) gives; real photographs match it byte for
 * byte; every kind of broken file is refused with a message that says what is wrong, and never inflates past the
 * declared size.
 */
import assert from "node:assert/strict";
import referenceDecode from "@jsquash/png/decode.js";
import { decodePng, PngError } from "../sequence/png.ts";

const DATA = new URL("../build/testdata/opencv/", import.meta.url);
const haveImages = (() => {
  try {
    Deno.statSync(new URL("basketball1.png", DATA));
    return true;
  } catch {
    return false;
  }
})();

const SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function crc32(bytes: Uint8Array): number {
  let c = 0xffffffff;
  for (const b of bytes) {
    c ^= b;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  }
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Uint8Array, badCrc = false): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, data.length);
  out.set(new TextEncoder().encode(type), 4);
  out.set(data, 8);
  view.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)) ^ (badCrc ? 1 : 0));
  return out;
}

async function deflate(raw: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([raw as BlobPart]).stream().pipeThrough(new CompressionStream("deflate"));
  return new Uint8Array(await new Response(s).arrayBuffer());
}

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
};

interface Spec {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
  /** Sample values, row-major, SAMPLES[colorType] per pixel, each < 2^depth. */
  samples: Uint16Array;
  palette?: Uint8Array;
  trns?: Uint8Array;
}

/** The scanlines of a (sub)image, each filtered with filter type (row + shift) % 5. */
function scanlines(spec: Spec, xs: number[], ys: number[], shift: number): Uint8Array {
  const n = SAMPLES[spec.colorType];
  const stride = Math.ceil((xs.length * n * spec.depth) / 8);
  const bpp = Math.max(1, (n * spec.depth) >> 3);
  const out = new Uint8Array(ys.length * (1 + stride));
  let prev = new Uint8Array(stride);
  ys.forEach((y, r) => {
    const line = new Uint8Array(stride);
    xs.forEach((x, i) => {
      for (let k = 0; k < n; k++) {
        const v = spec.samples[(y * spec.width + x) * n + k];
        const s = i * n + k;
        if (spec.depth === 16) {
          line[s * 2] = v >> 8;
          line[s * 2 + 1] = v & 0xff;
        } else if (spec.depth === 8) line[s] = v;
        else {
          const bit = s * spec.depth;
          line[bit >> 3] |= v << (8 - spec.depth - (bit & 7));
        }
      }
    });
    const type = (r + shift) % 5;
    const f = new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? line[i - bpp] : 0;
      const b = prev[i];
      const c = i >= bpp ? prev[i - bpp] : 0;
      const p = a + b - c;
      const pred = [
        0,
        a,
        b,
        (a + b) >> 1,
        Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c)
          ? a
          : Math.abs(p - b) <= Math.abs(p - c)
          ? b
          : c,
      ][type];
      f[i] = (line[i] - pred) & 0xff;
    }
    out[r * (1 + stride)] = type;
    out.set(f, r * (1 + stride) + 1);
    prev = line;
  });
  return out;
}

const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
const range = (from: number, to: number, step: number) =>
  Array.from({ length: Math.max(0, Math.ceil((to - from) / step)) }, (_, i) => from + i * step);

/** The raw (inflated) image data of a spec. */
function imageData(spec: Spec): Uint8Array {
  if (!spec.interlaced) return scanlines(spec, range(0, spec.width, 1), range(0, spec.height, 1), 0);
  return concat(ADAM7.map(([x0, y0, dx, dy], p) => {
    const xs = range(x0, spec.width, dx);
    const ys = range(y0, spec.height, dy);
    return xs.length && ys.length ? scanlines(spec, xs, ys, p) : new Uint8Array(0);
  }));
}

async function encode(spec: Spec, idat?: Uint8Array): Promise<Uint8Array> {
  const ihdr = new Uint8Array(13);
  const v = new DataView(ihdr.buffer);
  v.setUint32(0, spec.width);
  v.setUint32(4, spec.height);
  ihdr.set([spec.depth, spec.colorType, 0, 0, spec.interlaced ? 1 : 0], 8);
  const z = idat ?? await deflate(imageData(spec));
  // The compressed data split over two IDAT chunks, as encoders do.
  const half = z.length >> 1;
  return concat([
    new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk("IHDR", ihdr),
    ...(spec.palette ? [chunk("PLTE", spec.palette)] : []),
    ...(spec.trns ? [chunk("tRNS", spec.trns)] : []),
    chunk("tEXt", new TextEncoder().encode("Comment\0ancillary chunks are skipped")),
    chunk("IDAT", z.subarray(0, half)),
    chunk("IDAT", z.subarray(half)),
    chunk("IEND", new Uint8Array(0)),
  ]);
}

/** What the spec's pixels are as 8-bit RGBA, computed from the samples directly. */
function expectedRgba(spec: Spec): Uint8Array {
  const n = SAMPLES[spec.colorType];
  const max = (1 << spec.depth) - 1;
  const to8 = (s: number) => spec.depth === 16 ? s >> 8 : Math.round((s * 255) / max);
  const out = new Uint8Array(spec.width * spec.height * 4);
  const key = spec.trns && spec.colorType !== 3
    ? Array.from({ length: spec.trns.length / 2 }, (_, i) => (spec.trns![i * 2] << 8) | spec.trns![i * 2 + 1])
    : null;
  for (let p = 0; p < spec.width * spec.height; p++) {
    const s = Array.from(spec.samples.subarray(p * n, p * n + n));
    let px: number[];
    if (spec.colorType === 3) {
      const i = s[0];
      px = [...spec.palette!.subarray(i * 3, i * 3 + 3), spec.trns && i < spec.trns.length ? spec.trns[i] : 255];
    } else if (spec.colorType === 0) px = [to8(s[0]), to8(s[0]), to8(s[0]), key && s[0] === key[0] ? 0 : 255];
    else if (spec.colorType === 4) px = [to8(s[0]), to8(s[0]), to8(s[0]), to8(s[1])];
    else if (spec.colorType === 2) {
      px = [...s.map(to8), key && s.every((v, k) => v === key[k]) ? 0 : 255];
    } else px = s.map(to8);
    out.set(px, p * 4);
  }
  return out;
}

/** A seeded spec: random samples, with runs so that the filters have something to predict. */
function makeSpec(colorType: number, depth: number, interlaced: boolean, seed: number, w = 13, h = 11): Spec {
  let x = seed;
  const rnd = () => ((x = (x * 1103515245 + 12345) & 0x7fffffff) / 0x80000000);
  const n = SAMPLES[colorType];
  const max = colorType === 3 ? Math.min((1 << depth) - 1, 9) : (1 << depth) - 1;
  const samples = new Uint16Array(w * h * n);
  for (let i = 0; i < samples.length; i++) {
    samples[i] = rnd() < 0.3 && i >= n ? samples[i - n] : Math.floor(rnd() * (max + 1));
  }
  const spec: Spec = { width: w, height: h, depth, colorType, interlaced, samples };
  if (colorType === 3) {
    spec.palette = Uint8Array.from({ length: 30 }, () => Math.floor(rnd() * 256));
    spec.trns = Uint8Array.from([0, 128, 255, 7]);
  }
  if (colorType === 0) spec.trns = Uint8Array.from([samples[0] >> 8, samples[0] & 0xff]);
  if (colorType === 2) spec.trns = Uint8Array.from([...samples.subarray(0, 3)].flatMap((v) => [v >> 8, v & 0xff]));
  return spec;
}

const CASES: [number, number][] = [
  [0, 1],
  [0, 2],
  [0, 4],
  [0, 8],
  [0, 16],
  [2, 8],
  [2, 16],
  [3, 1],
  [3, 2],
  [3, 4],
  [3, 8],
  [4, 8],
  [4, 16],
  [6, 8],
  [6, 16],
];

Deno.test("png: every colour type, bit depth, filter and interlacing decodes to its pixels and to the reference decoder's", async () => {
  let checked = 0;
  for (const [colorType, depth] of CASES) {
    for (const interlaced of [false, true]) {
      for (const [w, h] of [[13, 11], [1, 1], [9, 3], [40, 17]]) {
        const spec = makeSpec(colorType, depth, interlaced, colorType * 100 + depth + w, w, h);
        const file = await encode(spec);
        const img = await decodePng(file);
        const label = `colour type ${colorType}, depth ${depth}, ${interlaced ? "interlaced" : "plain"}, ${w}x${h}`;
        assert.deepEqual([img.width, img.height], [w, h], label);
        assert.deepEqual(new Uint8Array(img.data.buffer), expectedRgba(spec), label);
        const ref = await referenceDecode(file.slice().buffer);
        assert.deepEqual(new Uint8Array(img.data.buffer), new Uint8Array(ref.data.buffer), `${label}: the reference`);
        checked++;
      }
    }
  }
  assert.equal(checked, CASES.length * 2 * 4);
});

Deno.test({
  name: "png: real photographs decode byte for byte as the reference decoder decodes them",
  ignore: !haveImages,
  fn: async () => {
    for (const f of ["basketball1.png", "basketball2.png"]) {
      const bytes = await Deno.readFile(new URL(f, DATA));
      const img = await decodePng(bytes);
      const ref = await referenceDecode(bytes.slice().buffer);
      assert.deepEqual([img.width, img.height], [ref.width, ref.height], f);
      assert.ok(new Uint8Array(img.data.buffer).every((v, i) => v === ref.data[i]), f);
    }
  },
});

Deno.test("png: broken files are refused with what is wrong, and never inflate past the declared size", async () => {
  const spec = makeSpec(6, 8, false, 7, 32, 24);
  const good = await encode(spec);
  const refused = async (bytes: Uint8Array, pattern: RegExp) => {
    const err = await decodePng(bytes).then(() => null, (e) => e);
    assert.ok(err instanceof PngError, `expected a PngError matching ${pattern}, got ${err}`);
    assert.match(err.message, pattern);
  };
  await refused(new TextEncoder().encode("GIF89a"), /not a PNG/);
  // Cut anywhere: a PngError that says it is truncated, never anything else.
  for (let cut = 8; cut < good.length; cut += 7) await refused(good.subarray(0, cut), /truncated/);
  // A flipped byte inside a chunk: its checksum says so.
  for (const at of [20, 60, good.length - 30]) {
    const bad = good.slice();
    bad[at] ^= 0x10;
    await refused(bad, /checksum/);
  }
  // Valid checksums around bad contents.
  const raw = imageData(spec);
  const badFilter = raw.slice();
  badFilter[(1 + 32 * 4) * 3] = 9;
  await refused(await encode(spec, await deflate(badFilter)), /unknown filter type 9 on scanline 3/);
  await refused(await encode(spec, await deflate(raw.subarray(0, raw.length - 50))), /truncated image data/);
  // A small file whose data inflates far past the size its header gives is stopped at that size.
  const bomb = await deflate(new Uint8Array(64 << 20));
  assert.ok(bomb.length < 100_000);
  await refused(await encode(spec, bomb), /more image data than its 3096 bytes/);
  const garbage = Uint8Array.from({ length: 500 }, (_, i) => (i * 97 + 13) & 0xff);
  await refused(await encode(spec, garbage), /corrupt or truncated image data/);
  // Header faults (the data is the good image's: the header is refused first).
  const z = await deflate(raw);
  await refused(await encode({ ...spec, depth: 4 }, z), /colour type 6 cannot have bit depth 4/);
  await refused(await encode({ ...spec, colorType: 5 }, z), /unknown colour type 5/);
  await refused(await encode({ ...spec, width: 0 }, z), /bad size 0x24/);
  await refused(await encode({ ...spec, width: 100_000, height: 100_000 }, z), /over \d+ pixels/);
  await refused(await encode({ ...makeSpec(3, 8, false, 1), palette: undefined }), /without a palette/);
  // An unknown critical chunk changes how the image reads: refused; an unknown ancillary one is skipped.
  const iend = good.length - 12;
  const withChunk = (type: string) =>
    concat([good.subarray(0, iend), chunk(type, new Uint8Array(3)), good.subarray(iend)]);
  await refused(withChunk("ZZZZ"), /unknown critical chunk "ZZZZ"/);
  assert.equal((await decodePng(withChunk("zzZZ"))).width, 32);
  await refused(
    concat([good.subarray(0, 8), chunk("IDAT", new Uint8Array(1)), good.subarray(8)]),
    /first chunk is "IDAT"/,
  );
});
