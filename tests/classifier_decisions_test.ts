/**
 * What a decision row says about how the request was routed: the offload probability in force (inverse-propensity
 * weights depend on it), the cloud's known state as an input of the decision, and the release and threshold that
 * scored it.
 */
import assert from "node:assert/strict";
import { openDatabase } from "../db/client.ts";
import { createDecisionLog } from "../db/decision_log.ts";
import { getDecision } from "../db/queries.ts";
import type { DecisionRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { createHybridClassifier, type HybridOptions, type SequenceItem } from "../serve/classifier.ts";
import { answerWhenLogged } from "../serve/durable.ts";
import { createOffloadBudget } from "../switcher/decide.ts";
import { fakeCloud, fakeInference, MANIFEST, SPEC, SWITCHER } from "./fixtures/fake_models.ts";

function items(n: number): SequenceItem[] {
  return Array.from({ length: n }, () => ({
    data: new Float32Array(4 * 2 * 3).fill(0.5),
    length: 4,
    fps: 10,
    layout: "tiny",
    clientId: null,
  }));
}

function setup(score: number, extra: Partial<HybridOptions> = {}) {
  const rows: DecisionRecord[] = [];
  const cloud = fakeCloud();
  let n = 0;
  let offloadTokens = 0;
  const classifier = createHybridClassifier({
    inference: fakeInference({ score: () => score }),
    cloud,
    log: { append: (r) => void rows.push(r) },
    edgeSpec: SPEC,
    cloudSpec: MANIFEST.cloud,
    cloudTimeoutMs: 100,
    takeOffloadToken: () => (offloadTokens++, true),
    edgeLocation: "test",
    newId: () => `d${++n}`,
    ...extra,
  });
  return { classifier, rows, cloud, offloadTokens: () => offloadTokens };
}

Deno.test("a kept decision logs offload probability 0 once the shadow budget is empty, the rate while it has tokens", async () => {
  // One token, never refilled (time stands still): the first kept request may be shadowed, the rest may not.
  const budget = createOffloadBudget({ ratePerS: 1, burst: 1 });
  const { classifier, rows, cloud } = setup(0.1, {
    exploration: {
      rate: 0.25,
      hasToken: () => budget.available(0),
      takeToken: () => budget.take(0),
      random: () => 0,
    },
  });
  await classifier.classify(items(4), { requestId: "r1" });
  await classifier.drain();
  const byId = new Map(rows.map((r) => [r.id, r]));
  assert.deepEqual(["d1", "d2", "d3", "d4"].map((id) => [byId.get(id)!.shadow, byId.get(id)!.offloadProbability]), [
    [true, 0.25],
    [false, 0],
    [false, 0],
    [false, 0],
  ]);
  assert.equal(cloud.calls, 1);
});

Deno.test("with tokens to spare every kept decision logs the exploration rate, shadowed or not", async () => {
  const draws = [0.9, 0.1, 0.9];
  const { classifier, rows } = setup(0.1, {
    exploration: { rate: 0.2, hasToken: () => true, takeToken: () => true, random: () => draws.shift()! },
  });
  await classifier.classify(items(3), { requestId: "r1" });
  await classifier.drain();
  assert.deepEqual(rows.map((r) => [r.id, r.shadow, r.offloadProbability]).sort(), [
    ["d1", false, 0.2],
    ["d2", true, 0.2],
    ["d3", false, 0.2],
  ]);
});

Deno.test("an open circuit is an input of the decision: cloud_unavailable, no offload token, no call, no shadow", async () => {
  let down: AppError | null = new AppError("CIRCUIT_OPEN", "Cannot offload: the cloud failed repeatedly");
  const { classifier, rows, cloud, offloadTokens } = setup(0.9, {
    cloudDown: () => down,
    exploration: { rate: 1, hasToken: () => true, takeToken: () => true, random: () => 0 },
  });
  const answers = await classifier.classify(items(2), { requestId: "r1" });
  await classifier.drain();
  assert.equal(offloadTokens(), 0, "no offload-budget token spent");
  assert.equal(cloud.calls, 0);
  for (const a of answers) {
    assert.deepEqual([a.route, a.routeReason, a.cloudError?.code, a.label], [
      "edge_fallback",
      "cloud_unavailable",
      "CIRCUIT_OPEN",
      "a",
    ]);
  }
  assert.deepEqual(rows.map((r) => [r.routeReason, r.cloudError, r.offloadProbability, r.shadow, r.cloudMs]), [
    ["cloud_unavailable", "CIRCUIT_OPEN", 0, false, null],
    ["cloud_unavailable", "CIRCUIT_OPEN", 0, false, null],
  ]);
  // Back up: offloaded as usual, one token each.
  down = null;
  const again = await classifier.classify(items(2), { requestId: "r2" });
  assert.deepEqual(again.map((a) => [a.route, a.routeReason]), [["cloud", "above_threshold"], [
    "cloud",
    "above_threshold",
  ]]);
  assert.equal(offloadTokens(), 2);
  // A forced route ignores the circuit's state (the breaker itself refuses the call while open).
  down = new AppError("CIRCUIT_OPEN", "open");
  const forced = await classifier.classify(items(1), { requestId: "r3", forced: "edge" });
  assert.equal(forced[0].routeReason, "forced_edge");
});

Deno.test("a decision names the release and threshold that scored it; SWITCHER_THRESHOLD replaces the threshold", async () => {
  let release = { ...SWITCHER, version: "switcher-a", threshold: 0.3 };
  const rows: DecisionRecord[] = [];
  const inference = fakeInference({ score: () => 0.4, release: () => release });
  const make = (thresholdOverride?: number) =>
    createHybridClassifier({
      inference,
      cloud: fakeCloud(),
      log: { append: (r) => void rows.push(r) },
      edgeSpec: SPEC,
      cloudSpec: MANIFEST.cloud,
      thresholdOverride,
      cloudTimeoutMs: 100,
      takeOffloadToken: () => true,
      edgeLocation: "test",
      newId: () => crypto.randomUUID(),
    });
  const [a] = await make().classify(items(1), { requestId: "r" });
  release = { ...SWITCHER, version: "switcher-b", threshold: 0.5 };
  const [b] = await make().classify(items(1), { requestId: "r" });
  const [c] = await make(0.1).classify(items(1), { requestId: "r" });
  assert.deepEqual([a.switcher, a.route], [{ score: 0.4, threshold: 0.3, version: "switcher-a" }, "cloud"]);
  assert.deepEqual([b.switcher, b.route], [{ score: 0.4, threshold: 0.5, version: "switcher-b" }, "edge"]);
  assert.deepEqual([c.switcher, c.route], [{ score: 0.4, threshold: 0.1, version: "switcher-b" }, "cloud"]);
  assert.deepEqual(rows.map((r) => [r.switcherVersion, r.switcherThreshold]), [
    ["switcher-a", 0.3],
    ["switcher-b", 0.5],
    ["switcher-b", 0.1],
  ]);
});

Deno.test("durable answers wait for their decisions except the shadowed ones, which are logged when the shadow call ends", async () => {
  const database = await openDatabase(":memory:");
  const log = createDecisionLog(database.db, { batchSize: 50, flushIntervalMs: 5, durable: true });
  let release!: () => void;
  const shadowCallMayEnd = new Promise<void>((r) => (release = r));
  const fake = fakeCloud();
  const draws = [0, 0.9];
  let n = 0;
  const classifier = createHybridClassifier({
    inference: fakeInference({ score: () => 0.1 }),
    cloud: { infer: async (frames, shape) => (await shadowCallMayEnd, await fake.infer(frames, shape)) },
    log,
    edgeSpec: SPEC,
    cloudSpec: MANIFEST.cloud,
    cloudTimeoutMs: 1000,
    takeOffloadToken: () => true,
    edgeLocation: "test",
    newId: () => `d${++n}`,
    exploration: { rate: 0.5, hasToken: () => true, takeToken: () => true, random: () => draws.shift()! },
  });
  try {
    const answers = await answerWhenLogged(classifier, log).classify(items(2), { requestId: "r" });
    assert.deepEqual(answers.map((a) => a.decisionId), ["d1", "d2"]);
    // Answered: the kept decision is in the database; the shadowed one waits for its background call.
    assert.equal((await getDecision(database.db, "d2"))?.shadow, false);
    assert.equal(await getDecision(database.db, "d1"), null);
    release();
    await classifier.drain();
    await log.flush();
    assert.equal((await getDecision(database.db, "d1"))?.shadow, true);
  } finally {
    await log.close();
    database.close();
  }
});
