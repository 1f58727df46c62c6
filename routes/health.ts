/**
 * `GET /healthz` (the process answers) and `GET /readyz` (models warm, a pose worker warm when the camera-frames
 * routes are on, database reachable, and decisions reaching it in time; the cloud is reported but does not gate readiness, since the edge answers without it).
 *
 * Write health: readiness fails when the decision database file was deleted or replaced under the service, or
 * when the oldest accepted decision not yet in the database (in memory or in the outbox) is older than
 * `LOG_READY_MAX_LAG_MS` (30 s by default). Decisions are still accepted meanwhile (they wait in the outbox).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { DecisionLogHealth } from "../db/decision_log.ts";

/** Probes the readiness check runs. */
export interface HealthDeps {
  /** True when every worker has its models loaded and warm. */
  modelsReady(): boolean;
  /** True when a pose worker is loaded and warm (camera frames); absent when the frames routes are off. */
  poseReady?: () => boolean;
  database(): Promise<boolean>;
  cloud(): Promise<boolean>;
  /** Decisions accepted but not yet written. */
  logBacklog(): number;
  /** Whether decisions reach the database in time (`db/decision_log.ts` `health`); absent: not checked. */
  writeHealth?: () => Promise<DecisionLogHealth>;
}

const ReadySchema = z.object({
  ready: z.boolean(),
  models: z.boolean(),
  pose: z.boolean().optional().openapi({
    description: "A pose worker is warm (camera frames); absent when the frames routes are off",
  }),
  database: z.boolean(),
  cloud: z.boolean(),
  logBacklog: z.number().int(),
  writes: z.object({
    healthy: z.boolean(),
    reason: z.string().nullable(),
    writer: z.string(),
    oldestUnwrittenMs: z.number(),
    outbox: z.number().int(),
  }).optional().openapi({ description: "Whether decisions reach the database in time" }),
}).openapi("Readiness");

const liveRoute = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "live",
  security: [],
  summary: "Liveness",
  responses: {
    200: { content: { "application/json": { schema: z.object({ ok: z.boolean() }) } }, description: "Alive" },
  },
});

const readyRoute = createRoute({
  method: "get",
  path: "/readyz",
  operationId: "ready",
  security: [],
  summary: "Readiness",
  responses: {
    200: { content: { "application/json": { schema: ReadySchema } }, description: "Ready" },
    503: { content: { "application/json": { schema: ReadySchema } }, description: "Not ready" },
  },
});

/**
 * The health sub-app, mounted at `/`.
 *
 * @param deps the probes
 * @returns the sub-app
 */
export function healthRoutes(deps: HealthDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openapi(liveRoute, (c) => c.json({ ok: true }, 200));
  app.openapi(readyRoute, async (c) => {
    const [reachable, cloud, health] = await Promise.all([deps.database(), deps.cloud(), deps.writeHealth?.()]);
    const models = deps.modelsReady();
    const pose = deps.poseReady?.();
    const database = reachable && health?.writer !== "gone";
    const ready = models && (pose ?? true) && database && (health?.healthy ?? true);
    const writes = health && {
      healthy: health.healthy,
      reason: health.reason,
      writer: health.writer,
      oldestUnwrittenMs: Math.round(health.oldestUnwrittenMs),
      outbox: health.outbox,
    };
    return c.json({ ready, models, pose, database, cloud, logBacklog: deps.logBacklog(), writes }, ready ? 200 : 503);
  });
  return app;
}
