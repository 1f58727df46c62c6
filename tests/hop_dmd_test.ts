/**
 * DMD for a hop past the first (loop/hop_dmd.ts, scripts/dmd_hop.ts): pairs from logged tier rows (escalated and
 * explored, weighted by inverse propensity), a switcher of tier N's confidence features chosen and calibrated (a
 * label-free one where a rule separates the disagreement, an MLP where none does), published as the hop's release
 * without touching hop 0's switcher or the manifest and served by the service's hop switchers; and `deno task dmd
 * --hop` on the command line.
 */
import assert from "node:assert/strict";
import { type Database, openDatabase } from "../db/client.ts";
import { insertDecisions } from "../db/queries.ts";
import { HOP_FEATURES, hopPairs, hopScorer } from "../loop/hop_dmd.ts";
import { activeRelease, onnxRelease, publishRelease, seedFromManifest } from "../loop/registry.ts";
import type { SwitcherRelease } from "../release/release.ts";
import { followHopSwitchers } from "../serve/hop_switchers.ts";
import { DEFAULT_CANDIDATES } from "../switcher/candidates.ts";
import { BASE_FEATURES, probabilityStats } from "../switcher/features.ts";
import { exportFitted, fitCandidate } from "../switcher/fit.ts";
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
function logged(n: number, seed: number, disagreeIf: (sure: number, u: number) => boolean = (sure, u) => u > sure) {
  const rng = createPrng(seed);
  return Array.from({ length: n }, (_, i) => {
    const sure = rng.next();
    const p = 0.34 + 0.6 * sure;
    const t1 = [p, (1 - p) / 2, (1 - p) / 2];
    const disagree = disagreeIf(sure, rng.next());
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

/** Run hop 1's DMD on a fresh registry over `rows`; the report, the exit code and the folder and database used. */
async function hopOne(
  rows: ReturnType<typeof logged>,
  fn: (r: {
    code: number;
    report: Record<string, unknown> & { gate: unknown };
    db: Database;
    dir: string;
    hop0: SwitcherRelease;
    manifestBefore: string;
  }) => Promise<void>,
) {
  const dir = await Deno.makeTempDir();
  await copy(TINY, dir);
  const manifestBefore = await Deno.readTextFile(`${dir}/manifest.json`);
  const db = await openDatabase(":memory:");
  try {
    await insertDecisions(db.db, rows);
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
    await fn({ code, report: JSON.parse(log.join("\n")), db, dir, hop0, manifestBefore });
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "hop dmd: where a rule separates the disagreement a label-free switcher is chosen and published as hop 1's",
  sanitizeResources: false,
  fn: () =>
    hopOne(logged(400, 7), async ({ code, report, db, dir, hop0, manifestBefore }) => {
      assert.equal(code, 0, JSON.stringify(report.gate));
      assert.equal(report.installed, true);
      // The rules and their rank average are equivalent here (tier 1's other classes share what is left).
      assert.match(String(report.candidate), /^(rule|rank):/);
      assert.equal(report.pairs, 400);
      const active = await activeRelease(db.db, { role: "switcher", hop: 1 });
      assert.equal(active?.version, "switcher-test-hop1");
      assert.equal(active?.hop, 1);
      assert.equal((await activeRelease(db.db))?.version, hop0.version, "hop 0 keeps its switcher");
      assert.equal(await Deno.readTextFile(`${dir}/manifest.json`), manifestBefore, "the manifest names hop 0 only");
      assert.ok((await readManifest(dir)).switcher?.version !== "switcher-test-hop1");
    }),
});

Deno.test({
  name: "hop dmd: where no rule separates it (a band of middling confidence) an MLP is trained, published and served",
  sanitizeResources: false,
  fn: () =>
    // Tier 1 disagrees with tier 2 mostly when it is middling sure: no threshold on one confidence feature separates
    // that, an MLP of the three does.
    hopOne(logged(600, 11, (sure, u) => u < (sure > 0.3 && sure < 0.7 ? 0.9 : 0.08)), async ({ code, report, db }) => {
      assert.equal(code, 0, JSON.stringify(report.gate));
      assert.equal(report.candidate, "mlp:confidence");
      const active = await activeRelease(db.db, { role: "switcher", hop: 1 });
      assert.equal(active?.scorer.kind, "onnx");
      assert.deepEqual(active?.features, [...HOP_FEATURES]);
      assert.ok(active?.artefact && active.artefact.length > 0);
      // The service serves it, in JavaScript, and it climbs the middle band only.
      const warnings: string[] = [];
      const hops = await followHopSwitchers(db.db, { hops: 1, intervalMs: 0, warn: (m) => void warnings.push(m) });
      try {
        const switcher = hops.current(1);
        assert.equal(switcher.version, "switcher-test-hop1");
        assert.deepEqual(warnings, []);
        const features = (p: number) => {
          const s = probabilityStats([p, (1 - p) / 2, (1 - p) / 2]);
          return [s.pMax, s.margin, s.entropy];
        };
        const middle = switcher.score(features(0.34 + 0.6 * 0.5));
        assert.ok(middle >= switcher.threshold, `the middle band climbs (${middle} vs ${switcher.threshold})`);
        for (const sure of [0.05, 0.95]) {
          const s = switcher.score(features(0.34 + 0.6 * sure));
          assert.ok(s < switcher.threshold, `sure=${sure} is kept (${s} vs ${switcher.threshold})`);
        }
        // The same scores as the release's own scorer.
        const scorer = hopScorer(active!)!;
        assert.equal(switcher.score(features(0.6)), scorer(features(0.6)));
      } finally {
        hops.stop();
      }
    }),
});

Deno.test("hop switchers: a release of a later hop that reads other features is refused and the hop keeps its own", async () => {
  const db = await openDatabase(":memory:");
  try {
    const warnings: { message: string; fields: Record<string, unknown> }[] = [];
    const hops = await followHopSwitchers(db.db, {
      hops: 1,
      intervalMs: 0,
      warn: (message, fields) => void warnings.push({ message, fields }),
    });
    const before = hops.current(1).version;
    // A network of the edge's features (as hop 0's are), published for hop 1.
    const rng = createPrng(3);
    const pairs = Array.from({ length: 60 }, () => ({
      features: Float32Array.from(BASE_FEATURES, () => rng.next()),
      edgeProbs: [0.6, 0.3, 0.1],
      cloudProbs: rng.next() < 0.5 ? [0.6, 0.3, 0.1] : [0.1, 0.3, 0.6],
      weight: 1,
    }));
    const candidate = DEFAULT_CANDIDATES.find((c) => c.name === "mlp:confidence+quality")!;
    const fitted = fitCandidate(candidate, pairs, { epochs: 5 });
    const features = [...BASE_FEATURES];
    const foreign = await onnxRelease(exportFitted(fitted, { version: "switcher-edge-features-hop1", features }), {
      version: "switcher-edge-features-hop1",
      hop: 1,
      inputs: [{ name: "features", shape: [-1, features.length], dtype: "float32" }],
      outputs: [{ name: "score", shape: [-1, 1], dtype: "float32" }],
      features,
      threshold: 0.5,
      provenance: {},
      metrics: {},
    });
    await publishRelease(db.db, foreign, { modelsDir: TINY, activate: true });
    await hops.refresh();
    assert.equal(hops.current(1).version, before);
    assert.equal(warnings.length, 1);
    assert.match(warnings[0].message, /release refused/);
    assert.equal(warnings[0].fields.version, "switcher-edge-features-hop1");
    hops.stop();
  } finally {
    db.close();
  }
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
