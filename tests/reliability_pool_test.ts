/**
 * Worker faults, injected through a test-only worker module (tests/fixtures/fault_worker.ts): a worker that
 * crashes or hangs is replaced, the task it held fails with 503 INFERENCE_FAILED, other tasks are served, and the
 * pool never shrinks for good, even when a replacement fails to start.
 *
 * The crashes are real uncaught errors in a worker, and Deno prints every uncaught worker error with its stack on
 * stderr, whatever the parent does with it. So that a test run prints errors only for real problems, these tests
 * run in a child `deno test` of this file whose output is captured: the parent test checks that they all passed
 * and that the only errors the child printed are the injected crashes, and shows the child's whole output when
 * anything else happened.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { loadModelSet } from "../workers/artefacts.ts";
import { createWorkerPool, type EdgeInference } from "../workers/pool.ts";
import { until } from "./fixtures/wait.ts";

/** Set in the child test run, which runs the fault tests themselves. */
const CHILD_ENV = "DMD_EDGE_POOL_FAULTS_CHILD";
const inChild = Deno.env.get(CHILD_ENV) === "1";
/** The fault tests: registered in the child run only. */
const faultTest = inChild ? Deno.test : ((() => {}) as unknown as typeof Deno.test);
/** What Deno prints for each injected crash (the first line of its report; the stack follows). */
const CRASH_REPORT = 'error: Uncaught (in worker "") Error: injected crash';
/**
 * Injected crashes in the fault tests: one, one with a batch waiting behind it, then three in a row, then one whose
 * replacement fails to start.
 */
const CRASHES = 6;

const TINY = new URL("./fixtures/tiny_models", import.meta.url).pathname;
const FAULT_WORKER = new URL("./fixtures/fault_worker.ts", import.meta.url);
/** First values that make the fault worker crash or hang (see the fixture). */
const CRASH = 7777;
const HANG = 8888;

function sequence(first = 0.5): { data: Float32Array; length: number } {
  const data = new Float32Array(4 * 2 * 3).fill(0.5);
  data[0] = first;
  return { data, length: 4 };
}

async function pool(options: { size: number; taskTimeoutMs?: number }): Promise<EdgeInference> {
  const { init } = await loadModelSet(TINY, { warmupRuns: 0 });
  return createWorkerPool(init, { queueMax: 16, workerUrl: FAULT_WORKER, ...options });
}

function isInferenceFailed(e: unknown): boolean {
  assert.ok(e instanceof AppError, String(e));
  assert.equal(e.code, "INFERENCE_FAILED");
  assert.equal(e.status, 503);
  assert.equal(e.headers["Retry-After"], "1");
  return true;
}

/** Run with console.error silenced (the pool's replacement log lines); return them. */
async function quietly<T>(fn: () => Promise<T>): Promise<T> {
  const original = console.error;
  console.error = () => {};
  try {
    return await fn();
  } finally {
    console.error = original;
  }
}

faultTest("pool: a crashed worker's task fails with INFERENCE_FAILED; the worker is replaced and serves", async () => {
  const p = await pool({ size: 2 });
  try {
    await quietly(async () => {
      const [crashed, ok] = await Promise.allSettled([p.classify([sequence(CRASH)]), p.classify([sequence()])]);
      assert.equal(ok.status, "fulfilled", "the other worker's task is not affected");
      assert.equal(crashed.status, "rejected");
      isInferenceFailed((crashed as PromiseRejectedResult).reason);
      await until(() => p.stats().alive === 2);
    });
    const s = p.stats();
    assert.deepEqual([s.size, s.alive, s.restarts, s.crashed], [2, 2, 1, 1]);
    const results = await Promise.all(Array.from({ length: 4 }, () => p.classify([sequence()])));
    assert.equal(results.length, 4);
  } finally {
    await p.close();
  }
});

faultTest("pool: a batch waiting behind a crashed one goes back to the queue; the replacement serves it", async () => {
  const p = await pool({ size: 1 });
  try {
    await quietly(async () => {
      const crashed = p.classify([sequence(CRASH)]);
      const behind = p.classify([sequence(0.25)]);
      assert.equal(p.stats().queued, 0, "the second call went to the worker behind the first");
      await assert.rejects(crashed, isInferenceFailed);
      const { results } = await behind;
      assert.equal(results.length, 1);
      assert.equal(results[0].window.length, 24, "its sequence came back whole");
    });
    const s = p.stats();
    assert.deepEqual([s.alive, s.restarts, s.crashed, s.failed], [1, 1, 1, 1]);
  } finally {
    await p.close();
  }
});

faultTest("pool: a hung worker is replaced at its task deadline; queued tasks are served", async () => {
  const p = await pool({ size: 1, taskTimeoutMs: 300 });
  try {
    await quietly(async () => {
      const t0 = performance.now();
      const hung = p.classify([sequence(HANG)]);
      // Queued behind the hung task, on the only worker: served by its replacement.
      const queued = p.classify([sequence()]);
      await assert.rejects(hung, isInferenceFailed);
      const elapsed = performance.now() - t0;
      assert.ok(elapsed >= 280 && elapsed < 3000, `failed after ${elapsed.toFixed(0)} ms`);
      const { results } = await queued;
      assert.equal(results.length, 1);
    });
    assert.equal(p.stats().alive, 1);
    assert.equal(p.stats().restarts, 1);
  } finally {
    await p.close();
  }
});

faultTest("pool: repeated crashes never shrink the pool", async () => {
  const p = await pool({ size: 2 });
  try {
    await quietly(async () => {
      for (let i = 0; i < 3; i++) {
        await assert.rejects(p.classify([sequence(CRASH)]), isInferenceFailed);
      }
      await until(() => p.stats().alive === 2);
    });
    assert.equal(p.stats().restarts, 3);
    assert.equal((await p.classify([sequence()])).results.length, 1);
  } finally {
    await p.close();
  }
});

faultTest("pool: a replacement that fails to start is tried again until it starts", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/fail_inits`;
  await Deno.writeTextFile(file, "0");
  Deno.env.set("FAULT_WORKER_FAIL_INITS", file);
  const p = await pool({ size: 1 });
  try {
    await Deno.writeTextFile(file, "2");
    const errors: string[] = [];
    const original = console.error;
    console.error = (line: string) => errors.push(JSON.parse(line).msg);
    try {
      await assert.rejects(p.classify([sequence(CRASH)]), isInferenceFailed);
      await until(() => p.stats().alive === 1);
    } finally {
      console.error = original;
    }
    assert.equal(await Deno.readTextFile(file), "0");
    assert.equal(errors.filter((m) => m === "inference worker restart failed; trying again").length, 2);
    assert.equal((await p.classify([sequence()])).results.length, 1);
  } finally {
    Deno.env.delete("FAULT_WORKER_FAIL_INITS");
    await p.close();
    await Deno.remove(dir, { recursive: true });
  }
});

if (!inChild) {
  Deno.test("pool faults (crash, a batch behind a crash, hang, repeated crashes, failing replacement) pass in a child run; only the injected crashes print errors", async () => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["test", "--allow-all", "--no-check", new URL(import.meta.url).pathname],
      env: { [CHILD_ENV]: "1", NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stdout = new TextDecoder().decode(out.stdout);
    const stderr = new TextDecoder().decode(out.stderr);
    const context = `child test run, exit ${out.code}:\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`;
    assert.equal(out.code, 0, context);
    assert.match(stdout, /^ok \| 5 passed \| 0 failed/m, context);
    const errors = stderr.split("\n").filter((line) => /^error\b/i.test(line));
    assert.deepEqual(errors, Array(CRASHES).fill(CRASH_REPORT), context);
  });
}
