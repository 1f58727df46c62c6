/**
 * `deno task bench:guard`: what the connection guard (serve/conn_guard.ts) costs, side by side in one run. Two
 * service processes with the same models and workers (no cloud: every request is kept on the edge), one with the
 * guard (the default) and one without (`HEADER_TIMEOUT_MS=0`), both warmed; then, in paired repetitions whose order
 * alternates, the load generator (scripts/bench_load.ts, a process of its own) against each: `/healthz` at c=1 (the
 * HTTP floor), `POST /v1/classify` at c=1 and at c=16. For each phase: p50, p99, throughput, and the service's CPU
 * time per answered request (user + system, from /proc, so Linux only; in all, and the HTTP thread's share), each as
 * the median over the repetitions, the difference (guard - none) and the range. Then two measures that a shared
 * machine disturbs less: c=1 with one client alternating requests between the services (same moments for both), and
 * c=16 with both services loaded at once (they share the cores alike). On a shared machine, read those and the CPU
 * time per request.
 *
 * Flags: --models DIR, --workers N (2), --reps N (5), --phase-ms N (4000), --json
 *
 * @module
 */
import { parseFlags, usageError } from "./cli.ts";
import { processCpuMs, spawn, threadCpuMs } from "./procs.ts";
import { median } from "./timing.ts";
import { sleep } from "../lib/deadline.ts";

const USAGE = "usage: deno task bench:guard [--models DIR] [--workers N] [--reps N] [--phase-ms N] [--json]";
const flags = parseFlags({
  models: { type: "string", default: "wasm-models" },
  workers: { type: "string", default: "2" },
  reps: { type: "string", default: "5" },
  "phase-ms": { type: "string", default: "4000" },
  json: { type: "boolean", default: false },
}, USAGE);
const workers = Number(flags.workers);
const reps = Number(flags.reps);
const phaseMs = Number(flags["phase-ms"]);
if (!(Number.isInteger(workers) && workers >= 1)) usageError("Cannot run: --workers must be >= 1", USAGE);
if (!(Number.isInteger(reps) && reps >= 1)) usageError("Cannot run: --reps must be >= 1", USAGE);
if (!(Number.isInteger(phaseMs) && phaseMs >= 500)) usageError("Cannot run: --phase-ms must be >= 500", USAGE);
const log = (line: string) => console.error(line);

interface Phase {
  p50Ms: number;
  p99Ms: number;
  throughputRps: number;
  answered: number;
  failed: number;
  cpuMsPerRequest: number;
  /** The HTTP thread's share of it (the relay runs on a thread of its own). */
  httpThreadCpuMsPerRequest: number;
}

async function load(
  service: { url: string; pid: number },
  path: string,
  options: { concurrency: number; durationMs: number; body?: string },
): Promise<Phase> {
  const args = ["run", "-A", new URL("./bench_load.ts", import.meta.url).pathname, "--url", `${service.url}${path}`];
  if (options.body) args.push("--body", options.body);
  args.push("--concurrency", String(options.concurrency), "--duration-ms", String(options.durationMs));
  const cpu0 = processCpuMs(service.pid) ?? 0;
  const http0 = threadCpuMs(service.pid)?.main ?? 0;
  const out = await new Deno.Command(Deno.execPath(), { args, stdout: "piped", stderr: "inherit" }).output();
  const cpu = (processCpuMs(service.pid) ?? 0) - cpu0;
  const http = (threadCpuMs(service.pid)?.main ?? 0) - http0;
  if (!out.success) throw new Error(`the load generator failed at ${service.url}${path}`);
  const r = JSON.parse(new TextDecoder().decode(out.stdout));
  return {
    p50Ms: r.p50Ms,
    p99Ms: r.p99Ms,
    throughputRps: r.throughputRps,
    answered: r.answered,
    failed: r.failed + r.shed,
    cpuMsPerRequest: cpu / Math.max(1, r.answered),
    httpThreadCpuMsPerRequest: http / Math.max(1, r.answered),
  };
}

async function startService(dir: string, env: Record<string, string>) {
  const { child, url } = await spawn(["run", "-A", new URL("../main.ts", import.meta.url).pathname], {
    PORT: "0",
    MODELS_DIR: flags.models!,
    DATABASE_URL: `file:${dir}/bench.db`,
    WORKERS: String(workers),
    CLOUD_URL: "http://127.0.0.1:9",
    EXPLORATION_RATE: "0",
    LOG_LEVEL: "warn",
    ...env,
  }, /"msg":"dmd-edge listening","url":"([^"]+)"/);
  while ((await fetch(`${url}/readyz`).then((r) => (r.body?.cancel(), r.status))) !== 200) {
    await sleep(10);
  }
  return {
    url,
    pid: child.pid,
    async stop() {
      child.kill("SIGTERM");
      await child.status;
    },
  };
}

const dir = await Deno.makeTempDir({ prefix: "dmd-bench-guard-" });
const samples = [...Deno.readDirSync(`${flags.models}/samples`)].map((e) => e.name).filter((n) => n.endsWith(".json"));
if (samples.length === 0) usageError(`Cannot run: ${flags.models}/samples holds no sample request`, USAGE);
const sample = JSON.parse(await Deno.readTextFile(`${flags.models}/samples/${samples.sort()[0]}`));
const bodyFile = `${dir}/body.json`;
await Deno.writeTextFile(bodyFile, JSON.stringify({ ...sample, route: "edge" }));

await Deno.mkdir(`${dir}/none`);
await Deno.mkdir(`${dir}/guard`);
const services = {
  none: await startService(`${dir}/none`, { HEADER_TIMEOUT_MS: "0" }),
  guard: await startService(`${dir}/guard`, {}),
};
const results: Record<string, Record<string, Phase[]>> = {};
/** Interleaved c=1 latencies, in ms, per path and service. */
const interleaved: Record<string, { none: number[]; guard: number[] }> = {};
/** Both services loaded at once at c=16, per repetition. */
const together: { none: Phase; guard: Phase }[] = [];
const bodyText = await Deno.readTextFile(bodyFile);

/** One request; its latency in ms. */
async function timed(url: string, post: boolean): Promise<number> {
  const t = performance.now();
  const res = await fetch(
    url,
    post ? { method: "POST", headers: { "content-type": "application/json" }, body: bodyText } : {},
  );
  await res.arrayBuffer();
  if (res.status !== 200) throw new Error(`Cannot bench: ${url} answered ${res.status}`);
  return performance.now() - t;
}

try {
  log("warming both services (c=16, 4 s each)");
  for (const s of Object.values(services)) {
    await load(s, "/v1/classify", { concurrency: 16, durationMs: 4000, body: bodyFile });
  }
  for (let rep = 0; rep < reps; rep++) {
    const order = rep % 2 === 0 ? (["none", "guard"] as const) : (["guard", "none"] as const);
    for (const name of order) {
      const s = services[name];
      const phases: Record<string, Phase> = {
        "healthz c=1": await load(s, "/healthz", { concurrency: 1, durationMs: phaseMs / 2 }),
        "classify c=1": await load(s, "/v1/classify", { concurrency: 1, durationMs: phaseMs, body: bodyFile }),
        "classify c=16": await load(s, "/v1/classify", { concurrency: 16, durationMs: phaseMs, body: bodyFile }),
      };
      for (const [phase, r] of Object.entries(phases)) ((results[phase] ??= {})[name] ??= []).push(r);
      log(
        `rep ${rep + 1}/${reps} ${name}: ` +
          Object.entries(phases).map(([p, r]) => `${p} p50 ${r.p50Ms.toFixed(2)} ms`).join(", "),
      );
    }
  }
  // Interleaved c=1: one client here alternates requests between the services (the order flips every pair), so
  // that both are measured at the same moments of a shared machine.
  log("interleaved c=1");
  for (const [path, post] of [["/healthz", false], ["/v1/classify", true]] as const) {
    const by = interleaved[path] = { none: [] as number[], guard: [] as number[] };
    for (let i = 0; i < 150 * phaseMs / 1000; i++) {
      for (const name of i % 2 === 0 ? (["none", "guard"] as const) : (["guard", "none"] as const)) {
        by[name].push(await timed(`${services[name].url}${path}`, post));
      }
    }
  }
  // Both at once at c=16: one load generator per service, running together, so that they share the cores alike.
  for (let rep = 0; rep < reps; rep++) {
    const [none, guard] = await Promise.all(
      (["none", "guard"] as const).map((name) =>
        load(services[name], "/v1/classify", { concurrency: 16, durationMs: phaseMs, body: bodyFile })
      ),
    );
    together.push({ none, guard });
    log(
      `together ${rep + 1}/${reps}: none ${none.throughputRps.toFixed(0)} rps, guard ${
        guard.throughputRps.toFixed(0)
      } rps`,
    );
  }
} finally {
  for (const s of Object.values(services)) await s.stop();
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

const metrics = ["p50Ms", "p99Ms", "throughputRps", "cpuMsPerRequest", "httpThreadCpuMsPerRequest"] as const;
interface Compared {
  none: number;
  guard: number;
  pairedDiff: number;
  diffRange: [number, number];
}
const summary = Object.entries(results).map(([phase, by]) => ({
  phase,
  failed: [...by.none, ...by.guard].reduce((n, r) => n + r.failed, 0),
  ...Object.fromEntries(metrics.map((m): [string, Compared] => {
    const none = by.none.map((r) => r[m]);
    const guard = by.guard.map((r) => r[m]);
    const paired = guard.map((g, i) => g - none[i]);
    return [m, {
      none: median(none),
      guard: median(guard),
      pairedDiff: median(paired),
      diffRange: [Math.min(...paired), Math.max(...paired)],
    }];
  })) as Record<(typeof metrics)[number], Compared>,
}));
const quantile = (v: number[], q: number) => [...v].sort((a, b) => a - b)[Math.floor(q * (v.length - 1))];
const interleavedSummary = Object.entries(interleaved).map(([path, by]) => ({
  path,
  requests: by.none.length,
  p50Ms: { none: quantile(by.none, 0.5), guard: quantile(by.guard, 0.5) },
  p90Ms: { none: quantile(by.none, 0.9), guard: quantile(by.guard, 0.9) },
}));
const togetherSummary = (["throughputRps", "p50Ms", "cpuMsPerRequest", "httpThreadCpuMsPerRequest"] as const).map((
  m,
) => ({
  metric: m,
  none: median(together.map((t) => t.none[m])),
  guard: median(together.map((t) => t.guard[m])),
  ratio: median(together.map((t) => t.guard[m] / t.none[m])),
}));
if (flags.json) {
  console.log(
    JSON.stringify(
      { workers, reps, phaseMs, summary, interleaved: interleavedSummary, together: togetherSummary },
      null,
      2,
    ),
  );
} else {
  console.log(
    `guard vs none, ${reps} paired repetitions of ${phaseMs} ms (median; guard - none per pair, median [range])`,
  );
  for (const row of summary) {
    for (const m of metrics) {
      const v = row[m];
      console.log(
        `${row.phase.padEnd(14)} ${m.padEnd(26)} none ${v.none.toFixed(3).padStart(9)}  guard ${
          v.guard.toFixed(3).padStart(9)
        }  diff ${v.pairedDiff.toFixed(3).padStart(9)} [${v.diffRange.map((x) => x.toFixed(3)).join(", ")}]`,
      );
    }
    if (row.failed > 0) console.log(`${row.phase}: ${row.failed} requests failed or shed`);
  }
  console.log("interleaved c=1 (one client alternating between the services; ms)");
  for (const r of interleavedSummary) {
    console.log(
      `${r.path.padEnd(14)} ${r.requests} each  p50 none ${r.p50Ms.none.toFixed(3)} guard ${
        r.p50Ms.guard.toFixed(3)
      } ` +
        `(diff ${(r.p50Ms.guard - r.p50Ms.none).toFixed(3)})  p90 none ${r.p90Ms.none.toFixed(3)} guard ${
          r.p90Ms.guard.toFixed(3)
        }`,
    );
  }
  console.log("classify c=16, both services loaded at once (median over repetitions; ratio guard / none per pair)");
  for (const r of togetherSummary) {
    console.log(
      `${r.metric.padEnd(26)} none ${r.none.toFixed(3).padStart(9)}  guard ${r.guard.toFixed(3).padStart(9)}  ratio ${
        r.ratio.toFixed(3)
      }`,
    );
  }
}
