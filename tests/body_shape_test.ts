/**
 * Limits before per-element work: the raw body of a classify request is checked (items, frames, points, channels,
 * members, depth) before it is parsed and validated, so a small body of many empty elements is refused at once.
 */
import assert from "node:assert/strict";
import { checkBodyShape, MAX_MEMBERS } from "../routes/body_shape.ts";
import { AppError } from "../errors.ts";
import { LIMITS, testApp } from "./reliability_app.ts";

const LIMITS_TINY = { maxBatchItems: 4, maxFrames: 16, joints: 2, channels: 3 };

function refused(text: string, message: string) {
  assert.throws(() => checkBodyShape(text, LIMITS_TINY), (e: unknown) => {
    assert.ok(e instanceof AppError);
    assert.equal(e.code, "INVALID_INPUT");
    assert.equal(e.message, message);
    return true;
  });
}

Deno.test("checkBodyShape() refuses too many items, frames, points, channels, members and levels", () => {
  refused(JSON.stringify({ items: [{}, {}, {}, {}, {}] }), "Cannot classify batch: expected at most 4 items, got more");
  refused(
    JSON.stringify({ frames: Array.from({ length: 17 }, () => []) }),
    "Cannot read frames: expected at most 16 frames, got more",
  );
  refused(
    JSON.stringify({ frames: [Array.from({ length: MAX_MEMBERS + 1 }, () => [0, 0, 1])] }),
    `Cannot read request: a frame (points) has more than ${MAX_MEMBERS} elements`,
  );
  refused(
    JSON.stringify({ frames: [[Array(MAX_MEMBERS + 1).fill(0)]] }),
    `Cannot read request: a point (channels) has more than ${MAX_MEMBERS} elements`,
  );
  const wide = Object.fromEntries(Array.from({ length: MAX_MEMBERS + 1 }, (_, i) => [`k${i}`, i]));
  refused(JSON.stringify(wide), `Cannot read request: an object has more than ${MAX_MEMBERS} members`);
  refused(
    JSON.stringify({ x: [Array(MAX_MEMBERS + 1).fill(1)] }),
    `Cannot read request: an array has more than ${MAX_MEMBERS} elements`,
  );
  refused("[[[[[[[]]]]]]]", "Cannot read request: JSON nested deeper than 6 levels");
});

Deno.test("checkBodyShape() accepts bodies within the limits, whatever their strings and spacing", () => {
  const ok = (v: unknown) => checkBodyShape(typeof v === "string" ? v : JSON.stringify(v), LIMITS_TINY);
  ok({ layout: "tiny", fps: 30, frames: [[[0, 0, 1], [1, 1, 1]]] });
  ok({ items: [{ frames: [] }, {}, {}, {}], route: "edge" });
  ok(' { "items" : [ { } , { } ] , "route" : "edge" } ');
  ok({ id: '[[[[[[[[,,,,,,"\\', layout: "a,b,c,d,e,f,g,h,i,j,k,l,m,n,o,p,q,r", frames: [] });
  ok({ frames: Array.from({ length: 16 }, () => [[0, 0, 1], [1, 1, 1]]) });
  // A batch item of the wrong shape passes here: it gets its own error from the exact check.
  ok({ items: [{ frames: [[[0, 0, 1], [1, 1, 1], [2, 2, 2]]] }] });
  ok("{");
});

Deno.test("POST /v1/classify/batch refuses a million empty items by their count, before validating any", async () => {
  const { app } = testApp({ limits: { ...LIMITS, maxBodyBytes: 8 * 1024 * 1024 } });
  const items = `{"items":[${Array(1_000_000).fill("{}").join(",")}]}`;
  const res = await app.request("/v1/classify/batch", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: items,
  });
  assert.equal(res.status, 400);
  assert.deepEqual(await res.json(), {
    code: "INVALID_INPUT",
    message: `Cannot classify batch: expected at most ${LIMITS.maxBatchItems} items, got more`,
  });
  const frames = `{"layout":"tiny","fps":30,"frames":[${Array(1_000_000).fill("[]").join(",")}]}`;
  const res2 = await app.request("/v1/classify", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: frames,
  });
  assert.equal(res2.status, 400);
  assert.equal(
    (await res2.json()).message,
    `Cannot read frames: expected at most ${LIMITS.maxFrames} frames, got more`,
  );
});
