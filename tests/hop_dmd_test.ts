/**
 * DMD for a hop past the first (loop/hop_dmd.ts, scripts/dmd_hop.ts): pairs from logged tier rows (escalated and
 * explored, weighted by inverse propensity), a confidence rule chosen and calibrated, published as the hop's
 * release without touching hop 0's switcher or the manifest; and `deno task dmd --hop` on the command line.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { insertDecisions } from "../db/queries.ts";
import { hopPairs } from "../loop/hop_dmd.ts";
import { activeRelease, seedFromManifest } from "../loop/registry.ts";
import { runHopDmd } from "../scripts/dmd_hop.ts";
import { createPrng } from "../switcher/prng.ts";
import { readManifest } from "../workers/artefacts.ts";
import { copy } from "./fixtures/copy_dir.ts";
import { decision } from "./fixtures/db_records.ts";
import { tierRecord } from "./fixtures/tier_records.ts";
import { TINY } from "./fixtures/loop_service.ts";

/**
 * Decisions that reached tiers 1 and 2: tier 1 unsure (low max probability) disagrees with tier 2 more often, so
 * max probability predicts the disagreement.
 */
function logged(n: number, seed: number) {
  const rng = createPrng(seed);
  return Array.from({ length: n }, (_, i) => {
    const sure = rng.next();
    const p = 0.34 + 0.6 * sure;
    const t1 = [p, (1 - p) / 2, (1 - p) / 2];
    const disagree = rng.next() > sure;
    const t2 = disagree ? [0.1, 0.8, 0.1] : [0.8, 0.1, 0.1];
    const explored = i % 4 === 0;
    const d = decision({ id: `0190000${String(i).padStart(5, "0")}-0000-7000-8000-000000000000` });
    return {
      ...d,
      tiers: [
        tierRecord(d.id, 1, t1, { next: explored ? "kept" : "escalated" }),
        tierRecord(d.id, 2, t2, { shadow: explored, propensity: explored ? 0.25 : 1, answered: !explored }),
      ],
    };
  });
}

Deno.test("hop dmd: pairs join tier N and N + 1 of one decision, weighted by inverse propensity; failures skipped", () => {
  const rows = logged(8, 3).flatMap((d) => d.tiers);
  rows.push(tierRecord("x", 1, [0.5, 0.3, 0.2]), {
    ...tierRecord("x", 2, [0.5, 0.3, 0.2]),
    probs: null,
    error: "OFFLOAD_TIMEOUT",
  });
  const pool = hopPairs(rows, 1);
  assert.equal(pool.pairs.length, 8);
  assert.equal(pool.skipped, 1);
  assert.deepEqual(pool.pairs.slice(0, 2).map((p) => p.weight), [4, 1]);
  const first = rows[0].probs!;
  assert.ok(Math.abs(pool.pairs[0].features[0] - first[0]) < 1e-6, "feature 0 is tier 1's max probability");
  assert.deepEqual(hopPairs(rows, 2).pairs, []);
});

Deno.test({
  name: "hop dmd: a rule is chosen and published as hop 1's release; hop 0 and the manifest are untouched",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    await copy(TINY, dir);
    const manifestBefore = await Deno.readTextFile(`${dir}/manifest.json`);
    const db = await openDatabase(":memory:");
    try {
      await insertDecisions(db.db, logged(400, 7));
      const hop0 = await seedFromManifest(db.db, { modelsDir: dir });
      const log: string[] = [];
      const original = console.log;
      console.log = (...a: unknown[]) => void log.push(a.map(String).join(" "));
      let code: number;
      try {
        code = await runHopDmd({
          db: db.db,
          hop: 1,
          modelsDir: dir,
          sinceMs: undefined,
          version: "switcher-test-hop1",
          target: "hard",
          calibrate: { offloadRate: 0.3 },
          folds: 5,
          tolerance: 0.05,
          seed: 1,
          force: false,
          dryRun: false,
          json: true,
        });
      } finally {
        console.log = original;
      }
      const report = JSON.parse(log.join("\n"));
      assert.equal(code, 0, JSON.stringify(report.gate));
      assert.equal(report.installed, true);
      assert.match(report.candidate, /^rule:/);
      assert.equal(report.pairs, 400);
      const active = await activeRelease(db.db, { role: "switcher", hop: 1 });
      assert.equal(active?.version, "switcher-test-hop1");
      assert.equal(active?.hop, 1);
      assert.equal(active?.scorer.kind, "rule");
      assert.equal((await activeRelease(db.db))?.version, hop0.version, "hop 0 keeps its switcher");
      assert.equal(await Deno.readTextFile(`${dir}/manifest.json`), manifestBefore, "the manifest names hop 0 only");
      assert.ok((await readManifest(dir)).switcher?.version !== "switcher-test-hop1");
    } finally {
      db.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("hop dmd: the command line asks for --from-log with --hop N >= 1 and refuses a bad hop", async () => {
  const run = (args: string[]) =>
    new Deno.Command(Deno.execPath(), {
      args: ["task", "-q", "dmd", ...args],
      cwd: new URL("..", import.meta.url).pathname,
      stdout: "piped",
      stderr: "piped",
    }).output();
  const noLog = await run(["--hop", "1", "--dataset", "x.jsonl"]);
  assert.equal(noLog.code, 2);
  assert.match(new TextDecoder().decode(noLog.stderr), /--hop N >= 1 learns from the log: give --from-log/);
  const bad = await run(["--hop=1.5", "--from-log"]);
  assert.equal(bad.code, 2);
  assert.match(new TextDecoder().decode(bad.stderr), /--hop must be an integer >= 0/);
});
