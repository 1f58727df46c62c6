/**
 * `GET /v1/decisions/{id}`: one logged decision, found even before its batch reaches the database.
 *
 * What a caller sees: the decision id is a UUIDv7 with 74 random bits, handed only to the caller that made the
 * request, so holding it is what lets a caller read its own decision. Without the admin token the answer is the
 * public view ({@link PUBLIC_FIELDS}): what the classify answer already told the caller (route and why, labels and
 * probabilities, switcher score, threshold and version, model versions, timings), plus when it was logged. The
 * caller's own id, the request and batch ids, the edge location, the propensity, the input's shape and the
 * vectors (class probabilities, embedding, switcher features) need `Authorization: Bearer $ADMIN_TOKEN`: they
 * describe the operator's traffic and models, not the caller's answer. A wrong token is refused (401), not
 * downgraded, so that an operator notices.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { DecisionRecord } from "../db/schema.ts";
import { AppError } from "../errors.ts";
import { constantTimeEqual } from "./admin_auth.ts";
import { DecisionSchema, ErrorSchema, rateLimitedResponse } from "./schemas.ts";
import { validationHook } from "./validation.ts";

/** What the decisions route needs: the decision log's lookup, and the token that opens the full record. */
export interface DecisionsDeps {
  getDecision(id: string): Promise<DecisionRecord | null>;
  /** `ADMIN_TOKEN`: with it, the whole record; without it (or unset), the public view. */
  adminToken?: string;
}

/** The fields anyone holding a decision's id may read. */
export const PUBLIC_FIELDS = [
  "id",
  "createdAt",
  "route",
  "routeReason",
  "forced",
  "label",
  "prob",
  "edgeModelVersion",
  "edgeLabel",
  "edgeProb",
  "cloudModelVersion",
  "cloudLabel",
  "cloudProb",
  "cloudError",
  "switcherVersion",
  "switcherScore",
  "switcherThreshold",
  "queueMs",
  "edgeMs",
  "cloudMs",
  "totalMs",
] as const satisfies readonly (keyof DecisionRecord)[];

/** Open, or with the admin bearer token for more (OpenAPI: either requirement satisfies it). */
const OPEN_OR_BEARER: Record<string, string[]>[] = [{}, { bearer: [] }];

const getRoute = createRoute({
  method: "get",
  path: "/{id}",
  operationId: "getDecision",
  security: OPEN_OR_BEARER,
  summary: "One logged decision",
  description: "The public view of a decision to anyone holding its id; the whole record with the admin token.",
  request: {
    params: z.object({
      id: z.string().min(1).max(64).openapi({ param: { name: "id", in: "path" }, example: "0192f3c4-..." }),
    }),
  },
  responses: {
    200: { content: { "application/json": { schema: DecisionSchema } }, description: "The decision" },
    401: { content: { "application/json": { schema: ErrorSchema } }, description: "A wrong admin token" },
    404: { content: { "application/json": { schema: ErrorSchema } }, description: "No such decision" },
    ...rateLimitedResponse,
  },
});

/** A decision row as JSON: float arrays as number arrays. */
function toJson(d: DecisionRecord): Record<string, unknown> {
  return { ...d, embedding: Array.from(d.embedding ?? []), features: Array.from(d.features ?? []) };
}

function publicView(d: DecisionRecord): Record<string, unknown> {
  return Object.fromEntries(PUBLIC_FIELDS.map((k) => [k, d[k] ?? null]));
}

/** True with a valid admin bearer token, false without one; a wrong one is refused. */
async function isAdmin(header: string | undefined, token: string | undefined): Promise<boolean> {
  if (header === undefined) return false;
  const match = /^Bearer\s+(.+)$/i.exec(header);
  if (!token || !match || !(await constantTimeEqual(match[1].trim(), token))) {
    throw new AppError("UNAUTHORIZED", "Cannot authorise: a valid bearer token is required for the whole record");
  }
  return true;
}

/**
 * The decisions sub-app, mounted at `/v1/decisions`.
 *
 * @param deps the decision lookup and the admin token
 * @returns the sub-app
 */
export function decisionRoutes(deps: DecisionsDeps): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(getRoute, async (c) => {
    const { id } = c.req.valid("param");
    const full = await isAdmin(c.req.header("authorization"), deps.adminToken);
    const decision = await deps.getDecision(id);
    if (!decision) throw new AppError("NOT_FOUND", `Cannot find decision "${id}"`);
    // Both views are the row's own fields, which DecisionSchema documents; the public view is a subset.
    return c.json((full ? toJson(decision) : publicView(decision)) as z.infer<typeof DecisionSchema>, 200);
  });
  return app;
}
