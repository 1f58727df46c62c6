/**
 * `deno task bench`: the service against the bare model, measured side by side in one run, in paired repetitions
 * (default 3), each ratio printed as its median and its range over the repetitions:
 *
 *  - service throughput at saturation (`POST /v1/classify`, edge-kept requests; the most answered requests a second
 *    over closed-loop runs at c=16, 32 and 64, with the share shed there) / the bare pool's throughput (as many
 *    workers as the service has, each running the bare edge model back to back, batch 1); c=16 alone, with the share
 *    of the machine's CPU left idle during it (16 clients that each wait for their answer leave cores idle between
 *    the path's stages, so c=16 need not saturate); and the project's pool driven without HTTP (16 callers, one
 *    sequence each) / the bare pool, and / the same pool posting one batch at a time;
 *  - c=1 overhead: `/v1/classify` p50 - (`/healthz` p50, the HTTP floor + the bare model p50 in one worker); what
 *    the body alone costs a bare `Deno.serve` at c=1 (its POST of the same body minus its GET), and the overhead over
 *    that POST instead of `/healthz`; again with one client alternating the two requests, so that the floor is
 *    measured at the same moments; the service's own time per request at c=1 (its `Server-Timing: app` header) and
 *    the rest of the latency outside it; and,
 *    since a model run between requests is slower than one of a back-to-back loop (its thread slept meanwhile), the
 *    engine's own stages in the service at c=1 (from the answers' timings) and the rest of the path beside them;
 *  - both again with the binary body (raw float32, routes/binary_body.ts) instead of JSON, and with the edge model on
 *    the HTTP thread (`WORKERS=0`, workers/in_process.ts) instead of a worker;
 *  - switcher / edge model: the switcher's score (plain JS, as the workers run it) per request against the bare edge
 *    model; also the switcher's ONNX model in an onnxruntime-web session, as it ran before, and the service's own
 *    stage timings;
 *  - onnxruntime-web / native onnxruntime, the same model and input, warmed, in alternating blocks (WASM SIMD, 1
 *    thread; native 1 intra-op thread);
 *  - c=64 throughput / c=16 throughput, and p99 at c=64 / p99 at c=16 (past saturation the service sheds early);
 *  - the service's peak RSS, and its start-up time to listening and to ready;
 *  - where the CPU goes at c=16: CPU time per request of the service's HTTP thread, V8's helper threads, its Web
 *    Workers (inference, the decision writer, the connection guard) and its database processes (Linux /proc), and of
 *    the load generator; with the ceiling they put on this machine (cores / their sum) and the HTTP thread's own bound
 *    (1 / its CPU per request: what saturation reaches where that thread has a core of its own);
 *  - the HTTP floor: a bare `Deno.serve` that reads and parses the same body (scripts/http_floor.ts) at c=16, its
 *    throughput / the bare pool and its main thread's CPU per request beside the service's HTTP thread;
 *  - the model floor: that bare `Deno.serve` also running the edge model in the project's pool and nothing else (no
 *    routing, checks, decision log, metrics or guard), measured as the service is: its saturation / the bare pool
 *    and its c=1 overhead, with the pool's workers and with the model on its HTTP thread. No service built on this
 *    HTTP server and this pool can beat it on the same machine, so it says how far each target is within reach here.
 *
 * `deno task bench:runtime` (scripts/bench_runtime.ts) times any model files in both runtimes the same way.
 *
 * Honest by construction: WASM is warmed for thousands of runs before anything is timed (the first ~1200 runs are
 * about 3x slower while the engine tiers up), the service is warmed with thousands of requests, the load comes from
 * a separate process (scripts/bench_load.ts), never from the measured process (its CPU is counted apart: on a small
 * machine it still shares the cores, so it sends its requests with a lean HTTP/1.1 client, scripts/http1_client.ts,
 * at about a quarter of `fetch`'s CPU per request), each phase runs for seconds (thousands of requests, enough for a
 * p99), and every repetition measures the bare model and the service one after the other. The service is a fresh
 * process per repetition on 127.0.0.1 (a temporary database, no cloud: every request is kept on the edge). On a
 * shared machine, read the ratios, not the absolute times.
 *
 * Flags: --models DIR, --workers N (default: half the cores, at most 2, so that the HTTP thread and the load
 * generator have cores of their own), --reps N (3), --quick (short phases, for a check in about 2 minutes),
 * --no-guard (the service as deployed behind a reverse proxy: `HEADER_TIMEOUT_MS=0`, no connection guard), --json
 *
 * @module
 */
import { featureNames } from "../switcher/features.ts";
import { flattenFrames, resample } from "../sequence/preprocess.ts";
import { loadModelSet, readArtefact, readManifest, readRuntimeBinary } from "../workers/artefacts.ts";
import { createWorkerPool, type EdgeInference } from "../workers/pool.ts";
import type { BareModelRequest, BareModelResponse } from "../workers/bare_model_worker.ts";
import { RUNTIME_SETTINGS, timeBothRuntimes } from "../workers/runtime_bench.ts";
import { switcherMlp } from "../workers/switcher_mlp.ts";
import type { SwitcherSpec } from "../wasm-models/manifest.ts";
import { parseFlags, usageError } from "./cli.ts";
import { median, type Spread, spread } from "./timing.ts";
import { childPids, idleShare, machineCpu, processCpuMs, rssKiB, spawn, type ThreadCpu, threadCpuMs } from "./procs.ts";

const USAGE = "usage: deno task bench [--models DIR] [--workers N] [--reps N] [--quick] [--no-guard] [--json]";
const flags = parseFlags({
  models: { type: "string", default: "wasm-models" },
  workers: { type: "string" },
  reps: { type: "string", default: "3" },
  quick: { type: "boolean", default: false },
  "no-guard": { type: "boolean", default: false },
  json: { type: "boolean", default: false },
}, USAGE);
/** The service as deployed behind a reverse proxy that times out slow clients: no connection guard. */
const noGuard = flags["no-guard"] === true;
const modelsDir = flags.models!;
const cores = navigator.hardwareConcurrency;
const workers = Number(flags.workers ?? Math.max(1, Math.min(2, Math.floor(cores / 2))));
const reps = Number(flags.reps);
if (!(Number.isInteger(workers) && workers >= 1)) usageError("Cannot run: --workers must be >= 1", USAGE);
if (!(Number.isInteger(reps) && reps >= 1)) usageError("Cannot run: --reps must be >= 1", USAGE);
/** Durations and counts: the full run, or a quick check. */
const plan = flags.quick
  ? { wasmWarmupRuns: 1500, bareRuns: 300, barePoolMs: 1000, serviceWarmMs: 2000, phaseMs: 1000 }
  : { wasmWarmupRuns: 3000, bareRuns: 2000, barePoolMs: 3000, serviceWarmMs: 5000, phaseMs: 5000 };
const log = (line: string) => console.error(line);

/** A sample request body from the model set (the first committed sample), forced to the edge. */
async function sampleBody(): Promise<{ layout: string; fps: number; frames: number[][][] }> {
  const names = [...Deno.readDirSync(`${modelsDir}/samples`)].map((e) => e.name).filter((n) => n.endsWith(".json"));
  const first = names.sort()[0];
  if (!first) throw new Error(`Cannot bench: ${modelsDir}/samples holds no sample request`);
  return JSON.parse(await Deno.readTextFile(`${modelsDir}/samples/${first}`));
}

// ---- the bare model -------------------------------------------------------------------------------------------------

const manifest = await readManifest(modelsDir);
const e = manifest.edge;
const wasmBinary = await readRuntimeBinary();
const body = await sampleBody();
const flat = flattenFrames(body.frames, { joints: e.joints, channels: e.channels, maxFrames: 100_000 });
const input = resample(flat.data, {
  inFrames: flat.length,
  outFrames: e.windowFrames,
  pointSize: e.joints * e.channels,
});
const shape = [1, e.windowFrames, e.joints, e.channels];
const edgeBytes = (await readArtefact(modelsDir, e)).bytes;
const switcherSpec = manifest.switcher && !manifest.switcher.rule ? manifest.switcher : null;
const switcherBytes = switcherSpec ? (await readArtefact<SwitcherSpec>(modelsDir, switcherSpec)).bytes : null;

/** Start the bare-model workers, loaded and warmed. */
async function startBarePool(n: number): Promise<Worker[]> {
  const url = new URL("../workers/bare_model_worker.ts", import.meta.url);
  const pool = Array.from({ length: n }, () => new Worker(url.href, { type: "module" }));
  await Promise.all(pool.map((w) =>
    ask(w, {
      type: "load",
      model: edgeBytes,
      wasmBinary,
      inputName: e.inputs[0].name,
      input,
      shape,
      warmupRuns: plan.wasmWarmupRuns,
    })
  ));
  return pool;
}

function ask(w: Worker, msg: BareModelRequest): Promise<BareModelResponse> {
  return new Promise((resolve, reject) => {
    w.onmessage = (ev: MessageEvent<BareModelResponse>) =>
      ev.data.type === "error" ? reject(new Error(ev.data.message)) : resolve(ev.data);
    w.postMessage(msg);
  });
}

/** The bare pool's runs per second (all workers together), and one worker's p50 run time when it runs alone. */
async function measureBare(pool: Worker[]): Promise<{ poolRps: number; aloneP50Ms: number }> {
  const together = await Promise.all(pool.map((w) => ask(w, { type: "run", durationMs: plan.barePoolMs })));
  const poolRps = together.reduce((sum, r) => sum + (r.type === "ran" ? (r.runs / r.wallMs) * 1000 : 0), 0);
  const alone = await ask(pool[0], { type: "run", durationMs: Math.min(2000, plan.barePoolMs) });
  return { poolRps, aloneP50Ms: alone.type === "ran" ? alone.p50Ms : NaN };
}

/**
 * The project's pool driven without HTTP: 16 callers sending one sequence each, closed loop, for as long as the bare
 * pool runs: what micro-batching makes of the workers before any HTTP work.
 */
async function measurePool(pool: EdgeInference, sequence: Float32Array, frames: number): Promise<number> {
  let done = 0;
  const end = performance.now() + plan.barePoolMs;
  const t0 = performance.now();
  const caller = async () => {
    while (performance.now() < end) {
      await pool.classify([{ data: sequence.slice(), length: frames }]);
      done++;
    }
  };
  await Promise.all(Array.from({ length: 16 }, caller));
  return (done / (performance.now() - t0)) * 1000;
}

/** Per-call time of the switcher's plain-JS score on one feature row, in milliseconds (median of 30 blocks). */
function timeSwitcherJs(): number | null {
  if (!switcherBytes || !switcherSpec) return null;
  const f = switcherSpec.features.length;
  const score = switcherMlp(switcherBytes, f);
  if (!score) return null;
  const row = Float32Array.from({ length: f }, (_, i) => ((i * 37) % 11) / 11);
  const perCall: number[] = [];
  for (let block = -10; block < 30; block++) {
    const t0 = performance.now();
    for (let i = 0; i < 2000; i++) score(row, 1);
    if (block >= 0) perCall.push((performance.now() - t0) / 2000);
  }
  return median(perCall);
}

// ---- the service ----------------------------------------------------------------------------------------------------

interface Service {
  url: string;
  pid: number;
  listeningMs: number;
  readyMs: number;
  /** Stop it (SIGTERM) and remove its database files. */
  stop(): Promise<void>;
}

async function startService(dir: string, serviceWorkers = workers): Promise<Service> {
  const t0 = performance.now();
  const { child, url } = await spawn(["run", "-A", new URL("../main.ts", import.meta.url).pathname], {
    PORT: "0",
    MODELS_DIR: modelsDir,
    DATABASE_URL: `file:${dir}/bench.db`,
    WORKERS: String(serviceWorkers),
    // No cloud: every request is kept on the edge, and no reference server shares the cores.
    CLOUD_URL: "http://127.0.0.1:9",
    EXPLORATION_RATE: "0",
    ...(noGuard ? { HEADER_TIMEOUT_MS: "0" } : {}),
  }, /"msg":"dmd-edge listening","url":"([^"]+)"/);
  const listeningMs = performance.now() - t0;
  while ((await fetch(`${url}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200) {
    await new Promise((r) => setTimeout(r, 5));
  }
  return {
    url,
    pid: child.pid,
    listeningMs,
    readyMs: performance.now() - t0,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
      // The next service starts on an empty database.
      for (const f of ["bench.db", "bench.db-wal", "bench.db-shm"]) await Deno.remove(`${dir}/${f}`).catch(() => {});
    },
  };
}

/** What the load generator reports for one phase. */
interface LoadResult {
  concurrency: number;
  answered: number;
  shed: number;
  failed: number;
  p50Ms: number;
  p99Ms: number;
  throughputRps: number;
  serverP50: Record<string, number | null>;
  /** The load generator's own CPU time over the phase. */
  cpuMs: number;
  /** The interleaved GETs, when asked for. */
  interleaved?: { answered: number; p50Ms: number | null; p99Ms: number | null };
}

async function load(
  url: string,
  options: { concurrency: number; durationMs: number; body?: string; binary?: boolean; interleave?: string },
): Promise<LoadResult> {
  const args = ["run", "-A", new URL("./bench_load.ts", import.meta.url).pathname, "--url", url];
  if (options.body) args.push("--body", options.body);
  if (options.interleave) args.push("--interleave-url", options.interleave);
  if (options.binary) {
    args.push("--content-type", "application/octet-stream");
    const fields = {
      "x-frames": flat.length,
      "x-joints": e.joints,
      "x-channels": e.channels,
      "x-layout": e.layout,
      "x-fps": body.fps,
      "x-route": "edge",
    };
    for (const [k, v] of Object.entries(fields)) args.push("--header", `${k}:${v}`);
  }
  args.push("--concurrency", String(options.concurrency), "--duration-ms", String(options.durationMs));
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" }).output();
  if (!out.success) throw new Error(`the load generator failed at ${url}`);
  return JSON.parse(new TextDecoder().decode(out.stdout)) as LoadResult;
}

/** The engine's own time in the service (the answers' median pre-process + edge model + switcher stages), or null. */
function engineMs(phase: LoadResult): number | null {
  const { preprocessMs, edgeMs, switcherMs } = phase.serverP50;
  return preprocessMs === null || edgeMs === null || switcherMs === null ? null : preprocessMs + edgeMs + switcherMs;
}

/** The latency outside the service's own time (p50 less its `Server-Timing: app` p50), or null without the header. */
function outsideAppMs(phase: LoadResult): number | null {
  const app = phase.serverP50.appMs ?? null;
  return app === null ? null : phase.p50Ms - app;
}

/** The model floor's phases: c=1, and the best answered throughput over the concurrencies tried. */
interface ModelFloor {
  c1: LoadResult;
  saturationRps: number;
  phases: LoadResult[];
  /** CPU milliseconds per answered request at c=16, by thread group (no database); null off Linux. */
  cpuC16: CpuPerRequest | null;
}

/**
 * The model floor (scripts/http_floor.ts with MODELS_DIR): a bare `Deno.serve` that reads the frames and runs the edge
 * model in the project's inference with `floorWorkers` workers (0: on its own thread), and does nothing else. Warmed,
 * then c=1, then c=16 (and c=32, c=64 with `allConcurrencies`, as the service is driven).
 */
async function measureModelFloor(floorWorkers: number, allConcurrencies: boolean): Promise<ModelFloor> {
  const floor = await spawn(["run", "-A", new URL("./http_floor.ts", import.meta.url).pathname], {
    PORT: "0",
    MODELS_DIR: modelsDir,
    WORKERS: String(floorWorkers),
  }, /"msg":"http floor listening","url":"([^"]+)"/);
  try {
    await load(floor.url, {
      concurrency: 2 * Math.max(1, floorWorkers),
      durationMs: plan.serviceWarmMs,
      body: bodyFile,
    });
    const c1 = await load(floor.url, { concurrency: 1, durationMs: plan.phaseMs, body: bodyFile });
    const before = { threads: threadCpuMs(floor.child.pid), database: null };
    const phases = [await load(floor.url, { concurrency: 16, durationMs: plan.phaseMs, body: bodyFile })];
    const cpuC16 = cpuPerRequest(before, { threads: threadCpuMs(floor.child.pid), database: null }, phases[0]);
    for (const concurrency of allConcurrencies ? [32, 64] : []) {
      phases.push(await load(floor.url, { concurrency, durationMs: plan.phaseMs, body: bodyFile }));
    }
    return { c1, saturationRps: Math.max(...phases.map((p) => p.throughputRps)), phases, cpuC16 };
  } finally {
    floor.child.kill("SIGTERM");
    await floor.child.status;
  }
}

// ---- where the CPU goes ----

/** The CPU time of a service's threads and of its database process so far. */
interface ServiceCpu {
  threads: ThreadCpu | null;
  database: number | null;
}

function serviceCpu(pid: number): ServiceCpu {
  // Every database process: the one the HTTP thread opened (reads, the registry) and the decision writer's own.
  const dbs = childPids(pid, "db/host").map(processCpuMs).filter((ms): ms is number => ms !== null);
  return { threads: threadCpuMs(pid), database: dbs.length === 0 ? null : dbs.reduce((a, b) => a + b, 0) };
}

/** CPU milliseconds per answered request over a phase, by thread group; null where /proc is not there. */
interface CpuPerRequest {
  http: number;
  v8: number;
  workers: number;
  other: number;
  database: number;
  /** The service's threads and its database process together. */
  service: number;
  /** The load generator (a separate process, on the same cores). */
  load: number;
}

function cpuPerRequest(before: ServiceCpu, after: ServiceCpu, phase: LoadResult): CpuPerRequest | null {
  if (!before.threads || !after.threads || phase.answered === 0) return null;
  const per = (a: number, b: number) => (b - a) / phase.answered;
  const http = per(before.threads.main, after.threads.main);
  const v8 = per(before.threads.v8, after.threads.v8);
  const workers = per(before.threads.workers, after.threads.workers);
  const other = per(before.threads.other, after.threads.other);
  const database = before.database !== null && after.database !== null ? per(before.database, after.database) : 0;
  return {
    http,
    v8,
    workers,
    other,
    database,
    service: http + v8 + workers + other + database,
    load: phase.cpuMs / phase.answered,
  };
}

// ---- the run --------------------------------------------------------------------------------------------------------

const dir = await Deno.makeTempDir({ prefix: "dmd-bench-" });
const bodyFile = `${dir}/body.json`;
await Deno.writeTextFile(bodyFile, JSON.stringify({ ...body, route: "edge" }));
const binaryFile = `${dir}/body.f32`;
await Deno.writeFile(binaryFile, new Uint8Array(flat.data.buffer.slice(0)));
log(`bench: ${workers} worker(s), ${cores} cores, ${reps} paired repetitions${flags.quick ? " (quick)" : ""}`);
const barePool = await startBarePool(workers);
const poolInit = (await loadModelSet(modelsDir, { warmupRuns: plan.wasmWarmupRuns })).init;
const pool = await createWorkerPool(poolInit, { size: workers, queueMax: 1024 });
// The same pool posting one batch at a time (no batch waiting behind a busy worker), for the side-by-side figure.
const poolDepth1 = await createWorkerPool(poolInit, { size: workers, queueMax: 1024, depth: 1 });
const rows: Record<string, number | null>[] = [];
let raw: Record<string, unknown>[] = [];
try {
  for (let rep = 0; rep < reps; rep++) {
    log(`rep ${rep + 1}/${reps}: bare model ...`);
    const bare = await measureBare(barePool);
    // Which goes first alternates with the repetition.
    let poolRps: number, poolDepth1Rps: number;
    if (rep % 2 === 0) {
      poolRps = await measurePool(pool, flat.data, flat.length);
      poolDepth1Rps = await measurePool(poolDepth1, flat.data, flat.length);
    } else {
      poolDepth1Rps = await measurePool(poolDepth1, flat.data, flat.length);
      poolRps = await measurePool(pool, flat.data, flat.length);
    }
    const edgeRt = await timeBothRuntimes(edgeBytes, {
      inputName: e.inputs[0].name,
      input,
      shape,
      outputName: "logits",
      runs: plan.bareRuns,
      warmupRuns: plan.wasmWarmupRuns,
      wasmBinary,
      nativeThreads: 1,
    });
    const features = switcherSpec ? Float32Array.from({ length: switcherSpec.features.length }, () => 0.5) : null;
    const switcherRt = switcherBytes && features
      ? await timeBothRuntimes(switcherBytes, {
        inputName: switcherSpec!.inputs[0]?.name ?? "features",
        input: features,
        shape: [1, features.length],
        outputName: "score",
        runs: plan.bareRuns,
        warmupRuns: plan.wasmWarmupRuns,
        wasmBinary,
        nativeThreads: 1,
      })
      : null;
    const switcherJsMs = timeSwitcherJs();

    log(`rep ${rep + 1}/${reps}: service ...`);
    const service = await startService(dir);
    let phases: Record<string, LoadResult>;
    let peak: number | null;
    let cpu: CpuPerRequest | null = null;
    let idle: { c16: number | null; c64: number | null } = { c16: null, c64: null };
    try {
      const classify = `${service.url}/v1/classify`;
      await load(classify, { concurrency: 2 * workers, durationMs: plan.serviceWarmMs, body: bodyFile });
      const healthzC1 = await load(`${service.url}/healthz`, { concurrency: 1, durationMs: plan.phaseMs });
      const c1 = await load(classify, { concurrency: 1, durationMs: plan.phaseMs, body: bodyFile });
      // One client alternating classify and /healthz: the floor and the request at the same moments.
      const c1Interleaved = await load(classify, {
        concurrency: 1,
        durationMs: plan.phaseMs,
        body: bodyFile,
        interleave: `${service.url}/healthz`,
      });
      const before = serviceCpu(service.pid);
      const idle0 = machineCpu();
      const c16 = await load(classify, { concurrency: 16, durationMs: plan.phaseMs, body: bodyFile });
      const idle1 = machineCpu();
      cpu = cpuPerRequest(before, serviceCpu(service.pid), c16);
      const c32 = await load(classify, { concurrency: 32, durationMs: plan.phaseMs, body: bodyFile });
      const idle2 = machineCpu();
      const c64 = await load(classify, { concurrency: 64, durationMs: plan.phaseMs, body: bodyFile });
      idle = { c16: idleShare(idle0, idle1), c64: idleShare(idle2, machineCpu()) };
      phases = {
        healthzC1,
        c1,
        c1Interleaved,
        c16,
        c32,
        c64,
        binaryC1: await load(classify, { concurrency: 1, durationMs: plan.phaseMs, body: binaryFile, binary: true }),
        binaryC16: await load(classify, { concurrency: 16, durationMs: plan.phaseMs, body: binaryFile, binary: true }),
      };
      peak = rssKiB(service.pid).hwm / 1024 || null;
    } finally {
      await service.stop();
    }
    // The same service with the edge model on its HTTP thread (WORKERS=0): no hop to a worker and back.
    log(`rep ${rep + 1}/${reps}: service, WORKERS=0 ...`);
    const local = await startService(dir, 0);
    let inProcess: { c1: LoadResult; c16: LoadResult };
    try {
      const classify = `${local.url}/v1/classify`;
      await load(classify, { concurrency: 2, durationMs: plan.serviceWarmMs, body: bodyFile });
      inProcess = {
        c1: await load(classify, { concurrency: 1, durationMs: plan.phaseMs, body: bodyFile }),
        c16: await load(classify, { concurrency: 16, durationMs: plan.phaseMs, body: bodyFile }),
      };
    } finally {
      await local.stop();
    }
    // The HTTP floor (scripts/http_floor.ts): a bare Deno.serve that reads and parses the same body, at c=16.
    log(`rep ${rep + 1}/${reps}: bare Deno.serve ...`);
    const floor = await spawn([
      "run",
      "--allow-net",
      "--allow-env",
      new URL("./http_floor.ts", import.meta.url).pathname,
    ], {
      PORT: "0",
    }, /"msg":"http floor listening","url":"([^"]+)"/);
    let floorC16: LoadResult;
    let floorGetC1: LoadResult;
    let floorPostC1: LoadResult;
    let floorCpuMs: number | null = null;
    try {
      await load(floor.url, { concurrency: 16, durationMs: Math.min(2000, plan.serviceWarmMs), body: bodyFile });
      const cpu0 = threadCpuMs(floor.child.pid);
      floorC16 = await load(floor.url, { concurrency: 16, durationMs: plan.phaseMs, body: bodyFile });
      const cpu1 = threadCpuMs(floor.child.pid);
      // Its main thread, as the service's HTTP thread is counted (I/O and V8 helper threads apart).
      floorCpuMs = cpu0 && cpu1 && floorC16.answered > 0 ? (cpu1.main - cpu0.main) / floorC16.answered : null;
      // At c=1: a bodiless GET (the floor's /healthz) and a POST of the same body, so that what the body alone costs
      // (its transfer on loopback, reading it, JSON.parse) is set apart from the service's own work.
      floorGetC1 = await load(floor.url, { concurrency: 1, durationMs: plan.phaseMs });
      floorPostC1 = await load(floor.url, { concurrency: 1, durationMs: plan.phaseMs, body: bodyFile });
    } finally {
      floor.child.kill("SIGTERM");
      await floor.child.status;
    }
    // The model floor: the same bare Deno.serve also running the edge model in the project's pool (as many workers
    // as the service; then on its own thread), and nothing else. What any service on this HTTP server and this pool
    // could reach on this machine.
    log(`rep ${rep + 1}/${reps}: bare Deno.serve with the edge model ...`);
    const modelFloor = await measureModelFloor(workers, true);
    const modelFloorInProcess = await measureModelFloor(0, false);
    const { healthzC1, c1, c1Interleaved, c16, c32, c64, binaryC1, binaryC16 } = phases;
    // Saturation: the most answered requests a second over the closed-loop concurrencies tried (shed ones not
    // counted). With few clients, each waiting for its answer before its next request, the cores idle between the
    // stages of the path (the idle share below), so c=16 alone need not saturate the service.
    const saturation = [{ c: 16, r: c16 }, { c: 32, r: c32 }, { c: 64, r: c64 }]
      .reduce((best, p) => (p.r.throughputRps > best.r.throughputRps ? p : best));
    const interleavedFloor = c1Interleaved.interleaved?.p50Ms ?? null;
    const edgeWebMs = edgeRt.web.p50Ms;
    rows.push({
      saturationOverBarePool: saturation.r.throughputRps / bare.poolRps,
      saturationConcurrency: saturation.c,
      saturationShedShare: saturation.r.shed / Math.max(1, saturation.r.answered + saturation.r.shed),
      throughputOverBarePool: c16.throughputRps / bare.poolRps,
      idleC16: idle.c16,
      idleC64: idle.c64,
      poolOverBarePool: poolRps / bare.poolRps,
      poolOverDepth1: poolRps / poolDepth1Rps,
      binaryThroughputOverBarePool: binaryC16.throughputRps / bare.poolRps,
      binaryC1OverheadMs: binaryC1.p50Ms - healthzC1.p50Ms - bare.aloneP50Ms,
      c1OverheadMs: c1.p50Ms - healthzC1.p50Ms - bare.aloneP50Ms,
      floorBodyC1Ms: floorPostC1.p50Ms - floorGetC1.p50Ms,
      c1OverFloorPostMs: c1.p50Ms - floorPostC1.p50Ms - bare.aloneP50Ms,
      inProcessC1OverheadMs: inProcess.c1.p50Ms - healthzC1.p50Ms - bare.aloneP50Ms,
      c1InterleavedOverheadMs: interleavedFloor === null
        ? null
        : c1Interleaved.p50Ms - interleavedFloor - bare.aloneP50Ms,
      c1EngineMs: engineMs(c1),
      c1OverheadBesidesEngineMs: c1.p50Ms - healthzC1.p50Ms - (engineMs(c1) ?? NaN),
      inProcessC1EngineMs: engineMs(inProcess.c1),
      inProcessC1OverheadBesidesEngineMs: inProcess.c1.p50Ms - healthzC1.p50Ms - (engineMs(inProcess.c1) ?? NaN),
      inProcessThroughputOverBarePool: inProcess.c16.throughputRps / bare.poolRps,
      c1AppMs: c1.serverP50.appMs ?? null,
      c1OutsideAppMs: outsideAppMs(c1),
      inProcessC1AppMs: inProcess.c1.serverP50.appMs ?? null,
      inProcessC1OutsideAppMs: outsideAppMs(inProcess.c1),
      healthzC1OutsideAppMs: outsideAppMs(healthzC1),
      switcherJsOverEdge: switcherJsMs === null ? null : switcherJsMs / edgeWebMs,
      switcherSessionOverEdge: switcherRt ? switcherRt.web.p50Ms / edgeWebMs : null,
      serviceSwitcherStageOverEdge: c16.serverP50.switcherMs !== null && c16.serverP50.edgeMs
        ? c16.serverP50.switcherMs / c16.serverP50.edgeMs
        : null,
      webOverNative: edgeRt.native ? edgeWebMs / edgeRt.native.p50Ms : null,
      c64OverC16Throughput: c64.throughputRps / c16.throughputRps,
      c64OverC16P99: c64.p99Ms / c16.p99Ms,
      peakRssMiB: peak,
      cpuHttpMs: cpu?.http ?? null,
      cpuV8Ms: cpu?.v8 ?? null,
      cpuWorkersMs: cpu?.workers ?? null,
      cpuOtherMs: cpu?.other ?? null,
      cpuDatabaseMs: cpu?.database ?? null,
      cpuLoadMs: cpu?.load ?? null,
      cpuServiceOverBare: cpu ? cpu.service / bare.aloneP50Ms : null,
      cpuBoundRps: cpu ? (cores * 1000) / (cpu.service + cpu.load) : null,
      httpBoundOverBarePool: cpu ? 1000 / cpu.http / bare.poolRps : null,
      floorC16OverBarePool: floorC16.throughputRps / bare.poolRps,
      modelFloorSaturationOverBarePool: modelFloor.saturationRps / bare.poolRps,
      modelFloorC1OverheadMs: modelFloor.c1.p50Ms - healthzC1.p50Ms - bare.aloneP50Ms,
      modelFloorC1OverFloorGetMs: modelFloor.c1.p50Ms - floorGetC1.p50Ms - bare.aloneP50Ms,
      modelFloorInProcessC16OverBarePool: modelFloorInProcess.saturationRps / bare.poolRps,
      modelFloorInProcessC1OverheadMs: modelFloorInProcess.c1.p50Ms - healthzC1.p50Ms - bare.aloneP50Ms,
      modelFloorCpuHttpMs: modelFloor.cpuC16?.http ?? null,
      modelFloorCpuWorkersMs: modelFloor.cpuC16?.workers ?? null,
      modelFloorCpuV8Ms: modelFloor.cpuC16?.v8 ?? null,
      modelFloorC1P50Ms: modelFloor.c1.p50Ms,
      modelFloorSaturationRps: modelFloor.saturationRps,
      modelFloorInProcessC1P50Ms: modelFloorInProcess.c1.p50Ms,
      modelFloorInProcessC16Rps: modelFloorInProcess.saturationRps,
      floorCpuMs,
      cpuHttpOverFloor: cpu && floorCpuMs ? cpu.http / floorCpuMs : null,
      listeningMs: service.listeningMs,
      readyMs: service.readyMs,
      barePoolRps: bare.poolRps,
      poolRps,
      poolDepth1Rps,
      bareAloneP50Ms: bare.aloneP50Ms,
      edgeWebP50Ms: edgeWebMs,
      edgeNativeP50Ms: edgeRt.native?.p50Ms ?? null,
      switcherJsMs,
      healthzC1P50Ms: healthzC1.p50Ms,
      c1P50Ms: c1.p50Ms,
      c1P99Ms: c1.p99Ms,
      c16Rps: c16.throughputRps,
      c16P99Ms: c16.p99Ms,
      c32Rps: c32.throughputRps,
      c64Rps: c64.throughputRps,
      c64P99Ms: c64.p99Ms,
      c64Shed: c64.shed,
      binaryC16Rps: binaryC16.throughputRps,
      floorC16Rps: floorC16.throughputRps,
      floorGetC1P50Ms: floorGetC1.p50Ms,
      floorPostC1P50Ms: floorPostC1.p50Ms,
      binaryC1P50Ms: binaryC1.p50Ms,
      inProcessC1P50Ms: inProcess.c1.p50Ms,
      inProcessC16Rps: inProcess.c16.throughputRps,
      failed: Object.values(phases).reduce((sum, p) => sum + p.failed, 0),
    });
    raw = [...raw, {
      rep: rep + 1,
      bare,
      phases,
      inProcess,
      floorC16,
      floorGetC1,
      floorPostC1,
      modelFloor,
      modelFloorInProcess,
      nativeError: edgeRt.nativeError ?? null,
    }];
  }
} finally {
  for (const w of barePool) w.terminate();
  await pool.close();
  await poolDepth1.close();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

const figures: Record<string, Spread | null> = {};
for (const key of Object.keys(rows[0])) {
  const values = rows.map((r) => r[key]).filter((v): v is number => v !== null && Number.isFinite(v));
  figures[key] = values.length === rows.length ? spread(values) : null;
}
const report = {
  machine: { cores, loadAverage: Deno.loadavg(), deno: Deno.version.deno },
  guard: !noGuard,
  settings: {
    workers,
    reps,
    quick: flags.quick,
    ...plan,
    ...RUNTIME_SETTINGS,
    switcherFeatures: switcherSpec ? switcherSpec.features.length : featureNames(e.embeddingSize ?? 0).length,
  },
  models: { edge: e.version, switcher: manifest.switcher?.version ?? null },
  figures,
  reps: raw,
};

if (flags.json) {
  console.log(JSON.stringify(report, null, 2));
} else {
  const fmt = (v: number, d: number) => v.toFixed(d);
  const show = (key: string, label: string, d: number, target = "") => {
    const s = figures[key];
    const value = s ? `${fmt(s.median, d)}  [${fmt(s.min, d)} - ${fmt(s.max, d)}]` : "n/a";
    console.log(`| ${label} | ${value} | ${target} |`);
  };
  console.log(
    `\ndmd-edge bench: edge ${e.version}, switcher ${
      report.models.switcher ?? "rule"
    }; ${workers} worker(s), ${cores} cores, connection guard ${noGuard ? "off (--no-guard)" : "on"}, ` +
      `load average ${report.machine.loadAverage.map((l) => l.toFixed(2)).join(" ")}`,
  );
  console.log(`median [min - max] of ${reps} paired repetitions${flags.quick ? " (quick: short phases)" : ""}\n`);
  console.log("| figure | value | target |");
  console.log("|---|---|---|");
  show(
    "saturationOverBarePool",
    "service throughput at saturation (the best of c=16, 32, 64; answered only) / bare pool",
    2,
    ">= 0.9",
  );
  show("saturationConcurrency", "  at concurrency", 0);
  show("saturationShedShare", "  share of requests shed there (503 OVERLOADED)", 3);
  show("throughputOverBarePool", "service throughput c=16 / bare pool", 2);
  show("idleC16", "machine CPU left idle during c=16 (all cores, /proc/stat)", 2);
  show("idleC64", "machine CPU left idle during c=64", 2);
  show("poolOverBarePool", "pool without HTTP (c=16, 1 sequence a call) / bare pool", 2);
  show("poolOverDepth1", "that pool / the same pool posting one batch at a time (INFERENCE_PIPELINE_DEPTH=1)", 2);
  show("binaryThroughputOverBarePool", "service throughput c=16, binary body / bare pool", 2);
  show("c1OverheadMs", "c=1 p50 - (healthz p50 + bare p50), ms", 3, "<= 0.3");
  show("floorBodyC1Ms", "  of which the body alone, on a bare Deno.serve: its POST p50 - its GET p50, c=1, ms", 3);
  show("c1OverFloorPostMs", "c=1 p50 - (bare Deno.serve's POST of the same body p50 + bare p50), ms", 3);
  show("binaryC1OverheadMs", "c=1 p50 - (healthz p50 + bare p50), binary body, ms", 3);
  show(
    "c1InterleavedOverheadMs",
    "c=1 p50 - (healthz p50 + bare p50), one client alternating the two (same moments), ms",
    3,
  );
  show("inProcessC1OverheadMs", "c=1 p50 - (healthz p50 + bare p50), WORKERS=0 (model on the HTTP thread), ms", 3);
  show("inProcessThroughputOverBarePool", "service throughput c=16, WORKERS=0 / bare pool", 2);
  show("c1EngineMs", "c=1: the engine's stages in the service (pre-process + model + switcher, p50), ms", 3);
  show("c1OverheadBesidesEngineMs", "c=1 p50 - (healthz p50 + those stages): the rest of the path, ms", 3);
  show("inProcessC1EngineMs", "c=1, WORKERS=0: the engine's stages in the service, ms", 3);
  show("inProcessC1OverheadBesidesEngineMs", "c=1 p50 - (healthz p50 + those stages), WORKERS=0, ms", 3);
  show("c1AppMs", "c=1: the service's own time per request (Server-Timing app, p50), ms", 3);
  show(
    "c1OutsideAppMs",
    "c=1 p50 - that: outside the service's app (Deno's HTTP, the guard's relay, the kernel, the client), ms",
    3,
  );
  show("inProcessC1AppMs", "c=1, WORKERS=0: the service's own time per request, ms", 3);
  show("inProcessC1OutsideAppMs", "c=1 p50 - that, WORKERS=0, ms", 3);
  show("healthzC1OutsideAppMs", "/healthz c=1 p50 - its own time: the same outside part for a bodiless request, ms", 3);
  show("switcherJsOverEdge", "switcher (JS) / edge model", 4, "<= 0.05");
  show("switcherSessionOverEdge", "switcher (onnxruntime-web session) / edge model", 4, "(before)");
  show("serviceSwitcherStageOverEdge", "service: switcher stage (features + score) / edge stage", 4);
  show("webOverNative", "onnxruntime-web / native (warmed)", 2, "<= 2");
  show("c64OverC16Throughput", "throughput c=64 / c=16", 2, ">= 0.9");
  show("c64OverC16P99", "p99 c=64 / p99 c=16", 2, "<= 4");
  show("peakRssMiB", "peak RSS of the service, MiB", 0);
  show("cpuServiceOverBare", "service CPU per request (all its threads, c=16) / bare model run", 2);
  show("httpBoundOverBarePool", "HTTP thread's own bound (1 / its CPU per request) / bare pool", 2);
  show("floorC16OverBarePool", "bare Deno.serve reading and parsing the same body, c=16 / bare pool", 2);
  show(
    "modelFloorSaturationOverBarePool",
    "model floor: bare Deno.serve + the edge model in the same pool, nothing else; at saturation / bare pool",
    2,
  );
  show("modelFloorC1OverheadMs", "model floor: c=1 p50 - (service's healthz p50 + bare p50), ms", 3);
  show("modelFloorC1OverFloorGetMs", "model floor: c=1 p50 - (bare Deno.serve's GET p50 + bare p50), ms", 3);
  show("modelFloorInProcessC16OverBarePool", "model floor, model on its HTTP thread: c=16 / bare pool", 2);
  show("modelFloorInProcessC1OverheadMs", "model floor, model on its HTTP thread: c=1 overhead as above, ms", 3);
  show("listeningMs", "start-up to listening, ms", 0);
  show("readyMs", "start-up to ready (/readyz 200), ms", 0);
  console.log("\n| measured | value |");
  console.log("|---|---|");
  show("barePoolRps", `bare pool (${workers} worker(s), batch 1), runs/s`, 0);
  show("poolRps", "pool without HTTP, c=16, calls/s", 0);
  show("poolDepth1Rps", "the same, one batch at a time, calls/s", 0);
  show("c16Rps", "service c=16, req/s", 0);
  show("c32Rps", "service c=32, req/s", 0);
  show("c64Rps", "service c=64, req/s", 0);
  show("binaryC16Rps", "service c=16, binary body, req/s", 0);
  show("floorC16Rps", "bare Deno.serve (scripts/http_floor.ts), same body, c=16, req/s", 0);
  show("c64Shed", "service c=64, shed (503 OVERLOADED)", 0);
  show("modelFloorSaturationRps", "model floor at saturation (best of c=16, 32, 64), req/s", 0);
  show("modelFloorC1P50Ms", "model floor c=1 p50, ms", 3);
  show("modelFloorInProcessC16Rps", "model floor, model on its HTTP thread, c=16, req/s", 0);
  show("modelFloorInProcessC1P50Ms", "model floor, model on its HTTP thread, c=1 p50, ms", 3);
  show("bareAloneP50Ms", "bare edge model p50 in one worker, ms", 3);
  show("edgeWebP50Ms", "edge model p50, onnxruntime-web, ms", 3);
  show("edgeNativeP50Ms", "edge model p50, native, ms", 3);
  show("switcherJsMs", "switcher score (JS), ms", 4);
  show("healthzC1P50Ms", "/healthz c=1 p50, ms", 3);
  show("floorGetC1P50Ms", "bare Deno.serve, GET, c=1 p50, ms", 3);
  show("floorPostC1P50Ms", "bare Deno.serve, POST of the same body, c=1 p50, ms", 3);
  show("c1P50Ms", "/v1/classify c=1 p50, ms", 3);
  show("c1P99Ms", "/v1/classify c=1 p99, ms", 3);
  show("binaryC1P50Ms", "/v1/classify c=1 p50, binary body, ms", 3);
  show("inProcessC1P50Ms", "/v1/classify c=1 p50, WORKERS=0, ms", 3);
  show("inProcessC16Rps", "service c=16, WORKERS=0, req/s", 0);
  show("c16P99Ms", "/v1/classify c=16 p99, ms", 2);
  show("c64P99Ms", "/v1/classify c=64 p99, ms", 2);
  show("failed", "failed requests (not 200, not shed)", 0);
  console.log("\n| where the CPU goes at c=16, ms per request (Linux /proc; 10 ms ticks) | value |");
  console.log("|---|---|");
  show("cpuHttpMs", "service: HTTP thread (parse, route, answer, log hand-off)", 3);
  show("floorCpuMs", "bare Deno.serve reading and parsing the same body: its main thread", 3);
  show("cpuHttpOverFloor", "service HTTP thread / that floor", 2);
  show("modelFloorCpuHttpMs", "model floor (the same floor running the edge model in the pool): its main thread", 3);
  show("cpuV8Ms", "service: V8 helper threads (garbage collection, background compilation)", 3);
  show("modelFloorCpuV8Ms", "model floor: V8 helper threads", 3);
  show("cpuWorkersMs", "service: Web Workers (inference, decision writer, connection guard)", 3);
  show("modelFloorCpuWorkersMs", "model floor: its Web Workers (inference only)", 3);
  show("cpuOtherMs", "service: runtime I/O threads", 3);
  show("cpuDatabaseMs", "database processes (the decision writer's, and the one for reads)", 3);
  show("cpuLoadMs", "load generator (separate process, same cores)", 3);
  show(
    "cpuBoundRps",
    `CPU-bound ceiling on ${cores} cores: cores / (service + load generator; the kernel's own network work not counted), req/s`,
    0,
  );
}
