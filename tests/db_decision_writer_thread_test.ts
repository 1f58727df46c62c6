/**
 * The decision writer on its own thread (db/decision_writer_thread.ts), beyond the fault tests it shares with the
 * in-thread writer (tests/db_decision_writer_test.ts): rows reach the database from the writer thread and rows
 * written twice are ignored, a missing database file fails the write with DB_UNAVAILABLE and the state is `gone`,
 * and a closed writer refuses writes.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { createThreadedDecisionWriter } from "../db/decision_writer_thread.ts";
import { getDecision } from "../db/queries.ts";
import { AppError } from "../errors.ts";
import { decision } from "./fixtures/db_records.ts";
import { withTempDir } from "./fixtures/wait.ts";

Deno.test("threaded decision writer: rows reach the database from the writer thread; written twice is ignored", async () => {
  await withTempDir(async (dir) => {
    const url = `file:${dir}/d.db`;
    const database = await openDatabase(url);
    const states: string[] = [];
    const writer = createThreadedDecisionWriter({ url, onStateChange: (_from, to) => states.push(to) });
    try {
      assert.equal(writer.state(), "disconnected");
      const rows = Array.from({ length: 25 }, () => decision());
      await writer.write(rows);
      await writer.write(rows);
      assert.equal(writer.state(), "ready");
      assert.deepEqual(states, ["ready"]);
      for (const r of rows) assert.equal((await getDecision(database.db, r.id))?.id, r.id);
      assert.equal(await writer.check(), "ready");
    } finally {
      writer.close();
      database.close();
    }
    assert.equal(writer.state(), "closed");
    await assert.rejects(
      () => writer.write([decision()]),
      (e: AppError) => e.code === "DB_UNAVAILABLE" && e.message === "Cannot write decisions: the writer is closed",
    );
  });
});

Deno.test("threaded decision writer: a missing database file fails the write with DB_UNAVAILABLE; the state is gone", async () => {
  await withTempDir(async (dir) => {
    const writer = createThreadedDecisionWriter({ url: `file:${dir}/missing.db` });
    try {
      await assert.rejects(
        () => writer.write([decision()]),
        (e: AppError) => e instanceof AppError && e.code === "DB_UNAVAILABLE" && e.message.includes("does not exist"),
      );
      assert.equal(writer.state(), "gone");
    } finally {
      writer.close();
    }
  });
});
