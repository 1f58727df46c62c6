/**
 * `POST /v1/classify` and `POST /v1/classify/batch`.
 *
 * @module
 */
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { AppError, toAppError } from "../errors.ts";
import type { Answer, ClassifyOptions, HybridClassifier, SequenceItem } from "../serve/classifier.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import {
  AnswerSchema,
  BatchRequestSchema,
  BatchResponseSchema,
  ClassifyRequestSchema,
  errorResponses,
} from "./schemas.ts";
import { BINARY_MEDIA_TYPE, readBinaryHeader, toBinarySequence } from "./binary_body.ts";
import { checkBodyShape } from "./body_shape.ts";
import { flatToSequenceItem, toSequenceItem, validationHook } from "./validation.ts";
import { readClassifyBody } from "./fast_body.ts";
import { toModelTime } from "../sequence/window.ts";

/** The media types hono's JSON validator reads (`application/json`, `application/*+json`, parameters after `;`). */
const JSON_MEDIA_TYPE = /^\s*application\/([\w.-]+\+)?json\s*(;|$)/i;

/** What the classify routes need. */
export interface ClassifyDeps {
  classifier: HybridClassifier;
  edgeSpec: ClassifierSpec;
  maxFrames: number;
  maxBatchItems: number;
  newId: () => string;
}

/** The answer as the API returns it (also the frames route's, routes/frames.ts). */
export function present(a: Answer) {
  const { clientId, ...rest } = a;
  return { ...rest, id: clientId, degraded: a.route === "edge_fallback" };
}

const classifyRoute = createRoute({
  method: "post",
  path: "/",
  operationId: "classify",
  security: [],
  summary: "Classify one sequence",
  description: "The edge model answers; the switcher decides whether to offload to the cloud model. The frames may " +
    "also be sent as raw little-endian float32 values (`application/octet-stream`, T x J x C) with the shape and " +
    "fields in the headers `x-frames`, `x-joints`, `x-channels`, `x-layout`, `x-fps` and optionally `x-route` and " +
    "`x-sequence-id`; the answer is the same.",
  request: { body: { required: true, content: { "application/json": { schema: ClassifyRequestSchema } } } },
  responses: {
    200: { content: { "application/json": { schema: AnswerSchema } }, description: "The answer" },
    ...errorResponses,
  },
});

const batchRoute = createRoute({
  method: "post",
  path: "/batch",
  operationId: "classifyBatch",
  security: [],
  summary: "Classify many sequences",
  description: "One edge pass and at most one cloud call for the whole batch; each item is answered on its own.",
  request: { body: { required: true, content: { "application/json": { schema: BatchRequestSchema } } } },
  responses: {
    200: { content: { "application/json": { schema: BatchResponseSchema } }, description: "One result per item" },
    ...errorResponses,
  },
});

/**
 * The classify sub-app, mounted at `/v1/classify`.
 *
 * @param deps the classifier, the edge model's spec and limits
 * @returns the sub-app
 */
export function classifyRoutes(deps: ClassifyDeps): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const check = { spec: deps.edgeSpec, maxFrames: deps.maxFrames };
  const shape = {
    maxBatchItems: deps.maxBatchItems,
    maxFrames: deps.maxFrames,
    joints: deps.edgeSpec.joints,
    channels: deps.edgeSpec.channels,
  };

  /** One sequence through the classifier, as the API answers it. */
  const classifyOne = async (item: SequenceItem, forced: ClassifyOptions["forced"], requestId: string) =>
    present((await deps.classifier.classify([item], { forced, requestId }))[0]);

  const fastLimits = {
    joints: deps.edgeSpec.joints,
    channels: deps.edgeSpec.channels,
    maxFrames: deps.maxFrames,
    confidenceChannel: deps.edgeSpec.confidenceChannel,
  };

  // A single sequence in JSON, read in one pass from the text to the model's Float32Array (routes/fast_body.ts),
  // checked against the same schema; a body that pass does not take goes the general way below, which names what is
  // wrong with it.
  app.use("/", async (c, next) => {
    if (c.req.method !== "POST" || !JSON_MEDIA_TYPE.test(c.req.header("content-type") ?? "")) return await next();
    const fast = readClassifyBody(await c.req.text(), fastLimits);
    const members = fast && ClassifyRequestSchema.safeParse(fast.members);
    if (!fast || !members?.success) return await next();
    const body = members.data;
    const item = flatToSequenceItem(body, fast, deps.edgeSpec);
    return c.json(await classifyOne(item, body.route, c.get("requestId")), 200);
  });

  // The binary body (routes/binary_body.ts): every limit is checked from the headers before the body is read.
  app.use("/", async (c, next) => {
    const type = c.req.header("content-type") ?? "";
    if (c.req.method !== "POST" || !type.toLowerCase().startsWith(BINARY_MEDIA_TYPE)) return await next();
    const header = readBinaryHeader(c.req.raw.headers, check);
    const raw = toBinarySequence(header, await c.req.arrayBuffer());
    const item = {
      ...raw,
      ...toModelTime(raw.data, {
        inFrames: raw.length,
        fps: raw.fps,
        pointSize: deps.edgeSpec.joints * deps.edgeSpec.channels,
        model: deps.edgeSpec,
      }),
    };
    return c.json(await classifyOne(item, header.route, c.get("requestId")), 200);
  });

  // Every limit before any per-element work: the raw text is checked before it is parsed and validated.
  app.use("*", async (c, next) => {
    if (c.req.method === "POST") checkBodyShape(await c.req.text(), shape);
    await next();
  });

  app.openapi(classifyRoute, async (c) => {
    const body = c.req.valid("json");
    const item = toSequenceItem(body, check);
    return c.json(await classifyOne(item, body.route, c.get("requestId")), 200);
  });

  app.openapi(batchRoute, async (c) => {
    const body = c.req.valid("json");
    if (body.items.length > deps.maxBatchItems) {
      throw new AppError(
        "INVALID_INPUT",
        `Cannot classify batch: expected at most ${deps.maxBatchItems} items, got ${body.items.length}`,
      );
    }
    const valid: { index: number; item: SequenceItem }[] = [];
    const results: Array<
      ReturnType<typeof present> & { index: number; ok: true } | {
        index: number;
        ok: false;
        code: string;
        message: string;
      }
    > = new Array(body.items.length);
    body.items.forEach((raw, index) => {
      try {
        valid.push({ index, item: toSequenceItem(raw, check) });
      } catch (err) {
        const e = toAppError(err);
        results[index] = { index, ok: false, code: e.code, message: e.message };
      }
    });
    const batchId = deps.newId();
    if (valid.length > 0) {
      const answers = await deps.classifier.classify(valid.map((v) => v.item), {
        forced: body.route,
        requestId: c.get("requestId"),
        batchId,
      });
      answers.forEach((a, k) => (results[valid[k].index] = { ...present(a), index: valid[k].index, ok: true }));
    }
    return c.json({ batchId, results }, 200);
  });

  return app;
}
