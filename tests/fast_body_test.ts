/**
 * The one-pass classify body (routes/fast_body.ts) against the general path it stands in for (routes/body_shape.ts,
 * JSON.parse, the schema, `flattenFrames`): what it accepts is what the general path accepts, value for value (bit
 * for bit in float32, -0 included), and every body it does not take is left to the general path (null), never
 * answered differently.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { readClassifyBody } from "../routes/fast_body.ts";
import { checkBodyShape } from "../routes/body_shape.ts";
import { ClassifyRequestSchema } from "../routes/schemas.ts";
import { flattenFrames } from "../sequence/preprocess.ts";

const COCO = { joints: 17, channels: 3, maxFrames: 200, confidenceChannel: 2 };
const IMU = { joints: 2, channels: 3, maxFrames: 50, confidenceChannel: null };

/** The general path: limits on the raw text, JSON.parse, the schema, flattenFrames. Throws where it refuses. */
function general(text: string, limits: typeof COCO | typeof IMU) {
  checkBodyShape(text, { maxBatchItems: 64, ...limits });
  const body = ClassifyRequestSchema.parse(JSON.parse(text));
  const flat = flattenFrames(body.frames, limits);
  const { frames: _, ...members } = body;
  return { members, ...flat };
}

/** The fast path and the schema on its members, as routes/classify.ts runs them; null where it gives up. */
function fast(text: string, limits: typeof COCO | typeof IMU) {
  const r = readClassifyBody(text, limits);
  if (!r) return null;
  const parsed = ClassifyRequestSchema.safeParse(r.members);
  if (!parsed.success) return null;
  const { frames: _, ...members } = parsed.data;
  return { members, data: r.data, length: r.length, usablePoints: r.usablePoints };
}

function sameFloats(a: Float32Array, b: Float32Array): boolean {
  return a.length === b.length && a.every((v, i) => Object.is(v, b[i]));
}

/** Whatever the fast path returns equals the general path's result; where the general path refuses, it gives up. */
function agrees(text: string, limits: typeof COCO | typeof IMU): "fast" | "general" | "refused" {
  const f = fast(text, limits);
  let g: ReturnType<typeof general> | null = null;
  try {
    g = general(text, limits);
  } catch {
    assert.equal(f, null, `the fast path took a body the general path refuses: ${text.slice(0, 200)}`);
    return "refused";
  }
  if (f === null) return "general";
  assert.deepEqual(f.members, g.members);
  assert.equal(f.length, g.length);
  assert.equal(f.usablePoints, g.usablePoints);
  assert.ok(sameFloats(f.data, g.data), `values differ: ${text.slice(0, 200)}`);
  return "fast";
}

/** Doubles as clients send them: plain, tiny, huge, negative zero, integers, many digits. */
const value = fc.oneof(
  fc.double({ min: -2, max: 2, noNaN: true }),
  fc.double({ min: -1e-30, max: 1e-30, noNaN: true }),
  fc.double({ min: -3e38, max: 3e38, noNaN: true }),
  fc.integer({ min: -100_000, max: 100_000 }),
  fc.constantFrom(0, -0, 1, 0.1, 0.5, 1e-7, 123456789012345, 1234567890123456789, 5e-324, 1.7976931348623157e308),
  fc.integer({ min: 0, max: 999 }).map((n) => n / 1000),
);

/** Ways to write a number that JSON allows (JSON.stringify's, exponent forms, trailing zeros). */
function spell(v: number, how: number): string {
  if (Object.is(v, -0)) return how % 2 ? "-0" : "-0.0";
  const s = JSON.stringify(v);
  switch (how) {
    case 1:
      return v.toExponential();
    case 2:
      return v.toExponential().replace("e+", "E");
    case 3:
      return /[.eE]/.test(s) ? s : `${s}.000`;
    case 4:
      return v.toPrecision(17);
    default:
      return s;
  }
}

function body(
  frames: number[][][],
  opts: { how: number; indent: number; order: number; id?: string; fps?: number; route?: string },
): string {
  const space = opts.indent > 0 ? " ".repeat(opts.indent) : "";
  const nl = opts.indent > 0 ? "\n" : "";
  const framesText = "[" + nl +
    frames.map((f) =>
      space + "[" + f.map((p) => "[" + p.map((v) => spell(v, opts.how)).join(", ") + "]").join(",") + "]"
    )
      .join("," + nl) +
    nl + "]";
  const parts = [
    ['"layout"', '"coco17"'],
    ...(opts.id !== undefined ? [['"id"', JSON.stringify(opts.id)]] : []),
    ...(opts.fps !== undefined ? [['"fps"', JSON.stringify(opts.fps)]] : []),
    ...(opts.route !== undefined ? [['"route"', JSON.stringify(opts.route)]] : []),
    ['"frames"', framesText],
  ];
  if (opts.order % 2) parts.reverse();
  return "{" + nl + parts.map(([k, v]) => `${space}${k}${opts.indent ? " : " : ":"}${v}`).join("," + nl) + nl + "}";
}

const framesOf = (joints: number, channels: number, maxFrames: number) =>
  fc.array(
    fc.array(fc.array(value, { minLength: channels, maxLength: channels }), {
      minLength: joints,
      maxLength: joints,
    }),
    { minLength: 1, maxLength: maxFrames },
  );

Deno.test("fast body: well-formed bodies are read exactly as the general path reads them", () => {
  fc.assert(
    fc.property(
      framesOf(17, 3, 12),
      fc.record({
        how: fc.integer({ min: 0, max: 4 }),
        indent: fc.integer({ min: 0, max: 2 }),
        order: fc.integer({ min: 0, max: 1 }),
        id: fc.option(fc.string({ maxLength: 20 }), { nil: undefined }),
        fps: fc.option(fc.constantFrom(1, 15, 29.97, 30, 60, 1e-3), { nil: undefined }),
        route: fc.option(fc.constantFrom("edge", "cloud"), { nil: undefined }),
      }),
      (frames, opts) => {
        const text = body(frames, opts);
        const outcome = agrees(text, COCO);
        // Strings without escapes, values in range: the fast path itself reads them.
        if (!/\\/.test(text) && frames.flat(2).every((v) => Math.abs(v) <= 3.4e38)) assert.equal(outcome, "fast");
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("fast body: a layout without a confidence channel counts usable points as flattenFrames does", () => {
  fc.assert(
    fc.property(framesOf(2, 3, 8), fc.integer({ min: 0, max: 4 }), (frames, how) => {
      const outcome = agrees(body(frames, { how, indent: 0, order: 0 }), IMU);
      assert.equal(outcome, frames.flat(2).every((v) => Math.abs(v) <= 3.4e38) ? "fast" : "refused");
    }),
    { numRuns: 200 },
  );
  // All zeros: no usable point, on both paths (the route then answers NO_USABLE_INPUT).
  const zeros = body([[[0, 0, 0], [-0, 0, 0]]], { how: 0, indent: 0, order: 0 });
  assert.equal(agrees(zeros, IMU), "fast");
  assert.equal(readClassifyBody(zeros, IMU)!.usablePoints, 0);
});

Deno.test("fast body: one character changed anywhere is read as the general path reads it, or left to it", () => {
  const frames = [[[0.5, 0.25, 1]], [[-0, 1e-7, 0.9]]].map((f) => Array.from({ length: 17 }, () => f[0]));
  const base = body(frames, { how: 0, indent: 1, order: 0, id: "cam-1", fps: 30 });
  const alphabet = ' 0123456789.-+eE,[]{}":\\nabtrfu\t\n';
  const outcomes = new Set<string>();
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: base.length - 1 }),
      fc.constantFrom("delete", "insert", "replace"),
      fc.integer({ min: 0, max: alphabet.length - 1 }),
      (at, op, k) => {
        const ch = alphabet[k];
        const text = op === "delete"
          ? base.slice(0, at) + base.slice(at + 1)
          : op === "insert"
          ? base.slice(0, at) + ch + base.slice(at)
          : base.slice(0, at) + ch + base.slice(at + 1);
        outcomes.add(agrees(text, COCO));
      },
    ),
    { numRuns: 2000 },
  );
  // The mutations reach both outcomes: read fast, and refused by both paths.
  assert.ok(outcomes.has("fast") && outcomes.has("refused"), [...outcomes].join(", "));
});

Deno.test("fast body: gives up on what the general path must name or decide", () => {
  const frame = JSON.stringify(Array.from({ length: 17 }, () => [0.5, 0.5, 1]));
  const ok = `{"layout":"coco17","frames":[${frame}]}`;
  assert.ok(readClassifyBody(ok, COCO));
  const cases: Record<string, string> = {
    "an escape in a string": `{"layout":"coco\\u0031""frames":[${frame}]}`.replace('""', '",'),
    "an unknown member": `{"layout":"coco17","extra":1,"frames":[${frame}]}`,
    "a repeated member": `{"layout":"coco17","layout":"coco17","frames":[${frame}]}`,
    "no frames member": `{"layout":"coco17"}`,
    "no frames": `{"layout":"coco17","frames":[]}`,
    "too many frames": `{"layout":"coco17","frames":[${Array(201).fill(frame).join(",")}]}`,
    "a frame of 16 points": `{"layout":"coco17","frames":[${JSON.stringify(Array(16).fill([0.5, 0.5, 1]))}]}`,
    "a point of 2 channels": `{"layout":"coco17","frames":[${frame.replace("[0.5,0.5,1]", "[0.5,1]")}]}`,
    "a string value": `{"layout":"coco17","frames":[${frame.replace("0.5", '"0.5"')}]}`,
    "null": `{"layout":"coco17","frames":[${frame.replace("0.5", "null")}]}`,
    "a leading zero": `{"layout":"coco17","frames":[${frame.replace("0.5", "00.5")}]}`,
    "a bare dot": `{"layout":"coco17","frames":[${frame.replace("0.5", ".5")}]}`,
    "a plus sign": `{"layout":"coco17","frames":[${frame.replace("0.5", "+0.5")}]}`,
    "past float32": `{"layout":"coco17","frames":[${frame.replace("0.5", "1e39")}]}`,
    "past a double": `{"layout":"coco17","frames":[${frame.replace("0.5", "1e400")}]}`,
    "trailing text": `${ok} x`,
    "a trailing comma": `{"layout":"coco17","frames":[${frame}],}`,
    "cut short": ok.slice(0, -2),
    "an array body": `[${ok}]`,
    "a number as the layout": `{"layout":17,"frames":[${frame}]}`,
  };
  for (const [what, text] of Object.entries(cases)) {
    assert.equal(readClassifyBody(text, COCO), null, what);
  }
  // An escape the general path reads: left to it, and answered by it.
  assert.equal(agrees(`{"id":"cam\\n1","layout":"coco17","frames":[${frame}]}`, COCO), "general");
  // Members the schema refuses are read, then refused by the schema, and go the general way.
  assert.equal(fast(`{"layout":"coco17","route":"gpu","frames":[${frame}]}`, COCO), null);
  assert.equal(fast(`{"layout":"coco17","fps":-1,"frames":[${frame}]}`, COCO), null);
});

Deno.test("fast body: the committed sample requests are read as the general path reads them", () => {
  for (const entry of Deno.readDirSync("wasm-models/samples")) {
    if (!entry.name.endsWith(".json")) continue;
    const text = Deno.readTextFileSync(`wasm-models/samples/${entry.name}`);
    assert.equal(agrees(text, COCO), "fast", entry.name);
    assert.equal(agrees(JSON.stringify(JSON.parse(text)), COCO), "fast", entry.name);
  }
});
