/**
 * The decision writer on a thread of its own: the same {@link DecisionWriter} (states, one connection replaced after
 * any failure, the file identity check), run in a Web Worker (db/decision_writer_worker.ts) so that the libSQL
 * driver's synchronous calls never stall requests on the HTTP thread (a 200-row flush on a local file blocks its
 * thread for tens of milliseconds; issue 14). The decision log, its outbox and durable acks are unchanged: a write
 * resolves once the rows are committed, or fails and the log keeps the rows.
 *
 * A write the thread has not answered within the write deadline (plus a margin for the reply) counts as failed, as
 * in the in-thread writer; the thread is then replaced, because it may be blocked inside the driver. The rows go to
 * the outbox; if the blocked write commits after all, the replay's inserts are ignored (ids already written).
 *
 * @module
 */
import { AppError, type ErrorCode } from "../errors.ts";
import type { DecisionWriter, WriterState } from "./decision_writer.ts";
import { hostEntry } from "./hosted_client.ts";
import type { DecisionRecord } from "./schema.ts";

// The Web Worker constructor as it was at load, before onnxruntime-web replaces the global (with WORKERS=0 it runs on
// this thread).
const WebWorker: typeof Worker = globalThis.Worker;

/** Messages to the writer thread. */
export type WriterThreadRequest =
  | {
    type: "open";
    id: number;
    url: string;
    authToken?: string;
    busyTimeoutMs?: number;
    writeTimeoutMs: number;
    /** The database process's module, when the thread's connections run in one (`db/hosted_client.ts`). */
    processEntry?: string;
  }
  | { type: "write"; id: number; rows: DecisionRecord[] }
  | { type: "check"; id: number }
  | { type: "close"; id: number };

/** Messages from the writer thread; each carries the writer's {@link DecisionWriter.blocked} as it is then. */
export type WriterThreadResponse =
  | { type: "done"; id: number; state: WriterState; blocked: string | null }
  | { type: "failed"; id: number; state: WriterState; code: ErrorCode; message: string; blocked: string | null }
  | { type: "state"; from: WriterState; to: WriterState; reason: string; blocked: string | null };

/** Options of {@link createThreadedDecisionWriter}. */
export interface ThreadedWriterOptions {
  /** The database URL (a local file or a remote libSQL server). */
  url: string;
  /** Never logged. */
  authToken?: string;
  /** How long a write waits for another writer's lock, in milliseconds. */
  busyTimeoutMs?: number;
  /** A write not finished after this long counts as failed, in milliseconds. @default 5000 */
  writeTimeoutMs?: number;
  /** Called on every state change (logs). */
  onStateChange?: (from: WriterState, to: WriterState, reason: string) => void;
  /**
   * Run the thread's calls on a local file in a database process of its own (`db/hosted_client.ts`), so that a
   * SIGBUS inside SQLite ends that process, not the service (its end fails the write in flight, which the log
   * keeps). @default false
   */
  process?: boolean;
}

/** Extra time the thread's reply may take beyond the write deadline, in milliseconds. */
const REPLY_MARGIN_MS = 1000;

/**
 * Start the decision writer on its own thread.
 *
 * @param options the database, the lock and write deadlines, a state-change callback
 * @returns the writer (disconnected until the first write)
 * @example
 * const writer = createThreadedDecisionWriter({ url: "file:data/decisions.db", busyTimeoutMs: 200 });
 * const log = createDecisionLog(database.db, { batchSize: 200, flushIntervalMs: 200, writer });
 */
export function createThreadedDecisionWriter(options: ThreadedWriterOptions): DecisionWriter {
  const writeTimeoutMs = options.writeTimeoutMs ?? 5000;
  // In the source tree beside this module; in `dist/` (`scripts/build.ts`) under `db/` beside the bundle.
  const url = import.meta.url.endsWith(".js")
    ? new URL("./db/decision_writer_worker.js", import.meta.url)
    : new URL("./decision_writer_worker.ts", import.meta.url);
  let state: WriterState = "disconnected";
  let blocked: string | null = null;
  let nextId = 1;
  const pending = new Map<number, { resolve: (m: WriterThreadResponse) => void; reject: (e: unknown) => void }>();
  let worker = start();

  function become(next: WriterState, reason: string): void {
    if (next === state) return;
    const from = state;
    state = next;
    options.onStateChange?.(from, next, reason);
  }

  function start(): Worker {
    const w = new WebWorker(url.href, { type: "module" });
    w.onmessage = (e: MessageEvent<WriterThreadResponse>) => {
      const msg = e.data;
      blocked = msg.blocked;
      if (msg.type === "state") return become(msg.to, msg.reason);
      const p = pending.get(msg.id);
      if (!p) return; // answered after its deadline: the write already counted as failed
      pending.delete(msg.id);
      p.resolve(msg);
    };
    w.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      restart(`the writer thread failed: ${e.message}`);
    };
    w.postMessage(
      {
        type: "open",
        id: nextId++,
        url: options.url,
        authToken: options.authToken,
        busyTimeoutMs: options.busyTimeoutMs,
        writeTimeoutMs,
        processEntry: options.process ? hostEntry() : undefined,
      } satisfies WriterThreadRequest,
    );
    return w;
  }

  /** Replace the thread (it may be blocked in the driver); calls waiting on it fail. */
  function restart(reason: string): void {
    if (state === "closed") return;
    worker.terminate();
    failPending(new AppError("DB_UNAVAILABLE", `Cannot write decisions: ${reason}`));
    become("failing", reason);
    worker = start();
  }

  function failPending(err: AppError): void {
    const waiting = [...pending.values()];
    pending.clear();
    for (const p of waiting) p.reject(err);
  }

  function ask(msg: WriterThreadRequest, deadlineMs: number): Promise<WriterThreadResponse> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        if (!pending.has(msg.id)) return;
        restart(`the write passed its ${writeTimeoutMs} ms deadline`);
      }, deadlineMs);
      pending.set(msg.id, {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      });
      worker.postMessage(msg);
    });
  }

  return {
    async write(rows) {
      if (state === "closed") throw new AppError("DB_UNAVAILABLE", "Cannot write decisions: the writer is closed");
      const reply = await ask({ type: "write", id: nextId++, rows }, writeTimeoutMs + REPLY_MARGIN_MS);
      if (reply.type === "failed") throw new AppError(reply.code, reply.message);
    },
    state: () => state,
    blocked: () => blocked,
    async check() {
      if (state === "closed") return state;
      // The thread posts every state change before it replies, in order: the state is already current here. (A reply's
      // own state may be older than a change posted by a write that ran concurrently in the thread.)
      await ask({ type: "check", id: nextId++ }, writeTimeoutMs + REPLY_MARGIN_MS).catch(() => null);
      return state;
    },
    close() {
      if (state === "closed") return;
      become("closed", "closed");
      failPending(new AppError("DB_UNAVAILABLE", "Cannot write decisions: the writer is closed"));
      // Let the thread close its connection, then end it (at once if it does not answer).
      const w = worker;
      const stop = setTimeout(() => w.terminate(), 1000);
      Deno.unrefTimer(stop);
      w.onmessage = () => {
        clearTimeout(stop);
        w.terminate();
      };
      w.postMessage({ type: "close", id: nextId++ } satisfies WriterThreadRequest);
    },
  };
}
