/**
 * An inference worker: a `switch` over {@link WorkerRequest} messages that replies with a result or a
 * `{ code, message }` error. With workers (the default), all model work happens here, never on the HTTP thread.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import "./worker_env.ts";
import { classifyJobs, createEngine, type Engine } from "./engine.ts";
import { resultTransferables, type WorkerRequest, type WorkerResponse } from "./protocol.ts";

let engine: Engine | null = null;

function reply(msg: WorkerResponse, transfer: ArrayBuffer[] = []): void {
  self.postMessage(msg, transfer);
}

function fail(id: number, code: "MODEL_NOT_READY" | "INVALID_INPUT" | "INTERNAL", err: unknown): void {
  const message = err instanceof Error ? err.message : String(err);
  if (code === "INTERNAL") {
    // A bug, not the client's fault: logged here with its stack, which never leaves the process.
    console.error(
      JSON.stringify({ level: "error", msg: "inference worker error", error: message, stack: (err as Error)?.stack }),
    );
  }
  reply({ type: "error", id, code, message });
}

/**
 * One message at a time, in arrival order: the pool may post the next batch while this one runs (workers/pool.ts
 * `depth`), and it must wait its turn rather than run beside it in the same session.
 */
let turn: Promise<void> = Promise.resolve();

self.onmessage = (event: MessageEvent<WorkerRequest>) => {
  turn = turn.then(() => handle(event.data));
};

async function handle(msg: WorkerRequest): Promise<void> {
  switch (msg.type) {
    case "init": {
      try {
        const { engine: e, warmupMs } = await createEngine(msg.init);
        engine = e;
        reply({ type: "ready", id: msg.id, versions: e.versions(), warmupMs });
      } catch (err) {
        fail(msg.id, "MODEL_NOT_READY", err);
      }
      break;
    }
    case "classify": {
      if (!engine) return fail(msg.id, "MODEL_NOT_READY", "Cannot classify: the worker has no models loaded");
      const outcomes = await classifyJobs(engine, msg.jobs);
      reply({ type: "result", id: msg.id, outcomes }, resultTransferables(outcomes));
      break;
    }
    case "set_switcher": {
      if (!engine) return fail(msg.id, "MODEL_NOT_READY", "Cannot set the switcher: the worker has no models loaded");
      try {
        reply({ type: "switcher_set", id: msg.id, versions: await engine.setSwitcher(msg.switcher) });
      } catch (err) {
        fail(msg.id, "MODEL_NOT_READY", err);
      }
      break;
    }
    default: {
      const unknown = msg as { id?: number; type?: string };
      fail(unknown.id ?? -1, "INTERNAL", `Cannot handle message type "${unknown.type}"`);
    }
  }
}
