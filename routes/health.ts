/**
 * `GET /healthz` (the process answers) and `GET /readyz` (models warm, database reachable; the cloud is reported
 * but does not gate readiness, since the edge answers without it).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";

/** Probes the readiness check runs. */
export interface HealthDeps {
  /** True when every worker has its models loaded and warm. */
  modelsReady(): boolean;
  database(): Promise<boolean>;
  cloud(): Promise<boolean>;
  /** Decisions accepted but not yet written. */
  logBacklog(): number;
}

const ReadySchema = z.object({
  ready: z.boolean(),
  models: z.boolean(),
  database: z.boolean(),
  cloud: z.boolean(),
  logBacklog: z.number().int(),
}).openapi("Readiness");

const liveRoute = createRoute({
  method: "get",
  path: "/healthz",
  summary: "Liveness",
  responses: {
    200: { content: { "application/json": { schema: z.object({ ok: z.boolean() }) } }, description: "Alive" },
  },
});

const readyRoute = createRoute({
  method: "get",
  path: "/readyz",
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
    const [database, cloud] = await Promise.all([deps.database(), deps.cloud()]);
    const models = deps.modelsReady();
    const ready = models && database;
    return c.json({ ready, models, database, cloud, logBacklog: deps.logBacklog() }, ready ? 200 : 503);
  });
  return app;
}
