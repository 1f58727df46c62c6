/** Reading dataset files: a line that is not JSON, and evaluation's check that every sequence is labelled. */
import assert from "node:assert/strict";
import { InputError } from "../scripts/cli.ts";
import { readDataset, readLabelledDataset } from "../scripts/dataset.ts";

async function withFile(lines: unknown[], fn: (path: string) => Promise<void>): Promise<void> {
  const path = await Deno.makeTempFile({ suffix: ".jsonl" });
  try {
    await Deno.writeTextFile(path, lines.map((l) => (typeof l === "string" ? l : JSON.stringify(l))).join("\n"));
    await fn(path);
  } finally {
    await Deno.remove(path);
  }
}

const row = (id: string, label?: string | null) => ({ id, label, fps: 30, layout: "tiny", frames: [[[0, 0, 1]]] });

Deno.test("readLabelledDataset: every sequence labelled with a known label is read", async () => {
  await withFile([row("a", "walk"), row("b", "run")], async (path) => {
    assert.deepEqual((await readLabelledDataset(path, ["walk", "run"])).map((r) => r.id), ["a", "b"]);
  });
});

Deno.test("readLabelledDataset: unlabeled or unknown labels are refused before any model runs, naming the first", async () => {
  await withFile([row("a", "walk"), row("b"), row("c", null), row("d", "fly")], async (path) => {
    await assert.rejects(readLabelledDataset(path, ["walk", "run"]), (err: Error) => {
      assert.ok(err instanceof InputError);
      assert.equal(
        err.message,
        `Cannot evaluate on ${path}: 3 of 4 sequences lack a known label (first: "b", no label); ` +
          "evaluation needs labels (walk, run); unlabeled traffic goes in --dmd-dataset",
      );
      return true;
    });
  });
  await withFile([row("d", "fly")], async (path) => {
    await assert.rejects(readLabelledDataset(path, ["walk"]), /first: "d", label "fly" the models do not know/);
  });
  await withFile([], async (path) => {
    await assert.rejects(readLabelledDataset(path, ["walk"]), /holds no sequence/);
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
