/**
 * Opening the decision database: the committed migrations apply on in-memory and file databases, match
 * `db/schema.ts` exactly, apply once, survive concurrent openers and any working directory; failures are
 * `DB_UNAVAILABLE`.
 */
import assert from "node:assert/strict";
import { getTableConfig, type SQLiteTable } from "drizzle-orm/sqlite-core";
import { type Database, openDatabase } from "../db/client.ts";
import { uuidv7 } from "../db/ids.ts";
import { countDecisions, insertDecisions } from "../db/queries.ts";
import { decisions, dmdPairs, switcherVersions } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { DB_TARGETS, decision } from "./fixtures/db_records.ts";

type Row = Record<string, unknown>;

async function rows(database: Database, sql: string): Promise<Row[]> {
  return (await database.client.execute(sql)).rows.map((r) => ({ ...r }));
}

/** What the schema file says a table looks like, in SQLite's own terms. */
function expectedTable(table: SQLiteTable) {
  const config = getTableConfig(table);
  return {
    columns: config.columns.map((c) => ({
      name: c.name,
      type: c.getSQLType().toUpperCase(),
      notnull: c.notNull ? 1 : 0,
      pk: c.primary ? 1 : 0,
    })).sort((a, b) => a.name.localeCompare(b.name)),
    indexes: config.indexes.map((i) => ({
      name: i.config.name,
      unique: i.config.unique ? 1 : 0,
      columns: i.config.columns.map((c) => (c as { name: string }).name),
    })).sort((a, b) => a.name.localeCompare(b.name)),
  };
}

/** What the migrated database says the table looks like. */
async function actualTable(database: Database, name: string) {
  const columns = (await rows(database, `PRAGMA table_info(${name})`)).map((c) => ({
    name: c.name,
    type: String(c.type).toUpperCase(),
    notnull: Number(c.notnull),
    pk: Number(c.pk),
  })).sort((a, b) => String(a.name).localeCompare(String(b.name)));
  const indexes = [];
  for (const index of await rows(database, `PRAGMA index_list(${name})`)) {
    if (String(index.origin) !== "c") continue; // primary-key and unique-constraint indexes are SQLite's own
    const cols = await rows(database, `PRAGMA index_info(${index.name})`);
    indexes.push({
      name: index.name,
      unique: Number(index.unique),
      columns: cols.sort((a, b) => Number(a.seqno) - Number(b.seqno)).map((c) => c.name),
    });
  }
  indexes.sort((a, b) => String(a.name).localeCompare(String(b.name)));
  return { columns, indexes };
}

for (const target of DB_TARGETS) {
  Deno.test(`openDatabase() on a ${target.name} applies migrations that match db/schema.ts`, async () => {
    const { url, options, cleanup } = await target.open();
    const database = await openDatabase(url, options);
    try {
      for (const table of [decisions, dmdPairs, switcherVersions]) {
        const name = getTableConfig(table).name;
        assert.deepEqual(await actualTable(database, name), expectedTable(table), `table ${name}`);
      }
      const applied = await rows(database, "SELECT hash FROM __drizzle_migrations");
      const journal = JSON.parse(
        await Deno.readTextFile(new URL("../db/migrations/meta/_journal.json", import.meta.url)),
      ) as { entries: unknown[] };
      assert.equal(applied.length, journal.entries.length);
      assert.equal(await database.ping(), true);
    } finally {
      database.close();
      await cleanup();
    }
  });
}

Deno.test("openDatabase() on a file creates its folder, uses WAL, and reopening applies nothing twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dmd_edge_db_" });
  const url = `file://${dir}/a/b/decisions.db`;
  try {
    const first = await openDatabase(url);
    assert.equal((await rows(first, "PRAGMA journal_mode"))[0].journal_mode, "wal");
    await insertDecisions(first.db, [decision()]);
    first.close();
    const second = await openDatabase(url);
    assert.equal(await countDecisions(second.db), 1);
    const journal = JSON.parse(
      await Deno.readTextFile(new URL("../db/migrations/meta/_journal.json", import.meta.url)),
    ) as { entries: unknown[] };
    // One row per committed migration, each applied once.
    assert.equal((await rows(second, "SELECT count(*) AS n FROM __drizzle_migrations"))[0].n, journal.entries.length);
    second.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openDatabase() lets several openers of a fresh file all succeed", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dmd_edge_db_" });
  const url = `file:${dir}/decisions.db`;
  try {
    const opened = await Promise.all([openDatabase(url), openDatabase(url), openDatabase(url)]);
    await Promise.all(opened.map((d, i) => insertDecisions(d.db, [decision({ id: uuidv7(), requestId: `r${i}` })])));
    assert.equal(await countDecisions(opened[0].db), 3);
    opened.forEach((d) => d.close());
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openDatabase() finds its migrations from any working directory", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dmd_edge_db_" });
  const cwd = Deno.cwd();
  try {
    Deno.chdir(dir);
    const database = await openDatabase("file:relative/decisions.db");
    await insertDecisions(database.db, [decision()]);
    database.close();
    assert.ok((await Deno.stat(`${dir}/relative/decisions.db`)).isFile);
  } finally {
    Deno.chdir(cwd);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("openDatabase() fails with DB_UNAVAILABLE on an unusable URL", async () => {
  for (const url of ["file:/proc/forbidden/x.db", "ftp://example.invalid/db"]) {
    await assert.rejects(
      () => openDatabase(url),
      (e: AppError) => {
        assert.ok(e instanceof AppError, String(e));
        assert.equal(e.code, "DB_UNAVAILABLE");
        assert.match(e.message, /^Cannot open the decision database: /);
        assert.ok(e.cause !== undefined);
        return true;
      },
    );
  }
});

Deno.test("uuidv7() is time-ordered and version 7", () => {
  const a = uuidv7(1000);
  const b = uuidv7(2000);
  assert.ok(a < b);
  assert.match(a, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
  assert.equal(a.slice(0, 13), "00000000-03e8");
  assert.notEqual(uuidv7(1000), uuidv7(1000));
  // All 48 bits of the time, big-endian (2^47 + 0x0123456789a ms, past what 32-bit arithmetic holds).
  assert.equal(uuidv7(2 ** 47 + 0x0123456789a).slice(0, 13), "80123456-789a");
  assert.equal(uuidv7(2 ** 48 - 1).slice(0, 13), "ffffffff-ffff");
  // Many ids, across several refills of the random pool: every one well formed and different, and the random bits
  // not stuck (each of the 74 is set in some id and clear in another).
  const ids = Array.from({ length: 5000 }, () => uuidv7(1234));
  assert.equal(new Set(ids).size, ids.length);
  const set = new Uint8Array(16), clear = new Uint8Array(16);
  for (const id of ids) {
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const hex = id.replaceAll("-", "");
    for (let i = 0; i < 16; i++) {
      const byte = parseInt(hex.slice(2 * i, 2 * i + 2), 16);
      set[i] |= byte;
      clear[i] |= ~byte & 0xff;
    }
  }
  // Bytes 6 to 15 less the version nibble and the variant's two bits: 4 + 8 + 6 + 56 = 74 random bits.
  assert.deepEqual([...set.slice(6)].map((b) => b & 0xff), [
    0x7f,
    0xff,
    0xbf,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
    0xff,
  ]);
  assert.deepEqual([...clear.slice(6)], [0x8f, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
});

Deno.test("ping() is false once the database file was deleted or replaced under the connection", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const database = await openDatabase(`file:${dir}/d.db`);
    assert.equal(await database.ping(), true);
    for (const suffix of ["", "-wal", "-shm"]) await Deno.remove(`${dir}/d.db${suffix}`).catch(() => {});
    // The connection still answers SELECT 1, from the unlinked file.
    assert.equal((await database.client.execute("SELECT 1 AS one")).rows[0].one, 1);
    assert.equal(await database.ping(), false);
    (await openDatabase(`file:${dir}/d.db`)).close();
    assert.equal(await database.ping(), false, "a new file at the path is not the one this connection reads");
    database.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
