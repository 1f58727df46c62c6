/**
 * Reading sequence files in the project's dataset format: JSONL, optionally gzipped, one
 * `{ id, label?, split?, subject?, fps, layout, frames: T x J x C }` per line.
 *
 * @module
 */

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
 * @throws TypeError naming the line when one is not valid JSON
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
      throw new TypeError(`Cannot read ${path}: line ${line} is not valid JSON`);
    }
    if (!options.split || row.split === options.split) rows.push(row);
  };
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      take(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  }
  take(buffered);
  return rows;
}
