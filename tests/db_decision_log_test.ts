/**
 * The batched decision log over real migrated databases: it writes on a full batch, on its interval and on close;
 * finds queued rows; keeps and retries rows through a failing database, in order; sets refused rows apart loudly;
 * and reports what it could not write. Deno's sanitizers check that no timer outlives a test.
 */
import assert from "node:assert/strict";
import { type Client, LibsqlError } from "@libsql/client";
import { drizzle } from "drizzle-orm/libsql";
import { type Database, openDatabase } from "../db/client.ts";
import { createDecisionLog } from "../db/decision_log.ts";
import { countDecisions, getDecision } from "../db/queries.ts";
import * as schema from "../db/schema.ts";
import type { DecisionRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { DB_TARGETS, decision, fallbackDecision } from "./fixtures/db_records.ts";
import { capturingErrors, sleep, until } from "./fixtures/wait.ts";

/** Ids in the order they were inserted (rowid order). */
async function insertionOrder(database: Database): Promise<string[]> {
  return (await database.client.execute("SELECT id FROM decisions ORDER BY rowid")).rows.map((r) => String(r.id));
}

/**
 * A libSQL client whose writes fail while `failing()` says so, with the error SQLite gives when another process
 * holds the lock.
 */
function flakyClient(client: Client, failing: () => boolean): Client {
  return new Proxy(client, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (prop !== "batch" && prop !== "execute") return typeof value === "function" ? value.bind(target) : value;
      return (...args: unknown[]) =>
        failing()
          ? Promise.reject(new LibsqlError("SQLITE_BUSY: database is locked", "SQLITE_BUSY"))
          : (value as (...a: unknown[]) => Promise<unknown>).apply(target, args);
    },
  });
}

function isAppError(code: string, message?: string | RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, code);
    if (typeof message === "string") assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  };
}

for (const target of DB_TARGETS) {
  const test = (name: string, fn: (database: Database) => Promise<void>) =>
    Deno.test(`decision log on a ${target.name}: ${name}`, async () => {
      const { url, options, cleanup } = await target.open();
      const database = await openDatabase(url, options);
      try {
        await fn(database);
      } finally {
        database.close();
        await cleanup();
      }
    });

  test("writes a full batch at once, without waiting for the interval", async (database) => {
    const log = createDecisionLog(database.db, { batchSize: 3, flushIntervalMs: 60_000 });
    const rows = [decision(), decision(), decision()];
    rows.forEach((r) => log.append(r));
    await until(() => log.backlog() === 0);
    assert.deepEqual(await insertionOrder(database), rows.map((r) => r.id));
    const { lastWriteAt, ...stats } = log.stats();
    assert.ok(lastWriteAt !== null && Math.abs(Date.now() - lastWriteAt) < 5000);
    assert.deepEqual(stats, {
      written: 3,
      failedWrites: 0,
      rejected: 0,
      backlog: 0,
      outbox: 0,
      spilled: 0,
      lastError: null,
      mode: "direct",
      writer: "ready",
      replay: "idle",
      oldestUnwrittenMs: 0,
    });
    await log.close();
  });

  test("writes a partial batch when its interval has passed", async (database) => {
    const log = createDecisionLog(database.db, { batchSize: 100, flushIntervalMs: 200 });
    const row = decision();
    const t0 = performance.now();
    log.append(row);
    await sleep(20);
    assert.equal(await countDecisions(database.db), 0);
    await until(() => log.backlog() === 0);
    assert.ok(performance.now() - t0 >= 190);
    assert.deepEqual(await getDecision(database.db, row.id), row);
    await log.close();
  });

  test("close() writes everything, and append() afterwards fails", async (database) => {
    const log = createDecisionLog(database.db, { batchSize: 2, flushIntervalMs: 60_000 });
    const rows = Array.from({ length: 5 }, (_, i) => (i % 2 ? fallbackDecision() : decision()));
    rows.forEach((r) => log.append(r));
    await log.close();
    await log.close(); // idempotent
    assert.deepEqual(await insertionOrder(database), rows.map((r) => r.id));
    for (const r of rows) assert.deepEqual(await getDecision(database.db, r.id), r);
    assert.throws(
      () => log.append(decision()),
      isAppError("DB_UNAVAILABLE", "Cannot log decision: the decision log is closed"),
    );
  });

  test("get() finds a queued row before it is written, and a written one after", async (database) => {
    const log = createDecisionLog(database.db, { batchSize: 10, flushIntervalMs: 60_000 });
    const row = decision();
    log.append(row);
    assert.equal(log.backlog(), 1);
    assert.equal(await countDecisions(database.db), 0);
    assert.equal(await log.get(row.id), row);
    await log.flush();
    assert.equal(log.backlog(), 0);
    assert.deepEqual(await log.get(row.id), row);
    assert.equal(await log.get("missing"), null);
    await log.close();
  });

  test("rows appended during a write are written by the same flush, in order", async (database) => {
    const log = createDecisionLog(database.db, { batchSize: 2, flushIntervalMs: 60_000 });
    const rows = Array.from({ length: 7 }, () => decision());
    log.append(rows[0]);
    log.append(rows[1]); // starts a write
    for (const r of rows.slice(2)) log.append(r);
    await log.flush();
    assert.equal(log.backlog(), 0);
    assert.deepEqual(await insertionOrder(database), rows.map((r) => r.id));
    await log.close();
  });

  test("a failing database keeps the rows, retries with backoff, and writes each once in order", async (database) => {
    let failuresLeft = 3;
    const flaky = drizzle(flakyClient(database.client, () => failuresLeft-- > 0), { schema });
    const log = createDecisionLog(flaky, { batchSize: 2, flushIntervalMs: 5, maxBackoffMs: 40 });
    const rows = Array.from({ length: 5 }, (_, i) => decision({ createdAt: i }));
    const errors = await capturingErrors(async () => {
      rows.forEach((r) => log.append(r));
      await until(() => log.stats().failedWrites >= 1);
      assert.equal(log.backlog(), 5);
      assert.equal(await log.get(rows[4].id), rows[4]);
      await until(() => log.backlog() === 0);
      await log.close();
    });
    assert.deepEqual(await insertionOrder(database), rows.map((r) => r.id));
    const stats = log.stats();
    assert.deepEqual([stats.written, stats.failedWrites, stats.rejected, stats.backlog], [5, 3, 0, 0]);
    assert.match(stats.lastError!, /database is locked/);
    assert.deepEqual(
      errors.map((e) => e.msg),
      Array(3).fill("decision log write failed; keeping the rows and retrying"),
    );
    assert.deepEqual(errors.map((e) => e.backlog), [5, 5, 5]);
  });

  test("close() reports how many rows it could not write, and keeps them", async (database) => {
    const down = drizzle(flakyClient(database.client, () => true), { schema });
    const log = createDecisionLog(down, { batchSize: 10, flushIntervalMs: 5, maxBackoffMs: 20 });
    const rows = [decision(), decision()];
    const t0 = performance.now();
    await capturingErrors(async () => {
      rows.forEach((r) => log.append(r));
      await assert.rejects(
        () => log.close({ timeoutMs: 150 }),
        isAppError("DB_UNAVAILABLE", "Cannot close the decision log: 2 decisions are not written"),
      );
    });
    assert.ok(performance.now() - t0 < 2000);
    assert.deepEqual(log.pending(), rows);
    assert.equal(log.backlog(), 2);
    assert.ok(log.stats().failedWrites >= 2);
    assert.equal(await countDecisions(database.db), 0);
  });

  test("a row the database refuses is set apart and logged in full; the others are written", async (database) => {
    await database.client.execute(
      "CREATE TRIGGER refuse_poison BEFORE INSERT ON decisions WHEN NEW.label = 'poison' " +
        "BEGIN SELECT RAISE(ABORT, 'poison'); END",
    );
    const log = createDecisionLog(database.db, { batchSize: 10, flushIntervalMs: 60_000 });
    const good = [decision(), decision()];
    const poison = decision({ label: "poison" });
    const errors = await capturingErrors(async () => {
      log.append(good[0]);
      log.append(poison);
      log.append(good[1]);
      await log.close();
    });
    assert.deepEqual(await insertionOrder(database), good.map((r) => r.id));
    assert.deepEqual([log.stats().written, log.stats().rejected, log.stats().failedWrites], [2, 1, 0]);
    assert.equal(errors.length, 1);
    assert.equal(errors[0].msg, "decision refused by the database; set apart, not retried");
    assert.match(String(errors[0].error), /poison/);
    const logged = errors[0].decision as Record<string, unknown>;
    assert.equal(logged.id, poison.id);
    assert.deepEqual(logged.embedding, JSON.parse(JSON.stringify(Array.from(poison.embedding))));
  });
}

Deno.test("decision log: close() does not wait past its deadline for a write that hangs", async () => {
  const database = await openDatabase(":memory:");
  let release: () => void = () => {};
  const log = createDecisionLog(database.db, {
    batchSize: 1,
    flushIntervalMs: 5,
    write: () => new Promise<void>((r) => release = r),
  });
  log.append(decision());
  const t0 = performance.now();
  await assert.rejects(
    () => log.close({ timeoutMs: 100 }),
    isAppError("DB_UNAVAILABLE", "Cannot close the decision log: 1 decisions are not written"),
  );
  assert.ok(performance.now() - t0 < 1500);
  release();
  await until(() => log.backlog() === 0);
  database.close();
});

Deno.test("decision log: append() refuses a malformed record at once, and queues nothing", async () => {
  const database = await openDatabase(":memory:");
  const log = createDecisionLog(database.db, { batchSize: 10, flushIntervalMs: 60_000 });
  const id = "0192f3c4-5e6a-7b8c-9d0e-1f2a3b4c5d6e";
  const cases: [Partial<DecisionRecord> | Record<string, unknown>, string][] = [
    [{ label: undefined }, "label is missing"],
    [{ switcherScore: Number.NaN }, "switcherScore is not a finite number"],
    [{ frames: 12.5 }, "frames is not an integer"],
    [{ route: "sideways" }, "route is not one of edge, cloud, edge_fallback"],
    [{ forced: 1 }, "forced is not a boolean"],
    [{ embedding: [1, 2] }, "embedding is not a Float32Array"],
    [{ edgeProbs: [0.5, null] }, "edgeProbs is not an array of finite numbers"],
    [{ cloudProb: Number.POSITIVE_INFINITY }, "cloudProb is not a finite number"],
    [{ clientId: 7 }, "clientId is not a string"],
  ];
  for (const [overrides, problem] of cases) {
    const record = { ...decision({ id }), ...overrides } as DecisionRecord;
    assert.throws(() => log.append(record), isAppError("INTERNAL", `Cannot log decision ${id}: ${problem}`));
  }
  // Optional columns may be null, and `shadow` has a default.
  const { shadow: _, ...noShadow } = decision();
  log.append(noShadow as DecisionRecord);
  log.append(fallbackDecision());
  assert.equal(log.backlog(), 2);
  await log.close();
  assert.equal((await getDecision(database.db, noShadow.id))!.shadow, false);
  database.close();
});

Deno.test("createDecisionLog() refuses a batch size below 1", async () => {
  const database = await openDatabase(":memory:");
  assert.throws(() => createDecisionLog(database.db, { batchSize: 0, flushIntervalMs: 10 }), RangeError);
  database.close();
});

Deno.test("decision log: rows that arrive during a write wait for the interval, unless a full batch or durable", async () => {
  for (const durable of [false, true]) {
    const database = await openDatabase(":memory:");
    const writes: { rows: number; at: number }[] = [];
    let release: () => void = () => {};
    let hang = true;
    const t0 = performance.now();
    const log = createDecisionLog(database.db, {
      batchSize: 4,
      flushIntervalMs: 150,
      durable,
      write: (rows) => {
        writes.push({ rows: rows.length, at: performance.now() - t0 });
        if (!hang) return Promise.resolve();
        hang = false;
        return new Promise<void>((r) => release = r);
      },
    });
    const acks: Promise<void>[] = [];
    const append = (n: number) => {
      for (let i = 0; i < n; i++) {
        const ack = log.append(decision());
        if (ack) acks.push(ack);
      }
    };
    append(durable ? 1 : 4); // a full batch (durable: the first row) starts a write, which hangs
    await until(() => writes.length === 1);
    append(2); // fewer than a batch, while it is in flight
    release();
    await until(() => log.backlog() === 0, 2_000);
    assert.deepEqual(writes.map((w) => w.rows), durable ? [1, 2] : [4, 2], `durable ${durable}`);
    if (durable) assert.ok(writes[1].at < 100, `durable: the second write at ${writes[1].at} ms`);
    else assert.ok(writes[1].at >= 140, `the second write at ${writes[1].at} ms, not before the interval`);
    await Promise.all(acks);

    if (!durable) {
      // A full batch that arrives during a write is written right after it.
      writes.length = 0;
      hang = true;
      append(4);
      await until(() => writes.length === 1);
      append(4);
      release();
      await until(() => log.backlog() === 0, 2_000);
      assert.deepEqual(writes.map((w) => w.rows), [4, 4]);
      assert.ok(writes[1].at - writes[0].at < 100, `${writes[1].at - writes[0].at} ms between two full batches`);
    }
    await Promise.all(acks);
    await log.close();
    database.close();
  }
});
