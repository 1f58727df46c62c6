/**
 * The TF.js reference for the pose model: MoveNet as published (TF.js graph model, WASM backend, one thread), run on
 * the same int32 input the ONNX model gets. Build-time only (parity checks and the frames bench); the service never
 * loads TF.js.
 *
 * @module
 */
import * as tf from "@tensorflow/tfjs-core";
import { loadGraphModel } from "@tensorflow/tfjs-converter";
import { setThreadsCount, setWasmPaths } from "@tensorflow/tfjs-backend-wasm";
import { dirname, join } from "node:path";

/** Run the reference on one S x S x 3 int32 input; returns the model's 51 values (17 x [y, x, score]). */
export type ReferencePose = (input: Int32Array) => Float32Array;

/**
 * Load a TF.js graph model (model.json next to its weight shards) on the WASM backend with one thread.
 *
 * @param modelJson the model.json path
 * @returns the runner and the input side
 */
export async function loadReferencePose(modelJson: string): Promise<{ run: ReferencePose; side: number }> {
  setWasmPaths(new URL("../node_modules/@tensorflow/tfjs-backend-wasm/wasm-out/", import.meta.url).href);
  setThreadsCount(1);
  await tf.setBackend("wasm");
  await tf.ready();
  const json = JSON.parse(await Deno.readTextFile(modelJson));
  const folder = dirname(modelJson);
  const shards = await Promise.all(
    json.weightsManifest.flatMap((g: { paths: string[] }) => g.paths).map((p: string) =>
      Deno.readFile(join(folder, p))
    ),
  );
  const total = shards.reduce((n, s) => n + s.length, 0);
  const weightData = new Uint8Array(total);
  let o = 0;
  for (const s of shards) {
    weightData.set(s, o);
    o += s.length;
  }
  const model = await loadGraphModel(tf.io.fromMemory({
    modelTopology: json.modelTopology,
    weightSpecs: json.weightsManifest.flatMap((g: { weights: unknown[] }) => g.weights),
    weightData: weightData.buffer,
  }));
  const side = Number(json.signature.inputs["input:0"].tensorShape.dim[1].size);
  const run: ReferencePose = (input) =>
    tf.tidy(() => {
      const x = tf.tensor4d(input, [1, side, side, 3], "int32");
      return (model.predict(x) as tf.Tensor).dataSync() as Float32Array;
    });
  run(new Int32Array(side * side * 3));
  return { run, side };
}
