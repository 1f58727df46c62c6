/**
 * The decision outbox on its own (append, fsync, reopen, torn lines, lock, ordered replay) and behind the
 * decision log: a database that fails sends rows to the outbox, they are replayed in order once it is back,
 * each written once, and nothing accepted is lost across a restart.
 */
import assert from "node:assert/strict";
import { type Client, LibsqlError } from "@libsql/client";
import { drizzle } from "drizzle-orm/libsql";
import { type Database, openDatabase } from "../db/client.ts";
import { createDecisionLog } from "../db/decision_log.ts";
import { openOutbox } from "../db/outbox.ts";
import { countDecisions, insertDecisions } from "../db/queries.ts";
import * as schema from "../db/schema.ts";
import type { DecisionRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { decision } from "./fixtures/db_records.ts";
import { capturingErrors, until, withTempDir } from "./fixtures/wait.ts";

/** A client whose writes fail with SQLITE_BUSY while `failing()` says so. */
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

async function insertionOrder(database: Database): Promise<string[]> {
  return (await database.client.execute("SELECT id FROM decisions ORDER BY rowid")).rows.map((r) => String(r.id));
}

Deno.test("outbox: rows appended are read back exactly, in order, after a reopen", async () => {
  await withTempDir(async (dir) => {
    const rows = Array.from({ length: 5 }, (_, i) => decision({ createdAt: i }));
    const outbox = await openOutbox(`${dir}/ob`);
    await Promise.all([outbox.append(rows.slice(0, 2)), outbox.append(rows.slice(2, 3))]);
    await outbox.append(rows.slice(3));
    assert.equal(outbox.size(), 5);
    await outbox.close();
    const again = await openOutbox(`${dir}/ob`);
    assert.equal(again.size(), 5);
    const read = await again.rows();
    assert.deepEqual(read, rows);
    // -0 and the subnormal in the fixture's embedding come back bit for bit.
    assert.ok(Object.is(read[0].embedding[3], -0));
    await again.close();
  });
});

Deno.test("outbox: replay writes oldest first in batches and deletes what it wrote; a failure keeps the rest", async () => {
  await withTempDir(async (dir) => {
    const outbox = await openOutbox(dir);
    const rows = Array.from({ length: 7 }, (_, i) => decision({ createdAt: i }));
    await outbox.append(rows.slice(0, 4));
    await outbox.append(rows.slice(4));
    const seen: string[][] = [];
    let failAt = 2;
    const write = (batch: DecisionRecord[]) => {
      if (failAt-- === 0) return Promise.reject(new Error("down"));
      seen.push(batch.map((r) => r.id));
      return Promise.resolve();
    };
    await assert.rejects(outbox.replay(write, { batchSize: 3 }), /down/);
    assert.deepEqual(seen, [rows.slice(0, 3), rows.slice(3, 6)].map((b) => b.map((r) => r.id)));
    assert.equal(outbox.size(), 1);
    assert.equal(await outbox.replay(write, { batchSize: 3 }), 1);
    assert.deepEqual(seen.flat(), rows.map((r) => r.id));
    assert.equal(outbox.size(), 0);
    assert.deepEqual(await outbox.rows(), []);
    assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name), ["LOCK"]);
    await outbox.close();
  });
});

Deno.test("outbox: a torn last line (a crash mid-append) is skipped; the complete lines are kept", async () => {
  await withTempDir(async (dir) => {
    const rows = [decision(), decision()];
    const outbox = await openOutbox(dir);
    await outbox.append(rows);
    await outbox.close();
    const [segment] = [...Deno.readDirSync(dir)].filter((e) => e.name.endsWith(".jsonl"));
    await Deno.writeTextFile(`${dir}/${segment.name}`, '{"id":"torn", "requestId":', { append: true });
    const errors = await capturingErrors(async () => {
      const again = await openOutbox(dir);
      assert.equal(again.size(), 2);
      assert.deepEqual((await again.rows()).map((r) => r.id), rows.map((r) => r.id));
      assert.equal(again.stats().corrupt, 1);
      await again.close();
    });
    assert.equal(errors[0].msg, "decision outbox: skipped torn lines");
  });
});

Deno.test("outbox: one process at a time: a second open of the same folder fails", async () => {
  await withTempDir(async (dir) => {
    const outbox = await openOutbox(dir);
    // flock locks are per open file description, so a second open in the same process stands for a second process.
    await assert.rejects(
      openOutbox(dir, { lockTimeoutMs: 100 }),
      (e: AppError) => e.code === "DB_UNAVAILABLE" && /another process is using it/.test(e.message),
    );
    await outbox.close();
    await (await openOutbox(dir)).close();
  });
});

Deno.test("decision log + outbox: a failing database sends rows to the outbox; they are replayed in order, once", async () => {
  await withTempDir(async (dir) => {
    const database = await openDatabase(`file:${dir}/d.db`);
    let down = true;
    const flaky = drizzle(flakyClient(database.client, () => down), { schema });
    const outbox = await openOutbox(`${dir}/ob`);
    const log = createDecisionLog(flaky, { batchSize: 3, flushIntervalMs: 5, maxBackoffMs: 30, outbox });
    const rows = Array.from({ length: 10 }, (_, i) => decision({ createdAt: i }));
    const errors = await capturingErrors(async () => {
      rows.slice(0, 6).forEach((r) => log.append(r));
      await until(() => outbox.size() === 6);
      assert.equal(log.stats().backlog, 6);
      // Read-after-write holds while the rows are in the outbox.
      assert.equal((await log.get(rows[5].id))?.id, rows[5].id);
      // Newer rows go after them, to the outbox too, while it holds rows.
      rows.slice(6).forEach((r) => log.append(r));
      await until(() => outbox.size() === 10);
      down = false;
      await until(() => log.backlog() === 0);
      await log.close();
    });
    assert.deepEqual(await insertionOrder(database), rows.map((r) => r.id));
    const s = log.stats();
    assert.equal(s.spilled, 10);
    assert.equal(s.outbox, 0);
    assert.ok(s.failedWrites >= 1);
    assert.ok(errors.some((e) => e.msg === "decision log write failed; moving the rows to the outbox"));
    // Back to direct writes once the outbox is empty.
    const log2 = createDecisionLog(flaky, { batchSize: 3, flushIntervalMs: 5, outbox });
    log2.append(decision());
    await log2.close();
    assert.equal(log2.stats().spilled, 0);
    assert.equal(await countDecisions(database.db), 11);
    await outbox.close();
    database.close();
  });
});

Deno.test("decision log + outbox: close() with the database down keeps rows in the outbox; the next start replays them once", async () => {
  await withTempDir(async (dir) => {
    const database = await openDatabase(`file:${dir}/d.db`);
    const rows = Array.from({ length: 4 }, (_, i) => decision({ createdAt: i }));
    // An earlier run wrote the first row before the database went down: the replay must not write it twice.
    await insertDecisions(database.db, [rows[0]]);
    const down = drizzle(flakyClient(database.client, () => true), { schema });
    const outbox = await openOutbox(`${dir}/ob`);
    const log = createDecisionLog(down, { batchSize: 10, flushIntervalMs: 60_000, outbox });
    await capturingErrors(async () => {
      rows.forEach((r) => log.append(r));
      const t0 = performance.now();
      await log.close({ timeoutMs: 300 });
      assert.ok(performance.now() - t0 < 2000);
    });
    assert.equal(log.pending().length, 0);
    await outbox.close();

    // Next start: the outbox is adopted and replayed at once.
    const outbox2 = await openOutbox(`${dir}/ob`);
    assert.equal(outbox2.size(), 4);
    const log2 = createDecisionLog(database.db, { batchSize: 2, flushIntervalMs: 5, outbox: outbox2 });
    await until(() => log2.backlog() === 0);
    await log2.close();
    await outbox2.close();
    assert.deepEqual((await insertionOrder(database)).sort(), rows.map((r) => r.id).sort());
    assert.equal(await countDecisions(database.db), 4);
    database.close();
  });
});

Deno.test("decision log, durable mode: append resolves only once the row is committed, or fsynced to the outbox", async () => {
  await withTempDir(async (dir) => {
    const database = await openDatabase(`file:${dir}/d.db`);
    let down = false;
    const flaky = drizzle(flakyClient(database.client, () => down), { schema });
    const outbox = await openOutbox(`${dir}/ob`);
    const log = createDecisionLog(flaky, { batchSize: 50, flushIntervalMs: 60_000, outbox, durable: true });
    const a = decision();
    await log.append(a);
    // Committed before the promise resolved, without waiting for the (one minute) flush interval.
    assert.equal(await countDecisions(database.db), 1);
    down = true;
    const b = decision();
    await capturingErrors(async () => {
      await log.append(b);
      assert.equal(outbox.size(), 1);
      assert.deepEqual((await outbox.rows()).map((r) => r.id), [b.id]);
      await log.whenLogged([a.id, b.id, "unknown"]);
      down = false;
      await log.close();
    });
    await outbox.close();
    assert.equal(await countDecisions(database.db), 2);
    database.close();
  });
});

Deno.test("decision log, durable mode without an outbox: a failed write rejects the waiting appends with DB_UNAVAILABLE", async () => {
  const database = await openDatabase(":memory:");
  const down = drizzle(flakyClient(database.client, () => true), { schema });
  const log = createDecisionLog(down, { batchSize: 10, flushIntervalMs: 60_000, durable: true, maxBackoffMs: 20 });
  await capturingErrors(async () => {
    await assert.rejects(
      Promise.resolve(log.append(decision())),
      (e: AppError) => e.code === "DB_UNAVAILABLE",
    );
    await log.close({ timeoutMs: 50 }).catch(() => {});
  });
  database.close();
});
