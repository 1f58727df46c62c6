/**
 * The learning loop end to end on the real service (tiny fixture models, real worker pool, real reference cloud
 * server, real libSQL file, real HTTP on loopback): exploration logs pairs with their propensities, a retrained
 * switcher is promoted and served without a restart while requests keep succeeding, rollback restores the previous
 * version, a corrupt version is refused while the old one keeps serving, and a second retraining run is refused.
 */
import assert from "node:assert/strict";
import { until } from "./fixtures/wait.ts";
import { openDatabase } from "../db/client.ts";
import { insertSwitcherVersion, listDecisions, promoteSwitcherVersion } from "../db/queries.ts";
import { acquireJobLock, LockBusyError } from "../loop/job_lock.ts";
import { retrain } from "../loop/retrain.ts";
import { DEFAULT_CANDIDATES } from "../switcher/candidates.ts";
import { readManifest } from "../workers/artefacts.ts";
import { startLoopService, TOKEN } from "./fixtures/loop_service.ts";

function sequence(rng: () => number) {
  return Array.from({ length: 6 }, () => [[rng(), rng(), rng()], [rng(), rng(), rng()]]);
}

Deno.test({
  name: "loop: shadow pairs -> retrain -> promoted and served without restart -> rollback; corrupt versions refused",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const { service, models, dbUrl, stop } = await startLoopService({
      EXPLORATION_RATE: "0.5",
      SHADOW_BUDGET_PER_S: "0",
    });
    const database = await openDatabase(dbUrl, {});
    let seed = 1;
    const rng = () => ((seed = (seed * 16807) % 2147483647) / 2147483647);
    const classify = async () => {
      const res = await fetch(`${service.url}/v1/classify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ layout: "tiny", fps: 10, frames: sequence(rng) }),
      });
      return { status: res.status, body: await res.json() };
    };
    const admin = async (path: string, method = "POST") => {
      const res = await fetch(`${service.url}/admin${path}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
      return { status: res.status, body: await res.json() };
    };
    try {
      // Traffic: offloads (score >= 0.5) and, of the kept requests, about half shadowed.
      for (let i = 0; i < 40; i++) await Promise.all(Array.from({ length: 10 }, classify));
      // Every answered decision reaches the database (through the writer thread; shadowed ones after their call).
      await until(async () => (await listDecisions(database.db, { limit: 10_000 })).length >= 400);
      const rows = await listDecisions(database.db, { limit: 10_000 });
      assert.equal(rows.length, 400);
      const kept = rows.filter((r) => r.route === "edge");
      const shadow = rows.filter((r) => r.shadow);
      // The built-in score (1 - max probability, threshold 0.5) offloads most of this traffic; some is kept.
      assert.ok(kept.length > 0 && shadow.length > 0 && shadow.length <= kept.length);
      for (const r of rows) assert.equal(r.offloadProbability, r.route === "cloud" ? 1 : 0.5);
      for (const r of shadow) {
        assert.equal(r.route, "edge");
        assert.equal(r.cloudProbs?.length, 3);
      }
      // Nothing trained yet: the built-in rule serves, and it is the registry's first release.
      const start = (await admin("/switcher", "GET")).body;
      assert.equal(start.serving.version, "builtin-max-probability");
      assert.deepEqual(start.versions.map((v: { version: string; status: string }) => [v.version, v.status]), [
        ["builtin-max-probability", "active"],
      ]);

      // Retrain: no active version yet, so the candidate passes the gate and becomes active.
      const manifest = await readManifest(models);
      const gateSmall = { minPairs: 10, minDisagreements: 1 };
      const first = await retrain({
        db: database.db,
        modelsDir: models,
        manifest,
        minNewPairs: 50,
        gate: gateSmall,
        version: "switcher-v1",
        epochs: 20,
        // A network release (the corrupt versions below copy its spec), not one of the rules.
        candidates: DEFAULT_CANDIDATES.filter((c) => c.kind === "mlp"),
      });
      assert.equal(first.outcome, "promoted", first.reason);
      assert.equal(first.counts.shadow, shadow.length);
      assert.equal((await readManifest(models)).switcher?.version, "switcher-v1");
      // Without exploration's pairs (a loop that learns from offloads alone): only offloaded pairs, nothing stored.
      const offloadsOnly = await retrain({
        db: database.db,
        modelsDir: models,
        manifest,
        minNewPairs: 0,
        gate: gateSmall,
        includeShadow: false,
        dryRun: true,
        epochs: 5,
      });
      assert.equal(offloadsOnly.counts.shadow, 0);
      assert.equal(offloadsOnly.counts.offloaded, first.counts.offloaded);
      // The candidate chosen by grouped cross-validation: a network (its ONNX bytes: an MLP or the rules' rank
      // average) or a rule (no model file).
      if (/^(mlp|rank):/.test(offloadsOnly.candidateName ?? "")) {
        assert.ok(offloadsOnly.candidate instanceof Uint8Array && offloadsOnly.candidate.length > 0);
      } else assert.match(offloadsOnly.candidateName ?? "", /^rule:(max_prob|margin|entropy)$/);
      assert.equal((await readManifest(models)).switcher?.version, "switcher-v1");

      // Served without a restart while requests keep succeeding.
      const during = Array.from({ length: 30 }, classify);
      const reload = await admin("/switcher/reload");
      const statuses = (await Promise.all(during)).map((r) => r.status);
      assert.deepEqual(reload.body, { version: "switcher-v1", changed: true });
      assert.ok(statuses.every((s) => s === 200));
      const after = await classify();
      assert.equal(after.body.switcher.version, "switcher-v1");
      assert.equal(after.body.switcher.threshold, first.threshold);

      // A second version (tolerance lets it through), then roll back to the first.
      const second = await retrain({
        db: database.db,
        modelsDir: models,
        manifest,
        minNewPairs: 0,
        gate: { ...gateSmall, tolerance: 1 },
        version: "switcher-v2",
        epochs: 20,
        seed: 2,
      });
      assert.equal(second.outcome, "promoted");
      assert.equal((await admin("/switcher/reload")).body.version, "switcher-v2");
      const rolled = await admin("/switcher/rollback");
      assert.equal(rolled.status, 200);
      assert.deepEqual([rolled.body.from, rolled.body.to, rolled.body.serving.version], [
        "switcher-v2",
        "switcher-v1",
        "switcher-v1",
      ]);
      assert.equal((await classify()).body.switcher.version, "switcher-v1");

      // Corrupt versions are refused; the old one keeps serving.
      const v1 = (await admin("/switcher", "GET")).body.versions.find((v: { version: string }) =>
        v.version === "switcher-v1"
      );
      const garbage = new TextEncoder().encode("not an onnx model");
      const digest = Array.from(
        new Uint8Array(await crypto.subtle.digest("SHA-256", garbage)),
        (b) => b.toString(16).padStart(2, "0"),
      ).join("");
      const spec = { ...(await readManifest(models)).switcher!, version: "switcher-bad", sha256: digest };
      await insertSwitcherVersion(database.db, {
        ...v1,
        version: "switcher-bad",
        status: "candidate",
        sha256: digest,
        artefact: garbage,
        spec: spec as unknown as Record<string, unknown>,
      });
      await promoteSwitcherVersion(database.db, "switcher-bad");
      const refused = await admin("/switcher/reload");
      assert.equal(refused.body.version, "switcher-v1");
      assert.equal(refused.body.changed, false);
      assert.equal(refused.body.refused.version, "switcher-bad");
      assert.match(refused.body.refused.reason, /^the workers could not load it/);
      assert.equal((await classify()).status, 200);
      assert.equal((await admin("/switcher", "GET")).body.serving.refused.version, "switcher-bad");

      await insertSwitcherVersion(database.db, {
        ...v1,
        version: "switcher-tampered",
        status: "candidate",
        sha256: "0".repeat(64),
        artefact: garbage,
        spec: { ...spec, version: "switcher-tampered" } as unknown as Record<string, unknown>,
      });
      await promoteSwitcherVersion(database.db, "switcher-tampered");
      const tampered = await admin("/switcher/reload");
      assert.deepEqual(tampered.body.refused, {
        version: "switcher-tampered",
        reason: "its artefact does not match its sha256",
      });
      assert.equal((await classify()).body.switcher.version, "switcher-v1");

      // Admin calls need the token.
      assert.equal((await fetch(`${service.url}/admin/switcher/reload`, { method: "POST" })).status, 401);
    } finally {
      database.close();
      await stop();
    }
  },
});

Deno.test("retrain lock: a second run is refused while one holds it; a stale lock is taken over", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/.retrain.lock`;
  try {
    const lock = await acquireJobLock(path);
    await assert.rejects(
      () => acquireJobLock(path),
      (e: Error) => e instanceof LockBusyError && /pid \d+/.test(e.message),
    );
    await lock.release();
    const again = await acquireJobLock(path);
    await again.release();
    await Deno.writeTextFile(path, "{}");
    await Deno.utime(path, new Date(0), new Date(0));
    const taken = await acquireJobLock(path, { staleMs: 1000 });
    await taken.release();
    assert.equal(await Deno.stat(path).then(() => true, () => false), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
