/**
 * Edge inference on the calling thread, behind the pool's signature ({@link EdgeInference}): for scripts and tests
 * that want no workers (the contract suite runs both). The HTTP app always uses the pool; the pool does not import
 * this module, so the engine is never loaded on the HTTP thread.
 *
 * @module
 */
import { createEngine } from "./engine.ts";
import type { EdgeInference } from "./pool.ts";
import type { EngineInit } from "./protocol.ts";

/**
 * Edge inference on the calling thread, with the same signature as the pool. For scripts and tests that want no
 * workers; the HTTP app always uses the pool.
 *
 * @param init models and runtime
 * @returns the ready engine behind the {@link EdgeInference} signature
 */
export async function createInProcessInference(init: EngineInit): Promise<EdgeInference> {
  const { engine } = await createEngine(init);
  let completed = 0;
  let chain: Promise<unknown> = Promise.resolve();
  return {
    classify(items) {
      // One run at a time, as in a worker: WASM inference is synchronous underneath.
      const run = chain.then(async () => {
        const { results, timings, scoredBy } = await engine.classify(items);
        completed++;
        return { results, timings: { ...timings, queueMs: 0 }, scoredBy };
      });
      chain = run.catch(() => undefined);
      return run;
    },
    setSwitcher: (s) => engine.setSwitcher(s),
    versions: () => engine.versions(),
    stats: () => ({
      size: 1,
      alive: 1,
      busy: 0,
      queued: 0,
      queueMax: Infinity,
      completed,
      failed: 0,
      restarts: 0,
      crashed: 0,
    }),
    close: () => engine.release(),
  };
}
