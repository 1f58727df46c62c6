/**
 * `POST /v1/classify/frames` and `POST /v1/classify/frames/batch`: camera frames (JPEG or PNG) in, the same answer
 * as a keypoint sequence out (serve/frames.ts), plus how the frames were read and, on request, the keypoints.
 * One clip comes as JSON (base64 frames) or as `multipart/form-data` (fields `fps`, `id`, `route`, `keypoints` and
 * one `frames` file part per frame, in order).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { Buffer } from "node:buffer";
import type { Context } from "hono";
import { AppError } from "../errors.ts";
import { classifyClips, type Clip, type ClipOutcome, type FramesDeps } from "../serve/frames.ts";
import { present } from "./classify.ts";
import { AnswerSchema, errorResponses, ErrorSchema, ForcedRouteSchema, MAX_ID_LENGTH } from "./schemas.ts";
import { validationHook } from "./validation.ts";

/** What the frames routes need. */
export interface FramesRouteDeps extends FramesDeps {
  maxBatchItems: number;
  newId: () => string;
}

const ClipSchema = z.object({
  id: z.string().max(MAX_ID_LENGTH).optional().openapi({ description: "The caller's own id, echoed and logged" }),
  fps: z.number().positive().max(10_000).optional().openapi({
    example: 30,
    description: "Frames per second of the clip; when missing, the edge model's rate (`GET /v1/models`)",
  }),
  images: z.array(z.string()).min(1).openapi({
    description: "The frames in order: base64 JPEG or PNG (a `data:image/...;base64,` prefix is accepted); " +
      "one kind and size per clip",
  }),
  keypoints: z.boolean().optional().openapi({
    description: "Also return the keypoints found (T x 17 x [x, y, score], pixels)",
  }),
}).strict().openapi("FramesClip");

const FramesRequestSchema = ClipSchema.extend({ route: ForcedRouteSchema.optional() }).openapi("FramesRequest");
const FramesBatchRequestSchema = z.object({
  items: z.array(ClipSchema).min(1),
  route: ForcedRouteSchema.optional(),
}).strict().openapi("FramesBatchRequest");

const FramesMultipartSchema = z.object({
  fps: z.string().optional().openapi({ example: "30" }),
  id: z.string().max(MAX_ID_LENGTH).optional(),
  route: ForcedRouteSchema.optional(),
  keypoints: z.enum(["true", "false"]).optional(),
  frames: z.array(z.string().openapi({ format: "binary" })).openapi({
    description: "One file part per frame, in order",
  }),
}).openapi("FramesMultipart");

const InputSchema = z.object({
  kind: z.enum(["jpeg", "png"]),
  frames: z.number().int(),
  width: z.number().int(),
  height: z.number().int(),
  decodeMs: z.number(),
  poseMs: z.number(),
  poseQueueMs: z.number(),
  poseQuality: z.number().openapi({ description: "Mean keypoint score over all frames and joints" }),
}).openapi("FramesInput");

const FramesAnswerSchema = AnswerSchema.extend({
  input: InputSchema,
  keypoints: z.array(z.array(z.array(z.number()))).optional(),
}).openapi("FramesAnswer");

const noPerson = {
  422: { content: { "application/json": { schema: ErrorSchema } }, description: "NO_PERSON: nobody in the frames" },
} as const;

const framesRoute = createRoute({
  method: "post",
  path: "/",
  operationId: "classifyFrames",
  security: [],
  summary: "Classify a clip of camera frames",
  description: "Limits are checked from the image headers before decoding; the frames are decoded and posed at the " +
    "edge (MoveNet in WASM), and the keypoints take the keypoint path. Frames are never stored.",
  request: {
    body: {
      required: true,
      content: {
        "application/json": { schema: FramesRequestSchema },
        "multipart/form-data": { schema: FramesMultipartSchema },
      },
    },
  },
  responses: {
    200: { content: { "application/json": { schema: FramesAnswerSchema } }, description: "The answer" },
    ...errorResponses,
    ...noPerson,
  },
});

const framesBatchRoute = createRoute({
  method: "post",
  path: "/batch",
  operationId: "classifyFramesBatch",
  security: [],
  summary: "Classify many clips of camera frames",
  description: "Each clip is posed on its own; the clips with a person share one edge pass and at most one cloud call.",
  request: { body: { required: true, content: { "application/json": { schema: FramesBatchRequestSchema } } } },
  responses: {
    200: {
      content: {
        "application/json": {
          schema: z.object({
            batchId: z.string(),
            results: z.array(z.union([
              FramesAnswerSchema.extend({ index: z.number().int(), ok: z.literal(true) }),
              z.object({ index: z.number().int(), ok: z.literal(false), code: z.string(), message: z.string() }),
            ])),
          }).openapi("FramesBatchResponse"),
        },
      },
      description: "One result per clip",
    },
    ...errorResponses,
  },
});

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function fromBase64(s: string, index: number): Uint8Array {
  const body = s.startsWith("data:") ? s.slice(s.indexOf(",") + 1) : s;
  const clean = body.replace(/\s+/g, "");
  if (clean.length % 4 !== 0 || !BASE64.test(clean)) {
    throw new AppError("INVALID_INPUT", `Cannot read frames: image ${index} is not base64`);
  }
  const b = Buffer.from(clean, "base64");
  return new Uint8Array(b.buffer, b.byteOffset, b.byteLength);
}

function parseJson(c: Context, schema: z.ZodType) {
  return c.req.json().catch((err) => {
    throw new AppError("INVALID_INPUT", "Cannot read request: malformed JSON", { cause: err });
  }).then((raw) => {
    const r = schema.safeParse(raw);
    validationHook({ ...r, target: "json" } as never, c as never);
    return r.data;
  });
}

function toClip(raw: z.infer<typeof ClipSchema>, maxFrames: number): Clip {
  if (raw.images.length > maxFrames) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot read frames: expected at most ${maxFrames} images, got ${raw.images.length}`,
    );
  }
  return { id: raw.id, fps: raw.fps, images: raw.images.map(fromBase64) };
}

/** The fields of a multipart clip; any other is refused, as the JSON body refuses unknown keys. */
const MULTIPART_FIELDS = ["fps", "id", "route", "keypoints", "frames"];

async function readMultipart(
  c: Context,
  maxFrames: number,
): Promise<{ clip: Clip; route?: "edge" | "cloud"; keypoints: boolean }> {
  let form: Record<string, string | File | (string | File)[]>;
  try {
    form = await c.req.parseBody({ all: true });
  } catch (err) {
    throw new AppError("INVALID_INPUT", "Cannot read request: malformed multipart body", { cause: err });
  }
  const unknown = Object.keys(form).find((k) => !MULTIPART_FIELDS.includes(k));
  if (unknown !== undefined) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot validate request: unknown field "${unknown.slice(0, 64)}" (the fields are ${
        MULTIPART_FIELDS.join(", ")
      })`,
    );
  }
  const one = (k: string) => {
    const v = form[k];
    if (Array.isArray(v)) throw new AppError("INVALID_INPUT", `Cannot read request: field "${k}" given twice`);
    if (v !== undefined && typeof v !== "string") {
      throw new AppError("INVALID_INPUT", `Cannot read request: field "${k}" must be text`);
    }
    return v;
  };
  const fps = one("fps") === undefined ? undefined : Number(one("fps"));
  if (fps !== undefined && !(fps > 0 && fps <= 10_000)) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot validate request: fps: expected a number in (0, 10000], got "${one("fps")}"`,
    );
  }
  const route = one("route");
  if (route !== undefined && route !== "edge" && route !== "cloud") {
    throw new AppError("INVALID_INPUT", `Cannot validate request: route: expected "edge" or "cloud", got "${route}"`);
  }
  const raw = form.frames === undefined ? [] : Array.isArray(form.frames) ? form.frames : [form.frames];
  if (raw.length > maxFrames) {
    throw new AppError("INVALID_INPUT", `Cannot read frames: expected at most ${maxFrames} images, got ${raw.length}`);
  }
  const images = await Promise.all(raw.map(async (f, i) => {
    if (typeof f === "string") {
      throw new AppError("INVALID_INPUT", `Cannot read frames: part ${i} of "frames" is not a file`);
    }
    return new Uint8Array(await f.arrayBuffer());
  }));
  const id = one("id");
  if (id !== undefined && id.length > MAX_ID_LENGTH) {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot validate request: id: expected at most ${MAX_ID_LENGTH} characters, got ${id.length}`,
    );
  }
  const keypoints = one("keypoints");
  if (keypoints !== undefined && keypoints !== "true" && keypoints !== "false") {
    throw new AppError(
      "INVALID_INPUT",
      `Cannot validate request: keypoints: expected "true" or "false", got "${keypoints.slice(0, 32)}"`,
    );
  }
  return { clip: { id, fps, images }, route, keypoints: keypoints === "true" };
}

function answer(o: Extract<ClipOutcome, { ok: true }>, withKeypoints: boolean) {
  return { ...present(o.answer), input: o.input, ...(withKeypoints && { keypoints: o.keypoints }) };
}

/**
 * The frames sub-app, mounted at `/v1/classify/frames`.
 *
 * @param deps the pose pool, the classifier, the edge model's spec, the limits
 * @returns the sub-app
 */
export function framesRoutes(deps: FramesRouteDeps): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  const maxFrames = deps.limits.maxFrames;

  app.openAPIRegistry.registerPath(framesRoute);
  app.post("/", async (c) => {
    const type = c.req.header("content-type") ?? "";
    let req: { clip: Clip; route?: "edge" | "cloud"; keypoints: boolean };
    if (/^multipart\/form-data\b/i.test(type)) req = await readMultipart(c, maxFrames);
    else {
      const body = await parseJson(c, FramesRequestSchema) as z.infer<typeof FramesRequestSchema>;
      req = { clip: toClip(body, maxFrames), route: body.route, keypoints: body.keypoints === true };
    }
    const [out] = await classifyClips([req.clip], deps, { forced: req.route, requestId: c.get("requestId") });
    if (!out.ok) throw out.error;
    return c.json(answer(out, req.keypoints), 200);
  });

  app.openAPIRegistry.registerPath(framesBatchRoute);
  app.post("/batch", async (c) => {
    const body = await parseJson(c, FramesBatchRequestSchema) as z.infer<typeof FramesBatchRequestSchema>;
    if (body.items.length > deps.maxBatchItems) {
      throw new AppError(
        "INVALID_INPUT",
        `Cannot classify batch: expected at most ${deps.maxBatchItems} items, got ${body.items.length}`,
      );
    }
    const batchId = deps.newId();
    const clips: (Clip | AppError)[] = body.items.map((raw) => {
      try {
        return toClip(raw, maxFrames);
      } catch (err) {
        if (err instanceof AppError) return err;
        throw err;
      }
    });
    const valid = clips.flatMap((c, index) => (c instanceof AppError ? [] : [{ clip: c, index }]));
    const outcomes = await classifyClips(valid.map((v) => v.clip), deps, {
      forced: body.route,
      requestId: c.get("requestId"),
      batchId,
    });
    const results = clips.map((clip, index) =>
      clip instanceof AppError ? { index, ok: false as const, code: clip.code, message: clip.message } : null
    );
    outcomes.forEach((o, k) => {
      const index = valid[k].index;
      results[index] = o.ok
        ? { ...answer(o, body.items[index].keypoints === true), index, ok: true as const } as never
        : { index, ok: false as const, code: o.error.code, message: o.error.message };
    });
    return c.json({ batchId, results }, 200);
  });

  return app;
}
