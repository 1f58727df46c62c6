/**
 * The release registry: the one owner of which release serves. Everything that changes it — DMD
 * (`deno task dmd`), the retraining job (loop/retrain.ts), the admin API (`POST /admin/switcher/rollback`) and
 * `deno task rollback` — calls the functions here, and each change runs under the models folder's job lock
 * (loop/job_lock.ts), so two writers never interleave. Seeding ({@link seedRegistry}) is the one write without the
 * lock: it only records a release that is missing and activates it when none is active, so edge apps may do it at
 * start (several at once agree, and an edge app need not be able to write the models folder).
 *
 * The database is the truth (`switcher_versions`, one row per release). The manifest (`wasm-models/manifest.json`)
 * seeds it: before any change, the manifest's switcher (or, when it names none, the built-in `max_prob` rule) is
 * recorded and made active if no switcher is, so the switcher shipped with the model set is a release from the
 * first start and a rollback always has somewhere to go. Every activation (publish with `activate`, activate,
 * rollback) also rewrites the manifest's switcher entry (and restores its file), so that the model set on disk
 * — what `deno task eval` reads and what seeds a fresh database — says what the database says. Edge apps follow the
 * database (serve/release_follower.ts).
 *
 * Publishing a release, for a job that made one:
 *
 * ```ts
 * import { publishRelease } from "../loop/registry.ts";
 * import { ruleRelease } from "../release/release.ts";
 * // A confidence rule chosen by selection (no ONNX): serves as soon as edge apps reload.
 * await publishRelease(db, ruleRelease({ version: "switcher-margin-20261201", rule: "margin", threshold: 0.42,
 *   calibration: { offloadRate: 0.2 }, provenance: { data: "dmd pool", selection: "grouped 5-fold CV" } }),
 *   { modelsDir: "wasm-models", activate: true });
 * ```
 *
 * @module
 */
import type { Db } from "../db/client.ts";
import {
  activeSwitcherVersion,
  ensureSwitcherVersion,
  getSwitcherVersion,
  insertSwitcherVersion,
  listSwitcherVersions,
  promoteSwitcherVersion,
  type ReleaseScope,
  rollbackSwitcherVersion,
  setSwitcherStatus,
  SWITCHER_SCOPE,
} from "../db/queries.ts";
import type { SwitcherStatus } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { decodeSwitcherRow, encodeSwitcherRow } from "../release/decode.ts";
import {
  builtinSwitcherRelease,
  manifestEntryOf,
  ruleRelease,
  type SwitcherRelease,
  switcherReleaseFromSpec,
} from "../release/release.ts";
import type { SwitcherSpec } from "../wasm-models/manifest.ts";
import { exportFitted, type FittedSwitcher } from "../switcher/fit.ts";
import { readArtefact, readManifest, sha256Hex } from "../workers/artefacts.ts";
import { acquireJobLock, type JobLock, jobLockPath, LockBusyError } from "./job_lock.ts";

export type { ReleaseScope } from "../db/queries.ts";

/** Where the registry's model set lives, and the lock a caller may already hold. */
export interface RegistryOptions {
  /** The models folder: its manifest seeds the registry and follows every activation; it holds the job lock. */
  modelsDir: string;
  /** The job lock, when the caller already holds it for a longer job; otherwise each call takes it. */
  lock?: JobLock;
  /** Unix ms. @default Date.now() */
  nowMs?: number;
}

/** A release as listed: everything but its bytes and spec. */
export type ReleaseSummary = Omit<ReturnType<typeof encodeSwitcherRow>, "artefact" | "spec">;

/**
 * Run `work` under the models folder's job lock (the caller's, or one taken here).
 *
 * @throws AppError CONFLICT when another job holds it
 */
async function underLock<T>(options: RegistryOptions, work: () => Promise<T>): Promise<T> {
  if (options.lock) return await work();
  let lock: JobLock;
  try {
    lock = await acquireJobLock(jobLockPath(options.modelsDir));
  } catch (err) {
    if (err instanceof LockBusyError) throw new AppError("CONFLICT", err.message, { cause: err });
    throw err;
  }
  try {
    return await work();
  } finally {
    await lock.release();
  }
}

/** The manifest's switcher as a release, or the built-in rule when it names none. */
async function manifestRelease(modelsDir: string, nowMs: number): Promise<SwitcherRelease> {
  const manifest = await readManifest(modelsDir);
  const spec = manifest.switcher;
  if (!spec) return builtinSwitcherRelease(nowMs);
  const bytes = spec.rule ? null : (await readArtefact<SwitcherSpec>(modelsDir, spec)).bytes;
  return switcherReleaseFromSpec(spec, bytes, { nowMs });
}

/**
 * Record a switcher release unless one of its version exists, and make it active when no switcher is. Edge apps
 * call it at start (several starting together agree: the first record wins); every change below calls it first.
 *
 * @param db the database
 * @param release the release to seed with (the manifest's, see {@link seedFromManifest})
 * @param options `nowMs`
 * @returns the active switcher release after seeding
 */
export async function seedRegistry(
  db: Db,
  release: SwitcherRelease,
  options: { nowMs?: number } = {},
): Promise<SwitcherRelease> {
  const scope = { role: "switcher" as const, hop: release.hop };
  await ensureSwitcherVersion(db, encodeSwitcherRow({ ...release, status: "candidate", promotedAt: null }));
  if (!(await activeSwitcherVersion(db, scope))) {
    await promoteSwitcherVersion(db, release.version, { nowMs: options.nowMs ?? Date.now() });
  }
  return (await activeRelease(db, scope))!;
}

/**
 * {@link seedRegistry} with the manifest's switcher of a models folder (the built-in rule when it names none).
 *
 * @param db the database
 * @param options the models folder and the time
 * @returns the active switcher release after seeding
 */
export async function seedFromManifest(db: Db, options: RegistryOptions): Promise<SwitcherRelease> {
  const nowMs = options.nowMs ?? Date.now();
  return await seedRegistry(db, await manifestRelease(options.modelsDir, nowMs), { nowMs });
}

/**
 * Write an ONNX release's file beside the manifest (unless it is there with the right digest) and make the release
 * the manifest's switcher. Both files are replaced atomically (temporary file, then rename).
 */
async function writeManifestSwitcher(modelsDir: string, release: SwitcherRelease): Promise<void> {
  // The manifest names hop 0's switcher only; the switchers of later hops live in the database alone.
  if (release.hop !== 0) return;
  let entry = manifestEntryOf(release);
  if (release.scorer.kind === "onnx") {
    if (!release.artefact) throw new AppError("MODEL_NOT_READY", `Cannot serve ${release.version}: no artefact`);
    const file = entry.file || fileNameOf(release.version);
    const path = `${modelsDir}/${file}`;
    const present = await Deno.readFile(path).then((b) => sha256Hex(b), () => null);
    if (present !== release.sha256) {
      const tmp = `${path}.${crypto.randomUUID()}.tmp`;
      await Deno.writeFile(tmp, release.artefact);
      await Deno.rename(tmp, path);
    }
    entry = { ...entry, file, sha256: release.sha256!, bytes: release.artefact.length };
  }
  const manifest = await readManifest(modelsDir);
  const tmp = `${modelsDir}/manifest.json.${crypto.randomUUID()}.tmp`;
  await Deno.writeTextFile(tmp, JSON.stringify({ ...manifest, switcher: entry }, null, 2) + "\n");
  await Deno.rename(tmp, `${modelsDir}/manifest.json`);
}

function fileNameOf(version: string): string {
  return version.startsWith("switcher") ? `${version}.onnx` : `switcher-${version}.onnx`;
}

/**
 * Complete an ONNX switcher's spec from its bytes: file name, sha256 and size.
 *
 * @param bytes the ONNX model
 * @param spec the manifest entry without `file`, `sha256` and `bytes`
 * @returns the release (status `candidate`)
 * @throws AppError INVALID_INPUT when the version is not a safe file name
 */
export async function onnxRelease(
  bytes: Uint8Array,
  spec: Omit<SwitcherSpec, "file" | "sha256" | "bytes">,
  options: { nowMs?: number; parentVersion?: string | null } = {},
): Promise<SwitcherRelease> {
  checkVersionName(spec.version);
  const full: SwitcherSpec = {
    ...spec,
    file: fileNameOf(spec.version),
    sha256: await sha256Hex(bytes),
    bytes: bytes.length,
  };
  return switcherReleaseFromSpec(full, bytes, options);
}

/**
 * The release of a fitted switcher: a rule release, or its network (an MLP, the rules' rank average) exported to ONNX.
 *
 * @param fitted what selection fitted (switcher/fit.ts)
 * @param options the version, the feature names it reads in order, its hop (default 0), provenance and metrics
 * @returns the release (status `candidate`)
 */
export async function fittedRelease(
  fitted: FittedSwitcher,
  options: {
    version: string;
    features: string[];
    hop?: number;
    provenance: Record<string, unknown>;
    metrics: Record<string, unknown>;
  },
): Promise<SwitcherRelease> {
  const { version, features, provenance, metrics } = options;
  const hop = options.hop ?? 0;
  if (fitted.candidate.kind === "rule") {
    return ruleRelease({
      version,
      rule: fitted.candidate.rule,
      threshold: fitted.threshold,
      hop,
      calibration: fitted.calibration,
      provenance,
      metrics,
    });
  }
  return await onnxRelease(exportFitted(fitted, { version, features }), {
    version,
    ...(hop !== 0 ? { hop } : {}),
    inputs: [{ name: "features", shape: [-1, features.length], dtype: "float32" }],
    outputs: [{ name: "score", shape: [-1, 1], dtype: "float32" }],
    features,
    threshold: fitted.threshold,
    calibration: fitted.calibration,
    params: fitted.model!.layers.reduce((a, l) => a + l.weight.length + l.bias.length, 0),
    flops: fitted.model!.layers.reduce((a, l) => a + 2 * l.weight.length, 0),
    provenance,
    metrics,
  });
}

function checkVersionName(version: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/.test(version)) {
    throw new AppError("INVALID_INPUT", `Cannot publish release "${version}": a version is letters, digits, . _ -`);
  }
}

/**
 * Publish a release: record it (status `candidate`, or `rejected` when a gate refused it) and, with `activate`,
 * make it the active switcher of its hop (the previous one is retired) and the manifest's.
 *
 * @param db the database
 * @param release the release (see release/release.ts: `ruleRelease`, or {@link onnxRelease} for a model)
 * @param options the models folder, `activate`, and the lock if the caller holds it
 * @returns the release as stored
 * @throws AppError INVALID_INPUT when the version exists or is not a safe name; CONFLICT when the lock is busy
 */
export async function publishRelease(
  db: Db,
  release: SwitcherRelease,
  options: RegistryOptions & { activate?: boolean },
): Promise<SwitcherRelease> {
  checkVersionName(release.version);
  if (options.activate && release.status === "rejected") {
    throw new AppError("INVALID_INPUT", `Cannot activate ${release.version}: it was rejected`);
  }
  return await underLock(options, async () => {
    const nowMs = options.nowMs ?? Date.now();
    const active = await seedFromManifest(db, options);
    const stored: SwitcherRelease = {
      ...release,
      status: release.status === "rejected" ? "rejected" : "candidate",
      promotedAt: null,
      parentVersion: release.parentVersion ?? (active.hop === release.hop ? active.version : null),
    };
    await insertSwitcherVersion(db, encodeSwitcherRow(stored));
    if (!options.activate) return stored;
    await promoteSwitcherVersion(db, release.version, { nowMs });
    const now = (await getRelease(db, release.version))!;
    await writeManifestSwitcher(options.modelsDir, now);
    return now;
  });
}

/**
 * Make a recorded release the active switcher of its hop, and the manifest's.
 *
 * @param db the database
 * @param version the release
 * @param options the models folder and the lock if the caller holds it
 * @returns the release active before (null when none) and the one active now
 * @throws AppError NOT_FOUND when there is no such release, INVALID_INPUT when it was rejected
 */
export async function activateRelease(
  db: Db,
  version: string,
  options: RegistryOptions,
): Promise<{ from: string | null; to: SwitcherRelease }> {
  return await underLock(options, async () => {
    await seedFromManifest(db, options);
    const from = await promoteSwitcherVersion(db, version, { nowMs: options.nowMs ?? Date.now() });
    const to = (await getRelease(db, version))!;
    await writeManifestSwitcher(options.modelsDir, to);
    return { from, to };
  });
}

/**
 * Mark a release rejected: it is never served or rolled back to again. The active release cannot be rejected
 * this way (roll back instead).
 *
 * @param db the database
 * @param version the release
 * @param options the models folder and the lock if the caller holds it
 * @throws AppError NOT_FOUND when there is no such release, INVALID_INPUT when it is active
 */
export async function rejectRelease(db: Db, version: string, options: RegistryOptions): Promise<void> {
  await underLock(options, async () => {
    const row = await getSwitcherVersion(db, version);
    if (row?.status === "active") {
      throw new AppError("INVALID_INPUT", `Cannot reject ${version}: it is active; roll back instead`);
    }
    await setSwitcherStatus(db, version, { status: "rejected" });
  });
}

/**
 * Roll back: the active release of the scope is marked rejected and the most recently promoted earlier one that
 * can serve becomes active, in the database and in the manifest. From the first start there is one: the seeded
 * release.
 *
 * @param db the database
 * @param options the models folder, the lock if the caller holds it, the scope (default: the hop-0 switcher)
 * @returns the release rolled back from (null when none was active) and the one active now
 * @throws AppError NOT_FOUND when there is no earlier release to restore
 */
export async function rollbackRelease(
  db: Db,
  options: RegistryOptions & { scope?: ReleaseScope },
): Promise<{ from: string | null; to: SwitcherRelease }> {
  return await underLock(options, async () => {
    await seedFromManifest(db, options);
    const { from, to } = await rollbackSwitcherVersion(db, {
      nowMs: options.nowMs ?? Date.now(),
      scope: options.scope ?? SWITCHER_SCOPE,
    });
    const release = (await getRelease(db, to))!;
    await writeManifestSwitcher(options.modelsDir, release);
    return { from, to: release };
  });
}

/**
 * One release, decoded and checked.
 *
 * @param db the database
 * @param version the release
 * @returns the release, or null when there is none of that version
 * @throws AppError MODEL_NOT_READY when its stored spec is not a valid release
 */
export async function getRelease(db: Db, version: string): Promise<SwitcherRelease | null> {
  const row = await getSwitcherVersion(db, version);
  return row ? decodeSwitcherRow(row) : null;
}

/**
 * The active release of a scope, decoded and checked.
 *
 * @param db the database
 * @param scope role and hop (default: the hop-0 switcher)
 * @returns the release, or null when none is active
 * @throws AppError MODEL_NOT_READY when its stored spec is not a valid release
 */
export async function activeRelease(db: Db, scope: ReleaseScope = SWITCHER_SCOPE): Promise<SwitcherRelease | null> {
  const row = await activeSwitcherVersion(db, scope);
  return row ? decodeSwitcherRow(row) : null;
}

/**
 * Releases, newest first, without their bytes and spec.
 *
 * @param db the database
 * @param options `status` and `scope` to narrow the list
 * @returns the releases
 */
export async function listReleases(
  db: Db,
  options: { status?: SwitcherStatus; scope?: ReleaseScope } = {},
): Promise<ReleaseSummary[]> {
  const rows = await listSwitcherVersions(db, options);
  return rows.map(({ artefact: _bytes, spec: _spec, ...row }) => row);
}
