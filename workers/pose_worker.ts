/**
 * A pose worker: decodes a clip's JPEG/PNG frames in WASM and runs the pose model on them (workers/pose.ts), off
 * the HTTP thread. Frames are never stored: the bytes live only in this message.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import "./worker_env.ts";
import { PoseModel } from "./pose.ts";
import type { PoseRequest, PoseResponse } from "./pose_protocol.ts";

let model: PoseModel | null = null;

function reply(msg: PoseResponse): void {
  self.postMessage(msg);
}

self.onmessage = async (event: MessageEvent<PoseRequest>) => {
  const msg = event.data;
  const message = (err: unknown) => err instanceof Error ? err.message : String(err);
  switch (msg.type) {
    case "init": {
      try {
        const t = performance.now();
        model = await PoseModel.load(msg.model);
        reply({ type: "ready", id: msg.id, warmupMs: performance.now() - t });
      } catch (err) {
        reply({ type: "error", id: msg.id, code: "MODEL_NOT_READY", message: message(err) });
      }
      break;
    }
    case "pose": {
      if (!model) {
        return reply({ type: "error", id: msg.id, code: "MODEL_NOT_READY", message: "the pose model is not loaded" });
      }
      try {
        reply({ type: "poses", id: msg.id, ...(await model.clip(msg.images)) });
      } catch (err) {
        // The header was checked before; what fails here is the image data itself.
        reply({ type: "error", id: msg.id, code: "INVALID_INPUT", message: `Cannot decode frames: ${message(err)}` });
      }
      break;
    }
    default: {
      const unknown = msg as { id?: number; type?: string };
      reply({ type: "error", id: unknown.id ?? -1, code: "INTERNAL", message: `unknown message "${unknown.type}"` });
    }
  }
};
