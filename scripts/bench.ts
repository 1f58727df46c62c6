/**
 * `deno task bench`: the serving benchmark. Prints, for a model set (default: `wasm-models/`):
 *  - the edge model's bare inference time in onnxruntime-web (WASM, 1 thread) and native onnxruntime, same input,
 *    interleaved, and their ratio; the cloud model's too;
 *  - full `POST /v1/classify` latency p50/p99 for edge-kept requests at concurrency 1 and at the pool size, the
 *    throughput, and the ratio of full request time to bare model time (the serving overhead);
 *  - offloaded requests (forced to the cloud) at concurrency 1, for the cost of an offload.
 * The service runs as its own process on 127.0.0.1, started and stopped here.
 *
 * Flags: --models DIR, --requests N (per run, default 400), --runs N (bare runs, default 300), --json
 *
 * @module
 */
import { parseArgs } from "node:util";
import { readArtefact, readManifest, readRuntimeBinary } from "../workers/artefacts.ts";
import { timeBothRuntimes } from "../workers/runtime_bench.ts";

const { values: args } = parseArgs({
  args: Deno.args,
  options: {
    models: { type: "string", default: "wasm-models" },
    requests: { type: "string", default: "400" },
    runs: { type: "string", default: "300" },
    workers: { type: "string" },
    json: { type: "boolean", default: false },
  },
});
const modelsDir = args.models!;
const requests = Number(args.requests);
const runs = Number(args.runs);

function percentile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

async function sampleBody(): Promise<Record<string, unknown>> {
  const manifest = await readManifest(modelsDir);
  const samples = await Array.fromAsync(Deno.readDir(`${modelsDir}/samples`)).catch(() => [] as Deno.DirEntry[]);
  const first = samples.map((s) => s.name).filter((n) => n.endsWith(".json")).sort()[0];
  if (first) return JSON.parse(await Deno.readTextFile(`${modelsDir}/samples/${first}`));
  const e = manifest.edge;
  const frames = Array.from(
    { length: e.windowFrames },
    (_, t) =>
      Array.from({ length: e.joints }, (_, j) => Array.from({ length: e.channels }, (_, c) => ((t + j + c) % 7) / 7)),
  );
  return { layout: e.layout, fps: e.fps, frames };
}

async function startServer(
  env: Record<string, string>,
): Promise<{ url: string; workers: number; stop(): Promise<void> }> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../main.ts", import.meta.url).href],
    env,
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) throw new Error("Cannot start the service: it exited before listening");
    text += value;
    const line = text.split("\n").find((l) => l.includes('"dmd-edge listening"'));
    if (line) {
      (async () => {
        while (!(await reader.read()).done) { /* drain */ }
      })();
      const { url } = JSON.parse(line);
      return {
        url,
        workers: Number(env.WORKERS),
        async stop() {
          child.kill("SIGTERM");
          await child.status;
        },
      };
    }
  }
}

async function load(url: string, body: string, options: { concurrency: number; total: number }) {
  const latencies: number[] = [];
  const serverTotals: number[] = [];
  let next = 0;
  let failed = 0;
  const t0 = performance.now();
  async function client() {
    while (next < options.total) {
      next++;
      const s = performance.now();
      const res = await fetch(`${url}/v1/classify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const json = await res.json();
      latencies.push(performance.now() - s);
      if (res.status !== 200) failed++;
      else serverTotals.push(json.timings.totalMs);
    }
  }
  await Promise.all(Array.from({ length: options.concurrency }, client));
  const wall = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  serverTotals.sort((a, b) => a - b);
  return {
    concurrency: options.concurrency,
    requests: options.total,
    failed,
    p50Ms: percentile(latencies, 0.5),
    p99Ms: percentile(latencies, 0.99),
    serverP50Ms: percentile(serverTotals, 0.5),
    throughputRps: (options.total / wall) * 1000,
  };
}

const manifest = await readManifest(modelsDir);
const wasmBinary = await readRuntimeBinary();
const body = await sampleBody();
const e = manifest.edge;
const input = new Float32Array(e.windowFrames * e.joints * e.channels);
// The bare models see the same resampled window the service feeds them.
{
  const { flattenFrames, resample } = await import("../sequence/preprocess.ts");
  const flat = flattenFrames(body.frames, { joints: e.joints, channels: e.channels, maxFrames: 100_000 });
  input.set(
    resample(flat.data, { inFrames: flat.length, outFrames: e.windowFrames, pointSize: e.joints * e.channels }),
  );
}
const shape = [1, e.windowFrames, e.joints, e.channels];
const edgeBytes = (await readArtefact(modelsDir, manifest.edge)).bytes;
const cloudBytes = (await readArtefact(modelsDir, manifest.cloud)).bytes;
console.error(`bare models: ${runs} runs each, batch 1 ...`);
const edgeBare = await timeBothRuntimes(edgeBytes, {
  inputName: e.inputs[0].name,
  input,
  shape,
  outputName: "logits",
  runs,
  wasmBinary,
  nativeThreads: 1,
});
const cloudBare = await timeBothRuntimes(cloudBytes, {
  inputName: manifest.cloud.inputs[0].name,
  input,
  shape,
  outputName: "logits",
  runs: Math.max(20, Math.floor(runs / 3)),
  wasmBinary,
  nativeThreads: 1,
});
const maxDiff = edgeBare.native
  ? Math.max(...Array.from(edgeBare.web.firstOutput, (v, i) => Math.abs(v - edgeBare.native!.firstOutput[i])))
  : NaN;

const workers = Number(args.workers ?? Math.max(1, Math.min(2, navigator.hardwareConcurrency)));
const dir = await Deno.makeTempDir();
const server = await startServer({
  PORT: "0",
  MODELS_DIR: modelsDir,
  DATABASE_URL: `file:${dir}/bench.db`,
  WORKERS: String(workers),
  PATH: Deno.env.get("PATH") ?? "",
  HOME: Deno.env.get("HOME") ?? "",
});
let service;
try {
  const edgeBody = JSON.stringify({ ...body, route: "edge" });
  const cloudBody = JSON.stringify({ ...body, route: "cloud" });
  console.error(`service: ${requests} edge-kept requests at concurrency 1 and ${workers} ...`);
  await load(server.url, edgeBody, { concurrency: workers, total: 50 }); // warm the HTTP path
  const c1 = await load(server.url, edgeBody, { concurrency: 1, total: requests });
  const cN = await load(server.url, edgeBody, { concurrency: workers, total: requests });
  const c4N = await load(server.url, edgeBody, { concurrency: workers * 4, total: requests });
  const off = await load(server.url, cloudBody, { concurrency: 1, total: Math.max(50, Math.floor(requests / 4)) });
  service = { c1, cN, c4N, offloaded: off };
} finally {
  await server.stop();
  await Deno.remove(dir, { recursive: true });
}

const report = {
  machine: { cores: navigator.hardwareConcurrency, deno: Deno.version.deno },
  models: {
    edge: e.version,
    cloud: manifest.cloud.version,
    edgeFlops: e.flops ?? null,
    cloudFlops: manifest.cloud.flops ?? null,
  },
  bare: {
    edge: {
      webP50Ms: edgeBare.web.p50Ms,
      nativeP50Ms: edgeBare.native?.p50Ms ?? null,
      webOverNative: edgeBare.native ? edgeBare.web.p50Ms / edgeBare.native.p50Ms : null,
      maxAbsLogitDiff: maxDiff,
    },
    cloud: {
      webP50Ms: cloudBare.web.p50Ms,
      nativeP50Ms: cloudBare.native?.p50Ms ?? null,
      webOverNative: cloudBare.native ? cloudBare.web.p50Ms / cloudBare.native.p50Ms : null,
    },
    cloudOverEdgeNative: cloudBare.native && edgeBare.native ? cloudBare.native.p50Ms / edgeBare.native.p50Ms : null,
    nativeError: edgeBare.nativeError,
  },
  service: {
    ...service,
    overheadRatioC1: service.c1.p50Ms / edgeBare.web.p50Ms,
  },
};

if (args.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const f = (
    v: number | null | undefined,
    d = 2,
  ) => (v === null || v === undefined || Number.isNaN(v) ? "n/a" : v.toFixed(d));
  console.log(`\ndmd-edge benchmark — models ${e.version} / ${manifest.cloud.version}, ${report.machine.cores} cores`);
  console.log(`\nBare model, batch 1 (p50 ms; ${runs} interleaved runs)`);
  console.log(`| model | onnxruntime-web (wasm, 1 thread) | native onnxruntime (1 thread) | web / native |`);
  console.log(`|---|---|---|---|`);
  console.log(
    `| edge (${e.precision}) | ${f(edgeBare.web.p50Ms, 3)} | ${f(edgeBare.native?.p50Ms, 3)} | ${
      f(report.bare.edge.webOverNative)
    } |`,
  );
  console.log(
    `| cloud (${manifest.cloud.precision}) | ${f(cloudBare.web.p50Ms, 3)} | ${f(cloudBare.native?.p50Ms, 3)} | ${
      f(report.bare.cloud.webOverNative)
    } |`,
  );
  console.log(
    `edge web vs native max |logit diff|: ${f(maxDiff, 6)}; cloud/edge native time: ${
      f(report.bare.cloudOverEdgeNative, 1)
    }x`,
  );
  console.log(`\nFull POST /v1/classify over loopback (${workers} workers)`);
  console.log(`| requests | concurrency | p50 ms | p99 ms | server p50 ms | req/s | failed |`);
  console.log(`|---|---|---|---|---|---|---|`);
  for (
    const [name, r] of [["edge-kept", service.c1], ["edge-kept", service.cN], ["edge-kept", service.c4N], [
      "offloaded",
      service.offloaded,
    ]] as const
  ) {
    console.log(
      `| ${name} | ${r.concurrency} | ${f(r.p50Ms)} | ${f(r.p99Ms)} | ${f(r.serverP50Ms)} | ${
        f(r.throughputRps, 1)
      } | ${r.failed} |`,
    );
  }
  console.log(
    `\nServing overhead (full request p50 at concurrency 1 / bare edge p50 in onnxruntime-web): ${
      f(report.service.overheadRatioC1)
    }x`,
  );
}
