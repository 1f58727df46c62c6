/**
 * `GET /v1/decisions/{id}`: one logged decision, found even before its batch reaches the database.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { DecisionRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { DecisionSchema, ErrorSchema } from "./schemas.ts";
import { validationHook } from "./validation.ts";

/** What the decisions route needs: the decision log's lookup. */
export interface DecisionsDeps {
  getDecision(id: string): Promise<DecisionRecord | null>;
}

const getRoute = createRoute({
  method: "get",
  path: "/{id}",
  summary: "One logged decision",
  request: {
    params: z.object({
      id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" }, example: "0192f3c4-..." }),
    }),
  },
  responses: {
    200: { content: { "application/json": { schema: DecisionSchema } }, description: "The decision" },
    404: { content: { "application/json": { schema: ErrorSchema } }, description: "No such decision" },
  },
});

/** A decision row as JSON: float arrays as number arrays. */
function toJson(d: DecisionRecord): Record<string, unknown> {
  return { ...d, embedding: Array.from(d.embedding ?? []), features: Array.from(d.features ?? []) };
}

/**
 * The decisions sub-app, mounted at `/v1/decisions`.
 *
 * @param deps the decision lookup
 * @returns the sub-app
 */
export function decisionRoutes(deps: DecisionsDeps): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid("param");
    const decision = await deps.getDecision(id);
    if (!decision) throw new AppError("NOT_FOUND", `Cannot find decision "${id}"`);
    return c.json(toJson(decision), 200);
  });
  return app;
}
