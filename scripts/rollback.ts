/**
 * `deno task rollback`: restore the previous switcher version. The active one is marked rejected, the most recently
 * promoted earlier version that still has its artefact becomes active (in the database, and as the manifest's
 * switcher in --models), and every edge app loads it at its next check (or at once on POST /admin/switcher/reload).
 *
 *   deno task rollback [--models DIR]
 *
 * Exit codes: 0 rolled back; 1 failed; 3 another retrain or rollback holds the lock; 5 no earlier version.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/client.ts";
import { getSwitcherVersion, rollbackSwitcherVersion } from "../db/queries.ts";
import { AppError } from "../errors.ts";
import { acquireJobLockOrExit } from "../hybrid/job_lock.ts";
import type { SwitcherSpec } from "../wasm-models/manifest.ts";
import { activateSwitcher, storeSwitcherArtefact } from "../workers/artefacts.ts";

const { values: args } = parseArgs({ args: Deno.args, options: { models: { type: "string" } } });
const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const lock = await acquireJobLockOrExit(`${modelsDir}/.retrain.lock`);
const database = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });
let code = 0;
try {
  const { from, to } = await rollbackSwitcherVersion(database.db);
  const row = (await getSwitcherVersion(database.db, to))!;
  const { file: _f, sha256: _s, bytes: _b, ...spec } = row.spec as unknown as SwitcherSpec;
  // Restore the file too (it may have been pruned), then make it the manifest's switcher.
  await activateSwitcher(modelsDir, await storeSwitcherArtefact(modelsDir, { bytes: row.artefact!, spec }));
  console.log(`rolled back: ${from ?? "(none)"} -> ${to} (threshold ${row.threshold})`);
} catch (err) {
  console.error((err as Error).message);
  code = err instanceof AppError && err.code === "NOT_FOUND" ? 5 : 1;
} finally {
  database.close();
  await lock.release();
}
Deno.exit(code);
