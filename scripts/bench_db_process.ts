/**
 * `deno task bench:dbprocess`: what the database process (`db/host.ts`, `DATABASE_PROCESS=true`) costs against
 * libSQL in the calling process, measured side by side in one run on two copies of the same file database:
 *
 *   point read    `getDecision` by id (the `GET /v1/decisions/{id}` query), alternating the two, median
 *   write         `insertDecisions` of a 200-row batch (the decision writer's flush), alternating, median; and in this
 *                 process with the statement cache off (`db/statement_cache.ts`: every statement prepared anew)
 *   start         the first call on a fresh client (the database process starting), median of a few
 *   memory        the database process's peak RSS (VmHWM) after the run
 *
 * Usage: deno task bench:dbprocess [--reads 2000] [--writes 40]
 *
 * @module
 */
import { type Database, openDatabase } from "../db/client.ts";
import { stopDatabaseProcess } from "../db/hosted_client.ts";
import { getDecision, insertDecisions } from "../db/queries.ts";
import { setStatementCache } from "../db/statement_cache.ts";
import { parseFlags } from "./cli.ts";
import { childPids, rssKiB } from "./procs.ts";
import { syntheticDecisions } from "./seed_decisions.ts";
import { median } from "./timing.ts";

const args = parseFlags(
  { reads: { type: "string", default: "2000" }, writes: { type: "string", default: "40" } },
  "usage: deno task bench:dbprocess [--reads 2000] [--writes 40]\n" +
    "Time libSQL calls through the database process against calls in this process, side by side.",
);
const READS = Number(args.reads);
const WRITES = Number(args.writes);
const BATCH = 200;

// Realistic rows (vectors, probabilities, timings), as `deno task seed:decisions` writes them; every batch new ids.
const rows = syntheticDecisions({ rows: (10 + WRITES) * BATCH, endMs: Date.now(), spanMs: 3_600_000, seed: 1 });
const nextBatch = () => Array.from({ length: BATCH }, () => rows.next().value!);

const dir = await Deno.makeTempDir({ prefix: "bench_db_process_" });
try {
  const direct = await openDatabase(`file:${dir}/direct.db`);
  const hosted = await openDatabase(`file:${dir}/hosted.db`, { process: {} });
  const uncached = await openDatabase(`file:${dir}/uncached.db`);
  const pair: [string, Database][] = [["in this process", direct], ["database process", hosted]];
  const NO_CACHE = "in this process, statement cache off";
  const writers: [string, Database][] = [...pair, [NO_CACHE, uncached]];
  /** One write, with the statement cache off for the uncached copy only (the calls run one at a time). */
  const write = async ([name, d]: [string, Database], batch: Parameters<typeof insertDecisions>[1]) => {
    setStatementCache(name !== NO_CACHE);
    try {
      await insertDecisions(d.db, batch);
    } finally {
      setStatementCache(true);
    }
  };

  // The same rows in both; ids to read back.
  const ids: string[] = [];
  for (let i = 0; i < 10; i++) {
    const batch = nextBatch();
    ids.push(...batch.map((r) => r.id));
    for (const w of writers) await write(w, batch);
  }

  const reads = new Map<string, number[]>(pair.map(([name]) => [name, []]));
  for (let i = 0; i < READS; i++) {
    const id = ids[(i * 7919) % ids.length];
    for (const [name, d] of i % 2 ? [...pair].reverse() : pair) {
      const t = performance.now();
      if (!(await getDecision(d.db, id))) throw new Error(`decision ${id} missing`);
      reads.get(name)!.push(performance.now() - t);
    }
  }

  const writes = new Map<string, number[]>(writers.map(([name]) => [name, []]));
  for (let i = 0; i < WRITES; i++) {
    const batch = nextBatch();
    for (const w of i % 2 ? [...writers].reverse() : writers) {
      const t = performance.now();
      await write(w, batch);
      writes.get(w[0])!.push(performance.now() - t);
    }
  }

  const hostPids = childPids(Deno.pid, "db/host");
  const hostHwmMiB = hostPids.map((p) => rssKiB(p).hwm / 1024);
  direct.close();
  hosted.close();
  uncached.close();
  await stopDatabaseProcess();

  // Start-up: a fresh database process for each open.
  const starts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const d = await openDatabase(`file:${dir}/hosted.db`, { process: {} });
    starts.push(performance.now() - t);
    d.close();
    await stopDatabaseProcess();
  }
  const directStarts: number[] = [];
  for (let i = 0; i < 5; i++) {
    const t = performance.now();
    const d = await openDatabase(`file:${dir}/direct.db`);
    directStarts.push(performance.now() - t);
    d.close();
  }

  const fmt = (x: number) => x.toFixed(3);
  const r = (name: string) => median(reads.get(name)!);
  const w = (name: string) => median(writes.get(name)!);
  console.log(`database process against libSQL in this process (side by side, one run; ${Deno.build.os})`);
  console.log(
    `point read (getDecision), median of ${READS}:   in this process ${fmt(r(pair[0][0]))} ms, ` +
      `database process ${fmt(r(pair[1][0]))} ms  (x${(r(pair[1][0]) / r(pair[0][0])).toFixed(2)}, ` +
      `+${fmt(r(pair[1][0]) - r(pair[0][0]))} ms)`,
  );
  console.log(
    `write of ${BATCH} decisions, median of ${WRITES}: in this process ${fmt(w(pair[0][0]))} ms, ` +
      `database process ${fmt(w(pair[1][0]))} ms  (x${(w(pair[1][0]) / w(pair[0][0])).toFixed(2)})`,
  );
  console.log(
    `the same write, statement cache off (every statement prepared anew): in this process ${fmt(w(NO_CACHE))} ms  ` +
      `(cache on / off x${(w(pair[0][0]) / w(NO_CACHE)).toFixed(2)})`,
  );
  console.log(
    `open (start + migrations check), median of 5: in this process ${fmt(median(directStarts))} ms, ` +
      `database process ${fmt(median(starts))} ms`,
  );
  console.log(`database process peak RSS: ${hostHwmMiB.map((m) => m.toFixed(1)).join(", ") || "unknown"} MiB`);
} finally {
  await Deno.remove(dir, { recursive: true });
}
