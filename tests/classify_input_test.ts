/**
 * What the classify API does with input it cannot take as it is: a frame rate other than the model's (resampled in
 * time, then the model's most recent window; too short is 422 SEQUENCE_TOO_SHORT), unknown members (refused, named), nothing usable in view (422 NO_USABLE_INPUT, nothing logged) and a wrong
 * method (405 with Allow).
 */
import assert from "node:assert/strict";
import type { SequenceInput } from "../workers/protocol.ts";
import { fakeInference } from "./fixtures/fake_models.ts";
import { SPEC, testApp } from "./reliability_app.ts";

/** `t` frames of the tiny layout (2 points x 3 channels); point values `v(f)`, confidence 1. */
const frames = (t: number, v: (f: number) => number = (f) => f) =>
  Array.from({ length: t }, (_, f) => [[v(f), v(f), 1], [v(f), -v(f), 1]]);

function post(app: ReturnType<typeof testApp>["app"], path: string, body: unknown, method = "POST") {
  return app.request(path, {
    method,
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** An app whose fake edge model records every item it is given. */
function recordingApp() {
  const seen: SequenceInput[] = [];
  const inference = fakeInference({ score: () => 0.1, check: (items) => void seen.push(...items) });
  return { ...testApp({ inference }), seen };
}

Deno.test("classify: a sequence at twice the model's rate reaches the model at its rate, its last window", async () => {
  const { app, seen, rows } = recordingApp();
  const res = await post(app, "/v1/classify", { layout: "tiny", fps: SPEC.fps * 2, frames: frames(9) });
  assert.equal(res.status, 200);
  assert.equal(seen.length, 1);
  // 9 frames at 20 fps are 5 at 10 fps (frames 0, 2, 4, 6, 8); the model reads the last 4 (its window).
  assert.equal(seen[0].length, SPEC.windowFrames);
  assert.equal((rows[0] as { fps?: number }).fps, SPEC.fps);
  // Point 0 channel 0 holds the frame number.
  assert.deepEqual([0, 1, 2, 3].map((f) => seen[0].data[f * 6]), [2, 4, 6, 8]);
  assert.equal(rows.length, 1);
});

Deno.test("classify: at the model's rate the frames are given as they are; a missing fps is the model's rate", async () => {
  const { app, seen } = recordingApp();
  assert.equal((await post(app, "/v1/classify", { layout: "tiny", fps: SPEC.fps, frames: frames(3) })).status, 200);
  assert.equal(seen[0].length, 3);
  assert.deepEqual([...seen[0].data.slice(0, 6)], [0, 0, 1, 0, 0, 1]);
  assert.equal((await post(app, "/v1/classify", { layout: "tiny", frames: frames(3) })).status, 200);
  assert.deepEqual(seen[1].data, seen[0].data);
});

Deno.test("classify: a sequence longer than the window is read as its most recent window, whatever its length", async () => {
  const { app, seen, rows } = recordingApp();
  // 4 frames at 1 fps span 3 s: 31 frames at the model's 10 fps, more than MAX_FRAMES (16), of which it reads 4.
  const res = await post(app, "/v1/classify", { layout: "tiny", fps: 1, frames: frames(4, (f) => 10 * f) });
  assert.equal(res.status, 200);
  assert.equal(seen[0].length, 4);
  // The last 4 of 31 frames at 10 fps: 2.7, 2.8, 2.9 and 3 s, i.e. the values 27, 28, 29, 30.
  assert.deepEqual([0, 1, 2, 3].map((f) => Math.round(seen[0].data[f * 6] * 1e4) / 1e4), [27, 28, 29, 30]);
  assert.equal(rows.length, 1);
});

Deno.test("classify: a sequence shorter than the model reads is 422 SEQUENCE_TOO_SHORT naming the minimum at its fps", async () => {
  // The default rule (no minFrames in the manifest): 80% of the window's span, 4 frames of a 4-frame window at 10 fps.
  const { minFrames: _, ...spec } = SPEC;
  const { app, rows } = testApp({ spec });
  const res = await post(app, "/v1/classify", { layout: "tiny", fps: 20, frames: frames(5) });
  assert.equal(res.status, 422);
  assert.deepEqual(await res.json(), {
    code: "SEQUENCE_TOO_SHORT",
    message:
      "Cannot classify: 5 frames at 20 fps span 0.200 s; the model reads at least 6 frames at 20 fps (4 at its " +
      "10 fps, 0.300 s)",
  });
  assert.equal(rows.length, 0);
  // 6 frames at 20 fps are round(5 x 10 / 20) + 1 = 4 at the model's rate: enough.
  assert.equal((await post(app, "/v1/classify", { layout: "tiny", fps: 20, frames: frames(6) })).status, 200);
  // The binary body and a batch item follow the same rule.
  const binary = await app.request("/v1/classify", {
    method: "POST",
    headers: {
      "content-type": "application/octet-stream",
      "x-frames": "3",
      "x-joints": "2",
      "x-channels": "3",
      "x-layout": "tiny",
      "x-fps": "10",
    },
    body: new Float32Array(3 * 6).fill(0.5).buffer,
  });
  assert.equal(binary.status, 422);
  assert.equal((await binary.json()).code, "SEQUENCE_TOO_SHORT");
  const batch = await post(app, "/v1/classify/batch", {
    items: [{ layout: "tiny", fps: 10, frames: frames(4) }, { layout: "tiny", fps: 10, frames: frames(2) }],
  });
  const { results } = await batch.json();
  assert.deepEqual(results.map((r: { ok: boolean; code?: string }) => r.ok ? "ok" : r.code), [
    "ok",
    "SEQUENCE_TOO_SHORT",
  ]);
  assert.equal(rows.length, 2);
});

Deno.test("classify: an unknown member is refused 400 naming it, in a sequence, a batch and a batch item", async () => {
  const { app, rows } = testApp();
  const seq = { layout: "tiny", fps: 10, frames: frames(2) };
  const cases: [string, unknown, RegExp][] = [
    ["/v1/classify", { ...seq, label: "walk" }, /"label"/],
    ["/v1/classify/batch", { items: [seq], priority: 1 }, /"priority"/],
    ["/v1/classify/batch", { items: [seq, { ...seq, subject: "s01" }] }, /items\.1.*"subject"/],
  ];
  for (const [path, body, name] of cases) {
    const res = await post(app, path, body);
    assert.equal(res.status, 400, JSON.stringify(body));
    const json = await res.json();
    assert.equal(json.code, "INVALID_INPUT");
    assert.match(json.message, name);
  }
  assert.equal(rows.length, 0);
});

Deno.test("classify: nobody in view (every confidence 0) is 422 NO_USABLE_INPUT, not a label; nothing logged", async () => {
  const { app, rows } = testApp();
  const empty = Array.from({ length: 3 }, () => [[0.4, 0.2, 0], [0, 0, 0]]);
  const res = await post(app, "/v1/classify", { layout: "tiny", fps: 10, frames: empty });
  assert.equal(res.status, 422);
  assert.deepEqual(await res.json(), {
    code: "NO_USABLE_INPUT",
    message: "Cannot classify: every point of the 3 frames has confidence 0 (nobody in view)",
  });
  assert.equal(rows.length, 0);
  // One usable point in one frame is enough.
  const one = empty.map((f, i) => (i === 1 ? [[0.4, 0.2, 0.3], f[1]] : f));
  assert.equal((await post(app, "/v1/classify", { layout: "tiny", fps: 10, frames: one })).status, 200);
  assert.equal(rows.length, 1);
});

Deno.test("classify batch: an item with nothing in view gets its own NO_USABLE_INPUT; the others are answered and logged", async () => {
  const { app, rows } = testApp();
  const zero = { layout: "tiny", fps: 10, frames: Array.from({ length: 2 }, () => [[0, 0, 0], [0, 0, 0]]) };
  const ok = { layout: "tiny", fps: 10, frames: frames(2) };
  const res = await post(app, "/v1/classify/batch", { items: [ok, zero, ok] });
  assert.equal(res.status, 200);
  const { results } = await res.json();
  assert.deepEqual(results.map((r: { ok: boolean; code?: string }) => r.ok ? "ok" : r.code), [
    "ok",
    "NO_USABLE_INPUT",
    "ok",
  ]);
  assert.equal(rows.length, 2);
});

Deno.test("a wrong method on a known path is 405 with Allow; an unknown path stays 404", async () => {
  const { app } = testApp();
  const cases: [string, string, string][] = [
    ["GET", "/v1/classify", "POST"],
    ["PUT", "/v1/classify/batch", "POST"],
    ["DELETE", "/v1/decisions/0190d5a0-0000-7000-8000-000000000000", "GET, HEAD"],
    ["POST", "/healthz", "GET, HEAD"],
    ["POST", "/openapi.json", "GET, HEAD"],
  ];
  for (const [method, path, allow] of cases) {
    const res = await app.request(path, {
      method,
      headers: { "content-type": "application/json" },
      body: method === "GET" ? undefined : "{}",
    });
    assert.equal(res.status, 405, `${method} ${path}`);
    assert.equal(res.headers.get("allow"), allow, `${method} ${path}`);
    const json = await res.json();
    assert.equal(json.code, "METHOD_NOT_ALLOWED");
  }
  const missing = await app.request("/v1/nope");
  assert.equal(missing.status, 404);
  assert.equal(missing.headers.get("allow"), null);
});
