/**
 * The benchmark's load generator, run by `deno task bench` as its own process so that making requests never takes
 * time from the process it measures: closed-loop clients over keep-alive connections, each sending the next request
 * when the last one is answered, for a fixed duration. Prints one JSON line: answered (200), shed (503 OVERLOADED),
 * failed (anything else), latency percentiles of the answered requests, their throughput, the medians of the
 * server's own stage timings (`timings` of the answers) and of its own time per request (`appMs`, from the
 * `Server-Timing: app;dur=` header), and the generator's own CPU time over the phase.
 *
 * Flags: --url URL (the full endpoint), --body FILE (a body to POST; without it, GET), --content-type TYPE (of the
 * body; default application/json, which is read as text), --header NAME:VALUE (repeatable), --concurrency N,
 * --duration-ms N, --interleave-url URL (each client alternates: a request to --url, then a GET to this one, timed
 * apart and reported as `interleaved`, so that both are measured at the same moments of a shared machine),
 * --client raw|fetch (raw, the default: a lean HTTP/1.1 client on a kept-alive socket, scripts/http1_client.ts, whose
 * CPU per request is a fraction of `fetch`'s; fetch: the runtime's `fetch`, for comparison)
 *
 * @module
 */
import process from "node:process";
import { parseFlags, usageError } from "./cli.ts";
import { buildRequest, Http1Connection } from "./http1_client.ts";
import { appDurationMs } from "./timing.ts";

const USAGE =
  "usage: deno run -A scripts/bench_load.ts --url URL [--body FILE] [--content-type TYPE] [--header NAME:VALUE ...] " +
  "--concurrency N --duration-ms N [--interleave-url URL] [--client raw|fetch]";
const flags = parseFlags({
  url: { type: "string" },
  body: { type: "string" },
  "content-type": { type: "string", default: "application/json" },
  header: { type: "string", multiple: true, default: [] },
  concurrency: { type: "string", default: "1" },
  "duration-ms": { type: "string", default: "3000" },
  "interleave-url": { type: "string" },
  client: { type: "string", default: "raw" },
}, USAGE);
const concurrency = Number(flags.concurrency);
const durationMs = Number(flags["duration-ms"]);
if (!flags.url) usageError("Cannot run: --url is required", USAGE);
if (!(Number.isInteger(concurrency) && concurrency >= 1)) usageError("Cannot run: --concurrency must be >= 1", USAGE);
if (!(durationMs > 0)) usageError("Cannot run: --duration-ms must be > 0", USAGE);
if (flags.client !== "raw" && flags.client !== "fetch") usageError("Cannot run: --client must be raw or fetch", USAGE);
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
/** The stage timings an answer carries in its `timings`. */
const ANSWER_STAGES = ["queueMs", "preprocessMs", "edgeMs", "switcherMs", "totalMs"] as const;
/** Those, and the service's own time from its `Server-Timing` header (`appMs`). */
const stages: Record<string, number[]> = Object.fromEntries([...ANSWER_STAGES, "appMs"].map((k) => [k, []]));
let shed = 0;
let failed = 0;
const statuses: Record<string, number> = {};
const interleaveUrl = flags["interleave-url"] ?? null;
/** Latencies of the interleaved GETs (200 only). */
const interleaved: number[] = [];
const t0 = performance.now();
const cpu0 = process.cpuUsage();
const end = t0 + durationMs;

/** One answer, as either client reads it. */
interface Answer {
  status: number;
  text: () => string;
  /** The `Server-Timing` header, if any. */
  serverTiming: string | null;
}

/** Send one request over this client's own connection: to --url (with the body, if any), or to --interleave-url. */
type Send = (target: "main" | "interleave") => Promise<Answer>;

const utf8 = new TextDecoder();

/** A sender on the lean client: the request bytes built once, one kept-alive connection per target. */
function rawSender(): Send {
  const open = (u: string, withBody: boolean) => {
    const parsed = new URL(u);
    if (parsed.protocol !== "http:") {
      usageError("Cannot run: --client raw takes http: URLs only (use --client fetch)", USAGE);
    }
    return {
      conn: new Http1Connection(parsed.hostname, Number(parsed.port || 80)),
      bytes: buildRequest(parsed, withBody && body !== null ? { headers, body } : {}),
    };
  };
  const main = open(url, true);
  const other = interleaveUrl ? open(interleaveUrl, false) : null;
  return async (target) => {
    const c = target === "main" ? main : other!;
    const res = await c.conn.request(c.bytes);
    return {
      status: res.status,
      text: () => utf8.decode(res.body),
      serverTiming: res.headers.get("server-timing") ?? null,
    };
  };
}

/** A sender on the runtime's fetch. */
function fetchSender(): Send {
  return async (target) => {
    const res = target === "main"
      ? await fetch(url, body === null ? {} : { method: "POST", headers, body })
      : await fetch(interleaveUrl!);
    const text = await res.text();
    return { status: res.status, text: () => text, serverTiming: res.headers.get("server-timing") };
  };
}

async function client(): Promise<void> {
  const send = flags.client === "raw" ? rawSender() : fetchSender();
  while (performance.now() < end) {
    const s = performance.now();
    const res = await send("main");
    const ms = performance.now() - s;
    statuses[res.status] = (statuses[res.status] ?? 0) + 1;
    if (res.status === 200) {
      latencies.push(ms);
      const app = appDurationMs(res.serverTiming);
      if (app !== null) stages.appMs.push(app);
      if (body !== null) {
        const timings = JSON.parse(res.text()).timings ?? {};
        for (const k of ANSWER_STAGES) if (typeof timings[k] === "number") stages[k].push(timings[k]);
      }
    } else if (res.status === 503 && res.text().includes('"OVERLOADED"')) shed++;
    else failed++;
    if (interleaveUrl) {
      // The same client's next request goes to the other URL: both measured at the same moments.
      const t = performance.now();
      const other = await send("interleave");
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
  client: flags.client,
  ...(interleaveUrl
    ? { interleaved: { answered: interleaved.length, p50Ms: at(interleaved, 0.5), p99Ms: at(interleaved, 0.99) } }
    : {}),
}));
