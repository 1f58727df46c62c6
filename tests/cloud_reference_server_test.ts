/**
 * The reference cloud server on the tiny fixture model: both runtimes give the golden logits through the real
 * client over 127.0.0.1; the protocol's endpoints, versions and 400s; sha256 and signature checks; the entry point
 * starts, logs its URL and stops on SIGTERM.
 */
import assert from "node:assert/strict";
import { createOipClient } from "../cloud/oip_client.ts";
import { createReferenceApp, loadCloudSession, startReferenceServer } from "../cloud/reference_server.ts";
import { AppError } from "../errors.ts";
import type { Manifest } from "../wasm-models/manifest.ts";
import { readArtefact, readManifest } from "../workers/artefacts.ts";

const TINY = new URL("./fixtures/cloud_tiny", import.meta.url).pathname;
const GOLDEN = JSON.parse(await Deno.readTextFile(`${TINY}/golden.json`)) as {
  shape: number[];
  frames: number[];
  logits: number[];
};
const TOLERANCE = 1e-5;

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance = TOLERANCE) {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tolerance, `value ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

/** A copy of the fixture folder with its manifest changed. */
async function alteredFixture(change: (m: Manifest) => void): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "cloud_tiny_" });
  await Deno.copyFile(`${TINY}/cloud.onnx`, `${dir}/cloud.onnx`);
  const manifest = JSON.parse(await Deno.readTextFile(`${TINY}/manifest.json`)) as Manifest;
  change(manifest);
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify(manifest));
  return dir;
}

Deno.test("reference server: native and WASM runtimes give the golden logits through the client", async () => {
  const results: Float32Array[] = [];
  for (const runtime of ["native", "wasm"] as const) {
    const server = await startReferenceServer({
      host: "127.0.0.1",
      port: 0,
      modelsDir: TINY,
      modelName: "cloud",
      runtime,
    });
    try {
      assert.equal(server.runtime, runtime);
      assert.equal(server.modelVersion, "cloud-tiny-1");
      assert.match(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
      const client = createOipClient({ baseUrl: server.url, modelName: "cloud", timeoutMs: 5000 });
      assert.equal(await client.ready(), true);
      assert.deepEqual(await client.metadata(), {
        name: "cloud",
        versions: ["cloud-tiny-1"],
        platform: runtime === "native" ? "onnxruntime_onnx" : "onnxruntime_web_wasm",
        inputs: [{ name: "frames", datatype: "FP32", shape: [-1, 4, 2, 3] }],
        outputs: [{ name: "logits", datatype: "FP32", shape: [-1, 3] }],
      });
      const reply = await client.infer(Float32Array.from(GOLDEN.frames), GOLDEN.shape, { requestId: "r-1" });
      assert.deepEqual(reply.shape, [2, 3]);
      assert.equal(reply.modelVersion, "cloud-tiny-1");
      assertClose(reply.logits, GOLDEN.logits);
      results.push(reply.logits);
    } finally {
      await server.shutdown();
    }
  }
  assertClose(results[0], results[1]);
});

Deno.test("reference server: runtime auto serves natively where onnxruntime-node loads", async () => {
  const server = await startReferenceServer({
    host: "127.0.0.1",
    port: 0,
    modelsDir: TINY,
    modelName: "big",
    runtime: "auto",
  });
  try {
    assert.equal(server.runtime, "native");
    const client = createOipClient({ baseUrl: server.url, modelName: "big", timeoutMs: 5000 });
    assertClose((await client.infer(Float32Array.from(GOLDEN.frames), GOLDEN.shape)).logits, GOLDEN.logits);
  } finally {
    await server.shutdown();
    await server.shutdown(); // idempotent
  }
});

Deno.test("reference app: endpoints, versions, 400s on bad infer bodies, 404s", async () => {
  const manifest = await readManifest(TINY);
  const { bytes, spec } = await readArtefact(TINY, manifest.cloud);
  const session = await loadCloudSession(bytes, { spec, runtime: "wasm" });
  try {
    const app = createReferenceApp({ session, spec, modelName: "cloud" });
    const get = async (path: string) => {
      const res = await app.request(path);
      return [res.status, await res.json()];
    };
    const post = async (path: string, body: unknown) => {
      const res = await app.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: typeof body === "string" ? body : JSON.stringify(body),
      });
      return [res.status, await res.json()];
    };

    assert.deepEqual(await get("/v2/health/live"), [200, { live: true }]);
    assert.deepEqual(await get("/v2/health/ready"), [200, { ready: true }]);
    assert.deepEqual(await get("/v2"), [200, { name: "dmd-edge-reference", version: "2", extensions: [] }]);
    assert.deepEqual(await get("/v2/models/cloud/ready"), [200, { name: "cloud", ready: true }]);
    assert.deepEqual(await get("/v2/models/cloud/versions/cloud-tiny-1/ready"), [200, { name: "cloud", ready: true }]);
    assert.equal((await get("/v2/models/cloud/versions/cloud-tiny-1"))[0], 200);
    assert.deepEqual(await get("/v2/models/other"), [404, { error: 'Cannot find model "other"' }]);
    assert.deepEqual(await get("/v2/models/other/ready"), [404, { error: 'Cannot find model "other"' }]);
    assert.deepEqual(await get("/v2/models/cloud/versions/9/ready"), [404, {
      error: 'Cannot find version "9" of model "cloud"',
    }]);
    assert.deepEqual(await get("/v3/anything"), [404, { error: "Cannot find GET /v3/anything" }]);

    const good = { name: "frames", shape: [2, 4, 2, 3], datatype: "FP32", data: GOLDEN.frames };
    const [status, reply] = await post("/v2/models/cloud/infer", { id: "abc", inputs: [good] });
    assert.equal(status, 200);
    assert.deepEqual(
      { ...reply, outputs: undefined },
      { model_name: "cloud", model_version: "cloud-tiny-1", id: "abc", outputs: undefined },
    );
    assert.deepEqual([reply.outputs[0].name, reply.outputs[0].shape, reply.outputs[0].datatype], [
      "logits",
      [2, 3],
      "FP32",
    ]);
    assertClose(reply.outputs[0].data, GOLDEN.logits);
    // Nested data (row-major) is read like flat data; the versioned path infers too.
    const nested = { ...good, data: [GOLDEN.frames.slice(0, 24), GOLDEN.frames.slice(24)] };
    const [nestedStatus, nestedReply] = await post("/v2/models/cloud/versions/cloud-tiny-1/infer", {
      inputs: [nested],
    });
    assert.equal(nestedStatus, 200);
    assertClose(nestedReply.outputs[0].data, GOLDEN.logits);

    const one = { ...good, shape: [1, 4, 2, 3], data: GOLDEN.frames.slice(0, 24) };
    const cases: [unknown, string][] = [
      ["{", "Cannot infer: expected a JSON body"],
      [{}, "Cannot infer: expected a body with a non-empty inputs array"],
      [{ inputs: [] }, "Cannot infer: expected a body with a non-empty inputs array"],
      [{ inputs: [{ ...one, name: "x" }, { ...one, name: "y" }] }, 'Cannot infer: expected an input named "frames"'],
      [{ inputs: [{ ...one, datatype: "INT64" }] }, "Cannot infer: expected datatype FP32, got INT64"],
      [
        { inputs: [{ ...one, shape: [1, 5, 2, 3] }] },
        "Cannot infer: expected shape [N, 4, 2, 3] with 1 <= N <= 1024, got [1,5,2,3]",
      ],
      [
        { inputs: [{ ...one, shape: [0, 4, 2, 3], data: [] }] },
        "Cannot infer: expected shape [N, 4, 2, 3] with 1 <= N <= 1024, got [0,4,2,3]",
      ],
      [{ inputs: [{ ...one, data: "abc" }] }, "Cannot infer: expected data to be an array"],
      [{ inputs: [{ ...one, data: [1, 2] }] }, "Cannot infer: expected 24 values, got 2"],
      [{ inputs: [{ ...one, data: [...Array(23).fill(0), "x"] }] }, "Cannot infer: value 23 is not a finite number"],
      [{ inputs: [{ ...one, data: [...Array(23).fill(0), null] }] }, "Cannot infer: value 23 is not a finite number"],
    ];
    for (const [body, error] of cases) {
      assert.deepEqual(await post("/v2/models/cloud/infer", body), [400, { error }], JSON.stringify(body).slice(0, 80));
    }
    assert.deepEqual(await post("/v2/models/other/infer", { inputs: [one] }), [404, {
      error: 'Cannot find model "other"',
    }]);
    assert.deepEqual(await post("/v2/models/cloud/versions/0/infer", { inputs: [one] }), [404, {
      error: 'Cannot find version "0" of model "cloud"',
    }]);
  } finally {
    await session.release();
  }
});

Deno.test("reference server: refuses a model whose sha256 differs from the manifest", async () => {
  const dir = await alteredFixture((m) => {
    m.cloud.sha256 = "0".repeat(64);
  });
  try {
    await assert.rejects(
      () => startReferenceServer({ host: "127.0.0.1", port: 0, modelsDir: dir, modelName: "cloud", runtime: "wasm" }),
      (e: AppError) => e instanceof AppError && e.code === "MODEL_NOT_READY" && /sha256/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reference server: refuses a model whose signature differs from the manifest", async () => {
  const dir = await alteredFixture((m) => {
    m.cloud.outputs = [{ name: "scores", shape: [-1, 3], dtype: "float32" }];
  });
  try {
    for (const runtime of ["native", "wasm"] as const) {
      await assert.rejects(
        () => startReferenceServer({ host: "127.0.0.1", port: 0, modelsDir: dir, modelName: "cloud", runtime }),
        (e: AppError) =>
          e instanceof AppError && e.code === "MODEL_NOT_READY" &&
          e.message ===
            'Cannot load cloud-tiny-1: expected input "frames" and output "scores", the model has inputs [frames] and outputs [logits]',
      );
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("reference server: a missing models folder is MODEL_NOT_READY", async () => {
  await assert.rejects(
    () =>
      startReferenceServer({
        host: "127.0.0.1",
        port: 0,
        modelsDir: "/nonexistent",
        modelName: "cloud",
        runtime: "wasm",
      }),
    (e: AppError) => e instanceof AppError && e.code === "MODEL_NOT_READY",
  );
});

Deno.test("reference server entry point: logs its URL and runtime, serves, and exits 0 on SIGTERM", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-net=127.0.0.1",
      "--allow-env",
      "--allow-ffi",
      "--allow-sys",
      "cloud/reference_server.ts",
    ],
    cwd: new URL("..", import.meta.url).pathname,
    env: { CLOUD_SERVER_HOST: "127.0.0.1", CLOUD_SERVER_PORT: "0", MODELS_DIR: TINY, CLOUD_RUNTIME: "wasm" },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  try {
    let text = "";
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    const line = JSON.parse(text.split("\n")[0]) as Record<string, string>;
    assert.deepEqual(
      { ...line, url: undefined },
      {
        level: "info",
        msg: "reference cloud server listening",
        url: undefined,
        runtime: "wasm",
        model: "cloud",
        version: "cloud-tiny-1",
      },
    );
    const client = createOipClient({ baseUrl: line.url, modelName: "cloud", timeoutMs: 5000 });
    assertClose((await client.infer(Float32Array.from(GOLDEN.frames), GOLDEN.shape)).logits, GOLDEN.logits);
    child.kill("SIGTERM");
    assert.equal((await child.status).code, 0);
  } finally {
    await reader.cancel().catch(() => {});
    try {
      child.kill("SIGKILL");
    } catch {
      // already exited
    }
    await child.status;
  }
});
