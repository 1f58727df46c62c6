/**
 * The release registry (loop/registry.ts): seeded from the manifest, so rollback works from the first start;
 * publish, activate, reject and rollback keep the database and the manifest in step, under the job lock; rule
 * releases are published, served and scored like the evaluation's baselines; stored specs are decoded, never cast.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { getSwitcherVersion, insertSwitcherVersion } from "../db/queries.ts";
import { AppError } from "../errors.ts";
import { acquireJobLock, jobLockPath } from "../loop/job_lock.ts";
import {
  activateRelease,
  activeRelease,
  listReleases,
  publishRelease,
  rejectRelease,
  rollbackRelease,
  seedFromManifest,
} from "../loop/registry.ts";
import { decodeSwitcherRow, encodeSwitcherRow } from "../release/decode.ts";
import { BUILTIN_SWITCHER_VERSION, ruleRelease, ruleScore } from "../release/release.ts";
import { policies } from "../switcher/metrics.ts";
import { loadModelSet, readManifest } from "../workers/artefacts.ts";
import { createInProcessInference } from "../workers/in_process.ts";
import { copy } from "./fixtures/copy_dir.ts";
import { TINY, tinySwitcher } from "./fixtures/loop_service.ts";

/** A temporary copy of the tiny model set, shipped with an ONNX switcher in its manifest, and a fresh database. */
async function fixture(): Promise<{ dir: string; db: Awaited<ReturnType<typeof openDatabase>>; shipped: string }> {
  const dir = await Deno.makeTempDir();
  await copy(TINY, dir);
  // Ship a switcher the way a model build does: its file beside the manifest, its entry in it (no database yet).
  const shipped = await tinySwitcher("switcher-shipped", 0.6);
  const spec = shipped.scorer.kind === "onnx" ? shipped.scorer.spec : null;
  await Deno.writeFile(`${dir}/${spec!.file}`, shipped.artefact!);
  const manifest = await readManifest(dir);
  await Deno.writeTextFile(`${dir}/manifest.json`, JSON.stringify({ ...manifest, switcher: spec }, null, 2));
  return { dir, db: await openDatabase(":memory:"), shipped: shipped.version };
}

Deno.test("registry: a job's release on a fresh database rolls back to the switcher shipped in the manifest", async () => {
  const { dir, db, shipped } = await fixture();
  try {
    // As `deno task dmd` does on a database the service never opened.
    const v2 = await publishRelease(db.db, await tinySwitcher("switcher-v2", 0.4, 2), {
      modelsDir: dir,
      activate: true,
    });
    assert.equal(v2.status, "active");
    assert.equal(v2.parentVersion, shipped);
    assert.deepEqual((await listReleases(db.db)).map((r) => [r.version, r.status]).sort(), [
      [shipped, "retired"],
      ["switcher-v2", "active"],
    ]);
    assert.equal((await readManifest(dir)).switcher?.version, "switcher-v2");

    const { from, to } = await rollbackRelease(db.db, { modelsDir: dir });
    assert.deepEqual([from, to.version, to.threshold], ["switcher-v2", shipped, 0.6]);
    const manifest = await readManifest(dir);
    assert.equal(manifest.switcher?.version, shipped);
    // The model set on disk serves what the database says.
    const { init } = await loadModelSet(dir, { warmupRuns: 0 });
    assert.equal(init.switcher.version, shipped);
    assert.deepEqual(init.switcher.artefact, to.artefact);
    await assert.rejects(() => rollbackRelease(db.db, { modelsDir: dir }), isAppError("NOT_FOUND"));
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registry: without a switcher in the manifest, the built-in rule is the first release", async () => {
  const dir = await Deno.makeTempDir();
  const db = await openDatabase(":memory:");
  try {
    await copy(TINY, dir);
    const seeded = await seedFromManifest(db.db, { modelsDir: dir });
    assert.deepEqual([seeded.version, seeded.status, seeded.threshold], [BUILTIN_SWITCHER_VERSION, "active", 0.5]);
    await publishRelease(db.db, await tinySwitcher("switcher-v1", 0.5), { modelsDir: dir, activate: true });
    const { to } = await rollbackRelease(db.db, { modelsDir: dir });
    assert.equal(to.version, BUILTIN_SWITCHER_VERSION);
    assert.equal((await readManifest(dir)).switcher?.rule, "max_prob");
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registry: a rule release is published, served from the manifest, and scores as the baselines do", async () => {
  const { dir, db } = await fixture();
  try {
    const rule = ruleRelease({ version: "switcher-margin-1", rule: "margin", threshold: 0.3, calibration: { x: 1 } });
    await publishRelease(db.db, rule, { modelsDir: dir, activate: true });
    const active = (await activeRelease(db.db))!;
    assert.deepEqual(active.scorer, { kind: "rule", rule: "margin" });
    assert.deepEqual([active.threshold, active.calibration, active.artefact], [0.3, { x: 1 }, null]);
    const { init } = await loadModelSet(dir, { warmupRuns: 0 });
    assert.deepEqual([init.switcher.version, init.switcher.scorer], ["switcher-margin-1", active.scorer]);

    const engine = await createInProcessInference(init);
    try {
      const items = Array.from({ length: 5 }, (_, k) => ({
        data: Float32Array.from({ length: 6 * 6 }, (_, i) => ((i * 31 + k * 17) % 10) / 10),
        length: 6,
      }));
      const out = await engine.classify(items);
      assert.deepEqual(out.scoredBy, { version: "switcher-margin-1", threshold: 0.3 });
      const expected = policies.margin(out.results.map((r) => r.features[1]));
      out.results.forEach((r, i) => assert.equal(r.score, expected[i]));
      // The other rules, the same way.
      for (const r of out.results) {
        assert.equal(ruleScore("max_prob", r.features), 1 - r.features[0]);
        assert.equal(ruleScore("entropy", r.features), r.features[2]);
      }
    } finally {
      await engine.close();
    }
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registry: changes wait for nobody: a held job lock refuses them with CONFLICT", async () => {
  const { dir, db } = await fixture();
  const lock = await acquireJobLock(jobLockPath(dir));
  try {
    const v2 = await tinySwitcher("switcher-v2", 0.4);
    await assert.rejects(() => publishRelease(db.db, v2, { modelsDir: dir, activate: true }), isAppError("CONFLICT"));
    await assert.rejects(() => rollbackRelease(db.db, { modelsDir: dir }), isAppError("CONFLICT"));
    // The holder passes its lock.
    await publishRelease(db.db, v2, { modelsDir: dir, activate: true, lock });
    assert.equal((await activeRelease(db.db))!.version, "switcher-v2");
  } finally {
    await lock.release();
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("registry: activate and reject; a rejected release is never activated, the active one cannot be rejected", async () => {
  const { dir, db, shipped } = await fixture();
  try {
    await publishRelease(db.db, await tinySwitcher("switcher-a", 0.4), { modelsDir: dir });
    await publishRelease(db.db, await tinySwitcher("switcher-b", 0.45), { modelsDir: dir });
    assert.equal((await activeRelease(db.db))!.version, shipped, "published, not activated");
    const { from, to } = await activateRelease(db.db, "switcher-a", { modelsDir: dir });
    assert.deepEqual([from, to.version], [shipped, "switcher-a"]);
    assert.equal((await readManifest(dir)).switcher?.version, "switcher-a");
    await rejectRelease(db.db, "switcher-b", { modelsDir: dir });
    await assert.rejects(() => activateRelease(db.db, "switcher-b", { modelsDir: dir }), isAppError("INVALID_INPUT"));
    await assert.rejects(() => rejectRelease(db.db, "switcher-a", { modelsDir: dir }), isAppError("INVALID_INPUT"));
    await assert.rejects(() => rejectRelease(db.db, "none", { modelsDir: dir }), isAppError("NOT_FOUND"));
    await assert.rejects(
      () =>
        publishRelease(db.db, ruleRelease({ version: "../x", rule: "entropy", threshold: 0.5 }), { modelsDir: dir }),
      isAppError("INVALID_INPUT", /a version is letters, digits/),
    );
  } finally {
    db.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("decodeSwitcherRow() checks the stored spec and names the field; encode and decode round-trip", async () => {
  const onnx = await tinySwitcher("switcher-x", 0.5);
  const rule = ruleRelease({ version: "switcher-r", rule: "entropy", threshold: 0.7, hop: 1, nowMs: 5 });
  for (const release of [onnx, rule]) assert.deepEqual(decodeSwitcherRow(encodeSwitcherRow(release)), release);
  const row = encodeSwitcherRow(onnx);
  const bad = (spec: Record<string, unknown> | null) => () => decodeSwitcherRow({ ...row, spec });
  assert.throws(bad(null), isAppError("MODEL_NOT_READY", /^Cannot read release switcher-x: it was recorded without/));
  assert.throws(bad({ ...row.spec, features: "p_max" }), /its spec's features are not a list of names/);
  assert.throws(bad({ ...row.spec, version: "other" }), /its spec names version "other"/);
  assert.throws(bad({ ...row.spec, outputs: [] }), /no output named "score"/);
  assert.throws(bad({ ...row.spec, inputs: [{ name: "f", shape: [1.5], dtype: "float32" }] }), /inputs\[0\]\.shape/);
  assert.throws(bad({ kind: "rule", rule: "coin", version: "switcher-x" }), /its rule must be one of max_prob/);
  assert.throws(bad({ kind: "tree" }), /its spec kind "tree" is unknown/);
  assert.throws(() => decodeSwitcherRow({ ...row, role: "edge" }), /it is a edge release, not a switcher/);

  // A row as stored in a database from before releases: no kind; read as an ONNX switcher of hop 0.
  const db = await openDatabase(":memory:");
  try {
    const { kind: _kind, ...legacySpec } = row.spec as Record<string, unknown>;
    await insertSwitcherVersion(db.db, { ...row, role: undefined, hop: undefined, spec: legacySpec });
    assert.deepEqual(decodeSwitcherRow((await getSwitcherVersion(db.db, "switcher-x"))!), onnx);
  } finally {
    db.close();
  }
});

function isAppError(code: string, message?: RegExp) {
  return (e: unknown) => e instanceof AppError && e.code === code && (!message || message.test(e.message));
}
