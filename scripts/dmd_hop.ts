/**
 * `deno task dmd --hop N --from-log` for a hop past the first (loop/hop_dmd.ts): hop N's switcher chosen among the
 * confidence rules, their rank average and an MLP of the confidence features, on the logged pairs of tiers N and
 * N + 1, calibrated, gated against the hop's active release,
 * and published through the registry (active when the gate passes or with --force; recorded as rejected
 * otherwise). Returns the exit code: 0 installed (or dry run), 4 the gate refused.
 *
 * @module
 */
import type { Db } from "../db/client.ts";
import { listDecisionTiers } from "../db/queries.ts";
import { hopDmd, hopPairs } from "../loop/hop_dmd.ts";
import { activeRelease, publishRelease } from "../loop/registry.ts";

/** What {@link runHopDmd} needs from the command line. */
export interface HopDmdArgs {
  db: Db;
  hop: number;
  modelsDir: string;
  sinceMs: number | undefined;
  version: string;
  target: "hard" | "soft";
  calibrate: { offloadRate: number } | { agreement: number };
  folds: number;
  tolerance: number;
  seed: number;
  force: boolean;
  dryRun: boolean;
  json: boolean;
}

/**
 * Run DMD for one hop past the first.
 *
 * @param args the parsed flags and the open database
 * @returns the exit code
 */
export async function runHopDmd(args: HopDmdArgs): Promise<number> {
  const rows = await listDecisionTiers(args.db, { since: args.sinceMs });
  const pool = hopPairs(rows, args.hop);
  console.error(
    `DMD hop ${args.hop}: ${pool.pairs.length} logged pairs of tiers ${args.hop} and ${args.hop + 1} ` +
      `(${pool.skipped} without a usable answer on both)`,
  );
  const active = await activeRelease(args.db, { role: "switcher", hop: args.hop });
  const { selection, verdict, release } = await hopDmd(pool, {
    hop: args.hop,
    active,
    version: args.version,
    target: args.target,
    calibrate: args.calibrate,
    folds: args.folds,
    tolerance: args.tolerance,
    seed: args.seed,
    provenance: {
      data: "decision log (decision_tiers)",
      pairs: pool.pairs.length,
      skipped: pool.skipped,
      target: args.target,
      seed: args.seed,
      command: `deno task dmd ${Deno.args.join(" ")}`,
    },
  });
  const install = !args.dryRun && (verdict.promote || args.force);
  if (!args.dryRun) {
    await publishRelease(args.db, { ...release, status: install ? "candidate" : "rejected" }, {
      modelsDir: args.modelsDir,
      activate: install,
    });
  }
  const report = {
    version: release.version,
    hop: args.hop,
    installed: install,
    candidate: selection.chosen.candidate.name,
    threshold: release.threshold,
    calibration: release.calibration,
    pairs: pool.pairs.length,
    gate: verdict,
    forced: install && !verdict.promote,
  };
  if (args.json) console.log(JSON.stringify(report, null, 2));
  else {
    const where = install ? "installed" : args.dryRun ? "(dry run)" : "NOT installed: the gate refused";
    console.log(`\nDMD hop ${args.hop} switcher ${release.version}: ${report.candidate} ${where}`);
    console.log(`threshold ${release.threshold.toFixed(4)} for ${JSON.stringify(args.calibrate)}`);
    console.log(`\n| candidate | mean fold AUC for disagreement | SE |\n|---|---|---|`);
    for (const t of selection.trials) {
      console.log(`| ${t.candidate.name} | ${t.mean.toFixed(4)} | ${t.standardError.toFixed(4)} |`);
    }
    console.log(`\ngate: ${verdict.promote ? "passes" : "refuses"} — ${verdict.reason}`);
  }
  return !install && !args.dryRun ? 4 : 0;
}
