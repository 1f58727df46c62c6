/**
 * The error mapping: a `TypeError` or `RangeError` thrown below the validation boundary is a bug, reported as a
 * logged 500 `INTERNAL`, never as the client's fault.
 */
import assert from "node:assert/strict";
import { AppError, toAppError } from "../errors.ts";
import { fakeInference } from "./fixtures/fake_models.ts";
import { testApp } from "./reliability_app.ts";
import { capturingErrors } from "./fixtures/wait.ts";

Deno.test("toAppError() maps a TypeError or RangeError to INTERNAL, keeping the cause", () => {
  for (const err of [new TypeError("x is undefined"), new RangeError("Invalid array length")]) {
    const e = toAppError(err);
    assert.equal(e.code, "INTERNAL");
    assert.equal(e.status, 500);
    assert.equal(e.message, "Internal error");
    assert.equal(e.cause, err);
  }
  const own = new AppError("INVALID_INPUT", "Cannot classify: bad");
  assert.equal(toAppError(own), own);
});

Deno.test("a TypeError thrown by inference answers a logged 500 INTERNAL, not 400", async () => {
  const inner = fakeInference();
  const { app } = testApp({
    inference: {
      ...inner,
      classify: () => Promise.reject(new TypeError("Cannot read properties of undefined (reading 'buffer')")),
    },
  });
  let res!: Response;
  const errors = await capturingErrors(async () => {
    res = await app.request("/v1/classify", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ layout: "tiny", fps: 30, frames: [[[0, 0, 1], [1, 1, 1]]] }),
    });
  });
  assert.equal(res.status, 500);
  assert.deepEqual(await res.json(), { code: "INTERNAL", message: "Internal error" });
  assert.ok(errors.some((l) => l.msg === "unhandled error" && String(l.error).includes("reading 'buffer'")));
});
