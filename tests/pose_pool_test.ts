/**
 * The pose pool's operations, with a test-only pose worker (tests/fixtures/fake_pose_worker.ts): a clip that hangs
 * its worker is answered 503 POSE_TIMEOUT and the worker is replaced; the queue bound; the counters the metrics
 * read; readiness; a model that cannot load; and `/readyz` and `/metrics` wired to the pool.
 */
import assert from "node:assert/strict";
import { AppError } from "../errors.ts";
import { createPosePool } from "../workers/pose_pool.ts";
import { healthRoutes } from "../routes/health.ts";
import { createServiceMetrics } from "../observability/metrics.ts";
import type { PosePoolStats } from "../workers/pose_protocol.ts";
import { BAD_IMAGE, BAD_MODEL, HANG } from "./fixtures/fake_pose_worker.ts";
import { fakeInference } from "./fixtures/fake_models.ts";
import { capturingErrors, until } from "./fixtures/wait.ts";

const FAKE_WORKER = new URL("./fixtures/fake_pose_worker.ts", import.meta.url);
const MODEL = new Uint8Array([1, 2, 3]);
const clip = (first: number, frames = 2) => Array.from({ length: frames }, () => new Uint8Array([first, 0, 0]));

async function rejection(p: Promise<unknown>): Promise<AppError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof AppError, String(e));
    return e;
  }
  throw new Error("expected a rejection");
}

Deno.test("pose pool: a clip that hangs its worker is 503 POSE_TIMEOUT; the worker is replaced and serves the next clip", async () => {
  const pool = await createPosePool(MODEL, { size: 1, queueMax: 4, workerUrl: FAKE_WORKER, clipTimeoutMs: 150 });
  try {
    const logs = await capturingErrors(async () => {
      const hung = pool.pose(clip(HANG));
      // Queued behind the hung clip: served by the replacement.
      const next = pool.pose(clip(9, 3));
      const err = await rejection(hung);
      assert.deepEqual([err.code, err.status, err.headers["Retry-After"]], ["POSE_TIMEOUT", 503, "1"]);
      assert.match(err.message, /past 150 ms/);
      const served = await next;
      assert.equal(served.frames.length, 3);
    });
    assert.deepEqual(logs.map((l) => [l.msg, l.kind]), [["pose worker failed; replacing it", "timeout"]]);
    const s = pool.stats();
    assert.deepEqual(
      [s.workers, s.alive, s.busy, s.queued, s.completed, s.failed, s.timedOut, s.crashed, s.restarts],
      [1, 1, 0, 0, 1, 1, 1, 0, 1],
    );
    assert.ok(pool.ready());
  } finally {
    await pool.close();
  }
});

Deno.test("pose pool: counts frames and times, fails bad image data alone, bounds its queue, and closes", async () => {
  const pool = await createPosePool(MODEL, { size: 1, queueMax: 1, workerUrl: FAKE_WORKER, clipTimeoutMs: 5000 });
  assert.ok(pool.ready());
  const bad = await rejection(pool.pose(clip(BAD_IMAGE)));
  assert.deepEqual([bad.code, bad.status], ["INVALID_INPUT", 400]);
  const [a, b] = await Promise.all([pool.pose(clip(9, 4)), pool.pose(clip(9, 2))]);
  assert.deepEqual([a.frames.length, b.frames.length], [4, 2]);
  assert.ok(b.queueMs >= 0);
  // One clip in the worker, one queued: the third is refused.
  const held = pool.pose(clip(HANG));
  const queued = pool.pose(clip(9));
  const full = await rejection(pool.pose(clip(9)));
  assert.deepEqual([full.code, full.status, full.headers["Retry-After"]], ["OVERLOADED", 503, "1"]);
  const s: PosePoolStats = pool.stats();
  assert.deepEqual(
    [s.busy, s.queued, s.completed, s.failed, s.frames, s.decodeMs, s.poseMs, s.warmupMs],
    [1, 1, 2, 1, 6, 6, 12, 5],
  );
  await pool.close();
  assert.equal((await rejection(held)).code, "MODEL_NOT_READY");
  assert.equal((await rejection(queued)).code, "MODEL_NOT_READY");
  assert.equal((await rejection(pool.pose(clip(9)))).code, "MODEL_NOT_READY");
  assert.equal(pool.ready(), false);
});

Deno.test("pose pool: a model that cannot load fails start-up with MODEL_NOT_READY", async () => {
  const err = await rejection(
    createPosePool(new Uint8Array([BAD_MODEL]), { size: 2, queueMax: 1, workerUrl: FAKE_WORKER }),
  );
  assert.equal(err.code, "MODEL_NOT_READY");
  assert.match(err.message, /injected load failure/);
});

Deno.test("GET /readyz is 503 with pose: false until a pose worker is warm; absent without frames routes", async () => {
  let warm = false;
  const deps = {
    modelsReady: () => true,
    database: () => Promise.resolve(true),
    cloud: () => Promise.resolve(true),
    logBacklog: () => 0,
  };
  const app = healthRoutes({ ...deps, poseReady: () => warm });
  let res = await app.request("/readyz");
  assert.equal(res.status, 503);
  assert.deepEqual([(await res.json()).pose], [false]);
  warm = true;
  res = await app.request("/readyz");
  assert.equal(res.status, 200);
  assert.deepEqual([(await res.json()).pose], [true]);
  res = await healthRoutes(deps).request("/readyz");
  assert.equal(res.status, 200);
  assert.equal((await res.json()).pose, undefined);
});

Deno.test("GET /metrics exposes the pose pool: workers by state, queue, clips, failures, restarts, frames and times", async () => {
  const pool = await createPosePool(MODEL, { size: 2, queueMax: 4, workerUrl: FAKE_WORKER, clipTimeoutMs: 100 });
  try {
    await capturingErrors(async () => {
      await pool.pose(clip(9, 5));
      await rejection(pool.pose(clip(HANG)));
      await until(() => pool.stats().alive === 2);
    });
    const metrics = createServiceMetrics({
      pool: () => fakeInference().stats(),
      versions: () => ({ edge: "e", switcher: "s", cloud: "c" }),
      threshold: () => 0.5,
      edgeLocation: "test",
      pose: () => pool.stats(),
    });
    const { body } = await metrics.render();
    const value = (name: string) => {
      const line = body.split("\n").find((l) => [" ", "{", ","].some((next) => l.startsWith(name + next)));
      assert.ok(line, `${name} missing`);
      return Number(line.split(" ").at(-1));
    };
    assert.equal(value('dmd_pose_workers{state="idle"'), 2);
    assert.equal(value('dmd_pose_workers{state="busy"'), 0);
    assert.equal(value('dmd_pose_workers{state="starting"'), 0);
    assert.equal(value("dmd_pose_queue_depth"), 0);
    assert.equal(value("dmd_pose_clips_total"), 1);
    assert.equal(value("dmd_pose_clips_failed_total"), 1);
    assert.equal(value("dmd_pose_clips_timed_out_total"), 1);
    assert.equal(value("dmd_pose_clips_crashed_total"), 0);
    assert.equal(value("dmd_pose_worker_restarts_total"), 1);
    assert.equal(value("dmd_pose_frames_total"), 5);
    assert.equal(value("dmd_pose_model_seconds_total"), 0.01);
    assert.equal(value("dmd_pose_decode_seconds_total"), 0.005);
    assert.equal(value("dmd_pose_warmup_seconds"), 0.005);
  } finally {
    await pool.close();
  }
});
