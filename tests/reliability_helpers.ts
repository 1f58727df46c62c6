/**
 * Helpers for the reliability tests that run the service as a real subprocess (`deno run main.ts`): start it on a
 * free loopback port with tiny fixture models, capture its output, send classify requests, signal it.
 *
 * @module
 */
import { openDatabase } from "../db/client.ts";
import { DeadlineError, withDeadline } from "../lib/deadline.ts";

export const TINY = new URL("./fixtures/tiny_models", import.meta.url).pathname;
const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** A sequence the tiny edge model accepts (2 joints, 3 channels). */
export function tinyBody(extra: Record<string, unknown> = {}): string {
  const frames = Array.from({ length: 6 }, (_, i) => [[0.1 * i, 0.2, 0.9], [0.3, 0.05 * i, 0.8]]);
  return JSON.stringify({ layout: "tiny", fps: 10, frames, ...extra });
}

/** A running service subprocess. */
export interface ServiceProcess {
  url: string;
  child: Deno.ChildProcess;
  /** Everything it printed so far, stdout and stderr. */
  output(): string;
  /** Its exit status, once it exits. */
  status: Promise<Deno.CommandStatus>;
}

/** A loopback port nobody listens on: a cloud that refuses connections. */
export function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/**
 * Start `main.ts` with tiny models and the given environment; resolve once it prints its URL.
 *
 * @param env variables on top of the defaults here (PORT=0, tiny models, one worker)
 * @param launch the command that starts it (default: this Deno running `main.ts`)
 * @returns the running process
 */
export async function spawnService(
  env: Record<string, string>,
  launch: { command: string; args: string[] } = { command: Deno.execPath(), args: ["run", "-A", MAIN] },
): Promise<ServiceProcess> {
  const child = new Deno.Command(launch.command, {
    args: launch.args,
    env: {
      NO_COLOR: "1",
      HOST: "127.0.0.1",
      PORT: "0",
      MODELS_DIR: TINY,
      WORKERS: "1",
      WARMUP_RUNS: "0",
      CLOUD_URL: `http://127.0.0.1:${closedPort()}`,
      SWITCHER_POLL_MS: "0",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  let resolveUrl: (url: string) => void;
  const urlSeen = new Promise<string>((r) => resolveUrl = r);
  const pump = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const m = /"msg":"dmd-edge listening","url":"([^"]+)"/.exec(text);
      if (m) resolveUrl(m[1]);
    }
  };
  const pumps = Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = child.status.then(async (s) => (await pumps, s));
  const url = await withDeadline(
    Promise.race([
      urlSeen,
      status.then((s) => Promise.reject(new Error(`service exited with ${s.code} before listening:\n${text}`))),
    ]),
    60_000,
    "the service's URL",
  ).catch((err) => {
    throw err instanceof DeadlineError ? new Error(`${err.message}:\n${text}`) : err;
  });
  return { url, child, output: () => text, status };
}

/** POST one classify request; resolve with the status and body, or null when the connection failed. */
export async function classify(
  url: string,
  body = tinyBody(),
): Promise<{ status: number; json: Record<string, unknown> } | null> {
  try {
    const res = await fetch(`${url}/v1/classify`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    return { status: res.status, json: await res.json() };
  } catch {
    return null;
  }
}

/** Ids present in the decisions table of a file database. */
export async function loggedIds(dbUrl: string): Promise<Set<string>> {
  const database = await openDatabase(dbUrl);
  try {
    const rows = (await database.client.execute("SELECT id FROM decisions")).rows;
    return new Set(rows.map((r) => String(r.id)));
  } finally {
    database.close();
  }
}

/** GET /readyz: its status and body. */
export async function readyz(url: string): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(`${url}/readyz`);
  return { status: res.status, json: await res.json() };
}

/** Poll `check` every 100 ms until it is true; throw naming `what` after `timeoutMs`. */
export async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
