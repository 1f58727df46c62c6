/**
 * The message protocol between the worker pool and an inference worker: one union keyed by `type`, each message
 * carrying the `id` of the call it belongs to. Float32 buffers are transferred, never copied.
 *
 * @module
 */
import type { ErrorCode } from "../errors.ts";
import type { ScoredBy, SwitcherRelease } from "../release/release.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";

/** A model file and its manifest entry. */
export interface ModelArtefact<S> {
  bytes: Uint8Array;
  spec: S;
}

/**
 * What a worker loads: the edge model, the switcher release (an ONNX model or a confidence rule; the built-in
 * `max_prob` rule when none was released, release/release.ts) and the runtime.
 */
export interface EngineInit {
  edge: ModelArtefact<ClassifierSpec>;
  switcher: SwitcherRelease;
  /** The onnxruntime-web `.wasm` binary, so the runtime needs no file paths. */
  wasmBinary: Uint8Array;
  /** Inferences run on dummy input before the worker reports ready. */
  warmupRuns: number;
}

/** One sequence to classify: flattened `[length, joints, channels]` values as received. */
export interface SequenceInput {
  data: Float32Array;
  length: number;
}

/** The edge answer for one sequence. */
export interface EdgeResult {
  /** Class probabilities (softmax of the edge logits). */
  probs: Float32Array;
  embedding: Float32Array;
  /** The switcher's input. */
  features: Float32Array;
  /** The switcher's score: the predicted probability that the cloud would answer differently. */
  score: number;
  /** The sequence resampled to the edge model's window, flattened; reused for the cloud call. */
  window: Float32Array;
}

/** What one worker call returns: a result per sequence, and the switcher release and threshold that scored them. */
export interface EngineOutput {
  results: EdgeResult[];
  timings: EngineTimings;
  scoredBy: ScoredBy;
}

/** Timings of one worker call, in milliseconds, shared by every sequence in it. */
export interface EngineTimings {
  preprocessMs: number;
  edgeMs: number;
  switcherMs: number;
}

/** Versions a worker is serving. */
export interface EngineVersions {
  edge: string;
  switcher: string;
}

/** Messages to a worker. */
export type WorkerRequest =
  | { type: "init"; id: number; init: EngineInit }
  | { type: "classify"; id: number; items: SequenceInput[] }
  | { type: "set_switcher"; id: number; switcher: SwitcherRelease };

/** Messages from a worker. */
export type WorkerResponse =
  | { type: "ready"; id: number; versions: EngineVersions; warmupMs: number }
  | { type: "result"; id: number; results: EdgeResult[]; timings: EngineTimings; scoredBy: ScoredBy }
  | { type: "switcher_set"; id: number; versions: EngineVersions }
  | { type: "error"; id: number; code: ErrorCode; message: string };

/** The buffers of a classify message, for transfer. */
export function transferablesOf(items: { data: Float32Array }[]): ArrayBuffer[] {
  return items.map((i) => i.data.buffer as ArrayBuffer);
}
