/**
 * The statement cache (db/statement_cache.ts): a write statement is prepared once per connection and reused, reads are
 * not kept, the cache is bounded (in statements and in SQL text) and dropped at close; a kept statement that failed
 * (constraint, busy) runs again correctly; the decision writer's batches write the same rows with the cache as
 * without it, in chunks of a few fixed sizes whose texts repeat.
 */
import assert from "node:assert/strict";
import Database from "libsql";
import { openDatabase } from "../db/client.ts";
import { DECISION_INSERT_SIZES, decisionChunks, insertDecisions, rowInserter } from "../db/queries.ts";
import { decisions } from "../db/schema.ts";
import {
  installStatementCache,
  keptStatements,
  setStatementCache,
  STATEMENT_CACHE_SIZE,
  STATEMENT_CACHE_SQL_BYTES,
} from "../db/statement_cache.ts";
import { syntheticDecisions } from "../scripts/seed_decisions.ts";

installStatementCache();

Deno.test("statement cache: a write is prepared once and reused, a read is not kept", () => {
  const db = new Database(":memory:");
  try {
    db.exec("create table t (id integer primary key, v text not null)");
    const insert = "insert into t (id, v) values (?, ?)";
    const first = db.prepare(insert);
    assert.equal(db.prepare(insert), first);
    assert.equal(keptStatements(db), 1);
    const read = "select v from t where id = ?";
    assert.notEqual(db.prepare(read), db.prepare(read));
    assert.equal(keptStatements(db), 1);
    // Another connection has its own statements.
    const other = new Database(":memory:");
    other.exec("create table t (id integer primary key, v text not null)");
    assert.notEqual(other.prepare(insert), first);
    other.close();
  } finally {
    db.close();
  }
  assert.equal(keptStatements(db), 0);
});

Deno.test("statement cache: a kept statement that failed runs again, and it follows a schema change", () => {
  const db = new Database(":memory:");
  try {
    db.exec("create table t (id integer primary key, v text not null)");
    const insert = "insert into t (id, v) values (?, ?)";
    db.prepare(insert).run([1, "a"]);
    assert.throws(() => db.prepare(insert).run([1, "b"]), /UNIQUE constraint failed/);
    assert.throws(() => db.prepare(insert).run([2, null]), /NOT NULL constraint failed/);
    assert.equal(db.prepare(insert).run([2, "c"]).changes, 1);
    db.exec("alter table t add column w integer default 7");
    assert.equal(db.prepare(insert).run([3, "d"]).changes, 1);
    assert.deepEqual(db.prepare("select id, v, w from t order by id").raw(true).all(), [[1, "a", 7], [2, "c", 7], [
      3,
      "d",
      7,
    ]]);
  } finally {
    db.close();
  }
});

Deno.test("statement cache: a kept statement refused as busy runs once the other writer commits", async () => {
  const dir = await Deno.makeTempDir({ prefix: "statement_cache_" });
  const a = new Database(`${dir}/x.db`, { timeout: 1 });
  const b = new Database(`${dir}/x.db`, { timeout: 1 });
  try {
    a.exec("pragma journal_mode=wal; create table u (x integer)");
    const insert = "insert into u values (?)";
    a.exec("begin immediate; insert into u values (0)");
    assert.throws(() => b.prepare(insert).run([1]), /locked|busy/i);
    a.exec("commit");
    assert.equal(b.prepare(insert).run([2]).changes, 1);
    assert.deepEqual(b.prepare("select x from u order by x").raw(true).all(), [[0], [2]]);
  } finally {
    a.close();
    b.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("statement cache: at most STATEMENT_CACHE_SIZE statements a connection, the least recently used go", () => {
  const db = new Database(":memory:");
  try {
    db.exec("create table t (id integer primary key)");
    const sql = (i: number) => `insert into t (id) values (${i})`;
    const first = db.prepare(sql(0));
    for (let i = 1; i < STATEMENT_CACHE_SIZE; i++) db.prepare(sql(i));
    assert.equal(db.prepare(sql(0)), first); // used again: now the most recent
    db.prepare(sql(STATEMENT_CACHE_SIZE)); // evicts sql(1)
    assert.equal(keptStatements(db), STATEMENT_CACHE_SIZE);
    assert.equal(db.prepare(sql(0)), first);
    const again = db.prepare(sql(1));
    assert.equal(db.prepare(sql(1)), again);
  } finally {
    db.close();
  }
});

Deno.test("statement cache: off, nothing is kept or reused", () => {
  const db = new Database(":memory:");
  setStatementCache(false);
  try {
    db.exec("create table t (id integer primary key)");
    const insert = "insert into t (id) values (?)";
    assert.notEqual(db.prepare(insert), db.prepare(insert));
    assert.equal(keptStatements(db), 0);
  } finally {
    setStatementCache(true);
    db.close();
  }
});

Deno.test({
  name: "statement cache: the decision writer's batches write the same rows with the cache as without it",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "statement_cache_" });
    const rows = [...syntheticDecisions({ rows: 1_000, endMs: Date.now(), spanMs: 60_000, seed: 5 })];
    const dumps: unknown[][] = [];
    try {
      for (const on of [true, false]) {
        setStatementCache(on);
        const database = await openDatabase(`file:${dir}/${on ? "on" : "off"}.db`);
        try {
          // Full batches (the same statement text again and again), a short one, and a batch written twice.
          for (let i = 0; i < rows.length; i += 200) await insertDecisions(database.db, rows.slice(i, i + 200));
          await insertDecisions(database.db, rows.slice(0, 37));
          await insertDecisions(database.db, rows.slice(200, 400));
          const { rows: out } = await database.db.$client.execute("select * from decisions order by id");
          dumps.push(out.map((r) => Array.from(r, (v) => (v instanceof ArrayBuffer ? [...new Uint8Array(v)] : v))));
        } finally {
          database.close();
        }
      }
    } finally {
      setStatementCache(true);
      await Deno.remove(dir, { recursive: true });
    }
    assert.equal(dumps[0].length, rows.length);
    assert.deepEqual(dumps[0], dumps[1]);
  },
});

Deno.test("statement cache: at most STATEMENT_CACHE_SQL_BYTES of SQL a connection; a longer statement is not kept", () => {
  const db = new Database(":memory:");
  try {
    db.exec("create table t (id integer primary key, v text)");
    // Statements of about a quarter of the budget each: four fit, the fifth evicts the oldest.
    const pad = "x".repeat(Math.floor(STATEMENT_CACHE_SQL_BYTES / 4) - 64);
    const sql = (i: number) => `insert into t (id, v) values (${i}, '${pad}')`;
    const first = db.prepare(sql(0));
    for (let i = 1; i < 4; i++) db.prepare(sql(i));
    assert.equal(keptStatements(db), 4);
    assert.equal(db.prepare(sql(0)), first);
    db.prepare(sql(4)); // evicts sql(1), the least recently used
    assert.equal(keptStatements(db), 4);
    assert.equal(db.prepare(sql(0)), first);
    const long = `insert into t (id, v) values (9, '${"y".repeat(STATEMENT_CACHE_SQL_BYTES)}')`;
    assert.notEqual(db.prepare(long), db.prepare(long));
    assert.equal(keptStatements(db), 4);
  } finally {
    db.close();
  }
});

Deno.test("decision inserts: a batch of any size is written in chunks of a few fixed sizes, so their texts repeat", () => {
  const texts = new Set<string>();
  const rows = [...syntheticDecisions({ rows: 450, endMs: Date.now(), spanMs: 60_000, seed: 9 })];
  const inserter = rowInserter(decisions);
  for (let n = 1; n <= rows.length; n++) {
    const chunks = decisionChunks(rows.slice(0, n));
    assert.deepEqual(chunks.flat(), rows.slice(0, n), `${n} rows`);
    for (const c of chunks) assert.ok((DECISION_INSERT_SIZES as readonly number[]).includes(c.length), `${n}`);
    assert.ok(chunks.length <= DECISION_INSERT_SIZES.length + Math.floor(n / 200), `${n}: ${chunks.length} chunks`);
    for (const c of chunks) texts.add((inserter.statement(c) as { sql: string }).sql);
  }
  assert.equal(texts.size, DECISION_INSERT_SIZES.length);
  const sqlLength = [...texts].reduce((sum, t) => sum + t.length, 0);
  assert.ok(sqlLength < STATEMENT_CACHE_SQL_BYTES, `${sqlLength} characters of SQL`);
});
