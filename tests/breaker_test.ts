/**
 * The cloud circuit breaker: state transitions on a fake clock, the guarded client against loopback servers that
 * fail in every way a cloud can, and the classifier's edge fallback flagged CIRCUIT_OPEN while the circuit is open.
 */
import assert from "node:assert/strict";
import { type CircuitState, createCircuitBreaker, withCircuitBreaker } from "../cloud/circuit_breaker.ts";
import { createOipClient } from "../cloud/oip_client.ts";
import { AppError } from "../errors.ts";

function fakeClock(start = 1000) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

Deno.test("breaker: opens after N consecutive failures, refuses while open, probes once after the cool-down", () => {
  const clock = fakeClock();
  const changes: string[] = [];
  const b = createCircuitBreaker({
    failureThreshold: 3,
    windowSize: 100,
    openMs: 1000,
    maxOpenMs: 4000,
    now: clock.now,
    onStateChange: (from, to) => changes.push(`${from}->${to}`),
  });
  for (let i = 0; i < 2; i++) b.record(b.acquire()!, false);
  assert.equal(b.state(), "closed");
  b.record(b.acquire()!, true); // a success resets the consecutive count
  for (let i = 0; i < 2; i++) b.record(b.acquire()!, false);
  assert.equal(b.state(), "closed");
  b.record(b.acquire()!, false);
  assert.equal(b.state(), "open");
  assert.equal(b.acquire(), null);
  assert.equal(b.retryInMs(), 1000);
  clock.advance(999);
  assert.equal(b.acquire(), null);
  clock.advance(1);
  assert.equal(b.state(), "half_open");
  const probe = b.acquire();
  assert.ok(probe?.probe);
  // Only one probe at a time: every other call is refused meanwhile.
  assert.equal(b.acquire(), null);
  assert.equal(b.acquire(), null);
  b.record(probe!, true);
  assert.equal(b.state(), "closed");
  assert.deepEqual(changes, ["closed->open", "open->half_open", "half_open->closed"]);
  const s = b.stats();
  assert.equal(s.opened, 1);
  assert.equal(s.refused, 4);
});

Deno.test("breaker: a failed probe reopens with a doubled cool-down, capped; a success resets it", () => {
  const clock = fakeClock();
  const b = createCircuitBreaker({ failureThreshold: 1, openMs: 1000, maxOpenMs: 3000, now: clock.now });
  b.record(b.acquire()!, false);
  const cooldowns: number[] = [];
  for (let i = 0; i < 4; i++) {
    cooldowns.push(b.retryInMs());
    clock.advance(b.retryInMs());
    const probe = b.acquire()!;
    assert.ok(probe.probe);
    b.record(probe, false);
    assert.equal(b.state(), "open");
  }
  assert.deepEqual(cooldowns, [1000, 2000, 3000, 3000]);
  clock.advance(3000);
  b.record(b.acquire()!, true);
  assert.equal(b.state(), "closed");
  b.record(b.acquire()!, false);
  assert.equal(b.retryInMs(), 1000);
});

Deno.test("breaker: opens on the failure ratio over a full window, not before it is full", () => {
  const clock = fakeClock();
  const b = createCircuitBreaker({ failureThreshold: 100, failureRatio: 0.5, windowSize: 10, now: clock.now });
  // Alternate: never 2 failures in a row, but half the calls fail.
  for (let i = 0; i < 9; i++) b.record(b.acquire()!, i % 2 === 0);
  assert.equal(b.state(), "closed", "9 calls: the window is not full yet");
  b.record(b.acquire()!, true);
  assert.equal(b.state(), "closed", "4 of 10 failed");
  b.record(b.acquire()!, false);
  assert.equal(b.state(), "open", "5 of the last 10 failed");
});

Deno.test("breaker: a late outcome from an earlier state changes nothing", () => {
  const clock = fakeClock();
  const b = createCircuitBreaker({ failureThreshold: 2, openMs: 100, now: clock.now });
  const slow = b.acquire()!; // started while closed, ends after the circuit opened
  b.record(b.acquire()!, false);
  b.record(b.acquire()!, false);
  assert.equal(b.state(), "open");
  b.record(slow, true);
  assert.equal(b.state(), "open", "a late success must not close an open circuit");
  clock.advance(100);
  const probe = b.acquire()!;
  const lateFailure = { generation: slow.generation, probe: false };
  b.record(lateFailure, false);
  assert.equal(b.state(), "half_open");
  // A cancelled probe gives its turn back.
  b.release(probe);
  const again = b.acquire();
  assert.ok(again?.probe);
});

Deno.test("breaker: refuses out-of-range options, naming them", () => {
  assert.throws(() => createCircuitBreaker({ failureThreshold: 0 }), /failureThreshold must be an integer/);
  assert.throws(() => createCircuitBreaker({ failureRatio: 0 }), /failureRatio must be in \(0, 1\]/);
  assert.throws(() => createCircuitBreaker({ failureRatio: 1.5 }), /failureRatio/);
  assert.throws(() => createCircuitBreaker({ windowSize: 1.5 }), /windowSize/);
  assert.throws(() => createCircuitBreaker({ openMs: 5000, maxOpenMs: 1000 }), /maxOpenMs/);
  assert.throws(() => createCircuitBreaker({ openMs: NaN }), /openMs/);
});

// --- the guarded client against loopback servers -----------------------------------------------------------

const SHAPE = [1, 4, 2, 3];
const FRAMES = new Float32Array(24).fill(0.25);

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * The client's deadline in these tests, and how long the slow kinds take: far apart, so that a loaded machine
 * cannot turn a refused connection or a bad reply into a timeout (or a slow reply into an answer).
 */
const DEADLINE_MS = 1000;
const SLOW_REPLY_MS = 4000;

/** A loopback server whose every answer fails in one way; `hits` counts the requests that reached it. */
function failingServer(kind: "5xx" | "malformed" | "wrong_shape" | "slow" | "hang_mid_body") {
  const timers: ReturnType<typeof setTimeout>[] = [];
  const state = { hits: 0 };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    state.hits++;
    await req.arrayBuffer();
    switch (kind) {
      case "5xx":
        return Response.json({ error: "GPU fell over" }, { status: 503 });
      case "malformed":
        return new Response('{"outputs": [', { headers: { "content-type": "application/json" } });
      case "wrong_shape":
        return Response.json({ outputs: [{ name: "logits", shape: [1, 3], datatype: "FP32", data: [1, 2] }] });
      case "slow":
        await new Promise((r) => timers.push(setTimeout(r, SLOW_REPLY_MS)));
        return Response.json({});
      case "hang_mid_body": {
        const body = new ReadableStream<Uint8Array>({
          start(controller) {
            controller.enqueue(new TextEncoder().encode('{"outputs":[{"name":"logits","data":[1,'));
            timers.push(setTimeout(() => controller.close(), SLOW_REPLY_MS));
          },
        });
        return new Response(body, { headers: { "content-type": "application/json" } });
      }
    }
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    state,
    async close() {
      await server.shutdown();
      timers.forEach(clearTimeout);
    },
  };
}

const FAILURES: [string, "refused" | "5xx" | "malformed" | "wrong_shape" | "slow" | "hang_mid_body", string][] = [
  ["connection refused", "refused", "OFFLOAD_FAILED"],
  ["a 5xx reply", "5xx", "OFFLOAD_FAILED"],
  ["a malformed reply", "malformed", "OFFLOAD_FAILED"],
  ["a wrong-shape reply", "wrong_shape", "OFFLOAD_FAILED"],
  ["a timeout", "slow", "OFFLOAD_TIMEOUT"],
  ["a hang mid-body", "hang_mid_body", "OFFLOAD_TIMEOUT"],
];

for (const [what, kind, code] of FAILURES) {
  Deno.test(`guarded client: ${what} counts as a failure; the open circuit stops calling the cloud`, async () => {
    const server = kind === "refused" ? null : failingServer(kind);
    const clock = fakeClock();
    const breaker = createCircuitBreaker({ failureThreshold: 2, openMs: 1000, now: clock.now });
    const client = withCircuitBreaker(
      createOipClient({
        baseUrl: server?.url ?? `http://127.0.0.1:${closedPort()}`,
        modelName: "m",
        timeoutMs: DEADLINE_MS,
      }),
      breaker,
    );
    try {
      for (let i = 0; i < 2; i++) {
        await assert.rejects(client.infer(FRAMES, SHAPE), (e: AppError) => e.code === code);
      }
      assert.equal(breaker.state(), "open");
      const before = server?.state.hits ?? 0;
      for (let i = 0; i < 20; i++) {
        await assert.rejects(client.infer(FRAMES, SHAPE), (e: AppError) => e.code === "CIRCUIT_OPEN");
      }
      assert.equal(server?.state.hits ?? 0, before, "no call reached the cloud while open");
      // Metadata and readiness are not guarded: health checks still see the cloud.
      assert.equal(typeof client.ready, "function");
    } finally {
      await server?.close();
    }
  });
}

Deno.test("guarded client: after the cool-down one probe goes out, and a healthy cloud closes the circuit", async () => {
  let healthy = false;
  let hits = 0;
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    hits++;
    await req.arrayBuffer();
    if (!healthy) return new Response("down", { status: 500 });
    return Response.json({ outputs: [{ name: "logits", shape: [1, 3], datatype: "FP32", data: [0, 1, 0] }] });
  });
  const clock = fakeClock();
  const states: CircuitState[] = [];
  const breaker = createCircuitBreaker({
    failureThreshold: 1,
    openMs: 500,
    now: clock.now,
    onStateChange: (_, to) => states.push(to),
  });
  const client = withCircuitBreaker(
    createOipClient({ baseUrl: `http://127.0.0.1:${server.addr.port}`, modelName: "m", timeoutMs: 500 }),
    breaker,
  );
  try {
    await assert.rejects(client.infer(FRAMES, SHAPE), (e: AppError) => e.code === "OFFLOAD_FAILED");
    healthy = true;
    clock.advance(500);
    // Many callers at once after the cool-down: exactly one probe reaches the cloud.
    const settled = await Promise.allSettled(Array.from({ length: 10 }, () => client.infer(FRAMES, SHAPE)));
    assert.equal(settled.filter((s) => s.status === "fulfilled").length, 1);
    assert.equal(hits, 2);
    assert.equal(breaker.state(), "closed");
    assert.deepEqual(states, ["open", "half_open", "closed"]);
    const reply = await client.infer(FRAMES, SHAPE);
    assert.deepEqual(Array.from(reply.logits), [0, 1, 0]);
  } finally {
    await server.shutdown();
  }
});

Deno.test("guarded client: a caller's cancellation and a wrong shape from this app do not count", async () => {
  const clock = fakeClock();
  const breaker = createCircuitBreaker({ failureThreshold: 1, now: clock.now });
  const client = withCircuitBreaker(
    createOipClient({ baseUrl: `http://127.0.0.1:${closedPort()}`, modelName: "m", timeoutMs: 100 }),
    breaker,
  );
  await assert.rejects(client.infer(FRAMES, [2, 4, 2, 3]), TypeError);
  const controller = new AbortController();
  controller.abort();
  await assert.rejects(client.infer(FRAMES, SHAPE, { signal: controller.signal }));
  assert.equal(breaker.state(), "closed");
});

Deno.test("classifier behind the breaker: once open, offloads answer the edge label at once, flagged CIRCUIT_OPEN", async () => {
  const { testApp, fakeCloud } = await import("./reliability_app.ts");
  const clock = fakeClock();
  const breaker = createCircuitBreaker({ failureThreshold: 2, openMs: 1000, now: clock.now });
  let down = true;
  const cloud = fakeCloud(
    () => (down ? new AppError("OFFLOAD_FAILED", "Cannot offload: the cloud answered 503") : null),
  );
  const { app, rows } = testApp({ score: 0.9, cloud, breaker });
  const post = async () =>
    await (await app.request("/v1/classify", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ layout: "tiny", fps: 10, frames: [[[0, 0, 1], [0, 0, 1]]] }),
    })).json();
  for (let i = 0; i < 2; i++) assert.equal((await post()).cloudError.code, "OFFLOAD_FAILED");
  for (let i = 0; i < 5; i++) {
    const a = await post();
    assert.equal(a.route, "edge_fallback");
    assert.equal(a.degraded, true);
    assert.equal(a.label, a.edge.label);
    assert.equal(a.cloudError.code, "CIRCUIT_OPEN");
  }
  assert.equal(cloud.calls, 2, "no call while open");
  assert.deepEqual(
    rows.slice(2).map((r) => [r.route, r.routeReason, r.cloudError]),
    Array(5).fill(["edge_fallback", "cloud_unavailable", "CIRCUIT_OPEN"]),
  );
  down = false;
  clock.advance(1000);
  const probe = await post();
  assert.equal(probe.route, "cloud");
  assert.equal(breaker.state(), "closed");
  assert.equal(cloud.calls, 3);
});
