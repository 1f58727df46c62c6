/**
 * Request and response schemas of the HTTP API. The same schemas validate requests and generate the OpenAPI
 * document served at `/openapi.json`.
 *
 * @module
 */
import { z } from "@hono/zod-openapi";

/** The longest caller id a request may carry (JSON, multipart and binary bodies alike). */
export const MAX_ID_LENGTH = 256;

/** `{ code, message }`: every error response. */
export const ErrorSchema = z.object({
  code: z.string().openapi({ example: "INVALID_INPUT" }),
  message: z.string().openapi({ example: "Cannot read frames: expected 17 points in frame 3, got 12" }),
}).openapi("Error");

/** A forced route, for debugging: `edge` never offloads, `cloud` always does. */
export const ForcedRouteSchema = z.enum(["edge", "cloud"]).openapi({
  description: "Force the route (debugging); the decision log records that it was forced",
});

/** One window of the default models (32 frames at 30 fps) of 17 COCO keypoints (x, y, confidence). */
const EXAMPLE_FRAMES = Array.from(
  { length: 32 },
  (_, f) =>
    Array.from({ length: 17 }, (_, j) => [0.4 + 0.01 * j + 0.002 * f, 0.1 + 0.05 * j, 0.9].map((v) => +v.toFixed(3))),
);

/** The members of a sequence. */
const sequenceShape = {
  id: z.string().max(MAX_ID_LENGTH).optional().openapi({ description: "The caller's own id, echoed and logged" }),
  layout: z.string().min(1).max(64).openapi({ example: "coco17", description: "Keypoint or sensor layout name" }),
  fps: z.number().positive().max(10_000).optional().openapi({
    example: 30,
    description: "Frames per second of `frames`; when missing, the edge model's rate (`GET /v1/models`)",
  }),
  // Checked element by element once, by flattenFrames (routes/validation.ts), after the limits (routes/body_shape.ts):
  // a zod pass over every number would be a second walk of up to a million values on the HTTP thread.
  frames: z.array(z.unknown()).openapi({
    type: "array",
    items: { type: "array", items: { type: "array", items: { type: "number" } } },
    description: "T x J x C numbers: T frames, J points (joints or sensors), C channels (e.g. x, y, confidence)",
    example: EXAMPLE_FRAMES,
  }),
};

/** One sequence in the project's sequence format. */
export const SequenceSchema = z.object(sequenceShape).strict().openapi("Sequence", {
  description: "Unknown members are refused (400 INVALID_INPUT naming them). `fps` is the rate of `frames`: the " +
    "sequence is resampled in time to the rate the edge model was built for and the model reads its most recent " +
    "window (`GET /v1/models`: `fps`, `windowFrames`, `minFrames`); shorter than `minFrames` is 422 SEQUENCE_TOO_SHORT",
});

/** Body of `POST /v1/classify`. */
export const ClassifyRequestSchema = z.object({
  ...sequenceShape,
  route: ForcedRouteSchema.optional(),
}).strict().openapi("ClassifyRequest", { example: { id: "cam-1", layout: "coco17", fps: 30, frames: EXAMPLE_FRAMES } });

/** Body of `POST /v1/classify/batch`. */
export const BatchRequestSchema = z.object({
  items: z.array(SequenceSchema).min(1),
  route: ForcedRouteSchema.optional(),
}).strict().openapi("BatchRequest", {
  example: {
    items: [{ id: "cam-1", layout: "coco17", fps: 30, frames: EXAMPLE_FRAMES }, {
      id: "cam-2",
      layout: "coco17",
      fps: 25,
      frames: EXAMPLE_FRAMES,
    }],
  },
});

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
  tiers: z.object({
    answered: z.string().openapi({ description: "The tier whose answer was given" }),
    reached: z.array(z.object({
      name: z.string(),
      label: z.string().nullable(),
      probability: z.number().nullable(),
      hasProbabilities: z.boolean().nullable().openapi({ description: "False: the tier answered without logprobs" }),
      error: z.string().nullable(),
      ms: z.number().nullable(),
    })),
  }).optional().openapi({
    description: "With more than two tiers configured (TIERS), for a request that reached tier 1: each tier reached",
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

/** A logged decision: the public view, and with the admin token the whole record. */
export const DecisionSchema = z.object({
  id: z.string().openapi({ description: "UUIDv7" }),
  createdAt: z.number().int().openapi({ description: "Unix milliseconds" }),
  route: z.enum(["edge", "cloud", "edge_fallback"]),
  routeReason: z.string().openapi({ example: "below_threshold" }),
  forced: z.boolean(),
  label: z.string().openapi({ description: "The answer given" }),
  prob: z.number(),
  edgeModelVersion: z.string(),
  edgeLabel: z.string(),
  edgeProb: z.number(),
  cloudModelVersion: z.string().nullable(),
  cloudLabel: z.string().nullable(),
  cloudProb: z.number().nullable(),
  cloudError: z.string().nullable().openapi({ description: "Error code when the cloud call failed" }),
  switcherVersion: z.string(),
  switcherScore: z.number(),
  switcherThreshold: z.number(),
  queueMs: z.number(),
  edgeMs: z.number(),
  cloudMs: z.number().nullable(),
  totalMs: z.number(),
  // With the admin token only:
  requestId: z.string().optional(),
  clientId: z.string().nullable().optional(),
  batchId: z.string().nullable().optional(),
  edgeLocation: z.string().optional(),
  layout: z.string().optional(),
  frames: z.number().int().optional(),
  joints: z.number().int().optional(),
  channels: z.number().int().optional(),
  fps: z.number().optional(),
  offloadProbability: z.number().optional(),
  shadow: z.boolean().optional(),
  edgeProbs: z.array(z.number()).optional(),
  cloudProbs: z.array(z.number()).nullable().optional(),
  embedding: z.array(z.number()).optional(),
  features: z.array(z.number()).optional(),
}).catchall(z.unknown()).openapi("Decision", {
  description: "A logged decision: route and why, labels and probabilities, switcher score, threshold and version, " +
    "model versions and timings; with the admin token also the caller's and request ids, edge location, " +
    "propensity, input shape and vectors",
});

const errorBody = { "application/json": { schema: ErrorSchema } };
const retryAfter = {
  "Retry-After": { schema: { type: "integer" as const }, description: "Seconds to wait before trying again" },
};

/** 429 `RATE_LIMITED`: every `/v1/*` route, when a per-client rate limit is set (before the body is read). */
export const rateLimitedResponse = {
  429: { content: errorBody, headers: retryAfter, description: "Over the client's rate limit (`RATE_LIMITED`)" },
} as const;

/** Errors every classify route may return. */
export const errorResponses = {
  400: { content: errorBody, description: "Invalid input, unknown members, or too many frames" },
  413: { content: errorBody, description: "Body over the size limit" },
  415: { content: errorBody, description: "Body is not JSON" },
  422: {
    content: errorBody,
    description: "Nothing usable in view: every point missing (`NO_USABLE_INPUT`); or the sequence spans less time " +
      "than the model reads (`SEQUENCE_TOO_SHORT`, naming the minimum frames at the request's fps)",
  },
  ...rateLimitedResponse,
  503: {
    content: errorBody,
    headers: retryAfter,
    description: "Overloaded (`OVERLOADED`), a worker failed (`INFERENCE_FAILED`), or shutting down",
  },
} as const;
