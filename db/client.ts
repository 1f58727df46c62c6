/**
 * Opening the decision database: a libSQL client (a local file by default, `libsql://` or `http(s)://` with a token
 * in production), drizzle on top, and the committed migrations applied at open.
 *
 * @module
 */
import { type Client, createClient } from "@libsql/client";
import { drizzle, type LibSQLDatabase } from "drizzle-orm/libsql";
import { migrate } from "drizzle-orm/libsql/migrator";
import { AppError } from "../errors.ts";
import * as schema from "./schema.ts";

/** The drizzle database with the project's schema. */
export type Db = LibSQLDatabase<typeof schema>;

/** An open database. */
export interface Database {
  client: Client;
  db: Db;
  /** True when a trivial query succeeds. */
  ping(): Promise<boolean>;
  close(): void;
}

/** Where the migrations are: beside this module in the source tree, under `db/` beside the bundle in `dist/`. */
function migrationsFolder(): string {
  const url = import.meta.url.endsWith(".js")
    ? new URL("./db/migrations", import.meta.url)
    : new URL("./migrations", import.meta.url);
  return url.pathname;
}

/**
 * Open the database and bring its schema up to date.
 *
 * @param url `file:PATH`, `:memory:`, `libsql://...`, `http(s)://...` or `ws(s)://...`
 * @param options `authToken` for remote databases
 * @returns the open database
 * @throws AppError DB_UNAVAILABLE when it cannot be opened or migrated
 */
export async function openDatabase(url: string, options: { authToken?: string } = {}): Promise<Database> {
  let client: Client;
  try {
    if (url.startsWith("file:")) {
      const path = url.slice("file:".length);
      const dir = path.includes("/") ? path.slice(0, path.lastIndexOf("/")) : "";
      if (dir) await Deno.mkdir(dir, { recursive: true });
    }
    client = createClient({ url, authToken: options.authToken });
    if (url.startsWith("file:")) {
      // WAL lets analysts read while the edge app writes; busy_timeout rides out a concurrent writer.
      await client.execute("PRAGMA journal_mode = WAL");
      await client.execute("PRAGMA busy_timeout = 5000");
    }
    const db = drizzle(client, { schema });
    await migrate(db, { migrationsFolder: migrationsFolder() });
    return {
      client,
      db,
      async ping() {
        try {
          await client.execute("SELECT 1");
          return true;
        } catch {
          return false;
        }
      },
      close: () => client.close(),
    };
  } catch (err) {
    throw new AppError("DB_UNAVAILABLE", `Cannot open the decision database: ${(err as Error).message}`, {
      cause: err,
    });
  }
}
