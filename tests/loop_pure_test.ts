/** The learning loop's pure parts: inverse-propensity weights, the promotion gate, drift. Hand-computed cases. */
import assert from "node:assert/strict";
import { detectDrift } from "../switcher/drift.ts";
import { gate, switcherFigures, weightedAuc } from "../switcher/gate.ts";
import { rocAuc } from "../switcher/metrics.ts";
import { createPrng } from "../switcher/prng.ts";
import { DEFAULT_PROPENSITY_CLIP, ipwWeight } from "../switcher/propensity.ts";

Deno.test("ipwWeight() is 1 / propensity, clipped at 0.05, and refuses impossible propensities", () => {
  assert.equal(ipwWeight(1), 1);
  assert.equal(ipwWeight(0.25), 4);
  assert.equal(ipwWeight(0.01), 1 / DEFAULT_PROPENSITY_CLIP);
  assert.equal(ipwWeight(0.01, 0.01), 100);
  assert.throws(() => ipwWeight(0), /propensity must be in \(0, 1\]/);
  assert.throws(() => ipwWeight(1.5), RangeError);
  assert.throws(() => ipwWeight(0.5, 0), /clip must be in/);
});

Deno.test("inverse-propensity weights on a seeded log recover the traffic's disagreement rate", () => {
  // Traffic: 30% disagreement overall, concentrated in high scores. The service offloads scores >= 0.5 and explores
  // 10% of the rest; the pairs it sees over-represent disagreement, and IPW undoes it.
  const rng = createPrng(5);
  let trueRate = 0;
  let seen = 0;
  let seenDisagree = 0;
  let wSum = 0;
  let wDisagree = 0;
  const n = 20_000;
  for (let i = 0; i < n; i++) {
    const score = rng.next();
    const disagree = rng.next() < (score >= 0.5 ? 0.5 : 0.1) ? 1 : 0;
    trueRate += disagree / n;
    const propensity = score >= 0.5 ? 1 : 0.1;
    if (rng.next() >= propensity) continue;
    seen++;
    seenDisagree += disagree;
    const w = ipwWeight(propensity);
    wSum += w;
    wDisagree += w * disagree;
  }
  assert.ok(Math.abs(trueRate - 0.3) < 0.01);
  assert.ok(seenDisagree / seen > 0.4, "unweighted pairs are biased toward disagreement");
  assert.ok(Math.abs(wDisagree / wSum - trueRate) < 0.015, `weighted ${wDisagree / wSum} vs ${trueRate}`);
});

Deno.test("weightedAuc() equals rocAuc() with unit weights and counts a weight as repeated pairs", () => {
  const scores = [0.1, 0.4, 0.35, 0.8, 0.8, 0.2];
  const labels = [0, 0, 1, 1, 0, 1];
  assert.equal(weightedAuc(scores, labels, [1, 1, 1, 1, 1, 1]), rocAuc(scores, labels));
  // Weight 2 on the first pair = that pair twice.
  assert.equal(
    weightedAuc(scores, labels, [2, 1, 1, 1, 1, 1]),
    rocAuc([0.1, 0.1, 0.4, 0.35, 0.8, 0.8, 0.2], [0, 0, 0, 1, 1, 0, 1]),
  );
  assert.ok(Number.isNaN(weightedAuc([0.1, 0.2], [1, 1], [1, 1])));
  assert.throws(() => weightedAuc([0.1], [1, 0], [1]), RangeError);
});

Deno.test("switcherFigures(): offload rate and agreement with the cloud at a threshold, weighted", () => {
  const pairs = [
    { disagree: 1, weight: 1 },
    { disagree: 0, weight: 1 },
    { disagree: 1, weight: 2 },
    { disagree: 0, weight: 4 },
  ];
  // Offload pairs 0 and 1 (scores >= 0.5): weight 2 of 8 offloaded; the kept disagreement (weight 2) disagrees.
  const f = switcherFigures([0.9, 0.6, 0.2, 0.1], 0.5, pairs);
  assert.equal(f.offloadRate, 2 / 8);
  assert.equal(f.agreement, 6 / 8);
});

Deno.test("gate(): a worse candidate is rejected, an as-good one promoted, small sets refused, no active passes", () => {
  const rng = createPrng(9);
  const pairs = Array.from({ length: 200 }, () => ({ disagree: rng.next() < 0.3 ? 1 : 0, weight: 1 }));
  const good = pairs.map((p) => p.disagree * 0.6 + rng.next() * 0.5);
  const bad = pairs.map(() => rng.next());
  const worse = gate(pairs, { scores: bad, threshold: 0.5 }, { scores: good, threshold: 0.5 });
  assert.equal(worse.promote, false);
  assert.match(worse.reason, /^candidate AUC 0\.\d{4} < active [01]\.\d{4} - 0$/);
  assert.ok(worse.active!.auc > worse.candidate.auc);
  const better = gate(pairs, { scores: good, threshold: 0.5 }, { scores: bad, threshold: 0.5 });
  assert.equal(better.promote, true);
  assert.equal(gate(pairs, { scores: good, threshold: 0.5 }, { scores: good, threshold: 0.5 }).promote, true);
  assert.equal(gate(pairs, { scores: good, threshold: 0.5 }, null).reason, "no active switcher to compare with");
  const few = gate(pairs.slice(0, 20), { scores: good.slice(0, 20), threshold: 0.5 }, null);
  assert.deepEqual([few.promote, few.reason], [false, "too few held-out pairs: 20 < 50"]);
  const agreeing = pairs.map((p) => ({ ...p, disagree: 0 }));
  assert.match(gate(agreeing, { scores: good, threshold: 0.5 }, null).reason, /too few held-out disagreements/);
  // Tolerance lets a slightly worse candidate through.
  const tolerant = gate(pairs, { scores: bad, threshold: 0.5 }, { scores: good, threshold: 0.5 }, { tolerance: 1 });
  assert.equal(tolerant.promote, true);
});

Deno.test("detectDrift(): stable windows report nothing; shifted scores, labels and agreement are reported", () => {
  const rng = createPrng(3);
  const windowOf = (n: number, scoreShift: number, labelSkew: number, agree: number) => ({
    scores: Array.from({ length: n }, () => Math.min(1, rng.next() * 0.5 + scoreShift)),
    labels: Array.from({ length: n }, () => (rng.next() < labelSkew ? "walk" : "run")),
    shadowAgreement: Array.from({ length: n / 10 }, () => (rng.next() < agree ? 1 : 0)),
  });
  const ref = windowOf(2000, 0, 0.5, 0.8);
  const same = detectDrift(ref, windowOf(2000, 0, 0.5, 0.8));
  assert.deepEqual(same.shifts, []);
  assert.ok(same.scorePsi < 0.05 && same.labelPsi < 0.05);
  const shifted = detectDrift(ref, windowOf(2000, 0.5, 0.9, 0.5));
  assert.equal(shifted.shifts.length, 3);
  assert.match(shifted.shifts[0], /switcher score distribution shifted/);
  assert.match(shifted.shifts[1], /edge label distribution shifted/);
  assert.match(shifted.shifts[2], /shadow agreement moved from 0\.\d+ to 0\.\d+/);
  assert.deepEqual(shifted.counts, { reference: 2000, recent: 2000, referenceShadow: 200, recentShadow: 200 });
});
