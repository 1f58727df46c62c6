/**
 * `deno task soak`: a bounded soak and load test of the real service on loopback, with faults injected on the way.
 *
 * It starts the reference cloud server and the edge service (`main.ts`) as subprocesses on 127.0.0.1 with a fresh
 * file database, measures the service's capacity with a closed loop (fixed concurrency), then drives it open-loop
 * (requests sent at a fixed rate, whether or not earlier ones were answered, latency counted from the planned send
 * time, so a stalled server cannot hide its queueing: no coordinated omission) in four phases:
 *
 *   capacity, 2x capacity            no faults
 *   capacity + faults, 2x + faults   the cloud server killed (SIGKILL) at 20% of the phase and restarted at 45%;
 *                                    the database write-locked by another process from 55% to 80%; its `-shm`
 *                                    truncated at 90% (SQLite's next read of its index ends the process that
 *                                    reads it with SIGBUS: the service's database process, never the service)
 *
 * and prints per phase: requests sent, answered by route, shed (503 OVERLOADED), rate limited, failed (other 5xx,
 * connection errors, client timeouts), latency percentiles, the service's peak RSS. After a clean SIGTERM it counts
 * the answered decisions found in the database: decisions lost is answered minus found (the target is zero).
 *
 * The load generator is a fetch driver in this process rather than autocannon: autocannon is closed-loop (a new
 * request only when one is answered), so past capacity it measures its own back-off, not the service; and each
 * request here carries a real, jittered sequence and has its route, error code and decision id read back.
 *
 * Requests are the shipped samples (`wasm-models/samples`) with random jitter; a share (`--cloud-share`, default
 * 0.2) is forced to the cloud so that the cloud path is loaded whatever the switcher decides.
 *
 * Usage: deno task soak [--duration 10] [--concurrency 32] [--workers 2] [--cloud-share 0.2] [--durable]
 *        [--json out.json]
 *
 * @module
 */
import { createClient } from "@libsql/client";
import { openDatabase } from "../db/client.ts";
import { countDecisions, getDecision } from "../db/queries.ts";
import { parseFlags } from "./cli.ts";
import { childPids, freePort, rssKiB, sigbusDatabaseProcesses, spawn, startCloud } from "./procs.ts";

const args = parseFlags(
  {
    duration: { type: "string", default: "10" },
    concurrency: { type: "string", default: "32" },
    workers: { type: "string", default: "2" },
    models: { type: "string", default: "wasm-models" },
    durable: { type: "boolean", default: false },
    "cloud-share": { type: "string", default: "0.2" },
    json: { type: "string" },
  },
  "usage: deno task soak [--duration 10] [--concurrency 32] [--workers 2] [--models DIR] [--durable] " +
    "[--cloud-share 0.2] [--json FILE]\n" +
    "Drive the service open-loop with and without faults; PASS (exit 0) only when no answered decision is lost.",
);
const PHASE_S = Number(args.duration);
const CONCURRENCY = Number(args.concurrency);
const ROOT = new URL("..", import.meta.url).pathname;
const MODELS = args.models!.startsWith("/") ? args.models! : `${ROOT}${args.models}`;
const REQUEST_TIMEOUT_MS = 10_000;
/** Share of requests forced to the cloud (`route: "cloud"`), so that the cloud path carries load whatever the switcher. */
const CLOUD_SHARE = Number(args["cloud-share"]);
const MAX_IN_FLIGHT = 4000;

// --- requests ---------------------------------------------------------------------------------------------

interface Sample {
  layout: string;
  fps: number;
  frames: number[][][];
}

const samples: Sample[] = [];
for (const entry of Deno.readDirSync(`${MODELS}/samples`)) {
  if (entry.name.endsWith(".json")) samples.push(JSON.parse(Deno.readTextFileSync(`${MODELS}/samples/${entry.name}`)));
}
if (samples.length === 0) throw new Error(`No samples in ${MODELS}/samples`);

let seed = 12345;
function random(): number {
  seed = (seed * 1103515245 + 12345) & 0x7fffffff;
  return seed / 0x7fffffff;
}

/** A sample with position jitter of a random size, so that switcher scores (and routes) vary. */
function body(): string {
  const s = samples[Math.floor(random() * samples.length)];
  const noise = random() * 0.06;
  const frames = s.frames.map((f) =>
    f.map(([x, y, c]) => [x + (random() - 0.5) * noise, y + (random() - 0.5) * noise, c])
  );
  return JSON.stringify({
    layout: s.layout,
    fps: s.fps,
    frames,
    ...(random() < CLOUD_SHARE ? { route: "cloud" } : {}),
  });
}

interface Outcome {
  status: number; // 0: no response
  route?: string;
  cloudError?: string;
  decisionId?: string;
  latencyMs: number;
}

async function send(url: string, payload: string, plannedAt: number): Promise<Outcome> {
  try {
    const res = await fetch(`${url}/v1/classify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: payload,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
    const json = await res.json().catch(() => ({}));
    return {
      status: res.status,
      route: json.route,
      cloudError: json.cloudError?.code ?? json.code,
      decisionId: json.decisionId,
      latencyMs: performance.now() - plannedAt,
    };
  } catch {
    return { status: 0, latencyMs: performance.now() - plannedAt };
  }
}

// --- phases -----------------------------------------------------------------------------------------------

interface PhaseReport {
  phase: string;
  targetRate: number;
  seconds: number;
  sent: number;
  answered: number;
  byRoute: Record<string, number>;
  fallbackCauses: Record<string, number>;
  shed: number;
  rateLimited: number;
  failed: number;
  failedDetail: Record<string, number>;
  notSentClientCap: number;
  answeredPerS: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  peakRssMiB: number;
  faults: string[];
}

function percentile(sorted: number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function summarise(
  phase: string,
  targetRate: number,
  seconds: number,
  outcomes: Outcome[],
  extra: { notSent: number; peakRssKiB: number; faults: string[] },
): PhaseReport {
  const ok = outcomes.filter((o) => o.status === 200);
  const byRoute: Record<string, number> = {};
  const fallbackCauses: Record<string, number> = {};
  for (const o of ok) {
    byRoute[o.route ?? "?"] = (byRoute[o.route ?? "?"] ?? 0) + 1;
    if (o.route === "edge_fallback") {
      fallbackCauses[o.cloudError ?? "?"] = (fallbackCauses[o.cloudError ?? "?"] ?? 0) + 1;
    }
  }
  const failedDetail: Record<string, number> = {};
  let shed = 0, rateLimited = 0, failed = 0;
  for (const o of outcomes) {
    if (o.status === 200) continue;
    if (o.status === 503 && o.cloudError === "OVERLOADED") shed++;
    else if (o.status === 429) rateLimited++;
    else {
      failed++;
      const key = o.status === 0 ? "no response" : `${o.status} ${o.cloudError ?? ""}`.trim();
      failedDetail[key] = (failedDetail[key] ?? 0) + 1;
    }
  }
  const lat = ok.map((o) => o.latencyMs).sort((a, b) => a - b);
  const r = (v: number) => Math.round(v * 10) / 10;
  return {
    phase,
    targetRate: Math.round(targetRate),
    seconds,
    sent: outcomes.length,
    answered: ok.length,
    byRoute,
    fallbackCauses,
    shed,
    rateLimited,
    failed,
    failedDetail,
    notSentClientCap: extra.notSent,
    answeredPerS: r(ok.length / seconds),
    latencyMs: {
      p50: r(percentile(lat, 0.5)),
      p90: r(percentile(lat, 0.9)),
      p99: r(percentile(lat, 0.99)),
      max: r(lat.at(-1) ?? 0),
    },
    peakRssMiB: r(extra.peakRssKiB / 1024),
    faults: extra.faults,
  };
}

/** Closed loop: `concurrency` clients, each sending its next request when the last is answered. */
async function closedLoop(url: string, seconds: number, concurrency: number): Promise<Outcome[]> {
  const end = performance.now() + seconds * 1000;
  const outcomes: Outcome[] = [];
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (performance.now() < end) outcomes.push(await send(url, body(), performance.now()));
  }));
  return outcomes;
}

/** Open loop: one request every 1/rate seconds, on schedule, whatever the answers. */
async function openLoop(
  url: string,
  seconds: number,
  rate: number,
  onTick: (fraction: number) => void,
): Promise<{ outcomes: Outcome[]; notSent: number }> {
  const start = performance.now();
  const total = Math.round(seconds * rate);
  const pending = new Set<Promise<void>>();
  const outcomes: Outcome[] = [];
  let notSent = 0;
  // Bodies are built ahead, so that building them never delays the schedule.
  const bodies = Array.from({ length: Math.min(total, 500) }, body);
  for (let i = 0; i < total; i++) {
    const plannedAt = start + (i * 1000) / rate;
    const wait = plannedAt - performance.now();
    if (wait > 1) await new Promise((r) => setTimeout(r, wait));
    onTick(i / total);
    if (pending.size >= MAX_IN_FLIGHT) {
      notSent++;
      continue;
    }
    const p: Promise<void> = send(url, bodies[i % bodies.length], plannedAt).then((o) => {
      outcomes.push(o);
      pending.delete(p);
    });
    pending.add(p);
  }
  await Promise.all(pending);
  return { outcomes, notSent };
}

// --- main -------------------------------------------------------------------------------------------------

const dir = await Deno.makeTempDir({ prefix: "dmd-soak-" });
const dbPath = `${dir}/decisions.db`;
const cloudPort = freePort();
console.error(`soak: starting the reference cloud server and the service (models ${MODELS}, db ${dbPath})`);
let cloud = await startCloud(cloudPort, MODELS);
const service = await spawn(["run", "-A", `${ROOT}main.ts`], {
  HOST: "127.0.0.1",
  PORT: "0",
  MODELS_DIR: MODELS,
  DATABASE_URL: `file:${dbPath}`,
  CLOUD_URL: `http://127.0.0.1:${cloudPort}`,
  WORKERS: String(args.workers),
  LOG_DURABLE: args.durable ? "true" : "false",
  SWITCHER_POLL_MS: "0",
  LOG_LEVEL: "warn",
}, /"msg":"dmd-edge listening","url":"([^"]+)"/);
const pid = service.child.pid;
let peakKiB = 0;
const rssTimer = setInterval(() => (peakKiB = Math.max(peakKiB, rssKiB(pid).rss)), 200);
const answeredIds: string[] = [];
const reports: PhaseReport[] = [];

try {
  // Warm up, then measure capacity with a closed loop.
  await closedLoop(service.url, 2, 4);
  console.error(`soak: measuring capacity (closed loop, ${CONCURRENCY} clients, ${PHASE_S} s)`);
  peakKiB = 0;
  const cal = await closedLoop(service.url, PHASE_S, CONCURRENCY);
  cal.forEach((o) => o.decisionId && o.status === 200 && answeredIds.push(o.decisionId));
  const calReport = summarise("capacity probe (closed loop)", 0, PHASE_S, cal, {
    notSent: 0,
    peakRssKiB: peakKiB,
    faults: [],
  });
  reports.push(calReport);
  const capacity = Math.max(1, calReport.answeredPerS);
  console.error(`soak: capacity ~ ${capacity} answers/s`);

  for (
    const [name, factor, faults] of [
      ["1x capacity", 1, false],
      ["2x capacity", 2, false],
      ["1x capacity + faults", 1, true],
      ["2x capacity + faults", 2, true],
    ] as const
  ) {
    console.error(`soak: ${name} (${Math.round(capacity * factor)}/s for ${PHASE_S} s)`);
    peakKiB = 0;
    const events: string[] = [];
    const done = new Set<string>();
    let lock: { release: () => Promise<void> } | null = null;
    const actions: Promise<unknown>[] = [];
    const at = (fraction: number, label: string, fn: () => Promise<void>) => (f: number) => {
      if (f < fraction || done.has(label)) return;
      done.add(label);
      events.push(`${label} at ${Math.round(fraction * 100)}%`);
      actions.push(fn().catch((e) => events.push(`${label} failed: ${e.message}`)));
    };
    const schedule = faults
      ? [
        at(0.2, "cloud killed (SIGKILL)", async () => {
          cloud.child.kill("SIGKILL");
          await cloud.child.status;
        }),
        at(0.45, "cloud restarted", async () => {
          cloud = await startCloud(cloudPort, MODELS);
        }),
        at(0.55, "database write-locked by another process", async () => {
          // BEGIN IMMEDIATE takes the write lock; the service writes all the time, so try until it is free.
          const holder = createClient({ url: `file:${dbPath}`, timeout: 20 });
          let tx: Awaited<ReturnType<typeof holder.transaction>> | null = null;
          for (let i = 0; i < 200 && !tx; i++) {
            tx = await holder.transaction("write").catch(() => null);
            if (!tx) await new Promise((r) => setTimeout(r, 5));
          }
          if (!tx) throw new Error("the write lock stayed busy");
          lock = {
            async release() {
              await tx!.rollback();
              holder.close();
            },
          };
        }),
        at(0.8, "database lock released", async () => {
          await Promise.all(actions.slice(0, 3));
          await lock?.release();
        }),
        at(0.9, "database -shm truncated (SIGBUS)", async () => {
          await Promise.all(actions.slice(0, 4));
          await Deno.truncate(`${dbPath}-shm`, 0);
        }),
      ]
      : [];
    const { outcomes, notSent } = await openLoop(
      service.url,
      PHASE_S,
      capacity * factor,
      (f) => schedule.forEach((s) => s(f)),
    );
    await Promise.all(actions);
    for (const o of outcomes) if (o.status === 200 && o.decisionId) answeredIds.push(o.decisionId);
    reports.push(
      summarise(name, capacity * factor, PHASE_S, outcomes, { notSent, peakRssKiB: peakKiB, faults: events }),
    );
    // Let the service catch up between phases (the backlog written, the circuit closed again).
    await new Promise((r) => setTimeout(r, 2000));
  }
} finally {
  clearInterval(rssTimer);
}

// Clean shutdown, then count what reached the database.
const hwmKiB = rssKiB(pid).hwm;
// The database processes it runs now (db/host.ts; new ones after each SIGBUS), apart: their own memory.
const hostsKiB = childPids(pid, "db/host").map((p) => rssKiB(p).hwm);
const backlogBefore = await fetch(`${service.url}/readyz`).then((r) => r.json()).then((j) => j.logBacklog).catch(() =>
  -1
);
service.child.kill("SIGTERM");
const exit = await service.child.status;
cloud.child.kill("SIGTERM");
await cloud.child.status;
const database = await openDatabase(`file:${dbPath}`);
const found = new Set<string>();
const ids = [...new Set(answeredIds)];
for (const id of ids) if (await getDecision(database.db, id)) found.add(id);
const totalRows = await countDecisions(database.db);
database.close();
let outboxLeft = 0;
try {
  for (const e of Deno.readDirSync(`${dbPath}.outbox`)) if (e.name.endsWith(".jsonl")) outboxLeft++;
} catch {
  // no outbox folder
}

const summary = {
  durable: args.durable,
  workers: Number(args.workers),
  phaseSeconds: PHASE_S,
  phases: reports,
  decisions: {
    answered: ids.length,
    foundInDatabase: found.size,
    lost: ids.length - found.size,
    rowsInDatabase: totalRows,
    outboxSegmentsLeft: outboxLeft,
    backlogAtShutdown: backlogBefore,
  },
  service: {
    exitCode: exit.code,
    peakRssMiB: Math.round(hwmKiB / 102.4) / 10,
    databaseProcessesPeakRssMiB: hostsKiB.map((k) => Math.round(k / 102.4) / 10),
    /** Database processes that ended with SIGBUS (the truncated `-shm`), from the service's log. */
    databaseProcessSigbus: sigbusDatabaseProcesses(service.output()),
  },
};

console.log(
  "\nphase                          rate/s  sent   answered  edge  cloud  fallback  shed  429  failed  p50ms  p90ms  p99ms  maxms  RSS MiB",
);
for (const r of reports) {
  const pad = (v: unknown, n: number) => String(v).padStart(n);
  console.log(
    r.phase.padEnd(30) + pad(r.targetRate || "-", 7) + pad(r.sent, 6) + pad(r.answered, 11) +
      pad(r.byRoute.edge ?? 0, 6) +
      pad(r.byRoute.cloud ?? 0, 7) + pad(r.byRoute.edge_fallback ?? 0, 10) + pad(r.shed, 6) + pad(r.rateLimited, 5) +
      pad(r.failed, 8) + pad(r.latencyMs.p50, 7) + pad(r.latencyMs.p90, 7) + pad(r.latencyMs.p99, 7) +
      pad(r.latencyMs.max, 7) + pad(r.peakRssMiB, 9),
  );
  if (r.faults.length) console.log(`  faults: ${r.faults.join("; ")}`);
  if (Object.keys(r.fallbackCauses).length) console.log(`  fallback causes: ${JSON.stringify(r.fallbackCauses)}`);
  if (r.failed) console.log(`  failed: ${JSON.stringify(r.failedDetail)}`);
  if (r.notSentClientCap) console.log(`  not sent (driver cap of ${MAX_IN_FLIGHT} in flight): ${r.notSentClientCap}`);
}
console.log(
  `\ndecisions: answered ${summary.decisions.answered}, found in the database ${summary.decisions.foundInDatabase}, ` +
    `lost ${summary.decisions.lost}; rows ${totalRows}; outbox segments left ${outboxLeft}; ` +
    `service exit ${exit.code}, peak RSS ${summary.service.peakRssMiB} MiB (VmHWM; its database processes ` +
    `${summary.service.databaseProcessesPeakRssMiB.join(" + ") || "none"} MiB); database processes ended by ` +
    `SIGBUS ${summary.service.databaseProcessSigbus}; LOG_DURABLE=${args.durable}`,
);
if (args.json) Deno.writeTextFileSync(args.json, JSON.stringify(summary, null, 2));
/** Passed: every answered decision is in the database, the outbox drained before exit, and the service exited 0. */
const passed = summary.decisions.lost === 0 && outboxLeft === 0 && exit.code === 0;
console.log(passed ? "soak: PASS" : "soak: FAIL");
if (passed) await Deno.remove(dir, { recursive: true });
else {
  // Keep the evidence: the database, the outbox and the service's output.
  Deno.writeTextFileSync(`${dir}/service.log`, service.output());
  console.log(`kept ${dir} (database, outbox, service.log) for inspection`);
}
Deno.exit(passed ? 0 : 1);
