/**
 * The Open Inference Protocol client against loopback servers that answer, or fail, in each way a cloud can:
 * every failure maps to OFFLOAD_TIMEOUT or OFFLOAD_FAILED, and the deadline is honoured.
 */
import assert from "node:assert/strict";
import { createOipClient } from "../cloud/oip_client.ts";
import type { OipInferRequest } from "../cloud/oip_types.ts";
import { AppError } from "../errors.ts";

const SHAPE = [2, 4, 2, 3];
const FRAMES = Float32Array.from({ length: 48 }, (_, i) => ((i * 37) % 11) / 11 - 0.3);
/** Deadline + margin: generous, since this checks behaviour, not speed, on a shared machine. */
const MARGIN_MS = 700;

/**
 * A loopback server that answers with the handler; closed by the test. `hold()` is a promise that settles when
 * the server closes: a handler awaiting it stands for a server that never answers in time.
 */
function fakeServer(handler: (req: Request, hold: () => Promise<void>) => Response | Promise<Response>) {
  const held: (() => void)[] = [];
  const hold = () => new Promise<void>((resolve) => held.push(resolve));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, (req) => handler(req, hold));
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    close: () => {
      held.forEach((release) => release());
      return server.shutdown();
    },
  };
}

function logitsReply(data: unknown, shape: unknown = [2, 3], extra: Record<string, unknown> = {}) {
  return Response.json({
    model_name: "cloud",
    model_version: "v9",
    outputs: [{ name: "logits", shape, datatype: "FP32", data, ...extra }],
  });
}

async function expectCode(promise: Promise<unknown>, code: string, message?: string | RegExp) {
  await assert.rejects(promise, (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, code);
    if (typeof message === "string") assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  });
}

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("client: sends the standard infer request and reads the logits", async () => {
  let seen: { path: string; type: string | null; body: OipInferRequest } | null = null;
  const s = fakeServer(async (req) => {
    seen = { path: new URL(req.url).pathname, type: req.headers.get("content-type"), body: await req.json() };
    return logitsReply([1, 2, 3, 4, 5, 6]);
  });
  try {
    const client = createOipClient({ baseUrl: `${s.url}/`, modelName: "big model", timeoutMs: 2000 });
    const r = await client.infer(FRAMES, SHAPE, { requestId: "req-7" });
    assert.deepEqual(Array.from(r.logits), [1, 2, 3, 4, 5, 6]);
    assert.deepEqual(r.shape, [2, 3]);
    assert.equal(r.modelVersion, "v9");
    assert.ok(r.ms >= 0);
    assert.equal(seen!.path, "/v2/models/big%20model/infer");
    assert.equal(seen!.type, "application/json");
    const { id, inputs, outputs } = seen!.body;
    assert.equal(id, "req-7");
    assert.deepEqual(outputs, [{ name: "logits" }]);
    assert.deepEqual([inputs[0].name, inputs[0].shape, inputs[0].datatype], ["frames", SHAPE, "FP32"]);
    // Short decimals that read back as exactly the same float32 values.
    assert.deepEqual(Float32Array.from(inputs[0].data), FRAMES);
    assert.ok(inputs[0].data.every((v) => String(v).replace(/^-?0\./, "").length <= 10));
  } finally {
    await s.close();
  }
});

Deno.test("client: a versioned model, nested output data, and a single output of another name", async () => {
  const paths: string[] = [];
  const s = fakeServer((req) => {
    paths.push(new URL(req.url).pathname);
    return Response.json({
      model_name: "m",
      outputs: [{ name: "output_0", shape: [2, 2], datatype: "FP64", data: [[1, 2], [3, 4]] }],
    });
  });
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "m", modelVersion: "3", timeoutMs: 2000 });
    const r = await client.infer(FRAMES, SHAPE);
    assert.deepEqual(Array.from(r.logits), [1, 2, 3, 4]);
    assert.equal(r.modelVersion, null);
    assert.deepEqual(paths, ["/v2/models/m/versions/3/infer"]);
  } finally {
    await s.close();
  }
});

Deno.test("client: connection refused is OFFLOAD_FAILED, and not ready", async () => {
  const client = createOipClient({
    baseUrl: `http://127.0.0.1:${closedPort()}`,
    modelName: "cloud",
    timeoutMs: 2000,
  });
  await expectCode(
    client.infer(FRAMES, SHAPE),
    "OFFLOAD_FAILED",
    "Cannot offload: the cloud model server is unreachable",
  );
  await expectCode(
    client.metadata(),
    "OFFLOAD_FAILED",
    "Cannot read the cloud model's metadata: the cloud model server is unreachable",
  );
  assert.equal(await client.ready(), false);
});

Deno.test("client: a server slower than the deadline is OFFLOAD_TIMEOUT, returned within the deadline", async () => {
  const s = fakeServer(async (_req, hold) => {
    await hold();
    return logitsReply([1, 2, 3, 4, 5, 6]);
  });
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 5000 });
    const t0 = performance.now();
    await expectCode(
      client.infer(FRAMES, SHAPE, { timeoutMs: 150 }),
      "OFFLOAD_TIMEOUT",
      "Cannot offload: no reply within 150 ms",
    );
    const elapsed = performance.now() - t0;
    assert.ok(elapsed >= 140 && elapsed < 150 + MARGIN_MS, `returned after ${elapsed} ms`);
    assert.equal(await client.ready({ timeoutMs: 100 }), false);
  } finally {
    await s.close();
  }
});

Deno.test("client: a server that hangs mid-body is OFFLOAD_TIMEOUT, returned within the deadline", async () => {
  const timers: ReturnType<typeof setTimeout>[] = [];
  const s = fakeServer(() => {
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('{"model_name":"cloud","outputs":[{"name":"logits","data":[1,'));
        timers.push(setTimeout(() => controller.close(), 5000));
      },
    });
    return new Response(body, { headers: { "content-type": "application/json" } });
  });
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 150 });
    const t0 = performance.now();
    await expectCode(
      client.infer(FRAMES, SHAPE),
      "OFFLOAD_TIMEOUT",
      "Cannot offload: reply not complete within 150 ms",
    );
    const elapsed = performance.now() - t0;
    assert.ok(elapsed < 150 + MARGIN_MS, `returned after ${elapsed} ms`);
  } finally {
    timers.forEach(clearTimeout);
    await s.close();
  }
});

Deno.test("client: the caller's signal cancels (OFFLOAD_FAILED), or times out (OFFLOAD_TIMEOUT)", async () => {
  const s = fakeServer(async (_req, hold) => {
    await hold();
    return logitsReply([1, 2, 3, 4, 5, 6]);
  });
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 5000 });
    const cancel = new AbortController();
    const cancelled = client.infer(FRAMES, SHAPE, { signal: cancel.signal });
    setTimeout(() => cancel.abort(), 50);
    await expectCode(cancelled, "OFFLOAD_FAILED", "Cannot offload: the call was cancelled");
    await expectCode(
      client.infer(FRAMES, SHAPE, { signal: AbortSignal.timeout(50) }),
      "OFFLOAD_TIMEOUT",
      "Cannot offload: no reply within 5000 ms",
    );
  } finally {
    await s.close();
  }
});

Deno.test("client: error statuses, malformed JSON and bad logits are OFFLOAD_FAILED", async () => {
  const replies: [() => Response, string][] = [
    [
      () => Response.json({ error: "GPU out of memory" }, { status: 500 }),
      "Cannot offload: the cloud answered 500: GPU out of memory",
    ],
    [() => new Response("<html>bad gateway</html>", { status: 502 }), "Cannot offload: the cloud answered 502"],
    [
      () => Response.json({ error: "unknown model" }, { status: 404 }),
      "Cannot offload: the cloud answered 404: unknown model",
    ],
    [() => new Response("{not json", { status: 200 }), "Cannot offload: the cloud's reply is not JSON"],
    [() => new Response("", { status: 200 }), "Cannot offload: the cloud's reply is not JSON"],
    [() => Response.json(null), "Cannot offload: the reply has no logits output"],
    [() => Response.json({ model_name: "cloud", outputs: [] }), "Cannot offload: the reply has no logits output"],
    [
      () =>
        Response.json({ outputs: [{ name: "a", shape: [2, 3], data: [] }, { name: "b", shape: [2, 3], data: [] }] }),
      "Cannot offload: the reply has no logits output",
    ],
    [() => logitsReply([1, 2, 3], [1, 3]), "Cannot offload: expected logits of shape [2, K], got [1, 3] with 3 values"],
    [() => logitsReply([1, 2, 3], [2, 3]), "Cannot offload: expected logits of shape [2, K], got [2, 3] with 3 values"],
    [
      () => logitsReply([1, 2, 3, 4, 5, 6], [2, 3, 1]),
      "Cannot offload: expected logits of shape [2, K], got [2, 3, 1] with 6 values",
    ],
    [() => logitsReply([1, null], [2, 1]), "Cannot offload: logits value 1 is not a finite number"],
    [() => logitsReply([1, "2"], [2, 1]), "Cannot offload: logits value 1 is not a finite number"],
    [() => logitsReply(["a", "b"], [2, 1], { datatype: "BYTES" }), "Cannot offload: expected FP32 logits, got BYTES"],
  ];
  let next: () => Response = () => new Response();
  const s = fakeServer(() => next());
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 2000 });
    for (const [reply, message] of replies) {
      next = reply;
      await expectCode(client.infer(FRAMES, SHAPE), "OFFLOAD_FAILED", message);
    }
  } finally {
    await s.close();
  }
});

Deno.test("client: ready() follows the status (Triton's empty 200 too) unless the body says not ready", async () => {
  let next: () => Response = () => new Response();
  const s = fakeServer(() => next());
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 2000 });
    const cases: [() => Response, boolean][] = [
      [() => new Response(null, { status: 200 }), true],
      [() => Response.json({ name: "cloud", ready: true }), true],
      [() => Response.json({ name: "cloud", ready: false }), false],
      [() => new Response(null, { status: 400 }), false],
      [() => Response.json({ error: "unknown model" }, { status: 404 }), false],
    ];
    for (const [reply, ready] of cases) {
      next = reply;
      assert.equal(await client.ready(), ready);
    }
  } finally {
    await s.close();
  }
});

Deno.test("client: metadata() returns the server's metadata and refuses a malformed one", async () => {
  const meta = {
    name: "cloud",
    versions: ["1"],
    platform: "onnxruntime_onnx",
    inputs: [{ name: "frames", datatype: "FP32", shape: [-1, 4, 2, 3] }],
    outputs: [{ name: "logits", datatype: "FP32", shape: [-1, 3] }],
  };
  let next: () => Response = () => Response.json(meta);
  const s = fakeServer((
    req,
  ) => (new URL(req.url).pathname === "/v2/models/cloud" ? next() : new Response(null, { status: 404 })));
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 2000 });
    assert.deepEqual(await client.metadata(), meta);
    next = () => Response.json({ name: "cloud" });
    await expectCode(
      client.metadata(),
      "OFFLOAD_FAILED",
      "Cannot read the cloud model's metadata: expected name, inputs and outputs",
    );
  } finally {
    await s.close();
  }
});

Deno.test("client: refuses a shape that does not fit the frames, and a base URL that is not http(s)", async () => {
  const client = createOipClient({ baseUrl: "http://127.0.0.1:1", modelName: "cloud", timeoutMs: 100 });
  await assert.rejects(
    () => client.infer(FRAMES, [2, 4, 2, 2]),
    new TypeError("Cannot offload: shape [2, 4, 2, 2] holds 32 values, got 48"),
  );
  await assert.rejects(
    () => client.infer(FRAMES, [2, 0, 24]),
    new TypeError("Cannot offload: expected a shape of positive integers, got [2, 0, 24]"),
  );
  assert.throws(
    () => createOipClient({ baseUrl: "127.0.0.1:8001", modelName: "cloud", timeoutMs: 100 }),
    new TypeError('Cannot create the cloud client: expected an http(s) base URL, got "(not a URL)"'),
  );
});

Deno.test("client: a reply larger than the model's outputs can be is refused while it streams, within the deadline", async () => {
  let pulled = 0;
  const chunk = new TextEncoder().encode("0.123456789,".repeat(8192));
  const s = fakeServer(() =>
    new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(new TextEncoder().encode('{"outputs":[{"name":"logits","shape":[2,1000000],"data":['));
        },
        pull(c) {
          // 100 MB, lazily: the client must stop reading long before.
          if (pulled > 100e6) return c.close();
          pulled += chunk.length;
          c.enqueue(chunk);
        },
      }),
      { headers: { "content-type": "application/json" } },
    )
  );
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 5000, outputSize: 3 });
    const t = performance.now();
    await expectCode(
      client.infer(FRAMES, SHAPE),
      "OFFLOAD_FAILED",
      /^Cannot offload: the reply is larger than \d+ bytes$/,
    );
    assert.ok(performance.now() - t < 5000);
    assert.ok(pulled < 20e6, `the server produced ${pulled} bytes before the client cut it off`);
  } finally {
    await s.close();
  }
});

Deno.test("client: a declared content-length over the bound is refused before reading the body", async () => {
  const big = JSON.stringify({ outputs: [{ name: "logits", shape: [2, 3], data: Array(200_000).fill(0.5) }] });
  const s = fakeServer(() => new Response(big, { headers: { "content-type": "application/json" } }));
  try {
    const client = createOipClient({ baseUrl: s.url, modelName: "cloud", timeoutMs: 5000, outputSize: 3 });
    await expectCode(client.infer(FRAMES, SHAPE), "OFFLOAD_FAILED", /the reply is larger than \d+ bytes/);
  } finally {
    await s.close();
  }
});

Deno.test("client: parsing counts against the deadline: a reply that completes after it is OFFLOAD_TIMEOUT", async () => {
  const s = fakeServer(() => logitsReply([1, 2, 3, 4, 5, 6]));
  try {
    let now = 0;
    const client = createOipClient({
      baseUrl: s.url,
      modelName: "cloud",
      timeoutMs: 100,
      outputSize: 3,
      // The clock jumps past the deadline while the reply is read: what a slow parse of a big reply looks like.
      now: () => (now += 60),
    });
    await expectCode(client.infer(FRAMES, SHAPE), "OFFLOAD_TIMEOUT", /within 100 ms/);
  } finally {
    await s.close();
  }
});
