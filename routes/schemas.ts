/**
 * Request and response schemas of the HTTP API. The same schemas validate requests and generate the OpenAPI
 * document served at `/openapi.json`.
 *
 * @module
 */
import { z } from "@hono/zod-openapi";

/** `{ code, message }`: every error response. */
export const ErrorSchema = z.object({
  code: z.string().openapi({ example: "INVALID_INPUT" }),
  message: z.string().openapi({ example: "Cannot read frames: expected 17 points in frame 3, got 12" }),
}).openapi("Error");

/** A forced route, for debugging: `edge` never offloads, `cloud` always does. */
export const ForcedRouteSchema = z.enum(["edge", "cloud"]).openapi({
  description: "Force the route (debugging); the decision log records that it was forced",
});

/** One sequence in the project's sequence format. */
export const SequenceSchema = z.object({
  id: z.string().max(256).optional().openapi({ description: "The caller's own id, echoed and logged" }),
  layout: z.string().min(1).max(64).openapi({ example: "coco17", description: "Keypoint or sensor layout name" }),
  fps: z.number().positive().max(10_000).openapi({ example: 30, description: "Frames per second" }),
  // Checked element by element once, by flattenFrames (routes/validation.ts), after the limits (routes/body_shape.ts):
  // a zod pass over every number would be a second walk of up to a million values on the HTTP thread.
  frames: z.array(z.unknown()).openapi({
    type: "array",
    items: { type: "array", items: { type: "array", items: { type: "number" } } },
    description: "T x J x C numbers: T frames, J points (joints or sensors), C channels (e.g. x, y, confidence)",
    example: [[[0.5, 0.2, 0.9]]],
  }),
}).strict().openapi("Sequence", {
  description: "Unknown members are refused (400 INVALID_INPUT naming them). `fps` is the rate of `frames`: the " +
    "sequence is resampled in time to the rate the edge model was built for (`GET /v1/models`)",
});

/** Body of `POST /v1/classify`. */
export const ClassifyRequestSchema = SequenceSchema.extend({
  route: ForcedRouteSchema.optional(),
}).openapi("ClassifyRequest");

/** Body of `POST /v1/classify/batch`. */
export const BatchRequestSchema = z.object({
  items: z.array(SequenceSchema).min(1),
  route: ForcedRouteSchema.optional(),
}).strict().openapi("BatchRequest");

const LabelProb = z.object({ label: z.string(), probability: z.number() });

/** The answer for one sequence. */
export const AnswerSchema = z.object({
  decisionId: z.string().openapi({ description: "Id of the logged decision: GET /v1/decisions/{id}" }),
  id: z.string().nullable().openapi({ description: "The caller's id" }),
  label: z.string(),
  probability: z.number(),
  probabilities: z.record(z.string(), z.number()),
  route: z.enum(["edge", "cloud", "edge_fallback"]).openapi({
    description: "edge: kept; cloud: offloaded; edge_fallback: offloaded but the cloud failed, edge answer given",
  }),
  routeReason: z.string(),
  forced: z.boolean(),
  degraded: z.boolean().openapi({ description: "True when the cloud was wanted but failed" }),
  edge: LabelProb,
  cloud: LabelProb.nullable(),
  cloudError: ErrorSchema.nullable(),
  switcher: z.object({ score: z.number(), threshold: z.number(), version: z.string() }),
  models: z.object({ edge: z.string(), cloud: z.string().nullable(), switcher: z.string() }),
  timings: z.object({
    queueMs: z.number(),
    preprocessMs: z.number(),
    edgeMs: z.number(),
    switcherMs: z.number(),
    cloudMs: z.number().nullable(),
    totalMs: z.number(),
  }),
}).openapi("Answer");

/** One item of a batch answer: an answer, or the item's own error. */
export const BatchItemSchema = z.union([
  AnswerSchema.extend({ index: z.number().int(), ok: z.literal(true) }),
  z.object({ index: z.number().int(), ok: z.literal(false), code: z.string(), message: z.string() }),
]).openapi("BatchItem");

/** Body of the batch answer. */
export const BatchResponseSchema = z.object({
  batchId: z.string(),
  results: z.array(BatchItemSchema),
}).openapi("BatchResponse");

/** A logged decision. */
export const DecisionSchema = z.record(z.string(), z.unknown()).openapi("Decision", {
  description: "A decision row: inputs' shape, edge output, switcher score and threshold, route and why, cloud output",
});

/** Errors every route may return. */
export const errorResponses = {
  400: { content: { "application/json": { schema: ErrorSchema } }, description: "Invalid input" },
  413: { content: { "application/json": { schema: ErrorSchema } }, description: "Body over the size limit" },
  415: { content: { "application/json": { schema: ErrorSchema } }, description: "Body is not JSON" },
  503: { content: { "application/json": { schema: ErrorSchema } }, description: "Overloaded or not ready" },
} as const;
