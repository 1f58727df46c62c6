/**
 * A bench-only worker that runs the bare edge model: one onnxruntime-web session (configured as in the inference
 * workers), batch 1, back to back, with nothing around it (no pre-processing, features, switcher or messages per
 * run). `deno task bench` starts as many as the service has inference workers and runs them together: their runs
 * per second are the bare pool's throughput that the service is compared with. The service never loads it.
 *
 * Messages: `load` (model, input, warm-up runs) -> `loaded`; `run` (duration) -> `ran` (runs, per-run times).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import "./worker_env.ts";
import * as ort from "onnxruntime-web/wasm";
import { configureRuntime } from "./runtime.ts";

/** Messages to a bare-model worker. */
export type BareModelRequest =
  | {
    type: "load";
    model: Uint8Array;
    wasmBinary: Uint8Array;
    inputName: string;
    input: Float32Array;
    shape: number[];
    warmupRuns: number;
  }
  | { type: "run"; durationMs: number };

/** Messages from a bare-model worker. */
export type BareModelResponse =
  | { type: "loaded" }
  | { type: "ran"; runs: number; wallMs: number; p50Ms: number }
  | { type: "error"; message: string };

let run: (() => Promise<void>) | null = null;

self.onmessage = async (event: MessageEvent<BareModelRequest>) => {
  const msg = event.data;
  try {
    if (msg.type === "load") {
      configureRuntime(msg.wasmBinary);
      const session = await ort.InferenceSession.create(msg.model, { executionProviders: ["wasm"] });
      run = async () => {
        const out = await session.run({ [msg.inputName]: new ort.Tensor("float32", msg.input, msg.shape) });
        for (const t of Object.values(out)) t.dispose();
      };
      for (let i = 0; i < msg.warmupRuns; i++) await run();
      self.postMessage({ type: "loaded" } satisfies BareModelResponse);
    } else if (msg.type === "run") {
      if (!run) throw new Error("Cannot run: no model loaded");
      const times: number[] = [];
      const t0 = performance.now();
      let now = t0;
      while (now - t0 < msg.durationMs) {
        await run();
        const t = performance.now();
        times.push(t - now);
        now = t;
      }
      times.sort((a, b) => a - b);
      const p50Ms = times[Math.floor(times.length / 2)];
      self.postMessage({ type: "ran", runs: times.length, wallMs: now - t0, p50Ms } satisfies BareModelResponse);
    }
  } catch (err) {
    self.postMessage({ type: "error", message: String(err) } satisfies BareModelResponse);
  }
};
