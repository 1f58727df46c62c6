/**
 * The named queries: one contract suite runs against an in-memory and a file database, with real migrations,
 * asserting exact rows.
 */
import assert from "node:assert/strict";
import { type Database, openDatabase } from "../db/client.ts";
import {
  activeSwitcherVersion,
  countDecisions,
  ensureSwitcherVersion,
  getDecision,
  getSwitcherVersion,
  insertDecisions,
  insertSwitcherVersion,
  listDecisions,
  listLoggedPairs,
  listPairs,
  listSwitcherVersions,
  previousSwitcherVersion,
  promoteSwitcherVersion,
  rollbackSwitcherVersion,
  setSwitcherStatus,
  upsertPairs,
} from "../db/queries.ts";
import { AppError } from "../errors.ts";
import { DB_TARGETS, decision, fallbackDecision, pair, switcherVersion } from "./fixtures/db_records.ts";

function isAppError(code: string, message?: RegExp) {
  return (e: unknown) => {
    assert.ok(e instanceof AppError, String(e));
    assert.equal(e.code, code);
    if (message) assert.match(e.message, message);
    return true;
  };
}

/** Little-endian bytes of float32 values, written by hand. */
function leBytes(values: number[]): number[] {
  const view = new DataView(new ArrayBuffer(values.length * 4));
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  return Array.from(new Uint8Array(view.buffer));
}

for (const target of DB_TARGETS) {
  const test = (name: string, fn: (database: Database) => Promise<void>) =>
    Deno.test(`${target.name}: ${name}`, async () => {
      const { url, options, cleanup } = await target.open();
      const database = await openDatabase(url, options);
      try {
        await fn(database);
      } finally {
        database.close();
        await cleanup();
      }
    });

  test("insertDecisions() and getDecision() round-trip every column exactly", async ({ db, client }) => {
    const full = decision();
    const nulls = fallbackDecision();
    await insertDecisions(db, [full, nulls]);
    assert.deepEqual(await getDecision(db, full.id), full);
    assert.deepEqual(await getDecision(db, nulls.id), nulls);
    assert.equal(await getDecision(db, "missing"), null);
    // The blobs are little-endian float32, bit for bit (-0 included), and the vectors are JSON.
    const raw = (await client.execute({
      sql: "SELECT embedding, edge_probs, forced, shadow, created_at FROM decisions WHERE id = ?",
      args: [nulls.id],
    })).rows[0];
    assert.deepEqual(Array.from(new Uint8Array(raw.embedding as ArrayBuffer)), leBytes(Array.from(nulls.embedding)));
    assert.equal(raw.edge_probs, "[0.5,0.25,0.25]");
    assert.deepEqual([raw.forced, raw.shadow, raw.created_at], [1, 1, 1_790_000_000_000]);
    const back = (await getDecision(db, full.id))!;
    assert.ok(Object.is(back.embedding[3], -0));
  });

  test("insertDecisions() is atomic, ignores ids already written and writes large batches", async ({ db, client }) => {
    const rows = Array.from({ length: 1203 }, (_, i) => decision({ createdAt: i }));
    await insertDecisions(db, rows);
    await insertDecisions(db, [rows[0], { ...rows[1], label: "changed" }]);
    assert.equal(await countDecisions(db), 1203);
    assert.equal((await getDecision(db, rows[1].id))!.label, "run");
    await insertDecisions(db, []);
    // A row the database refuses (here: a trigger) takes its whole batch down with it.
    await client.execute(
      "CREATE TRIGGER refuse_poison BEFORE INSERT ON decisions WHEN NEW.label = 'poison' BEGIN SELECT RAISE(ABORT, 'poison'); END",
    );
    const batch = [...Array.from({ length: 600 }, () => decision()), decision({ label: "poison" })];
    await assert.rejects(
      () => insertDecisions(db, batch),
      isAppError("INVALID_INPUT", /^Cannot write 601 decisions: the database refused the data \(SQLITE_CONSTRAINT/),
    );
    assert.equal(await countDecisions(db), 1203);
  });

  test("listDecisions() filters by window, route, location, switcher and client, in order", async ({ db }) => {
    const a = decision({ createdAt: 100, route: "edge", routeReason: "below_threshold", edgeLocation: "x" });
    const b = decision({ createdAt: 200, switcherVersion: "switcher-v2", clientId: "c-b" });
    const c = decision({ createdAt: 300 });
    await insertDecisions(db, [c, a, b]);
    const ids = async (o: Parameters<typeof listDecisions>[1]) => (await listDecisions(db, o)).map((r) => r.id);
    assert.deepEqual(await ids({}), [a.id, b.id, c.id]);
    assert.deepEqual(await ids({ sinceMs: 150 }), [b.id, c.id]);
    assert.deepEqual(await ids({ sinceMs: 100, untilMs: 300 }), [a.id, b.id]);
    assert.deepEqual(await ids({ route: "edge" }), [a.id]);
    assert.deepEqual(await ids({ edgeLocation: "x" }), [a.id]);
    assert.deepEqual(await ids({ switcherVersion: "switcher-v2" }), [b.id]);
    assert.deepEqual(await ids({ clientId: "c-b" }), [b.id]);
    assert.deepEqual(await ids({ order: "desc", limit: 2 }), [c.id, b.id]);
  });

  test("listLoggedPairs() returns decisions with both outputs, of one edge model, since a time", async ({ db }) => {
    const offloaded = decision({ createdAt: 200 });
    const kept = decision({ createdAt: 300, route: "edge", cloudProbs: null, cloudLabel: null, cloudProb: null });
    const old = decision({ createdAt: 50 });
    const otherModel = decision({ createdAt: 400, edgeModelVersion: "edge-v0" });
    await insertDecisions(db, [offloaded, kept, old, otherModel]);
    const rows = await listLoggedPairs(db, { sinceMs: 100, edgeModelVersion: "edge-v1" });
    assert.deepEqual(rows.map((r) => r.id), [offloaded.id]);
    assert.deepEqual((await listLoggedPairs(db)).map((r) => r.id), [old.id, offloaded.id, otherModel.id]);
  });

  test("upsertPairs() stores pairs exactly and refreshes a pair stored for the same models", async ({ db }) => {
    const first = pair();
    const log = pair({ source: "log", sourceRef: "0192-decision", dataset: null, trueLabel: null, propensity: 0.25 });
    const otherModels = pair({ cloudModelVersion: "cloud-v2" });
    await upsertPairs(db, [first, log, otherModels]);
    const stored = await listPairs(db, { edgeModelVersion: "edge-v1", cloudModelVersion: "cloud-v1" });
    assert.deepEqual(stored.map(({ id: _, ...p }) => p), [first, log]);
    const refreshed = pair({ createdAt: 5, features: new Float32Array([9, 8]), hardLabel: 0, softLabel: 0.125 });
    await upsertPairs(db, [refreshed]);
    const again = await listPairs(db, { edgeModelVersion: "edge-v1", cloudModelVersion: "cloud-v1", source: "corpus" });
    assert.equal(again.length, 1);
    assert.equal(again[0].id, stored[0].id);
    assert.deepEqual(again[0], { ...refreshed, id: stored[0].id, createdAt: first.createdAt });
    assert.deepEqual(
      (await listPairs(db, { edgeModelVersion: "edge-v1", cloudModelVersion: "cloud-v1", sinceMs: 1 })).length,
      2,
    );
    await upsertPairs(db, []);
  });

  test("switcher versions: insert, read, list, promote, roll back, reject", async ({ db }) => {
    assert.equal(await activeSwitcherVersion(db), null);
    await insertSwitcherVersion(db, switcherVersion({ version: "s1", createdAt: 1 }));
    await insertSwitcherVersion(db, switcherVersion({ version: "s2", createdAt: 2, parentVersion: "s1" }));
    assert.deepEqual(
      await getSwitcherVersion(db, "s2"),
      switcherVersion({ version: "s2", createdAt: 2, parentVersion: "s1" }),
    );
    assert.equal(await getSwitcherVersion(db, "none"), null);
    await assert.rejects(
      () => insertSwitcherVersion(db, switcherVersion({ version: "s1" })),
      isAppError("INVALID_INPUT", /^Cannot record switcher s1: the database refused the data \(SQLITE_CONSTRAINT/),
    );

    assert.equal(await promoteSwitcherVersion(db, "s1", { nowMs: 10 }), null);
    assert.equal(await promoteSwitcherVersion(db, "s2", { nowMs: 20 }), "s1");
    const active = (await activeSwitcherVersion(db))!;
    assert.deepEqual([active.version, active.promotedAt], ["s2", 20]);
    assert.equal((await getSwitcherVersion(db, "s1"))!.status, "retired");
    // Rolling back is promoting the previous version again.
    assert.equal(await promoteSwitcherVersion(db, "s1", { nowMs: 30 }), "s2");
    assert.deepEqual(
      (await listSwitcherVersions(db)).map((v) => [v.version, v.status]),
      [["s2", "retired"], ["s1", "active"]],
    );
    assert.deepEqual((await listSwitcherVersions(db, { status: "active" })).map((v) => v.version), ["s1"]);

    await setSwitcherStatus(db, "s2", { status: "rejected" });
    await assert.rejects(() => promoteSwitcherVersion(db, "s2"), isAppError("INVALID_INPUT", /it was rejected/));
    await assert.rejects(() => promoteSwitcherVersion(db, "none"), isAppError("NOT_FOUND", /no such version/));
    await assert.rejects(() => setSwitcherStatus(db, "none", { status: "retired" }), isAppError("NOT_FOUND"));
    assert.equal((await activeSwitcherVersion(db))!.version, "s1");
  });

  test("switcher versions: artefact bytes round-trip; ensure is idempotent; rollback rejects and restores", async ({ db }) => {
    assert.equal(await ensureSwitcherVersion(db, switcherVersion({ version: "a", createdAt: 1 })), true);
    assert.equal(
      await ensureSwitcherVersion(db, switcherVersion({ version: "a", createdAt: 9, threshold: 0.9 })),
      false,
    );
    const a = (await getSwitcherVersion(db, "a"))!;
    assert.deepEqual([a.createdAt, a.threshold], [1, 0.4]);
    assert.deepEqual(a.artefact, new Uint8Array([8, 1, 0, 255, 7]));
    assert.deepEqual(a.spec, { version: "switcher-1", threshold: 0.4 });
    await insertSwitcherVersion(db, switcherVersion({ version: "b", createdAt: 2 }));
    await insertSwitcherVersion(db, switcherVersion({ version: "c", createdAt: 3, artefact: null }));
    await insertSwitcherVersion(db, switcherVersion({ version: "d", createdAt: 4 }));
    await assert.rejects(() => rollbackSwitcherVersion(db), isAppError("NOT_FOUND", /no earlier switcher version/));
    await promoteSwitcherVersion(db, "a", { nowMs: 10 });
    await promoteSwitcherVersion(db, "b", { nowMs: 20 });
    await promoteSwitcherVersion(db, "c", { nowMs: 30 }); // recorded without its artefact: never a rollback target
    await promoteSwitcherVersion(db, "d", { nowMs: 40 });
    assert.equal((await previousSwitcherVersion(db))!.version, "b");
    assert.deepEqual(await rollbackSwitcherVersion(db, { nowMs: 50 }), { from: "d", to: "b" });
    assert.deepEqual(
      (await listSwitcherVersions(db)).map((v) => [v.version, v.status]),
      [["d", "rejected"], ["c", "retired"], ["b", "active"], ["a", "retired"]],
    );
    assert.deepEqual(await rollbackSwitcherVersion(db, { nowMs: 60 }), { from: "b", to: "a" });
    assert.equal((await activeSwitcherVersion(db))!.version, "a");
    assert.equal((await getSwitcherVersion(db, "b"))!.status, "rejected");
  });

  test("releases: one active per role and hop; promote and roll back stay in their scope", async ({ db }) => {
    const hop1 = { role: "switcher" as const, hop: 1 };
    await insertSwitcherVersion(db, switcherVersion({ version: "h0-a", createdAt: 1 }));
    await insertSwitcherVersion(db, switcherVersion({ version: "h1-a", createdAt: 2, hop: 1 }));
    await insertSwitcherVersion(db, switcherVersion({ version: "h1-b", createdAt: 3, hop: 1 }));
    // A confidence rule has no file and no artefact, and is still a rollback target.
    await insertSwitcherVersion(db, switcherVersion({ version: "h0-rule", createdAt: 4, file: "", artefact: null }));
    await promoteSwitcherVersion(db, "h0-rule", { nowMs: 5 });
    await promoteSwitcherVersion(db, "h0-a", { nowMs: 10 });
    await promoteSwitcherVersion(db, "h1-a", { nowMs: 11 });
    await promoteSwitcherVersion(db, "h1-b", { nowMs: 12 });
    assert.equal((await activeSwitcherVersion(db))!.version, "h0-a");
    assert.equal((await activeSwitcherVersion(db, hop1))!.version, "h1-b");
    assert.deepEqual((await listSwitcherVersions(db, { scope: hop1 })).map((v) => v.version), ["h1-b", "h1-a"]);
    assert.deepEqual(await rollbackSwitcherVersion(db, { nowMs: 20, scope: hop1 }), { from: "h1-b", to: "h1-a" });
    assert.equal((await activeSwitcherVersion(db))!.version, "h0-a", "hop 0 is untouched");
    assert.deepEqual(await rollbackSwitcherVersion(db, { nowMs: 30 }), { from: "h0-a", to: "h0-rule" });
    assert.equal((await activeSwitcherVersion(db, hop1))!.version, "h1-a", "hop 1 is untouched");
  });

  test("queries on a closed database fail with DB_UNAVAILABLE", async ({ db, client }) => {
    client.close();
    await assert.rejects(
      () => getDecision(db, "x"),
      isAppError("DB_UNAVAILABLE", /^Cannot read the decision: the database is unavailable$/),
    );
    await assert.rejects(() => insertDecisions(db, [decision()]), isAppError("DB_UNAVAILABLE"));
  });
}
