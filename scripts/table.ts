/**
 * Tables for the command-line scripts: typed columns, one rounding rule per kind of value, aligned text that fits
 * the terminal (runs of empty rows folded into one line, tables wider than the limit split into blocks that repeat
 * the first column), and CSV (RFC 4180) with the same rounding.
 *
 * Rounding, the same everywhere (issue 15: no `0.015379999997094274` next to rounded numbers):
 * - `rate` (a fraction): text `5.4%` (one decimal), CSV 4 decimals (`0.0541`);
 * - `ms` (milliseconds): text with 2 decimals under 10, 1 under 100, none from 100 up (`0.01`, `22.8`, `120`; zero
 *   is `0`), CSV 3 decimals (microseconds);
 * - `score` (a switcher score or threshold, in [0, 1]): 3 decimals in text, 4 in CSV;
 * - `count`: an integer as it is;
 * - `time` (Unix milliseconds): text `2026-12-01 15:19:58` (UTC), or `12-01 15:19:58` for `shortTime`; CSV ISO 8601.
 *
 * @module
 */

/** How a column's values are shown. */
export type Kind = "text" | "count" | "rate" | "ms" | "score" | "time" | "shortTime";

/** A column: its heading and kind (default `text`). */
export interface Column {
  name: string;
  kind?: Kind;
  /** The heading in text output when shorter than `name`, or false to leave the column out of text output. */
  textName?: string | false;
}

/** A value in a table; null shows as `-` in text and as an empty field in CSV. */
export type Cell = string | number | boolean | null;

/** Runs of rows to show as one line each (e.g. empty time buckets). */
export interface Fold {
  /** Whether a row belongs to a foldable run. */
  when(row: Cell[]): boolean;
  /** The line that stands for a run of at least `minRun` rows. */
  describe(first: Cell[], last: Cell[], rows: number): string;
  /** The shortest run folded. @default 2 */
  minRun?: number;
}

/** A table: columns and rows of raw values (rounded only when shown). */
export interface Table {
  columns: Column[];
  rows: Cell[][];
  /** Fold runs of rows in text output (CSV keeps every row). */
  fold?: Fold;
}

/** The widest line of text output. @default 120 */
export const MAX_WIDTH = 120;
const GAP = "  ";

const NUMERIC: ReadonlySet<Kind> = new Set(["count", "rate", "ms", "score"]);

/** `t` (Unix ms) as `YYYY-MM-DD HH:MM:SS` in UTC. */
function utc(t: number): string {
  return new Date(t).toISOString().replace("T", " ").slice(0, 19);
}

/**
 * A value as text, rounded by its kind.
 *
 * @param value the raw value
 * @param kind how to show it
 * @returns the text (`-` for null)
 * @example
 * formatValue(0.015379999997094274, "ms"); // "0.02"
 * formatValue(0.0541, "rate"); // "5.4%"
 */
export function formatValue(value: Cell, kind: Kind = "text"): string {
  if (value === null) return "-";
  if (typeof value !== "number") return String(value);
  switch (kind) {
    case "rate":
      return `${(value * 100).toFixed(1)}%`;
    case "ms":
      return value === 0 ? "0" : value.toFixed(Math.abs(value) < 10 ? 2 : Math.abs(value) < 100 ? 1 : 0);
    case "score":
      return value.toFixed(3);
    case "time":
      return utc(value);
    case "shortTime":
      return utc(value).slice(5);
    case "count":
    case "text":
      return String(value);
  }
}

/**
 * A value for CSV, rounded by its kind.
 *
 * @param value the raw value
 * @param kind how to round it
 * @returns the field's text before quoting (empty for null)
 */
export function csvValue(value: Cell, kind: Kind = "text"): string {
  if (value === null) return "";
  if (typeof value !== "number") return String(value);
  switch (kind) {
    case "rate":
    case "score":
      return String(Number(value.toFixed(4)));
    case "ms":
      return String(Number(value.toFixed(3)));
    case "time":
    case "shortTime":
      return new Date(value).toISOString();
    case "count":
    case "text":
      return String(value);
  }
}

/** Rows as text cells, with folded runs as strings. */
function textRows(table: Table): (string[] | string)[] {
  const out: (string[] | string)[] = [];
  const { fold } = table;
  const minRun = fold?.minRun ?? 2;
  for (let i = 0; i < table.rows.length;) {
    let j = i;
    if (fold) { while (j < table.rows.length && fold.when(table.rows[j])) j++; }
    if (fold && j - i >= minRun) {
      out.push(fold.describe(table.rows[i], table.rows[j - 1], j - i));
      i = j;
      continue;
    }
    const end = Math.max(j, i + 1);
    for (; i < end; i++) out.push(table.rows[i].map((c, k) => formatValue(c, table.columns[k].kind)));
  }
  return out;
}

/**
 * A table as aligned text: numbers right-aligned, folded runs as one line, and no line wider than `maxWidth`
 * (a wider table is printed as several blocks of columns, each repeating the first column).
 *
 * @param table the table
 * @param options `maxWidth` in characters (default {@link MAX_WIDTH})
 * @returns the text, `(none)` under the headings when there are no rows
 */
export function formatTable(table: Table, options: { maxWidth?: number } = {}): string {
  const maxWidth = options.maxWidth ?? MAX_WIDTH;
  // Fold on whole rows, then keep the columns shown in text.
  const shown = table.columns.flatMap((c, i) => (c.textName === false ? [] : [i]));
  const columns = shown.map((i) => table.columns[i]);
  const rows = textRows(table).map((r) => (typeof r === "string" ? r : shown.map((i) => r[i])));
  const cellRows = rows.filter((r): r is string[] => typeof r !== "string");
  const names = columns.map((c) => c.textName || c.name);
  const widths = names.map((name, i) => Math.max(name.length, ...cellRows.map((r) => r[i].length)));
  // Greedy blocks of columns, each starting with the first.
  const blocks: number[][] = [];
  let block = [0];
  let width = widths[0];
  for (let i = 1; i < widths.length; i++) {
    if (block.length > 1 && width + GAP.length + widths[i] > maxWidth) {
      blocks.push(block);
      block = [0];
      width = widths[0];
    }
    block.push(i);
    width += GAP.length + widths[i];
  }
  blocks.push(block);
  const right = (i: number) => NUMERIC.has(columns[i].kind ?? "text");
  const line = (cells: string[], picked: number[], header = false) =>
    picked.map((i) => (!header && right(i) ? cells[i].padStart(widths[i]) : cells[i].padEnd(widths[i])))
      .join(GAP).trimEnd();
  return blocks.map((picked) => {
    const head = [line(names, picked, true), picked.map((i) => "-".repeat(widths[i])).join(GAP)];
    if (rows.length === 0) return `${head[0]}\n(none)`;
    return [...head, ...rows.map((r) => (typeof r === "string" ? r : line(r, picked)))].join("\n");
  }).join("\n\n");
}

/**
 * A table as CSV (RFC 4180: fields with commas, quotes or line breaks quoted; empty for null), every row kept and
 * values rounded by their column's kind.
 *
 * @param table the table
 * @returns the CSV text, header first, no final line break
 */
export function formatCsv(table: Table): string {
  const field = (s: string) => (/[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s);
  const header = table.columns.map((c) => field(c.name)).join(",");
  const rows = table.rows.map((r) => r.map((c, i) => field(csvValue(c, table.columns[i].kind))).join(","));
  return [header, ...rows].join("\n");
}
