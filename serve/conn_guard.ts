/**
 * A connection guard in front of the HTTP server: slow or idle clients cannot hold connections open forever.
 *
 * Deno 2.9's `Deno.serve` has no header-read timeout (hyper's is inert without a timer; denoland/deno#3515), and
 * Deno 2 cannot serve a connection accepted by hand. So the guard owns the public port (`Deno.listen`), and
 * `Deno.serve` listens on a unix socket in a private folder (mode 0700). Each accepted TCP connection is copied both
 * ways to its own connection to that socket, while serve/http1_framing.ts follows the HTTP/1.1 framing of both
 * directions (bodies stream through, never buffered). That relay runs on a thread of its own
 * (serve/conn_guard_thread.ts, {@link startRelay}); the HTTP thread only serves the socket:
 *
 * - a request head must be complete within `headerTimeoutMs`, counted from the connection's opening for the first
 *   request and from its first byte for each later one; past it the client gets `408` with `Connection: close` and
 *   the connection is closed. A head is only passed to the server once complete, so a slow client costs the server
 *   nothing (its connection to the server is opened at the first complete head);
 * - a kept-alive connection with no request in progress and no byte either way for `keepAliveIdleMs` is closed;
 * - at most `maxConnections` are open at once: one more is answered `503` and closed (each costs 3 descriptors: the
 *   client's, and both ends of its connection to the server);
 * - a malformed request (framing, obs-fold, bare CR, both Content-Length and Transfer-Encoding), a head over
 *   `maxHeadBytes` (431) or HTTP/2 prior knowledge (505) is answered by the guard, after the answers to the
 *   requests before it, and the connection is closed;
 * - the client's address travels to the handler in the `x-dmd-edge-peer` field, which the guard puts in every
 *   request head after removing any the client sent; the handler sees it as `info.remoteAddr`.
 *
 * A client's half-close is passed to the server once every request before it is answered (`Deno.serve` drops the
 * answer to a request in progress when its client half-closes).
 *
 * Lifecycle: listening -> (shutdown) the relay's thread closes the public port, the server drains
 * (serve/lifecycle.ts), the relay closes the connections still open and its thread ends, the private folder is
 * removed. A process that ends without shutting down (kill -9, the OOM killer) leaves its folder: the folder's name
 * carries its process id, and the next guard to start in the same temporary folder removes it
 * ({@link sweepSocketDirs}).
 *
 * @module
 */
import type { ErrorCode } from "../errors.ts";
import { sleep, within } from "../lib/deadline.ts";
import { Http1Framer } from "./http1_framing.ts";

/** The field that carries the client's address from the guard to the handler: `<address> <port>`. */
export const PEER_FIELD = "x-dmd-edge-peer";

/** The private folders' name: this prefix, the owning process's id, `-`, and a random part. */
export const SOCKET_DIR_PREFIX = "dmd-edge-http-";

/**
 * Remove the private folders that services which ended without shutting down left in `tmp`: a folder named
 * {@link SOCKET_DIR_PREFIX}`<pid>-...` that holds nothing but its socket, whose process no longer runs (where
 * `/proc` tells), and whose socket refuses a connection (no server listens on it: this also holds across process id
 * namespaces sharing one temporary folder, and where there is no `/proc`). Never throws: a folder that cannot be
 * read or removed is left.
 *
 * @param tmp the folder the private folders are made in
 * @returns the folders removed
 */
export async function sweepSocketDirs(tmp: string): Promise<string[]> {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(tmp)];
  } catch {
    return removed;
  }
  const uid = Deno.uid();
  for (const entry of entries) {
    const pid = entry.isDirectory && entry.name.startsWith(SOCKET_DIR_PREFIX)
      ? Number(entry.name.slice(SOCKET_DIR_PREFIX.length).split("-")[0])
      : NaN;
    if (!Number.isInteger(pid) || pid <= 0 || pid === Deno.pid || running(pid)) continue;
    const dir = `${tmp}/${entry.name}`;
    try {
      if (Deno.statSync(dir).uid !== uid) continue;
      const names = [...Deno.readDirSync(dir)].map((e) => e.name);
      if (names.some((n) => n !== "http.sock")) continue;
      if (names.length > 0) {
        if (await listening(`${dir}/http.sock`)) continue;
        Deno.removeSync(`${dir}/http.sock`);
      }
      Deno.removeSync(dir);
      removed.push(dir);
    } catch {
      // Removed by another process first, or not ours to remove: left.
    }
  }
  return removed;
}

/** Whether a process with this id runs, where `/proc` tells (false where it cannot tell). */
function running(pid: number): boolean {
  try {
    return Deno.statSync(`/proc/${pid}`).isDirectory;
  } catch {
    return false;
  }
}

/** Whether a server accepts connections on this unix socket. */
async function listening(path: string): Promise<boolean> {
  try {
    (await Deno.connect({ transport: "unix", path })).close();
    return true;
  } catch (err) {
    // Refused (no server): stale. Anything else (permissions, not a socket): treated as in use.
    return !(err instanceof Deno.errors.ConnectionRefused);
  }
}

/** Options of {@link createConnGuard}. */
export interface ConnGuardOptions {
  /** Interface of the public port. */
  hostname: string;
  /** The public port (0 picks a free one). */
  port: number;
  /** Longest time a request head may take to arrive, in milliseconds. */
  headerTimeoutMs: number;
  /** Longest a kept-alive connection may wait for its next request, in milliseconds. */
  keepAliveIdleMs: number;
  /** Most connections open at once. */
  maxConnections: number;
  /** Largest request head, in bytes. @default 16384 */
  maxHeadBytes?: number;
  /** How often deadlines are checked, in milliseconds. @default min(headerTimeoutMs, keepAliveIdleMs) / 4, in [10, 1000] */
  tickMs?: number;
}

/** Connection counts, for `/metrics`. */
export interface ConnGuardStats {
  /** Connections open now. */
  open: number;
  /** Connections accepted since the start. */
  accepted: number;
  /** Closed because a request head took longer than `headerTimeoutMs`. */
  headerTimeouts: number;
  /** Closed after `keepAliveIdleMs` without a request. */
  idleClosed: number;
  /** Refused because `maxConnections` were open. */
  refusedAtLimit: number;
  /** Closed after a malformed request or a head over the limit. */
  badRequests: number;
}

/** A server behind the guard. */
export interface GuardedServer {
  /** The public address. */
  readonly addr: Deno.NetAddr;
  /** Stop accepting, let the server drain (`Deno.HttpServer.shutdown`), close what is left. */
  shutdown(): Promise<void>;
}

/** The guard: its counts, and the server it starts. */
export interface ConnGuard {
  /** @returns the connection counts */
  stats(): ConnGuardStats;
  /**
   * Listen on the public port and serve `handler` behind the guard.
   *
   * @param handler the handler, which sees the client's address as `info.remoteAddr`
   * @returns the server, once the public port is bound
   * @throws Deno errors when the port cannot be bound
   */
  serve(handler: Deno.ServeHandler<Deno.NetAddr>): Promise<GuardedServer>;
}

const encoder = new TextEncoder();
/** At shutdown, how long the last answers may take to reach their clients once the server has closed, in ms. */
const SHUTDOWN_RELAY_MS = 1000;
/**
 * After the guard or the server ends a connection, how long the client may take to close its side, in ms: closing at
 * once with the client's bytes unread would reset the connection, and the client could lose the answer it has not
 * read yet.
 */
const LINGER_MS = 2000;

/** An answer the guard writes itself, always closing the connection. */
function answer(status: number, reason: string, code: ErrorCode, message: string, extra = ""): Uint8Array {
  const body = JSON.stringify({ code, message });
  return encoder.encode(
    `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${body.length}\r\n` +
      `connection: close\r\n${extra}\r\n${body}`,
  );
}

const TIMEOUT_ANSWER = answer(408, "Request Timeout", "REQUEST_TIMEOUT", "Cannot read request: the head took too long");
const LIMIT_ANSWER = answer(
  503,
  "Service Unavailable",
  "OVERLOADED",
  "Cannot accept the connection: too many are open",
  "retry-after: 1\r\n",
);
const CLOSED_ANSWER = answer(
  503,
  "Service Unavailable",
  "SHUTTING_DOWN",
  "Cannot serve: the service is shutting down",
  "retry-after: 1\r\n",
);
const REASONS: Record<number, string> = {
  400: "Bad Request",
  431: "Request Header Fields Too Large",
  505: "HTTP Version Not Supported",
};

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
}

/** One buffer from several (a head and the body bytes after it go to the server in one write). */
function joined(parts: Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0];
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** What a connection shares with the guard. */
interface Shared {
  socketPath: string;
  options: Required<ConnGuardOptions>;
  counts: ConnGuardStats;
  release(conn: GuardedConnection): void;
}

/**
 * One client connection and its connection to the server.
 *
 * States: reading (requests pass on) -> finishing (no more requests pass on: a rejection or a timeout waits for the
 * answers in progress, then its own answer is written) -> closed. Separately, the client's half-close is held until
 * every request is answered.
 */
class GuardedConnection {
  readonly #client: Deno.TcpConn;
  readonly #shared: Shared;
  #server: Deno.UnixConn | null = null;
  readonly #requests: Http1Framer;
  readonly #responses = new Http1Framer({ side: "response" });
  #headDeadline: number;
  #headsSeen = 0;
  #lastActivity: number;
  /** The guard's own answer, written once no answer is in progress; then the connection closes. */
  #finishing: Uint8Array | null = null;
  #clientEnded = false;
  #serverWriteClosed = false;
  /** The server stopped taking bytes (it closed after `Connection: close`): the client's next bytes are dropped. */
  #serverGone = false;
  /** Once the client's side is closed for writing: when the connection is closed anyway. */
  #lingerUntil = Infinity;
  #closed = false;
  #onClosed!: () => void;
  /** Resolves once the connection is closed. */
  readonly closed = new Promise<void>((resolve) => this.#onClosed = resolve);

  constructor(client: Deno.TcpConn, shared: Shared) {
    this.#client = client;
    this.#shared = shared;
    const peer = client.remoteAddr;
    this.#requests = new Http1Framer({
      side: "request",
      maxHeadBytes: shared.options.maxHeadBytes,
      extraFields: { names: [PEER_FIELD], lines: encoder.encode(`${PEER_FIELD}: ${peer.hostname} ${peer.port}\r\n`) },
    });
    this.#lastActivity = performance.now();
    this.#headDeadline = this.#lastActivity + shared.options.headerTimeoutMs;
    client.setNoDelay(true);
    this.#readClient().catch(() => this.close());
  }

  /** Requests passed on and not yet answered in full. */
  #unanswered(): number {
    return this.#requests.headsCompleted - this.#responses.messagesCompleted;
  }

  /**
   * Check the deadlines.
   *
   * @param now the time, in milliseconds
   */
  tick(now: number): void {
    if (now > this.#lingerUntil) return this.close();
    if (this.#closed || this.#finishing || this.#lingerUntil !== Infinity) return;
    if (now > this.#headDeadline) {
      this.#shared.counts.headerTimeouts++;
      this.#finish(TIMEOUT_ANSWER);
    } else if (
      this.#requests.headsCompleted > 0 && !this.#requests.busy() && this.#responses.phase === "idle" &&
      this.#unanswered() === 0 && now - this.#lastActivity > this.#shared.options.keepAliveIdleMs
    ) {
      this.#shared.counts.idleClosed++;
      this.close();
    }
  }

  /** Close both connections (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#client.close();
    } catch { /* already closed */ }
    try {
      this.#server?.close();
    } catch { /* already closed */ }
    this.#shared.release(this);
    this.#onClosed();
  }

  /** @returns whether a request reached the server (so that an answer may still be on its way) */
  reachedServer(): boolean {
    return this.#server !== null;
  }

  async #readClient(): Promise<void> {
    // 16 KiB, grown to 64 KiB once a read fills it: larger bodies pass in fewer reads and writes, idle and slow
    // clients hold little.
    let buf = new Uint8Array(16384);
    while (!this.#closed) {
      const n = await this.#client.read(buf).catch(() => null);
      if (n === null) return this.#onClientEnd();
      this.#lastActivity = performance.now();
      if (this.#finishing || this.#serverGone || this.#lingerUntil !== Infinity) continue;
      const out = this.#requests.push(buf.subarray(0, n));
      if (this.#requests.methods.length > 0) {
        for (const method of this.#requests.methods.splice(0)) this.#responses.expect(method);
      }
      this.#trackHead();
      if (out.length > 0) {
        const server = this.#server ?? await this.#connect();
        if (!server) return;
        try {
          await writeAll(server, joined(out));
        } catch {
          // Its answers so far still reach the client (#readServer), then the connection ends.
          this.#serverGone = true;
        }
      }
      if (n === buf.length && buf.length < 65536) buf = new Uint8Array(65536);
      const rejection = this.#requests.rejection;
      if (rejection) {
        this.#shared.counts.badRequests++;
        this.#finish(answer(rejection.status, REASONS[rejection.status], "INVALID_INPUT", rejection.message));
      }
    }
  }

  /** The head deadline: from the opening for the first request, from its first byte for each later one. */
  #trackHead(): void {
    const requests = this.#requests;
    if (requests.headsCompleted === 0) return;
    if (requests.phase !== "head") this.#headDeadline = Infinity;
    else if (requests.headsStarted !== this.#headsSeen) {
      this.#headDeadline = this.#lastActivity + this.#shared.options.headerTimeoutMs;
    }
    this.#headsSeen = requests.headsStarted;
  }

  /** Open the connection to the server (at the first complete head); a server gone answers 503 and closes. */
  async #connect(): Promise<Deno.UnixConn | null> {
    try {
      this.#server = await Deno.connect({ transport: "unix", path: this.#shared.socketPath });
    } catch {
      this.#finishing = CLOSED_ANSWER;
      await this.#writeFinal();
      return null;
    }
    this.#readServer().catch(() => this.close());
    return this.#server;
  }

  async #readServer(): Promise<void> {
    const server = this.#server!;
    const buf = new Uint8Array(16384);
    while (!this.#closed) {
      const n = await server.read(buf).catch(() => null);
      if (n === null) break;
      this.#lastActivity = performance.now();
      const chunk = buf.subarray(0, n);
      if (this.#responses.phase !== "opaque") this.#responses.push(chunk);
      if (this.#responses.phase === "opaque") this.#requests.goOpaque();
      await writeAll(this.#client, chunk);
      if (this.#unanswered() === 0 && this.#responses.phase === "idle") {
        if (this.#finishing) return this.#writeFinal();
        if (this.#clientEnded) this.#closeServerWrite();
      }
    }
    // The server closed (`Connection: close`, a drain, a shutdown): the guard's own answer if one waits and no
    // answer is cut in the middle, then hang up; an answer cut in the middle: close at once.
    const whole = this.#responses.phase === "idle" || this.#responses.phase === "opaque";
    if (this.#finishing && this.#responses.phase === "idle") return this.#writeFinal();
    if (whole) return this.#hangUp();
    this.close();
  }

  /** No more requests pass on; `response` is written once the answers in progress are. */
  #finish(response: Uint8Array): void {
    this.#finishing = response;
    if (!this.#server || (this.#unanswered() === 0 && this.#responses.phase === "idle")) {
      void this.#writeFinal();
    } else if (this.#requests.headsCompleted > this.#requests.messagesCompleted) {
      // A request whose body was cut: the server cannot finish it; it closes, then the answer is written.
      this.#closeServerWrite();
    }
  }

  async #writeFinal(): Promise<void> {
    const response = this.#finishing!;
    try {
      await writeAll(this.#client, response);
    } catch {
      return this.close();
    }
    await this.#hangUp();
  }

  /** Close the client's side for writing; the connection closes when the client closes its own, or at the linger. */
  async #hangUp(): Promise<void> {
    if (this.#closed || this.#lingerUntil !== Infinity) return;
    this.#lingerUntil = performance.now() + LINGER_MS;
    try {
      await this.#client.closeWrite();
    } catch {
      return this.close();
    }
    if (this.#clientEnded) this.close();
  }

  #onClientEnd(): void {
    this.#clientEnded = true;
    if (this.#finishing || !this.#server || this.#lingerUntil !== Infinity) return this.close();
    // Once every request is answered, the server may close (it drops an answer in progress on a half-close); a
    // request whose body was cut: the server sees the cut at once.
    const cut = this.#requests.headsCompleted > this.#requests.messagesCompleted;
    if (cut || (this.#unanswered() === 0 && this.#responses.phase === "idle")) this.#closeServerWrite();
  }

  #closeServerWrite(): void {
    if (this.#serverWriteClosed) return;
    this.#serverWriteClosed = true;
    this.#server?.closeWrite().catch(() => this.close());
  }
}

/** The order of the counts in the cells the relay's thread shares with the HTTP thread. */
const COUNT_NAMES = ["open", "accepted", "headerTimeouts", "idleClosed", "refusedAtLimit", "badRequests"] as const;

/** The counts as an object over shared cells: the relay's thread writes them, the HTTP thread reads them. */
function countsOver(cells: Int32Array): ConnGuardStats {
  const counts = {} as ConnGuardStats;
  COUNT_NAMES.forEach((name, i) =>
    Object.defineProperty(counts, name, { get: () => cells[i], set: (v: number) => (cells[i] = v), enumerable: true })
  );
  return counts;
}

/** The relay: the public port, its connections and their deadlines (run by serve/conn_guard_thread.ts). */
export interface Relay {
  /** The public address. */
  readonly addr: Deno.NetAddr;
  /** Close the public port; connections open stay. */
  stopAccepting(): Promise<void>;
  /** Once the server has closed: let its last answers reach the clients (bounded), then close every connection. */
  finish(): Promise<void>;
}

/**
 * Listen on the public port and relay each connection to the server's socket, under the guard's rules.
 *
 * @param options the resolved options
 * @param socketPath the server's unix socket
 * @param cells the counts, {@link COUNT_NAMES} in order
 * @returns the relay
 * @throws Deno errors when the port cannot be bound
 */
export function startRelay(options: Required<ConnGuardOptions>, socketPath: string, cells: Int32Array): Relay {
  const counts = countsOver(cells);
  const conns = new Set<GuardedConnection>();
  const listener = Deno.listen({ hostname: options.hostname, port: options.port });
  const shared: Shared = {
    socketPath,
    options,
    counts,
    release: (c) => {
      conns.delete(c);
      counts.open = conns.size;
    },
  };
  const timer = setInterval(() => {
    const now = performance.now();
    for (const c of conns) c.tick(now);
  }, options.tickMs);
  Deno.unrefTimer(timer);
  let closing = false;
  const accepting = (async () => {
    while (!closing) {
      let client: Deno.TcpConn;
      try {
        client = await listener.accept();
      } catch (err) {
        if (closing || err instanceof Deno.errors.BadResource) return;
        // Out of descriptors, or a connection reset before it was accepted: carry on.
        await sleep(50);
        continue;
      }
      counts.accepted++;
      if (conns.size >= options.maxConnections) {
        counts.refusedAtLimit++;
        void writeAll(client, LIMIT_ANSWER).catch(() => {}).finally(() => {
          try {
            client.close();
          } catch { /* closed */ }
        });
        continue;
      }
      conns.add(new GuardedConnection(client, shared));
      counts.open = conns.size;
    }
  })();
  return {
    addr: listener.addr,
    async stopAccepting() {
      closing = true;
      listener.close();
      await accepting;
    },
    async finish() {
      try {
        // A client that never sent a whole head has nothing coming.
        for (const c of conns) if (!c.reachedServer()) c.close();
        await within(Promise.all([...conns].map((c) => c.closed)), SHUTDOWN_RELAY_MS);
      } finally {
        for (const c of conns) c.close();
        clearInterval(timer);
      }
    },
  };
}

/** Messages to the relay's thread. */
export type RelayRequest =
  | { type: "start"; options: Required<ConnGuardOptions>; socketPath: string; cells: SharedArrayBuffer }
  | { type: "stop_accepting" }
  | { type: "finish" };

/** Messages from the relay's thread. */
export type RelayResponse =
  | { type: "listening"; addr: Deno.NetAddr }
  | { type: "error"; name: string; message: string }
  | { type: "stopped" }
  | { type: "finished" };

/** The Web Worker constructor, as it was before any module replaced the global (onnxruntime-web does). */
const WebWorker: typeof Worker = globalThis.Worker;

/**
 * Create a connection guard. The relay (the public port, every byte both ways, the HTTP/1 framing, the deadlines)
 * runs on a thread of its own (serve/conn_guard_thread.ts), so that the HTTP thread spends nothing on it; the counts
 * are shared cells, read without a message.
 *
 * @param options the public address, the timeouts and the connection limit
 * @returns the guard (call {@link ConnGuard.serve} once)
 * @example
 * const guard = createConnGuard({ hostname: "0.0.0.0", port: 8000, headerTimeoutMs: 10_000, keepAliveIdleMs: 30_000, maxConnections: 1000 });
 * const server = await guard.serve((req, info) => new Response(info.remoteAddr.hostname));
 */
export function createConnGuard(options: ConnGuardOptions): ConnGuard {
  const resolved: Required<ConnGuardOptions> = {
    maxHeadBytes: 16384,
    tickMs: Math.min(1000, Math.max(10, Math.min(options.headerTimeoutMs, options.keepAliveIdleMs) / 4)),
    ...options,
  };
  const cellsBuffer = new SharedArrayBuffer(COUNT_NAMES.length * Int32Array.BYTES_PER_ELEMENT);
  const counts = countsOver(new Int32Array(cellsBuffer));
  return {
    stats: () => ({ ...counts }),
    async serve(handler) {
      const dir = Deno.makeTempDirSync({ prefix: `${SOCKET_DIR_PREFIX}${Deno.pid}-` });
      await sweepSocketDirs(dir.slice(0, dir.lastIndexOf("/")));
      const socketPath = `${dir}/http.sock`;
      const inner = Deno.serve({ path: socketPath, onListen: () => {} }, (req, info) => {
        const peer = req.headers.get(PEER_FIELD) ?? "";
        const space = peer.lastIndexOf(" ");
        const remoteAddr: Deno.NetAddr = space > 0
          ? { transport: "tcp", hostname: peer.slice(0, space), port: Number(peer.slice(space + 1)) }
          : { transport: "tcp", hostname: "unknown", port: 0 };
        return handler(req, { remoteAddr, completed: info.completed });
      });
      const removeDir = () => Deno.remove(dir, { recursive: true }).catch(() => {});
      // In the source tree beside this module; in `dist/` (`scripts/build.ts`) under `serve/` beside the bundle.
      const threadUrl = import.meta.url.endsWith(".js")
        ? new URL("./serve/conn_guard_thread.js", import.meta.url)
        : new URL("./conn_guard_thread.ts", import.meta.url);
      const thread = new WebWorker(threadUrl.href, {
        type: "module",
        name: "connection guard",
      });
      let waiting: ((msg: RelayResponse) => void) | null = null;
      let failed: ((err: Error) => void) | null = null;
      thread.onmessage = (e: MessageEvent<RelayResponse>) => waiting?.(e.data);
      thread.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        // A bug in the relay: nothing reaches the server any more. Said loudly; the supervisor's health checks fail.
        console.error(
          JSON.stringify({ level: "error", msg: "the connection guard's thread failed", error: e.message }),
        );
        failed?.(new Error(`the connection guard's thread failed: ${e.message}`));
      };
      const ask = (msg: RelayRequest) =>
        new Promise<RelayResponse>((resolve, reject) => {
          waiting = resolve;
          failed = reject;
          thread.postMessage(msg);
        });
      const started = await ask({ type: "start", options: resolved, socketPath, cells: cellsBuffer }).catch((err) => ({
        type: "error" as const,
        name: "Error",
        message: (err as Error).message,
      }));
      if (started.type !== "listening") {
        thread.terminate();
        await inner.shutdown();
        await removeDir();
        const message = started.type === "error" ? started.message : `unexpected reply "${started.type}"`;
        const Class = started.type === "error" && started.name in Deno.errors
          ? Deno.errors[started.name as keyof typeof Deno.errors] as unknown as ErrorConstructor
          : Error;
        throw new Class(message);
      }
      return {
        addr: started.addr,
        async shutdown() {
          try {
            await ask({ type: "stop_accepting" });
            await inner.shutdown();
            // The server has written its last answers and closed its ends: let them reach the clients (bounded).
            await ask({ type: "finish" });
          } finally {
            thread.terminate();
            await removeDir();
          }
        },
      };
    },
  };
}
