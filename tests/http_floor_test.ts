/**
 * The bench's HTTP floor (scripts/http_floor.ts): a bare Deno.serve that reads and parses a JSON body and answers a
 * small JSON object, refuses malformed JSON with the service's error shape, and exits on SIGTERM.
 */
import assert from "node:assert/strict";
import { spawn } from "../scripts/procs.ts";

Deno.test("http floor: parses the body, answers JSON, refuses malformed JSON with 400 INVALID_INPUT, exits on SIGTERM", async () => {
  const { child, url } = await spawn(
    ["run", "--allow-net", "--allow-env", new URL("../scripts/http_floor.ts", import.meta.url).pathname],
    { PORT: "0" },
    /"msg":"http floor listening","url":"([^"]+)"/,
  );
  try {
    assert.match(url, /^http:\/\/127\.0\.0\.1:\d+$/);
    const ok = await fetch(url, { method: "POST", body: JSON.stringify({ frames: [[[0.5, 0.5, 1]]] }) });
    assert.equal(ok.status, 200);
    assert.equal(ok.headers.get("content-type"), "application/json");
    assert.equal((await ok.json()).route, "edge");
    const bad = await fetch(url, { method: "POST", body: "{not json" });
    assert.equal(bad.status, 400);
    assert.deepEqual(await bad.json(), { code: "INVALID_INPUT", message: "Cannot parse request body: malformed JSON" });
  } finally {
    child.kill("SIGTERM");
  }
  assert.equal((await child.status).code, 0);
});

Deno.test("http floor with MODELS_DIR: classifies the frames with the edge model, refuses unreadable frames, exits on SIGTERM", async () => {
  const sample = await Deno.readTextFile(new URL("../wasm-models/samples/backflip.json", import.meta.url));
  for (const workers of ["1", "0"]) {
    const { child, url } = await spawn(
      ["run", "-A", new URL("../scripts/http_floor.ts", import.meta.url).pathname],
      { PORT: "0", MODELS_DIR: new URL("../wasm-models", import.meta.url).pathname, WORKERS: workers },
      /"msg":"http floor listening","url":"([^"]+)"/,
    );
    try {
      const ok = await fetch(url, { method: "POST", body: sample });
      assert.equal(ok.status, 200, `WORKERS=${workers}`);
      const answer = await ok.json();
      // The shipped sample is a backflip and the edge model answers it so (tests/golden_test.ts holds its outputs).
      assert.equal(answer.label, "backflip", `WORKERS=${workers}`);
      assert.ok(answer.confidence > 0.5 && answer.confidence <= 1, `WORKERS=${workers}: ${answer.confidence}`);
      const bad = await fetch(url, { method: "POST", body: JSON.stringify({ frames: [[[0.5, 0.5, 1]]] }) });
      assert.equal(bad.status, 400);
      const body = await bad.json();
      assert.equal(body.code, "INVALID_INPUT");
      assert.match(body.message, /^Cannot read frames: expected 17 points in frame 0, got 1$/);
      const get = await fetch(url);
      assert.equal(get.status, 200);
      assert.equal((await get.json()).label, "floor");
    } finally {
      child.kill("SIGTERM");
    }
    assert.equal((await child.status).code, 0, `WORKERS=${workers}`);
  }
});
