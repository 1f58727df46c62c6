/**
 * A hot swap under load: while clients keep the service busy, switcher releases (ONNX models and confidence rules)
 * are activated through the registry and loaded by the edge app, again and again. Every decision row must name
 * exactly the release and threshold that scored it: its logged score is recomputed from its logged features with
 * the release it names, and its route follows from that score and threshold.
 */
import assert from "node:assert/strict";
import { until } from "./fixtures/wait.ts";
import { openDatabase } from "../db/client.ts";
import { listDecisions } from "../db/queries.ts";
import { activateRelease, getRelease, publishRelease } from "../loop/registry.ts";
import { ruleRelease, ruleScore, type SwitcherRelease } from "../release/release.ts";
import { scoreWithOnnx } from "../workers/runtime.ts";
import { startLoopService, tinySwitcher, TOKEN } from "./fixtures/loop_service.ts";

async function scoreOf(release: SwitcherRelease, features: Float32Array): Promise<number> {
  const scorer = release.scorer;
  if (scorer.kind === "rule") return ruleScore(scorer.rule, features);
  return (await scoreWithOnnx(release.artefact!, [features], features.length))[0];
}

Deno.test({
  name: "hot swap under load: every decision row names the switcher release and threshold that scored it",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { service, models, dbUrl, stop } = await startLoopService({
      EXPLORATION_RATE: "0.2",
      SHADOW_BUDGET_PER_S: "0",
      LOG_LEVEL: "error",
    });
    const database = await openDatabase(dbUrl, {});
    try {
      const candidates = [
        await tinySwitcher("switcher-onnx-a", 0.45, 1),
        ruleRelease({ version: "switcher-margin", rule: "margin", threshold: 0.62 }),
        await tinySwitcher("switcher-onnx-b", 0.55, 2),
        ruleRelease({ version: "switcher-entropy", rule: "entropy", threshold: 0.4 }),
      ];
      for (const c of candidates) await publishRelease(database.db, c, { modelsDir: models });
      let seed = 1;
      const rng = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
      const frames = () =>
        Array.from({ length: 4 + Math.floor(rng() * 5) }, () => [[rng(), rng(), rng()], [rng(), rng(), rng()]]);
      const answered = new Map<string, { version: string; threshold: number }>();
      let stop = false;
      const client = async () => {
        while (!stop) {
          const batch = rng() < 0.3;
          const res = await fetch(`${service.url}/v1/classify${batch ? "/batch" : ""}`, {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify(
              batch
                ? { items: [0, 1, 2].map(() => ({ layout: "tiny", fps: 10, frames: frames() })) }
                : { layout: "tiny", fps: 10, frames: frames() },
            ),
          });
          assert.equal(res.status, 200);
          const body = await res.json();
          for (const a of batch ? body.results : [body]) {
            answered.set(a.decisionId, { version: a.switcher.version, threshold: a.switcher.threshold });
          }
        }
      };
      const clients = Array.from({ length: 6 }, client);
      // Swap while the clients run: activate in the registry, then load in the edge app.
      const served = new Set<string>();
      for (let round = 0; round < 24; round++) {
        const next = candidates[round % candidates.length];
        await activateRelease(database.db, next.version, { modelsDir: models });
        const reload = await fetch(`${service.url}/admin/switcher/reload`, {
          method: "POST",
          headers: { authorization: `Bearer ${TOKEN}` },
        });
        assert.equal((await reload.json()).version, next.version);
        served.add(next.version);
        await new Promise((r) => setTimeout(r, 15));
      }
      stop = true;
      await Promise.all(clients);
      // Every answered decision reaches the database (through the writer thread).
      await until(async () => (await listDecisions(database.db, { limit: 100_000 })).length >= answered.size);
      const rows = await listDecisions(database.db, { limit: 100_000 });
      assert.ok(rows.length >= 100, `enough load: ${rows.length} decisions`);
      assert.equal(rows.length, answered.size);
      const releases = new Map<string, SwitcherRelease>();
      const seen = new Set<string>();
      for (const row of rows) {
        if (!releases.has(row.switcherVersion)) {
          releases.set(row.switcherVersion, (await getRelease(database.db, row.switcherVersion))!);
        }
        const release = releases.get(row.switcherVersion)!;
        seen.add(release.version);
        const expected = await scoreOf(release, row.features);
        assert.ok(
          Math.abs(row.switcherScore - expected) < 1e-9,
          `${row.id}: logged ${row.switcherScore} with ${release.version}, which scores ${expected}`,
        );
        assert.equal(row.switcherThreshold, release.threshold, `${row.id}: threshold of ${release.version}`);
        // No budget and a healthy cloud: the route reason follows from the logged score and threshold alone.
        const above = row.switcherScore >= row.switcherThreshold;
        assert.equal(row.routeReason, above ? "above_threshold" : "below_threshold");
        assert.deepEqual(answered.get(row.id), { version: row.switcherVersion, threshold: row.switcherThreshold });
      }
      assert.ok(seen.size >= 3, `decisions were scored by ${[...seen].join(", ")}: the swaps happened under load`);
    } finally {
      database.close();
      await stop();
    }
  },
});
