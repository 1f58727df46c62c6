/**
 * Opening the decision database: a libSQL client (a local file by default; `libsql://` or `http(s)://` with a
 * token for Turso in production), drizzle on top, and the committed migrations applied at open.
 *
 * Lifecycle: open (create the folder, connect, WAL + busy timeout for local files) -> migrate -> use -> close.
 *
 * {@link connectForWrites} opens a second, write-only connection for the decision writer (`db/decision_writer.ts`),
 * which drops it after any failed write and opens a fresh one: a connection that once failed is not trusted
 * again (with @libsql/client 0.18.0, after one `SQLITE_BUSY` inside `batch()` a statement stays open until garbage
 * collection, and every later commit on that connection fails with "cannot commit transaction - SQL statements in
 * progress"). For a local file it also records the file's identity (device and inode), so that a database file
 * deleted or replaced under the running service is noticed instead of written to while unlinked.
 *
 * Every client on a local file is opened by {@link openClient}: the pre-flight check (`db/preflight.ts`) runs before
 * it opens and before each call on it, so that a `-shm` file that cannot be written is refused with a clear error
 * instead of being mapped, and a connection is never closed while its `-shm` would end its process with SIGBUS. The
 * service (`options.process`) runs those clients in a database process of their own (`db/host.ts`), since the check
 * and the call are not atomic: a SIGBUS there ends that process, never the service.
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import type { Client } from "@libsql/client";
import { drizzle, type LibSQLDatabase } from "drizzle-orm/libsql";
import { migrate } from "drizzle-orm/libsql/migrator";
import { AppError } from "../errors.ts";
import { backoffMs, sleep } from "../lib/deadline.ts";
import { localPath, openDirectClient } from "./direct_client.ts";
import { type HostedClientOptions, openHostedClient } from "./hosted_client.ts";
import * as schema from "./schema.ts";

/** The drizzle database with the project's schema, and its libSQL client (`$client`, for prepared statements). */
export type Db = LibSQLDatabase<typeof schema> & { $client: Client };

/** An open database. */
export interface Database {
  /** The libSQL client underneath (for `PRAGMA`s and health checks). */
  client: Client;
  /** Drizzle over the client; the named queries in `db/queries.ts` take it. */
  db: Db;
  /**
   * True when a trivial query succeeds and, for a local file, the file at the path is still the one opened (after
   * it was deleted or replaced, this connection reads a file nobody else sees: restart to follow the new one).
   *
   * @returns whether the database answers
   */
  ping(): Promise<boolean>;
  /** Close the client; pending statements fail with `CLIENT_CLOSED`. */
  close(): void;
}

/** Options of {@link openDatabase}. */
export interface OpenDatabaseOptions {
  /** Auth token for remote databases; never logged. */
  authToken?: string;
  /** How long a local write waits for another writer's lock, in milliseconds. @default 5000 */
  busyTimeoutMs?: number;
  /**
   * Run the calls on a local file in the realm's database process (`db/hosted_client.ts`), so that a SIGBUS in
   * SQLite ends that process, not this one; its module and exit listener. The service does; scripts and tests do
   * not. @default undefined (in this process)
   */
  process?: Pick<HostedClientOptions, "entry" | "onExit">;
}

/** A connection used only to write, with a way to tell whether its file is still the one at the path. */
export interface WriteConnection {
  db: Db;
  /**
   * What happened to the file this connection opened, or null when it is still at its path (always null for a
   * remote database).
   *
   * @returns "deleted", "replaced", or null
   */
  moved(): Promise<"deleted" | "replaced" | null>;
  close(): void;
}

/** Device and inode of a file, or null when it does not exist. */
async function identity(path: string): Promise<string | null> {
  try {
    const info = await Deno.stat(path);
    return `${info.dev}:${info.ino}`;
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return null;
    throw err;
  }
}

/**
 * Open a connection for writes to a database that {@link openDatabase} created. It never creates a local file: a
 * database file that is gone stays gone until an operator (or a restart) brings one back, and the decisions wait
 * in the outbox meanwhile. A file that is back without the schema (e.g. an empty file) is migrated.
 *
 * @param url the database URL (not `:memory:`, which cannot have a second connection)
 * @param options `authToken`, `busyTimeoutMs`
 * @returns the connection
 * @throws AppError DB_UNAVAILABLE when the file is missing or cannot be opened
 */
export async function connectForWrites(url: string, options: OpenDatabaseOptions = {}): Promise<WriteConnection> {
  const path = localPath(url);
  if (url === ":memory:" || path === ":memory:") {
    throw new RangeError("Cannot open a write connection to an in-memory database");
  }
  const opened = path === null ? null : await identity(path);
  if (path !== null && opened === null) {
    throw new AppError("DB_UNAVAILABLE", `Cannot connect to the decision database: ${path} does not exist`, {
      cause: new Deno.errors.NotFound(path),
    });
  }
  let client: Client | undefined;
  try {
    client = openClient(url, path, options);
    const db = drizzle(client, { schema });
    const tables = await client.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'decisions'");
    if (tables.rows.length === 0) {
      if (path !== null) await client.execute("PRAGMA journal_mode = WAL");
      await migrateWithRetry(db);
    }
    const open = client;
    return {
      db,
      async moved() {
        if (path === null) return null;
        const now = await identity(path);
        return now === null ? "deleted" : now === opened ? null : "replaced";
      },
      close: () => open.close(),
    };
  } catch (err) {
    client?.close();
    throw new AppError("DB_UNAVAILABLE", `Cannot connect to the decision database: ${messageOf(err)}`, {
      cause: err,
    });
  }
}

/**
 * Open a libSQL client: in the realm's database process (`db/hosted_client.ts`) for a local file when
 * `options.process` is not false, else in this process (`db/direct_client.ts`, with the same pre-flight checks).
 *
 * @param url the database URL
 * @param path its local path, or null for a remote database
 * @param options `authToken`, `busyTimeoutMs`, `process`
 * @returns the client
 * @throws DatabaseFileError when a file cannot be written (the callers wrap it in `DB_UNAVAILABLE`)
 */
function openClient(url: string, path: string | null, options: OpenDatabaseOptions): Client {
  const local = path !== null && path !== ":memory:";
  if (!local || !options.process) return openDirectClient(url, options);
  return openHostedClient(url, { ...options, ...options.process });
}

/** Attempts at migrating, so that processes opening a fresh database together all succeed. */
const MIGRATE_ATTEMPTS = 5;

/**
 * Where the migrations are: beside this module in the source tree, under `db/` beside the bundle in `dist/`
 * (`scripts/build.ts` copies them there). Resolved from the module, so any working directory works.
 */
function migrationsFolder(): string {
  const url = import.meta.url.endsWith(".js")
    ? new URL("./db/migrations", import.meta.url)
    : new URL("./migrations", import.meta.url);
  return fileURLToPath(url);
}

function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/**
 * Apply the migrations. Two processes opening a fresh database at once can both decide to apply the same
 * migration; the loser fails ("table already exists" or busy), and retrying re-reads the journal and finds
 * nothing left to do.
 */
async function migrateWithRetry(db: Db): Promise<void> {
  for (let attempt = 1;; attempt++) {
    try {
      await migrate(db, { migrationsFolder: migrationsFolder() });
      return;
    } catch (err) {
      if (attempt >= MIGRATE_ATTEMPTS) throw err;
      await sleep(backoffMs(attempt, { baseMs: 40, maxMs: 400, jitter: 0.5 }));
    }
  }
}

/**
 * Open the database and bring its schema up to date.
 *
 * @param url `file:PATH`, `:memory:`, `libsql://...`, `http(s)://...` or `ws(s)://...`
 * @param options `authToken` for remote databases, `busyTimeoutMs` for local files
 * @returns the open database
 * @throws AppError DB_UNAVAILABLE when it cannot be opened or migrated, with the driver's error as cause
 * @example
 * const database = await openDatabase("file:data/decisions.db");
 * const row = await getDecision(database.db, id);
 * database.close();
 */
export async function openDatabase(url: string, options: OpenDatabaseOptions = {}): Promise<Database> {
  const path = localPath(url);
  let client: Client | undefined;
  try {
    if (path !== null && path !== ":memory:" && dirname(path) !== ".") {
      await Deno.mkdir(dirname(path), { recursive: true });
    }
    client = openClient(url, path, options);
    if (path !== null && path !== ":memory:") {
      // WAL lets analysts and DMD jobs read while the edge app writes. It is a property of the file, set once.
      await client.execute("PRAGMA journal_mode = WAL");
    }
    const db = drizzle(client, { schema });
    await migrateWithRetry(db);
    const open = client;
    const opened = path !== null && path !== ":memory:" ? await identity(path) : null;
    return {
      client: open,
      db,
      async ping() {
        try {
          await open.execute("SELECT 1");
          // A file deleted or replaced under this connection: it answers, but from a file nobody else sees.
          return opened === null || await identity(path!) === opened;
        } catch {
          return false;
        }
      },
      close: () => open.close(),
    };
  } catch (err) {
    client?.close();
    throw new AppError("DB_UNAVAILABLE", `Cannot open the decision database: ${messageOf(err)}`, { cause: err });
  }
}
