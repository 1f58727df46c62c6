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

interface Level {
  /** `[` or `{`. */
  kind: number;
  /** Members seen so far. */
  members: number;
  limit: number;
  /** What the message calls it. */
  name: string;
  /** Inside `frames`: 0 for the frames array, 1 for a frame, 2 for a point; -1 elsewhere. */
  framesDepth: number;
}

const OPEN_ARRAY = 0x5b, CLOSE_ARRAY = 0x5d, OPEN_OBJECT = 0x7b, CLOSE_OBJECT = 0x7d;
const QUOTE = 0x22, BACKSLASH = 0x5c, COMMA = 0x2c, COLON = 0x3a;

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09;
}

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
  const stack: Level[] = [];
  /** The last string read in key position of the innermost object. */
  let key = "";
  let expectKey = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      const start = i + 1;
      i++;
      while (i < text.length && text.charCodeAt(i) !== QUOTE) {
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
    if (isSpace(c) || c === COLON) continue;
    const top = stack[stack.length - 1];
    if (c === COMMA) {
      if (top) {
        top.members++;
        if (top.members > top.limit) tooMany(top);
        if (top.kind === OPEN_OBJECT) expectKey = true;
      }
      continue;
    }
    if (c === CLOSE_ARRAY || c === CLOSE_OBJECT) {
      stack.pop();
      expectKey = false;
      continue;
    }
    if (c === OPEN_ARRAY || c === OPEN_OBJECT) {
      if (stack.length >= MAX_DEPTH) {
        throw new AppError("INVALID_INPUT", `Cannot read request: JSON nested deeper than ${MAX_DEPTH} levels`);
      }
      const parentFrames = top?.framesDepth ?? -1;
      const [limit, name, framesDepth]: [number, string, number] = c === OPEN_OBJECT
        ? [MAX_MEMBERS, "an object", -1]
        : top?.kind === OPEN_OBJECT && key === "items"
        ? [limits.maxBatchItems, "items", -1]
        : top?.kind === OPEN_OBJECT && key === "frames"
        ? [limits.maxFrames, "frames", 0]
        : parentFrames === 0
        ? [Math.max(limits.joints, MAX_MEMBERS), "a frame (points)", 1]
        : parentFrames === 1
        ? [Math.max(limits.channels, MAX_MEMBERS), "a point (channels)", 2]
        : [MAX_MEMBERS, "an array", -1];
      const level: Level = { kind: c, members: 0, limit, name, framesDepth };
      // The first member counts at once (an empty container has none: corrected at the first non-space).
      stack.push(level);
      expectKey = c === OPEN_OBJECT;
      let j = i + 1;
      while (j < text.length && isSpace(text.charCodeAt(j))) j++;
      const next = text.charCodeAt(j);
      if (next !== CLOSE_ARRAY && next !== CLOSE_OBJECT) {
        level.members = 1;
        if (level.members > level.limit) tooMany(level);
      }
      continue;
    }
    // A number, true, false or null: skipped character by character.
  }
}

function tooMany(level: Level): never {
  const what = level.kind === OPEN_OBJECT ? "members" : "elements";
  const message = level.name === "items"
    ? `Cannot classify batch: expected at most ${level.limit} items, got more`
    : level.name === "frames"
    ? `Cannot read frames: expected at most ${level.limit} frames, got more`
    : `Cannot read request: ${level.name} has more than ${level.limit} ${what}`;
  throw new AppError("INVALID_INPUT", message);
}
