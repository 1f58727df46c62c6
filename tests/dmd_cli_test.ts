/**
 * `deno task dmd` (scripts/dmd.ts) as a subprocess on the tiny model set: it chooses among the rules and MLPs on
 * folds grouped by subject, installs what the fold gate passes and records the choice in the release's provenance.
 */
import assert from "node:assert/strict";
import { createPrng } from "../switcher/prng.ts";
import { copy } from "./fixtures/copy_dir.ts";

const SCRIPT = new URL("../scripts/dmd.ts", import.meta.url).pathname;
const TINY = new URL("./fixtures/tiny_models", import.meta.url).pathname;

async function dmd(args: string[], env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    env: { NO_COLOR: "1", WORKERS: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

Deno.test("dmd chooses by grouped cross-validation, installs what the gate passes, and records why", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dmd_edge_dmd_cli_" });
  try {
    const models = `${dir}/models`;
    await copy(TINY, models);
    const rng = createPrng(3);
    const lines = Array.from({ length: 240 }, (_, i) =>
      JSON.stringify({
        id: `r${i}`,
        subject: `s${i % 6}`,
        fps: 10,
        layout: "tiny",
        frames: Array.from({ length: 4 }, () =>
          Array.from({ length: 2 }, () => [rng.normal(), rng.normal(), 0.5 + 0.5 * rng.next()])),
      }));
    await Deno.writeTextFile(`${dir}/pool.jsonl`, lines.join("\n") + "\n");
    const env = { DATABASE_URL: `file:${dir}/dmd.db` };
    const run = await dmd(
      ["--dataset", `${dir}/pool.jsonl`, "--models", models, "--epochs", "5", "--version", "switcher-t1", "--json"],
      env,
    );
    assert.equal(run.code, 0, run.stderr);
    const report = JSON.parse(run.stdout);
    assert.equal(report.installed, true);
    assert.equal(report.gate.promote, true);
    assert.equal(report.selection.folds.basis, "group");
    assert.equal(report.selection.folds.groups, 6);
    assert.deepEqual(
      report.selection.candidates.map((c: { name: string }) => c.name),
      [
        "rank:confidence",
        "rule:max_prob",
        "rule:margin",
        "rule:entropy",
        "mlp:confidence",
        "mlp:confidence+quality",
        "mlp:confidence+quality+novelty",
        "mlp:confidence+quality+pca",
        "mlp:all",
      ],
    );
    // The opponents: the best rule and, with no switcher in the model set, the built-in max-probability rule.
    assert.deepEqual(report.gate.comparisons.map((c: { name: string }) => c.name.split(" (")[0]), [
      "best rule",
      "active",
    ]);
    const manifest = JSON.parse(await Deno.readTextFile(`${models}/manifest.json`));
    assert.equal(manifest.switcher.version, "switcher-t1");
    assert.equal(manifest.switcher.provenance.candidate, report.candidate);
    assert.equal(manifest.switcher.provenance.gate.forced, false);

    const bad = await dmd(["--dataset", `${dir}/pool.jsonl`, "--models", models, "--folds", "1"], env);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /--folds must be an integer >= 2/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
