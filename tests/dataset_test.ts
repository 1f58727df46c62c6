/**
 * Reading dataset files: one row at a time (a line that is not JSON, rows longer than a read, stopping early), the
 * model's input window of each row kept without its frames, and evaluation's check that every sequence is labelled.
 */
import assert from "node:assert/strict";
import { InputError } from "../scripts/cli.ts";
import { datasetRows, readDataset } from "../scripts/dataset.ts";
import { readDatasetItems, skippedLine } from "../scripts/dataset_pairs.ts";
import type { Manifest } from "../wasm-models/manifest.ts";

const EDGE = (JSON.parse(
  await Deno.readTextFile(new URL("./fixtures/tiny_models/manifest.json", import.meta.url)),
) as Manifest).edge; // layout "tiny": 2 joints x 3 channels, a window of 4 frames at 10 fps

async function withFile(lines: unknown[], fn: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".jsonl" });
  try {
    await Deno.writeTextFile(path, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

/** A row of `frames` frames whose values count up from `start`. */
const row = (id: string, label?: string | null, frames = 4, start = 0) => ({
  id,
  label,
  subject: `s-${id}`,
  fps: 10,
  layout: "tiny",
  frames: Array.from(
    { length: frames },
    (_, f) => [0, 1].map((j) => [0, 1, 2].map((c) => start + f * 6 + j * 3 + c)),
  ),
});

Deno.test("readDatasetItems: each row's input window and its fields without the frames, in file order", async () => {
  await withFile(
    [
      row("a", "walk", 6),
      "",
      row("b", "run"),
      { ...row("c", "walk"), layout: "other" },
      { ...row("d", "run"), frames: [[[0, 0, 0]]] },
      row("e", null),
    ],
    async (path) => {
      const read = await readDatasetItems(path, EDGE, { keepLabels: true });
      const { items, rows, skipped } = read;
      assert.equal(skipped, 2); // another layout; a point size the model does not take
      assert.deepEqual(read.firstSkip, { id: "c", reason: 'layout "other", the edge model takes "tiny"' });
      assert.equal(
        skippedLine(path, read),
        `2 of 5 sequences of ${path} skipped: the edge model cannot take them (first "c": layout "other", the edge ` +
          'model takes "tiny")',
      );
      assert.deepEqual(rows, [
        { id: "a", label: "walk", subject: "s-a", fps: 10, layout: "tiny" },
        { id: "b", label: "run", subject: "s-b", fps: 10, layout: "tiny" },
        { id: "e", label: null, subject: "s-e", fps: 10, layout: "tiny" },
      ]);
      assert.deepEqual(items.map((i) => [i.sourceRef, i.trueLabel, i.item.length]), [
        ["a", "walk", 4],
        ["b", "run", 4],
        ["e", null, 4],
      ]);
      // The most recent window of 4 frames: row a's last four (values from 12 to 35), as its own buffer.
      const a = items[0].item.data;
      assert.equal(a.length, 4 * 6);
      assert.equal(a[0], 12);
      assert.equal(a[23], 35);
      assert.equal(a.buffer.byteLength, 4 * 6 * 4);
      const unlabeled = await readDatasetItems(path, EDGE);
      assert.deepEqual(unlabeled.items.map((i) => i.trueLabel), [null, null, null]);
    },
  );
});

Deno.test("readDatasetItems: a file none of whose rows the model can take is refused, saying why; none is fine", async () => {
  await withFile(
    [{ ...row("a", "walk"), frames: [[[0, 0, 0]]] }, { ...row("b", "run"), layout: "other" }],
    async (path) => {
      await assert.rejects(readDatasetItems(path, EDGE), (err: Error) => {
        assert.ok(err instanceof InputError);
        assert.equal(
          err.message,
          `Cannot use ${path}: none of its 2 sequences fit the edge model (first "a": Cannot read frames: expected 2 ` +
            "points in frame 0, got 1)",
        );
        return true;
      });
    },
  );
  await withFile([row("a", "walk")], async (path) => {
    const read = await readDatasetItems(path, EDGE);
    assert.equal(read.firstSkip, null);
    assert.equal(skippedLine(path, read), null);
  });
  await withFile([], async (path) => {
    assert.deepEqual(await readDatasetItems(path, EDGE), { items: [], rows: [], skipped: 0, firstSkip: null });
  });
});

Deno.test("readDatasetItems with labels: unlabeled or unknown labels are refused, naming the first", async () => {
  await withFile([row("a", "walk"), row("b", "run")], async (path) => {
    const { rows } = await readDatasetItems(path, EDGE, { labels: ["walk", "run"] });
    assert.deepEqual(rows.map((r) => r.id), ["a", "b"]);
  });
  await withFile([row("a", "walk"), row("b"), row("c", null), row("d", "fly")], async (path) => {
    await assert.rejects(readDatasetItems(path, EDGE, { labels: ["walk", "run"] }), (err: Error) => {
      assert.ok(err instanceof InputError);
      assert.equal(
        err.message,
        `Cannot evaluate on ${path}: 3 of 4 sequences lack a known label (first: "b", no label); ` +
          "evaluation needs labels (walk, run); unlabeled traffic goes in --dmd-dataset",
      );
      return true;
    });
  });
  // A row the model cannot take still needs its label: the check is over the file, not over what is kept.
  await withFile([{ ...row("d", "fly"), layout: "other" }], async (path) => {
    await assert.rejects(
      readDatasetItems(path, EDGE, { labels: ["walk"] }),
      /first: "d", label "fly" the models do not know/,
    );
  });
  await withFile([], async (path) => {
    await assert.rejects(readDatasetItems(path, EDGE, { labels: ["walk"] }), /holds no sequence/);
  });
});

Deno.test("readDataset: a line that is not JSON is an InputError naming the line", async () => {
  await withFile([row("a", "walk"), "{nope"], async (path) => {
    await assert.rejects(readDataset(path), (err: Error) => {
      assert.ok(err instanceof InputError);
      assert.equal(err.message, `Cannot read ${path}: line 2 is not valid JSON`);
      return true;
    });
  });
});

Deno.test("datasetRows: rows longer than a read arrive whole, gzipped or not; stopping early closes the file", async () => {
  // About 1.4 MB of JSON a row: many reads of the file each.
  const long = [row("a", "walk", 20_000), row("b", "run", 3, 1000), row("c", "walk", 20_000, 7)];
  await withFile(long, async (path) => {
    const ids: string[] = [];
    for await (const r of datasetRows(path)) {
      ids.push(r.id);
      assert.equal(r.frames.length, long[ids.length - 1].frames.length);
    }
    assert.deepEqual(ids, ["a", "b", "c"]);
    const gz = `${path}.gz`;
    const file = await Deno.open(gz, { write: true, create: true });
    await (await Deno.open(path)).readable.pipeThrough(new CompressionStream("gzip")).pipeTo(file.writable);
    try {
      const rows = await readDataset(gz);
      assert.deepEqual(rows.map((r) => [r.id, r.frames.length, r.frames.at(-1)![1][2]]), [
        ["a", 20_000, 119_999],
        ["b", 3, 1017],
        ["c", 20_000, 120_006],
      ]);
      // A consumer that stops after one row: the file is closed (counted in /proc/self/fd, on Linux).
      const openFiles = () => Deno.build.os === "linux" ? [...Deno.readDirSync("/proc/self/fd")].length : 0;
      const before = openFiles();
      for (const file of [path, gz, path]) {
        for await (const r of datasetRows(file)) {
          assert.equal(r.id, "a");
          break;
        }
      }
      await new Promise((resolve) => setTimeout(resolve, 50)); // a cancelled read closes its file on a later turn
      assert.equal(openFiles(), before);
    } finally {
      await Deno.remove(gz);
    }
  });
});
