/**
 * Serving a reference server's app, one way for both (cloud/reference_server.ts, cloud/vlm_reference_server.ts):
 * listen, stop once (stop listening, finish requests in flight, then release what the app holds), and, as a
 * command, stop on SIGINT/SIGTERM or when the parent that started it closes its stdin.
 *
 * @module
 */

/** A listening app. */
export interface ServedApp {
  /** Base URL, e.g. `http://127.0.0.1:8001`. */
  url: string;
  /** Stop listening, finish requests in flight, then release (once; later calls get the same promise). */
  shutdown(): Promise<void>;
}

/**
 * Listen with an app; on a failure to listen, release first.
 *
 * @param fetch the app's handler
 * @param options host and port (0 picks a free one), and what to release after the server stops
 * @returns the served app
 * @throws what `Deno.serve` throws (the port is taken, the host does not resolve)
 */
export async function serveApp(
  fetch: (req: Request) => Response | Promise<Response>,
  options: { host: string; port: number; release: () => Promise<void> },
): Promise<ServedApp> {
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname: options.host, port: options.port, onListen: () => {} }, fetch);
  } catch (err) {
    await options.release();
    throw err;
  }
  let stopping: Promise<void> | null = null;
  return {
    url: `http://${options.host.includes(":") ? `[${options.host}]` : options.host}:${server.addr.port}`,
    shutdown() {
      stopping ??= (async () => {
        await server.shutdown();
        await options.release();
      })();
      return stopping;
    },
  };
}

/**
 * As a command: stop the server and exit 0 on SIGINT or SIGTERM, and, with `exitWithParent`, when stdin closes.
 *
 * @param server the running server
 * @param exitWithParent follow the parent that started this process with a pipe on stdin
 */
export function stopOnSignals(server: { shutdown(): Promise<void> }, exitWithParent: boolean): void {
  const stop = async () => {
    await server.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  if (exitWithParent) {
    // Started by a parent with a pipe on stdin: the pipe closes when the parent dies, however it dies (kill -9, a
    // crash), and the server follows it instead of being left running.
    (async () => {
      for await (const _ of Deno.stdin.readable) {
        // nothing is sent: only the end of the pipe matters
      }
      await stop();
    })();
  }
}
