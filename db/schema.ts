/**
 * The decision database's schema (drizzle, SQLite dialect for libSQL): `decisions` (one row per classified
 * sequence), `dmd_pairs` (edge/cloud output pairs stored by DMD jobs) and `switcher_versions` (every trained
 * switcher with its provenance and status). The SQL migrations in `db/migrations/` are generated from this file
 * (`deno task db:generate`, see `db/README.md`) and applied when the database is opened.
 *
 * Conventions: times are Unix milliseconds in `integer` columns; probability vectors are JSON text (analysts can
 * use `json_extract`); embeddings and switcher features are float32 little-endian BLOBs; booleans are 0/1.
 *
 * @module
 */
import { customType, index, integer, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { RELEASE_ROLES, RELEASE_STATUSES, type ReleaseStatus } from "../release/roles.ts";

/** Where an answer came from: the edge model, the cloud model, or the edge model because the cloud failed. */
export const ROUTES = ["edge", "cloud", "edge_fallback"] as const;
/** A decision's route. */
export type Route = (typeof ROUTES)[number];

/** Why a decision took its route. */
export const ROUTE_REASONS = [
  "below_threshold",
  "above_threshold",
  "forced_edge",
  "forced_cloud",
  "budget_exhausted",
  "cloud_unavailable",
] as const;
/** A decision's route reason. */
export type RouteReason = (typeof ROUTE_REASONS)[number];

/** Where a DMD pair came from: the decision log, or an unlabeled corpus run through both models. */
export const PAIR_SOURCES = ["log", "corpus"] as const;
/** A DMD pair's source. */
export type PairSource = (typeof PAIR_SOURCES)[number];

/** A release's lifecycle: candidate -> active -> retired, or candidate -> rejected (release/release.ts). */
export const SWITCHER_STATUSES = RELEASE_STATUSES;
/** A release's status. */
export type SwitcherStatus = ReleaseStatus;

/**
 * A Float32Array stored as a little-endian BLOB, whatever the host's byte order, so that the bytes mean the same
 * to every reader (numpy `dtype="<f4"`).
 */
const float32Blob = customType<{ data: Float32Array; driverData: ArrayBuffer | Uint8Array }>({
  dataType: () => "blob",
  toDriver: (value) => {
    const bytes = new Uint8Array(value.length * 4);
    const view = new DataView(bytes.buffer);
    for (let i = 0; i < value.length; i++) view.setFloat32(i * 4, value[i], true);
    return bytes;
  },
  fromDriver: (value) => {
    const bytes = value instanceof Uint8Array ? value : new Uint8Array(value);
    if (bytes.byteLength % 4 !== 0) {
      throw new RangeError(`Cannot read a float32 blob: ${bytes.byteLength} bytes is not a multiple of 4`);
    }
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const out = new Float32Array(bytes.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = view.getFloat32(i * 4, true);
    return out;
  },
});

/** A number array stored as JSON text. */
const bytesBlob = customType<{ data: Uint8Array; driverData: ArrayBuffer | Uint8Array }>({
  dataType: () => "blob",
  toDriver: (value) => value,
  fromDriver: (value) => (value instanceof Uint8Array ? new Uint8Array(value) : new Uint8Array(value)),
});

const jsonNumbers = customType<{ data: number[]; driverData: string }>({
  dataType: () => "text",
  toDriver: (value) => JSON.stringify(value),
  fromDriver: (value) => JSON.parse(value),
});

/** One row per classified sequence: everything DMD jobs and analysts need. */
export const decisions = sqliteTable("decisions", {
  /** UUIDv7 (time-ordered), see `db/ids.ts`. */
  id: text("id").primaryKey(),
  /** The HTTP request that carried the sequence (a batch request carries several). */
  requestId: text("request_id").notNull(),
  /** The caller's own id for the sequence. */
  clientId: text("client_id"),
  edgeLocation: text("edge_location").notNull(),
  /** Unix milliseconds. */
  createdAt: integer("created_at").notNull(),
  layout: text("layout").notNull(),
  /** Sequence length as received (before resampling). */
  frames: integer("frames").notNull(),
  joints: integer("joints").notNull(),
  channels: integer("channels").notNull(),
  fps: real("fps").notNull(),
  route: text("route", { enum: ROUTES }).notNull(),
  routeReason: text("route_reason", { enum: ROUTE_REASONS }).notNull(),
  /** The caller forced the route. */
  forced: integer("forced", { mode: "boolean" }).notNull(),
  /**
   * Probability with which this request reached the cloud: its propensity, for inverse-propensity weighting of
   * logged DMD pairs.
   */
  offloadProbability: real("offload_probability").notNull(),
  /** A background (exploration) call also sent this request to the cloud. */
  shadow: integer("shadow", { mode: "boolean" }).notNull().default(false),
  edgeModelVersion: text("edge_model_version").notNull(),
  edgeLabel: text("edge_label").notNull(),
  edgeProb: real("edge_prob").notNull(),
  edgeProbs: jsonNumbers("edge_probs").notNull(),
  embedding: float32Blob("embedding").notNull(),
  /** The switcher's input vector. */
  features: float32Blob("features").notNull(),
  switcherVersion: text("switcher_version").notNull(),
  switcherScore: real("switcher_score").notNull(),
  switcherThreshold: real("switcher_threshold").notNull(),
  cloudModelVersion: text("cloud_model_version"),
  cloudLabel: text("cloud_label"),
  cloudProb: real("cloud_prob"),
  cloudProbs: jsonNumbers("cloud_probs"),
  /** Error code when the cloud call failed, e.g. `OFFLOAD_TIMEOUT`. */
  cloudError: text("cloud_error"),
  /** The answer given. */
  label: text("label").notNull(),
  prob: real("prob").notNull(),
  queueMs: real("queue_ms").notNull(),
  /** Pre-processing, edge model and switcher. */
  edgeMs: real("edge_ms").notNull(),
  cloudMs: real("cloud_ms"),
  totalMs: real("total_ms").notNull(),
  /** Shared by the sequences of one batch request. */
  batchId: text("batch_id"),
  /**
   * What the caller sent when it was not a keypoint sequence: `jpeg` or `png` camera frames, turned into keypoints by
   * the pose model at the edge (the frames themselves are never stored; `frames` counts them). Null for sequences.
   */
  inputKind: text("input_kind"),
  /** Camera frames: decoding time, all frames. */
  decodeMs: real("decode_ms"),
  /** Camera frames: pose model time, all frames. */
  poseMs: real("pose_ms"),
  /** Camera frames: the pose quality, the mean keypoint score over all frames and joints, in [0, 1]. */
  poseQuality: real("pose_quality"),
}, (t) => [
  index("decisions_created_at").on(t.createdAt),
  index("decisions_route_created_at").on(t.route, t.createdAt),
  index("decisions_switcher_version").on(t.switcherVersion, t.createdAt),
  index("decisions_edge_location").on(t.edgeLocation, t.createdAt),
  index("decisions_client_id").on(t.clientId),
  /**
   * Covering index of the analytics queries (`db/analytics.ts`): a time-window scan reads this index only, about a
   * tenth of the table's bytes (the rows carry vectors). Measured in `deno task bench:analytics` (issue 6).
   */
  index("decisions_analytics").on(
    t.createdAt,
    t.edgeLocation,
    t.switcherVersion,
    t.route,
    t.routeReason,
    t.forced,
    t.shadow,
    t.edgeLabel,
    t.cloudLabel,
    t.label,
    t.cloudError,
    t.queueMs,
    t.edgeMs,
    t.cloudMs,
    t.totalMs,
    t.switcherScore,
    t.switcherThreshold,
  ),
]);

/** Pairs of edge and cloud outputs, stored by DMD jobs so that later jobs reuse them. */
export const dmdPairs = sqliteTable("dmd_pairs", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  source: text("source", { enum: PAIR_SOURCES }).notNull(),
  /** The decision id (`log`) or the sequence's id in its file (`corpus`). */
  sourceRef: text("source_ref").notNull(),
  /** The corpus file, for `corpus` pairs. */
  dataset: text("dataset"),
  /** Unix milliseconds. */
  createdAt: integer("created_at").notNull(),
  edgeModelVersion: text("edge_model_version").notNull(),
  cloudModelVersion: text("cloud_model_version").notNull(),
  edgeProbs: jsonNumbers("edge_probs").notNull(),
  cloudProbs: jsonNumbers("cloud_probs").notNull(),
  embedding: float32Blob("embedding").notNull(),
  features: float32Blob("features").notNull(),
  /** DMD hard label: 1 when the edge and cloud top-1 differ. */
  hardLabel: integer("hard_label").notNull(),
  /** DMD soft label: 1 - p_cloud(edge top-1). */
  softLabel: real("soft_label").notNull(),
  /** Probability that the pair's input reached the cloud (1 for corpus pairs). */
  propensity: real("propensity").notNull(),
  /** Kept when the source file had labels; DMD never reads it, evaluation may. */
  trueLabel: text("true_label"),
}, (t) => [
  uniqueIndex("dmd_pairs_source_models").on(t.source, t.sourceRef, t.edgeModelVersion, t.cloudModelVersion),
  index("dmd_pairs_created_at").on(t.createdAt),
]);

/**
 * Every release of the registry (loop/registry.ts): switchers today, named for them; a row is one model artefact
 * with its role, spec, metrics, provenance and status. One release is active per role and hop.
 */
export const switcherVersions = sqliteTable("switcher_versions", {
  version: text("version").primaryKey(),
  /** `switcher`, `edge` or `cloud` (release/release.ts). */
  role: text("role", { enum: RELEASE_ROLES }).notNull().default("switcher"),
  /** For a switcher: the hop it decides, 0 for edge -> first cloud tier. */
  hop: integer("hop").notNull().default(0),
  /** Unix milliseconds. */
  createdAt: integer("created_at").notNull(),
  status: text("status", { enum: SWITCHER_STATUSES }).notNull(),
  /** ONNX file name beside the manifest. */
  file: text("file").notNull(),
  sha256: text("sha256").notNull(),
  threshold: real("threshold").notNull(),
  /** Feature names in input order. */
  features: text("features", { mode: "json" }).$type<string[]>().notNull(),
  provenance: text("provenance", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  metrics: text("metrics", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  /** When it last became active, Unix milliseconds. */
  promotedAt: integer("promoted_at"),
  /** The version that was active when this one was trained. */
  parentVersion: text("parent_version"),
  /**
   * The ONNX bytes, so that every edge app sharing the database can load a promoted version (checked against
   * `sha256`); null for versions recorded without them.
   */
  artefact: bytesBlob("artefact"),
  /**
   * The full spec, so a release can be served again without its training run: a manifest entry (`SwitcherSpec`),
   * or `{ kind: "rule", ... }` for a confidence rule. Decoded and checked by release/decode.ts, never cast.
   */
  spec: text("spec", { mode: "json" }).$type<Record<string, unknown>>(),
});

/**
 * One row per cloud tier a decision reached past the edge, when more than two tiers are configured
 * (serve/tiers.ts, serve/cascade.ts): each tier's output or error, its cost, and the switcher of the hop that leaves
 * it. The decision's own row is unchanged (its `cloud_*` columns hold tier 1's output, what hop 0's DMD reads);
 * two-tier decisions have no rows here.
 */
export const decisionTiers = sqliteTable("decision_tiers", {
  decisionId: text("decision_id").notNull(),
  /** The tier's position in the list (1: the first cloud tier). */
  tier: integer("tier").notNull(),
  /** Its configured name. */
  tierName: text("tier_name").notNull(),
  /** Unix milliseconds (the decision's). */
  createdAt: integer("created_at").notNull(),
  modelVersion: text("model_version"),
  label: text("label"),
  prob: real("prob"),
  probs: jsonNumbers("probs"),
  /** False when the tier gave an answer without probabilities (`probs` is then one-hot on it). */
  hasProbabilities: integer("has_probabilities", { mode: "boolean" }),
  /** Error code when the call failed or was not made (`CIRCUIT_OPEN`, `OFFLOAD_TIMEOUT`, ...). */
  error: text("error"),
  /** Why, in more detail (cloud/bounded_call.ts `CallFailure`, or `budget_exhausted`). */
  errorReason: text("error_reason"),
  /** Measured round trip, milliseconds. */
  ms: real("ms"),
  /** The tier's configured cost per call in milliseconds, else the measured `ms`. */
  costMs: real("cost_ms"),
  /** The tier's configured price per call. */
  price: real("price"),
  /** Probability with which the request reached this tier: 1 escalated, the hop's exploration rate when explored. */
  propensity: real("propensity").notNull(),
  /** An exploration call: its answer was logged, not given. */
  shadow: integer("shadow", { mode: "boolean" }).notNull(),
  /** This tier's answer is the one given. */
  answered: integer("answered", { mode: "boolean" }).notNull(),
  /** The switcher of the hop leaving this tier, its score and threshold (null at the last tier or on failure). */
  switcherVersion: text("switcher_version"),
  switcherScore: real("switcher_score"),
  switcherThreshold: real("switcher_threshold"),
  /** Why the request did not climb further: `kept`, `escalated`, `last_tier`, `failed`, `no_frames`, `budget_exhausted`, `cloud_unavailable`. */
  next: text("next").notNull(),
}, (t) => [
  uniqueIndex("decision_tiers_decision_tier").on(t.decisionId, t.tier),
  index("decision_tiers_created_at").on(t.createdAt, t.tier),
]);

/** A decision's tier row (see {@link decisionTiers}). */
export type DecisionTierRecord = typeof decisionTiers.$inferSelect;

/**
 * A decision row (camelCase; probability vectors as `number[]`, embedding and features as `Float32Array`), with the
 * rows of the cloud tiers it reached past the first when more than two tiers are configured (written with it, in the
 * same batch).
 */
export type DecisionRecord =
  & Omit<typeof decisions.$inferSelect, FrameInputColumns>
  & Partial<Pick<typeof decisions.$inferSelect, FrameInputColumns>>
  & { tiers?: DecisionTierRecord[] };
/** The columns only camera-frame requests fill (optional in a record: a sequence's record leaves them out). */
type FrameInputColumns = "inputKind" | "decodeMs" | "poseMs" | "poseQuality";
/** A decision row to insert (`shadow` defaults to false). */
export type NewDecision = typeof decisions.$inferInsert;
/** A stored DMD pair. */
export type DmdPair = typeof dmdPairs.$inferSelect;
/** A DMD pair to store (its `id` is assigned). */
export type NewDmdPair = Omit<typeof dmdPairs.$inferInsert, "id">;
/** A switcher version row. */
export type SwitcherVersion = typeof switcherVersions.$inferSelect;
/** A switcher version to record. */
export type NewSwitcherVersion = typeof switcherVersions.$inferInsert;
