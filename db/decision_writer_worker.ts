/**
 * The decision writer's thread: a Web Worker that runs {@link createDecisionWriter} with its own write connection
 * (db/decision_writer_thread.ts starts it). The libSQL driver's calls on a local file are synchronous underneath (an
 * insert blocks its thread for about 0.2 ms a row, and up to `DATABASE_BUSY_TIMEOUT_MS` while another writer holds
 * the lock); here they block this thread only, never the HTTP thread.
 *
 * A `switch` over {@link WriterThreadRequest}: `open` once, then `write`, `check`, `close`, each answered with
 * {@link WriterThreadResponse} naming its `id`; state changes are posted as they happen.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { AppError } from "../errors.ts";
import { connectForWrites } from "./client.ts";
import { createDecisionWriter, type DecisionWriter } from "./decision_writer.ts";
import type { WriterThreadRequest, WriterThreadResponse } from "./decision_writer_thread.ts";

let writer: DecisionWriter | null = null;

/** Post a message with the writer's `blocked()` as it is now. */
function post(msg: DistributiveOmit<WriterThreadResponse, "blocked">): void {
  self.postMessage({ ...msg, blocked: writer?.blocked?.() ?? null });
}

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

self.onmessage = async (event: MessageEvent<WriterThreadRequest>) => {
  const msg = event.data;
  switch (msg.type) {
    case "open": {
      const { url, authToken, busyTimeoutMs, writeTimeoutMs, processEntry } = msg;
      const process = processEntry === undefined ? undefined : { entry: processEntry };
      writer = createDecisionWriter({
        connect: () => connectForWrites(url, { authToken, busyTimeoutMs, process }),
        writeTimeoutMs,
        onStateChange: (from, to, reason) => post({ type: "state", from, to, reason }),
      });
      post({ type: "done", id: msg.id, state: writer.state() });
      break;
    }
    case "write": {
      if (!writer) {
        post({ type: "failed", id: msg.id, state: "closed", code: "DB_UNAVAILABLE", message: "not open" });
        break;
      }
      try {
        await writer.write(msg.rows);
        post({ type: "done", id: msg.id, state: writer.state() });
      } catch (err) {
        const code = err instanceof AppError ? err.code : "DB_UNAVAILABLE";
        const message = err instanceof Error ? err.message : String(err);
        post({ type: "failed", id: msg.id, state: writer.state(), code, message });
      }
      break;
    }
    case "check": {
      post({ type: "done", id: msg.id, state: writer ? await writer.check() : "closed" });
      break;
    }
    case "close": {
      writer?.close();
      post({ type: "done", id: msg.id, state: "closed" });
      break;
    }
  }
};
