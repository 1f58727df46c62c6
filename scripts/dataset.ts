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
 * Read a dataset file.
 *
 * @param path a `.jsonl` or `.jsonl.gz` file
 * @param options `split`: keep only rows of this split
 * @returns the rows
 * @throws InputError naming the line when one is not valid JSON, or when a `.gz` file's data is corrupt or truncated
 */
export async function readDataset(path: string, options: { split?: string } = {}): Promise<DatasetRow[]> {
  const file = await Deno.open(path);
  const stream: ReadableStream<Uint8Array> = path.endsWith(".gz")
    ? file.readable.pipeThrough(new DecompressionStream("gzip") as unknown as TransformStream<Uint8Array, Uint8Array>)
    : file.readable;
  const rows: DatasetRow[] = [];
  let buffered = "";
  let line = 0;
  const take = (text: string) => {
    line++;
    if (!text.trim()) return;
    let row: DatasetRow;
    try {
      row = JSON.parse(text);
    } catch {
      throw new InputError(`Cannot read ${path}: line ${line} is not valid JSON`);
    }
    if (!options.split || row.split === options.split) rows.push(row);
  };
  try {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        take(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
      }
    }
  } catch (err) {
    if (err instanceof InputError || !path.endsWith(".gz")) throw err;
    // The decompressor's own words ("corrupt gzip stream does not have a matching checksum", ...), after the line.
    throw new InputError(
      `Cannot read ${path}: the gzip data is corrupt or truncated after line ${line} (${(err as Error).message})`,
    );
  }
  take(buffered);
  return rows;
}

/**
 * Check that every sequence of a dataset carries a label the models know, before any model runs over it (evaluation
 * needs ground truth; unlabeled traffic belongs in `--dmd-dataset`).
 *
 * @param path the dataset file
 * @param labels the models' label map
 * @returns the rows, read once
 * @throws InputError naming the file, the first sequence without a known label and how many there are
 */
export async function readLabelledDataset(path: string, labels: readonly string[]): Promise<DatasetRow[]> {
  const rows = await readDataset(path);
  const known = new Set(labels);
  const bad = rows.filter((r) => typeof r.label !== "string" || !known.has(r.label));
  if (rows.length === 0) throw new InputError(`Cannot evaluate on ${path}: it holds no sequence`);
  if (bad.length > 0) {
    const first = bad[0];
    const what = typeof first.label === "string" ? `label "${first.label}" the models do not know` : "no label";
    throw new InputError(
      `Cannot evaluate on ${path}: ${bad.length} of ${rows.length} sequences lack a known label ` +
        `(first: "${first.id}", ${what}); evaluation needs labels (${labels.join(", ")}); ` +
        `unlabeled traffic goes in --dmd-dataset`,
    );
  }
  return rows;
}
