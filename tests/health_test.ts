/**
 * `/readyz` and `/metrics` report whether decisions reach durable storage, not only whether `SELECT 1` answers.
 */
import assert from "node:assert/strict";
import type { DecisionLogHealth } from "../db/decision_log.ts";
import { healthRoutes } from "../routes/health.ts";
import { createServiceMetrics } from "../observability/metrics.ts";
import { fakeInference } from "./fixtures/fake_models.ts";

function app(health: DecisionLogHealth) {
  return healthRoutes({
    modelsReady: () => true,
    database: () => Promise.resolve(true),
    cloud: () => Promise.resolve(true),
    logBacklog: () => health.backlog,
    writeHealth: () => Promise.resolve(health),
  });
}

const HEALTHY: DecisionLogHealth = {
  healthy: true,
  reason: null,
  writer: "ready",
  oldestUnwrittenMs: 0,
  outbox: 0,
  backlog: 0,
};

Deno.test("GET /readyz is ready while decisions reach the database in time", async () => {
  const res = await app(HEALTHY).request("/readyz");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.equal(body.ready, true);
  assert.equal(body.database, true);
  assert.deepEqual(body.writes, { healthy: true, reason: null, writer: "ready", oldestUnwrittenMs: 0, outbox: 0 });
});

Deno.test("GET /readyz is 503 when decisions lag past the threshold, though SELECT 1 answers", async () => {
  const reason = "the oldest decision not in the database is 45000 ms old (at most 30000 ms)";
  const res = await app({
    ...HEALTHY,
    healthy: false,
    reason,
    writer: "failing",
    oldestUnwrittenMs: 45_000,
    outbox: 900,
  })
    .request("/readyz");
  assert.equal(res.status, 503);
  const body = await res.json();
  assert.equal(body.ready, false);
  assert.equal(body.database, true);
  assert.equal(body.writes.reason, reason);
  assert.equal(body.writes.outbox, 900);
});

Deno.test("GET /readyz says database: false when the database file is gone", async () => {
  const res = await app({
    ...HEALTHY,
    healthy: false,
    reason: "the database file was deleted or replaced",
    writer: "gone",
  })
    .request("/readyz");
  assert.equal(res.status, 503);
  const body = await res.json();
  assert.equal(body.database, false);
  assert.equal(body.writes.writer, "gone");
});

Deno.test("metrics: the decision log's write health (oldest unwritten age, last write, writer state)", async () => {
  const metrics = createServiceMetrics({
    pool: () => fakeInference().stats(),
    log: () => ({
      written: 5,
      failedWrites: 2,
      rejected: 0,
      backlog: 7,
      outbox: 7,
      spilled: 7,
      oldestUnwrittenMs: 12_500,
      writer: "failing",
      lastWriteAt: 1_700_000_000_000,
    }),
    versions: () => ({ edge: "e", switcher: "s", cloud: "c" }),
    threshold: () => 0.5,
    edgeLocation: "test",
  });
  const text = await metrics.registry.metrics();
  assert.match(text, /^dmd_decision_log_oldest_unwritten_seconds\{edge_location="test"\} 12\.5$/m);
  assert.match(text, /^dmd_decision_log_last_write_timestamp_seconds\{edge_location="test"\} 1700000000$/m);
  assert.match(text, /^dmd_decision_log_writer_state\{state="failing",edge_location="test"\} 1$/m);
  assert.match(text, /^dmd_decision_log_writer_state\{state="ready",edge_location="test"\} 0$/m);
});
