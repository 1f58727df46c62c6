/**
 * `GET /metrics`: the Prometheus text exposition of the app's metrics (`observability/metrics.ts`).
 *
 * Access: when `ADMIN_TOKEN` is set, a scrape needs `Authorization: Bearer <ADMIN_TOKEN>` (Prometheus
 * `scrape_config.authorization.credentials`), like the other admin and analytics endpoints. Without a token the
 * endpoint is open: it exposes counts, latencies and versions, never payloads or ids, and the app listens on
 * loopback by default; an operator who exposes the app sets `ADMIN_TOKEN`.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { ServiceMetrics } from "../observability/metrics.ts";
import { requireAdmin } from "./admin_auth.ts";
import { ErrorSchema } from "./schemas.ts";

/** What the metrics route needs. */
export interface MetricsDeps {
  metrics: ServiceMetrics;
  /** The admin token; when set, scrapes must present it. */
  adminToken: string | undefined;
}

/** Open, or with the admin bearer token for more (OpenAPI: either requirement satisfies it). */
const OPEN_OR_BEARER: Record<string, string[]>[] = [{}, { bearer: [] }];

const route = createRoute({
  method: "get",
  path: "/",
  operationId: "getMetrics",
  security: OPEN_OR_BEARER,
  summary: "Prometheus metrics",
  description: "Text exposition format 0.0.4. Requires `Authorization: Bearer <ADMIN_TOKEN>` when ADMIN_TOKEN is set.",
  responses: {
    200: { content: { "text/plain": { schema: z.string() } }, description: "The metrics" },
    401: { content: { "application/json": { schema: ErrorSchema } }, description: "Missing or wrong token" },
  },
});

/**
 * The metrics sub-app, mounted at `/metrics`.
 *
 * @param deps the metrics and the token
 * @returns the sub-app
 */
export function metricsRoutes(deps: MetricsDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  if (deps.adminToken) app.use("*", requireAdmin(deps.adminToken));
  app.openapi(route, async (c) => {
    const { contentType, body } = await deps.metrics.render();
    c.header("Cache-Control", "no-store");
    return c.text(body, 200, { "Content-Type": contentType });
  });
  return app;
}
