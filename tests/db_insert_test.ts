/**
 * `insertDecisions` writes its decision rows through a statement prepared from the table's metadata
 * (db/queries.ts `rowInserter`), not drizzle's builder: the rows in the database must be exactly what drizzle's
 * builder writes, column by column and byte for byte (vectors as blobs, booleans, JSON arrays, nulls, a missing
 * value's default), in this process and through the database process; a retried batch writes nothing twice; a row
 * the database refuses fails the whole batch as INVALID_INPUT.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { insertDecisions } from "../db/queries.ts";
import { decisions, decisionTiers } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { syntheticDecisions } from "../scripts/seed_decisions.ts";
import { decision, fallbackDecision } from "./fixtures/db_records.ts";
import { tierRecord } from "./fixtures/tier_records.ts";

/** Every column of every row, blobs as byte arrays, in id order. */
async function dump(client: { execute(sql: string): Promise<{ rows: ArrayLike<unknown>[] }> }, table: string) {
  const { rows } = await client.execute(`select * from ${table} order by 1, 2`);
  return Array.from(rows, (r) => Array.from(r, (v) => (v instanceof ArrayBuffer ? Array.from(new Uint8Array(v)) : v)));
}

function sampleRows() {
  const synthetic = [...syntheticDecisions({ rows: 120, endMs: Date.now(), spanMs: 60_000, seed: 3 })];
  const withDefault = decision({ clientId: null });
  // A field left out: the column's default (shadow: false), as drizzle writes it.
  delete (withDefault as Partial<typeof withDefault>).shadow;
  const tiered = decision({ route: "cloud" });
  return [
    ...synthetic,
    withDefault,
    fallbackDecision(),
    { ...tiered, tiers: [tierRecord(tiered.id, 1, [0.2, 0.8], { tierName: "cloud" })] },
  ];
}

for (const mode of ["in this process", "through the database process"] as const) {
  Deno.test({
    name: `insertDecisions (${mode}): rows exactly as drizzle's builder writes them; a retry writes nothing twice`,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const dir = await Deno.makeTempDir();
      const options = mode === "in this process" ? {} : { process: {} };
      const ours = await openDatabase(`file:${dir}/ours.db`, options);
      const drizzles = await openDatabase(`file:${dir}/drizzle.db`, options);
      try {
        const rows = sampleRows();
        await insertDecisions(ours.db, rows);
        await insertDecisions(ours.db, rows.slice(0, 10)); // a retried batch
        const plain = rows.map(({ tiers: _, ...r }) => r as typeof decisions.$inferInsert);
        for (let i = 0; i < plain.length; i += 50) {
          await drizzles.db.insert(decisions).values(plain.slice(i, i + 50)).onConflictDoNothing();
        }
        await drizzles.db.insert(decisionTiers).values(rows.flatMap((r) => r.tiers ?? []));
        const [a, b] = [await dump(ours.client, "decisions"), await dump(drizzles.client, "decisions")];
        assert.equal(a.length, rows.length);
        assert.deepEqual(a, b);
        assert.deepEqual(await dump(ours.client, "decision_tiers"), await dump(drizzles.client, "decision_tiers"));
        // A row the database refuses (a NOT NULL column left null): nothing of the batch is written.
        const before = a.length;
        const bad = { ...decision(), route: null } as unknown as typeof rows[number];
        await assert.rejects(
          () => insertDecisions(ours.db, [decision(), bad]),
          (e: AppError) => e.code === "INVALID_INPUT" && /refused the data/.test(e.message),
        );
        assert.equal((await dump(ours.client, "decisions")).length, before);
      } finally {
        ours.close();
        drizzles.close();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}
