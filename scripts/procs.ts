/**
 * Child processes for the measuring scripts (`soak`, `bench:stall`, `bench:analytics`): the edge service and the
 * reference cloud server started as subprocesses on 127.0.0.1, their URL read from their log, their output kept.
 *
 * @module
 */
import { withDeadline } from "../lib/deadline.ts";

/** A started child process. */
export interface Proc {
  child: Deno.ChildProcess;
  url: string;
  output: () => string;
}

/**
 * A free TCP port on loopback (free when asked; a child binds it moments later).
 *
 * @returns the port
 */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Start `deno <args>` and wait until its output matches `urlPattern` (group 1 is the URL).
 *
 * @param args deno's arguments
 * @param env the child's environment
 * @param urlPattern finds the URL in the output
 * @returns the process
 */
export async function spawn(args: string[], env: Record<string, string>, urlPattern: RegExp): Promise<Proc> {
  const child = new Deno.Command(Deno.execPath(), {
    args,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let found: (url: string) => void;
  const seen = new Promise<string>((r) => found = r);
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const chunk of s.pipeThrough(new TextDecoderStream())) {
      // Keep the head and the tail only: a long run logs a lot.
      text = text.length > 2_000_000 ? text.slice(0, 100_000) + text.slice(-500_000) : text;
      text += chunk;
      const m = urlPattern.exec(text);
      if (m) found(m[1]);
    }
  };
  Promise.all([pump(child.stdout), pump(child.stderr)]).catch(() => {});
  const url = await withDeadline(
    Promise.race([
      seen,
      child.status.then((s) =>
        Promise.reject(new Error(`${args.at(-1)} exited with ${s.code}:\n${text.slice(-3000)}`))
      ),
    ]),
    120_000,
    `the URL from ${args.at(-1)}`,
  );
  return { child, url, output: () => text };
}

/**
 * Start the reference cloud server on a port.
 *
 * @param port the port
 * @param modelsDir the models folder
 * @returns the process
 */
export function startCloud(port: number, modelsDir: string): Promise<Proc> {
  return spawn(
    ["run", "-A", new URL("../cloud/reference_server.ts", import.meta.url).pathname],
    { CLOUD_SERVER_HOST: "127.0.0.1", CLOUD_SERVER_PORT: String(port), MODELS_DIR: modelsDir },
    /"url":"([^"]+)"/,
  );
}

/**
 * The child processes of `pid` (through all its threads) whose command line contains `needle`.
 *
 * @param pid the parent
 * @param needle part of the command line, e.g. `db/host`
 * @returns their pids (empty where /proc is not there)
 */
export function childPids(pid: number, needle: string): number[] {
  const out: number[] = [];
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      const list = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/children`).trim();
      for (const c of list ? list.split(/\s+/).map(Number) : []) {
        if (Deno.readTextFileSync(`/proc/${c}/cmdline`).includes(needle)) out.push(c);
      }
    }
  } catch {
    // not Linux, or the process is gone
  }
  return out;
}

/** User + system CPU time in a /proc `stat` line (a process's or a thread's), in milliseconds. */
function statCpuMs(stat: string): number {
  // Fields after the command's closing parenthesis: state is field 3, utime 14, stime 15; USER_HZ is 100 on Linux.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * 10;
}

/** The machine's CPU time so far, all cores together (Linux /proc/stat, in ticks). */
export interface MachineCpu {
  /** Idle and waiting for I/O. */
  idle: number;
  /** Every state, steal included. */
  total: number;
}

/**
 * The machine's CPU time so far, for the share of it left idle over a phase.
 *
 * @returns ticks; null where /proc/stat is not there
 */
export function machineCpu(): MachineCpu | null {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
    const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
    if (ticks.length < 5 || ticks.some((t) => !Number.isFinite(t))) return null;
    return { idle: ticks[3] + ticks[4], total: ticks.reduce((a, b) => a + b, 0) };
  } catch {
    return null;
  }
}

/**
 * The share of the machine's CPU left idle between two readings of {@link machineCpu}.
 *
 * @param before the first reading
 * @param after the second
 * @returns 0..1; null where either is missing or no time passed
 */
export function idleShare(before: MachineCpu | null, after: MachineCpu | null): number | null {
  if (!before || !after || after.total <= before.total) return null;
  return (after.idle - before.idle) / (after.total - before.total);
}

/**
 * CPU time (user + system) of a whole process so far, ended threads included.
 *
 * @param pid the process id
 * @returns milliseconds; null where /proc is not there or the process is gone
 */
export function processCpuMs(pid: number): number | null {
  try {
    return statCpuMs(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return null;
  }
}

/** CPU time of a process's threads, by what they are, in milliseconds. */
export interface ThreadCpu {
  /** The main thread (a service's HTTP thread). */
  main: number;
  /** V8's helper threads: garbage collection and optimising compilation in the background. */
  v8: number;
  /** Web Workers (a service's inference workers, its decision writer and its connection guard's relay). */
  workers: number;
  /** Everything else (the runtime's I/O threads). */
  other: number;
}

/**
 * CPU time (user + system) of each thread of a process so far, grouped by what the thread is (its name in
 * /proc/PID/task/TID/comm: Deno names Web Worker threads `worker-N`, V8 its helpers `V8 ...`).
 *
 * @param pid the process id
 * @returns milliseconds by group; null where /proc is not there or the process is gone
 */
export function threadCpuMs(pid: number): ThreadCpu | null {
  const out: ThreadCpu = { main: 0, v8: 0, workers: 0, other: 0 };
  try {
    for (const task of Deno.readDirSync(`/proc/${pid}/task`)) {
      let stat: string, comm: string;
      try {
        stat = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/stat`);
        comm = Deno.readTextFileSync(`/proc/${pid}/task/${task.name}/comm`).trim();
      } catch {
        continue; // the thread ended meanwhile
      }
      const ms = statCpuMs(stat);
      if (task.name === String(pid)) out.main += ms;
      else if (comm.startsWith("V8")) out.v8 += ms;
      else if (comm.startsWith("worker")) out.workers += ms;
      else out.other += ms;
    }
  } catch {
    return null;
  }
  return out;
}

/**
 * A process's resident set and its high-water mark, from /proc (0 where unavailable).
 *
 * @param pid the process id
 * @returns KiB
 */
export function rssKiB(pid: number): { rss: number; hwm: number } {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    const field = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0);
    return { rss: field("VmRSS"), hwm: field("VmHWM") };
  } catch {
    return { rss: 0, hwm: 0 };
  }
}

/**
 * How many distinct database processes (db/host.ts) a service's log says ended with SIGBUS.
 *
 * @param output the service's stdout and stderr
 * @returns the count
 */
export function sigbusDatabaseProcesses(output: string): number {
  return new Set([...output.matchAll(/the database process \(pid (\d+)\) ended with SIGBUS/g)].map((m) => m[1])).size;
}
