/**
 * Reading a model set from disk: `manifest.json`, the model files (checked against their sha256) and the
 * onnxruntime-web binary, in the form the inference workers load.
 *
 * @module
 */
import { AppError } from "../errors.ts";
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
 * Read a whole model set: manifest, edge model, switcher (when the manifest names one or `switcher` is given) and
 * the runtime binary.
 *
 * @param dir the models folder
 * @param options `warmupRuns`; `switcher` to load another switcher artefact than the manifest's
 * @returns the manifest and the workers' init message
 */
export async function loadModelSet(
  dir: string,
  options: { warmupRuns: number; switcher?: ModelArtefact<SwitcherSpec> | null },
): Promise<ModelSet> {
  const manifest = await readManifest(dir);
  const [edge, wasmBinary] = await Promise.all([
    readArtefact<ClassifierSpec>(dir, manifest.edge),
    readRuntimeBinary(),
  ]);
  const switcher = options.switcher !== undefined
    ? options.switcher
    : manifest.switcher
    ? await readArtefact<SwitcherSpec>(dir, manifest.switcher)
    : null;
  return { manifest, init: { edge, switcher, wasmBinary, warmupRuns: options.warmupRuns } };
}

/**
 * Write a switcher's ONNX file beside the manifest, without serving it.
 *
 * @param dir the models folder
 * @param switcher the ONNX bytes and its manifest entry (its `file`, `sha256` and `bytes` are set here)
 * @returns the entry as stored
 * @throws AppError INVALID_INPUT when the version is not a safe file name
 */
export async function storeSwitcherArtefact(
  dir: string,
  switcher: { bytes: Uint8Array; spec: Omit<SwitcherSpec, "file" | "sha256" | "bytes"> },
): Promise<SwitcherSpec> {
  const version = switcher.spec.version;
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(version)) {
    throw new AppError("INVALID_INPUT", `Cannot install switcher "${version}": a version is letters, digits, . _ -`);
  }
  const file = version.startsWith("switcher") ? `${version}.onnx` : `switcher-${version}.onnx`;
  const tmp = `${dir}/${file}.${crypto.randomUUID()}.tmp`;
  await Deno.writeFile(tmp, switcher.bytes);
  await Deno.rename(tmp, `${dir}/${file}`);
  return { ...switcher.spec, file, sha256: await sha256Hex(switcher.bytes), bytes: switcher.bytes.length };
}

/**
 * Make a stored switcher the manifest's. The manifest is replaced atomically (written to a temporary file, then
 * renamed), so a reader never sees half of it.
 *
 * @param dir the models folder
 * @param spec the entry returned by {@link storeSwitcherArtefact}
 */
export async function activateSwitcher(dir: string, spec: SwitcherSpec): Promise<void> {
  const manifest = await readManifest(dir);
  const tmp = `${dir}/manifest.json.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify({ ...manifest, switcher: spec }, null, 2) + "\n");
  await Deno.rename(tmp, `${dir}/manifest.json`);
}

/**
 * Install a switcher into a model set: {@link storeSwitcherArtefact} then {@link activateSwitcher}.
 *
 * @param dir the models folder
 * @param switcher the ONNX bytes and its manifest entry (its `file`, `sha256` and `bytes` are set here)
 * @returns the entry as written
 */
export async function installSwitcher(
  dir: string,
  switcher: { bytes: Uint8Array; spec: Omit<SwitcherSpec, "file" | "sha256" | "bytes"> },
): Promise<SwitcherSpec> {
  const spec = await storeSwitcherArtefact(dir, switcher);
  await activateSwitcher(dir, spec);
  return spec;
}
