/**
 * Named queries over the decision database, used by routes, the decision log and scripts. SQL lives only in `db/`
 * and always goes through drizzle, so every value is a bound parameter.
 *
 * Every query maps driver failures to `AppError`: `DB_UNAVAILABLE` (with the driver's error as cause), or
 * `INVALID_INPUT` when a constraint rejects the data.
 *
 * @module
 */
import { and, asc, desc, eq, getTableColumns, gte, is, isNotNull, lt, ne, or, SQL, sql } from "drizzle-orm";
import { getTableConfig, type SQLiteColumn, type SQLiteTable } from "drizzle-orm/sqlite-core";
import type { InStatement, InValue } from "@libsql/client";
import { AppError } from "../errors.ts";
import type { ReleaseRole } from "../release/roles.ts";
import type { Db } from "./client.ts";
import {
  type DecisionRecord,
  decisions,
  type DecisionTierRecord,
  decisionTiers,
  type DmdPair,
  dmdPairs,
  type NewDecision,
  type NewDmdPair,
  type NewSwitcherVersion,
  type PairSource,
  type Route,
  type SwitcherStatus,
  type SwitcherVersion,
  switcherVersions,
} from "./schema.ts";

/** Which releases share one active version: a role and, for switchers, the hop it decides. */
export interface ReleaseScope {
  role: ReleaseRole;
  hop: number;
}

/** The scope of the hop-0 switcher, the default of every release query. */
export const SWITCHER_SCOPE: ReleaseScope = { role: "switcher", hop: 0 };

function inScope(scope: ReleaseScope) {
  return and(eq(switcherVersions.role, scope.role), eq(switcherVersions.hop, scope.hop));
}

/** Rows per INSERT statement: SQLite binds at most 32766 parameters, a decision row binds 36. */
const ROWS_PER_INSERT = 500;

/**
 * The SQLite result code of a driver error (`SQLITE_BUSY`, `SQLITE_CONSTRAINT_NOTNULL`, ...), looked up through
 * `cause` chains (drizzle wraps the driver's error); null when there is none.
 *
 * @param err what was thrown
 * @returns the most specific code found, or null
 */
export function sqliteCode(err: unknown): string | null {
  for (let e = err, depth = 0; e instanceof Error && depth < 8; e = e.cause, depth++) {
    const { code, extendedCode } = e as Error & { code?: unknown; extendedCode?: unknown };
    if (typeof extendedCode === "string" && extendedCode.startsWith("SQLITE_")) return extendedCode;
    if (typeof code === "string" && code.startsWith("SQLITE_")) return code;
  }
  return null;
}

/**
 * True when retrying cannot help: the data itself is refused (a constraint, a type mismatch, a value too big).
 *
 * @param err what was thrown
 * @returns whether the error is about the rows rather than the database
 */
export function isDataError(err: unknown): boolean {
  return /^SQLITE_(CONSTRAINT|MISMATCH|TOOBIG|RANGE)/.test(sqliteCode(err) ?? "");
}

/**
 * Run a query; map what the driver throws to an AppError naming the action: INVALID_INPUT when the database refused
 * the data, DB_UNAVAILABLE otherwise.
 *
 * @param action what the query does, for the message ("Cannot <action>: ...")
 * @param query the query
 * @returns its result
 */
export async function run<T>(action: string, query: () => Promise<T>): Promise<T> {
  try {
    return await query();
  } catch (err) {
    if (err instanceof AppError) throw err;
    if (isDataError(err)) {
      throw new AppError("INVALID_INPUT", `Cannot ${action}: the database refused the data (${sqliteCode(err)})`, {
        cause: err,
      });
    }
    throw new AppError("DB_UNAVAILABLE", `Cannot ${action}: the database is unavailable`, { cause: err });
  }
}

/**
 * The sizes of the decision inserts, largest first: a batch of any size is written as chunks of these sizes (greedily:
 * 187 rows = 100 + 50 + 20 + 10 + 5 + 2), so that the statements' texts repeat from batch to batch and stay prepared
 * (`db/statement_cache.ts`; their texts together are about 50 KB of SQL). A writer's batches vary in size with the
 * load (a full batch, then what arrived while it was written); one statement per batch size was prepared anew nearly
 * every time. 200 rows a statement wrote fastest per row.
 */
export const DECISION_INSERT_SIZES = [200, 100, 50, 20, 10, 5, 2, 1] as const;

/** Split rows into chunks of {@link DECISION_INSERT_SIZES}, in order. */
export function decisionChunks<T>(rows: T[]): T[][] {
  const out: T[][] = [];
  let at = 0;
  for (const size of DECISION_INSERT_SIZES) {
    for (; rows.length - at >= size; at += size) out.push(rows.slice(at, at + size));
  }
  return out;
}

/** Split rows into INSERT-sized chunks. */
function chunks<T>(rows: T[]): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < rows.length; i += ROWS_PER_INSERT) out.push(rows.slice(i, i + ROWS_PER_INSERT));
  return out;
}

/**
 * Insert decisions atomically (one batch: one round trip to a remote database), ignoring ids already written, so
 * a retried batch writes nothing twice.
 *
 * The decision rows go as one prepared `INSERT` per chunk ({@link decisionChunks}), their values mapped column by
 * column as drizzle maps them (see {@link rowInserter}); drizzle's own builder spent more time on a 200-row batch than
 * SQLite took to write it.
 *
 * @param db the database
 * @param rows the decisions
 * @throws AppError DB_UNAVAILABLE, or INVALID_INPUT when a constraint refuses a row (then nothing is written)
 */
export async function insertDecisions(
  db: Db,
  rows: (NewDecision & { tiers?: DecisionTierRecord[] })[],
): Promise<void> {
  if (rows.length === 0) return;
  const statements: InStatement[] = decisionChunks(rows).map((c) => decisionInserter.statement(c));
  // The rows of the tiers past the first (more than two tiers configured), in the same batch.
  const tiers = rows.flatMap((r) => r.tiers ?? []);
  for (const c of chunks(tiers)) {
    const q = db.insert(decisionTiers).values(c).onConflictDoNothing().toSQL();
    statements.push({ sql: q.sql, args: q.params as InValue[] });
  }
  await run(`write ${rows.length} decisions`, () => db.$client.batch(statements));
}

/**
 * An `INSERT ... ON CONFLICT DO NOTHING` of a table's rows, prepared from drizzle's metadata of the table: the
 * columns in order, each value mapped to the driver as drizzle maps it (`mapToDriverValue`: booleans to 0/1, vectors
 * to blobs, arrays to JSON), a missing one given the column's default as drizzle gives it (its `default`, else its
 * `defaultFn`, else null). The statement text is built once per row count.
 *
 * @param table the table
 * @returns a function from rows to one statement
 */
export function rowInserter(table: SQLiteTable): { statement(rows: Record<string, unknown>[]): InStatement } {
  const columns = Object.entries(getTableColumns(table)) as [string, SQLiteColumn][];
  for (const [, column] of columns) {
    if (is(column.default, SQL)) throw new TypeError(`Cannot prepare inserts: ${column.name} has an SQL default`);
  }
  const head = `insert into "${getTableConfig(table).name}" (${columns.map(([, c]) => `"${c.name}"`).join(", ")}) ` +
    "values ";
  const one = `(${columns.map(() => "?").join(", ")})`;
  const texts = new Map<number, string>();
  const value = (column: SQLiteColumn, v: unknown): InValue => {
    if (v === undefined) {
      v = column.default ?? column.defaultFn?.() ?? column.onUpdateFn?.() ?? null;
    }
    return v === null ? null : column.mapToDriverValue(v) as InValue;
  };
  return {
    statement(rows) {
      let sql = texts.get(rows.length);
      if (sql === undefined) {
        sql = `${head}${Array.from({ length: rows.length }, () => one).join(", ")} on conflict do nothing`;
        texts.set(rows.length, sql);
      }
      const args: InValue[] = new Array(rows.length * columns.length);
      let i = 0;
      for (const row of rows) for (const [key, column] of columns) args[i++] = value(column, row[key]);
      return { sql, args };
    },
  };
}

const decisionInserter = rowInserter(decisions);

/**
 * The tier rows of decisions (more than two tiers configured), oldest first.
 *
 * @param db the database
 * @param options `tier` to keep one tier's rows; `since` (Unix ms) to keep the newer ones
 * @returns the rows
 */
export async function listDecisionTiers(
  db: Db,
  options: { tier?: number; since?: number } = {},
): Promise<DecisionTierRecord[]> {
  const where = and(
    options.tier !== undefined ? eq(decisionTiers.tier, options.tier) : undefined,
    options.since !== undefined ? gte(decisionTiers.createdAt, options.since) : undefined,
  );
  return await run(
    "read the decisions' tiers",
    () => db.select().from(decisionTiers).where(where).orderBy(asc(decisionTiers.createdAt)),
  );
}

/**
 * One decision by id.
 *
 * @param db the database
 * @param id the decision id
 * @returns the row, or null
 */
export async function getDecision(db: Db, id: string): Promise<DecisionRecord | null> {
  const rows = await run(
    "read the decision",
    () => db.select().from(decisions).where(eq(decisions.id, id)).limit(1),
  );
  return rows[0] ?? null;
}

/** Filters of {@link listDecisions}. */
export interface ListDecisionsOptions {
  /** Inclusive lower bound of `createdAt`, Unix milliseconds. */
  sinceMs?: number;
  /** Exclusive upper bound of `createdAt`, Unix milliseconds. */
  untilMs?: number;
  route?: Route;
  edgeLocation?: string;
  switcherVersion?: string;
  clientId?: string;
  /** @default 1000 */
  limit?: number;
  /** By `createdAt`, then id. @default "asc" */
  order?: "asc" | "desc";
}

/**
 * Decisions in a time window, filtered, oldest first (or newest first).
 *
 * @param db the database
 * @param options filters, `limit` and `order`
 * @returns the rows
 */
export async function listDecisions(db: Db, options: ListDecisionsOptions = {}): Promise<DecisionRecord[]> {
  const where = and(
    options.sinceMs !== undefined ? gte(decisions.createdAt, options.sinceMs) : undefined,
    options.untilMs !== undefined ? lt(decisions.createdAt, options.untilMs) : undefined,
    options.route !== undefined ? eq(decisions.route, options.route) : undefined,
    options.edgeLocation !== undefined ? eq(decisions.edgeLocation, options.edgeLocation) : undefined,
    options.switcherVersion !== undefined ? eq(decisions.switcherVersion, options.switcherVersion) : undefined,
    options.clientId !== undefined ? eq(decisions.clientId, options.clientId) : undefined,
  );
  const dir = options.order === "desc" ? desc : asc;
  return await run(
    "list decisions",
    () =>
      db.select().from(decisions).where(where).orderBy(dir(decisions.createdAt), dir(decisions.id))
        .limit(options.limit ?? 1000),
  );
}

/**
 * Decisions that carry both models' outputs (offloaded, forced to the cloud, or shadowed): the pairs DMD can learn
 * from, oldest first.
 *
 * @param db the database
 * @param options `sinceMs` (inclusive), `edgeModelVersion` to keep pairs of the serving edge model only, `limit`
 *   (default 1,000,000)
 * @returns the rows
 */
export async function listLoggedPairs(
  db: Db,
  options: { sinceMs?: number; edgeModelVersion?: string; limit?: number } = {},
): Promise<DecisionRecord[]> {
  const where = and(
    isNotNull(decisions.cloudProbs),
    options.sinceMs !== undefined ? gte(decisions.createdAt, options.sinceMs) : undefined,
    options.edgeModelVersion !== undefined ? eq(decisions.edgeModelVersion, options.edgeModelVersion) : undefined,
  );
  return await run(
    "list logged pairs",
    () =>
      db.select().from(decisions).where(where).orderBy(asc(decisions.createdAt), asc(decisions.id))
        .limit(options.limit ?? 1_000_000),
  );
}

/**
 * Count decisions, for checks that nothing accepted was lost.
 *
 * @param db the database
 * @returns the number of rows
 */
export async function countDecisions(db: Db): Promise<number> {
  const [row] = await run("count decisions", () => db.select({ n: sql<number>`count(*)` }).from(decisions));
  return Number(row.n);
}

/** The columns an upsert of a DMD pair replaces: all but its key, id and first storage time. */
function pairUpdateSet(): Record<string, ReturnType<typeof sql>> {
  const keep = new Set(["id", "source", "sourceRef", "edgeModelVersion", "cloudModelVersion", "createdAt"]);
  const set: Record<string, ReturnType<typeof sql>> = {};
  for (const [key, column] of Object.entries(getTableColumns(dmdPairs)) as [string, SQLiteColumn][]) {
    if (!keep.has(key)) set[key] = sql.raw(`excluded.\`${column.name}\``);
  }
  return set;
}

/**
 * Store DMD pairs atomically. A pair already stored for the same source, reference and model versions is
 * updated (its labels, features and outputs are replaced; its id and `createdAt` stay), so a job that recomputes
 * features refreshes the stored pairs.
 *
 * @param db the database
 * @param pairs the pairs
 */
export async function upsertPairs(db: Db, pairs: NewDmdPair[]): Promise<void> {
  if (pairs.length === 0) return;
  const set = pairUpdateSet();
  const [first, ...rest] = chunks(pairs).map((c) =>
    db.insert(dmdPairs).values(c).onConflictDoUpdate({
      target: [dmdPairs.source, dmdPairs.sourceRef, dmdPairs.edgeModelVersion, dmdPairs.cloudModelVersion],
      set,
    })
  );
  await run(`store ${pairs.length} DMD pairs`, () => db.batch([first, ...rest]));
}

/**
 * Stored DMD pairs for a model pair, in storage order.
 *
 * @param db the database
 * @param options model versions, optional `source`, `sinceMs` (inclusive, on `createdAt`) and `limit`
 * @returns the pairs
 */
export async function listPairs(
  db: Db,
  options: {
    edgeModelVersion: string;
    cloudModelVersion: string;
    source?: PairSource;
    sinceMs?: number;
    limit?: number;
  },
): Promise<DmdPair[]> {
  return await run(
    "list DMD pairs",
    () =>
      db.select().from(dmdPairs).where(and(
        eq(dmdPairs.edgeModelVersion, options.edgeModelVersion),
        eq(dmdPairs.cloudModelVersion, options.cloudModelVersion),
        options.source !== undefined ? eq(dmdPairs.source, options.source) : undefined,
        options.sinceMs !== undefined ? gte(dmdPairs.createdAt, options.sinceMs) : undefined,
      )).orderBy(asc(dmdPairs.id)).limit(options.limit ?? 1_000_000),
  );
}

/**
 * Record a switcher version.
 *
 * @param db the database
 * @param row the version
 * @throws AppError INVALID_INPUT when the version exists
 */
export async function insertSwitcherVersion(db: Db, row: NewSwitcherVersion): Promise<void> {
  await run(`record switcher ${row.version}`, () => db.insert(switcherVersions).values(row));
}

/**
 * One switcher version.
 *
 * @param db the database
 * @param version its name
 * @returns the row, or null
 */
export async function getSwitcherVersion(db: Db, version: string): Promise<SwitcherVersion | null> {
  const rows = await run(
    `read switcher ${version}`,
    () => db.select().from(switcherVersions).where(eq(switcherVersions.version, version)).limit(1),
  );
  return rows[0] ?? null;
}

/**
 * The active release of a scope (default: the hop-0 switcher), if any.
 *
 * @param db the database
 * @param scope role and hop
 * @returns the active version or null
 */
export async function activeSwitcherVersion(
  db: Db,
  scope: ReleaseScope = SWITCHER_SCOPE,
): Promise<SwitcherVersion | null> {
  const rows = await run(
    `read the active ${scope.role} of hop ${scope.hop}`,
    () =>
      db.select().from(switcherVersions).where(and(eq(switcherVersions.status, "active"), inScope(scope)))
        .orderBy(desc(switcherVersions.promotedAt)).limit(1),
  );
  return rows[0] ?? null;
}

/**
 * Releases, newest first.
 *
 * @param db the database
 * @param options `status` to keep one status only; `scope` to keep one role and hop
 * @returns the versions
 */
export async function listSwitcherVersions(
  db: Db,
  options: { status?: SwitcherStatus; scope?: ReleaseScope } = {},
): Promise<SwitcherVersion[]> {
  return await run(
    "list switcher versions",
    () =>
      db.select().from(switcherVersions)
        .where(and(
          options.status !== undefined ? eq(switcherVersions.status, options.status) : undefined,
          options.scope !== undefined ? inScope(options.scope) : undefined,
        ))
        .orderBy(desc(switcherVersions.createdAt), desc(switcherVersions.version)),
  );
}

/**
 * Set a switcher version's status to `candidate`, `rejected` or `retired`; making one active is
 * {@link promoteSwitcherVersion}'s job, since exactly one may be active.
 *
 * @param db the database
 * @param version its name
 * @param options the new `status`
 * @throws AppError NOT_FOUND when there is no such version; RangeError for `active`
 */
export async function setSwitcherStatus(
  db: Db,
  version: string,
  options: { status: Exclude<SwitcherStatus, "active"> },
): Promise<void> {
  if ((options.status as SwitcherStatus) === "active") {
    throw new RangeError(`Cannot set switcher ${version} active: promote it instead`);
  }
  const rows = await run(
    `set switcher ${version} ${options.status}`,
    () =>
      db.update(switcherVersions).set({ status: options.status }).where(eq(switcherVersions.version, version))
        .returning({ version: switcherVersions.version }),
  );
  if (rows.length === 0) throw new AppError("NOT_FOUND", `Cannot set switcher ${version}: no such version`);
}

/**
 * Make a release the active one of its role and hop, retiring the one active before, in one atomic batch.
 *
 * @param db the database
 * @param version the version to activate
 * @param options `nowMs`, the promotion time (default: now)
 * @returns the version that was active before, or null
 * @throws AppError NOT_FOUND when there is no such version, INVALID_INPUT when it was rejected
 */
export async function promoteSwitcherVersion(
  db: Db,
  version: string,
  options: { nowMs?: number } = {},
): Promise<string | null> {
  const row = await getSwitcherVersion(db, version);
  if (!row) throw new AppError("NOT_FOUND", `Cannot promote switcher ${version}: no such version`);
  if (row.status === "rejected") {
    throw new AppError("INVALID_INPUT", `Cannot promote switcher ${version}: it was rejected`);
  }
  const scope = { role: row.role, hop: row.hop };
  const previous = await activeSwitcherVersion(db, scope);
  await run(`promote switcher ${version}`, () =>
    db.batch([
      db.update(switcherVersions).set({ status: "retired" })
        .where(and(eq(switcherVersions.status, "active"), inScope(scope), ne(switcherVersions.version, version))),
      db.update(switcherVersions).set({ status: "active", promotedAt: options.nowMs ?? Date.now() })
        .where(eq(switcherVersions.version, version)),
    ]));
  return previous && previous.version !== version ? previous.version : null;
}

/**
 * Record a switcher version unless one of that name exists (start-up registers the manifest's switcher this way,
 * so that several edge apps starting together agree).
 *
 * @param db the database
 * @param row the version
 * @returns true when this call recorded it
 */
export async function ensureSwitcherVersion(db: Db, row: NewSwitcherVersion): Promise<boolean> {
  const rows = await run(
    `record switcher ${row.version}`,
    () =>
      db.insert(switcherVersions).values(row).onConflictDoNothing({ target: switcherVersions.version })
        .returning({ version: switcherVersions.version }),
  );
  return rows.length > 0;
}

/**
 * The release to roll back to: the most recently promoted release of the scope other than the active one that is
 * not rejected and can serve (it has its artefact, or needs none: a confidence rule has no file).
 *
 * @param db the database
 * @param scope role and hop (default: the hop-0 switcher)
 * @returns the version, or null when there is none
 */
export async function previousSwitcherVersion(
  db: Db,
  scope: ReleaseScope = SWITCHER_SCOPE,
): Promise<SwitcherVersion | null> {
  const rows = await run(
    "find the previous switcher",
    () =>
      db.select().from(switcherVersions).where(and(
        eq(switcherVersions.status, "retired"),
        inScope(scope),
        isNotNull(switcherVersions.promotedAt),
        or(isNotNull(switcherVersions.artefact), eq(switcherVersions.file, "")),
      )).orderBy(desc(switcherVersions.promotedAt)).limit(1),
  );
  return rows[0] ?? null;
}

/**
 * Roll back: the active release of the scope is marked rejected (it is never chosen again by a rollback) and the
 * previous one (see {@link previousSwitcherVersion}) becomes active, in one atomic batch.
 *
 * @param db the database
 * @param options `nowMs`, the promotion time (default: now); `scope` (default: the hop-0 switcher)
 * @returns the version rolled back from (or null when none was active) and the one now active
 * @throws AppError NOT_FOUND when there is no previous version to restore
 */
export async function rollbackSwitcherVersion(
  db: Db,
  options: { nowMs?: number; scope?: ReleaseScope } = {},
): Promise<{ from: string | null; to: string }> {
  const scope = options.scope ?? SWITCHER_SCOPE;
  const [active, previous] = await Promise.all([activeSwitcherVersion(db, scope), previousSwitcherVersion(db, scope)]);
  if (!previous) throw new AppError("NOT_FOUND", "Cannot roll back: no earlier switcher version with its artefact");
  await run(`roll back to switcher ${previous.version}`, () =>
    db.batch([
      db.update(switcherVersions).set({ status: "rejected" })
        .where(and(eq(switcherVersions.status, "active"), inScope(scope))),
      db.update(switcherVersions).set({ status: "active", promotedAt: options.nowMs ?? Date.now() })
        .where(eq(switcherVersions.version, previous.version)),
    ]));
  return { from: active?.version ?? null, to: previous.version };
}
