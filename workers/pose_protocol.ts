/**
 * Messages between the HTTP thread and a pose worker (workers/pose_worker.ts). Apart from the inference workers'
 * protocol (workers/protocol.ts): a pose worker decodes camera frames and runs the pose model only.
 *
 * @module
 */
import type { FramePose } from "./pose.ts";

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
