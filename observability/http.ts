/**
 * The request observer: one middleware that times every request, counts it in the metrics under its route pattern
 * (never the raw path, so the label set stays bounded), writes one JSON log line carrying the request id that
 * hono's `requestId` middleware put in the context and the `X-Request-Id` response header, and tells the client the
 * same time in a `Server-Timing: app;dur=<ms>` header: what the service itself spent on the request (its middleware,
 * reading and checking the body, inference, the cloud, the answer), apart from the network, Deno's HTTP and the
 * connection guard's relay.
 *
 * Scrapes and probes (`/metrics`, `/healthz`, `/readyz`) are logged at `debug`, everything else at `info`; 5xx
 * answers at `error`.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import type { Logger } from "./logger.ts";
import type { ServiceMetrics } from "./metrics.ts";

const QUIET_ROUTES = new Set(["/metrics", "/healthz", "/readyz"]);

/**
 * Middleware that observes each request. Mount it after `requestId()` and before the routes.
 *
 * @param options the metrics and the logger
 * @returns the middleware
 */
export function observeRequests(options: { metrics: ServiceMetrics; logger: Logger }): MiddlewareHandler {
  const { metrics, logger } = options;
  return async (c, next) => {
    const started = performance.now();
    try {
      await next();
    } finally {
      const seconds = (performance.now() - started) / 1000;
      const pattern = routePath(c);
      // Hono's own 404 runs under the catch-all middleware pattern.
      const route = pattern === "/*" || pattern === "*" ? "unmatched" : pattern;
      const status = c.res.status;
      metrics.observeRequest({ method: c.req.method, route, status }, seconds);
      try {
        c.res.headers.set("Server-Timing", `app;dur=${(seconds * 1000).toFixed(3)}`);
      } catch {
        // A response whose headers cannot change (none of the service's own) goes without it.
      }
      const level = status >= 500 ? "error" : QUIET_ROUTES.has(route) ? "debug" : "info";
      if (logger.enabled(level)) {
        logger[level]("request", {
          requestId: c.get("requestId"),
          method: c.req.method,
          path: c.req.path,
          route,
          status,
          durationMs: Math.round(seconds * 1e6) / 1000,
        });
      }
    }
  };
}
