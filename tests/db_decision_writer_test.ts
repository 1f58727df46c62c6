/**
 * The decision writer under real faults on a local file database: a write lock held by another connection (after
 * which @libsql/client 0.18.0 leaves the failed connection unable to commit), and the database file deleted under
 * the running log. Nothing accepted is lost, readiness says so, and the log recovers on its own.
 */
import assert from "node:assert/strict";
import { createClient } from "@libsql/client";
import { connectForWrites, openDatabase } from "../db/client.ts";
import { createDecisionLog } from "../db/decision_log.ts";
import { createDecisionWriter, type DecisionWriter } from "../db/decision_writer.ts";
import { createThreadedDecisionWriter } from "../db/decision_writer_thread.ts";
import { openOutbox } from "../db/outbox.ts";
import { getDecision } from "../db/queries.ts";
import { decision } from "./fixtures/db_records.ts";
import { capturingErrors, until, withTempDir } from "./fixtures/wait.ts";

/** Delete a database file and its WAL and shared-memory files, as an operator's `rm` would. */
async function removeDatabaseFiles(path: string): Promise<void> {
  for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(`${path}${suffix}`).catch(() => {});
}

/** A log writing through its own connection, with an outbox, as the service builds it. */
/** The writers the fault tests run against: on the log's thread, and on a thread of its own (as the service runs). */
const WRITERS: [string, (url: string) => DecisionWriter][] = [
  ["decision writer", (url) => createDecisionWriter({ connect: () => connectForWrites(url, { busyTimeoutMs: 50 }) })],
  ["decision writer on its thread", (url) => createThreadedDecisionWriter({ url, busyTimeoutMs: 50 })],
];

async function serviceLog(dir: string, url: string, makeWriter: (url: string) => DecisionWriter) {
  const writer = makeWriter(url);
  await writer.check(); // the writer thread, if any, has started
  const outbox = await openOutbox(`${dir}/outbox`, { fsync: false });
  const database = await openDatabase(url, { busyTimeoutMs: 50 });
  const log = createDecisionLog(database.db, { batchSize: 5, flushIntervalMs: 5, maxBackoffMs: 50, outbox, writer });
  return {
    log,
    writer,
    outbox,
    async close() {
      await log.close({ timeoutMs: 2000 });
      writer.close();
      await outbox.close();
      database.close();
    },
  };
}

async function countIn(url: string, ids: string[]): Promise<number> {
  const database = await openDatabase(url);
  let n = 0;
  for (const id of ids) if (await getDecision(database.db, id)) n++;
  database.close();
  return n;
}

for (const [writerName, makeWriter] of WRITERS) {
  Deno.test(`${writerName}: the log recovers within seconds after another process's write lock ends (not after 20 s or never)`, async () => {
    await withTempDir(async (dir) => {
      const url = `file:${dir}/d.db`;
      const s = await serviceLog(dir, url, makeWriter);
      const rows = Array.from({ length: 40 }, () => decision());
      await capturingErrors(async () => {
        s.log.append(rows[0]);
        await until(() => s.log.backlog() === 0);
        // Another process takes the write lock; the writes in the meantime fail with SQLITE_BUSY.
        const holder = createClient({ url, timeout: 50 });
        const tx = await holder.transaction("write");
        for (const r of rows.slice(1, 30)) s.log.append(r);
        // Generous deadlines: a first run compiles the writer thread's modules on a possibly loaded machine.
        await until(() => s.outbox.size() > 0, 15_000);
        assert.equal(s.log.stats().writer, "failing");
        await tx.rollback();
        holder.close();
        const released = performance.now();
        for (const r of rows.slice(30)) s.log.append(r);
        await until(() => s.log.backlog() === 0, 15_000);
        const recoveredMs = performance.now() - released;
        // The stuck connection this guards against kept failing for 20 s or more (until garbage collection).
        assert.ok(recoveredMs < 5000, `recovered after ${Math.round(recoveredMs)} ms`);
        assert.equal(s.log.stats().writer, "ready");
        // Back to direct writes once the replay loop has seen the outbox empty.
        await until(() => s.log.stats().mode === "direct", 2000);
      });
      await s.close();
      assert.equal(await countIn(url, rows.map((r) => r.id)), rows.length);
    });
  });
}

for (const [writerName, makeWriter] of WRITERS) {
  Deno.test(`${writerName}: a database file deleted under load is noticed; rows wait in the outbox; a new file takes them`, async () => {
    await withTempDir(async (dir) => {
      const url = `file:${dir}/d.db`;
      const s = await serviceLog(dir, url, makeWriter);
      const before = Array.from({ length: 10 }, () => decision());
      const after = Array.from({ length: 20 }, () => decision());
      const errors = await capturingErrors(async () => {
        before.forEach((r) => s.log.append(r));
        await until(() => s.log.backlog() === 0);
        assert.equal((await s.log.health(30_000)).healthy, true);
        await removeDatabaseFiles(`${dir}/d.db`);
        // Noticed by readiness even before the next write.
        const health = await s.log.health(30_000);
        assert.equal(health.healthy, false);
        assert.equal(health.writer, "gone");
        after.forEach((r) => s.log.append(r));
        await until(() => s.outbox.size() === after.length);
        assert.equal(s.log.backlog(), after.length);
        // Not written to the unlinked file and forgotten: still in the outbox while no database is at the path.
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(s.outbox.size(), after.length);
        assert.equal((await s.log.health(30_000)).healthy, false);
        // A database is back (an operator restores one, or another process creates it): the replay writes to it.
        (await openDatabase(url)).close();
        await until(() => s.log.backlog() === 0, 5000);
        assert.equal((await s.log.health(30_000)).healthy, true);
      });
      assert.ok(errors.some((e) => String(e.error).includes("does not exist")), JSON.stringify(errors.slice(0, 3)));
      await s.close();
      assert.equal(await countIn(url, after.map((r) => r.id)), after.length);
    });
  });
}

for (const [writerName, makeWriter] of WRITERS) {
  Deno.test(`${writerName}: rows written while the file is replaced count as not written, and go to the new file`, async () => {
    await withTempDir(async (dir) => {
      const url = `file:${dir}/d.db`;
      const s = await serviceLog(dir, url, makeWriter);
      const rows = Array.from({ length: 10 }, () => decision());
      await capturingErrors(async () => {
        s.log.append(decision());
        await until(() => s.log.backlog() === 0);
        await removeDatabaseFiles(`${dir}/d.db`);
        (await openDatabase(url)).close();
        rows.forEach((r) => s.log.append(r));
        await until(() => s.log.backlog() === 0, 5000);
      });
      await s.close();
      assert.equal(await countIn(url, rows.map((r) => r.id)), rows.length);
    });
  });
}

Deno.test("decision log health: not healthy once the oldest unwritten decision is older than the threshold", async () => {
  await withTempDir(async (dir) => {
    const database = await openDatabase(`file:${dir}/d.db`);
    const outbox = await openOutbox(`${dir}/outbox`, { fsync: false });
    const log = createDecisionLog(database.db, {
      batchSize: 5,
      flushIntervalMs: 5,
      maxBackoffMs: 20,
      outbox,
      write: () => Promise.reject(new Error("disk I/O error")),
    });
    await capturingErrors(async () => {
      log.append(decision({ createdAt: Date.now() - 60_000 }));
      await until(() => outbox.size() === 1);
      const h = await log.health(30_000);
      assert.equal(h.healthy, false);
      assert.match(h.reason!, /^the oldest decision not in the database is \d+ ms old \(at most 30000 ms\)$/);
      assert.ok(h.oldestUnwrittenMs >= 60_000);
      assert.equal(h.outbox, 1);
      assert.equal((await log.health(120_000)).healthy, true);
      await log.close({ timeoutMs: 50 });
    });
    await outbox.close();
    database.close();
  });
});

Deno.test("decision writer: the first write after another process's write lock ends commits (a fresh connection)", async () => {
  await withTempDir(async (dir) => {
    const url = `file:${dir}/d.db`;
    (await openDatabase(url)).close();
    const changes: string[] = [];
    const writer = createDecisionWriter({
      connect: () => connectForWrites(url, { busyTimeoutMs: 50 }),
      onStateChange: (from, to) => changes.push(`${from}->${to}`),
    });
    await writer.write([decision()]);
    const holder = createClient({ url, timeout: 50 });
    const tx = await holder.transaction("write");
    await assert.rejects(writer.write([decision(), decision()]), /SQLITE_BUSY|unavailable/);
    assert.equal(writer.state(), "failing");
    await tx.rollback();
    holder.close();
    // With @libsql/client 0.18.0 the connection that got SQLITE_BUSY inside batch() fails every later commit with
    // "cannot commit transaction - SQL statements in progress" until garbage collection; the writer never reuses it.
    const row = decision();
    await writer.write([row]);
    assert.equal(writer.state(), "ready");
    assert.deepEqual(changes, ["disconnected->ready", "ready->failing", "failing->ready"]);
    writer.close();
    assert.equal(await countIn(url, [row.id]), 1);
  });
});
