/**
 * Reading the pose model from disk (`wasm-models/pose/manifest.json` and the ONNX file it names, checked against its
 * sha256), without loading any runtime: the HTTP thread reads the bytes and hands them to the pose workers.
 *
 * @module
 */
import { sha256Hex } from "./artefacts.ts";

/** The pose model's manifest entry (`wasm-models/pose/manifest.json`). */
export interface PoseSpec {
  file: string;
  sha256: string;
  bytes: number;
  version: string;
  layout: string;
  licence: string;
}

/**
 * Read the pose model named by a pose manifest and check its digest.
 *
 * @param dir the folder holding `manifest.json` and the model (default: the shipped `wasm-models/pose/`)
 * @returns the spec and the model bytes
 */
export async function readPoseModel(
  dir: URL = new URL("../wasm-models/pose/", import.meta.url),
): Promise<{ spec: PoseSpec; bytes: Uint8Array }> {
  const spec = JSON.parse(await Deno.readTextFile(new URL("manifest.json", dir))).pose as PoseSpec;
  const bytes = await Deno.readFile(new URL(spec.file, dir));
  const digest = await sha256Hex(bytes);
  if (digest !== spec.sha256) throw new Error(`pose model ${spec.file}: sha256 ${digest} != manifest ${spec.sha256}`);
  return { spec, bytes };
}
