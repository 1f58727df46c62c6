/**
 * The pose pool's metrics (workers/pose_pool.ts), read when Prometheus scrapes: workers by state, the clip queue,
 * clips posed and failed (crashed, timed out), worker restarts, and the frames posed with the time spent decoding
 * them and in the pose model (their rates give the mean time per frame).
 *
 * @module
 */
import { Gauge, type Registry } from "prom-client";
import type { PosePoolStats } from "../workers/pose_protocol.ts";
import { mirroredCounter } from "./metrics.ts";

/**
 * Register the pose pool's metrics.
 *
 * @param registry the app's registry
 * @param pose the pool's state
 */
export function registerPoseMetrics(registry: Registry, pose: () => PosePoolStats): void {
  new Gauge({
    name: "dmd_pose_workers",
    help: "Pose workers by state: busy, idle (warm and free), starting (being replaced after a crash or a hang)",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const s = pose();
      this.set({ state: "busy" }, s.busy);
      this.set({ state: "idle" }, Math.max(0, s.alive - s.busy));
      this.set({ state: "starting" }, Math.max(0, s.workers - s.alive));
    },
  });
  new Gauge({
    name: "dmd_pose_queue_depth",
    help: "Clips waiting for a pose worker",
    registers: [registry],
    collect() {
      this.set(pose().queued);
    },
  });
  new Gauge({
    name: "dmd_pose_queue_max",
    help: "Waiting clips past which clips are refused with 503 OVERLOADED",
    registers: [registry],
    collect() {
      this.set(pose().queueMax);
    },
  });
  new Gauge({
    name: "dmd_pose_warmup_seconds",
    help: "Load and warm-up time of the last pose worker started",
    registers: [registry],
    collect() {
      this.set(pose().warmupMs / 1000);
    },
  });
  mirroredCounter(registry, "dmd_pose_clips_total", "Clips posed", () => pose().completed);
  mirroredCounter(
    registry,
    "dmd_pose_clips_failed_total",
    "Clips that failed in a pose worker (bad image data, a crash, a hang)",
    () => pose().failed,
  );
  mirroredCounter(registry, "dmd_pose_clips_crashed_total", "Clips whose pose worker crashed", () => pose().crashed);
  mirroredCounter(
    registry,
    "dmd_pose_clips_timed_out_total",
    "Clips that held a pose worker past POSE_TIMEOUT_MS (answered 503 POSE_TIMEOUT)",
    () => pose().timedOut,
  );
  mirroredCounter(registry, "dmd_pose_worker_restarts_total", "Pose workers replaced", () => pose().restarts);
  mirroredCounter(registry, "dmd_pose_frames_total", "Frames posed", () => pose().frames);
  mirroredCounter(
    registry,
    "dmd_pose_decode_seconds_total",
    "Time spent decoding frames in the pose workers",
    () => pose().decodeMs / 1000,
  );
  mirroredCounter(
    registry,
    "dmd_pose_model_seconds_total",
    "Time spent in the pose model (with the crop and its pre-processing)",
    () => pose().poseMs / 1000,
  );
}
