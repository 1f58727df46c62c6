/**
 * The service's one teardown: each part registers how to stop it as soon as it has started, and closing runs the
 * steps once, in reverse order of registration, whether the service is shutting down or failed half-way through
 * starting (so a failed start leaves no process, worker or handle behind).
 *
 * States: open (steps may be added) -> closing (steps run, newest first; each runs even when an earlier one
 * failed) -> closed (the first error, if any, is rethrown to every caller of `close`).
 *
 * @module
 */

/** A teardown in the making. */
export interface Lifecycle {
  /**
   * Register how to stop a part that has just started.
   *
   * @param name what it stops, for the log line when it fails
   * @param step the teardown step
   */
  defer(name: string, step: () => unknown): void;
  /** Run every step once, newest first; rethrows the first failure after all ran. Idempotent. */
  close(): Promise<void>;
}

/**
 * Start a lifecycle.
 *
 * @param options `log` for a failed step (default: a JSON line on stderr)
 * @returns the lifecycle
 */
export function createLifecycle(
  options: { log?: (line: Record<string, unknown>) => void } = {},
): Lifecycle {
  const log = options.log ?? ((line) => console.error(JSON.stringify(line)));
  const steps: { name: string; step: () => unknown }[] = [];
  let closing: Promise<void> | null = null;
  return {
    defer(name, step) {
      if (closing) throw new Error(`Cannot register "${name}": the service is shutting down`);
      steps.push({ name, step });
    },
    close() {
      closing ??= (async () => {
        let first: unknown = null;
        for (const { name, step } of steps.reverse()) {
          try {
            await step();
          } catch (err) {
            log({ level: "error", msg: `cannot stop ${name}`, error: (err as Error).message });
            first ??= err;
          }
        }
        if (first) throw first;
      })();
      return closing;
    },
  };
}
