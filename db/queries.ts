/**
 * Named queries over the decision log. SQL lives only in `db/`, always parameterised through drizzle.
 *
 * @module
 */
import { and, asc, desc, eq, gte, isNotNull, lt, sql } from "drizzle-orm";
import type { Db } from "./client.ts";
import {
  type DecisionRecord,
  decisions,
  type DmdPair,
  dmdPairs,
  type NewDecision,
  type SwitcherVersion,
  switcherVersions,
} from "./schema.ts";

/** SQLite allows 32766 bound parameters; a decision row binds 36. */
const ROWS_PER_INSERT = 500;

/**
 * Insert decisions in one transaction, ignoring ids already written (a retried batch writes nothing twice).
 *
 * @param db the database
 * @param rows the decisions
 */
export async function insertDecisions(db: Db, rows: NewDecision[]): Promise<void> {
  if (rows.length === 0) return;
  await db.transaction(async (tx) => {
    for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) {
      await tx.insert(decisions).values(rows.slice(i, i + ROWS_PER_INSERT)).onConflictDoNothing();
    }
  });
}

/**
 * One decision by id.
 *
 * @param db the database
 * @param id the decision id
 * @returns the row, or null
 */
export async function getDecision(db: Db, id: string): Promise<DecisionRecord | null> {
  const rows = await db.select().from(decisions).where(eq(decisions.id, id)).limit(1);
  return rows[0] ?? null;
}

/**
 * Decisions in a time window, oldest first.
 *
 * @param db the database
 * @param options `sinceMs` (inclusive), `untilMs` (exclusive), `route`, `limit` (default 1000)
 * @returns the rows
 */
export async function listDecisions(
  db: Db,
  options: { sinceMs?: number; untilMs?: number; route?: DecisionRecord["route"]; limit?: number } = {},
): Promise<DecisionRecord[]> {
  const where = and(
    options.sinceMs !== undefined ? gte(decisions.createdAt, options.sinceMs) : undefined,
    options.untilMs !== undefined ? lt(decisions.createdAt, options.untilMs) : undefined,
    options.route ? eq(decisions.route, options.route) : undefined,
  );
  return await db.select().from(decisions).where(where).orderBy(asc(decisions.createdAt)).limit(options.limit ?? 1000);
}

/**
 * Decisions that carry both models' outputs (offloaded, forced to the cloud, or shadowed): the pairs DMD can learn
 * from, oldest first.
 *
 * @param db the database
 * @param options `sinceMs` (inclusive), `edgeModelVersion` to keep pairs of the serving edge model only, `limit`
 * @returns the rows
 */
export async function listLoggedPairs(
  db: Db,
  options: { sinceMs?: number; edgeModelVersion?: string; limit?: number } = {},
): Promise<DecisionRecord[]> {
  const where = and(
    isNotNull(decisions.cloudProbs),
    options.sinceMs !== undefined ? gte(decisions.createdAt, options.sinceMs) : undefined,
    options.edgeModelVersion ? eq(decisions.edgeModelVersion, options.edgeModelVersion) : undefined,
  );
  return await db.select().from(decisions).where(where).orderBy(asc(decisions.createdAt))
    .limit(options.limit ?? 1_000_000);
}

/**
 * Count decisions, for checks that nothing accepted was lost.
 *
 * @param db the database
 * @returns the number of rows
 */
export async function countDecisions(db: Db): Promise<number> {
  const [row] = await db.select({ n: sql<number>`count(*)` }).from(decisions);
  return Number(row.n);
}

/**
 * Store DMD pairs, keeping the first copy of a pair already stored for the same models.
 *
 * @param db the database
 * @param pairs the pairs
 */
export async function upsertPairs(db: Db, pairs: Omit<DmdPair, "id">[]): Promise<void> {
  if (pairs.length === 0) return;
  await db.transaction(async (tx) => {
    for (let i = 0; i < pairs.length; i += ROWS_PER_INSERT) {
      await tx.insert(dmdPairs).values(pairs.slice(i, i + ROWS_PER_INSERT)).onConflictDoNothing();
    }
  });
}

/**
 * Stored DMD pairs for a model pair.
 *
 * @param db the database
 * @param options model versions, optional `source` and `sinceMs`
 * @returns the pairs, oldest first
 */
export async function listPairs(
  db: Db,
  options: { edgeModelVersion: string; cloudModelVersion: string; source?: DmdPair["source"]; sinceMs?: number },
): Promise<DmdPair[]> {
  return await db.select().from(dmdPairs).where(and(
    eq(dmdPairs.edgeModelVersion, options.edgeModelVersion),
    eq(dmdPairs.cloudModelVersion, options.cloudModelVersion),
    options.source ? eq(dmdPairs.source, options.source) : undefined,
    options.sinceMs !== undefined ? gte(dmdPairs.createdAt, options.sinceMs) : undefined,
  )).orderBy(asc(dmdPairs.id));
}

/**
 * Record a switcher version.
 *
 * @param db the database
 * @param row the version
 */
export async function insertSwitcherVersion(db: Db, row: SwitcherVersion): Promise<void> {
  await db.insert(switcherVersions).values(row);
}

/**
 * The active switcher version, if any.
 *
 * @param db the database
 * @returns the active version or null
 */
export async function activeSwitcherVersion(db: Db): Promise<SwitcherVersion | null> {
  const rows = await db.select().from(switcherVersions).where(eq(switcherVersions.status, "active"))
    .orderBy(desc(switcherVersions.promotedAt)).limit(1);
  return rows[0] ?? null;
}

/**
 * Every switcher version, newest first.
 *
 * @param db the database
 * @returns the versions
 */
export async function listSwitcherVersions(db: Db): Promise<SwitcherVersion[]> {
  return await db.select().from(switcherVersions).orderBy(desc(switcherVersions.createdAt));
}
