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
 * @param options `width` of the plotting area in pixels (default 480; the legend and the titles may add to it)
 * @returns a vega-lite specification
 */
export function figureSpec(data: FigureData, options: { width?: number } = {}): vl.TopLevelSpec {
  const width = options.width ?? 480;
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
      font: "sans-serif",
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
          size: 80,
        },
        encoding: { x, y },
      })),
    ],
  } as vl.TopLevelSpec;
}

/**
 * The figure as an SVG document.
 *
 * @param data what to plot
 * @param options as {@link figureSpec}
 * @returns SVG text
 */
export async function renderFigure(data: FigureData, options: { width?: number } = {}): Promise<string> {
  const view = new vega.View(vega.parse(compile(figureSpec(data, options)).spec), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  return svg;
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
