/**
 * A limit check on the raw JSON text of a classify request, before it is parsed: one pass over the characters
 * that stops at the first array longer than its limit, the first object with too many members, or nesting deeper
 * than a sequence needs. A body of a million `{}` items, or a million empty frames, is refused after reading a few
 * thousand characters, instead of being parsed and validated element by element on the HTTP thread.
 *
 * Limits by where the array is (the key it belongs to): `items` at most `maxBatchItems`; `frames` at most
 * `maxFrames`; a frame at most max(`joints`, {@link MAX_MEMBERS}) points; a point at most max(`channels`,
 * {@link MAX_MEMBERS}) numbers; other arrays and objects at most {@link MAX_MEMBERS} members. The exact shape is
 * checked afterwards by `flattenFrames`, which compares each array's length before it reads its elements, so that a
 * batch item of the wrong shape still gets its own error while the whole body stays bounded.
 *
 * Pure: no I/O.
 *
 * @module
 */
import { AppError } from "../errors.ts";

/** The limits of {@link checkBodyShape}. */
export interface BodyShapeLimits {
  maxBatchItems: number;
  maxFrames: number;
  joints: number;
  channels: number;
}

/** Most members of any other array or object (a sequence has 4 or 5 keys, a batch 2). */
export const MAX_MEMBERS = 16;

/** Deepest nesting: batch object > items > item > frames > frame > point. */
const MAX_DEPTH = 6;

/** What a level is, for its limit and its message. */
const ITEMS = 0, FRAMES = 1, FRAME = 2, POINT = 3, ARRAY = 4, OBJECT = 5;
const NAMES = ["items", "frames", "a frame (points)", "a point (channels)", "an array", "an object"];

const OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

/** 1 for the characters the scan acts on (quote, comma, brackets, braces); numbers and the rest are skipped fast. */
const ACTS = new Uint8Array(128);
for (const c of [QUOTE, COMMA, OPEN_ARRAY, CLOSE_ARRAY, OPEN_OBJECT, CLOSE_OBJECT]) ACTS[c] = 1;

/**
 * Check the raw body of a classify request against the limits; malformed JSON is left to the parser.
 *
 * @param text the request body
 * @param limits items, frames, points and channels
 * @throws AppError INVALID_INPUT naming the first limit exceeded
 * @example
 * checkBodyShape('{"items":[{},{}]}', { maxBatchItems: 1, maxFrames: 10, joints: 17, channels: 3 }); // throws
 */
export function checkBodyShape(text: string, limits: BodyShapeLimits): void {
  // The open containers, innermost last, in fixed arrays (a body opens hundreds of them: no object per level).
  const what = new Uint8Array(MAX_DEPTH);
  const members = new Int32Array(MAX_DEPTH);
  const limit = new Int32Array(MAX_DEPTH);
  const limitOf = [
    limits.maxBatchItems,
    limits.maxFrames,
    Math.max(limits.joints, MAX_MEMBERS),
    Math.max(limits.channels, MAX_MEMBERS),
    MAX_MEMBERS,
    MAX_MEMBERS,
  ];
  let depth = 0;
  /** The last string read in key position of the innermost object. */
  let key = "";
  let expectKey = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    // Digits, signs, spaces, colons, true/false/null: nothing to count.
    if (c >= 128 || ACTS[c] === 0) continue;
    if (c === QUOTE) {
      const start = i + 1;
      i++;
      while (i < n && text.charCodeAt(i) !== QUOTE) {
        if (text.charCodeAt(i) === BACKSLASH) i++;
        i++;
      }
      if (expectKey) {
        // Keys are short; a long one is not one of ours and is not worth slicing.
        key = i - start <= 16 ? text.slice(start, i) : "";
        expectKey = false;
      }
      continue;
    }
    const top = depth - 1;
    if (c === COMMA) {
      if (top >= 0) {
        if (++members[top] > limit[top]) tooMany(what[top], limit[top]);
        if (what[top] === OBJECT) expectKey = true;
      }
      continue;
    }
    if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      if (depth > 0) depth--;
      expectKey = false;
      continue;
    }
    // An opening bracket or brace.
    if (depth >= MAX_DEPTH) {
      throw new AppError("INVALID_INPUT", `Cannot read request: JSON nested deeper than ${MAX_DEPTH} levels`);
    }
    const parent = top >= 0 ? what[top] : -1;
    const kind = c === OPEN_OBJECT
      ? OBJECT
      : parent === OBJECT && key === "items"
      ? ITEMS
      : parent === OBJECT && key === "frames"
      ? FRAMES
      : parent === FRAMES
      ? FRAME
      : parent === FRAME
      ? POINT
      : ARRAY;
    what[depth] = kind;
    limit[depth] = limitOf[kind];
    // The first member counts at once (an empty container has none).
    let j = i + 1;
    while (j < n && isSpace(text.charCodeAt(j))) j++;
    const next = text.charCodeAt(j);
    members[depth] = next !== CLOSE_ARRAY && next !== CLOSE_OBJECT ? 1 : 0;
    if (members[depth] > limit[depth]) tooMany(kind, limit[depth]);
    depth++;
    expectKey = kind === OBJECT;
  }
}

function tooMany(kind: number, max: number): never {
  const message = kind === ITEMS
    ? `Cannot classify batch: expected at most ${max} items, got more`
    : kind === FRAMES
    ? `Cannot read frames: expected at most ${max} frames, got more`
    : `Cannot read request: ${NAMES[kind]} has more than ${max} ${kind === OBJECT ? "members" : "elements"}`;
  throw new AppError("INVALID_INPUT", message);
}
