/**
 * Edge apps follow the release registry (loop/registry.ts): a newly activated (or rolled back) switcher release is
 * loaded into every worker without a restart and without failing a request in flight.
 *
 * The database is where releases travel: each row carries the artefact and the spec, so every edge app sharing the
 * database can serve what a job activated. {@link ReleaseFollower} checks the active release every `intervalMs` and
 * on demand (the admin reload call). A release is loaded only if it decodes (release/decode.ts), its bytes match
 * its sha256 and it was made for the serving edge model's features; the pool swaps it in every worker or in none.
 * A release that fails is refused, reported (log line, `status().refused`) and not retried until the active release
 * changes; the old one keeps serving. The follower owns nothing but its view: what scored a request is named by the
 * request's own edge result.
 *
 * @module
 */
import type { Db } from "../db/client.ts";
import { activeSwitcherVersion } from "../db/queries.ts";
import type { SwitcherVersion } from "../db/schema.ts";
import { decodeSwitcherRow } from "../release/decode.ts";
import type { SwitcherRelease } from "../release/release.ts";
import { sha256Hex } from "../workers/artefacts.ts";
import type { EdgeInference } from "../workers/pool.ts";

/** What one check did. */
export interface SyncResult {
  /** The release serving after the check. */
  version: string;
  changed: boolean;
  /** Why the active release was not loaded, when it was not. */
  refused?: { version: string; reason: string };
}

/** The follower. */
export interface ReleaseFollower {
  /** The switcher release the workers were last given. */
  current(): SwitcherRelease;
  /** Check the database now and load the active release if it changed. Never throws. */
  check(): Promise<SyncResult>;
  /** State for /admin and /metrics. */
  status(): { version: string; lastCheckAt: number | null; refused: { version: string; reason: string } | null };
  /** Stop the periodic check. */
  stop(): void;
}

/** Options of {@link createReleaseFollower}. */
export interface FollowerOptions {
  db: Db;
  inference: Pick<EdgeInference, "setSwitcher">;
  /** The switcher release the workers started with. */
  initial: SwitcherRelease;
  /** The serving edge model: feature names a switcher must read, and its version. */
  edge: { version: string; features: string[] };
  /** Period of the check; 0 disables it (checks on demand only). */
  intervalMs: number;
  log?: (line: Record<string, unknown>) => void;
}

/**
 * Why a stored release cannot serve on this edge app (null when it can), and the release when it decodes.
 *
 * @param row the release's row
 * @param edge the serving edge model
 * @returns the reason, or the decoded release
 */
export async function usableRelease(
  row: SwitcherVersion,
  edge: { version: string; features: string[] },
): Promise<{ release: SwitcherRelease } | { reason: string }> {
  let release: SwitcherRelease;
  try {
    release = decodeSwitcherRow(row);
  } catch (err) {
    return { reason: (err as Error).message };
  }
  if (release.scorer.kind === "onnx") {
    if (!release.artefact) return { reason: "it was recorded without its artefact" };
    if ((await sha256Hex(release.artefact)) !== release.sha256) {
      return { reason: "its artefact does not match its sha256" };
    }
    const features = release.features;
    if (features.length !== edge.features.length || features.some((f, i) => f !== edge.features[i])) {
      return { reason: `it reads ${features.length} features, the serving edge model gives ${edge.features.length}` };
    }
  }
  const trainedFor = release.provenance.edgeModel;
  if (typeof trainedFor === "string" && trainedFor !== edge.version) {
    return { reason: `it was trained for edge model ${trainedFor}, this app serves ${edge.version}` };
  }
  return { release };
}

/**
 * Start following the active switcher release.
 *
 * @param options database, pool, initial release, edge model, period
 * @returns the follower (call `stop()` at shutdown)
 */
export function createReleaseFollower(options: FollowerOptions): ReleaseFollower {
  const log = options.log ?? ((line) => console.log(JSON.stringify(line)));
  let current: SwitcherRelease = options.initial;
  let refused: { version: string; reason: string; sha256: string } | null = null;
  let lastCheckAt: number | null = null;

  async function checkOnce(): Promise<SyncResult> {
    lastCheckAt = Date.now();
    const unchanged = { version: current.version, changed: false };
    let row: SwitcherVersion | null;
    try {
      row = await activeSwitcherVersion(options.db);
    } catch (err) {
      log({ level: "warn", msg: "cannot read the active switcher", error: (err as Error).message });
      return unchanged;
    }
    if (!row || row.version === current.version) return unchanged;
    if (refused && refused.version === row.version && refused.sha256 === row.sha256) {
      return { ...unchanged, refused: { version: refused.version, reason: refused.reason } };
    }
    const usable = await usableRelease(row, options.edge);
    let reason: string;
    if ("release" in usable) {
      try {
        await options.inference.setSwitcher(usable.release);
        const from = current.version;
        current = usable.release;
        refused = null;
        log({ level: "info", msg: "switcher loaded", from, to: current.version, threshold: current.threshold });
        return { version: current.version, changed: true };
      } catch (err) {
        reason = `the workers could not load it: ${(err as Error).message}`;
      }
    } else reason = usable.reason;
    refused = { version: row.version, reason, sha256: row.sha256 };
    log({ level: "error", msg: "switcher refused; the old one keeps serving", version: row.version, reason });
    return { ...unchanged, refused: { version: row.version, reason } };
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
      version: current.version,
      lastCheckAt,
      refused: refused ? { version: refused.version, reason: refused.reason } : null,
    }),
    stop() {
      if (timer !== null) clearInterval(timer);
    },
  };
}
