/**
 * Reading a model set from disk: `manifest.json`, the model files (checked against their sha256) and the
 * onnxruntime-web binary, in the form the inference workers load. Read-only: the release registry
 * (loop/registry.ts) is the one writer of a model set.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { builtinSwitcherRelease, type SwitcherRelease, switcherReleaseFromSpec } from "../release/release.ts";
import type { ClassifierSpec, Manifest, SwitcherSpec } from "../wasm-models/manifest.ts";
import type { EngineInit, ModelArtefact } from "./protocol.ts";

const WASM_FILE = "ort-wasm-simd-threaded.wasm";

/**
 * Where the onnxruntime-web binary may be: beside a bundle (`dist/ort/`, seen from `dist/main.js` or from
 * `dist/cloud/reference_server.js`), or in the project's node_modules.
 */
function wasmCandidates(): URL[] {
  return [
    new URL(`./ort/${WASM_FILE}`, import.meta.url),
    new URL(`../ort/${WASM_FILE}`, import.meta.url),
    new URL(`../node_modules/onnxruntime-web/dist/${WASM_FILE}`, import.meta.url),
  ];
}

/**
 * Hex sha256 of some bytes.
 *
 * @param bytes the data
 * @returns lowercase hex digest
 */
export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * Read one artefact named by the manifest and check its digest.
 *
 * @param dir the manifest's folder
 * @param spec the manifest entry
 * @returns the bytes and the entry
 * @throws AppError MODEL_NOT_READY when the file is missing or its digest differs
 */
export async function readArtefact<S extends { file: string; sha256: string; version: string }>(
  dir: string,
  spec: S,
): Promise<ModelArtefact<S>> {
  const path = `${dir}/${spec.file}`;
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(path);
  } catch (err) {
    throw new AppError("MODEL_NOT_READY", `Cannot load ${spec.version}: cannot read ${path}`, { cause: err });
  }
  const digest = await sha256Hex(bytes);
  if (digest !== spec.sha256) {
    throw new AppError(
      "MODEL_NOT_READY",
      `Cannot load ${spec.version}: ${path} has sha256 ${digest.slice(0, 12)}..., the manifest says ${
        spec.sha256.slice(0, 12)
      }...`,
    );
  }
  return { bytes, spec };
}

/**
 * Read and check `manifest.json` in a folder.
 *
 * @param dir the models folder
 * @returns the manifest
 * @throws AppError MODEL_NOT_READY when it is missing or malformed
 */
export async function readManifest(dir: string): Promise<Manifest> {
  let manifest: Manifest;
  try {
    manifest = JSON.parse(await Deno.readTextFile(`${dir}/manifest.json`));
  } catch (err) {
    throw new AppError("MODEL_NOT_READY", `Cannot read ${dir}/manifest.json`, { cause: err });
  }
  if (manifest.schemaVersion !== 1 || !manifest.edge || !manifest.cloud) {
    throw new AppError(
      "MODEL_NOT_READY",
      `Cannot read ${dir}/manifest.json: expected schemaVersion 1 with edge and cloud`,
    );
  }
  const { edge, cloud } = manifest;
  if (edge.labels.length !== cloud.labels.length || edge.labels.some((l, i) => l !== cloud.labels[i])) {
    throw new AppError("MODEL_NOT_READY", `Cannot use ${dir}: the edge and cloud models have different label maps`);
  }
  return manifest;
}

/**
 * Read the onnxruntime-web WASM binary.
 *
 * @returns its bytes
 */
export async function readRuntimeBinary(): Promise<Uint8Array> {
  for (const url of wasmCandidates()) {
    try {
      return await Deno.readFile(url);
    } catch {
      // try the next place
    }
  }
  throw new AppError("MODEL_NOT_READY", `Cannot find ${WASM_FILE} beside the app or in node_modules`);
}

/** A model set ready to hand to workers. */
export interface ModelSet {
  manifest: Manifest;
  init: EngineInit;
}

/**
 * Read a whole model set: manifest, edge model, the switcher release (the manifest's, `switcher` when given, or the
 * built-in `max_prob` rule when neither names one) and the runtime binary. This is the model set as shipped; the
 * release in service is the registry's (loop/registry.ts), which the edge app follows after start.
 *
 * @param dir the models folder
 * @param options `warmupRuns`; `switcher` to load another switcher release than the manifest's (null: the built-in)
 * @returns the manifest and the workers' init message
 */
export async function loadModelSet(
  dir: string,
  options: { warmupRuns: number; switcher?: SwitcherRelease | null },
): Promise<ModelSet> {
  const manifest = await readManifest(dir);
  const [edge, wasmBinary] = await Promise.all([
    readArtefact<ClassifierSpec>(dir, manifest.edge),
    readRuntimeBinary(),
  ]);
  const spec = manifest.switcher;
  const switcher = options.switcher !== undefined
    ? options.switcher ?? builtinSwitcherRelease()
    : !spec
    ? builtinSwitcherRelease()
    : switcherReleaseFromSpec(spec, spec.rule ? null : (await readArtefact<SwitcherSpec>(dir, spec)).bytes);
  return { manifest, init: { edge, switcher, wasmBinary, warmupRuns: options.warmupRuns } };
}
