/**
 * A libSQL client in this process, guarded by the pre-flight check (`db/preflight.ts`) on a local file. The service
 * runs it in its database process (`db/host.ts`); scripts, tests and `DATABASE_PROCESS=false` run it in their own.
 *
 * @module
 */
import { type Client, createClient } from "@libsql/client";
import { checkDatabaseFiles, closeWhenWritable, unwritableDatabaseFile } from "./preflight.ts";
import { installStatementCache } from "./statement_cache.ts";

/** Options of {@link openDirectClient}. */
export interface DirectClientOptions {
  /** Auth token for remote databases; never logged. */
  authToken?: string;
  /** How long a local write waits for another writer's lock, in milliseconds. @default 5000 */
  busyTimeoutMs?: number;
}

/** Client methods that reach the database (each is checked first); `close` is handled apart. */
const CALLS = new Set(["execute", "batch", "migrate", "transaction", "executeMultiple", "sync"]);

/**
 * The local path of a `file:` URL (`file:rel/x.db`, `file:/abs/x.db`, `file:///abs/x.db`, query ignored), or null
 * for other URLs.
 *
 * @param url a database URL
 * @returns the path, `:memory:` for an in-memory database, or null for a remote one
 */
export function localPath(url: string): string | null {
  if (!url.startsWith("file:")) return null;
  let path = url.slice("file:".length).replace(/[?#].*$/, "");
  if (path.startsWith("//")) path = path.replace(/^\/\/[^/]*/, "");
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

/**
 * Open a libSQL client. On a local file the pre-flight check runs first and before each call: a call on a file
 * whose `-shm` (or `-wal`, or the database itself) this process cannot write fails with `DatabaseFileError` instead
 * of touching the mapping, and `close()` waits until the file is writable again ({@link closeWhenWritable}). A
 * transaction's own statements are not checked again after it began.
 *
 * @param url the database URL
 * @param options `authToken`, `busyTimeoutMs`
 * @returns the client
 * @throws DatabaseFileError when a file cannot be written (the callers wrap it in `DB_UNAVAILABLE`)
 */
export function openDirectClient(url: string, options: DirectClientOptions = {}): Client {
  const path = localPath(url);
  const local = path !== null && path !== ":memory:" ? path : null;
  const problem = local === null ? null : unwritableDatabaseFile(local);
  if (problem) throw problem;
  installStatementCache();
  // `timeout` is SQLite's busy timeout, applied by the client to every connection it opens.
  const client = createClient({ url, authToken: options.authToken, timeout: options.busyTimeoutMs ?? 5000 });
  if (local === null) return client;
  return new Proxy(client, {
    get(target, prop) {
      const value = Reflect.get(target, prop, target);
      if (prop === "close") return () => closeWhenWritable(local, () => target.close());
      if (typeof value !== "function" || !CALLS.has(String(prop))) return value;
      return (...args: unknown[]) => {
        try {
          checkDatabaseFiles(local, "Cannot use the decision database");
        } catch (err) {
          return Promise.reject(err);
        }
        return value.apply(target, args);
      };
    },
  });
}
