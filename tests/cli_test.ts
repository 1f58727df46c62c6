/**
 * Every task's command line: `--help` prints the usage and exits 0 (and starts nothing), an unknown flag is one line
 * on stderr and exit 2, a missing file is one line and exit 1 (scripts/cli.ts, the one flag parser).
 */
import assert from "node:assert/strict";
import { HELP_NOT_RUN, runDeno } from "../scripts/check_readme.ts";
import { datasetRows } from "../scripts/dataset.ts";

const ROOT = new URL("../", import.meta.url).pathname;
const TASKS = JSON.parse(Deno.readTextFileSync(`${ROOT}deno.json`)).tasks as Record<string, string>;
/** Deno's own tools and the migration generator: their flags are theirs. */
const TOOLING = new Set(["test", "check", "gate", "ok", "db:generate"]);
/** Tasks whose --help is not run (scripts/check_readme.ts: HELP_NOT_RUN): not Deno scripts. */
const PENDING = new Set(Object.keys(HELP_NOT_RUN));

function task(args: string[], env: Record<string, string> = {}) {
  return runDeno(ROOT, ["task", "-q", ...args], env);
}

Deno.test("cli: every task answers --help with its usage (exit 0) and an unknown flag in one line (exit 2)", async () => {
  const names = Object.keys(TASKS).filter((t) => !TOOLING.has(t) && !PENDING.has(t));
  assert.ok(names.length >= 14, names.join(" "));
  // A few at a time: each is a Deno process.
  for (let i = 0; i < names.length; i += 4) {
    await Promise.all(
      names.slice(i, i + 4).map(async (name) => {
        const help = await task([name, "--help"]);
        assert.equal(help.code, 0, `${name} --help: ${help.stderr}`);
        assert.match(help.stdout, new RegExp(`^usage: deno task ${name}\\b`), name);
        const bad = await task([name, "--no-such-flag"]);
        assert.equal(bad.code, 2, `${name} --no-such-flag: ${bad.stdout} ${bad.stderr}`);
        assert.equal(bad.stderr.trim().split("\n").length, 1, `${name}: ${bad.stderr}`);
        assert.match(bad.stderr, /Unknown option '--no-such-flag'.*--help/, name);
      }),
    );
  }
});

Deno.test("cli: a flag value that starts with a dash is refused in one line that says how to write it", async () => {
  const bad = await task(["seed:decisions", "--rows", "-5"]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.equal(bad.stderr.trim().split("\n").length, 1, bad.stderr);
  assert.match(bad.stderr, /ambiguous.*'--rows=-XYZ'.*\(usage: deno task seed:decisions --help\)/);
  const negative = await task(["seed:decisions", "--rows=-5"]);
  assert.equal(negative.code, 2, negative.stderr);
  assert.match(negative.stderr, /--rows must be a positive integer/);
});

Deno.test("cli: a missing file or folder is one line naming it (exit 1), not a stack trace, and leaves no temporary folder", async () => {
  const cases: string[][] = [
    ["soak", "--models", "/nonexistent/models"],
    ["simulate:loop", "--models", "/nonexistent/models"],
  ];
  const tmp = await Deno.makeTempDir();
  try {
    for (const args of cases) {
      const r = await task(args, { TMPDIR: tmp });
      assert.equal(r.code, 1, `${args.join(" ")}: ${r.stderr}`);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /^Cannot read \/nonexistent\/models\S*: no such file or folder/, r.stderr);
      const left = [];
      for await (const e of Deno.readDir(tmp)) left.push(e.name);
      assert.deepEqual(left, [], `${args.join(" ")} left ${left.join(", ")}`);
    }
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cli: a truncated .gz dataset, one the model cannot take and one with too few rows: one line each (exit 1)", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const gz = await Deno.readFile(`${ROOT}datasets/mocap/test.jsonl.gz`);
    await Deno.writeFile(`${tmp}/cut.jsonl.gz`, gz.subarray(0, 20_000));
    // A row whose frames have the wrong shape: the model can take none of the file.
    await Deno.writeTextFile(
      `${tmp}/bad.jsonl`,
      JSON.stringify({ id: "1", layout: "coco17", fps: 30, frames: [[[1, 2]]], label: "x" }) + "\n",
    );
    // Five good rows: too few pairs to choose a switcher on.
    const lines: string[] = [];
    for await (const r of datasetRows(`${ROOT}datasets/mocap/test.jsonl.gz`)) {
      lines.push(JSON.stringify(r));
      if (lines.length === 5) break;
    }
    await Deno.writeTextFile(`${tmp}/few.jsonl`, lines.join("\n") + "\n");
    const cut = await task(["dmd", "--dataset", `${tmp}/cut.jsonl.gz`, "--dry-run"]);
    assert.equal(cut.code, 1, cut.stderr);
    assert.match(
      cut.stderr.trim().split("\n").at(-1)!,
      /^Cannot read \S+cut\.jsonl\.gz: the gzip data is corrupt or truncated after line \d+ \(/,
    );
    assert.doesNotMatch(cut.stderr, /\n\s+at /, "no stack trace");
    const bad = await task(["dmd", "--dataset", `${tmp}/bad.jsonl`, "--dry-run"]);
    assert.equal(bad.code, 1, bad.stderr);
    assert.equal(
      bad.stderr.trim().split("\n").at(-1),
      `Cannot use ${tmp}/bad.jsonl: none of its 1 sequences fit the edge model (first "1": Cannot read frames: ` +
        "expected 17 points in frame 0, got 1)",
    );
    assert.doesNotMatch(bad.stderr, /\n\s+at /, "no stack trace");
    const few = await task(["dmd", "--dataset", `${tmp}/few.jsonl`, "--dry-run"]);
    assert.equal(few.code, 1, few.stderr);
    assert.equal(
      few.stderr.trim().split("\n").at(-1),
      "Cannot select a switcher: expected at least 20 usable pairs, got 5",
    );
    assert.doesNotMatch(few.stderr, /\n\s+at /, "no stack trace");
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cli: eval names the rows the edge model cannot take, on stderr, in eval.md and in eval.json", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const lines: string[] = [];
    let n = 0;
    for await (const r of datasetRows(`${ROOT}datasets/mocap/test.jsonl.gz`)) {
      // Every 37th row of the 3,000, so that every action is there.
      if (n++ % 37 === 0) lines.push(JSON.stringify(r));
      if (lines.length === 80) break;
    }
    lines.splice(3, 0, JSON.stringify({ id: "short", label: "walk", layout: "coco17", fps: 30, frames: [[[1, 2]]] }));
    await Deno.writeTextFile(`${tmp}/mixed.jsonl`, lines.join("\n") + "\n");
    const out = `${tmp}/eval`;
    const run = await task([
      "eval",
      "--dataset",
      `${tmp}/mixed.jsonl`,
      "--seeds",
      "1",
      "--resamples",
      "20",
      "--epochs",
      "5",
      "--out",
      out,
    ]);
    assert.equal(run.code, 0, run.stderr);
    const line = `1 of 81 sequences of ${tmp}/mixed.jsonl skipped: the edge model cannot take them (first "short": ` +
      "Cannot read frames: expected 17 points in frame 0, got 1)";
    assert.ok(run.stderr.includes(`eval: ${line}`), run.stderr);
    assert.ok((await Deno.readTextFile(`${out}/eval.md`)).includes(`Not evaluated: ${line}.`));
    const json = JSON.parse(await Deno.readTextFile(`${out}/eval.json`));
    assert.deepEqual([json.data.sequences, json.data.skipped, json.data.firstSkipped.id], [80, 1, "short"]);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cli: a retrain that fails is one line, exit 1, and releases its lock", async () => {
  const tmp = await Deno.makeTempDir();
  try {
    const models = `${tmp}/models`;
    await Deno.mkdir(models);
    for await (const e of Deno.readDir(`${ROOT}tests/fixtures/tiny_models`)) {
      if (e.isFile) await Deno.copyFile(`${ROOT}tests/fixtures/tiny_models/${e.name}`, `${models}/${e.name}`);
    }
    // An empty decision log: nothing to train on.
    const r = await task(["retrain", "--models", models, "--min-new-pairs", "0"], {
      DATABASE_URL: `file:${tmp}/d.db`,
    });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(
      r.stderr.trim().split("\n").at(-1),
      "Cannot retrain: Cannot select a switcher: expected at least 20 usable pairs, got 0",
    );
    const left = [];
    for await (const e of Deno.readDir(models)) left.push(e.name);
    assert.ok(!left.includes(".retrain.lock"), `left ${left.join(", ")}`);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("cli: a bad value is one line and exit 2", async () => {
  const r = await task(["bench:retrain", "--pairs", "many"]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr.trim(),
    "Cannot benchmark: --pairs must be a positive integer (usage: deno task bench:retrain --help)",
  );
});
