/**
 * The climb past the first cloud tier (serve/cascade.ts) with fake tier models: escalation at the threshold, a
 * switcher that keeps, a failed tier falling back to the best answer so far, a frames tier skipped for a keypoint
 * request, a spent budget, an open circuit, hop exploration; and the tier list's parsing (serve/tiers.ts).
 */
import assert from "node:assert/strict";
import { loadConfig } from "../config.ts";
import { AppError } from "../errors.ts";
import {
  type ClimbStart,
  createCascade,
  type HopSwitcher,
  type TierModel,
  type TierOutcome,
} from "../serve/cascade.ts";
import { type CloudTier, parseTiers, type TierDefaults } from "../serve/tiers.ts";
import { ruleScore } from "../switcher/rules.ts";

const LABELS = ["a", "b", "c"];
const DEFAULTS: TierDefaults = {
  timeoutMs: 1000,
  budgetPerS: 0,
  breaker: { failures: 5, failureRatio: 0.5, window: 20, openMs: 5000, maxOpenMs: 60000 },
  explore: 0,
};
const TIERS_JSON = JSON.stringify([
  { name: "edge", kind: "edge" },
  { name: "cloud", kind: "oip", url: "http://127.0.0.1:9" },
  { name: "big", kind: "oip", url: "http://127.0.0.1:9", model: "big", pricePerCall: 0.5 },
  { name: "vlm", kind: "openai", url: "http://127.0.0.1:9", model: "v", costMs: 900, explore: 0.5 },
]);
const TIERS = parseTiers(TIERS_JSON, { defaults: DEFAULTS, env: {} }) as [unknown, CloudTier, CloudTier, CloudTier];

/** A fake tier: fixed outcomes, calls counted, budget and circuit switchable. */
function fakeTier(tier: CloudTier, outcome: TierOutcome) {
  const state = { calls: 0, tokens: Infinity, down: null as AppError | null };
  const model: TierModel = {
    tier,
    call: () => {
      state.calls++;
      return Promise.resolve(outcome);
    },
    down: () => state.down,
    takeToken: () => state.tokens-- > 0,
  };
  return { model, state };
}

const ok = (probs: number[], version: string): TierOutcome => ({
  probs: Float64Array.from(probs),
  hasProbabilities: true,
  version,
  ms: 5,
});
const start = (probs: number[], clip = true): ClimbStart => ({
  input: { window: new Float32Array(4), clip: clip ? { kind: "jpeg", images: [new Uint8Array([1])] } : null },
  probs: Float64Array.from(probs),
  version: "cloud-1",
  ms: 3,
});
/** max_prob rule at threshold t: escalate when 1 - pMax >= t. */
const rule = (threshold: number): HopSwitcher => ({
  version: `rule-${threshold}`,
  score: (features) => ruleScore("max_prob", features),
  threshold,
});

Deno.test("cascade: climbs while each hop's score reaches its threshold; the last tier answers", async () => {
  const big = fakeTier(TIERS[2], ok([0.2, 0.5, 0.3], "big-1"));
  const vlm = fakeTier(TIERS[3], { ...ok([0, 0, 1], "vlm-1"), hasProbabilities: false } as TierOutcome);
  const cascade = createCascade({
    first: TIERS[1],
    models: [big.model, vlm.model],
    switcher: () => rule(0.4),
    labels: LABELS,
  });
  const [c] = await cascade.climb([start([0.4, 0.35, 0.25])]);
  assert.equal(c.tierName, "vlm");
  assert.equal(c.tier, 3);
  assert.equal(c.hasProbabilities, false);
  assert.deepEqual(Array.from(c.probs), [0, 0, 1]);
  assert.deepEqual(c.rows.map((r) => [r.tier, r.tierName, r.label, r.next, r.answered]), [
    [1, "cloud", "a", "escalated", false],
    [2, "big", "b", "escalated", false],
    [3, "vlm", "c", "last_tier", true],
  ]);
  // Score of tier 1 = 1 - 0.4 = 0.6 >= 0.4; the configured costs and prices are logged.
  assert.ok(Math.abs(c.rows[0].switcherScore! - 0.6) < 1e-12);
  assert.equal(c.rows[0].switcherThreshold, 0.4);
  assert.equal(c.rows[1].price, 0.5);
  assert.equal(c.rows[2].costMs, 900);
  assert.equal(c.rows[2].hasProbabilities, false);
  assert.equal(c.explored, null);
});

Deno.test("cascade: a switcher that keeps stops the climb at its tier (score just below the threshold)", async () => {
  const big = fakeTier(TIERS[2], ok([0.2, 0.5, 0.3], "big-1"));
  const vlm = fakeTier(TIERS[3], ok([0, 0, 1], "vlm-1"));
  const cascade = createCascade({
    first: TIERS[1],
    models: [big.model, vlm.model],
    switcher: () => rule(0.5),
    labels: LABELS,
    random: () => 0.99,
  });
  // 1 - 0.5 = 0.5 >= 0.5 escalates at the threshold; big answers 0.5 too, so it escalates again.
  const [at] = await cascade.climb([start([0.5, 0.3, 0.2])]);
  assert.equal(at.tierName, "vlm");
  const [kept] = await cascade.climb([start([0.6, 0.3, 0.1])]);
  assert.equal(kept.tierName, "cloud");
  assert.equal(kept.rows.length, 1);
  assert.equal(kept.rows[0].next, "kept");
  assert.equal(kept.rows[0].answered, true);
});

Deno.test("cascade: a failed tier leaves the best answer so far, and its error is logged", async () => {
  const big = fakeTier(TIERS[2], ok([0.1, 0.8, 0.1], "big-1"));
  const failure = new AppError("OFFLOAD_TIMEOUT", "Cannot classify with the VLM: no reply within 10 ms");
  const vlm = fakeTier(TIERS[3], { error: failure, reason: "timeout", ms: 10 });
  const cascade = createCascade({
    first: TIERS[1],
    models: [big.model, vlm.model],
    switcher: () => rule(0),
    labels: LABELS,
  });
  const [c] = await cascade.climb([start([0.4, 0.3, 0.3])]);
  assert.equal(c.tierName, "big");
  assert.equal(c.version, "big-1");
  assert.deepEqual(c.rows.map((r) => [r.tierName, r.answered, r.next, r.error, r.errorReason]), [
    ["cloud", false, "escalated", null, null],
    ["big", true, "escalated", null, null],
    ["vlm", false, "failed", "OFFLOAD_TIMEOUT", "timeout"],
  ]);
});

Deno.test("cascade: frames tiers are skipped for keypoint requests; spent budgets and open circuits stop the climb", async () => {
  const big = fakeTier(TIERS[2], ok([0.4, 0.3, 0.3], "big-1"));
  const vlm = fakeTier(TIERS[3], ok([0, 0, 1], "vlm-1"));
  const cascade = createCascade({
    first: TIERS[1],
    models: [big.model, vlm.model],
    switcher: () => rule(0),
    labels: LABELS,
  });
  const [keypoints] = await cascade.climb([start([0.4, 0.3, 0.3], false)]);
  assert.equal(keypoints.tierName, "big");
  assert.equal(keypoints.rows[1].next, "no_frames");
  assert.equal(vlm.state.calls, 0, "no call to a frames tier without frames");

  big.state.tokens = 0;
  const [spent] = await cascade.climb([start([0.4, 0.3, 0.3])]);
  assert.equal(spent.tierName, "cloud");
  assert.equal(spent.rows[0].next, "budget_exhausted");

  big.state.tokens = Infinity;
  big.state.down = new AppError("CIRCUIT_OPEN", "Cannot offload: the cloud failed repeatedly");
  const [open] = await cascade.climb([start([0.4, 0.3, 0.3])]);
  assert.equal(open.tierName, "cloud");
  assert.deepEqual(open.rows.map((r) => [r.tierName, r.next, r.error, r.ms]), [
    ["cloud", "cloud_unavailable", null, 3],
    ["big", "last_tier", "CIRCUIT_OPEN", null],
  ]);
  assert.equal(big.state.calls, 1, "an open circuit makes no call");
});

Deno.test("cascade: hop exploration calls the next tier for a kept request and logs it as a shadow row", async () => {
  const big = fakeTier(TIERS[2], ok([0.9, 0.05, 0.05], "big-1"));
  const vlm = fakeTier(TIERS[3], ok([0, 1, 0], "vlm-1"));
  const draws = [0.4];
  const cascade = createCascade({
    first: TIERS[1],
    models: [big.model, vlm.model],
    switcher: (hop) => (hop === 1 ? rule(0) : rule(0.5)),
    labels: LABELS,
    random: () => draws.shift() ?? 0.99,
  });
  const [c] = await cascade.climb([start([0.4, 0.3, 0.3])]);
  // big keeps (1 - 0.9 < 0.5); vlm explores at 0.5 (draw 0.4 < 0.5): the answer stays big's.
  assert.equal(c.tierName, "big");
  assert.equal(c.rows[1].next, "kept");
  const explored = await c.explored!;
  assert.deepEqual([explored.tierName, explored.shadow, explored.propensity, explored.label, explored.answered], [
    "vlm",
    true,
    0.5,
    "b",
    false,
  ]);
});

Deno.test("tiers: parsed with defaults; bad lists refused with the tier named; tier 1 sets the CLOUD_* values", () => {
  assert.deepEqual(TIERS.map((t) => (t as CloudTier).name), ["edge", "cloud", "big", "vlm"]);
  const vlm = TIERS[3] as Extract<CloudTier, { kind: "openai" }>;
  assert.deepEqual([vlm.input, vlm.frames, vlm.constraint, vlm.logprobs, vlm.explore], [
    "frames",
    8,
    "json_schema",
    true,
    0.5,
  ]);
  const bad: [unknown, RegExp][] = [
    [{}, /expected an array of 2 or more tiers/],
    [[{ name: "cloud", kind: "oip" }, { name: "edge", kind: "edge" }], /tier 0: the first tier is the edge model/],
    [
      [{ name: "edge", kind: "edge" }, { name: "v", kind: "openai", url: "http://x", model: "m" }],
      /tier 1: the first cloud tier must be an oip tier/,
    ],
    [
      [{ name: "edge", kind: "edge" }, { name: "c", kind: "oip", input: "frames" }],
      /tier 1: an oip tier takes keypoints/,
    ],
    [[{ name: "edge", kind: "edge" }, { name: "c", kind: "oip", url: "http://u:p@x" }], /url must hold no credentials/],
    [[{ name: "edge", kind: "edge" }, { name: "c", kind: "oip", timeout: 3 }], /has no member "timeout"/],
    [[{ name: "edge", kind: "edge" }, { name: "edge", kind: "oip" }], /names must be unique/],
  ];
  for (const [raw, message] of bad) {
    assert.throws(() => parseTiers(JSON.stringify(raw), { defaults: DEFAULTS, env: {} }), message);
  }
  const key = "sk-tier-secret-000";
  const config = loadConfig({
    TIERS: JSON.stringify([
      { name: "edge", kind: "edge" },
      { name: "cloud", kind: "oip", url: "http://127.0.0.1:8001", model: "m", timeoutMs: 250, apiKeyEnv: "TIER1_KEY" },
    ]),
    TIER1_KEY: key,
    CLOUD_URL: "http://127.0.0.1:7000",
  });
  assert.equal(config.cloudUrl, "http://127.0.0.1:8001");
  assert.equal(config.cloudModelName, "m");
  assert.equal(config.cloudTimeoutMs, 250);
  assert.equal(config.switcherThreshold, undefined);
  const demo = loadConfig({ TIERS_FILE: new URL("../docs/tiers-three-demo.json", import.meta.url).pathname });
  assert.deepEqual(demo.tiers!.map((t) => (t.kind === "edge" ? null : t.threshold)), [null, 0, 0]);
  assert.equal(demo.switcherThreshold, 0, "tier 1's threshold is hop 0's");
  assert.deepEqual(config.cloudAuth, { header: "authorization", value: `Bearer ${key}` });
  assert.throws(() => loadConfig({ TIERS: "[", TIERS_FILE: "x.json" }), /set TIERS or TIERS_FILE, not both/);
  assert.equal(loadConfig({}).tiers, null);
});
