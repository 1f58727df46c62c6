/**
 * `GET /v1/stats` through `app.request()`: the token guard, parameter errors, the report on a hand-built log, the
 * OpenAPI document; and end to end on the real service, a classified request reaching the report.
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { insertDecisions } from "../db/queries.ts";
import { startService } from "../main.ts";
import { H, handBuiltLog, T0 } from "./analytics_fixture.ts";
import { testApp, TOKEN } from "./analytics_app.ts";

const auth = { authorization: `Bearer ${TOKEN}` };
const WINDOW = `from=${T0}&to=${T0 + 3 * H}&bucket=1h`;

Deno.test("GET /v1/stats answers 401 without the token, with a wrong one, or when none is configured", async () => {
  const t = await testApp();
  try {
    const refused: Record<string, string>[] = [{}, { authorization: "Bearer wrong-token-wrong-token" }, {
      authorization: TOKEN,
    }];
    for (const headers of refused) {
      const res = await t.app.request(`/v1/stats?${WINDOW}`, { headers });
      assert.equal(res.status, 401);
      assert.equal((await res.json()).code, "UNAUTHORIZED");
    }
  } finally {
    t.close();
  }
  const open = await testApp({ adminToken: null });
  try {
    const res = await open.app.request(`/v1/stats?${WINDOW}`, { headers: auth });
    assert.equal(res.status, 401);
    assert.match((await res.json()).message, /no ADMIN_TOKEN/);
  } finally {
    open.close();
  }
});

Deno.test("GET /v1/stats refuses bad windows, buckets and counts with 400 INVALID_INPUT", async () => {
  const t = await testApp();
  try {
    const bad: [string, RegExp][] = [
      ["from=yesterday", /Cannot read from/],
      ["to=2026-02-30T25:00:00Z", /Cannot read to/],
      [`from=${T0 + H}&to=${T0}`, /must be before/],
      ["bucket=5x", /expected a duration/],
      ["bucket=10ms", /at least 1s/],
      ["from=30d&bucket=1m", /at most 5000/],
      ["from=900d", /at most 400 days/],
      ["recent=201", /Cannot read recent/],
      ["recent=-1", /Cannot read recent/],
    ];
    for (const [query, message] of bad) {
      const res = await t.app.request(`/v1/stats?${query}`, { headers: auth });
      assert.equal(res.status, 400, query);
      const body = await res.json();
      assert.equal(body.code, "INVALID_INPUT", query);
      assert.match(body.message, message, query);
    }
  } finally {
    t.close();
  }
});

Deno.test("GET /v1/stats reports the hand-built log exactly, with the versions in service", async () => {
  const t = await testApp();
  try {
    await insertDecisions(t.database.db, handBuiltLog());
    const res = await t.app.request(`/v1/stats?${WINDOW}&recent=2`, { headers: auth });
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("cache-control"), "no-store");
    const body = await res.json();
    assert.deepEqual(body.active, {
      edge: "edge-test",
      switcher: "switcher-test",
      cloud: "cloud-test",
      threshold: 0.5,
      edgeLocation: "test-location",
    });
    assert.deepEqual(body.query, { fromMs: T0, toMs: T0 + 3 * H, bucketMs: H });
    const s = body.summary;
    assert.deepEqual(
      [s.decisions, s.offloadRate, s.shadowRate, s.agreementRate, s.cloudCalls, s.savedCloudCalls, s.savedCloudMs],
      [8, 0.5, 0.25, 0.5, 6, 2, 60],
    );
    assert.deepEqual(body.series.map((b: { decisions: number }) => b.decisions), [5, 3, 0]);
    assert.deepEqual(body.recent.map((r: { id: string }) => r.id), ["d8", "d7"]);
    assert.equal(
      body.latency.find((l: { route: string; stage: string }) => l.route === "all" && l.stage === "total").p50,
      18,
    );
    assert.deepEqual(body.switcherVersions.map((v: { switcherVersion: string }) => v.switcherVersion), ["v1", "v2"]);
    assert.deepEqual(body.edgeLocations.map((v: { edgeLocation: string }) => v.edgeLocation), ["edge-a", "edge-b"]);
    assert.equal(body.fallbacks.length, 3);
    assert.equal(body.labels.length, 4);

    const filtered = await (await t.app.request(`/v1/stats?${WINDOW}&edgeLocation=edge-b`, { headers: auth })).json();
    assert.equal(filtered.summary.decisions, 3);
    assert.equal(filtered.query.edgeLocation, "edge-b");
  } finally {
    t.close();
  }
});

Deno.test("GET /v1/stats and /metrics are in /openapi.json, /v1/stats with bearer security", async () => {
  const t = await testApp();
  try {
    const doc = await (await t.app.request("/openapi.json")).json();
    assert.ok(doc.paths["/v1/stats"].get);
    assert.deepEqual(doc.paths["/v1/stats"].get.security, [{ bearer: [] }]);
    assert.deepEqual(doc.components.securitySchemes.bearer, { type: "http", scheme: "bearer" });
    assert.deepEqual(
      doc.paths["/v1/stats"].get.parameters.map((p: { name: string }) => p.name).sort(),
      ["bucket", "edgeLocation", "from", "recent", "switcherVersion", "to"],
    );
    assert.ok(doc.components.schemas.Stats);
    assert.ok(doc.paths["/metrics"].get);
  } finally {
    t.close();
  }
});

Deno.test({
  name: "service: a classified request reaches /v1/stats and /metrics; the token guards both",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const service = await startService(loadConfig({
      PORT: "0",
      MODELS_DIR: new URL("./fixtures/tiny_models", import.meta.url).pathname,
      DATABASE_URL: `file:${dir}/decisions.db`,
      WORKERS: "1",
      WARMUP_RUNS: "1",
      LOG_FLUSH_MS: "20",
      ADMIN_TOKEN: TOKEN,
      LOG_LEVEL: "warn",
      EDGE_LOCATION: "lab-1",
    }));
    try {
      const frames = Array.from({ length: 7 }, (_, i) => [[0.1 * i, 0.2, 0.9], [0.3, 0.1 * i, 0.8]]);
      const res = await fetch(`${service.url}/v1/classify`, {
        method: "POST",
        headers: { "content-type": "application/json", "x-request-id": "stats-e2e-1" },
        body: JSON.stringify({ layout: "tiny", fps: 10, frames, route: "cloud" }),
      });
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-request-id"), "stats-e2e-1");
      const answer = await res.json();
      assert.equal((await fetch(`${service.url}/v1/stats`)).status, 401);
      assert.equal((await fetch(`${service.url}/metrics`)).status, 401);
      let stats;
      for (let i = 0; i < 50; i++) {
        await new Promise((r) => setTimeout(r, 50));
        stats = await (await fetch(`${service.url}/v1/stats?from=1h&recent=5&bucket=1m`, { headers: auth })).json();
        if (stats.summary.decisions > 0) break;
      }
      assert.equal(stats.summary.decisions, 1);
      assert.equal(stats.summary.cloud, 1);
      assert.equal(stats.active.edgeLocation, "lab-1");
      assert.equal(stats.recent[0].id, answer.decisionId);
      assert.equal(stats.recent[0].requestId, "stats-e2e-1");
      assert.equal(stats.edgeLocations[0].edgeLocation, "lab-1");
      const metrics = await (await fetch(`${service.url}/metrics`, { headers: auth })).text();
      assert.match(metrics, /^dmd_decisions_total\{route="cloud",reason="forced_cloud",edge_location="lab-1"\} 1$/m);
      assert.match(
        metrics,
        /^dmd_model_info\{edge_version="edge-tiny-1",switcher_version="[^"]+",cloud_version="[^"]+",edge_location="lab-1"\} 1$/m,
      );
      assert.match(metrics, /^dmd_decision_log_written_total\{edge_location="lab-1"\} 1$/m);
    } finally {
      await service.shutdown();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
