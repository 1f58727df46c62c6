/**
 * The benchmark's load generator, run by `deno task bench` as its own process so that making requests never takes
 * time from the process it measures: closed-loop clients over keep-alive connections, each sending the next request
 * when the last one is answered, for a fixed duration. Prints one JSON line: answered (200), shed (503 OVERLOADED),
 * failed (anything else), latency percentiles of the answered requests, their throughput, the medians of the
 * server's own stage timings (`timings` of the answers), and the generator's own CPU time over the phase.
 *
 * Flags: --url URL (the full endpoint), --body FILE (a body to POST; without it, GET), --content-type TYPE (of the
 * body; default application/json, which is read as text), --header NAME:VALUE (repeatable), --concurrency N,
 * --duration-ms N, --interleave-url URL (each client alternates: a request to --url, then a GET to this one, timed
 * apart and reported as `interleaved`, so that both are measured at the same moments of a shared machine)
 *
 * @module
 */
import process from "node:process";
import { parseFlags, usageError } from "./cli.ts";

const USAGE =
  "usage: deno run -A scripts/bench_load.ts --url URL [--body FILE] [--content-type TYPE] [--header NAME:VALUE ...] " +
  "--concurrency N --duration-ms N [--interleave-url URL]";
const flags = parseFlags({
  url: { type: "string" },
  body: { type: "string" },
  "content-type": { type: "string", default: "application/json" },
  header: { type: "string", multiple: true, default: [] },
  concurrency: { type: "string", default: "1" },
  "duration-ms": { type: "string", default: "3000" },
  "interleave-url": { type: "string" },
}, USAGE);
const concurrency = Number(flags.concurrency);
const durationMs = Number(flags["duration-ms"]);
if (!flags.url) usageError("Cannot run: --url is required", USAGE);
if (!(Number.isInteger(concurrency) && concurrency >= 1)) usageError("Cannot run: --concurrency must be >= 1", USAGE);
if (!(durationMs > 0)) usageError("Cannot run: --duration-ms must be > 0", USAGE);
const url = flags.url;
const contentType = flags["content-type"]!;
const body = !flags.body
  ? null
  : contentType.startsWith("application/json")
  ? await Deno.readTextFile(flags.body)
  : await Deno.readFile(flags.body);
const headers: Record<string, string> = { "content-type": contentType };
for (const h of flags.header ?? []) {
  const at = h.indexOf(":");
  if (at < 1) usageError(`Cannot run: --header must be NAME:VALUE, got "${h}"`, USAGE);
  headers[h.slice(0, at).trim().toLowerCase()] = h.slice(at + 1).trim();
}

/** Percentile of sorted values (nearest rank). */
function at(sorted: number[], q: number): number | null {
  return sorted.length === 0 ? null : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

const latencies: number[] = [];
const stages: Record<string, number[]> = { queueMs: [], preprocessMs: [], edgeMs: [], switcherMs: [], totalMs: [] };
let shed = 0;
let failed = 0;
const statuses: Record<string, number> = {};
const interleaveUrl = flags["interleave-url"] ?? null;
/** Latencies of the interleaved GETs (200 only). */
const interleaved: number[] = [];
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const end = t0 + durationMs;

async function client(): Promise<void> {
  while (performance.now() < end) {
    const s = performance.now();
    const res = await fetch(url, body === null ? {} : { method: "POST", headers, body });
    const text = await res.text();
    const ms = performance.now() - s;
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status === 200) {
      latencies.push(ms);
      if (body !== null) {
        const timings = JSON.parse(text).timings ?? {};
        for (const k of Object.keys(stages)) if (typeof timings[k] === "number") stages[k].push(timings[k]);
      }
    } else if (res.status === 503 && text.includes('"OVERLOADED"')) shed++;
    else failed++;
    if (interleaveUrl) {
      // The same client's next request goes to the other URL: both measured at the same moments.
      const t = performance.now();
      const other = await fetch(interleaveUrl);
      await other.arrayBuffer();
      if (other.status === 200) interleaved.push(performance.now() - t);
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, client));
const wallMs = performance.now() - t0;
const cpu = process.cpuUsage(cpu0);
latencies.sort((a, b) => a - b);
interleaved.sort((a, b) => a - b);
const server: Record<string, number | null> = {};
for (const [k, v] of Object.entries(stages)) server[k] = at(v.sort((a, b) => a - b), 0.5);
console.log(JSON.stringify({
  concurrency,
  wallMs,
  answered: latencies.length,
  shed,
  failed,
  statuses,
  p50Ms: at(latencies, 0.5),
  p99Ms: at(latencies, 0.99),
  throughputRps: latencies.length / wallMs * 1000,
  serverP50: server,
  // This process's own CPU time over the phase (user + system), so that the caller can count the load's cost.
  cpuMs: (cpu.user + cpu.system) / 1000,
  ...(interleaveUrl
    ? { interleaved: { answered: interleaved.length, p50Ms: at(interleaved, 0.5), p99Ms: at(interleaved, 0.99) } }
    : {}),
}));
