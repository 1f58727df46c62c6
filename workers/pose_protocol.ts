/**
 * Messages between the HTTP thread and a pose worker (workers/pose_worker.ts). Apart from the inference workers'
 * protocol (workers/protocol.ts): a pose worker decodes camera frames and runs the pose model only.
 *
 * @module
 */
/** One frame's pose: 17 x [x, y, score] in image pixels. */
export interface FramePose {
  keypoints: number[][];
  /** Mean keypoint score (the pose quality). */
  score: number;
}

/** A clip's poses and where the time went. */
export interface ClipPose {
  frames: FramePose[];
  width: number;
  height: number;
  decodeMs: number;
  poseMs: number;
}

/** The pose pool's state, for readiness and metrics; the counts and sums are cumulative since start. */
export interface PosePoolStats {
  /** Workers configured. */
  workers: number;
  /** Workers loaded, warm and serving now (below `workers` while a replacement starts). */
  alive: number;
  busy: number;
  queued: number;
  queueMax: number;
  /** Clips posed. */
  completed: number;
  /** Clips that failed (bad image data, a crash, a hang). */
  failed: number;
  /** Clips whose worker crashed. */
  crashed: number;
  /** Clips that held their worker past the deadline. */
  timedOut: number;
  /** Workers replaced. */
  restarts: number;
  /** Frames posed, and the time spent decoding them and in the pose model, in milliseconds. */
  frames: number;
  decodeMs: number;
  poseMs: number;
  /** The last worker start's load + warm-up time, in milliseconds. */
  warmupMs: number;
}

/** Pose estimation for clips, behind which the pose workers run (workers/pose_pool.ts). */
export interface PoseInference {
  /**
   * Decode and pose one clip.
   * @throws AppError OVERLOADED when the queue is full, INVALID_INPUT on bad image data, POSE_TIMEOUT when the clip
   *   held its worker past the deadline, INFERENCE_FAILED when the worker crashed
   */
  pose(images: Uint8Array[]): Promise<ClipPose & { queueMs: number }>;
  /** Whether a warm worker serves now. */
  ready(): boolean;
  /** Workers, queue and counters. */
  stats(): PosePoolStats;
  /** Terminate the workers; queued clips fail. */
  close(): Promise<void>;
}

/** HTTP thread -> pose worker. */
export type PoseRequest =
  | { type: "init"; id: number; model: Uint8Array }
  | { type: "pose"; id: number; images: Uint8Array[] };

/** Pose worker -> HTTP thread. */
export type PoseResponse =
  | { type: "ready"; id: number; warmupMs: number }
  | {
    type: "poses";
    id: number;
    frames: FramePose[];
    width: number;
    height: number;
    decodeMs: number;
    poseMs: number;
  }
  | { type: "error"; id: number; code: "MODEL_NOT_READY" | "INVALID_INPUT" | "INTERNAL"; message: string };
