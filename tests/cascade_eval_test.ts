/**
 * Multi-tier policy evaluation (switcher/cascade_eval.ts): with two tiers it is the two-tier hybrid curve
 * (switcher/metrics.ts) in cost units; with three, the baselines, the oracle, escalation per hop, the frontier and
 * the match with the best tier on a seeded synthetic set; and `deno task eval:tiers --outputs` end to end.
 */
import assert from "node:assert/strict";
import { type CascadeData, evaluateCascade } from "../switcher/cascade_eval.ts";
import { probabilityStats } from "../switcher/features.ts";
import { hybridCurve, policies } from "../switcher/metrics.ts";
import { createPrng } from "../switcher/prng.ts";

const K = 4;

/** A tier right with probability `skill`, its confidence higher when right (continuous: no ties). */
function synthetic(n: number, skills: number[], seed: number): CascadeData & { truth: number[] } {
  const rng = createPrng(seed);
  const truth = Array.from({ length: n }, () => Math.floor(rng.next() * K));
  return {
    truth,
    tiers: skills.map((skill, t) => ({
      name: `t${t}`,
      cost: [1, 10, 100][t],
      probs: truth.map((y) => {
        const right = rng.next() < skill;
        const pick = right ? y : (y + 1 + Math.floor(rng.next() * (K - 1))) % K;
        const top = 0.3 + 0.6 * rng.next() * (right ? 1 : 0.6);
        return Array.from({ length: K }, (_, k) => (k === pick ? top : (1 - top) / (K - 1)));
      }),
    })),
  };
}

Deno.test("cascade eval: with two tiers, max_prob's points are the two-tier hybrid curve at the same offload rates", () => {
  const data = synthetic(200, [0.6, 0.85], 3);
  const result = evaluateCascade(data, { steps: 10 });
  const maxProb = result.policies.find((p) => p.name === "max_prob")!;
  const top = (p: number[]) => p.indexOf(Math.max(...p));
  const curve = hybridCurve(
    {
      edgePred: data.tiers[0].probs.map((p) => top(p as number[])),
      cloudPred: data.tiers[1].probs.map((p) => top(p as number[])),
      truth: data.truth,
      classes: K,
    },
    policies.maxProbability(data.tiers[0].probs.map((p) => probabilityStats(p).pMax)),
  );
  for (const point of maxProb.points) {
    const k = Math.round(point.rates[0] * 200);
    assert.ok(Math.abs(point.accuracy - curve[k].accuracy) < 1e-12, `rate ${point.rates[0]}`);
    assert.ok(Math.abs(point.cost - (1 + 10 * k / 200)) < 1e-12);
    assert.ok(Math.abs(point.standardError - Math.sqrt(point.accuracy * (1 - point.accuracy) / 200)) < 1e-12);
  }
});

Deno.test("cascade eval: three tiers: baselines, oracle, per-hop escalation, frontier and the match with the best tier", () => {
  const data = synthetic(600, [0.5, 0.7, 0.9], 11);
  const r = evaluateCascade(data, { steps: 5, seed: 2 });
  assert.equal(r.n, 600);
  assert.deepEqual(r.tiers.map((t) => [t.name, t.cost]), [["t0", 1], ["t1", 11], ["t2", 101]]);
  assert.equal(r.best, "t2");
  assert.ok(r.oracle.accuracy >= r.tiers[2].accuracy);
  assert.ok(r.oracle.cost < 1 + 10 + 100);
  for (const p of r.policies) {
    assert.equal(p.points.length, 36, "6 x 6 rates");
    // Rates (0, x): nothing escalates past the edge; (1, 1): every tier for every item, the top tier's accuracy.
    const none = p.points.find((q) => q.rates[0] === 0 && q.rates[1] === 1)!;
    assert.deepEqual([none.cost, none.accuracy, none.share], [1, r.tiers[0].accuracy, [1, 0, 0]]);
    const all = p.points.find((q) => q.rates[0] === 1 && q.rates[1] === 1)!;
    assert.deepEqual([all.cost, all.normalisedCost, all.accuracy], [111, 1, r.tiers[2].accuracy]);
    // The frontier rises with cost, and its area is within [0, 1].
    for (let j = 1; j < p.frontier.length; j++) {
      assert.ok(p.frontier[j].cost >= p.frontier[j - 1].cost && p.frontier[j].accuracy > p.frontier[j - 1].accuracy);
    }
    assert.ok(p.area > 0 && p.area <= 1);
    assert.ok(p.match && p.match.point.accuracy >= r.tiers[2].accuracy && p.match.point.cost <= 111);
  }
  // Confident-when-right tiers: max_prob reaches the top tier's accuracy cheaper than random.
  const cost = (name: string) => r.policies.find((p) => p.name === name)!.match!.point.cost;
  assert.ok(cost("max_prob") < cost("random"), `${cost("max_prob")} < ${cost("random")}`);
  assert.throws(() => evaluateCascade({ truth: [0], tiers: [data.tiers[0]] }), /2 or more tiers/);
  assert.throws(() => evaluateCascade(data, { steps: 200 }), /lower the steps/);
});

Deno.test({
  name: "eval:tiers --outputs: three tiers from TIERS with configured prices, the report files written",
  sanitizeResources: false,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const labels = JSON.parse(await Deno.readTextFile(new URL("../wasm-models/manifest.json", import.meta.url))).cloud
        .labels as string[];
      const data = synthetic(120, [0.5, 0.7, 0.9], 5);
      const widen = (p: number[]) => Array.from(labels, (_, k) => (k < K ? p[k] : 0));
      const lines = data.truth.map((y, i) =>
        JSON.stringify({
          label: labels[y],
          tiers: {
            edge: widen(data.tiers[0].probs[i] as number[]),
            cloud: widen(data.tiers[1].probs[i] as number[]),
            vlm: widen(data.tiers[2].probs[i] as number[]),
          },
        })
      );
      await Deno.writeTextFile(`${dir}/outputs.jsonl`, lines.join("\n") + "\n");
      const tiers = [
        { name: "edge", kind: "edge", pricePerCall: 0 },
        { name: "cloud", kind: "oip", pricePerCall: 0.001 },
        { name: "vlm", kind: "openai", url: "http://127.0.0.1:8002", model: "m", pricePerCall: 0.01 },
      ];
      const out = await new Deno.Command(Deno.execPath(), {
        args: [
          "task",
          "-q",
          "eval:tiers",
          "--outputs",
          `${dir}/outputs.jsonl`,
          "--cost",
          "price",
          "--steps",
          "4",
          "--out",
          dir,
          "--json",
        ],
        cwd: new URL("..", import.meta.url).pathname,
        env: { TIERS: JSON.stringify(tiers) },
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
      const report = JSON.parse(new TextDecoder().decode(out.stdout));
      assert.deepEqual(report.tiers.map((t: { name: string; cost: number }) => [t.name, t.cost]), [
        ["edge", 0],
        ["cloud", 0.001],
        ["vlm", 0.01],
      ]);
      assert.equal(report.n, 120);
      const md = await Deno.readTextFile(`${dir}/eval_tiers.md`);
      assert.match(md, /\| vlm alone \|/);
      assert.match(await Deno.readTextFile(`${dir}/eval_tiers.svg`), /^<svg[\s\S]*<polyline/);
      const full = JSON.parse(await Deno.readTextFile(`${dir}/eval_tiers.json`));
      assert.equal(full.policies[0].points.length, 25);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
