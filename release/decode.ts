/**
 * The one way between a stored release row (the `switcher_versions` table, db/schema.ts) and a typed
 * {@link SwitcherRelease}: {@link decodeSwitcherRow} checks the stored spec field by field instead of casting it,
 * and {@link encodeSwitcherRow} writes it back. Rows written before releases had a role, a hop or a `kind` read as
 * hop-0 ONNX switchers.
 *
 * Pure: plain objects in, plain objects out.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import type { SwitcherSpec, TensorSpec } from "../wasm-models/manifest.ts";
import { CONFIDENCE_RULES, type ConfidenceRule, type SwitcherRelease } from "./release.ts";
import type { ReleaseRole, ReleaseStatus } from "./roles.ts";

/** A stored release row, as the database returns it. */
export interface ReleaseRow {
  version: string;
  role: ReleaseRole;
  hop: number;
  createdAt: number;
  status: ReleaseStatus;
  file: string;
  sha256: string;
  threshold: number;
  features: string[];
  provenance: Record<string, unknown>;
  metrics: Record<string, unknown>;
  promotedAt: number | null;
  parentVersion: string | null;
  artefact: Uint8Array | null;
  spec: Record<string, unknown> | null;
}

/** The spec stored for a confidence-rule switcher. */
interface RuleSpec {
  kind: "rule";
  version: string;
  rule: ConfidenceRule;
  threshold: number;
  hop?: number;
  calibration?: Record<string, unknown>;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function fail(version: string, why: string): never {
  throw new AppError("MODEL_NOT_READY", `Cannot read release ${version}: ${why}`);
}

function tensors(version: string, v: unknown, field: string): TensorSpec[] {
  if (!Array.isArray(v)) fail(version, `its spec's ${field} is not a list`);
  return v.map((t, i) => {
    if (!isObject(t) || typeof t.name !== "string" || !Array.isArray(t.shape) || t.dtype !== "float32") {
      fail(version, `its spec's ${field}[${i}] is not { name, shape, dtype: "float32" }`);
    }
    if (!t.shape.every((d) => Number.isInteger(d))) fail(version, `its spec's ${field}[${i}].shape is not integers`);
    return { name: t.name, shape: t.shape as number[], dtype: "float32" };
  });
}

function onnxSpec(row: ReleaseRow, spec: Obj): SwitcherSpec {
  const v = row.version;
  if (spec.version !== v) fail(v, `its spec names version ${JSON.stringify(spec.version)}`);
  if (typeof spec.file !== "string" || typeof spec.sha256 !== "string") fail(v, "its spec has no file and sha256");
  if (typeof spec.threshold !== "number" || !Number.isFinite(spec.threshold)) {
    fail(v, "its spec's threshold is not a finite number");
  }
  if (!Array.isArray(spec.features) || !spec.features.every((f) => typeof f === "string")) {
    fail(v, "its spec's features are not a list of names");
  }
  const inputs = tensors(v, spec.inputs, "inputs");
  const outputs = tensors(v, spec.outputs, "outputs");
  if (!outputs.some((o) => o.name === "score")) fail(v, 'its spec has no output named "score"');
  for (const field of ["calibration", "provenance", "metrics"]) {
    if (spec[field] !== undefined && !isObject(spec[field])) fail(v, `its spec's ${field} is not an object`);
  }
  return {
    ...spec,
    version: v,
    file: spec.file,
    sha256: spec.sha256,
    bytes: typeof spec.bytes === "number" ? spec.bytes : row.artefact?.length ?? 0,
    inputs,
    outputs,
    features: spec.features as string[],
    threshold: spec.threshold,
  } as SwitcherSpec;
}

/**
 * Decode and check a stored switcher release.
 *
 * @param row the stored row
 * @returns the typed release
 * @throws AppError MODEL_NOT_READY naming the release and the field when the row is not a switcher release
 */
export function decodeSwitcherRow(row: ReleaseRow): SwitcherRelease {
  const v = row.version;
  if ((row.role ?? "switcher") !== "switcher") fail(v, `it is a ${row.role} release, not a switcher`);
  if (!Number.isFinite(row.threshold)) fail(v, "its threshold is not a finite number");
  const base = {
    role: "switcher" as const,
    hop: row.hop ?? 0,
    version: v,
    status: row.status,
    createdAt: row.createdAt,
    promotedAt: row.promotedAt,
    parentVersion: row.parentVersion,
    provenance: row.provenance ?? {},
    metrics: row.metrics ?? {},
    threshold: row.threshold,
  };
  const spec = row.spec;
  if (!isObject(spec)) fail(v, "it was recorded without its spec");
  if (spec.kind === "rule") {
    if (!(CONFIDENCE_RULES as readonly unknown[]).includes(spec.rule)) {
      fail(v, `its rule must be one of ${CONFIDENCE_RULES.join(", ")}, got ${JSON.stringify(spec.rule)}`);
    }
    return {
      ...base,
      artefact: null,
      sha256: null,
      features: [],
      calibration: isObject(spec.calibration) ? spec.calibration : null,
      scorer: { kind: "rule", rule: spec.rule as ConfidenceRule },
    };
  }
  if (spec.kind !== undefined && spec.kind !== "onnx") fail(v, `its spec kind ${JSON.stringify(spec.kind)} is unknown`);
  const onnx = onnxSpec(row, spec);
  return {
    ...base,
    artefact: row.artefact,
    sha256: row.sha256,
    features: onnx.features,
    calibration: onnx.calibration ?? null,
    scorer: { kind: "onnx", spec: onnx },
  };
}

/**
 * The row that stores a switcher release.
 *
 * @param release the release
 * @returns the row to insert
 */
export function encodeSwitcherRow(release: SwitcherRelease): ReleaseRow {
  const scorer = release.scorer;
  const spec: Obj = scorer.kind === "onnx" ? { ...scorer.spec } : {
    kind: "rule",
    version: release.version,
    rule: scorer.rule,
    threshold: release.threshold,
    ...(release.hop !== 0 ? { hop: release.hop } : {}),
    ...(release.calibration ? { calibration: release.calibration } : {}),
  } satisfies RuleSpec;
  return {
    version: release.version,
    role: "switcher",
    hop: release.hop,
    createdAt: release.createdAt,
    status: release.status,
    file: scorer.kind === "onnx" ? scorer.spec.file : "",
    sha256: release.sha256 ?? "",
    threshold: release.threshold,
    features: release.features,
    provenance: release.provenance,
    metrics: release.metrics,
    promotedAt: release.promotedAt,
    parentVersion: release.parentVersion,
    artefact: release.artefact,
    spec,
  };
}
