import { testApp } from "./tests/reliability_app.ts";
const { app } = testApp();
const bodies = {
  emptyItems: JSON.stringify({ items: Array.from({ length: 1_000_000 }, () => ({})) }),
  emptyFrames: JSON.stringify({ layout: "tiny", fps: 30, frames: Array.from({ length: 1_000_000 }, () => []) }),
  manyNumbers: JSON.stringify({ layout: "tiny", fps: 30, frames: [[Array.from({ length: 500_000 }, () => 0.5)]] }),
};
for (const [name, body] of Object.entries(bodies)) {
  const path = name === "emptyItems" ? "/v1/classify/batch" : "/v1/classify";
  const t = performance.now();
  const res = await app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body });
  console.log(
    name,
    (body.length / 1e6).toFixed(1),
    "MB",
    res.status,
    (await res.json()).message?.slice(0, 80),
    Math.round(performance.now() - t),
    "ms",
  );
}
const t = performance.now();
JSON.parse(bodies.emptyItems);
console.log("JSON.parse emptyItems", Math.round(performance.now() - t), "ms");
