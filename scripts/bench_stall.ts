/**
 * `deno task bench:stall`: how long the HTTP thread is held by bodies built to be expensive. It starts the reference
 * cloud server and the edge service on 127.0.0.1, probes `GET /healthz` every `--probe-ms` (20) milliseconds, and
 * while it does, sends each body kind `--repeat` (3) times, one at a time; it prints per kind the status and time of
 * the bad request and the `/healthz` latency percentiles (p50, p99, max) while it was in flight, against an idle
 * baseline. A measurement, not a test: figures depend on the machine and its load.
 *
 * Body kinds: a batch of 10^6 `{}` items (3 MB); a sequence of 10^6 empty frames (3 MB); one point of 5 * 10^5
 * numbers (2 MB); and the largest well-formed batch under `MAX_BODY_BYTES` (valid shape, real work).
 *
 * Usage: deno task bench:stall [--repeat 3] [--probe-ms 20] [--service-root DIR] [--json out.json]
 * (`--service-root` runs another checkout's `main.ts`, e.g. to compare with an earlier version)
 *
 * @module
 */
import { parseFlags } from "./cli.ts";
import { freePort, spawn, startCloud } from "./procs.ts";

const args = parseFlags(
  {
    repeat: { type: "string", default: "3" },
    "probe-ms": { type: "string", default: "20" },
    "service-root": { type: "string" },
    models: { type: "string", default: "wasm-models" },
    json: { type: "string" },
  },
  "usage: deno task bench:stall [--repeat 3] [--probe-ms 20] [--service-root DIR] [--models DIR] [--json FILE]\n" +
    "How long expensive bodies hold the HTTP thread: /healthz latency while each is in flight, against idle.",
);
const ROOT = new URL("..", import.meta.url).pathname;
const SERVICE_ROOT = args["service-root"] ? `${args["service-root"].replace(/\/$/, "")}/` : ROOT;
const MODELS = args.models!.startsWith("/") ? args.models! : `${ROOT}${args.models}`;
const REPEAT = Number(args.repeat);
const PROBE_MS = Number(args["probe-ms"]);

/** A sample sequence, for the well-formed batch. */
const sample = JSON.parse(Deno.readTextFileSync(`${MODELS}/samples/walk.json`));
const MAX_BODY = 4 * 1024 * 1024;
function largestBatch(): string {
  const item = JSON.stringify({ layout: sample.layout, fps: sample.fps, frames: sample.frames });
  const n = Math.max(1, Math.min(64, Math.floor((MAX_BODY - 64) / (item.length + 1))));
  return `{"items":[${Array(n).fill(item).join(",")}]}`;
}

const BODIES: { name: string; path: string; body: string }[] = [
  { name: "10^6 {} items", path: "/v1/classify/batch", body: `{"items":[${Array(1_000_000).fill("{}").join(",")}]}` },
  {
    name: "10^6 empty frames",
    path: "/v1/classify",
    body: `{"layout":"coco17","fps":30,"frames":[${Array(1_000_000).fill("[]").join(",")}]}`,
  },
  {
    name: "5*10^5 numbers in a point",
    path: "/v1/classify",
    body: `{"layout":"coco17","fps":30,"frames":[[[${Array(500_000).fill("0.5").join(",")}]]]}`,
  },
  { name: "largest valid batch", path: "/v1/classify/batch", body: largestBatch() },
];

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] * 10) / 10;
}

/** Probe /healthz until `stop` resolves; return the latencies. */
async function probe(url: string, stop: Promise<unknown>): Promise<number[]> {
  const out: number[] = [];
  let done = false;
  stop.finally(() => (done = true));
  while (!done) {
    const t = performance.now();
    await (await fetch(`${url}/healthz`)).body?.cancel();
    out.push(performance.now() - t);
    await new Promise((r) => setTimeout(r, PROBE_MS));
  }
  return out;
}

const dir = await Deno.makeTempDir({ prefix: "dmd-stall-" });
const cloudPort = freePort();
const cloud = await startCloud(cloudPort, MODELS);
const service = await spawn(["run", "-A", `${SERVICE_ROOT}main.ts`], {
  HOST: "127.0.0.1",
  PORT: "0",
  MODELS_DIR: MODELS,
  DATABASE_URL: `file:${dir}/decisions.db`,
  CLOUD_URL: `http://127.0.0.1:${cloudPort}`,
  SWITCHER_POLL_MS: "0",
  LOG_LEVEL: "warn",
}, /"msg":"dmd-edge listening","url":"([^"]+)"/);

const results: Record<string, unknown>[] = [];
try {
  const idle = (await probe(service.url, new Promise((r) => setTimeout(r, 2000)))).sort((a, b) => a - b);
  results.push({
    kind: "idle",
    healthz: { p50: percentile(idle, 0.5), p99: percentile(idle, 0.99), max: idle.at(-1) },
  });
  for (const { name, path, body } of BODIES) {
    const latencies: number[] = [];
    const requests: { status: number; ms: number }[] = [];
    for (let k = 0; k < REPEAT; k++) {
      const t = performance.now();
      const sent = fetch(`${service.url}${path}`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      }).then(async (r) => {
        await r.body?.cancel();
        requests.push({ status: r.status, ms: Math.round(performance.now() - t) });
      });
      latencies.push(...await probe(service.url, sent));
    }
    latencies.sort((a, b) => a - b);
    results.push({
      kind: name,
      bodyMB: Math.round(body.length / 1e5) / 10,
      requests,
      healthz: { p50: percentile(latencies, 0.5), p99: percentile(latencies, 0.99), max: latencies.at(-1) },
    });
  }
} finally {
  service.child.kill("SIGTERM");
  await service.child.status;
  cloud.child.kill("SIGTERM");
  await cloud.child.status;
  await Deno.remove(dir, { recursive: true });
}

console.log(`service: ${SERVICE_ROOT}main.ts; /healthz probed every ${PROBE_MS} ms; ${REPEAT} of each body`);
console.log("kind                         MB   status  request ms (each)        healthz p50       p99       max ms");
for (const r of results) {
  const reqs = (r.requests as { status: number; ms: number }[] | undefined) ?? [];
  const h = r.healthz as { p50: number; p99: number; max: number };
  console.log(
    String(r.kind).padEnd(28) + String(r.bodyMB ?? "-").padStart(4) +
      String([...new Set(reqs.map((q) => q.status))].join("/") || "-").padStart(9) + "  " +
      reqs.map((q) => q.ms).join(", ").padEnd(24) + String(h.p50).padStart(12) + String(h.p99).padStart(10) +
      String(Math.round(h.max)).padStart(10),
  );
}
if (args.json) Deno.writeTextFileSync(args.json, JSON.stringify(results, null, 2));
