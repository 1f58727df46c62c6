/**
 * Edge apps follow the active switcher: a newly promoted (or rolled back) version is loaded into every worker
 * without a restart and without failing a request in flight.
 *
 * The database is where versions travel: each row of `switcher_versions` carries the ONNX bytes and the manifest
 * entry, so every edge app sharing the database can serve what the retraining job promoted. {@link SwitcherSync}
 * checks the active version every `intervalMs` and on demand (the admin reload call). A version is loaded only if
 * its bytes match its sha256 and it was trained for the serving edge model's features; the pool swaps it in every
 * worker or in none. A version that fails is refused, reported (log line, `status().refused`) and not retried until
 * the active version changes; the old one keeps serving.
 *
 * @module
 */
import type { Db } from "../db/client.ts";
import { activeSwitcherVersion, ensureSwitcherVersion, promoteSwitcherVersion } from "../db/queries.ts";
import type { SwitcherVersion } from "../db/schema.ts";
import type { SwitcherSpec } from "../wasm-models/manifest.ts";
import { sha256Hex } from "../workers/artefacts.ts";
import type { EdgeInference } from "../workers/pool.ts";

/** What one check did. */
export interface SyncResult {
  /** The version serving after the check. */
  version: string | null;
  changed: boolean;
  /** Why the active version was not loaded, when it was not. */
  refused?: { version: string; reason: string };
}

/** The follower. */
export interface SwitcherSync {
  /** The spec serving now (null: the built-in max-probability score). */
  current(): SwitcherSpec | null;
  /** Check the database now and load the active version if it changed. Never throws. */
  check(): Promise<SyncResult>;
  /** State for /admin and /metrics. */
  status(): { version: string | null; lastCheckAt: number | null; refused: { version: string; reason: string } | null };
  /** Stop the periodic check. */
  stop(): void;
}

/** Options of {@link createSwitcherSync}. */
export interface SyncOptions {
  db: Db;
  inference: Pick<EdgeInference, "setSwitcher">;
  /** The switcher loaded at start (the manifest's), and its bytes. */
  initial: { spec: SwitcherSpec; bytes: Uint8Array } | null;
  /** The serving edge model: feature names a switcher must read, and its version. */
  edge: { version: string; features: string[] };
  /** Period of the check; 0 disables it (checks on demand only). */
  intervalMs: number;
  log?: (line: Record<string, unknown>) => void;
}

/**
 * Why a version cannot serve on this edge app, or null when it can.
 *
 * @param row the version's row
 * @param edge the serving edge model
 * @returns the reason or null
 */
export async function unusableReason(
  row: SwitcherVersion,
  edge: { version: string; features: string[] },
): Promise<string | null> {
  if (!row.artefact || !row.spec) return "it was recorded without its artefact";
  const bytes = row.artefact;
  if ((await sha256Hex(bytes)) !== row.sha256) return "its artefact does not match its sha256";
  const spec = row.spec as unknown as SwitcherSpec;
  const features = spec.features ?? [];
  if (features.length !== edge.features.length || features.some((f, i) => f !== edge.features[i])) {
    return `it reads ${features.length} features, the serving edge model gives ${edge.features.length}`;
  }
  const trainedFor = (spec.provenance as Record<string, unknown> | undefined)?.edgeModel;
  if (typeof trainedFor === "string" && trainedFor !== edge.version) {
    return `it was trained for edge model ${trainedFor}, this app serves ${edge.version}`;
  }
  return null;
}

/**
 * Record the manifest's switcher in the database when it is not there, and make it active when no version is:
 * the start of a version history that rollbacks can return to.
 *
 * @param db the database
 * @param switcher the manifest's switcher and its bytes
 * @param nowMs the time
 */
export async function registerSwitcher(
  db: Db,
  switcher: { spec: SwitcherSpec; bytes: Uint8Array },
  nowMs = Date.now(),
): Promise<void> {
  const { spec, bytes } = switcher;
  await ensureSwitcherVersion(db, {
    version: spec.version,
    createdAt: nowMs,
    status: "candidate",
    file: spec.file,
    sha256: spec.sha256,
    threshold: spec.threshold,
    features: spec.features,
    provenance: (spec.provenance ?? {}) as Record<string, unknown>,
    metrics: (spec.metrics ?? {}) as Record<string, unknown>,
    promotedAt: null,
    parentVersion: null,
    artefact: bytes,
    spec: spec as unknown as Record<string, unknown>,
  });
  if (!(await activeSwitcherVersion(db))) await promoteSwitcherVersion(db, spec.version, { nowMs });
}

/**
 * Start following the active switcher.
 *
 * @param options database, pool, initial switcher, edge model, period
 * @returns the follower (call `stop()` at shutdown)
 */
export function createSwitcherSync(options: SyncOptions): SwitcherSync {
  const log = options.log ?? ((line) => console.log(JSON.stringify(line)));
  let current: SwitcherSpec | null = options.initial?.spec ?? null;
  let refused: { version: string; reason: string; sha256: string } | null = null;
  let lastCheckAt: number | null = null;

  async function checkOnce(): Promise<SyncResult> {
    lastCheckAt = Date.now();
    let row: SwitcherVersion | null;
    try {
      row = await activeSwitcherVersion(options.db);
    } catch (err) {
      log({ level: "warn", msg: "cannot read the active switcher", error: (err as Error).message });
      return { version: current?.version ?? null, changed: false };
    }
    if (!row || row.version === current?.version) return { version: current?.version ?? null, changed: false };
    if (refused && refused.version === row.version && refused.sha256 === row.sha256) {
      return { version: current?.version ?? null, changed: false, refused };
    }
    let reason = await unusableReason(row, options.edge);
    if (!reason) {
      const spec = row.spec as unknown as SwitcherSpec;
      try {
        await options.inference.setSwitcher({ spec, bytes: row.artefact! });
        const from = current?.version ?? null;
        current = spec;
        refused = null;
        log({ level: "info", msg: "switcher loaded", from, to: spec.version });
        return { version: spec.version, changed: true };
      } catch (err) {
        reason = `the workers could not load it: ${(err as Error).message}`;
      }
    }
    refused = { version: row.version, reason, sha256: row.sha256 };
    log({ level: "error", msg: "switcher refused; the old one keeps serving", version: row.version, reason });
    return { version: current?.version ?? null, changed: false, refused: { version: row.version, reason } };
  }

  // Checks run one at a time, in order; the periodic one is skipped while another is pending.
  let queue: Promise<unknown> = Promise.resolve();
  let pending = 0;
  const enqueue = (): Promise<SyncResult> => {
    pending++;
    const next = queue.then(checkOnce).finally(() => pending--);
    queue = next.catch(() => {});
    return next;
  };
  const timer = options.intervalMs > 0
    ? setInterval(() => {
      if (pending === 0) void enqueue();
    }, options.intervalMs)
    : null;

  return {
    current: () => current,
    check: enqueue,
    status: () => ({
      version: current?.version ?? null,
      lastCheckAt,
      refused: refused ? { version: refused.version, reason: refused.reason } : null,
    }),
    stop() {
      if (timer !== null) clearInterval(timer);
    },
  };
}
