/**
 * Tiers end to end on 127.0.0.1: the whole service (default models, pose workers, the reference OIP cloud server
 * it starts) with more tiers configured — the reference VLM server over the OpenAI-compatible API, then a tier
 * whose server is down. A clip climbs edge -> OIP cloud -> VLM, the dead tier's failure falls back to the VLM's
 * answer; a keypoint sequence stops at the OIP cloud (the VLM takes frames); every tier's output is in the
 * decision log (decision_tiers) and the metrics.
 */
import assert from "node:assert/strict";
import { Buffer } from "node:buffer";
import { loadConfig, loadVlmServerConfig } from "../config.ts";
import { startVlmReferenceServer } from "../cloud/vlm_reference_server.ts";
import { openDatabase } from "../db/client.ts";
import { listDecisionTiers } from "../db/queries.ts";
import { tierFigures } from "../db/tier_analytics.ts";
import { seedRegistry } from "../loop/registry.ts";
import { startService } from "../main.ts";
import { ruleRelease } from "../release/release.ts";
import { readDecision } from "./fixtures/db_records.ts";
import { framesMissing, framesServiceEnv, readVtestFrames } from "./fixtures/opencv_frames.ts";

if (framesMissing) console.error(`tiers_service_test: ignored: ${framesMissing}`);

function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

async function post(url: string, path: string, body: unknown) {
  const res = await fetch(`${url}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

Deno.test({
  name:
    "tiers: a clip climbs edge -> OIP cloud -> VLM, a dead fourth tier falls back to the VLM's answer; keypoints stop at the OIP cloud",
  ignore: framesMissing !== "",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    const dbUrl = `file:${dir}/decisions.db`;
    // Hops 1 and 2 escalate everything (max_prob rule at threshold 0): the climb is decided by the test, not by
    // how sure the models happen to be.
    const database = await openDatabase(dbUrl);
    for (const hop of [1, 2]) {
      await seedRegistry(database.db, ruleRelease({ version: `all-hop${hop}`, rule: "max_prob", threshold: 0, hop }));
    }
    database.close();
    const vlm = await startVlmReferenceServer(loadVlmServerConfig({ VLM_SERVER_PORT: "0" }));
    const tiers = [
      { name: "edge", kind: "edge" },
      { name: "cloud", kind: "oip", input: "keypoints" },
      {
        name: "vlm",
        kind: "openai",
        input: "frames",
        url: vlm.url,
        model: vlm.modelName,
        frames: 4,
        timeoutMs: 60_000,
        pricePerCall: 0.01,
      },
      {
        name: "dead",
        kind: "openai",
        input: "frames",
        url: `http://127.0.0.1:${closedPort()}`,
        model: "x",
        timeoutMs: 2000,
      },
    ];
    const service = await startService(loadConfig({
      ...framesServiceEnv(dbUrl),
      // Hop 0 offloads everything; no exploration draws.
      SWITCHER_THRESHOLD: "0",
      EXPLORATION_RATE: "0",
      CLOUD_TIMEOUT_MS: "10000",
      TIERS: JSON.stringify(tiers),
    }));
    let clipId = "", seqId = "";
    try {
      const images = await readVtestFrames(8);
      const clip = await post(service.url, "/v1/classify/frames", {
        fps: 8,
        images: images.map((b) => Buffer.from(b).toString("base64")),
      });
      assert.equal(clip.status, 200, JSON.stringify(clip.body));
      const a = clip.body;
      assert.equal(a.route, "cloud");
      assert.equal(a.tiers.answered, "vlm");
      assert.deepEqual(a.tiers.reached.map((t: { name: string; error: string | null }) => [t.name, t.error]), [
        ["cloud", null],
        ["vlm", null],
        ["dead", "OFFLOAD_FAILED"],
      ]);
      const vlmTier = a.tiers.reached[1];
      assert.equal(a.label, vlmTier.label);
      assert.equal(a.probability, vlmTier.probability);
      assert.equal(a.cloud.label, a.tiers.reached[0].label, "the answer's cloud is tier 1");
      clipId = a.decisionId;

      const sample = JSON.parse(await Deno.readTextFile(new URL("../wasm-models/samples/walk.json", import.meta.url)));
      const seq = await post(service.url, "/v1/classify", sample);
      assert.equal(seq.status, 200, JSON.stringify(seq.body));
      assert.equal(seq.body.tiers.answered, "cloud");
      assert.deepEqual(seq.body.tiers.reached.map((t: { name: string }) => t.name), ["cloud"]);
      seqId = seq.body.decisionId;

      const metrics = await (await fetch(`${service.url}/metrics`)).text();
      assert.match(metrics, /dmd_tier_answers_total\{tier="vlm"[^}]*\} 1/);
      assert.match(metrics, /dmd_tier_calls_total\{tier="dead",outcome="OFFLOAD_FAILED",shadow="false"[^}]*\} 1/);
      assert.match(metrics, /dmd_tier_price_total\{tier="vlm"[^}]*\} 0.01/);
    } finally {
      await service.shutdown();
      await vlm.shutdown();
    }
    const row = await readDecision(dbUrl, clipId);
    const db2 = await openDatabase(dbUrl);
    try {
      const rows = (await listDecisionTiers(db2.db)).filter((r) => r.decisionId === clipId);
      assert.deepEqual(rows.map((r) => [r.tier, r.tierName, r.answered, r.next, r.error, r.errorReason]), [
        [1, "cloud", false, "escalated", null, null],
        [2, "vlm", true, "escalated", null, null],
        [3, "dead", false, "failed", "OFFLOAD_FAILED", "unreachable"],
      ]);
      assert.equal(row?.label, rows[1].label, "the decision's answer is the VLM's");
      assert.equal(row?.cloudLabel, rows[0].label, "its cloud columns stay tier 1's");
      assert.equal(rows[1].price, 0.01);
      assert.equal(rows[0].switcherVersion, "all-hop1");
      const figures = await tierFigures(db2.db, { fromMs: 0, toMs: Date.now() + 1 });
      assert.deepEqual(figures.map((f) => [f.name, f.calls, f.answered, f.share, f.errors]), [
        ["cloud", 2, 1, 0.5, 0],
        ["vlm", 1, 1, 0.5, 0],
        ["dead", 1, 0, 0, 1],
      ]);
      assert.equal(figures[1].agreement, rows[1].label === rows[0].label ? 1 : 0);
      assert.equal(figures[1].price, 0.01);
      const seqRows = (await listDecisionTiers(db2.db)).filter((r) => r.decisionId === seqId);
      assert.deepEqual(seqRows.map((r) => [r.tierName, r.answered, r.next]), [["cloud", true, "no_frames"]]);
      // The analyst's terminal report shows the same tiers.
      const report = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          "scripts/analytics.ts",
          "--db",
          dbUrl,
          "--from",
          new Date(Date.now() - 3_600_000).toISOString(),
          "--report",
          "tiers",
        ],
        cwd: new URL("..", import.meta.url),
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(report.stdout);
      assert.equal(report.code, 0, new TextDecoder().decode(report.stderr));
      assert.match(
        text,
        /^== tiers ==\ntier +name +calls +explored +answered +share +errors +agrees +mean ms +cost ms +price$/m,
      );
      assert.match(text, /^ +2 +vlm +1 +0 +1 +50\.0% +0 /m);
      assert.match(text, /^ +3 +dead +1 +0 +0 +0\.0% +1 /m);
    } finally {
      db2.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
