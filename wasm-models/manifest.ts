/**
 * The model manifest: the typed form of `wasm-models/manifest.json`, which names every artefact the service
 * loads (the edge model, the cloud model and the switcher), how each was made and what it measured.
 *
 * The manifest is the contract between the Python build (`scripts/models/`), the TypeScript DMD trainer
 * (`switcher/`), the inference workers (`workers/`) and the reference cloud server (`cloud/`).
 *
 * @module
 */

/** One named tensor of a model's signature. A dimension of -1 is dynamic (the batch). */
export interface TensorSpec {
  name: string;
  shape: number[];
  dtype: "float32";
}

/** What every artefact records. */
export interface ArtefactSpec {
  /** File name, relative to the manifest's folder. */
  file: string;
  /** Hex sha256 of the file; checked before loading. */
  sha256: string;
  bytes: number;
  /** A version string unique across builds, e.g. `edge-coco17-20261124-1`. */
  version: string;
  inputs: TensorSpec[];
  outputs: TensorSpec[];
  /** Parameter count. */
  params?: number;
  /** Floating-point operations for one sequence (2 x multiply-accumulates). */
  flops?: number;
  /** How it was made: data, seed, recipe, code version. Free-form, for provenance. */
  provenance?: Record<string, unknown>;
  /** What it measured, each figure naming its data. Free-form. */
  metrics?: Record<string, unknown>;
}

/**
 * A classifier over sequences: input `frames` float32 `[N, windowFrames, joints, channels]`, output `logits`
 * float32 `[N, labels.length]`; the edge model also outputs `embedding` float32 `[N, embeddingSize]`.
 */
export interface ClassifierSpec extends ArtefactSpec {
  /** Layout name the model was built for, e.g. `coco17` or `imu-acc-gyro`. */
  layout: string;
  joints: number;
  channels: number;
  /** Index of the per-point confidence channel (COCO keypoints: 2), or null when the data has none. */
  confidenceChannel: number | null;
  /**
   * Frames the model reads at `fps`: a fixed span of time. The service resamples a request to `fps` and keeps the
   * most recent `windowFrames` frames; a shorter one is stretched to the window (sequence/window.ts).
   */
  windowFrames: number;
  /** Nominal frame rate of the training windows (frames per second). */
  fps: number;
  /**
   * The fewest frames at `fps` the model reads (stretched to the window), as its training's time augmentation did.
   * @default the frames of 80% of the window's span (sequence/window.ts `minimumFrames`)
   */
  minFrames?: number;
  labels: string[];
  /** Edge model only: the length of the `embedding` output. */
  embeddingSize?: number;
  /** `fp32` or `int8-qdq` (static quantization with calibration data). */
  precision: "fp32" | "int8-qdq";
}

/** The switcher: input `features` float32 `[N, features.length]`, output `score` float32 `[N, 1]` in [0, 1]. */
export interface SwitcherSpec extends ArtefactSpec {
  /** Feature names in input order; see `switcher/features.ts`. */
  features: string[];
  /** Offload when score >= threshold. */
  threshold: number;
  /** What the threshold was calibrated for, e.g. `{ offloadRate: 0.2 }`. */
  calibration?: Record<string, unknown>;
  /**
   * Set when the switcher is a confidence rule rather than a model (release/release.ts): no file is read, and
   * `file`, `sha256` are empty. @default undefined (an ONNX switcher)
   */
  rule?: "max_prob" | "margin" | "entropy";
  /** The hop it decides (0: edge -> first cloud tier). @default 0 */
  hop?: number;
}

/** The whole manifest. */
export interface Manifest {
  schemaVersion: 1;
  edge: ClassifierSpec;
  cloud: ClassifierSpec;
  /** Absent until a switcher has been trained; the service then scores with `1 - max probability`. */
  switcher?: SwitcherSpec;
  /** Licence notices of the data behind the models. */
  notices?: string[];
}
