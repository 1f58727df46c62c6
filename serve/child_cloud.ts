/**
 * The reference cloud server as a child process on loopback, for `deno task start` without `CLOUD_URL`: started,
 * its URL read from its first log line, its later lines forwarded, and stopped with SIGTERM at shutdown.
 *
 * @module
 */
import type { Config } from "../config.ts";
import { AppError } from "../errors.ts";

/** A running reference cloud server, started as a child process on loopback. */
export interface ChildCloud {
  url: string;
  stop(): Promise<void>;
}

/**
 * Start the reference cloud server on a free loopback port.
 *
 * @param config the models folder
 * @param entry the server's module (main.ts resolves it: `.ts` in the source tree, `.js` in the `dist/` bundle)
 * @returns the running server
 * @throws AppError INTERNAL when it prints no URL within 60 s
 */
export async function startChildCloud(config: Pick<Config, "modelsDir">, entry: URL): Promise<ChildCloud> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-net=127.0.0.1", "--allow-env", "--allow-ffi", "--allow-sys", entry.href],
    // The open stdin pipe ties the server's life to this process's: it exits when the pipe closes, however this
    // process ends (kill -9 included).
    env: {
      CLOUD_SERVER_HOST: "127.0.0.1",
      CLOUD_SERVER_PORT: "0",
      MODELS_DIR: config.modelsDir,
      CLOUD_SERVER_EXIT_WITH_PARENT: "true",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const line = buffered.split("\n").find((l) => l.includes('"url"'));
    if (line) {
      const { url } = JSON.parse(line) as { url: string };
      // Keep forwarding the server's log lines.
      (async () => {
        for (;;) {
          const next = await reader.read().catch(() => ({ done: true, value: "" }));
          if (next.done) return;
          Deno.stdout.writeSync(new TextEncoder().encode(next.value));
        }
      })();
      return {
        url,
        async stop() {
          try {
            child.kill("SIGTERM");
          } catch {
            // already gone
          }
          await child.status;
        },
      };
    }
  }
  child.kill("SIGKILL");
  throw new AppError("INTERNAL", "Cannot start the reference cloud server: it printed no URL");
}
