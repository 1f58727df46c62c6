/**
 * Opening the decision database: a libSQL client (a local file by default; `libsql://` or `http(s)://` with a
 * token for Turso in production), drizzle on top, and the committed migrations applied at open.
 *
 * Lifecycle: open (create the folder, connect, WAL + busy timeout for local files) -> migrate -> use -> close.
 *
 * @module
 */
import { dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { type Client, createClient } from "@libsql/client";
import { drizzle, type LibSQLDatabase } from "drizzle-orm/libsql";
import { migrate } from "drizzle-orm/libsql/migrator";
import { AppError } from "../errors.ts";
import * as schema from "./schema.ts";

/** The drizzle database with the project's schema. */
export type Db = LibSQLDatabase<typeof schema>;

/** An open database. */
export interface Database {
  /** The libSQL client underneath (for `PRAGMA`s and health checks). */
  client: Client;
  /** Drizzle over the client; the named queries in `db/queries.ts` take it. */
  db: Db;
  /**
   * True when a trivial query succeeds.
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

/**
 * The local path of a `file:` URL (`file:rel/x.db`, `file:/abs/x.db`, `file:///abs/x.db`, query ignored), or null
 * for other URLs.
 */
function localPath(url: string): string | null {
  if (!url.startsWith("file:")) return null;
  let path = url.slice("file:".length).replace(/[?#].*$/, "");
  if (path.startsWith("//")) path = path.replace(/^\/\/[^/]*/, "");
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
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
      await new Promise((r) => setTimeout(r, 20 * attempt + Math.random() * 30));
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
    // `timeout` is SQLite's busy timeout, applied by the client to every connection it opens.
    client = createClient({ url, authToken: options.authToken, timeout: options.busyTimeoutMs ?? 5000 });
    if (path !== null && path !== ":memory:") {
      // WAL lets analysts and DMD jobs read while the edge app writes. It is a property of the file, set once.
      await client.execute("PRAGMA journal_mode = WAL");
    }
    const db = drizzle(client, { schema });
    await migrateWithRetry(db);
    const open = client;
    return {
      client: open,
      db,
      async ping() {
        try {
          await open.execute("SELECT 1");
          return true;
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
