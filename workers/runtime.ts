/**
 * The onnxruntime-web runtime of one realm (an inference worker, or a script's main thread): configured once here
 * for every session the realm creates, so no other module sets `ort.env`. Only `workers/` imports onnxruntime
 * (and the reference server in `cloud/`).
 *
 * @module
 */
import * as ort from "onnxruntime-web/wasm";
import { readRuntimeBinary } from "./artefacts.ts";

/**
 * Configure the runtime of this realm: one WASM thread (the pool provides the parallelism, and WASM threads would
 * need SharedArrayBuffer workers of their own), no proxy worker, the given binary, errors only. The binary of the
 * first call wins.
 *
 * @param wasmBinary the onnxruntime-web `.wasm` binary
 */
export function configureRuntime(wasmBinary: Uint8Array): void {
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  if (!ort.env.wasm.wasmBinary) ort.env.wasm.wasmBinary = wasmBinary;
  ort.env.logLevel = "error";
}

/**
 * Score feature rows with a switcher's ONNX model in this realm's runtime (the one the workers use), for offline
 * jobs that compare switchers on logged features (loop/retrain.ts's gate, scripts/simulate_loop.ts).
 *
 * @param bytes the ONNX model
 * @param rows one full feature vector per row
 * @param f the feature count
 * @returns one score per row
 */
export async function scoreWithOnnx(bytes: Uint8Array, rows: Float32Array[], f: number): Promise<Float32Array> {
  configureRuntime(await readRuntimeBinary());
  const session = await ort.InferenceSession.create(bytes);
  try {
    const out = new Float32Array(rows.length);
    const chunk = 4096;
    for (let s = 0; s < rows.length; s += chunk) {
      const part = rows.slice(s, s + chunk);
      const x = new Float32Array(part.length * f);
      part.forEach((r, i) => x.set(r, i * f));
      const result = await session.run({ [session.inputNames[0]]: new ort.Tensor("float32", x, [part.length, f]) });
      out.set(result[session.outputNames[0]].data as Float32Array, s);
    }
    return out;
  } finally {
    await session.release();
  }
}
