/**
 * A release: one model artefact with its role, spec, metrics, provenance and status, the one typed value that the
 * registry (loop/registry.ts) stores, the follower (serve/release_follower.ts) loads, the pool hands to every worker,
 * and whose version and threshold travel with each edge result into the decision row (DESIGN.md, "Releases").
 *
 * Roles: the `edge` model, the `cloud` model, and the `switcher` of a hop (hop 0 decides edge -> first cloud tier;
 * a chain of cloud tiers has one switcher per hop). A switcher scores either with an ONNX model over the switcher
 * features, or with a confidence rule (`max_prob`, `margin`, `entropy`) computed from the edge probabilities, no
 * model needed; both offload when score >= threshold.
 *
 * Pure: types and small constructors, no I/O. Decoding stored specs, with validation, is release/decode.ts.
 *
 * @module
 */
import type { ConfidenceRule } from "../switcher/rules.ts";
import type { ClassifierSpec, SwitcherSpec } from "../wasm-models/manifest.ts";
import type { ReleaseStatus } from "./roles.ts";

export { RELEASE_ROLES, RELEASE_STATUSES, type ReleaseRole, type ReleaseStatus } from "./roles.ts";

// Confidence rules a switcher release may be instead of a model, and their scores: one pure definition, shared with
// the evaluation and selection (switcher/rules.ts).
export { CONFIDENCE_RULES, type ConfidenceRule, ruleScore } from "../switcher/rules.ts";

/** Version of the switcher served when none was ever released: the `max_prob` rule at threshold 0.5. */
export const BUILTIN_SWITCHER_VERSION = "builtin-max-probability";

/** How a switcher release scores a request. */
export type SwitcherScorer =
  /** An ONNX model over the switcher features; its bytes are the release's `artefact`. */
  | { kind: "onnx"; spec: SwitcherSpec }
  /** A confidence rule over the edge probabilities. */
  | { kind: "rule"; rule: ConfidenceRule };

/** What every release records. */
interface ReleaseBase {
  version: string;
  status: ReleaseStatus;
  /** Unix milliseconds. */
  createdAt: number;
  /** When it last became active, Unix milliseconds. */
  promotedAt: number | null;
  /** The release of the same role and hop that was active when this one was made. */
  parentVersion: string | null;
  /** How it was made: data, window, seed, recipe, code version. */
  provenance: Record<string, unknown>;
  /** What it measured, each figure naming its data. */
  metrics: Record<string, unknown>;
  /** The model file (checked against `sha256`), or null for a rule or a release recorded without it. */
  artefact: Uint8Array | null;
  /** Hex sha256 of the artefact; null without one. */
  sha256: string | null;
}

/** An edge or cloud model release. */
export interface ModelRelease extends ReleaseBase {
  role: "edge" | "cloud";
  spec: ClassifierSpec;
}

/** A switcher release. */
export interface SwitcherRelease extends ReleaseBase {
  role: "switcher";
  /** The hop it decides: 0 for edge -> first cloud tier. */
  hop: number;
  /** Offload when score >= threshold. */
  threshold: number;
  /** Feature names it reads, in input order (empty for a rule). */
  features: string[];
  /** What the threshold was calibrated for, e.g. `{ offloadRate: 0.2 }`. */
  calibration: Record<string, unknown> | null;
  scorer: SwitcherScorer;
}

/** Any release. */
export type Release = ModelRelease | SwitcherRelease;

/** The switcher release that scored a request, as it travels with the edge result into the decision row. */
export interface ScoredBy {
  version: string;
  threshold: number;
}

/**
 * The built-in switcher: the `max_prob` rule at threshold 0.5, served when no switcher was ever released, and the
 * first release of a registry seeded from a manifest without a switcher (so rollback has somewhere to go).
 *
 * @param nowMs creation time
 * @returns the release (status `candidate`)
 */
export function builtinSwitcherRelease(nowMs = 0): SwitcherRelease {
  return ruleRelease({ version: BUILTIN_SWITCHER_VERSION, rule: "max_prob", threshold: 0.5, nowMs });
}

/**
 * A confidence-rule switcher release, ready to publish.
 *
 * @param options version, rule, threshold, hop (default 0), calibration, provenance, metrics, time
 * @returns the release (status `candidate`)
 * @example
 * ruleRelease({ version: "switcher-margin-1", rule: "margin", threshold: 0.71, calibration: { offloadRate: 0.2 } });
 */
export function ruleRelease(options: {
  version: string;
  rule: ConfidenceRule;
  threshold: number;
  hop?: number;
  calibration?: Record<string, unknown>;
  provenance?: Record<string, unknown>;
  metrics?: Record<string, unknown>;
  parentVersion?: string | null;
  nowMs?: number;
}): SwitcherRelease {
  return {
    role: "switcher",
    hop: options.hop ?? 0,
    version: options.version,
    status: "candidate",
    createdAt: options.nowMs ?? Date.now(),
    promotedAt: null,
    parentVersion: options.parentVersion ?? null,
    provenance: options.provenance ?? {},
    metrics: options.metrics ?? {},
    artefact: null,
    sha256: null,
    threshold: options.threshold,
    features: [],
    calibration: options.calibration ?? null,
    scorer: { kind: "rule", rule: options.rule },
  };
}

/**
 * A switcher release from a manifest entry and its bytes (an ONNX switcher), or from a manifest entry naming a
 * `rule` (no bytes).
 *
 * @param spec the manifest's switcher entry
 * @param bytes the ONNX file (null for a rule)
 * @param options creation time and the parent version
 * @returns the release (status `candidate`)
 */
export function switcherReleaseFromSpec(
  spec: SwitcherSpec,
  bytes: Uint8Array | null,
  options: { nowMs?: number; parentVersion?: string | null } = {},
): SwitcherRelease {
  const base = {
    hop: spec.hop ?? 0,
    version: spec.version,
    calibration: spec.calibration ?? undefined,
    provenance: spec.provenance,
    metrics: spec.metrics,
    parentVersion: options.parentVersion,
    nowMs: options.nowMs,
  };
  if (spec.rule) return ruleRelease({ ...base, rule: spec.rule, threshold: spec.threshold });
  if (!bytes) throw new TypeError(`Cannot make release ${spec.version}: an ONNX switcher needs its bytes`);
  return {
    ...ruleRelease({ ...base, rule: "max_prob", threshold: spec.threshold }),
    artefact: bytes,
    sha256: spec.sha256,
    features: spec.features,
    scorer: { kind: "onnx", spec },
  };
}

/**
 * The manifest entry of a switcher release: the ONNX spec, or a rule entry (no file).
 *
 * @param release the switcher release
 * @returns the entry to write as the manifest's `switcher`
 */
export function manifestEntryOf(release: SwitcherRelease): SwitcherSpec {
  if (release.scorer.kind === "onnx") return release.scorer.spec;
  return {
    version: release.version,
    rule: release.scorer.rule,
    file: "",
    sha256: "",
    bytes: 0,
    inputs: [],
    outputs: [{ name: "score", shape: [-1, 1], dtype: "float32" }],
    features: [],
    threshold: release.threshold,
    ...(release.hop !== 0 ? { hop: release.hop } : {}),
    ...(release.calibration ? { calibration: release.calibration } : {}),
    provenance: release.provenance,
    metrics: release.metrics,
  };
}
