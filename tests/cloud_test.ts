/**
 * The Open Inference Protocol client against the real reference server on 127.0.0.1, and against loopback
 * servers that fail in each way a cloud can fail.
 */
import assert from "node:assert/strict";
import { createOipClient } from "../cloud/oip_client.ts";
import { createReferenceApp, loadCloudSession, startReferenceServer } from "../cloud/reference_server.ts";
import { AppError } from "../errors.ts";
import { readArtefact, readManifest } from "../workers/artefacts.ts";

const TINY = new URL("./fixtures/tiny_models", import.meta.url).pathname;
const SHAPE = [2, 4, 2, 3];
const FRAMES = Float32Array.from({ length: 48 }, (_, i) => ((i * 37) % 11) / 11);

async function tinyCloud() {
  const manifest = await readManifest(TINY);
  return await readArtefact(TINY, manifest.cloud);
}

Deno.test("reference server: native and WASM runtimes give the same logits through the client", async () => {
  const logits: Float32Array[] = [];
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
      const client = createOipClient({ baseUrl: server.url, modelName: "cloud", timeoutMs: 5000 });
      assert.equal(await client.ready(), true);
      const meta = await client.metadata();
      assert.deepEqual(meta.inputs[0], { name: "frames", datatype: "FP32", shape: [-1, 4, 2, 3] });
      assert.deepEqual(meta.outputs[0], { name: "logits", datatype: "FP32", shape: [-1, 3] });
      const r = await client.infer(FRAMES, SHAPE);
      assert.deepEqual(r.shape, [2, 3]);
      assert.equal(r.modelVersion, "cloud-tiny-1");
      logits.push(r.logits);
    } finally {
      await server.shutdown();
    }
  }
  for (let i = 0; i < logits[0].length; i++) assert.ok(Math.abs(logits[0][i] - logits[1][i]) < 1e-5);
});

Deno.test("reference server: bad infer bodies get 400 with an error, unknown models 404", async () => {
  const { bytes, spec } = await tinyCloud();
  const session = await loadCloudSession(bytes, { spec, runtime: "wasm" });
  const app = createReferenceApp({ session, spec, modelName: "cloud" });
  const infer = (body: unknown) =>
    app.request("/v2/models/cloud/infer", {
      method: "POST",
      body: typeof body === "string" ? body : JSON.stringify(body),
    });
  const good = { name: "frames", shape: [1, 4, 2, 3], datatype: "FP32", data: Array(24).fill(0.5) };
  const cases: [unknown, string][] = [
    ["{", "Cannot infer: expected a JSON body"],
    [{}, "Cannot infer: expected a body with a non-empty inputs array"],
    [{ inputs: [{ ...good, datatype: "INT64" }] }, "Cannot infer: expected datatype FP32, got INT64"],
    [
      { inputs: [{ ...good, shape: [1, 5, 2, 3] }] },
      "Cannot infer: expected shape [N, 4, 2, 3] with 1 <= N <= 1024, got [1,5,2,3]",
    ],
    [{ inputs: [{ ...good, data: [1, 2] }] }, "Cannot infer: expected 24 values, got 2"],
    [{ inputs: [{ ...good, data: [...Array(23).fill(0), "x"] }] }, "Cannot infer: value 23 is not a finite number"],
  ];
  for (const [body, error] of cases) {
    const res = await infer(body);
    assert.equal(res.status, 400);
    assert.deepEqual(await res.json(), { error });
  }
  const ok = await infer({ inputs: [good] });
  assert.equal(ok.status, 200);
  assert.equal((await ok.json()).outputs[0].data.length, 3);
  assert.equal((await app.request("/v2/models/other/infer", { method: "POST", body: "{}" })).status, 404);
  assert.equal((await app.request("/v2/models/other")).status, 404);
  await session.release();
});

/** A loopback server that answers as told. */
function fakeServer(handler: (req: Request) => Response | Promise<Response>) {
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, handler);
  return { url: `http://127.0.0.1:${server.addr.port}`, close: () => server.shutdown() };
}

async function expectCode(promise: Promise<unknown>, code: string, message?: RegExp) {
  await assert.rejects(promise, (e: AppError) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  });
}

Deno.test("client: connection refused is OFFLOAD_FAILED", async () => {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  const client = createOipClient({ baseUrl: `http://127.0.0.1:${port}`, modelName: "cloud", timeoutMs: 1000 });
  await expectCode(client.infer(FRAMES, SHAPE), "OFFLOAD_FAILED", /unreachable/);
  assert.equal(await client.ready(), false);
});

Deno.test("client: a server slower than the deadline is OFFLOAD_TIMEOUT, within the deadline", async () => {
  const s = fakeServer(async () => {
    await new Promise((r) => setTimeout(r, 1000));
    return Response.json({});
  });
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 150 });
    const t0 = performance.now();
    await expectCode(client.infer(FRAMES, SHAPE), "OFFLOAD_TIMEOUT", /150 ms/);
    // Behaviour, not a benchmark: the generous bound only shows the deadline cut the call short.
    assert.ok(performance.now() - t0 < 900);
  } finally {
    await s.close();
  }
});

Deno.test("client: a server that hangs mid-body is OFFLOAD_TIMEOUT", async () => {
  const timers: ReturnType<typeof setTimeout>[] = [];
  const s = fakeServer(() => {
    const body = new ReadableStream({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"model_name":"cloud","outputs":['));
        // Never closes within the deadline.
        timers.push(setTimeout(() => controller.close(), 800));
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 150 });
    await expectCode(client.infer(FRAMES, SHAPE), "OFFLOAD_TIMEOUT", /not complete/);
  } finally {
    await s.close();
    timers.forEach(clearTimeout);
  }
});

Deno.test("client: 5xx, malformed JSON and wrong-shape replies are OFFLOAD_FAILED", async () => {
  const replies: [() => Response, RegExp][] = [
    [() => Response.json({ error: "GPU out of memory" }, { status: 500 }), /answered 500: GPU out of memory/],
    [() => new Response("<html>bad gateway</html>", { status: 502 }), /answered 502/],
    [() => new Response("{not json", { status: 200 }), /not JSON/],
    [() => Response.json({ model_name: "cloud", outputs: [] }), /no logits output/],
    [
      () => Response.json({ outputs: [{ name: "logits", shape: [1, 3], datatype: "FP32", data: [1, 2, 3] }] }),
      /expected logits of shape \[2, K\]/,
    ],
    [
      () => Response.json({ outputs: [{ name: "logits", shape: [2, 3], datatype: "FP32", data: [1, 2, 3] }] }),
      /with 3 values/,
    ],
    [
      () => Response.json({ outputs: [{ name: "logits", shape: [2, 1], datatype: "FP32", data: [1, null] }] }),
      /non-finite/,
    ],
  ];
  for (const [reply, message] of replies) {
    const s = fakeServer(reply);
    try {
      const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 1000 });
      await expectCode(client.infer(FRAMES, SHAPE), "OFFLOAD_FAILED", message);
    } finally {
      await s.close();
    }
  }
});

Deno.test("client: sends the standard infer request to /v2/models/{name}/infer", async () => {
  let seen: { path: string; body: Record<string, unknown> } | null = null;
  const s = fakeServer(async (req) => {
    seen = { path: new URL(req.url).pathname, body: await req.json() };
    return Response.json({
      model_name: "big model",
      model_version: "v9",
      outputs: [{ name: "logits", shape: [2, 2], datatype: "FP32", data: [1, 2, 3, 4] }],
    });
  });
  try {
    const client = createOipClient({ baseUrl: `${s.url}/`, modelName: "big model", timeoutMs: 1000 });
    const r = await client.infer(FRAMES, SHAPE);
    assert.deepEqual(Array.from(r.logits), [1, 2, 3, 4]);
    assert.equal(r.modelVersion, "v9");
    assert.equal(seen!.path, "/v2/models/big%20model/infer");
    const input = (seen!.body.inputs as { name: string; shape: number[]; datatype: string; data: number[] }[])[0];
    assert.deepEqual([input.name, input.shape, input.datatype, input.data.length], ["frames", SHAPE, "FP32", 48]);
  } finally {
    await s.close();
  }
});
