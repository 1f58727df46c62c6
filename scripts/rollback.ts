/**
 * `deno task rollback`: restore the previous switcher release, through the release registry (loop/registry.ts), as
 * `POST /admin/switcher/rollback` does. The active one is marked rejected, the most recently promoted earlier release
 * that can serve becomes active (in the database, and as the manifest's switcher in --models; from the first start
 * there is one: the release the manifest seeded), and every edge app loads it at its next check (or at once on
 * POST /admin/switcher/reload).
 *
 *   deno task rollback [--models DIR]
 *
 * Exit codes: 0 rolled back; 1 failed; 2 bad flags; 3 another job holds the lock; 5 no earlier release.
 *
 * @module
 */
import { loadConfig } from "../config.ts";
import { openDatabase } from "../db/client.ts";
import { AppError } from "../errors.ts";
import { acquireJobLockOrExit, jobLockPath } from "../loop/job_lock.ts";
import { rollbackRelease } from "../loop/registry.ts";
import { parseFlags } from "./cli.ts";

const args = parseFlags({ models: { type: "string" } }, "usage: deno task rollback [--models DIR]");
const config = loadConfig();
const modelsDir = args.models ?? config.modelsDir;
const lock = await acquireJobLockOrExit(jobLockPath(modelsDir));
const database = await openDatabase(config.databaseUrl, { authToken: config.databaseAuthToken });
let code = 0;
try {
  const { from, to } = await rollbackRelease(database.db, { modelsDir, lock });
  console.log(`rolled back: ${from ?? "(none)"} -> ${to.version} (threshold ${to.threshold})`);
} catch (err) {
  console.error((err as Error).message);
  code = err instanceof AppError && err.code === "NOT_FOUND" ? 5 : 1;
} finally {
  database.close();
  await lock.release();
}
Deno.exit(code);
