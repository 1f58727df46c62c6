/**
 * The figure and the Markdown of `deno task eval`, checked for structure, not pixels: the policies a reader compares
 * and the reference lines are all there, each named in full (nothing cut), in distinct styles, with units in %, a
 * title saying what is plotted and a subtitle naming the data; the report's percentages are written one way and the
 * compute at parity is a table.
 */
import assert from "node:assert/strict";
import { choiceLabel, type EvalSummary, figureData, meanCurvePct, renderFigure } from "../scripts/eval_figure.ts";
import { aggregate, barsTable, markdown, type SeedRun } from "../scripts/eval_report.ts";
import type { PolicyComparison } from "../switcher/comparison.ts";

const grid = (f: (rate: number) => number) =>
  Array.from({ length: 101 }, (_, i) => ({ rate: i / 100, accuracy: f(i / 100) }));
const run = (seed: number, installed: string) => ({
  seed,
  evalRows: 1500,
  installed,
  bestRule: "rule:margin",
  edgeAccuracy: 0.677,
  cloudAccuracy: 0.69,
});

/** An evaluation of three seeds whose dmd choices differ, with a long dataset name. */
const SUMMARY: EvalSummary = {
  data: { file: "datasets/mocap/test.jsonl.gz", description: "motion capture, new cameras and time spans" },
  protocol: "deploy",
  dmdDataset: null,
  models: { edge: "edge-coco17-20261124-s7", cloud: "cloud-coco17-tcn-20261124-s7" },
  runs: [run(1, "mlp:all"), run(2, "mlp:confidence+quality+pca"), run(3, "mlp:all")],
  curves: {
    installed: meanCurvePct([grid((r) => 0.677 + 0.05 * r * (1 - r)), grid((r) => 0.677 + 0.04 * r * (1 - r))]),
    rule: meanCurvePct([grid((r) => 0.677 + 0.03 * r * (1 - r))]),
    oracle: meanCurvePct([grid((r) => Math.min(0.742, 0.677 + r))]),
  },
};

/** The text of every `<text>` element of an SVG document, one entry per line (`<tspan>`). */
function texts(svg: string): string[] {
  const unescape = (t: string) =>
    t.replaceAll("&amp;", "&").replaceAll("&lt;", "<").replaceAll("&gt;", ">").replaceAll("&#39;", "'");
  return [...svg.matchAll(/<text[^>]*>(.*?)<\/text>/g)].flatMap((m) =>
    m[1].includes("<tspan")
      ? [...m[1].matchAll(/<tspan[^>]*>([^<]*)<\/tspan>/g)].map((t) => unescape(t[1]))
      : [unescape(m[1])]
  );
}

Deno.test("eval figure: the switcher dmd installs, the best rule, the oracle, edge and cloud only, each named in full", async () => {
  const data = figureData(SUMMARY);
  assert.deepEqual(data.series.map((s) => s.label), [
    "switcher installed by dmd: mlp:all (seeds 1, 3), mlp:confidence+quality+pca (seed 2)",
    "best confidence rule: rule:margin",
    "oracle: offloads first where only the cloud is right",
  ]);
  const svg = await renderFigure(data);
  const shown = texts(svg);
  assert.ok(!svg.includes("…") && !svg.includes("&#8230;"), "no text is cut with an ellipsis");
  for (
    const label of [
      ...data.series.map((s) => s.label),
      "cloud only: 69.0% (every request offloaded)",
      "edge only: 67.7% (nothing offloaded)",
      "Accuracy against offload to the cloud",
      "Data: test.jsonl.gz, 1,500 labelled sequences evaluated per seed",
      "Motion capture, new cameras and time spans",
      "DMD learned from the other half, labels unused; mean of seeds 1, 2, 3",
      "Models: edge-coco17-20261124-s7 (edge), cloud-coco17-tcn-20261124-s7 (cloud)",
      "Offloaded to the cloud (% of requests)",
      "Accuracy (%)",
    ]
  ) assert.ok(shown.includes(label), `the figure shows "${label}" in full`);
  // Units: both axes in %, ticks from 0 to 100 on x, whole percentages on y (not fractions of 1).
  const ticks = shown.filter((t) => /^\d+(\.\d+)?$/.test(t)).map(Number);
  assert.ok(ticks.includes(0) && ticks.includes(100));
  assert.ok(ticks.every((t) => t >= 0 && t <= 100 && Number.isInteger(t)), `ticks ${ticks}`);
  // Five lines, each in its own colour and dash pattern; three kinds of marker on the policies' curves.
  const lines = [
    ...svg.matchAll(/aria-roledescription="line mark"[^>]*stroke="([^"]+)"[^>]*?(?:stroke-dasharray="([^"]+)")?\/>/g),
  ]
    .map((m) => `${m[1]} ${m[2] ?? "solid"}`);
  assert.equal(lines.length, 5);
  assert.equal(new Set(lines.map((l) => l.split(" ")[0])).size, 5, `colours ${lines}`);
  assert.equal(new Set(lines.map((l) => l.split(" ")[1])).size, 5, `dashes ${lines}`);
  const markers = new Set([...svg.matchAll(/aria-roledescription="point"[^>]*d="([^"]+)"/g)].map((m) => m[1]));
  assert.equal(markers.size, 3);
  // The canvas holds every text: the width is what the text needs, not a blank strip from a rough estimate.
  const width = Number(svg.match(/<svg[^>]*width="(\d+)"/)![1]);
  assert.ok(width >= 420 && width < 800, `figure ${width} px wide`);
});

Deno.test("choiceLabel() names one choice plainly and several with their seeds", () => {
  assert.equal(choiceLabel([{ seed: 1, name: "mlp:all" }, { seed: 2, name: "mlp:all" }]), "mlp:all");
  assert.equal(choiceLabel([{ seed: 1, name: "a" }, { seed: 2, name: "b" }]), "a (seed 1), b (seed 2)");
});

/** A seed's comparison of one policy with fixed figures. */
function comparison(
  name: string,
  accuracy: number,
  reach: number,
  d = { difference: 0.01, standardError: 0.005 },
): PolicyComparison {
  return {
    name,
    figures: {
      disagreementAuc: 0.8,
      accuracyArea: accuracy,
      accuracyAt: [accuracy, accuracy],
      rateToCloudAccuracy: reach,
    },
    operatingPoint: { threshold: 0.5, offloadRate: 0.2, accuracy },
    vsBaseline: { disagreementAuc: d, accuracyArea: d, accuracyAt: [d, d], rateToCloudAccuracy: d },
  };
}

/** A seed's run with fixed figures, some replaced. */
function seedRun(seed: number, over: Partial<SeedRun>): SeedRun {
  return {
    seed,
    poolRows: 10,
    evalRows: 10,
    split: "a random half",
    groups: { pool: [""], evaluated: [""] },
    installed: "mlp:all",
    gate: "not worse on held-out folds",
    folds: "5 by random",
    bestRule: "rule:margin",
    poolRule: "rule:max_prob",
    installedVsPoolRule: comparison("installed by dmd", 0.72, 0.1).vsBaseline,
    selection: [{ name: "rule:margin", meanAuc: 0.8, standardError: 0.01 }],
    comparisons: [comparison("rule:margin", 0.7, 0.3), comparison("installed by dmd", 0.72, 0.123456789)],
    edgeAccuracy: 0.65,
    cloudAccuracy: 0.7,
    ...over,
  };
}

Deno.test("eval Markdown: percentages with one decimal, the figure, and the compute at parity as a table", () => {
  const runs: SeedRun[] = [1, 2].map((seed) => seedRun(seed, {}));
  const md = markdown(runs, aggregate(runs), {
    header: "## test",
    offloadRate: 0.2,
    rates: [0.1, 0.2],
    cost: { edgeMsPerSequence: 2, cloudMsPerSequence: 8, edgeFlops: 4e6, cloudFlops: 40e6 },
    figure: "curves.svg",
  });
  assert.ok(md.includes("](curves.svg)"));
  assert.ok(!/[{}]/.test(md), "no JSON in the report");
  for (const p of md.matchAll(/(\d+(?:\.\d+)?)%/g)) assert.match(p[1], /^\d+\.\d$/, `"${p[0]}" has one decimal`);
  const parity = md.slice(md.indexOf("### Compute at cloud-accuracy parity"));
  const table = parity.split("\n").filter((l) => l.startsWith("|"));
  assert.deepEqual(table.slice(0, 2), [
    "| policy | offload to reach cloud-only accuracy | ms per sequence | saved vs cloud only (ms) | MFLOPs per sequence | " +
    "saved vs cloud only (FLOPs) |",
    "| --- | --- | --- | --- | --- | --- |",
  ]);
  // Kept: the edge model; offloaded: both. 12.3% offloaded: 2 + 0.1235 x 8 = 2.99 ms, 62.7% less than 8 ms; 4 +
  // 0.1235 x 40 = 8.94 MFLOPs, 77.7% less than 40.
  assert.equal(table[2], "| cloud only | 100.0% | 8.00 | – | 40.0 | – |");
  assert.equal(table[4], "| installed by dmd | 12.3% | 2.99 | +62.7% | 8.9 | +77.7% |");
});

Deno.test("eval Markdown: the installed switcher against the rule best in hindsight and the pool's best rule", () => {
  const runs: SeedRun[] = [1, 2].map((seed) =>
    seedRun(seed, {
      installed: "rank:confidence",
      folds: "4 by group (4 groups)",
      bestRule: seed === 1 ? "rule:max_prob" : "rule:entropy",
      poolRule: "rule:margin",
      installedVsPoolRule: comparison("installed by dmd", 0.72, 0.1, { difference: 0.004, standardError: 0.001 })
        .vsBaseline,
      comparisons: [
        comparison("rule:max_prob", 0.7, 0.3, { difference: 0, standardError: 0 }),
        comparison("installed by dmd", 0.72, 0.2, { difference: -0.002, standardError: 0.002 }),
      ],
    })
  );
  const lines = barsTable(runs, aggregate(runs), 0.1);
  assert.equal(lines[0], "### The installed switcher against the confidence rules");
  assert.ok(lines[2].startsWith("Installed by dmd per seed: rank:confidence, rank:confidence."));
  const table = lines.filter((l) => l.startsWith("|"));
  // −0.002 with SE 0.002 is −1.0 SE: below the −0.5 SE bar; +0.004 with SE 0.001 is +4.0 SE.
  assert.equal(
    table[2],
    "| the rule best on the evaluation half (in hindsight) | rule:max_prob, rule:entropy | −0.002 (SE 0.002; z −1.0) " +
      "| −0.2 (SE 0.2; z −1.0) | −0.2 (SE 0.2; z −1.0) | no |",
  );
  assert.equal(
    table[3],
    "| the rule the pool's cross-validation ranks best | rule:margin, rule:margin | +0.004 (SE 0.001; z +4.0) " +
      "| +0.4 (SE 0.1; z +4.0) | +0.4 (SE 0.1; z +4.0) | yes |",
  );
  const md = markdown(runs, aggregate(runs), {
    header: "## test",
    offloadRate: 0.2,
    rates: [0.1, 0.2],
    cost: { edgeMsPerSequence: 2, cloudMsPerSequence: 8, edgeFlops: null, cloudFlops: null },
  });
  assert.ok(md.indexOf("### The installed switcher against") < md.indexOf("### Accuracy against offload"));
  assert.ok(md.includes("| 1 | 4 by group (4 groups) | rank:confidence | rule:max_prob | rule:margin |"));
});
