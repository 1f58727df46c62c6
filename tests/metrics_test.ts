/**
 * `GET /metrics` (Prometheus text format, prom-client) and the request observer: the exposition parses line by
 * line, carries the expected series after some requests, and is token-guarded when a token is set; one request id
 * reaches the response header, the JSON log line and the decision row.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { createLogger } from "../observability/logger.ts";
import { classifyBody, testApp, TOKEN } from "./analytics_app.ts";

interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/** Parse the text exposition format 0.0.4 strictly: every line a comment, a sample, or empty; every family typed. */
function parseExposition(text: string): { samples: Sample[]; types: Map<string, string> } {
  const types = new Map<string, string>();
  const samples: Sample[] = [];
  const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (-?(?:\d+(?:\.\d+)?(?:e[+-]?\d+)?|\+Inf|-Inf|NaN))$/;
  const label = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(?:,|$)/gy;
  for (const line of text.split("\n")) {
    if (line === "") continue;
    const type = /^# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)$/.exec(line);
    if (type) {
      types.set(type[1], type[2]);
      continue;
    }
    if (/^# HELP [a-zA-Z_:][a-zA-Z0-9_:]* .+$/.test(line)) continue;
    const m = sampleLine.exec(line);
    assert.ok(m, `not a sample line: ${line}`);
    const labels: Record<string, string> = {};
    if (m[2]) {
      label.lastIndex = 0;
      let consumed = 0;
      for (let l = label.exec(m[2]); l; l = label.exec(m[2])) {
        labels[l[1]] = l[2];
        consumed = label.lastIndex;
      }
      assert.equal(consumed, m[2].length, `bad labels: ${line}`);
    }
    const family = m[1].replace(/_(bucket|sum|count)$/, "");
    assert.ok(types.has(m[1]) || types.has(family), `no TYPE for ${m[1]}`);
    samples.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return { samples, types };
}

function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  return samples.find((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))?.value;
}

const post = (body: string, headers: Record<string, string> = {}) => ({
  method: "POST",
  headers: { "content-type": "application/json", ...headers },
  body,
});

Deno.test("GET /metrics parses and has every expected series after some requests", async () => {
  const t = await testApp({ score: 0.9, adminToken: null });
  try {
    assert.equal((await t.app.request("/v1/classify", post(classifyBody()))).status, 200);
    assert.equal((await t.app.request("/v1/classify", post(classifyBody({ route: "edge" })))).status, 200);
    assert.equal((await t.app.request("/v1/classify", post("{bad json"))).status, 400);
    assert.equal((await t.app.request("/nowhere")).status, 404);
    assert.equal((await t.app.request("/v1/decisions/id-1")).status, 200);

    const res = await t.app.request("/metrics");
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "text/plain; version=0.0.4; charset=utf-8");
    const { samples, types } = parseExposition(await res.text());
    const loc = { edge_location: "test-location" };

    assert.equal(types.get("http_requests_total"), "counter");
    assert.equal(value(samples, "http_requests_total", { method: "POST", route: "/v1/classify", status: "200" }), 2);
    assert.equal(value(samples, "http_requests_total", { method: "POST", route: "/v1/classify", status: "400" }), 1);
    assert.equal(value(samples, "http_requests_total", { method: "GET", route: "unmatched", status: "404" }), 1);
    assert.equal(
      value(samples, "http_requests_total", { method: "GET", route: "/v1/decisions/:id", status: "200" }),
      1,
    );
    assert.equal(types.get("http_request_duration_seconds"), "histogram");
    assert.equal(
      value(samples, "http_request_duration_seconds_count", { method: "POST", route: "/v1/classify", status: "200" }),
      2,
    );
    assert.equal(
      value(samples, "http_request_duration_seconds_bucket", {
        method: "POST",
        route: "/v1/classify",
        status: "200",
        le: "+Inf",
      }),
      2,
    );

    assert.equal(value(samples, "dmd_decisions_total", { route: "cloud", reason: "above_threshold", ...loc }), 1);
    assert.equal(value(samples, "dmd_decisions_total", { route: "edge", reason: "forced_edge", ...loc }), 1);
    assert.equal(value(samples, "dmd_decision_stage_seconds_count", { stage: "total" }), 2);
    assert.equal(value(samples, "dmd_decision_stage_seconds_count", { stage: "cloud" }), 1);
    assert.equal(value(samples, "dmd_decision_stage_seconds_count", { stage: "queue" }), 2);
    assert.equal(value(samples, "dmd_inference_queue_depth", loc), 3);
    assert.equal(value(samples, "dmd_inference_queue_max"), 8);
    assert.equal(value(samples, "dmd_workers", { state: "busy" }), 1);
    assert.equal(value(samples, "dmd_workers", { state: "idle" }), 1);
    assert.equal(value(samples, "dmd_worker_jobs_completed_total"), 5);
    assert.equal(value(samples, "dmd_worker_jobs_failed_total"), 1);
    assert.equal(value(samples, "dmd_decision_log_backlog"), 4);
    assert.equal(value(samples, "dmd_decision_log_written_total"), 2);
    assert.equal(
      value(samples, "dmd_model_info", {
        edge_version: "edge-test",
        switcher_version: "switcher-test",
        cloud_version: "cloud-test",
        ...loc,
      }),
      1,
    );
    assert.equal(value(samples, "dmd_switcher_threshold"), 0.5);
    assert.ok((value(samples, "process_resident_memory_bytes") ?? 0) > 0);
  } finally {
    t.close();
  }
});

Deno.test("GET /metrics counts cloud errors by code", async () => {
  const t = await testApp({ score: 0.9, cloudError: new AppError("OFFLOAD_TIMEOUT", "Cannot offload: late") });
  try {
    for (let i = 0; i < 3; i++) await t.app.request("/v1/classify", post(classifyBody()));
    const { samples } = parseExposition(
      await (await t.app.request("/metrics", {
        headers: { authorization: `Bearer ${TOKEN}` },
      })).text(),
    );
    assert.equal(value(samples, "dmd_cloud_errors_total", { code: "OFFLOAD_TIMEOUT" }), 3);
    assert.equal(value(samples, "dmd_decisions_total", { route: "edge_fallback", reason: "above_threshold" }), 3);
  } finally {
    t.close();
  }
});

Deno.test("GET /metrics needs the token when one is configured", async () => {
  const t = await testApp();
  try {
    const none = await t.app.request("/metrics");
    assert.equal(none.status, 401);
    assert.equal((await none.json()).code, "UNAUTHORIZED");
    assert.equal(
      (await t.app.request("/metrics", { headers: { authorization: "Bearer nope-nope-nope-nope" } })).status,
      401,
    );
    const ok = await t.app.request("/metrics", { headers: { authorization: `Bearer ${TOKEN}` } });
    assert.equal(ok.status, 200);
    assert.match(await ok.text(), /^# TYPE http_requests_total counter$/m);
  } finally {
    t.close();
  }
});

Deno.test("one request id in the response header, the JSON log line and the decision row", async () => {
  const t = await testApp();
  try {
    const res = await t.app.request("/v1/classify", post(classifyBody()));
    assert.equal(res.status, 200);
    const id = res.headers.get("x-request-id");
    assert.ok(id);
    const answer = await res.json();
    const row = t.rows.find((r) => r.id === answer.decisionId);
    assert.equal(row?.requestId, id);
    const line = t.lines.map((l) => JSON.parse(l)).find((l) => l.msg === "request" && l.path === "/v1/classify");
    assert.equal(line.requestId, id);
    assert.equal(line.level, "info");
    assert.equal(line.status, 200);
    assert.equal(line.method, "POST");
    assert.equal(line.route, "/v1/classify");
    assert.equal(typeof line.durationMs, "number");
    assert.match(line.time, /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$/);

    // A caller's own id is kept end to end.
    const mine = await t.app.request("/v1/classify", post(classifyBody(), { "x-request-id": "caller-abc-123" }));
    assert.equal(mine.headers.get("x-request-id"), "caller-abc-123");
    const mineAnswer = await mine.json();
    assert.equal(t.rows.find((r) => r.id === mineAnswer.decisionId)?.requestId, "caller-abc-123");
    assert.ok(t.lines.some((l) => JSON.parse(l).requestId === "caller-abc-123"));

    // Probes and scrapes at debug; a bad request at info with its status.
    await t.app.request("/healthz");
    const probe = t.lines.map((l) => JSON.parse(l)).find((l) => l.path === "/healthz");
    assert.equal(probe.level, "debug");
  } finally {
    t.close();
  }
});

Deno.test("createLogger() writes one JSON object per line at or above its level", () => {
  const lines: [string, string][] = [];
  const log = createLogger({ level: "warn", write: (line, level) => lines.push([line, level]), now: () => 0 });
  log.info("dropped");
  log.warn("kept", { requestId: "r1", n: 2 });
  log.error("also kept");
  assert.deepEqual(lines.map(([l]) => JSON.parse(l)), [
    { time: "1970-01-01T00:00:00.000Z", level: "warn", msg: "kept", requestId: "r1", n: 2 },
    { time: "1970-01-01T00:00:00.000Z", level: "error", msg: "also kept" },
  ]);
  assert.deepEqual(lines.map(([, level]) => level), ["warn", "error"]);
  assert.equal(log.enabled("debug"), false);
  const silent: string[] = [];
  createLogger({ level: "silent", write: (l) => silent.push(l) }).error("nothing");
  assert.deepEqual(silent, []);
});
