/**
 * The decision log's schema (drizzle, SQLite dialect for libSQL). Migrations in `db/migrations/` are generated from
 * this file (`deno task db:generate`) and applied at start-up.
 *
 * @module
 */
import { customType, index, integer, real, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";

/** A Float32Array stored as a little-endian BLOB. */
const float32Blob = customType<{ data: Float32Array; driverData: ArrayBuffer | Uint8Array }>({
  dataType: () => "blob",
  toDriver: (value) => new Uint8Array(value.buffer, value.byteOffset, value.byteLength).slice(),
  fromDriver: (value) => {
    const bytes = value instanceof Uint8Array ? value : new Uint8Array(value);
    return new Float32Array(bytes.slice().buffer);
  },
});

/** A number array stored as JSON text, so analysts can query it with `json_extract`. */
const jsonNumbers = customType<{ data: number[]; driverData: string }>({
  dataType: () => "text",
  toDriver: (value) => JSON.stringify(value),
  fromDriver: (value) => JSON.parse(value),
});

/** One row per classified sequence: everything DMD jobs and analysts need. */
export const decisions = sqliteTable("decisions", {
  id: text("id").primaryKey(),
  requestId: text("request_id").notNull(),
  clientId: text("client_id"),
  edgeLocation: text("edge_location").notNull(),
  /** Unix milliseconds. */
  createdAt: integer("created_at").notNull(),
  layout: text("layout").notNull(),
  /** Sequence length as received. */
  frames: integer("frames").notNull(),
  joints: integer("joints").notNull(),
  channels: integer("channels").notNull(),
  fps: real("fps").notNull(),
  route: text("route", { enum: ["edge", "cloud", "edge_fallback"] }).notNull(),
  routeReason: text("route_reason").notNull(),
  forced: integer("forced", { mode: "boolean" }).notNull(),
  /** Probability with which this request reached the cloud (its propensity, for inverse-propensity weights). */
  offloadProbability: real("offload_probability").notNull(),
  /** A background (exploration) call also sent this request to the cloud. */
  shadow: integer("shadow", { mode: "boolean" }).notNull().default(false),
  edgeModelVersion: text("edge_model_version").notNull(),
  edgeLabel: text("edge_label").notNull(),
  edgeProb: real("edge_prob").notNull(),
  edgeProbs: jsonNumbers("edge_probs").notNull(),
  embedding: float32Blob("embedding").notNull(),
  /** The switcher's input. */
  features: float32Blob("features").notNull(),
  switcherVersion: text("switcher_version").notNull(),
  switcherScore: real("switcher_score").notNull(),
  switcherThreshold: real("switcher_threshold").notNull(),
  cloudModelVersion: text("cloud_model_version"),
  cloudLabel: text("cloud_label"),
  cloudProb: real("cloud_prob"),
  cloudProbs: jsonNumbers("cloud_probs"),
  /** Error code when the cloud call failed. */
  cloudError: text("cloud_error"),
  /** The answer given. */
  label: text("label").notNull(),
  prob: real("prob").notNull(),
  queueMs: real("queue_ms").notNull(),
  /** Pre-processing, edge model and switcher. */
  edgeMs: real("edge_ms").notNull(),
  cloudMs: real("cloud_ms"),
  totalMs: real("total_ms").notNull(),
  batchId: text("batch_id"),
}, (t) => [
  index("decisions_created_at").on(t.createdAt),
  index("decisions_route_created_at").on(t.route, t.createdAt),
  index("decisions_switcher_version").on(t.switcherVersion, t.createdAt),
  index("decisions_edge_location").on(t.edgeLocation, t.createdAt),
  index("decisions_client_id").on(t.clientId),
]);

/** Pairs of edge and cloud outputs, stored by DMD jobs so later jobs reuse them. */
export const dmdPairs = sqliteTable("dmd_pairs", {
  id: integer("id").primaryKey({ autoIncrement: true }),
  /** `log` (from the decision log) or `corpus` (an unlabeled file run through both models). */
  source: text("source", { enum: ["log", "corpus"] }).notNull(),
  /** Decision id or the sequence's id in its file. */
  sourceRef: text("source_ref").notNull(),
  dataset: text("dataset"),
  createdAt: integer("created_at").notNull(),
  edgeModelVersion: text("edge_model_version").notNull(),
  cloudModelVersion: text("cloud_model_version").notNull(),
  edgeProbs: jsonNumbers("edge_probs").notNull(),
  cloudProbs: jsonNumbers("cloud_probs").notNull(),
  embedding: float32Blob("embedding").notNull(),
  features: float32Blob("features").notNull(),
  hardLabel: integer("hard_label").notNull(),
  softLabel: real("soft_label").notNull(),
  propensity: real("propensity").notNull(),
  /** Kept when the source file had labels; DMD never reads it, evaluation may. */
  trueLabel: text("true_label"),
}, (t) => [
  uniqueIndex("dmd_pairs_source_models").on(t.source, t.sourceRef, t.edgeModelVersion, t.cloudModelVersion),
  index("dmd_pairs_created_at").on(t.createdAt),
]);

/** Every switcher version: provenance, metrics, status. */
export const switcherVersions = sqliteTable("switcher_versions", {
  version: text("version").primaryKey(),
  createdAt: integer("created_at").notNull(),
  status: text("status", { enum: ["active", "candidate", "rejected", "retired"] }).notNull(),
  file: text("file").notNull(),
  sha256: text("sha256").notNull(),
  threshold: real("threshold").notNull(),
  features: text("features", { mode: "json" }).$type<string[]>().notNull(),
  provenance: text("provenance", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  metrics: text("metrics", { mode: "json" }).$type<Record<string, unknown>>().notNull(),
  promotedAt: integer("promoted_at"),
  parentVersion: text("parent_version"),
});

/** A decision row. */
export type DecisionRecord = typeof decisions.$inferSelect;
/** A decision row to insert. */
export type NewDecision = typeof decisions.$inferInsert;
/** A DMD pair row. */
export type DmdPair = typeof dmdPairs.$inferSelect;
/** A switcher version row. */
export type SwitcherVersion = typeof switcherVersions.$inferSelect;
