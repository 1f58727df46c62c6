/**
 * Reading sequence files in the project's dataset format: JSONL, optionally gzipped, one
 * `{ id, label?, split?, subject?, fps, layout, frames: T x J x C }` per line.
 *
 * @module
 */
import { InputError } from "./cli.ts";

/** One line of a dataset file. */
export interface DatasetRow {
  id: string;
  label?: string | null;
  split?: string;
  subject?: string | number;
  fps: number;
  layout: string;
  frames: number[][][];
}

/**
 * The rows of a dataset file, one at a time: a large file is never held whole (its nested frame arrays take about 30
 * bytes a number in V8's heap, so a few hundred million numbers would not fit), only the row being read.
 *
 * @param path a `.jsonl` or `.jsonl.gz` file
 * @yields each row, in file order (blank lines skipped)
 * @throws InputError naming the line when one is not valid JSON, or when a `.gz` file's data is corrupt or truncated
 */
export async function* datasetRows(path: string): AsyncGenerator<DatasetRow> {
  const file = await Deno.open(path);
  const stream: ReadableStream<Uint8Array> = path.endsWith(".gz")
    ? file.readable.pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>)
    : file.readable;
  let line = 0;
  const parse = (text: string): DatasetRow | null => {
    line++;
    if (!text.trim()) return null;
    try {
      return JSON.parse(text);
    } catch {
      throw new InputError(`Cannot read ${path}: line ${line} is not valid JSON`);
    }
  };
  const lines = stream.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  try {
    while (true) {
      let chunk: ReadableStreamReadResult<string>;
      try {
        chunk = await lines.read();
      } catch (err) {
        if (!path.endsWith(".gz")) throw err;
        // The decompressor's own words ("corrupt gzip stream does not have a matching checksum", ...), after the line.
        throw new InputError(
          `Cannot read ${path}: the gzip data is corrupt or truncated after line ${line} (${(err as Error).message})`,
        );
      }
      if (chunk.done) break;
      buffered += chunk.value;
      let from = 0;
      let nl: number;
      while ((nl = buffered.indexOf("\n", from)) >= 0) {
        const row = parse(buffered.slice(from, nl));
        from = nl + 1;
        if (row) yield row;
      }
      buffered = buffered.slice(from);
    }
    const last = parse(buffered);
    if (last) yield last;
  } finally {
    // A consumer that stops early, or a refused line, closes the file.
    await lines.cancel().catch(() => {});
  }
}

/**
 * Read a dataset file whole. A file that may be large is better read with {@link datasetRows}, keeping only what is
 * needed of each row (`readDatasetItems` in scripts/dataset_pairs.ts keeps the model's input window).
 *
 * @param path a `.jsonl` or `.jsonl.gz` file
 * @param options `split`: keep only rows of this split
 * @returns the rows
 * @throws InputError naming the line when one is not valid JSON, or when a `.gz` file's data is corrupt or truncated
 */
export async function readDataset(path: string, options: { split?: string } = {}): Promise<DatasetRow[]> {
  const rows: DatasetRow[] = [];
  for await (const row of datasetRows(path)) {
    if (!options.split || row.split === options.split) rows.push(row);
  }
  return rows;
}

/**
 * Evaluation's check that every sequence carries a label the models know, one row at a time: `see` each row, then
 * `finish` (evaluation needs ground truth; unlabeled traffic belongs in `--dmd-dataset`).
 *
 * @param path the dataset file, for the message
 * @param labels the models' label map
 * @returns the check
 */
export function labelCheck(path: string, labels: readonly string[]): {
  see(row: Pick<DatasetRow, "id" | "label">): void;
  finish(): void;
} {
  const known = new Set(labels);
  let rows = 0;
  let bad = 0;
  let first: Pick<DatasetRow, "id" | "label"> | null = null;
  return {
    see(row) {
      rows++;
      if (typeof row.label !== "string" || !known.has(row.label)) {
        bad++;
        first ??= { id: row.id, label: row.label };
      }
    },
    finish() {
      if (rows === 0) throw new InputError(`Cannot evaluate on ${path}: it holds no sequence`);
      if (bad > 0) {
        const what = typeof first!.label === "string" ? `label "${first!.label}" the models do not know` : "no label";
        throw new InputError(
          `Cannot evaluate on ${path}: ${bad} of ${rows} sequences lack a known label ` +
            `(first: "${first!.id}", ${what}); evaluation needs labels (${labels.join(", ")}); ` +
            `unlabeled traffic goes in --dmd-dataset`,
        );
      }
    },
  };
}
