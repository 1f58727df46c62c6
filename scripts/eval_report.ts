/**
 * The report of `deno task eval`: each seed's run, aggregated over seeds (mean and spread, mean paired SE), as JSON
 * rows and a Markdown table. Pure: numbers in, text out.
 *
 * @module
 */
import type { PolicyComparison } from "../switcher/comparison.ts";

/** One seed's run: the pool's selection, every policy's comparison on the evaluation rows. */
export interface SeedRun {
  seed: number;
  poolRows: number;
  evalRows: number;
  split: string;
  installed: string;
  folds: string;
  bestRule: string;
  /** The rule the pool's cross-validation ranks best (chosen without the evaluation half). */
  poolRule: string;
  /** The installed switcher minus that rule on the evaluation half, with paired bootstrap SEs. */
  installedVsPoolRule: PolicyComparison["vsBaseline"];
  selection: { name: string; meanAuc: number; standardError: number }[];
  comparisons: PolicyComparison[];
  edgeAccuracy: number;
  cloudAccuracy: number;
}

/**
 * Mean and sample standard deviation.
 *
 * @param values the values
 * @returns mean and SD (0 for one value)
 */
export function spread(values: number[]): { mean: number; sd: number } {
  const mean = values.reduce((a, b) => a + b, 0) / values.length;
  const sd = values.length > 1 ? Math.sqrt(values.reduce((a, b) => a + (b - mean) ** 2, 0) / (values.length - 1)) : 0;
  return { mean, sd };
}

/**
 * Per policy, each figure's mean and spread over seeds, and each difference's mean with its mean SE.
 *
 * @param runs one per seed, the same policies in each
 * @returns one row per policy
 */
export function aggregate(runs: SeedRun[]) {
  const rates = runs[0].comparisons[0].figures.accuracyAt.map((_, r) => r);
  const names = runs[0].comparisons.map((c) => c.name);
  return names.map((name) => {
    const cs = runs.map((r) => r.comparisons.find((c) => c.name === name)!);
    const diff = (get: (c: PolicyComparison) => { difference: number; standardError: number }) => {
      const d = cs.map(get);
      return {
        difference: spread(d.map((x) => x.difference)),
        standardError: spread(d.map((x) => x.standardError)).mean,
      };
    };
    return {
      name,
      disagreementAuc: spread(cs.map((c) => c.figures.disagreementAuc)),
      accuracyArea: spread(cs.map((c) => c.figures.accuracyArea)),
      accuracyAt: rates.map((r) => spread(cs.map((c) => c.figures.accuracyAt[r]))),
      rateToCloudAccuracy: spread(cs.map((c) => c.figures.rateToCloudAccuracy)),
      operatingPoint: cs[0].operatingPoint
        ? {
          offloadRate: spread(cs.map((c) => c.operatingPoint!.offloadRate)),
          accuracy: spread(cs.map((c) => c.operatingPoint!.accuracy)),
        }
        : null,
      vsBestRule: {
        disagreementAuc: diff((c) => c.vsBaseline.disagreementAuc),
        accuracyArea: diff((c) => c.vsBaseline.accuracyArea),
        accuracyAt: rates.map((r) => diff((c) => c.vsBaseline.accuracyAt[r])),
        rateToCloudAccuracy: diff((c) => c.vsBaseline.rateToCloudAccuracy),
      },
    };
  });
}

const f3 = (v: number) => v.toFixed(3);
const pct = (v: number) => (v * 100).toFixed(1);
const sign = (v: number, fmt: (v: number) => string) => `${v >= 0 ? "+" : "−"}${fmt(Math.abs(v))}`;

/**
 * The Markdown report: per-seed choices, the policy table, the pool's selection per seed.
 *
 * @param runs one per seed
 * @param rows {@link aggregate} of the runs
 * @param options the header and the calibrated offload rate
 * @returns Markdown
 */
export function markdown(
  runs: SeedRun[],
  rows: ReturnType<typeof aggregate>,
  options: { header: string; offloadRate: number },
): string {
  const { header, offloadRate } = options;
  const lines = [
    header,
    "",
    `Seeds ${runs.map((r) => r.seed).join(", ")}; per seed: ${runs[0].split}; DMD pool ${runs[0].poolRows} pairs ` +
    `(labels ignored), evaluated on ${runs[0].evalRows}. Edge only ${
      pct(spread(runs.map((r) => r.edgeAccuracy)).mean)
    }%, cloud only ${pct(spread(runs.map((r) => r.cloudAccuracy)).mean)}% (means over seeds).`,
    "",
    "| seed | folds on the pool | installed by dmd | best rule on the evaluation half |",
    "|---|---|---|---|",
    ...runs.map((r) => `| ${r.seed} | ${r.folds} | ${r.installed} | ${r.bestRule} |`),
    "",
    "Mean over seeds (± spread: sample SD over seeds). Δ: minus the best confidence rule of the same seed, mean " +
    "over seeds, with the mean paired bootstrap SE; (z): Δ / SE. Offload to reach cloud accuracy: lower is better. " +
    "Operating point: the threshold calibrated on the DMD pool to " +
    `${pct(offloadRate)}% offload, applied to the evaluation half.`,
    "",
    "| policy | disagreement AUC | Δ AUC (SE) | accuracy area | Δ area (SE) | acc@10% | Δ @10 (SE) | @20% | @30% | " +
    "@50% | offload to cloud acc. | Δ (SE) | operating point: offload, acc. |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
  ];
  const d = (x: { difference: { mean: number }; standardError: number }, fmt: (v: number) => string) =>
    `${sign(x.difference.mean, fmt)} (${fmt(x.standardError)}; z ${
      x.standardError > 0 ? (x.difference.mean / x.standardError).toFixed(1) : "–"
    })`;
  for (const r of rows) {
    const op = r.operatingPoint
      ? `${pct(r.operatingPoint.offloadRate.mean)}%, ${pct(r.operatingPoint.accuracy.mean)}%`
      : "–";
    lines.push(
      `| ${r.name} | ${f3(r.disagreementAuc.mean)} ± ${f3(r.disagreementAuc.sd)} | ${
        d(r.vsBestRule.disagreementAuc, f3)
      } | ${pct(r.accuracyArea.mean)} | ${d(r.vsBestRule.accuracyArea, pct)} | ${pct(r.accuracyAt[0].mean)} ± ${
        pct(r.accuracyAt[0].sd)
      } | ${d(r.vsBestRule.accuracyAt[0], pct)} | ${pct(r.accuracyAt[1].mean)} | ${pct(r.accuracyAt[2].mean)} | ${
        pct(r.accuracyAt[3].mean)
      } | ${pct(r.rateToCloudAccuracy.mean)}% | ${d(r.vsBestRule.rateToCloudAccuracy, pct)} | ${op} |`,
    );
  }
  const vsPool = (get: (v: PolicyComparison["vsBaseline"]) => { difference: number; standardError: number }) => ({
    difference: spread(runs.map((r) => get(r.installedVsPoolRule).difference)),
    standardError: spread(runs.map((r) => get(r.installedVsPoolRule).standardError)).mean,
  });
  lines.push(
    "",
    "Installed by dmd against the best rule chosen on the pool (the bar a deployer without labels has; " +
      `per seed: ${runs.map((r) => r.poolRule).join(", ")}): Δ AUC ${d(vsPool((v) => v.disagreementAuc), f3)}, ` +
      `Δ acc@10% ${d(vsPool((v) => v.accuracyAt[0]), pct)}, Δ accuracy area ${d(vsPool((v) => v.accuracyArea), pct)}.`,
  );
  lines.push("", "Selection on the pool (mean fold AUC ± SE), per seed:", "");
  for (const r of runs) {
    lines.push(
      `- seed ${r.seed}: ` +
        r.selection.map((s) => `${s.name} ${f3(s.meanAuc)} ± ${f3(s.standardError)}`).join("; "),
    );
  }
  return lines.join("\n");
}
