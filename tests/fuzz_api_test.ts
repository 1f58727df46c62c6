/**
 * Property-based tests of the HTTP API (fast-check): random and adversarial bodies — wrong types, huge and empty
 * arrays, NaN and Infinity (as raw JSON tokens, as strings, as out-of-range numbers), deep nesting, wrong content
 * types, truncated bodies, unicode in ids — always get a 4xx with a `{ code, message }` JSON body, never a 5xx,
 * and a 200 exactly when the body is valid. Limits on body size, frames, points, channels and batch items hold.
 * Bounded: a few hundred runs per property, seeded, on the in-process app (tests/reliability_app.ts).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { LIMITS, SPEC, testApp } from "./reliability_app.ts";

const RUNS = { numRuns: 150, seed: 7, endOnFailure: true };
const { app } = testApp();

function post(path: string, body: string, type: string | null = "application/json") {
  const headers: Record<string, string> = {};
  if (type !== null) headers["content-type"] = type;
  return app.request(path, { method: "POST", headers, body });
}

/** Every answer is a 200, or a 4xx with a JSON `{ code, message }` and the security headers; never a 5xx. */
async function expectHandled(res: Response, context: string): Promise<{ status: number; code?: string }> {
  const text = await res.text();
  assert.ok(res.status < 500, `${res.status} for ${context.slice(0, 300)}: ${text.slice(0, 300)}`);
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
  if (res.status === 200) return { status: 200 };
  assert.ok(res.status >= 400, `${res.status} for ${context.slice(0, 200)}`);
  const json = JSON.parse(text);
  assert.equal(typeof json.code, "string");
  assert.equal(typeof json.message, "string");
  assert.deepEqual(Object.keys(json).sort(), ["code", "message"]);
  return { status: res.status, code: json.code };
}

/** The members a sequence may have (a classify body may also have `route`); any other is refused. */
const SEQUENCE_KEYS = ["id", "layout", "fps", "frames"];

/**
 * The API's rules for one sequence, written independently of the implementation: "ok", or the code it is refused
 * with (no usable point, i.e. every confidence 0, is NO_USABLE_INPUT; fewer frames than the model reads once resampled
 * in time to its rate is SEQUENCE_TOO_SHORT; a missing fps is the model's rate; any length is read as its last window).
 */
function sequenceOutcome(
  body: unknown,
  keys = SEQUENCE_KEYS,
): "ok" | "INVALID_INPUT" | "NO_USABLE_INPUT" | "SEQUENCE_TOO_SHORT" {
  if (!wellShaped(body, keys)) return "INVALID_INPUT";
  const b = body as { fps?: number; frames: number[][][] };
  if (!b.frames.some((f) => f.some((p) => p[SPEC.confidenceChannel!] > 0))) return "NO_USABLE_INPUT";
  const atModelRate = Math.round(((b.frames.length - 1) * SPEC.fps) / (b.fps ?? SPEC.fps)) + 1;
  return atModelRate >= (SPEC.minFrames ?? SPEC.windowFrames) ? "ok" : "SEQUENCE_TOO_SHORT";
}

function wellShaped(body: unknown, keys: string[]): boolean {
  if (body === null || typeof body !== "object" || Array.isArray(body)) return false;
  const b = body as Record<string, unknown>;
  if (Object.keys(b).some((k) => !keys.includes(k))) return false;
  if (b.id !== undefined && (typeof b.id !== "string" || b.id.length > 256)) return false;
  if (b.layout !== SPEC.layout) return false;
  if (b.fps !== undefined && (typeof b.fps !== "number" || !(b.fps > 0 && b.fps <= 10_000))) return false;
  const frames = b.frames;
  if (!Array.isArray(frames) || frames.length < 1 || frames.length > LIMITS.maxFrames) return false;
  return frames.every((f) =>
    Array.isArray(f) && f.length === SPEC.joints &&
    f.every((p) =>
      Array.isArray(p) && p.length === SPEC.channels &&
      p.every((v) => typeof v === "number" && Number.isFinite(v) && Math.abs(v) <= 3.4e38)
    )
  );
}

function classifyOutcome(body: unknown): ReturnType<typeof sequenceOutcome> {
  const outcome = sequenceOutcome(body, [...SEQUENCE_KEYS, "route"]);
  if (outcome === "INVALID_INPUT") return outcome;
  const route = (body as Record<string, unknown>).route;
  return route === undefined || route === "edge" || route === "cloud" ? outcome : "INVALID_INPUT";
}

function validClassify(body: unknown): boolean {
  return classifyOutcome(body) === "ok";
}

// --- arbitraries -----------------------------------------------------------------------------------------

const weirdNumber = fc.oneof(
  fc.double(),
  fc.constantFrom(0, -0, 1e-320, 3.4e38, 3.5e38, -3.5e38, Number.MAX_VALUE, 1e308),
  fc.integer(),
);
const weirdScalar = fc.oneof(
  weirdNumber,
  fc.constantFrom("NaN", "Infinity", "-Infinity", "1e400", "", "0x10", null, true, false),
  fc.string({ maxLength: 8 }),
);
const value = fc.oneof({ weight: 8, arbitrary: fc.double({ min: -10, max: 10, noNaN: true }) }, {
  weight: 1,
  arbitrary: weirdScalar,
});
const point = fc.oneof(
  { weight: 8, arbitrary: fc.array(value, { minLength: 3, maxLength: 3 }) },
  { weight: 1, arbitrary: fc.array(value, { maxLength: 5 }) },
  { weight: 1, arbitrary: weirdScalar },
);
const frame = fc.oneof(
  { weight: 8, arbitrary: fc.array(point, { minLength: 2, maxLength: 2 }) },
  { weight: 1, arbitrary: fc.array(point, { maxLength: 4 }) },
  { weight: 1, arbitrary: weirdScalar },
);
const frames = fc.oneof(
  { weight: 6, arbitrary: fc.array(frame, { minLength: 1, maxLength: 6 }) },
  { weight: 1, arbitrary: fc.array(frame, { maxLength: LIMITS.maxFrames + 4 }) },
  { weight: 1, arbitrary: fc.constant([]) },
  { weight: 1, arbitrary: weirdScalar },
);
const unicodeId = fc.oneof(
  fc.string({ unit: "grapheme", maxLength: 40 }),
  fc.string({ unit: "binary", maxLength: 300 }),
  fc.constantFrom("\u0000", "\ud800", "👍🏽‍", "id\u202e", "a".repeat(256), "a".repeat(257)),
);
const adversarial = fc.record({
  id: fc.option(fc.oneof({ weight: 5, arbitrary: unicodeId }, { weight: 1, arbitrary: weirdScalar }), {
    nil: undefined,
  }),
  layout: fc.oneof({ weight: 8, arbitrary: fc.constant("tiny") }, { weight: 1, arbitrary: weirdScalar }),
  fps: fc.oneof({ weight: 8, arbitrary: fc.constantFrom(10, 30, 0.5, 10_000) }, {
    weight: 2,
    arbitrary: weirdScalar,
  }),
  frames,
  route: fc.option(fc.constantFrom("edge", "cloud", "moon", 1), { nil: undefined }),
  extra: fc.option(fc.jsonValue({ maxDepth: 2 }), { nil: undefined }),
}, { requiredKeys: [] });
/** Well-formed sequences (answered unless nothing in them is usable or their rate needs too many frames). */
const wellFormed = fc.record({
  id: fc.option(unicodeId, { nil: undefined }),
  layout: fc.constant("tiny"),
  fps: fc.oneof(fc.constantFrom(SPEC.fps, 30, 60), fc.double({ min: 0.001, max: 10_000, noNaN: true })),
  frames: fc.array(
    fc.array(fc.array(fc.double({ min: -1e6, max: 1e6, noNaN: true }), { minLength: 3, maxLength: 3 }), {
      minLength: 2,
      maxLength: 2,
    }),
    { minLength: 1, maxLength: LIMITS.maxFrames },
  ),
  route: fc.option(fc.constantFrom("edge", "cloud"), { nil: undefined }),
}, { requiredKeys: ["layout", "fps", "frames"] });
const sequence = fc.oneof(wellFormed, adversarial);

// --- properties ------------------------------------------------------------------------------------------

Deno.test("fuzz: any JSON value as a classify body gets a 4xx with a code (never a 5xx)", async () => {
  await fc.assert(
    fc.asyncProperty(fc.jsonValue({ maxDepth: 4 }), async (body) => {
      const text = JSON.stringify(body) ?? "null";
      const r = await expectHandled(await post("/v1/classify", text), text);
      assert.equal(r.status === 200, validClassify(body), text);
    }),
    { ...RUNS, numRuns: 300 },
  );
});

Deno.test("fuzz: adversarial sequences are answered 200 exactly when valid, else 400 INVALID_INPUT or 422", async () => {
  const seen = { valid: 0, invalid: 0 };
  await fc.assert(
    fc.asyncProperty(sequence, async (body) => {
      const text = JSON.stringify(body);
      const r = await expectHandled(await post("/v1/classify", text), text);
      const outcome = classifyOutcome(JSON.parse(text));
      if (outcome === "ok") {
        seen.valid++;
        assert.equal(r.status, 200, text);
      } else {
        seen.invalid++;
        assert.ok([400, 413, 422].includes(r.status), `${r.status} for ${text.slice(0, 200)}`);
        if (r.status !== 413) assert.equal(r.code, outcome, text.slice(0, 200));
      }
    }),
    { ...RUNS, numRuns: 400 },
  );
  // Both sides of the property were exercised.
  assert.ok(seen.valid >= 20 && seen.invalid >= 20, JSON.stringify(seen));
});

Deno.test("fuzz: batches of adversarial items answer each item on its own, within the item limit", async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(sequence, { maxLength: LIMITS.maxBatchItems + 2 }), async (items) => {
      const text = JSON.stringify({ items });
      const res = await post("/v1/classify/batch", text);
      const r = await expectHandled(res.clone(), text);
      const parsed = JSON.parse(text).items as unknown[];
      if (parsed.length === 0 || parsed.length > LIMITS.maxBatchItems) {
        assert.equal(r.status, 400);
        return;
      }
      // The batch schema checks every item's types; an item that passes it is answered on its own.
      if (r.status !== 200) {
        assert.equal(r.code, "INVALID_INPUT");
        return;
      }
      const json = await res.json();
      assert.equal(json.results.length, parsed.length);
      json.results.forEach((item: { ok: boolean; code?: string }, i: number) => {
        const outcome = sequenceOutcome(parsed[i]);
        assert.equal(item.ok, outcome === "ok", JSON.stringify(parsed[i]).slice(0, 200));
        if (!item.ok) assert.equal(item.code, outcome);
      });
    }),
    RUNS,
  );
});

Deno.test("fuzz: raw NaN/Infinity tokens, truncated bodies and random text are 400 INVALID_INPUT", async () => {
  const valid = JSON.stringify({ layout: "tiny", fps: 10, frames: [[[0.1, 0.2, 0.9], [0.3, 0.4, 0.8]]] });
  const raw = fc.oneof(
    fc.constantFrom("NaN", "Infinity", "-Infinity", "1e400", "-1e400").map((tok) => valid.replace("0.2", tok)),
    fc.integer({ min: 0, max: valid.length - 1 }).map((cut) => valid.slice(0, cut)),
    fc.string({ unit: "binary", maxLength: 200 }),
  );
  await fc.assert(
    fc.asyncProperty(raw, async (text) => {
      const r = await expectHandled(await post("/v1/classify", text), text);
      let parsed: unknown = undefined;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON
      }
      if (!validClassify(parsed)) assert.equal(r.code, "INVALID_INPUT", text);
    }),
    RUNS,
  );
});

Deno.test("fuzz: deep nesting is refused without a crash", async () => {
  for (const depth of [10, 1_000, 20_000]) {
    const deep = "[".repeat(depth) + "]".repeat(depth);
    for (const text of [deep, `{"layout":"tiny","fps":10,"frames":${deep}}`]) {
      const r = await expectHandled(await post("/v1/classify", text), `depth ${depth}`);
      assert.ok(r.status === 400 || r.status === 413, `depth ${depth}: ${r.status}`);
    }
  }
});

Deno.test("fuzz: any content type but application/json is 415, and a missing one too", async () => {
  const body = JSON.stringify({ layout: "tiny", fps: 10, frames: [[[0, 0, 1], [0, 0, 1]]] });
  const types = fc.oneof(
    fc.constantFrom("text/plain", "application/x-www-form-urlencoded", "multipart/form-data", "application/jsonx"),
    fc.string({ maxLength: 30 }).filter((t) => !/^application\/json\b/i.test(t)),
  );
  await fc.assert(
    fc.asyncProperty(types, async (type) => {
      const r = await expectHandled(await post("/v1/classify", body, type), type);
      assert.equal(r.status, 415, `content type ${JSON.stringify(type)}`);
      assert.equal(r.code, "UNSUPPORTED_MEDIA_TYPE");
    }),
    RUNS,
  );
  const r = await expectHandled(await post("/v1/classify", body, null), "no content type");
  assert.ok(r.status === 415 || r.status === 400, String(r.status));
});

Deno.test("fuzz: limits hold: body size, frames, points and channels", async () => {
  const point = [0.1, 0.2, 0.9];
  const seq = (t: number, j = SPEC.joints, c = SPEC.channels) =>
    JSON.stringify({
      layout: "tiny",
      fps: 10,
      frames: Array.from({ length: t }, () =>
        Array.from({ length: j }, () => point.slice(0, c).concat(Array(Math.max(0, c - 3)).fill(0)))),
    });
  assert.equal((await post("/v1/classify", seq(LIMITS.maxFrames))).status, 200);
  assert.equal(
    (await expectHandled(await post("/v1/classify", seq(LIMITS.maxFrames + 1)), "frames")).code,
    "INVALID_INPUT",
  );
  assert.equal(
    (await expectHandled(await post("/v1/classify", seq(2, SPEC.joints + 1)), "points")).code,
    "INVALID_INPUT",
  );
  assert.equal(
    (await expectHandled(await post("/v1/classify", seq(2, SPEC.joints, 4)), "channels")).code,
    "INVALID_INPUT",
  );
  assert.equal(
    (await expectHandled(await post("/v1/classify", seq(2, SPEC.joints, 2)), "channels")).code,
    "INVALID_INPUT",
  );
  const huge = JSON.stringify({ layout: "tiny", fps: 10, frames: [[[0, 0, 1]]], pad: "x".repeat(LIMITS.maxBodyBytes) });
  const big = await expectHandled(await post("/v1/classify", huge), "huge body");
  assert.deepEqual([big.status, big.code], [413, "PAYLOAD_TOO_LARGE"]);
  // A huge array of frames: refused by size before it is parsed, or by the frame limit.
  const many = JSON.stringify({ layout: "tiny", fps: 10, frames: Array(20_000).fill([[0, 0, 1], [0, 0, 1]]) });
  const r = await expectHandled(await post("/v1/classify", many), "many frames");
  assert.ok(r.status === 413 || r.status === 400);
});

Deno.test("fuzz: decision ids in the path, unicode included, get 404 or 400, never a 5xx", async () => {
  await fc.assert(
    fc.asyncProperty(fc.string({ unit: "grapheme", minLength: 1, maxLength: 80 }), async (id) => {
      const res = await app.request(`/v1/decisions/${encodeURIComponent(id)}`);
      const r = await expectHandled(res, id);
      assert.ok(r.status === 404 || r.status === 400, `${r.status} for ${id}`);
    }),
    RUNS,
  );
});
