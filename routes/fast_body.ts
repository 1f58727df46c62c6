/**
 * The single-sequence classify body read in one pass, from the raw JSON text straight to the `Float32Array` the
 * model reads: no parse tree of thousands of small arrays and boxed numbers, no second walk to check the shape, no
 * third to flatten. Every limit is checked as the characters go by (frames at most `maxFrames`, each frame exactly
 * `joints` points of exactly `channels` finite numbers), so a body over a limit stops the pass where it goes over.
 *
 * It reads only the common, well-formed case: an object whose members are `id`, `layout`, `fps`, `route` and `frames`,
 * each at most once, strings without escapes, and frames of the model's exact shape. Anything else (an escape, an
 * unknown or repeated member, a wrong shape, a non-number, a value out of range, malformed JSON) returns `null`, and
 * the caller reads the body the general way (JSON.parse, the schema, routes/body_shape.ts, `flattenFrames`), which
 * names the problem in its error. So this pass never decides an error itself, and what it accepts is exactly what the
 * general path accepts, value for value: numbers are read as JSON.parse reads them (correctly rounded to a double,
 * then to float32 as the general path stores them).
 *
 * Pure: no I/O.
 *
 * @module
 */

/** The shape and limits the pass checks. */
export interface FastBodyLimits {
  joints: number;
  channels: number;
  maxFrames: number;
  /** The channel holding a point's confidence, if any (as in `flattenFrames`). */
  confidenceChannel: number | null;
}

/** A body read by {@link readClassifyBody}: the members as JSON.parse gives them, and the frames flattened. */
export interface FastBody {
  /** The members other than `frames`, for the schema's check (`frames` is an empty array there). */
  members: { id?: string; layout?: string; fps?: number; route?: string; frames: unknown[] };
  data: Float32Array;
  /** Frames read. */
  length: number;
  /** Points that are usable, as `flattenFrames` counts them. */
  usablePoints: number;
}

const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;
const OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d;
const MINUS = 0x2d, PLUS = 0x2b, DOT = 0x2e, ZERO = 0x30, NINE = 0x39, LOWER_E = 0x65, UPPER_E = 0x45;

/** Exact powers of ten as doubles (10^0 .. 10^22 are exact). */
const POW10 = Array.from({ length: 23 }, (_, i) => Number(`1e${i}`));
/** Largest magnitude a float32 holds (as `flattenFrames` bounds it). */
const FLOAT32_MAX = 3.4e38;

/**
 * The value of the last {@link scanNumber}. A double returned from a call, or kept in a variable of the module, is
 * boxed on the heap; one in a Float64Array is not (a 30 KB body is 4,000 numbers).
 */
const scanned = new Float64Array(1);

/** The position of the first character at or after `i` that is not JSON whitespace. */
function skipSpace(text: string, i: number): number {
  let c = text.charCodeAt(i);
  while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++i);
  return i;
}

/**
 * A JSON number at `i` (no whitespace before it), read as JSON.parse reads it: an exact integer mantissa of at most
 * 15 digits and an exact power of ten make one correctly rounded operation; otherwise the engine's own conversion of
 * the same characters. Sets {@link scanned}.
 *
 * @returns the position after the number, or -1 when it is not a JSON number
 */
function scanNumber(text: string, i: number): number {
  const start = i;
  let c = text.charCodeAt(i);
  const negative = c === MINUS;
  if (negative) c = text.charCodeAt(++i);
  if (!(c >= ZERO && c <= NINE)) return -1;
  let mantissa = 0;
  let digits = 0;
  let scale = 0;
  if (c === ZERO) {
    c = text.charCodeAt(++i);
    if (c >= ZERO && c <= NINE) return -1; // a leading zero: not JSON
  } else {
    while (c >= ZERO && c <= NINE) {
      mantissa = mantissa * 10 + (c - ZERO);
      digits++;
      c = text.charCodeAt(++i);
    }
  }
  if (c === DOT) {
    c = text.charCodeAt(++i);
    if (!(c >= ZERO && c <= NINE)) return -1;
    while (c >= ZERO && c <= NINE) {
      mantissa = mantissa * 10 + (c - ZERO);
      if (mantissa !== 0) digits++;
      scale--;
      c = text.charCodeAt(++i);
    }
  }
  if (c === LOWER_E || c === UPPER_E) {
    c = text.charCodeAt(++i);
    let expNegative = false;
    if (c === MINUS || c === PLUS) {
      expNegative = c === MINUS;
      c = text.charCodeAt(++i);
    }
    if (!(c >= ZERO && c <= NINE)) return -1;
    let exp = 0;
    while (c >= ZERO && c <= NINE) {
      if (exp < 100_000) exp = exp * 10 + (c - ZERO);
      c = text.charCodeAt(++i);
    }
    scale += expNegative ? -exp : exp;
  }
  if (digits <= 15 && scale >= -22 && scale <= 22) {
    const v = scale >= 0 ? mantissa * POW10[scale] : mantissa / POW10[-scale];
    scanned[0] = negative ? -v : v;
  } else {
    scanned[0] = Number(text.slice(start, i));
  }
  return i;
}

/**
 * A JSON string at `i` (no whitespace before it) without escapes or control characters.
 *
 * @returns the position of its closing quote, or -1
 */
function scanString(text: string, i: number): number {
  if (text.charCodeAt(i) !== QUOTE) return -1;
  for (i++;; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) return i;
    if (c === BACKSLASH || c < 0x20 || c !== c) return -1; // an escape, a control character, the end (NaN)
  }
}

/**
 * Read a `POST /v1/classify` JSON body in one pass, or give up.
 *
 * @param text the raw body
 * @param limits the edge model's shape and the most frames accepted
 * @returns the members and the flattened frames; `null` when the body is not the plain well-formed case (the
 *   caller then reads it the general way, which explains what is wrong)
 * @example
 * readClassifyBody('{"layout":"coco17","frames":[[[0.5,0.5,1]]]}', { joints: 1, channels: 3, maxFrames: 10,
 *   confidenceChannel: 2 }); // { members: { layout: "coco17", frames: [] }, data: Float32Array [0.5, 0.5, 1], ... }
 */
export function readClassifyBody(text: string, limits: FastBodyLimits): FastBody | null {
  const members: FastBody["members"] = { frames: [] };
  let frames: { data: Float32Array; length: number; usablePoints: number } | null = null;
  let seen = 0;
  let i = skipSpace(text, 0);
  if (text.charCodeAt(i) !== OPEN_OBJECT) return null;
  i = skipSpace(text, i + 1);
  for (;;) {
    const end = scanString(text, i);
    if (end < 0) return null;
    const key = text.slice(i + 1, end);
    i = skipSpace(text, end + 1);
    if (text.charCodeAt(i) !== COLON) return null;
    i = skipSpace(text, i + 1);
    const bit = key === "id"
      ? 1
      : key === "layout"
      ? 2
      : key === "fps"
      ? 4
      : key === "route"
      ? 8
      : key === "frames"
      ? 16
      : 0;
    if (bit === 0 || (seen & bit) !== 0) return null; // unknown or repeated: the general path decides
    seen |= bit;
    if (bit === 4) {
      i = scanNumber(text, i);
      if (i < 0) return null;
      members.fps = scanned[0];
    } else if (bit === 16) {
      frames = scanFrames(text, i, limits);
      if (frames === null) return null;
      i = framesEnd;
    } else {
      const close = scanString(text, i);
      if (close < 0) return null;
      const value = text.slice(i + 1, close);
      if (bit === 1) members.id = value;
      else if (bit === 2) members.layout = value;
      else members.route = value;
      i = close + 1;
    }
    i = skipSpace(text, i);
    const c = text.charCodeAt(i);
    i = skipSpace(text, i + 1);
    if (c === CLOSE_OBJECT) break;
    if (c !== COMMA) return null;
  }
  if (i !== text.length || frames === null) return null;
  return { members, ...frames };
}

/** The position after the frames of the last {@link scanFrames}. */
let framesEnd = 0;

/** The `frames` array at `i`, flattened while its shape and values are checked; `null` to give up. */
function scanFrames(
  text: string,
  i: number,
  limits: FastBodyLimits,
): { data: Float32Array; length: number; usablePoints: number } | null {
  const { joints, channels, maxFrames } = limits;
  const confidence = limits.confidenceChannel ?? -1;
  const pointSize = joints * channels;
  if (text.charCodeAt(i) !== OPEN_ARRAY) return null;
  i = skipSpace(text, i + 1);
  if (text.charCodeAt(i) === CLOSE_ARRAY) return null; // no frames: the general path names it
  // Grown as frames arrive (doubling, at most maxFrames); the copy at the end is the exact length.
  let buffer = new Float32Array(Math.min(maxFrames, 64) * pointSize);
  let o = 0;
  let length = 0;
  let usablePoints = 0;
  for (;;) {
    if (length === maxFrames) return null;
    if (o + pointSize > buffer.length) {
      const grown = new Float32Array(Math.min(maxFrames, (buffer.length / pointSize) * 2) * pointSize);
      grown.set(buffer);
      buffer = grown;
    }
    if (text.charCodeAt(i) !== OPEN_ARRAY) return null;
    for (let p = 0; p < joints; p++) {
      i = skipSpace(text, i + 1); // past "[" of the frame, or past ","
      if (text.charCodeAt(i) !== OPEN_ARRAY) return null;
      let any = false;
      let usable = false;
      for (let k = 0; k < channels; k++) {
        i = skipSpace(text, i + 1); // past "[" of the point, or past ","
        i = scanNumber(text, i);
        if (i < 0) return null;
        const v = scanned[0];
        if (!(v <= FLOAT32_MAX && v >= -FLOAT32_MAX)) return null;
        buffer[o++] = v;
        if (v !== 0) any = true;
        // The value as read, before float32 (as flattenFrames compares it).
        if (k === confidence) usable = v > 0;
        i = skipSpace(text, i);
        if (text.charCodeAt(i) !== (k === channels - 1 ? CLOSE_ARRAY : COMMA)) return null;
      }
      if (confidence >= 0 ? usable : any) usablePoints++;
      i = skipSpace(text, i + 1);
      if (text.charCodeAt(i) !== (p === joints - 1 ? CLOSE_ARRAY : COMMA)) return null;
    }
    length++;
    i = skipSpace(text, i + 1);
    const c = text.charCodeAt(i);
    i = skipSpace(text, i + 1);
    if (c === CLOSE_ARRAY) break;
    if (c !== COMMA) return null;
  }
  framesEnd = i;
  return { data: buffer.length === o ? buffer : buffer.slice(0, o), length, usablePoints };
}
