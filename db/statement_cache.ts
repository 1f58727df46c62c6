/**
 * Prepared write statements kept per libSQL connection. `@libsql/client` prepares every statement anew on each call
 * (`executeStmt` calls `prepare`), and the decision writer's flush is one `insert` of up to 200 rows with some 6,000
 * parameters: preparing that text is about two fifths of the flush (`deno task bench:dbprocess`: "write of 200
 * decisions", statement cache on and off). Installed once for the process by `db/direct_client.ts`, under every local
 * client: the service's database process, scripts and tests alike.
 *
 * Only statements that return no rows are kept (inserts, updates, deletes, `BEGIN`/`COMMIT`): a write is run to the
 * end by one synchronous call on its connection, so a kept statement is never in use twice, and SQLite resets it after
 * an error and re-prepares it after a schema change. Reads are prepared as before; they are short, and a reader's
 * rows are read through an iterator. The cache is a least-recently-used map of {@link STATEMENT_CACHE_SIZE}
 * statements per connection, dropped when the connection closes.
 *
 * @module
 */
import Database from "libsql";

/** Write statements kept per connection. */
export const STATEMENT_CACHE_SIZE = 32;

type Connection = InstanceType<typeof Database>;
type Statement = ReturnType<Connection["prepare"]>;

const caches = new WeakMap<Connection, Map<string, Statement>>();
let installed = false;
let enabled = true;

/**
 * Keep prepared write statements on every libSQL connection of this process, from now on. Idempotent.
 */
export function installStatementCache(): void {
  if (installed) return;
  installed = true;
  const proto = Database.prototype;
  const prepare = proto.prepare;
  const close = proto.close;
  proto.prepare = function (this: Connection, sql: string): Statement {
    if (!enabled) return prepare.call(this, sql);
    let cache = caches.get(this);
    const kept = cache?.get(sql);
    if (kept && cache) {
      cache.delete(sql);
      cache.set(sql, kept);
      return kept;
    }
    const statement = prepare.call(this, sql);
    if (statement.reader) return statement;
    if (!cache) caches.set(this, cache = new Map());
    cache.set(sql, statement);
    if (cache.size > STATEMENT_CACHE_SIZE) cache.delete(cache.keys().next().value!);
    return statement;
  } as typeof proto.prepare;
  proto.close = function (this: Connection): Connection {
    caches.delete(this);
    return close.call(this);
  };
}

/**
 * Turn the cache off or back on for this process (`deno task bench:dbprocess` measures both). Off, every statement
 * is prepared anew and none is kept; statements kept before stay for when it is back on.
 *
 * @param on whether to keep and reuse write statements
 */
export function setStatementCache(on: boolean): void {
  enabled = on;
}

/**
 * How many write statements a connection keeps now (for tests).
 *
 * @param connection a libSQL connection
 * @returns the count
 */
export function keptStatements(connection: Connection): number {
  return caches.get(connection)?.size ?? 0;
}
