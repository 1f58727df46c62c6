/**
 * A libSQL client whose calls run in a child process, the database process (`db/host.ts`), so that nothing SQLite
 * does to a local file can end the service (a write to the mapped `-shm` of a file made unwritable ends its process
 * with SIGBUS, with no log line, and no check before the call can close that window).
 *
 * One database process serves every hosted client of a JavaScript realm (the HTTP thread has one, the decision
 * writer's thread its own, so reads never wait for a flush); it starts on the first call. When it ends, for
 * whatever reason, calls in flight fail with {@link DatabaseProcessError} (`DB_PROCESS_ENDED`, naming the signal),
 * `onExit` hears of it once, and the next call starts a new process and opens its connection again. Calls cost one
 * round trip over a pipe (see `deno task bench:dbprocess`).
 *
 * @module
 */
import type { Client, InArgs, InStatement, Replicated, ResultSet, Transaction, TransactionMode } from "@libsql/client";
import {
  encodeFrame,
  errorFromWire,
  type HostReply,
  type HostRequest,
  readFrames,
  resultFromWire,
  statementToWire,
  type WireResult,
} from "./host_protocol.ts";

/** The code of {@link DatabaseProcessError}. */
export const DB_PROCESS_ENDED = "DB_PROCESS_ENDED";

/** The database process ended while a call was in flight (or could not start). */
export class DatabaseProcessError extends Error {
  /** Always {@link DB_PROCESS_ENDED}. */
  readonly code = DB_PROCESS_ENDED;

  /** @param message how it ended */
  constructor(message: string) {
    super(message);
    this.name = "DatabaseProcessError";
  }
}

/** Options of {@link openHostedClient}. */
export interface HostedClientOptions {
  /** Never logged. */
  authToken?: string;
  /** How long a local write waits for another writer's lock, in milliseconds. @default 5000 */
  busyTimeoutMs?: number;
  /** The database process's module: `db/host.ts` in the source tree, its bundle in `dist/`. @default {@link hostEntry} */
  entry?: string;
  /** Called once each time the realm's database process ends unexpectedly, with how it ended. */
  onExit?: (reason: string) => void;
}

/**
 * The database process's module: `host.ts` beside this module, or `db/host.js` beside the bundle that contains it
 * (`scripts/build.ts`; the decision writer's thread is given the path its parent resolved).
 *
 * @returns the module's URL
 */
export function hostEntry(): string {
  return import.meta.url.endsWith(".js")
    ? new URL("./db/host.js", import.meta.url).href
    : new URL("./host.ts", import.meta.url).href;
}

/** One running database process. */
class DatabaseHost {
  #child: Deno.ChildProcess;
  #stdin: WritableStreamDefaultWriter<Uint8Array>;
  #pending = new Map<number, { resolve: (value: unknown) => void; reject: (err: unknown) => void }>();
  #nextId = 1;
  /** Why it ended, once it has. */
  ended: string | null = null;
  /** Resolves when it has ended. */
  readonly done: Promise<string>;

  #stopping = false;

  constructor(entry: string, onExit: (reason: string) => void) {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "--allow-read", "--allow-write", "--allow-env", "--allow-ffi", "--allow-sys", entry],
      stdin: "piped",
      stdout: "piped",
      stderr: "inherit",
    }).spawn();
    this.#child = child;
    // An idle process must not keep this one alive (it exits when the pipe closes); a call in flight does.
    this.#child.unref();
    this.#stdin = this.#child.stdin.getWriter();
    const reading = (async () => {
      try {
        for await (const frame of readFrames(child.stdout)) {
          const reply = frame as HostReply;
          const p = this.#pending.get(reply.id);
          if (!p) continue;
          this.#pending.delete(reply.id);
          if (this.#pending.size === 0) child.unref();
          if (reply.ok) p.resolve(reply.value);
          else p.reject(errorFromWire(reply.error));
        }
      } catch { /* the pipe broke: the status below says why */ }
    })();
    this.done = Promise.all([this.#child.status, reading]).then(([status]) => {
      const how = status.signal ? `with ${status.signal}` : `with exit code ${status.code}`;
      const reason = `the database process (pid ${this.#child.pid}) ended ${how}`;
      this.ended = reason;
      const waiting = [...this.#pending.values()];
      this.#pending.clear();
      for (const p of waiting) p.reject(new DatabaseProcessError(`Cannot use the decision database: ${reason}`));
      if (!this.#stopping) onExit(reason);
      return reason;
    });
  }

  /** Send a request and wait for its reply. */
  call(request: DistributiveOmit<HostRequest, "id">): Promise<unknown> {
    if (this.ended) return Promise.reject(new DatabaseProcessError(`Cannot use the decision database: ${this.ended}`));
    const id = this.#nextId++;
    return new Promise((resolve, reject) => {
      if (this.#pending.size === 0) this.#child.ref();
      this.#pending.set(id, { resolve, reject });
      this.#stdin.write(encodeFrame({ ...request, id })).catch(() => {
        // The process is gone; `done` fails every waiting call.
      });
    });
  }

  /** Close its stdin: it closes its connections and exits. */
  async stop(): Promise<void> {
    this.#stopping = true;
    // The child's own handles do not keep the event loop alive once it was unref'd: this timer does, until it exits.
    const keepAlive = setInterval(() => {}, 1000);
    try {
      await this.#stdin.close().catch(() => {});
      await this.done;
    } finally {
      clearInterval(keepAlive);
    }
  }
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** The realm's database process, started on demand and replaced after it ends. */
let shared: DatabaseHost | null = null;
/** Hosted clients still open in this realm; the process stops {@link IDLE_STOP_MS} after the last one closes. */
let openClients = 0;

function realmHost(entry: string): DatabaseHost {
  if (shared && !shared.ended) return shared;
  shared = new DatabaseHost(entry, (reason) => {
    for (const listener of exitListeners) listener(reason);
  });
  return shared;
}

/** Every `onExit` of this realm's open clients. */
const exitListeners = new Set<(reason: string) => void>();

/**
 * Open a client whose calls run in the realm's database process. Nothing is opened until the first call; a file the
 * process cannot write makes that call fail with the pre-flight check's `DatabaseFileError`, as a client in this
 * process would.
 *
 * @param url a local database URL (`file:...`)
 * @param options the token, the busy timeout, the process's module, an exit listener
 * @returns the client
 * @example
 * const client = openHostedClient("file:data/decisions.db", { busyTimeoutMs: 200 });
 * await client.execute("SELECT 1");
 * client.close();
 */
export function openHostedClient(url: string, options: HostedClientOptions = {}): Client {
  return new HostedClient(url, options);
}

class HostedClient implements Client {
  readonly protocol = "file";
  closed = false;
  #url: string;
  #options: HostedClientOptions;
  #entry: string;
  #host: DatabaseHost | null = null;
  #cid: Promise<number> | null = null;
  #onExit: (reason: string) => void;

  constructor(url: string, options: HostedClientOptions) {
    // The process may run with another working directory's meaning of a relative path: make it absolute here.
    this.#url = absoluteFileUrl(url);
    this.#options = options;
    this.#entry = options.entry ?? hostEntry();
    this.#onExit = (reason) => options.onExit?.(reason);
    exitListeners.add(this.#onExit);
    openClients++;
  }

  /** The host and this client's connection on it, (re)opened on a new process when the last one ended. */
  async #connection(): Promise<{ host: DatabaseHost; cid: number }> {
    if (this.closed) throw new DatabaseProcessError("Cannot use the decision database: the client is closed");
    const host = realmHost(this.#entry);
    if (host !== this.#host || this.#cid === null) {
      this.#host = host;
      this.#cid = host.call({
        op: "open",
        url: this.#url,
        authToken: this.#options.authToken,
        busyTimeoutMs: this.#options.busyTimeoutMs,
      }) as Promise<number>;
      // A failed open (e.g. a file the process may not write) is tried again by the next call.
      const opening = this.#cid;
      opening.catch(() => {
        if (this.#cid === opening) this.#cid = null;
      });
    }
    return { host, cid: await this.#cid };
  }

  async #call(request: DistributiveOmit<HostRequest, "id" | "cid">): Promise<unknown> {
    const { host, cid } = await this.#connection();
    return host.call({ ...request, cid } as DistributiveOmit<HostRequest, "id">);
  }

  execute(stmt: InStatement): Promise<ResultSet>;
  execute(sql: string, args?: InArgs): Promise<ResultSet>;
  async execute(stmt: InStatement | string, args?: InArgs): Promise<ResultSet> {
    const statement = typeof stmt === "string" ? { sql: stmt, args: args ?? [] } : stmt;
    return resultFromWire(await this.#call({ op: "execute", stmt: statementToWire(statement) }) as WireResult);
  }

  async batch(stmts: Array<InStatement | [string, InArgs?]>, mode?: TransactionMode): Promise<ResultSet[]> {
    const wire = stmts.map((s) => statementToWire(s as InStatement));
    return (await this.#call({ op: "batch", stmts: wire, mode }) as WireResult[]).map(resultFromWire);
  }

  async migrate(stmts: InStatement[]): Promise<ResultSet[]> {
    const wire = stmts.map((s) => statementToWire(s));
    return (await this.#call({ op: "migrate", stmts: wire }) as WireResult[]).map(resultFromWire);
  }

  async executeMultiple(sql: string): Promise<void> {
    await this.#call({ op: "executeMultiple", sql });
  }

  async transaction(mode?: TransactionMode): Promise<Transaction> {
    const { host, cid } = await this.#connection();
    const tid = await host.call({ op: "begin", cid, mode }) as number;
    return new HostedTransaction(host, tid);
  }

  sync(): Promise<Replicated> {
    return Promise.resolve(undefined);
  }

  reconnect(): void {
    this.#cid = null;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    exitListeners.delete(this.#onExit);
    const host = this.#host;
    const cid = this.#cid;
    if (host && cid && !host.ended) {
      void cid.then((id) => host.call({ op: "close", cid: id })).catch(() => {});
    }
    if (--openClients === 0) stopWhenIdle();
  }
}

/** How long the realm's process outlives its last client (a writer reconnecting reuses it), in milliseconds. */
const IDLE_STOP_MS = 1000;
let idleTimer: ReturnType<typeof setTimeout> | undefined;

/**
 * Stop this realm's database process now and wait until it has exited; a later call starts a new one. Tests call it
 * so that no process outlives them.
 *
 * @returns when the process has exited
 */
export async function stopDatabaseProcess(): Promise<void> {
  clearTimeout(idleTimer);
  const host = shared;
  shared = null;
  await host?.stop();
}

/** Stop the realm's process once no client has been open for {@link IDLE_STOP_MS}. */
function stopWhenIdle(): void {
  clearTimeout(idleTimer);
  const timer = setTimeout(() => {
    if (openClients > 0 || !shared) return;
    const host = shared;
    shared = null;
    void host.stop();
  }, IDLE_STOP_MS);
  Deno.unrefTimer(timer);
  idleTimer = timer;
}

class HostedTransaction implements Transaction {
  closed = false;
  constructor(private host: DatabaseHost, private tid: number) {}

  async execute(stmt: InStatement): Promise<ResultSet> {
    return resultFromWire(
      await this.host.call({ op: "txExecute", tid: this.tid, stmt: statementToWire(stmt) }) as WireResult,
    );
  }

  async batch(stmts: InStatement[]): Promise<ResultSet[]> {
    const wire = stmts.map((s) => statementToWire(s));
    return (await this.host.call({ op: "txBatch", tid: this.tid, stmts: wire }) as WireResult[]).map(resultFromWire);
  }

  async executeMultiple(sql: string): Promise<void> {
    await this.host.call({ op: "txExecuteMultiple", tid: this.tid, sql });
  }

  async rollback(): Promise<void> {
    await this.host.call({ op: "rollback", tid: this.tid });
    this.closed = true;
  }

  async commit(): Promise<void> {
    await this.host.call({ op: "commit", tid: this.tid });
    this.closed = true;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.host.call({ op: "txClose", tid: this.tid }).catch(() => {});
  }
}

/** `file:rel/x.db` made absolute against this process's working directory; other URLs as they are. */
function absoluteFileUrl(url: string): string {
  if (!url.startsWith("file:")) return url;
  const rest = url.slice("file:".length);
  if (rest.startsWith("/") || rest.startsWith(":memory:")) return url;
  return `file:${Deno.cwd()}/${rest}`;
}
