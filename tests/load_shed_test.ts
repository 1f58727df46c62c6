/**
 * Load shedding at the HTTP edge: while the inference pool says a new request would be shed (its queue holds more
 * work than `QUEUE_MAX_WAIT_MS`, or `QUEUE_MAX` jobs), classify requests get 503 `OVERLOADED` with `Retry-After`
 * before their body is read, and nothing is logged; other routes are served; once the pool has room, requests are
 * answered again.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { testApp } from "./reliability_app.ts";

const BODY = JSON.stringify({ layout: "tiny", fps: 10, frames: [[[0, 0, 1], [1, 1, 1]]] });

Deno.test("classify requests are shed with OVERLOADED before the body is read while the pool is past its bound", async () => {
  let busy = true;
  const { app, rows } = testApp({
    overloaded: () =>
      busy
        ? new AppError("OVERLOADED", "Cannot classify: the inference queue holds more than 50 ms of work", {
          headers: { "Retry-After": "1" },
        })
        : null,
  });
  const post = (path: string, body: BodyInit) =>
    app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body });
  // A body that is not even JSON: it is never read, the request is shed first.
  for (const path of ["/v1/classify", "/v1/classify/batch"]) {
    const res = await post(path, "{ not json");
    assert.equal(res.status, 503);
    assert.equal(res.headers.get("retry-after"), "1");
    assert.equal((await res.json()).code, "OVERLOADED");
  }
  assert.equal((await app.request("/healthz")).status, 200);
  assert.equal(rows.length, 0);
  busy = false;
  const ok = await post("/v1/classify", BODY);
  assert.equal(ok.status, 200);
  assert.equal(rows.length, 1);
});
