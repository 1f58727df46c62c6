/**
 * The decision database: real migrations, exact rows, the batched log. One contract suite runs against an
 * in-memory and a file database.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { createDecisionLog } from "../db/decision_log.ts";
import { uuidv7 } from "../db/ids.ts";
import { countDecisions, getDecision, listDecisions } from "../db/queries.ts";
import type { DecisionRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";

function decision(overrides: Partial<DecisionRecord> = {}): DecisionRecord {
  return {
    id: uuidv7(),
    requestId: "req-1",
    clientId: "cam-7",
    edgeLocation: "edge-a",
    createdAt: 1_790_000_000_000,
    layout: "coco17",
    frames: 48,
    joints: 17,
    channels: 3,
    fps: 30,
    route: "cloud",
    routeReason: "above_threshold",
    forced: false,
    offloadProbability: 1,
    shadow: false,
    edgeModelVersion: "edge-v1",
    edgeLabel: "walk",
    edgeProb: 0.5,
    edgeProbs: [0.5, 0.25, 0.25],
    embedding: new Float32Array([0.5, -1.25, 3]),
    features: new Float32Array([0.5, 0.25, 0.9, 1, 0, 0.1, 0.5, -1.25, 3]),
    switcherVersion: "switcher-v1",
    switcherScore: 0.75,
    switcherThreshold: 0.6,
    cloudModelVersion: "cloud-v1",
    cloudLabel: "run",
    cloudProb: 0.875,
    cloudProbs: [0.0625, 0.875, 0.0625],
    cloudError: null,
    label: "run",
    prob: 0.875,
    queueMs: 0.5,
    edgeMs: 2.5,
    cloudMs: 12.25,
    totalMs: 15.5,
    batchId: null,
    ...overrides,
  };
}

function contract(name: string, url: () => Promise<{ url: string; cleanup(): Promise<void> }>) {
  Deno.test(`${name}: migrations apply and every column round-trips exactly`, async () => {
    const target = await url();
    const database = await openDatabase(target.url);
    try {
      const log = createDecisionLog(database.db, { batchSize: 10, flushIntervalMs: 10 });
      const d = decision();
      const fallback = decision({
        route: "edge_fallback",
        cloudError: "OFFLOAD_TIMEOUT",
        cloudLabel: null,
        cloudProb: null,
        cloudProbs: null,
        cloudModelVersion: null,
        clientId: null,
        label: "walk",
        prob: 0.5,
        forced: true,
        shadow: true,
      });
      log.append(d);
      log.append(fallback);
      await log.close();
      assert.deepEqual(await getDecision(database.db, d.id), d);
      assert.deepEqual(await getDecision(database.db, fallback.id), fallback);
      assert.equal(await countDecisions(database.db), 2);
      assert.equal(await getDecision(database.db, "missing"), null);
    } finally {
      database.close();
      await target.cleanup();
    }
  });

  Deno.test(`${name}: opening twice re-applies nothing and keeps the rows`, async () => {
    const target = await url();
    if (target.url === ":memory:") return await target.cleanup();
    const first = await openDatabase(target.url);
    const log = createDecisionLog(first.db, { batchSize: 1, flushIntervalMs: 10 });
    log.append(decision());
    await log.close();
    first.close();
    const second = await openDatabase(target.url);
    assert.equal(await countDecisions(second.db), 1);
    second.close();
    await target.cleanup();
  });
}

contract("in-memory database", () => Promise.resolve({ url: ":memory:", cleanup: () => Promise.resolve() }));
contract("file database", async () => {
  const dir = await Deno.makeTempDir();
  return { url: `file:${dir}/nested/decisions.db`, cleanup: () => Deno.remove(dir, { recursive: true }) };
});

Deno.test("decision log writes when a batch is full, and finds queued rows by id before that", async () => {
  const database = await openDatabase(":memory:");
  const batches: number[] = [];
  const log = createDecisionLog(database.db, {
    batchSize: 3,
    flushIntervalMs: 60_000,
    write: async (rows) => {
      batches.push(rows.length);
      const { insertDecisions } = await import("../db/queries.ts");
      await insertDecisions(database.db, rows);
    },
  });
  const rows = [decision(), decision(), decision(), decision()];
  log.append(rows[0]);
  log.append(rows[1]);
  assert.equal(log.backlog(), 2);
  assert.deepEqual(await log.get(rows[0].id), rows[0]);
  log.append(rows[2]);
  log.append(rows[3]);
  await log.flush();
  assert.equal(batches[0], 3);
  assert.equal(await countDecisions(database.db), 4);
  await log.close();
  database.close();
});

Deno.test("decision log writes on its interval", async () => {
  const database = await openDatabase(":memory:");
  const log = createDecisionLog(database.db, { batchSize: 100, flushIntervalMs: 20 });
  log.append(decision());
  await new Promise((r) => setTimeout(r, 120));
  assert.equal(log.backlog(), 0);
  assert.equal(await countDecisions(database.db), 1);
  await log.close();
  database.close();
});

Deno.test("decision log keeps rows in order through failed writes and writes each once", async () => {
  const database = await openDatabase(":memory:");
  let failuresLeft = 3;
  const written: string[] = [];
  const log = createDecisionLog(database.db, {
    batchSize: 2,
    flushIntervalMs: 5,
    maxBackoffMs: 20,
    write: (rows) => {
      if (failuresLeft-- > 0) return Promise.reject(new Error("database is locked"));
      written.push(...rows.map((r) => r.id));
      return Promise.resolve();
    },
  });
  const rows = Array.from({ length: 5 }, (_, i) => decision({ createdAt: i }));
  for (const r of rows) log.append(r);
  await log.close({ timeoutMs: 5000 });
  assert.deepEqual(written, rows.map((r) => r.id));
  assert.equal(log.stats().failedWrites, 3);
  assert.equal(log.stats().lastError, "database is locked");
  database.close();
});

Deno.test("decision log close() reports the rows it could not write", async () => {
  const database = await openDatabase(":memory:");
  const log = createDecisionLog(database.db, {
    batchSize: 10,
    flushIntervalMs: 5,
    maxBackoffMs: 10,
    write: () => Promise.reject(new Error("disk I/O error")),
  });
  log.append(decision());
  log.append(decision());
  await assert.rejects(
    () => log.close({ timeoutMs: 100 }),
    (e: AppError) =>
      e.code === "DB_UNAVAILABLE" && e.message === "Cannot close the decision log: 2 decisions are not written",
  );
  assert.throws(() => log.append(decision()), (e: AppError) => e.code === "DB_UNAVAILABLE");
  database.close();
});

Deno.test("listDecisions() filters by time window and route, oldest first", async () => {
  const database = await openDatabase(":memory:");
  const log = createDecisionLog(database.db, { batchSize: 10, flushIntervalMs: 10 });
  const a = decision({ createdAt: 100, route: "edge" });
  const b = decision({ createdAt: 200, route: "cloud" });
  const c = decision({ createdAt: 300, route: "cloud" });
  for (const r of [c, a, b]) log.append(r);
  await log.close();
  assert.deepEqual((await listDecisions(database.db, { sinceMs: 150 })).map((r) => r.id), [b.id, c.id]);
  assert.deepEqual((await listDecisions(database.db, { route: "edge" })).map((r) => r.id), [a.id]);
  assert.deepEqual((await listDecisions(database.db, { sinceMs: 100, untilMs: 300 })).map((r) => r.id), [a.id, b.id]);
  database.close();
});

Deno.test("uuidv7() is time-ordered and version 7", () => {
  const a = uuidv7(1000);
  const b = uuidv7(2000);
  assert.ok(a < b);
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(a.slice(0, 13), "00000000-03e8");
});

Deno.test("openDatabase() fails with DB_UNAVAILABLE on an unusable URL", async () => {
  await assert.rejects(
    () => openDatabase("file:/proc/forbidden/x.db"),
    (e: AppError) => e instanceof AppError && e.code === "DB_UNAVAILABLE",
  );
});

Deno.test("listLoggedPairs() returns decisions with both outputs, of one edge model, since a time", async () => {
  const { listLoggedPairs } = await import("../db/queries.ts");
  const database = await openDatabase(":memory:");
  const log = createDecisionLog(database.db, { batchSize: 10, flushIntervalMs: 10 });
  const offloaded = decision({ createdAt: 200 });
  const kept = decision({ createdAt: 300, route: "edge", cloudProbs: null, cloudLabel: null, cloudProb: null });
  const old = decision({ createdAt: 50 });
  const otherModel = decision({ createdAt: 400, edgeModelVersion: "edge-v0" });
  for (const r of [offloaded, kept, old, otherModel]) log.append(r);
  await log.close();
  const rows = await listLoggedPairs(database.db, { sinceMs: 100, edgeModelVersion: "edge-v1" });
  assert.deepEqual(rows.map((r) => r.id), [offloaded.id]);
  assert.equal((await listLoggedPairs(database.db)).length, 3);
  database.close();
});
