/**
 * The figure of `deno task eval`: hybrid accuracy (%) against the share of requests offloaded to the cloud (%), for
 * the few policies a reader compares — the switcher dmd installs, the best confidence rule, the oracle — with edge
 * only and cloud only as labelled reference lines. Everything else is in the Markdown report's tables.
 *
 * Each policy has its own colour (Okabe–Ito, safe for colour-blind readers), line style and marker, so that the
 * figure also reads in grey; the legend sits under the plot with no limit on a label's width, so no label is cut.
 *
 * @module
 */
import * as vega from "vega";
import type * as vl from "vega-lite";
import { compile } from "vega-lite";

/** What a plotted policy is: its style follows. */
export type FigureRole = "installed" | "rule" | "oracle";

/** One plotted policy: its legend label and its curve (mean over seeds), in %. */
export interface FigureSeries {
  label: string;
  role: FigureRole;
  /** Offloaded share and hybrid accuracy, both in %, offload ascending. */
  points: { offloadPct: number; accuracyPct: number }[];
}

/** Everything the figure shows. */
export interface FigureData {
  /** What is plotted, e.g. "Accuracy against offload to the cloud". */
  title: string;
  /** The data, the protocol and the seeds, one line each. */
  subtitle: string[];
  series: FigureSeries[];
  /** Accuracy of the edge model alone and of the cloud model alone, in %. */
  edgeOnlyPct: number;
  cloudOnlyPct: number;
}

/** A line's look: colour (Okabe–Ito, safe for colour-blind readers), dash pattern, width and marker. */
interface LineStyle {
  colour: string;
  dash: number[];
  shape?: string;
}

/** Each policy differs in colour, dash and marker; the reference lines are grey, thinner and marker-free. */
const STYLE: Record<FigureRole, LineStyle> = {
  installed: { colour: "#0072B2", dash: [], shape: "circle" },
  rule: { colour: "#D55E00", dash: [8, 4], shape: "square" },
  oracle: { colour: "#009E73", dash: [2, 3], shape: "triangle-up" },
};
const CLOUD_ONLY: LineStyle = { colour: "#444444", dash: [10, 3, 2, 3] };
const EDGE_ONLY: LineStyle = { colour: "#999999", dash: [3, 3] };
/** A marker every this many percent of offload: enough to tell the lines apart, few enough to see the curve. */
const MARKER_EVERY_PCT = 10;

/** The legend's labels of the two reference lines. */
export function referenceLabels(
  data: Pick<FigureData, "edgeOnlyPct" | "cloudOnlyPct">,
): { edge: string; cloud: string } {
  return {
    cloud: `cloud only: ${data.cloudOnlyPct.toFixed(1)}% (every request offloaded)`,
    edge: `edge only: ${data.edgeOnlyPct.toFixed(1)}% (nothing offloaded)`,
  };
}

/**
 * The vega-lite specification of the figure.
 *
 * @param data what to plot
 * @param options `width` of the plotting area in pixels (default 420; the legend and the titles may add to it)
 * @returns a vega-lite specification
 */
export function figureSpec(data: FigureData, options: { width?: number } = {}): vl.TopLevelSpec {
  const width = options.width ?? 420;
  const refLabels = referenceLabels(data);
  const lines: { label: string; style: LineStyle; points: FigureSeries["points"] }[] = [
    ...data.series.map((s) => ({ label: s.label, style: STYLE[s.role], points: s.points })),
    ...[[refLabels.cloud, CLOUD_ONLY, data.cloudOnlyPct], [refLabels.edge, EDGE_ONLY, data.edgeOnlyPct]].map((
      [label, style, pct],
    ) => ({
      label: label as string,
      style: style as LineStyle,
      points: [{ offloadPct: 0, accuracyPct: pct as number }, { offloadPct: 100, accuracyPct: pct as number }],
    })),
  ];
  const domain = lines.map((l) => l.label);
  const values = lines.flatMap((l) =>
    l.points.map((p) => ({ policy: l.label, offload: p.offloadPct, accuracy: p.accuracyPct }))
  );
  const accuracies = values.map((v) => v.accuracy);
  const low = Math.max(0, Math.floor(Math.min(...accuracies) - 1));
  const high = Math.min(100, Math.ceil(Math.max(...accuracies) + 1));
  const scale = <T>(pick: (s: LineStyle) => T) => ({ domain, range: lines.map((l) => pick(l.style)) });
  const x = {
    field: "offload",
    type: "quantitative" as const,
    title: "Offloaded to the cloud (% of requests)",
    scale: { domain: [0, 100] },
  };
  const y = { field: "accuracy", type: "quantitative" as const, title: "Accuracy (%)", scale: { domain: [low, high] } };
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title: {
      text: data.title,
      subtitle: data.subtitle,
      anchor: "start",
      font: FONT,
      subtitleFont: FONT,
      fontSize: 17,
      subtitleFontSize: 13,
      subtitleColor: "#333333",
      offset: 14,
    },
    width,
    height: Math.round(width * 0.66),
    background: "white",
    padding: 12,
    config: {
      font: FONT,
      axis: { labelFontSize: 13, titleFontSize: 14, gridColor: "#e8e8e8" },
      legend: { labelFontSize: 14, labelLimit: 10_000, symbolSize: 700, symbolStrokeWidth: 2.5, rowPadding: 6 },
    },
    layer: [
      // The policies' curves, then the reference lines (thinner), on shared scales: one legend names them all.
      ...[{ refs: false, width: 2.5 }, { refs: true }].map(({ refs, width }) => ({
        data: { values: values.filter((v) => (v.policy === refLabels.cloud || v.policy === refLabels.edge) === refs) },
        mark: { type: "line" as const, strokeWidth: width },
        encoding: {
          x,
          y,
          color: {
            field: "policy",
            type: "nominal" as const,
            scale: scale((s) => s.colour),
            legend: { orient: "bottom" as const, direction: "vertical" as const, title: null, symbolType: "stroke" },
          },
          strokeDash: { field: "policy", type: "nominal" as const, scale: scale((s) => s.dash) },
        },
      })),
      // Markers on the policies' curves (not on the reference lines), every few percent of offload; drawn with
      // fixed styles, so that they add no legend of their own.
      ...data.series.map((s) => ({
        data: { values: values.filter((v) => v.policy === s.label && v.offload % MARKER_EVERY_PCT === 0) },
        mark: {
          type: "point" as const,
          shape: STYLE[s.role].shape,
          color: STYLE[s.role].colour,
          filled: true,
          opacity: 1,
          size: 80,
        },
        encoding: { x, y },
      })),
    ],
  } as vl.TopLevelSpec;
}

/** Advance widths of Helvetica/Arial (and the metric-compatible Liberation Sans), in 1/1000 em, for ' ' to '~'. */
const ARIAL_WIDTHS = [
  278,
  278,
  355,
  556,
  556,
  889,
  667,
  191,
  333,
  333,
  389,
  584,
  278,
  333,
  278,
  278,
  556,
  556,
  556,
  556,
  556,
  556,
  556,
  556,
  556,
  556,
  278,
  278,
  584,
  584,
  584,
  556,
  1015,
  667,
  667,
  722,
  722,
  667,
  611,
  778,
  722,
  278,
  500,
  667,
  556,
  833,
  722,
  778,
  667,
  778,
  722,
  667,
  611,
  722,
  667,
  944,
  667,
  667,
  611,
  278,
  278,
  278,
  469,
  556,
  333,
  556,
  556,
  500,
  556,
  556,
  278,
  556,
  556,
  222,
  222,
  500,
  222,
  833,
  556,
  556,
  556,
  556,
  333,
  500,
  278,
  556,
  500,
  722,
  500,
  500,
  500,
  334,
  260,
  334,
  584,
];
/** Room for a wider fallback font (DejaVu Sans is about 10% wider than Arial) and bold text. */
const WIDTH_MARGIN = 1.12;
const BOLD = 1.1;
const FONT = "Helvetica, Arial, 'Liberation Sans', sans-serif";

/**
 * The width of a text in the figure's font, for vega's layout: without a canvas (Deno), vega estimates 0.8 em per
 * character, which leaves the figure mostly blank on the right and so draws it small on a narrow screen.
 */
function textWidth(item: { fontSize?: number; fontWeight?: string | number; limit?: number }, text: string): number {
  const size = item.fontSize ?? 11;
  const bold = item.fontWeight === "bold" || Number(item.fontWeight) >= 600 ? BOLD : 1;
  let em = 0;
  for (const ch of String(text ?? "").trim()) {
    const code = ch.codePointAt(0)!;
    em += (code >= 32 && code <= 126 ? ARIAL_WIDTHS[code - 32] : 1000) / 1000;
  }
  return em * size * bold * WIDTH_MARGIN;
}

/**
 * The figure as an SVG document.
 *
 * @param data what to plot
 * @param options as {@link figureSpec}
 * @returns SVG text
 */
export async function renderFigure(data: FigureData, options: { width?: number } = {}): Promise<string> {
  // vega exports its text metrics (vega-scenegraph) without a type: a user-defined width is a documented use.
  const metrics = (vega as unknown as { textMetrics: { width: (item: unknown, text: string) => number } }).textMetrics;
  const before = metrics.width;
  metrics.width = (item, text) => textWidth(item as Parameters<typeof textWidth>[0], text);
  try {
    const view = new vega.View(vega.parse(compile(figureSpec(data, options)).spec), { renderer: "none" });
    const svg = await view.toSVG();
    view.finalize();
    return svg;
  } finally {
    metrics.width = before;
  }
}

/** The plotted policies' curves, mean over seeds, in % (eval.json's `curves`). */
export type FigureCurves = Record<"installed" | "rule" | "oracle", FigureSeries["points"]>;

/** What {@link figureData} reads of eval.json. */
export interface EvalSummary {
  data: { file: string; description: string | null };
  protocol: string;
  dmdDataset: string | null;
  models: { edge: string; cloud: string };
  runs: {
    seed: number;
    evalRows: number;
    installed: string;
    bestRule: string;
    edgeAccuracy: number;
    cloudAccuracy: number;
  }[];
  curves: FigureCurves;
}

const fileName = (path: string) => path.split("/").pop()!;

/**
 * The figure of an evaluation: what it shows, on which data, named as dmd names what it installs.
 *
 * @param report eval.json (or the part of it the figure reads)
 * @returns the figure's data
 */
export function figureData(report: EvalSummary): FigureData {
  const { runs } = report;
  const mean = (pick: (r: EvalSummary["runs"][number]) => number) =>
    runs.reduce((a, r) => a + pick(r), 0) / runs.length;
  const seeds = `${runs.length > 1 ? "mean of seeds" : "seed"} ${runs.map((r) => r.seed).join(", ")}`;
  return {
    title: "Accuracy against offload to the cloud",
    subtitle: [
      `Data: ${fileName(report.data.file)}, ${
        runs[0].evalRows.toLocaleString("en-US")
      } labelled sequences evaluated per seed`,
      ...(report.data.description ? [report.data.description[0].toUpperCase() + report.data.description.slice(1)] : []),
      report.protocol === "pool"
        ? `DMD learned from ${fileName(report.dmdDataset ?? "")}, labels unused; ${seeds}`
        : `DMD learned from the other half, labels unused; ${seeds}`,
      `Models: ${report.models.edge} (edge), ${report.models.cloud} (cloud)`,
    ],
    series: [
      {
        label: `switcher installed by dmd: ${choiceLabel(runs.map((r) => ({ seed: r.seed, name: r.installed })))}`,
        role: "installed",
        points: report.curves.installed,
      },
      {
        label: `best confidence rule: ${choiceLabel(runs.map((r) => ({ seed: r.seed, name: r.bestRule })))}`,
        role: "rule",
        points: report.curves.rule,
      },
      { label: "oracle: offloads first where only the cloud is right", role: "oracle", points: report.curves.oracle },
    ],
    edgeOnlyPct: 100 * mean((r) => r.edgeAccuracy),
    cloudOnlyPct: 100 * mean((r) => r.cloudAccuracy),
  };
}

/**
 * The mean of curves sampled on the same offload grid.
 *
 * @param curves one per seed, each `{ rate, accuracy }` as fractions on the same grid of rates
 * @returns the mean curve in %
 */
export function meanCurvePct(curves: { rate: number; accuracy: number }[][]): FigureSeries["points"] {
  return curves[0].map((p, i) => ({
    offloadPct: Math.round(p.rate * 1e4) / 100,
    accuracyPct: (100 * curves.reduce((a, c) => a + c[i].accuracy, 0)) / curves.length,
  }));
}

/**
 * A label naming what each seed chose, e.g. `mlp:all` or `mlp:all (seeds 1, 3), rule:margin (seed 2)`.
 *
 * @param choices per seed, the seed and the name it chose
 * @returns the names, with their seeds when the seeds disagree
 */
export function choiceLabel(choices: { seed: number; name: string }[]): string {
  const bySeed = new Map<string, number[]>();
  for (const c of choices) bySeed.set(c.name, [...(bySeed.get(c.name) ?? []), c.seed]);
  if (bySeed.size === 1) return choices[0].name;
  return [...bySeed].map(([name, s]) => `${name} (seed${s.length > 1 ? "s" : ""} ${s.join(", ")})`).join(", ");
}
