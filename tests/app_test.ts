/**
 * HTTP tests through `app.request()`: the real routes and hybrid classifier, with fake inference, cloud and log
 * adapters so that every score, reply and delay is fixed.
 */
import assert from "node:assert/strict";
import type { DecisionRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { createHybridClassifier } from "../serve/classifier.ts";
import { createApp } from "../main.ts";
import { PUBLIC_FIELDS } from "../routes/decisions.ts";
import { fakeCloud as fakeModelsCloud, fakeInference, MANIFEST, SPEC, SWITCHER } from "./fixtures/fake_models.ts";

/** The fake cloud, checking that every call's frames fill its shape. */
function fakeCloud(behaviour: { fail?: AppError } = {}) {
  return fakeModelsCloud({
    fail: () => behaviour.fail ?? null,
    check: (frames, shape) => assert.equal(frames.length, shape.reduce((a, b) => a * b, 1)),
  });
}

const TOKEN = "t".repeat(32);

function setup(
  options: {
    score?: number;
    threshold?: number;
    cloud?: ReturnType<typeof fakeCloud>;
    budget?: () => boolean;
    adminToken?: string;
  } = {},
) {
  const rows: DecisionRecord[] = [];
  let n = 0;
  const newId = () => `id-${++n}`;
  const cloud = options.cloud ?? fakeCloud();
  // The release that scores every batch names the threshold in force.
  const release = { ...SWITCHER, threshold: options.threshold ?? 0.5 };
  const inference = fakeInference({ score: () => options.score ?? 0.1, release: () => release });
  const classifier = createHybridClassifier({
    inference,
    cloud,
    log: { append: (r) => rows.push(r) },
    edgeSpec: SPEC,
    cloudSpec: MANIFEST.cloud,
    cloudTimeoutMs: 100,
    takeOffloadToken: options.budget ?? (() => true),
    edgeLocation: "test",
    newId,
  });
  const app = createApp({
    config: { maxBodyBytes: 64 * 1024, maxFrames: 8, maxBatchItems: 3 },
    manifest: MANIFEST,
    classifier,
    inference,
    switcher: () => release,
    cloudUrl: "http://127.0.0.1:1",
    decisions: {
      getDecision: (id) => Promise.resolve(rows.find((r) => r.id === id) ?? null),
      adminToken: options.adminToken,
    },
    health: {
      modelsReady: () => true,
      database: () => Promise.resolve(true),
      cloud: () => Promise.resolve(false),
      logBacklog: () => 0,
    },
    newId,
  });
  return { app, rows, cloud };
}

const frames = (t: number, j = 2, c = 3) =>
  Array.from({ length: t }, () => Array.from({ length: j }, () => Array(c).fill(0.5)));
const body = (extra: Record<string, unknown> = {}) => ({
  id: "cam-1",
  layout: "tiny",
  fps: 10,
  frames: frames(5),
  ...extra,
});

function post(app: ReturnType<typeof setup>["app"], path: string, payload: unknown, type = "application/json") {
  return app.request(path, {
    method: "POST",
    headers: { "content-type": type },
    body: typeof payload === "string" ? payload : JSON.stringify(payload),
  });
}

Deno.test("POST /v1/classify keeps a request below the threshold on the edge", async () => {
  const { app, rows, cloud } = setup({ score: 0.49, threshold: 0.5 });
  const res = await post(app, "/v1/classify", body());
  assert.equal(res.status, 200);
  assert.ok(res.headers.get("x-request-id"));
  const a = await res.json();
  assert.equal(a.route, "edge");
  assert.equal(a.routeReason, "below_threshold");
  assert.equal(a.label, "a");
  assert.equal(a.id, "cam-1");
  assert.equal(a.degraded, false);
  assert.deepEqual(a.switcher, { score: 0.49, threshold: 0.5, version: "switcher-test" });
  assert.equal(cloud.calls, 0);
  assert.equal(rows.length, 1);
  assert.equal(rows[0].id, a.decisionId);
  assert.equal(rows[0].route, "edge");
  assert.equal(rows[0].offloadProbability, 0);
  assert.equal(rows[0].cloudLabel, null);
  assert.equal(rows[0].requestId, res.headers.get("x-request-id"));
});

Deno.test("every answer carries the service's own time in Server-Timing (app;dur=<ms>), errors included", async () => {
  const { app } = setup();
  const started = performance.now();
  const ok = await post(app, "/v1/classify", body());
  const wall = performance.now() - started;
  const bad = await post(app, "/v1/classify", "{");
  const missing = await app.request("/nope");
  for (const res of [ok, bad, missing]) {
    const header = res.headers.get("server-timing") ?? "";
    const m = header.match(/^app;dur=(\d+\.\d{3})$/);
    assert.ok(m, `Server-Timing: ${header}`);
    assert.ok(Number(m[1]) >= 0);
    await res.body?.cancel();
  }
  // The service's own time is inside what the caller waited.
  assert.ok(Number(ok.headers.get("server-timing")!.slice(8)) <= wall);
  assert.equal(bad.status, 400);
  assert.equal(missing.status, 404);
});

Deno.test("POST /v1/classify offloads a request exactly at the threshold", async () => {
  const { app, rows, cloud } = setup({ score: 0.5, threshold: 0.5 });
  const a = await (await post(app, "/v1/classify", body())).json();
  assert.equal(a.route, "cloud");
  assert.equal(a.routeReason, "above_threshold");
  assert.equal(a.label, "b");
  assert.equal(a.edge.label, "a");
  assert.equal(a.cloud.label, "b");
  assert.equal(a.models.cloud, "cloud-test");
  assert.equal(cloud.calls, 1);
  assert.equal(rows[0].route, "cloud");
  assert.equal(rows[0].offloadProbability, 1);
  assert.equal(rows[0].cloudLabel, "b");
  assert.equal(rows[0].edgeLabel, "a");
  assert.equal(rows[0].cloudProbs?.length, 3);
});

Deno.test("POST /v1/classify offloads a request above the threshold", async () => {
  const { app } = setup({ score: 0.9, threshold: 0.5 });
  assert.equal((await (await post(app, "/v1/classify", body())).json()).route, "cloud");
});

Deno.test("POST /v1/classify keeps a request on the edge when the offload budget is spent", async () => {
  const { app, rows, cloud } = setup({ score: 0.9, threshold: 0.5, budget: () => false });
  const a = await (await post(app, "/v1/classify", body())).json();
  assert.equal(a.route, "edge");
  assert.equal(a.routeReason, "budget_exhausted");
  assert.equal(cloud.calls, 0);
  assert.equal(rows[0].routeReason, "budget_exhausted");
});

Deno.test("POST /v1/classify honours a forced route and logs that it was forced", async () => {
  const low = setup({ score: 0.0 });
  const toCloud = await (await post(low.app, "/v1/classify", body({ route: "cloud" }))).json();
  assert.equal(toCloud.route, "cloud");
  assert.equal(toCloud.routeReason, "forced_cloud");
  assert.equal(toCloud.forced, true);
  assert.equal(low.rows[0].forced, true);
  const high = setup({ score: 1 });
  const toEdge = await (await post(high.app, "/v1/classify", body({ route: "edge" }))).json();
  assert.equal(toEdge.route, "edge");
  assert.equal(toEdge.routeReason, "forced_edge");
  assert.equal(high.rows[0].forced, true);
  assert.equal(high.cloud.calls, 0);
});

Deno.test("POST /v1/classify falls back to the edge answer when the cloud fails, and says so", async () => {
  const cloud = fakeCloud({ fail: new AppError("OFFLOAD_TIMEOUT", "Cannot offload: no reply within 100 ms") });
  const { app, rows } = setup({ score: 0.9, cloud });
  const res = await post(app, "/v1/classify", body());
  assert.equal(res.status, 200);
  const a = await res.json();
  assert.equal(a.route, "edge_fallback");
  assert.equal(a.degraded, true);
  assert.equal(a.label, "a");
  assert.deepEqual(a.cloudError, { code: "OFFLOAD_TIMEOUT", message: "Cannot offload: no reply within 100 ms" });
  assert.equal(rows[0].route, "edge_fallback");
  assert.equal(rows[0].cloudError, "OFFLOAD_TIMEOUT");
  assert.equal(rows[0].label, "a");
});

Deno.test("POST /v1/classify rejects every bad input with a 4xx and a code", async () => {
  const { app, rows } = setup();
  const cases: [unknown, number, string, string?][] = [
    ["{not json", 400, "INVALID_INPUT", "application/json"],
    ["", 400, "INVALID_INPUT", "application/json"],
    [body(), 415, "UNSUPPORTED_MEDIA_TYPE", "text/plain"],
    [{ layout: "tiny", fps: 10 }, 400, "INVALID_INPUT"],
    [body({ frames: "x" }), 400, "INVALID_INPUT"],
    [body({ frames: [] }), 400, "INVALID_INPUT"],
    [body({ frames: frames(9) }), 400, "INVALID_INPUT"],
    [body({ frames: frames(2, 3) }), 400, "INVALID_INPUT"],
    [body({ frames: frames(2, 2, 2) }), 400, "INVALID_INPUT"],
    [body({ frames: [frames(1)[0], [[1, 1, 1]]] }), 400, "INVALID_INPUT"],
    ['{"layout":"tiny","fps":10,"frames":[[[1e400,0,1],[0,0,1]]]}', 400, "INVALID_INPUT"],
    [body({ layout: "coco17" }), 400, "INVALID_INPUT"],
    [body({ fps: -1 }), 400, "INVALID_INPUT"],
    [body({ route: "moon" }), 400, "INVALID_INPUT"],
    [
      body({ frames: frames(8, 2, 3).map((f) => f.map((p) => p.map(() => "1".repeat(2000)))) }),
      413,
      "PAYLOAD_TOO_LARGE",
    ],
  ];
  for (const [payload, status, code, type] of cases) {
    const res = await post(app, "/v1/classify", payload, type);
    const json = await res.json();
    assert.equal(res.status, status, `status for ${JSON.stringify(payload).slice(0, 80)}: ${JSON.stringify(json)}`);
    assert.equal(json.code, code);
    assert.equal(typeof json.message, "string");
    assert.ok(!("stack" in json));
  }
  assert.equal(rows.length, 0);
});

Deno.test("POST /v1/classify names the problem in its message", async () => {
  const { app } = setup();
  const wrongJoints = await (await post(app, "/v1/classify", body({ frames: frames(2, 3) }))).json();
  assert.equal(wrongJoints.message, "Cannot read frames: expected 2 points in frame 0, got 3");
  const wrongLayout = await (await post(app, "/v1/classify", body({ layout: "coco17" }))).json();
  assert.equal(wrongLayout.message, 'Cannot classify: the loaded model was built for layout "tiny", got "coco17"');
  const tooLong = await (await post(app, "/v1/classify", body({ frames: frames(9) }))).json();
  assert.equal(tooLong.message, "Cannot read frames: expected at most 8 frames, got more");
});

Deno.test("POST /v1/classify/batch answers each item on its own", async () => {
  const { app, rows, cloud } = setup({ score: 0.9 });
  const res = await post(app, "/v1/classify/batch", {
    items: [body({ id: "x" }), body({ frames: frames(2, 5) }), body({ id: "z" })],
  });
  assert.equal(res.status, 200);
  const { batchId, results } = await res.json();
  assert.equal(results.length, 3);
  assert.deepEqual(results.map((r: { ok: boolean }) => r.ok), [true, false, true]);
  assert.equal(results[1].code, "INVALID_INPUT");
  assert.equal(results[0].id, "x");
  assert.equal(results[2].id, "z");
  assert.equal(results[0].route, "cloud");
  // One cloud call for the whole batch.
  assert.equal(cloud.calls, 1);
  assert.equal(rows.length, 2);
  assert.ok(rows.every((r) => r.batchId === batchId));
});

Deno.test("POST /v1/classify/batch rejects too many or no items", async () => {
  const { app } = setup();
  const many = await post(app, "/v1/classify/batch", { items: [body(), body(), body(), body()] });
  assert.equal(many.status, 400);
  assert.equal((await many.json()).message, "Cannot classify batch: expected at most 3 items, got more");
  const none = await post(app, "/v1/classify/batch", { items: [] });
  assert.equal(none.status, 400);
  assert.equal((await none.json()).code, "INVALID_INPUT");
});

Deno.test("GET /v1/decisions/{id} returns the public view, the whole record with the admin token, or 404", async () => {
  const { app } = setup({ adminToken: TOKEN });
  const a = await (await post(app, "/v1/classify", body())).json();
  const res = await app.request(`/v1/decisions/${a.decisionId}`);
  assert.equal(res.status, 200);
  const d = await res.json();
  assert.deepEqual(Object.keys(d).sort(), [...PUBLIC_FIELDS].sort());
  assert.equal(d.id, a.decisionId);
  assert.equal(d.route, "edge");
  assert.equal(d.label, a.label);
  for (const hidden of ["clientId", "requestId", "batchId", "edgeLocation", "embedding", "features", "edgeProbs"]) {
    assert.ok(!(hidden in d), hidden);
  }
  const full = await app.request(`/v1/decisions/${a.decisionId}`, { headers: { authorization: `Bearer ${TOKEN}` } });
  const f = await full.json();
  assert.equal(f.clientId, "cam-1");
  assert.deepEqual(f.embedding, [1, 2]);
  const wrong = await app.request(`/v1/decisions/${a.decisionId}`, { headers: { authorization: "Bearer nope" } });
  assert.equal(wrong.status, 401);
  assert.equal((await wrong.json()).code, "UNAUTHORIZED");
  const missing = await app.request("/v1/decisions/nope");
  assert.equal(missing.status, 404);
  assert.equal((await missing.json()).code, "NOT_FOUND");
});

Deno.test("GET /v1/models, /healthz and /readyz describe what is loaded", async () => {
  const { app } = setup();
  const models = await (await app.request("/v1/models")).json();
  assert.equal(models.edge.version, "edge-test");
  assert.equal(models.switcher.version, "switcher-test");
  assert.equal(models.switcher.threshold, 0.5);
  assert.equal((await app.request("/healthz")).status, 200);
  const ready = await app.request("/readyz");
  assert.equal(ready.status, 200);
  assert.deepEqual(await ready.json(), { ready: true, models: true, database: true, cloud: false, logBacklog: 0 });
});

Deno.test("GET /openapi.json documents every route from the validating schemas", async () => {
  const { app } = setup();
  const doc = await (await app.request("/openapi.json")).json();
  for (const p of ["/v1/classify", "/v1/classify/batch", "/v1/decisions/{id}", "/v1/models", "/healthz", "/readyz"]) {
    assert.ok(doc.paths[p], `missing ${p}`);
  }
  assert.ok(doc.components.schemas.Sequence.properties.frames);
  assert.ok(doc.components.schemas.ClassifyRequest);
});

Deno.test("unknown paths get 404 NOT_FOUND and responses carry security headers", async () => {
  const { app } = setup();
  const res = await app.request("/nope");
  assert.equal(res.status, 404);
  assert.equal((await res.json()).code, "NOT_FOUND");
  assert.equal(res.headers.get("x-content-type-options"), "nosniff");
});

Deno.test("without pose workers the camera-frames routes answer 404 NOT_FOUND saying why and where keypoints go", async () => {
  const { app } = setup();
  for (const path of ["/v1/classify/frames", "/v1/classify/frames/batch"]) {
    const res = await app.request(path, {
      method: "POST",
      body: "{}",
      headers: { "content-type": "application/json" },
    });
    assert.equal(res.status, 404);
    const body = await res.json();
    assert.equal(body.code, "NOT_FOUND");
    assert.match(body.message, /no pose workers \(POSE_WORKERS=0/);
    assert.match(body.message, /POST \/v1\/classify$/);
  }
  const other = await app.request("/v1/classify/framesx");
  assert.equal((await other.json()).message, "Cannot find GET /v1/classify/framesx");
});
