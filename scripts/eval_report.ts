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
  /** The groups (subjects) of the pool's rows and of the evaluated rows; disjoint when the split is by subject. */
  groups: { pool: string[]; evaluated: string[] };
  /** What dmd installs: the chosen candidate, or the served switcher kept when the gate refused it. */
  installed: string;
  /** The gate's verdict on the chosen candidate. */
  gate: string;
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
      // Only where every seed has one (a policy without a threshold has none).
      operatingPoint: cs.every((c) => c.operatingPoint)
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

/** Cost per sequence of each model, measured (ms) and from the manifest (FLOPs, when it has them). */
export interface EvalCost {
  edgeMsPerSequence: number;
  cloudMsPerSequence: number;
  edgeFlops: number | null;
  cloudFlops: number | null;
}

const f3 = (v: number) => v.toFixed(3);
/** A fraction as a percentage with one decimal, e.g. `72.5%`: every percentage of the report is written so. */
const pct = (v: number) => `${(v * 100).toFixed(1)}%`;
const points = (v: number) => (v * 100).toFixed(1);
/** A signed figure (`+1.2`, `−0.4`); one that rounds to zero has no sign (`0.0`, not `−0.0`). */
const sign = (v: number, fmt: (v: number) => string) => {
  const text = fmt(Math.abs(v));
  return parseFloat(text) === 0 ? text : `${v >= 0 ? "+" : "−"}${text}`;
};
const row = (cells: string[]) => `| ${cells.join(" | ")} |`;
const rule = (n: number) => row(Array(n).fill("---"));

/** A mean difference with its mean SE: `+0.004 (SE 0.001; z +3.4)`. */
function d(x: { difference: { mean: number }; standardError: number }, fmt: (v: number) => string): string {
  return `${sign(x.difference.mean, fmt)} (SE ${fmt(x.standardError)}; z ${
    x.standardError > 0 ? sign(x.difference.mean / x.standardError, (v) => v.toFixed(1)) : "–"
  })`;
}

/** A mean difference over seeds with its mean paired SE. */
export interface MeanDifference {
  difference: { mean: number; sd: number };
  standardError: number;
}

/** The installed switcher against one rule bar: per seed the bar's rule, and the mean differences to it. */
export interface InstalledBar {
  bar: string;
  rules: string[];
  auc: MeanDifference;
  /** At the first offload rate of the accuracy columns (10%). */
  acc: MeanDifference;
  area: MeanDifference;
}

/**
 * The installed switcher against both bars, each difference a mean over seeds with its mean paired SE: the rule best
 * on the evaluation half (chosen in hindsight, the hardest bar) and the rule the pool's cross-validation ranks best
 * (the bar a deployer without labels has).
 *
 * @param runs one per seed
 * @param rows {@link aggregate} of the runs
 * @returns the two bars (hindsight first), or none when the runs have no installed row
 */
export function installedBars(runs: SeedRun[], rows: ReturnType<typeof aggregate>): InstalledBar[] {
  const installed = rows.find((r) => r.name === "installed by dmd");
  if (!installed) return [];
  const vsPool = (get: (v: PolicyComparison["vsBaseline"]) => { difference: number; standardError: number }) => ({
    difference: spread(runs.map((r) => get(r.installedVsPoolRule).difference)),
    standardError: spread(runs.map((r) => get(r.installedVsPoolRule).standardError)).mean,
  });
  return [
    {
      bar: "the rule best on the evaluation half (in hindsight)",
      rules: runs.map((r) => r.bestRule),
      auc: installed.vsBestRule.disagreementAuc,
      acc: installed.vsBestRule.accuracyAt[0],
      area: installed.vsBestRule.accuracyArea,
    },
    {
      bar: "the rule the pool's cross-validation ranks best",
      rules: runs.map((r) => r.poolRule),
      auc: vsPool((v) => v.disagreementAuc),
      acc: vsPool((v) => v.accuracyAt[0]),
      area: vsPool((v) => v.accuracyArea),
    },
  ];
}

/** A bar is met when the mean difference is at least −0.5 of its SE. */
export const barMet = (x: MeanDifference): boolean => x.difference.mean >= -0.5 * x.standardError;

/**
 * The installed switcher against both rule bars ({@link installedBars}) as a Markdown table. A bar is met when both
 * differences (disagreement AUC and accuracy at the first rate) are at least −0.5 SE.
 *
 * @param runs one per seed
 * @param rows {@link aggregate} of the runs
 * @param rate the first offload rate of the accuracy columns
 * @returns a Markdown heading, note and table
 */
export function barsTable(runs: SeedRun[], rows: ReturnType<typeof aggregate>, rate: number): string[] {
  const bars = installedBars(runs, rows);
  if (bars.length === 0) return [];
  const met = (...xs: MeanDifference[]) => (xs.every(barMet) ? "yes" : "no");
  return [
    "### The installed switcher against the confidence rules",
    "",
    `Installed by dmd per seed: ${runs.map((r) => r.installed).join(", ")}. Each difference is the installed ` +
    "switcher minus the bar's rule of the same seed on the evaluation half, mean over seeds, with the mean paired " +
    "bootstrap SE and z = difference / SE. Met: both differences at least −0.5 SE.",
    "",
    row([
      "bar",
      "rule per seed",
      "Δ disagreement AUC",
      `Δ accuracy @ ${pct(rate)} (points)`,
      "Δ accuracy area (points)",
      "met",
    ]),
    rule(6),
    ...bars.map((b) =>
      row([b.bar, b.rules.join(", "), d(b.auc, f3), d(b.acc, points), d(b.area, points), met(b.auc, b.acc)])
    ),
  ];
}

/**
 * Compute per sequence when each policy offloads just enough to match cloud-only accuracy, against sending every
 * sequence to the cloud: a kept sequence costs the edge model, an offloaded one the edge and the cloud model.
 *
 * @param rows {@link aggregate} of the runs
 * @param cost the models' cost per sequence
 * @returns a Markdown table, one row per policy and one for cloud only
 */
export function parityTable(rows: ReturnType<typeof aggregate>, cost: EvalCost): string[] {
  const { edgeMsPerSequence: edgeMs, cloudMsPerSequence: cloudMs, edgeFlops, cloudFlops } = cost;
  const flops = edgeFlops !== null && cloudFlops !== null;
  const mflops = (v: number) => (v / 1e6).toFixed(1);
  const saved = (hybrid: number, cloud: number) => (cloud > 0 ? sign(1 - hybrid / cloud, pct) : "–");
  const lines = [
    row([
      "policy",
      "offload to reach cloud-only accuracy",
      "ms per sequence",
      "saved vs cloud only (ms)",
      ...(flops ? ["MFLOPs per sequence", "saved vs cloud only (FLOPs)"] : []),
    ]),
    rule(flops ? 6 : 4),
    row([
      "cloud only",
      "100.0%",
      cloudMs.toFixed(2),
      "–",
      ...(flops ? [mflops(cloudFlops!), "–"] : []),
    ]),
  ];
  for (const r of rows) {
    const rate = r.rateToCloudAccuracy.mean;
    const ms = edgeMs + rate * cloudMs;
    const hybridFlops = flops ? edgeFlops! + rate * cloudFlops! : 0;
    lines.push(row([
      r.name,
      pct(rate),
      ms.toFixed(2),
      saved(ms, cloudMs),
      ...(flops ? [mflops(hybridFlops), saved(hybridFlops, cloudFlops!)] : []),
    ]));
  }
  return lines;
}

/**
 * The Markdown report: per-seed choices, the installed switcher against both rule bars ({@link barsTable}), the
 * figure, the accuracy table, the differences to the best rule, the compute at cloud-accuracy parity and the pool's
 * selection per seed.
 *
 * @param runs one per seed
 * @param rows {@link aggregate} of the runs
 * @param options the header, the calibrated offload rate, the offload `rates` of the accuracy columns, the models'
 *   cost and the figure's file name (shown when given)
 * @returns Markdown
 */
export function markdown(
  runs: SeedRun[],
  rows: ReturnType<typeof aggregate>,
  options: { header: string; offloadRate: number; rates: number[]; cost: EvalCost; figure?: string },
): string {
  const { header, offloadRate, cost } = options;
  const lines = [
    header,
    "",
    `Seeds ${runs.map((r) => r.seed).join(", ")}; per seed: ${runs[0].split}; DMD pool ${runs[0].poolRows} pairs ` +
    `(labels ignored), evaluated on ${runs[0].evalRows}. Edge only ${
      pct(spread(runs.map((r) => r.edgeAccuracy)).mean)
    }, cloud only ${pct(spread(runs.map((r) => r.cloudAccuracy)).mean)} (means over seeds).`,
    "",
    row(["seed", "folds on the pool", "installed by dmd", "best rule on the evaluation half", "best rule on the pool"]),
    rule(5),
    ...runs.map((r) => row([String(r.seed), r.folds, r.installed, r.bestRule, r.poolRule])),
    "",
    ...barsTable(runs, rows, options.rates[0]),
    "",
  ];
  if (options.figure) {
    lines.push(
      `![Accuracy against offload to the cloud: the installed switcher, the best confidence rule, the oracle, edge ` +
        `only and cloud only](${options.figure})`,
      "",
    );
  }
  lines.push(
    "### Accuracy against offload",
    "",
    "Mean over seeds (± sample SD over seeds where shown). Accuracy area: the mean accuracy over every offload " +
      "rate. Offload to reach cloud-only accuracy: lower is better. Operating point: the threshold calibrated " +
      `on the DMD pool to ${pct(offloadRate)} offload, applied to the evaluation half.`,
    "",
    row([
      "policy",
      "disagreement AUC",
      "accuracy area",
      ...options.rates.map((rate) => `accuracy @ ${pct(rate)}`),
      "offload to reach cloud-only accuracy",
      "operating point: offload, accuracy",
    ]),
    rule(5 + options.rates.length),
  );
  for (const r of rows) {
    const op = r.operatingPoint
      ? `${pct(r.operatingPoint.offloadRate.mean)}, ${pct(r.operatingPoint.accuracy.mean)}`
      : "–";
    lines.push(row([
      r.name,
      `${f3(r.disagreementAuc.mean)} ± ${f3(r.disagreementAuc.sd)}`,
      pct(r.accuracyArea.mean),
      ...r.accuracyAt.map((a) => `${points(a.mean)} ± ${points(a.sd)}%`),
      pct(r.rateToCloudAccuracy.mean),
      op,
    ]));
  }
  lines.push(
    "",
    "### Differences to the best confidence rule",
    "",
    "Each policy minus the best confidence rule of the same seed, mean over seeds, with the mean paired bootstrap " +
      "standard error and z = difference / SE. Accuracy differences are in percentage points; for the offload to " +
      "reach cloud-only accuracy, negative is better.",
    "",
    row([
      "policy",
      "Δ disagreement AUC",
      "Δ accuracy area (points)",
      `Δ accuracy @ ${pct(options.rates[0])} (points)`,
      "Δ offload to reach cloud-only accuracy (points)",
    ]),
    rule(5),
    ...rows.map((r) =>
      row([
        r.name,
        d(r.vsBestRule.disagreementAuc, f3),
        d(r.vsBestRule.accuracyArea, points),
        d(r.vsBestRule.accuracyAt[0], points),
        d(r.vsBestRule.rateToCloudAccuracy, points),
      ])
    ),
    "",
    "### Compute at cloud-accuracy parity",
    "",
    "Per sequence, when each policy offloads just enough to match cloud-only accuracy (mean over seeds): a kept " +
      "sequence costs the edge model, an offloaded one the edge and the cloud model. Milliseconds measured in this " +
      "run (batches, shared machine); FLOPs from the manifest.",
    "",
    ...parityTable(rows, cost),
    "",
    "### Selection on the pool",
    "",
    "Mean fold AUC for disagreement ± SE, per seed:",
    "",
  );
  for (const r of runs) {
    lines.push(
      `- seed ${r.seed}: ` +
        r.selection.map((s) => `${s.name} ${f3(s.meanAuc)} ± ${f3(s.standardError)}`).join("; ") +
        `. Gate: ${r.gate}.`,
    );
  }
  return lines.join("\n");
}
