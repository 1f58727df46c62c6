/**
 * The binary body of `POST /v1/classify` (routes/binary_body.ts): the shape and fields read from headers and checked
 * against the loaded model and the limits before the body is read, the float32 values read once, and every bad input
 * refused with INVALID_INPUT naming what is wrong.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { readBinaryHeader, toBinarySequence } from "../routes/binary_body.ts";
import { SPEC } from "./fixtures/fake_models.ts";

const LIMITS = { spec: SPEC, maxFrames: 16 };

function headers(overrides: Record<string, string | null> = {}): Headers {
  const base: Record<string, string | null> = {
    "x-frames": "3",
    "x-joints": String(SPEC.joints),
    "x-channels": String(SPEC.channels),
    "x-layout": SPEC.layout,
    "x-fps": "30",
    ...overrides,
  };
  const h = new Headers();
  for (const [k, v] of Object.entries(base)) if (v !== null) h.set(k, v);
  return h;
}

function floats(n: number): ArrayBuffer {
  return Float32Array.from({ length: n }, (_, i) => i / 10).buffer;
}

function invalid(message: string) {
  return (e: unknown) => e instanceof AppError && e.code === "INVALID_INPUT" && e.message === message;
}

Deno.test("binary body: the headers and float32 values make the same sequence a JSON body would", () => {
  const n = 3 * SPEC.joints * SPEC.channels;
  const header = readBinaryHeader(
    headers({ "x-route": "edge", "x-sequence-id": "cam-7", "content-length": `${n * 4}` }),
    LIMITS,
  );
  assert.deepEqual(header, { frames: 3, layout: SPEC.layout, fps: 30, route: "edge", clientId: "cam-7", bytes: n * 4 });
  const item = toBinarySequence(header, floats(n));
  assert.equal(item.length, 3);
  assert.deepEqual(Array.from(item.data), Array.from(new Float32Array(floats(n))));
  assert.equal(item.fps, 30);
  assert.equal(item.clientId, "cam-7");
  assert.equal(readBinaryHeader(headers(), LIMITS).route, undefined);
});

Deno.test("binary body: every header that does not fit is refused before the body is read", () => {
  const n = 3 * SPEC.joints * SPEC.channels;
  const cases: [Record<string, string | null>, string][] = [
    [{ "x-frames": null }, "Cannot read binary request: the x-frames header is required"],
    [{ "x-frames": "0" }, "Cannot read binary request: x-frames must be in [1, 16], got 0"],
    [{ "x-frames": "17" }, "Cannot read binary request: x-frames must be in [1, 16], got 17"],
    [{ "x-frames": "2.5" }, 'Cannot read binary request: x-frames must be an integer, got "2.5"'],
    [
      { "x-joints": "3" },
      `Cannot read binary request: the loaded model takes ${SPEC.joints} points x ${SPEC.channels} channels, got 3 x ${SPEC.channels}`,
    ],
    [
      { "x-layout": "coco17" },
      `Cannot read binary request: the loaded model was built for layout "${SPEC.layout}", got "coco17"`,
    ],
    [{ "x-fps": "0" }, "Cannot read binary request: x-fps must be a number in (0, 10000]"],
    [{ "x-fps": "NaN" }, "Cannot read binary request: x-fps must be a number in (0, 10000]"],
    [{ "x-route": "gpu" }, 'Cannot read binary request: x-route must be "edge" or "cloud", got "gpu"'],
    [{ "x-sequence-id": "x".repeat(257) }, "Cannot read binary request: x-sequence-id must be 1 to 256 characters"],
    [
      { "content-length": `${n * 4 + 1}` },
      `Cannot read binary request: expected ${
        n * 4
      } bytes (3 x ${SPEC.joints} x ${SPEC.channels} float32), content-length is ${n * 4 + 1}`,
    ],
  ];
  for (const [overrides, message] of cases) {
    assert.throws(() => readBinaryHeader(headers(overrides), LIMITS), invalid(message), JSON.stringify(overrides));
  }
});

Deno.test("binary body: a body of the wrong size or with a non-finite value is refused", () => {
  const n = 3 * SPEC.joints * SPEC.channels;
  const header = readBinaryHeader(headers(), LIMITS);
  assert.throws(
    () => toBinarySequence(header, floats(n - 1)),
    invalid(
      `Cannot read binary request: expected ${n * 4} bytes from the x-frames, x-joints and x-channels headers, got ${
        (n - 1) * 4
      }`,
    ),
  );
  for (const bad of [NaN, Infinity, -Infinity]) {
    const body = new Float32Array(floats(n));
    body[5] = bad;
    assert.throws(
      () => toBinarySequence(header, body.buffer),
      invalid("Cannot read binary request: value 5 is not finite"),
    );
  }
});

Deno.test("POST /v1/classify with a binary body answers as the same JSON body does, and logs one decision", async () => {
  const { testApp } = await import("./reliability_app.ts");
  const { app, rows } = testApp();
  const frames = [[[0.1, 0.2, 1], [0.3, 0.4, 1]], [[0.5, 0.6, 1], [0.7, 0.8, 0.5]]];
  const json = await app.request("/v1/classify", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ id: "cam-1", layout: SPEC.layout, fps: 25, frames }),
  });
  const binary = await app.request("/v1/classify", {
    method: "POST",
    headers: {
      "content-type": "application/octet-stream",
      "x-frames": "2",
      "x-joints": "2",
      "x-channels": "3",
      "x-layout": SPEC.layout,
      "x-fps": "25",
      "x-sequence-id": "cam-1",
    },
    body: Float32Array.from(frames.flat(2)).buffer,
  });
  assert.equal(json.status, 200);
  assert.equal(binary.status, 200);
  const a = await json.json();
  const b = await binary.json();
  for (const k of ["id", "label", "probability", "route", "switcher"]) assert.deepEqual(b[k], a[k], k);
  assert.equal(rows.length, 2);
  assert.deepEqual(Array.from(rows[1].edgeProbs), Array.from(rows[0].edgeProbs));
  // Both read at the model's rate: 2 frames at 25 fps are 1 at 10 fps.
  assert.deepEqual([rows[1].frames, rows[1].fps], [1, SPEC.fps]);
  assert.deepEqual([rows[0].frames, rows[0].fps], [1, SPEC.fps]);

  // Refused with 400 INVALID_INPUT (bad header) and 415 (binary where only JSON is taken).
  const bad = await app.request("/v1/classify", {
    method: "POST",
    headers: { "content-type": "application/octet-stream", "x-frames": "2" },
    body: new Uint8Array(8),
  });
  assert.equal(bad.status, 400);
  assert.equal((await bad.json()).code, "INVALID_INPUT");
  const batch = await app.request("/v1/classify/batch", {
    method: "POST",
    headers: { "content-type": "application/octet-stream" },
    body: new Uint8Array(8),
  });
  assert.equal(batch.status, 415);
  assert.equal((await batch.json()).code, "UNSUPPORTED_MEDIA_TYPE");
});
