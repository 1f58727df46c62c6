/**
 * `deno task fault:shm`: the `-shm` fault test. The service runs on loopback with the shipped models and a fresh
 * file database under a steady closed-loop classify load; at random moments the database's `-shm` is broken under
 * it, `--faults` times:
 *
 *   --mode immutable   `chattr +i` on the `-shm` for 1.5 s, then `chattr -i` (root and a file system with the flag)
 *   --mode truncate    the `-shm` truncated to 0 bytes
 *
 * Either can end the process inside SQLite with SIGBUS. It counts faults the service survived, database processes
 * that ended with SIGBUS (from the service's log), requests that failed, and, after SIGTERM, answered decisions
 * missing from the database. PASS (exit 0) when the service survived every fault and lost no answered decision.
 *
 * Usage: deno task fault:shm [--mode immutable|truncate] [--faults 30] [--clients 8] [--workers 2]
 *        [--database-process true|false]
 *
 * @module
 */
import { openDatabase } from "../db/client.ts";
import { getDecision } from "../db/queries.ts";
import { parseFlags } from "./cli.ts";
import { freePort, sigbusDatabaseProcesses, spawn } from "./procs.ts";

const args = parseFlags(
  {
    mode: { type: "string", default: "truncate" },
    faults: { type: "string", default: "30" },
    clients: { type: "string", default: "8" },
    workers: { type: "string", default: "2" },
    "database-process": { type: "string", default: "true" },
  },
  "usage: deno task fault:shm [--mode immutable|truncate] [--faults 30] [--clients 8] [--workers 2] " +
    "[--database-process true|false]\n" +
    "Break the database's -shm under a loaded service; PASS when it survives every fault and loses no decision.",
);
const MODE = args.mode!;
if (MODE !== "immutable" && MODE !== "truncate") throw new Error(`--mode must be immutable or truncate, not ${MODE}`);
const FAULTS = Number(args.faults);
const ROOT = new URL("..", import.meta.url).pathname;

function chattr(flag: "+i" | "-i", path: string): boolean {
  try {
    return new Deno.Command("chattr", { args: [flag, path], stdout: "null", stderr: "null" }).outputSync().success;
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const dir = await Deno.makeTempDir({ prefix: "dmd-fault-shm-" });
const dbPath = `${dir}/decisions.db`;
const shm = `${dbPath}-shm`;
const body = Deno.readTextFileSync(
  `${ROOT}wasm-models/samples/${
    [...Deno.readDirSync(`${ROOT}wasm-models/samples`)].find((e) => e.name.endsWith(".json"))!.name
  }`,
);
const service = await spawn(["run", "-A", `${ROOT}main.ts`], {
  HOST: "127.0.0.1",
  PORT: "0",
  DATABASE_URL: `file:${dbPath}`,
  DATABASE_PROCESS: args["database-process"]!,
  // A cloud nobody answers: every request stays at the edge, the database is the only moving part.
  CLOUD_URL: `http://127.0.0.1:${freePort()}`,
  WORKERS: args.workers!,
  LOG_FLUSH_MS: "50",
  LOG_LEVEL: "warn",
  SWITCHER_POLL_MS: "0",
}, /"msg":"dmd-edge listening","url":"([^"]+)"/);
const exited: { status: Deno.CommandStatus | null } = { status: null };
service.child.status.then((s) => exited.status = s);
/** The service's exit status once it has ended (read through a call: the callback above sets it). */
const ended = (): Deno.CommandStatus | null => exited.status;

const answered: string[] = [];
const failed: string[] = [];
let sending = true;
const clients = Array.from({ length: Number(args.clients) }, async () => {
  while (sending && !exited.status) {
    try {
      const res = await fetch(`${service.url}/v1/classify`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const json = await res.json();
      if (res.status === 200) answered.push(json.decisionId);
      else failed.push(`${res.status} ${json.code}`);
    } catch (err) {
      if (!exited.status) failed.push((err as Error).message);
    }
  }
});

let survived = 0;
try {
  await sleep(1000);
  if (MODE === "immutable" && !chattr("+i", shm)) {
    throw new Error("chattr +i failed: run as root on ext4 or use --mode truncate");
  }
  if (MODE === "immutable") chattr("-i", shm);
  for (let i = 0; i < FAULTS && !exited.status; i++) {
    await sleep(300 + Math.random() * 700);
    if (MODE === "immutable") {
      chattr("+i", shm);
      await sleep(1500);
      chattr("-i", shm);
    } else {
      await Deno.truncate(shm, 0).catch(() => {});
      await sleep(500);
    }
    const now = ended();
    if (!now) survived++;
    console.error(`fault ${i + 1}/${FAULTS}: ${now ? `the service ended (${now.signal ?? now.code})` : "survived"}`);
  }
} finally {
  chattr("-i", shm);
  sending = false;
  await Promise.all(clients);
}

if (!exited.status) {
  service.child.kill("SIGTERM");
  await service.child.status;
}
const exit = await service.child.status;
const sigbus = sigbusDatabaseProcesses(service.output());
const database = await openDatabase(`file:${dbPath}`);
let lost = 0;
for (const id of new Set(answered)) if (!(await getDecision(database.db, id))) lost++;
database.close();
await Deno.remove(dir, { recursive: true });

console.log(
  `fault:shm --mode ${MODE}, DATABASE_PROCESS=${args["database-process"]}: faults survived ${survived} of ${FAULTS}; ` +
    `service ${exit.signal ? `ended with ${exit.signal}` : `exit ${exit.code}`}; database processes ended by ` +
    `SIGBUS ${sigbus}; answered ${answered.length}, failed ${failed.length}${
      failed.length ? ` (${[...new Set(failed)].slice(0, 3).join("; ")})` : ""
    }, lost ${lost}`,
);
const passed = survived === FAULTS && exit.code === 0 && lost === 0;
console.log(passed ? "fault:shm: PASS" : "fault:shm: FAIL");
Deno.exit(passed ? 0 : 1);
