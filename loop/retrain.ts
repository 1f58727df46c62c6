/**
 * The retraining job of the learning loop: logged pairs -> DMD labels and inverse-propensity weights -> a candidate
 * switcher -> threshold calibrated on recent traffic -> candidate and active scored on the same held-out recent
 * pairs -> promoted only if the gate passes (switcher/gate.ts) -> stored with its provenance, artefact and metrics.
 * Also reports drift (switcher/drift.ts) against the window the active version was trained on.
 *
 * Data window: pairs of the serving edge model logged since the active version was created, plus earlier ones
 * back to `windowMs` before now (so a job run soon after the last one still learns from enough pairs), at most
 * `maxPairs` (the most recent). The newest `holdoutFraction` of them, by time, is held out for the gate.
 *
 * Calibration: the candidate's threshold is set so that it would have offloaded `offloadRate` of all recent
 * decisions (every decision carries the switcher's features), not of the pairs, which over-represent offloads.
 *
 * @module
 */
import type { Db } from "../db/client.ts";
import { listDecisions, listLoggedPairs } from "../db/queries.ts";
import type { DecisionRecord } from "../db/schema.ts";
import { BUILTIN_SWITCHER_VERSION, ruleRelease, ruleScore, type SwitcherRelease } from "../release/release.ts";
import { thresholdForOffloadRate } from "../switcher/calibration.ts";
import { dmdLabel } from "../switcher/dmd_labels.ts";
import { detectDrift, type DriftReport, type DriftWindow } from "../switcher/drift.ts";
import { FEATURE_SETS, featureNames, type FeatureSet } from "../switcher/features.ts";
import { gate, type GateOptions, type GateVerdict } from "../switcher/gate.ts";
import { ruleScores } from "../switcher/rules.ts";
import { type Candidate, candidatesFor } from "../switcher/candidates.ts";
import { exportFitted, scoreFitted } from "../switcher/fit.ts";
import { selectionSummary, selectSwitcher } from "../switcher/selection.ts";
import { DEFAULT_PROPENSITY_CLIP, ipwWeight } from "../switcher/propensity.ts";
import type { Manifest, SwitcherSpec } from "../wasm-models/manifest.ts";
import { scoreWithOnnx } from "../workers/runtime.ts";
import type { JobLock } from "./job_lock.ts";
import { activeRelease, onnxRelease, publishRelease } from "./registry.ts";

/** Options of {@link retrain}. */
export interface RetrainOptions {
  db: Db;
  modelsDir: string;
  manifest: Manifest;
  /** Unix ms. @default Date.now() */
  nowMs?: number;
  /** @default 7 days */
  windowMs?: number;
  /** Only pairs from then on (an operator retraining on a drifted window). */
  sinceMs?: number;
  /** @default 200000 */
  maxPairs?: number;
  /** Fewest pairs logged since the active version for a run to train. @default 200 */
  minNewPairs?: number;
  /** @default 0.2 */
  holdoutFraction?: number;
  /** Target offload rate of the candidate. @default the active version's, else 0.2 */
  offloadRate?: number;
  target?: "hard" | "soft";
  featureSets?: readonly FeatureSet[];
  /** The candidates to choose from. @default the rules and the MLPs on `featureSets` */
  candidates?: readonly Candidate[];
  /** Weight pairs by inverse propensity (false: every pair weighs 1, as if offloads were a random sample). */
  ipw?: boolean;
  /** Learn from shadow pairs too (false: offloaded pairs only, as a loop without exploration would). @default true */
  includeShadow?: boolean;
  propensityClip?: number;
  seed?: number;
  epochs?: number;
  gate?: GateOptions;
  /** Train and report, store nothing. */
  dryRun?: boolean;
  /** Promote even when the gate refuses (recorded in the provenance as forced). */
  force?: boolean;
  /** The models folder's job lock, when the caller holds it (loop/job_lock.ts). */
  lock?: JobLock;
  version?: string;
  codeVersion?: string;
  onStep?: (step: string) => void;
}

/** What a run did. */
export interface RetrainReport {
  outcome: "promoted" | "rejected" | "skipped";
  reason: string;
  version: string | null;
  active: string | null;
  window: { fromMs: number; toMs: number };
  counts: { pairs: number; newPairs: number; train: number; holdout: number; shadow: number; offloaded: number };
  featureSet: FeatureSet | null;
  /** The chosen candidate (`rule:<rule>` or `mlp:<feature set>`), null when skipped. */
  candidateName: string | null;
  threshold: number | null;
  offloadRate: number | null;
  verdict: GateVerdict | null;
  drift: DriftReport | null;
  seconds: { read: number; train: number; total: number };
  /** The candidate's ONNX bytes (absent when skipped). */
  candidate?: Uint8Array;
}

/** Scores of the active release on feature rows: its ONNX model in the workers' runtime, or its rule. */
export async function scoreRelease(release: SwitcherRelease, rows: Float32Array[]): Promise<Float32Array> {
  const scorer = release.scorer;
  if (scorer.kind === "rule") return Float32Array.from(rows, (r) => ruleScore(scorer.rule, r));
  return await scoreWithOnnx(release.artefact!, rows, release.features.length);
}

function driftWindow(rows: DecisionRecord[]): DriftWindow {
  const shadow = rows.filter((r) => r.shadow && r.cloudLabel !== null);
  return {
    scores: rows.map((r) => r.switcherScore),
    labels: rows.map((r) => r.edgeLabel),
    shadowAgreement: shadow.map((r) => (r.cloudLabel === r.edgeLabel ? 1 : 0)),
  };
}

function trainedWindow(active: SwitcherRelease | null): { fromMs: number; toMs: number } | null {
  const w = (active?.provenance as { window?: { fromMs?: unknown; toMs?: unknown } } | undefined)?.window;
  return w && typeof w.fromMs === "number" && typeof w.toMs === "number" ? { fromMs: w.fromMs, toMs: w.toMs } : null;
}

/**
 * Run the job once. The candidate is published through the release registry (loop/registry.ts): under the
 * caller's job lock when `lock` is given (scripts/retrain.ts holds it for the whole run), else under one taken for
 * the publication.
 *
 * @param options database, models, window, training and gate settings
 * @returns the report
 */
export async function retrain(options: RetrainOptions): Promise<RetrainReport> {
  const t0 = performance.now();
  const step = options.onStep ?? (() => {});
  const now = options.nowMs ?? Date.now();
  const { db, manifest } = options;
  const edge = manifest.edge;
  // The built-in rule was never trained: the first trained switcher is gated on the absolute checks alone.
  const serving = await activeRelease(db);
  const active = serving?.version === BUILTIN_SWITCHER_VERSION ? null : serving;
  const windowMs = options.windowMs ?? 7 * 86_400_000;
  const activeSince = active?.createdAt ?? now - windowMs;
  const fromMs = options.sinceMs ?? Math.min(activeSince, now - windowMs);
  step(`reading pairs of ${edge.version} since ${new Date(fromMs).toISOString()}`);
  let rows = await listLoggedPairs(db, { sinceMs: fromMs, edgeModelVersion: edge.version });
  if (rows.length > (options.maxPairs ?? 200_000)) rows = rows.slice(rows.length - (options.maxPairs ?? 200_000));
  rows = rows.filter((r) =>
    r.createdAt <= now && r.cloudProbs && dmdLabel(r.edgeProbs, r.cloudProbs) &&
    (options.includeShadow !== false || !r.shadow)
  );
  const recent = await listDecisions(db, {
    sinceMs: Math.max(fromMs, activeSince),
    untilMs: now + 1,
    limit: 50_000,
    order: "desc",
  });
  const tw = trainedWindow(active);
  const reference = tw ? await listDecisions(db, { sinceMs: tw.fromMs, untilMs: tw.toMs + 1, limit: 50_000 }) : [];
  const drift = reference.length > 0 && recent.length > 0
    ? detectDrift(driftWindow(reference), driftWindow(recent))
    : null;
  const readSeconds = (performance.now() - t0) / 1000;

  const newPairs = rows.filter((r) => r.createdAt >= activeSince).length;
  const base = {
    version: null,
    active: active?.version ?? null,
    window: { fromMs, toMs: now },
    featureSet: null,
    candidateName: null,
    threshold: null,
    offloadRate: null,
    verdict: null,
    drift,
  };
  const counts = {
    pairs: rows.length,
    newPairs,
    train: 0,
    holdout: 0,
    shadow: rows.filter((r) => r.shadow).length,
    offloaded: rows.filter((r) => !r.shadow).length,
  };
  const minNew = options.minNewPairs ?? 200;
  if (newPairs < minNew) {
    return {
      ...base,
      outcome: "skipped",
      reason: `only ${newPairs} pairs logged since the active version (at least ${minNew} needed)`,
      counts,
      seconds: { read: readSeconds, train: 0, total: (performance.now() - t0) / 1000 },
    };
  }

  // Held out: the newest pairs, by time.
  const nHold = Math.max(1, Math.round(rows.length * (options.holdoutFraction ?? 0.2)));
  const trainRows = rows.slice(0, rows.length - nHold);
  const holdRows = rows.slice(rows.length - nHold);
  counts.train = trainRows.length;
  counts.holdout = holdRows.length;
  const clip = options.propensityClip ?? DEFAULT_PROPENSITY_CLIP;
  const weightOf = (r: DecisionRecord) => (options.ipw === false ? 1 : ipwWeight(r.offloadProbability || 1, clip));

  step(
    `training on ${trainRows.length} pairs (${options.ipw === false ? "unweighted" : "inverse-propensity weighted"})`,
  );
  const t1 = performance.now();
  // Candidates (confidence rules, MLPs) chosen by cross-validation on folds grouped by client or edge location
  // (blocks of time without them), one-standard-error rule (switcher/selection.ts).
  const selection = selectSwitcher(
    trainRows.map((r) => ({
      features: r.features,
      edgeProbs: r.edgeProbs,
      cloudProbs: r.cloudProbs!,
      weight: weightOf(r),
    })),
    trainRows.map((r) => r.clientId ?? r.edgeLocation),
    {
      target: options.target ?? "soft",
      seed: options.seed ?? 1,
      epochs: options.epochs ?? 60,
      candidates: options.candidates ?? candidatesFor(options.featureSets ?? FEATURE_SETS),
    },
  );
  const fitted = selection.fitted;
  const score = (feats: Float32Array[]) => scoreFitted(fitted, feats);
  const bestRule = selection.bestRule.candidate;
  const activeCalibration = active?.calibration as { offloadRate?: unknown } | null | undefined;
  const offloadRate = options.offloadRate ??
    (typeof activeCalibration?.offloadRate === "number" ? activeCalibration.offloadRate : 0.2);
  const calibrationRows = recent.length > 0 ? recent : rows;
  const threshold = thresholdForOffloadRate(score(calibrationRows.map((r) => r.features)), offloadRate);
  const trainSeconds = (performance.now() - t1) / 1000;

  step(`gating against ${active?.version ?? "no active version"} on ${holdRows.length} held-out recent pairs`);
  const holdPairs = holdRows.map((r) => ({
    disagree: dmdLabel(r.edgeProbs, r.cloudProbs!)!.hard,
    weight: weightOf(r),
  }));
  const candidateScores = score(holdRows.map((r) => r.features));
  const activeScores = active ? await scoreRelease(active, holdRows.map((r) => r.features)) : null;
  const verdict = gate(
    holdPairs,
    { scores: candidateScores, threshold },
    active && activeScores ? { scores: activeScores, threshold: active.threshold } : null,
    {
      ...options.gate,
      rules: bestRule.kind === "rule" && bestRule !== fitted.candidate
        ? [{ name: bestRule.name, scores: ruleScores(bestRule.rule, holdRows.map((r) => r.features)) }]
        : [],
    },
  );
  const forced = !verdict.promote && options.force === true;

  const version = options.version ??
    `switcher-${new Date(now).toISOString().slice(0, 19).replace(/[-:]/g, "").replace("T", "-")}`;
  const features = featureNames(edge.embeddingSize ?? 0);
  const bytes = fitted.model ? exportFitted(fitted, { version, features }) : null;
  const provenance = {
    data: "decision log",
    window: { fromMs, toMs: now },
    pairs: counts,
    weighting: options.ipw === false ? "none" : `inverse propensity, clipped at ${clip}`,
    target: options.target ?? "soft",
    featureSet: fitted.candidate.kind === "mlp" ? fitted.candidate.set : null,
    candidate: fitted.candidate.name,
    selection: selectionSummary(selection),
    forced,
    seed: options.seed ?? 1,
    edgeModel: edge.version,
    cloudModel: manifest.cloud.version,
    codeVersion: options.codeVersion ?? null,
    bestEpoch: fitted.bestEpoch,
  };
  const metrics = { gate: verdict, trainHeldOut: fitted.heldOut, drift };
  const spec: Omit<SwitcherSpec, "file" | "sha256" | "bytes"> = {
    version,
    inputs: [{ name: "features", shape: [-1, features.length], dtype: "float32" }],
    outputs: [{ name: "score", shape: [-1, 1], dtype: "float32" }],
    features,
    threshold,
    calibration: { offloadRate, calibratedOn: `${calibrationRows.length} recent decisions` },
    params: fitted.model?.layers.reduce((a, l) => a + l.weight.length + l.bias.length, 0) ?? 0,
    flops: fitted.model?.layers.reduce((a, l) => a + 2 * l.weight.length, 0) ?? 0,
    provenance,
    metrics,
  };
  const result = {
    ...base,
    version,
    featureSet: fitted.candidate.kind === "mlp" ? fitted.candidate.set : null,
    candidateName: fitted.candidate.name,
    threshold,
    offloadRate,
    verdict,
    counts,
    ...(bytes ? { candidate: bytes } : {}),
  };
  const seconds = () => ({ read: readSeconds, train: trainSeconds, total: (performance.now() - t0) / 1000 });
  if (options.dryRun) {
    return {
      ...result,
      outcome: verdict.promote ? "promoted" : "rejected",
      reason: `dry run: ${verdict.reason}`,
      seconds: seconds(),
    };
  }

  step(`publishing ${version}`);
  const release = fitted.candidate.kind === "rule"
    ? ruleRelease({
      version,
      rule: fitted.candidate.rule,
      threshold,
      calibration: spec.calibration as Record<string, unknown>,
      provenance,
      metrics,
      parentVersion: active?.version ?? null,
      nowMs: now,
    })
    : await onnxRelease(bytes!, spec, { nowMs: now, parentVersion: active?.version ?? null });
  await publishRelease(db, { ...release, status: verdict.promote || forced ? "candidate" : "rejected" }, {
    modelsDir: options.modelsDir,
    lock: options.lock,
    nowMs: now,
    activate: verdict.promote || forced,
  });
  if (!verdict.promote && !forced) {
    return { ...result, outcome: "rejected", reason: verdict.reason, seconds: seconds() };
  }
  const reason = forced ? `forced past the gate: ${verdict.reason}` : verdict.reason;
  return { ...result, outcome: "promoted", reason, seconds: seconds() };
}
