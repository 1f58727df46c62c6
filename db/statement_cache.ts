/**
 * Prepared write statements kept per libSQL connection. `@libsql/client` prepares every statement anew on each call
 * (`executeStmt` calls `prepare`), and the decision writer's flush is one `insert` of up to 200 rows with 8,000
 * parameters: preparing that text is about a fifth of the flush (`deno task bench:dbprocess`: "write of 200
 * decisions", statement cache on and off, x0.76-0.80). Installed once for the process by `db/direct_client.ts`, under every local
 * client: the service's database process, scripts and tests alike.
 *
 * Only statements that return no rows are kept (inserts, updates, deletes, `BEGIN`/`COMMIT`): a write is run to the
 * end by one synchronous call on its connection, so a kept statement is never in use twice, and SQLite resets it after
 * an error and re-prepares it after a schema change. Reads are prepared as before; they are short, and a reader's
 * rows are read through an iterator. The cache is a least-recently-used map per connection, of at most
 * {@link STATEMENT_CACHE_SIZE} statements and {@link STATEMENT_CACHE_SQL_BYTES} of their SQL text, dropped when the
 * connection closes. The text bounds the memory: a prepared 200-row decision insert (25 KB of SQL) holds about 0.9 MiB,
 * so a writer whose batches come in many sizes keeps about 4 MiB, not the 28 MiB of 32 such statements.
 *
 * @module
 */
import Database from "libsql";

/** Write statements kept per connection. */
export const STATEMENT_CACHE_SIZE = 32;
/** SQL text of the statements kept per connection, in UTF-16 code units (the texts are ASCII); a longer one is not kept. */
export const STATEMENT_CACHE_SQL_BYTES = 128 * 1024;

type Connection = InstanceType<typeof Database>;
type Statement = ReturnType<Connection["prepare"]>;

/** A connection's kept statements, least recently used first, and the length of their texts. */
interface Cache {
  statements: Map<string, Statement>;
  sqlBytes: number;
}

const caches = new WeakMap<Connection, Cache>();
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
    const kept = cache?.statements.get(sql);
    if (kept && cache) {
      cache.statements.delete(sql);
      cache.statements.set(sql, kept);
      return kept;
    }
    const statement = prepare.call(this, sql);
    if (statement.reader || sql.length > STATEMENT_CACHE_SQL_BYTES) return statement;
    if (!cache) caches.set(this, cache = { statements: new Map(), sqlBytes: 0 });
    cache.statements.set(sql, statement);
    cache.sqlBytes += sql.length;
    while (cache.statements.size > STATEMENT_CACHE_SIZE || cache.sqlBytes > STATEMENT_CACHE_SQL_BYTES) {
      const oldest = cache.statements.keys().next().value!;
      cache.statements.delete(oldest);
      cache.sqlBytes -= oldest.length;
    }
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
  return caches.get(connection)?.statements.size ?? 0;
}
