/**
 * The reference VLM server: a stand-in for a video-language model behind an OpenAI-compatible chat API (vLLM,
 * llama.cpp's server, Ollama), so that a tier of that protocol runs and is tested on one machine. It is not a
 * language model: it checks each request as those servers do (cloud/vlm_request.ts), decodes the frames and poses
 * them (MoveNet in the pose workers, as the edge app's frames path), runs the cloud classifier of the model set on
 * the keypoints (onnxruntime, cloud/reference_server.ts's session), and answers the key of the most probable label
 * among those the prompt offers, with `top_logprobs` from the classifier's probabilities renormalised over them.
 * Deterministic: the same frames and prompt give the same answer.
 *
 * - The prompt names the options on lines `KEY: label` (cloud/vlm_protocol.ts `renderPrompt`); each constrained
 *   choice must be named by one, with a label of the served model (underscores may be spaces), or the request is
 *   refused (400).
 * - Endpoints: `POST /v1/chat/completions`, `GET /v1/models`, `GET /health`. Errors are OpenAI-style
 *   `{ "error": { message, type, param, code } }` with 400, 404 (unknown model or path), 413 or 500.
 * - **No authentication, loopback only**: it refuses to listen on any other interface. `usage` is not reported.
 *
 * Lifecycle: read the manifest -> check sha256s -> load the cloud session and the pose workers -> listen ->
 * SIGINT/SIGTERM (or stdin closing, when started by a parent): stop listening, finish requests in flight, stop the
 * workers, release the session.
 *
 * @module
 */
import { type Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import { loadVlmServerConfig, type VlmServerConfig } from "../config.ts";
import { AppError } from "../errors.ts";
import { resample } from "../sequence/preprocess.ts";
import { checkClip, type FrameLimits, posesToSequence } from "../serve/frames.ts";
import { softmax } from "../switcher/features.ts";
import type { ClassifierSpec } from "../wasm-models/manifest.ts";
import { readArtefact, readManifest } from "../workers/artefacts.ts";
import { readPoseModel } from "../workers/pose_artefact.ts";
import { createPosePool, type PoseInference } from "../workers/pose_pool.ts";
import { parseFlags } from "../scripts/cli.ts";
import { type CloudSession, loadCloudSession } from "./reference_server.ts";
import { serveApp, stopOnSignals } from "./serve_app.ts";
import { type ChatRequest, ChatRequestError, readChatRequest } from "./vlm_request.ts";
import type { ChatCompletionResponse, TokenLogprob } from "./vlm_protocol.ts";

/** Sibling modules are `.ts` in the source tree and `.js` in the `dist/` bundle. */
const MODULE_EXT = import.meta.url.endsWith(".js") ? "js" : "ts";
/** Largest request body, in bytes (64 frames of 1 MiB as base64, and the prompt). */
const MAX_BODY_BYTES = 96 * 1024 * 1024;
/** The log probability written for a probability of 0 (vLLM writes -9999.0 for minus infinity). */
const LOG_ZERO = -9999;
/** Frame limits of one request, checked from the image headers before decoding (the edge app's defaults). */
export const VLM_FRAME_LIMITS: FrameLimits = { maxFrames: 64, maxImageBytes: 1024 * 1024, maxPixels: 1920 * 1080 };

/** The model behind the stand-in: frames in, one probability per label out. */
export interface FramesModel {
  labels: string[];
  /** The version reported as `model` metadata (`root`). */
  version: string;
  /**
   * @param images the encoded frames of one clip, one kind and size (checked)
   * @returns one probability per label
   */
  classify(images: Uint8Array[]): Promise<Float64Array>;
}

/**
 * Pose + the cloud classifier as a {@link FramesModel}: the clip's keypoints (COCO-17, normalised as the edge app's
 * frames path does), resampled over their whole length to the cloud model's window.
 *
 * @param parts the pose workers, the cloud session and its manifest entry
 * @returns the model
 */
export function poseClassifier(
  parts: { pose: PoseInference; session: CloudSession; spec: ClassifierSpec },
): FramesModel {
  const { spec } = parts;
  let chain: Promise<unknown> = Promise.resolve();
  return {
    labels: spec.labels,
    version: spec.version,
    async classify(images) {
      const pose = await parts.pose.pose(images);
      const window = resample(posesToSequence(pose), {
        inFrames: pose.frames.length,
        outFrames: spec.windowFrames,
        pointSize: spec.joints * spec.channels,
      });
      // One run at a time: a WASM session cannot run twice at once.
      const run = chain.then(() => parts.session.run(window, 1));
      chain = run.catch(() => undefined);
      return softmax(await run);
    },
  };
}

/**
 * Which label each choice stands for, from the prompt's `KEY: label` lines.
 *
 * @param text the prompt
 * @param choices the constrained choices
 * @param labels the served model's labels
 * @returns one label index per choice
 * @throws ChatRequestError when a choice is named by no line, or by a label the model does not have
 */
export function choiceLabels(text: string, choices: string[], labels: string[]): number[] {
  const byText = new Map(labels.map((l, i) => [l.toLowerCase(), i]));
  labels.forEach((l, i) => byText.set(l.replaceAll("_", " ").toLowerCase(), i));
  const named = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z0-9]{1,8})\s*[:)=.]\s*(.+?)\s*$/.exec(line);
    if (m && !named.has(m[1])) named.set(m[1], m[2]);
  }
  return choices.map((choice) => {
    const name = named.get(choice);
    if (name === undefined) {
      throw new ChatRequestError(`the prompt names the choice "${choice}" on no "${choice}: label" line`);
    }
    const index = byText.get(name.toLowerCase());
    if (index === undefined) {
      throw new ChatRequestError(`the choice "${choice}" names "${name}", which is none of the model's labels`);
    }
    return index;
  });
}

/** The reply's generated tokens: `{"member":"KEY"}` or the bare key, each with its log probabilities. */
function answerTokens(req: ChatRequest, keyLogprobs: { key: string; logprob: number }[]): TokenLogprob[] {
  const top = req.topLogprobs ?? 0;
  const fixed = (token: string): TokenLogprob => ({
    token,
    logprob: 0,
    bytes: [...new TextEncoder().encode(token)],
    top_logprobs: top > 0 ? [{ token, logprob: 0, bytes: [...new TextEncoder().encode(token)] }] : [],
  });
  const best = keyLogprobs[0];
  const answer: TokenLogprob = {
    token: best.key,
    logprob: best.logprob,
    bytes: [...new TextEncoder().encode(best.key)],
    top_logprobs: keyLogprobs.slice(0, top).map((k) => ({
      token: k.key,
      logprob: k.logprob,
      bytes: [...new TextEncoder().encode(k.key)],
    })),
  };
  if ("bare" in req.form) return [answer];
  return [fixed('{"'), fixed(req.form.json), fixed('":"'), answer, fixed('"}')];
}

/**
 * The stand-in's HTTP app.
 *
 * @param options the model behind it, the name it is served under, the frame limits
 * @returns a Hono app
 */
export function createVlmReferenceApp(
  options: { model: FramesModel; modelName: string; limits?: FrameLimits; now?: () => number },
): Hono {
  const { model, modelName } = options;
  const limits = options.limits ?? VLM_FRAME_LIMITS;
  const now = options.now ?? Date.now;
  const created = Math.floor(now() / 1000);
  let served = 0;
  const app = new Hono();
  const error = (c: Context, status: 400 | 404 | 413 | 500, message: string, type: string, param: string | null) =>
    c.json({ error: { message, type, param, code: status } }, status);

  app.get("/health", (c) => c.json({ status: "ok" }));
  app.get("/v1/models", (c) =>
    c.json({
      object: "list",
      data: [{ id: modelName, object: "model", created, owned_by: "dmd-edge", root: model.version }],
    }));
  app.post(
    "/v1/chat/completions",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: (c) => error(c, 413, `the body exceeds ${MAX_BODY_BYTES} bytes`, "BadRequestError", null),
    }),
    async (c) => {
      let req: ChatRequest;
      let labelOf: number[];
      try {
        let body: unknown;
        try {
          body = await c.req.json();
        } catch {
          throw new ChatRequestError("the body is not valid JSON");
        }
        req = readChatRequest(body, modelName);
        labelOf = choiceLabels(req.text, req.choices, model.labels);
        checkClip(req.images.map((i) => i.bytes), limits);
      } catch (err) {
        if (err instanceof ChatRequestError) return error(c, err.status, err.message, err.type, err.param);
        if (err instanceof AppError) {
          return error(c, err.code === "PAYLOAD_TOO_LARGE" ? 413 : 400, err.message, "BadRequestError", "messages");
        }
        throw err;
      }
      let probs: Float64Array;
      try {
        probs = await model.classify(req.images.map((i) => i.bytes));
      } catch (err) {
        // An image whose header reads but whose data does not decode.
        if (err instanceof AppError && err.code === "INVALID_INPUT") {
          return error(c, 400, err.message, "BadRequestError", "messages");
        }
        throw err;
      }
      const mass = labelOf.map((l) => probs[l]);
      const total = mass.reduce((a, b) => a + b, 0);
      const ranked = req.choices
        .map((key, i) => ({ key, p: total > 0 ? mass[i] / total : 1 / mass.length, i }))
        // Ties go to the earlier choice: the answer is deterministic.
        .sort((a, b) => b.p - a.p || a.i - b.i)
        .map(({ key, p }) => ({ key, logprob: p > 0 ? Math.max(LOG_ZERO, Math.log(p)) : LOG_ZERO }));
      let tokens = answerTokens(req, ranked);
      const truncated = req.maxTokens !== null && tokens.length > req.maxTokens;
      if (truncated) tokens = tokens.slice(0, req.maxTokens!);
      const reply: ChatCompletionResponse = {
        id: `chatcmpl-ref-${++served}`,
        object: "chat.completion",
        created: Math.floor(now() / 1000),
        model: modelName,
        choices: [{
          index: 0,
          message: { role: "assistant", content: tokens.map((t) => t.token).join("") },
          logprobs: req.topLogprobs === null ? null : { content: tokens },
          finish_reason: truncated ? "length" : "stop",
        }],
      };
      return c.json(reply);
    },
  );
  app.notFound((c) => error(c, 404, `Cannot find ${c.req.method} ${c.req.path}`, "NotFoundError", null));
  app.onError((err, c) => {
    console.error(JSON.stringify({ level: "error", msg: "reference VLM failed", error: String(err) }));
    return error(c, 500, "internal error", "InternalServerError", null);
  });
  return app;
}

/** A running reference VLM server. */
export interface VlmReferenceServer {
  /** Base URL, e.g. `http://127.0.0.1:8002` (the API is under `/v1`). */
  url: string;
  modelName: string;
  /** The cloud classifier's version. */
  modelVersion: string;
  /** Stop listening, finish requests in flight, stop the pose workers, release the session. */
  shutdown(): Promise<void>;
}

/**
 * Load the cloud model and the pose model of a model set (checking their sha256s) and serve the stand-in.
 *
 * @param config loopback host, port (0 picks a free one), the models' folders, the served name, the runtime
 * @returns the running server
 * @throws RangeError when the host is not a loopback address; AppError MODEL_NOT_READY when a model is missing
 */
export async function startVlmReferenceServer(config: Readonly<VlmServerConfig>): Promise<VlmReferenceServer> {
  if (!["127.0.0.1", "::1", "localhost"].includes(config.host)) {
    throw new RangeError(
      `Cannot start the reference VLM server on ${config.host}: it has no authentication and listens on loopback only`,
    );
  }
  const manifest = await readManifest(config.modelsDir);
  const { bytes, spec } = await readArtefact(config.modelsDir, manifest.cloud);
  const poseDir = new URL(`${config.poseModelDir.replace(/\/*$/, "/")}`, `file://${Deno.cwd()}/`);
  const poseModel = await readPoseModel(poseDir);
  const session = await loadCloudSession(bytes, { spec, runtime: config.runtime });
  let pose: PoseInference;
  try {
    pose = await createPosePool(poseModel.bytes, {
      size: 1,
      queueMax: 64,
      workerUrl: new URL(`../workers/pose_worker.${MODULE_EXT}`, import.meta.url),
    });
  } catch (err) {
    await session.release();
    throw err;
  }
  const app = createVlmReferenceApp({ model: poseClassifier({ pose, session, spec }), modelName: config.modelName });
  const served = await serveApp(app.fetch, {
    host: config.host,
    port: config.port,
    release: async () => {
      await pose.close();
      await session.release();
    },
  });
  return { ...served, modelName: config.modelName, modelVersion: spec.version };
}

if (import.meta.main) {
  parseFlags(
    {},
    "usage: deno task cloud:vlm\n" +
      "The reference VLM server: an OpenAI-compatible chat API (POST /v1/chat/completions, GET /v1/models) that\n" +
      "answers from pose + the cloud classifier, a stand-in for a video-language model. Configured by the environment:\n" +
      "VLM_SERVER_HOST (127.0.0.1; loopback only), VLM_SERVER_PORT (8002), VLM_SERVER_MODEL (dmd-reference-vlm),\n" +
      "MODELS_DIR (wasm-models), POSE_MODEL_DIR (wasm-models/pose), CLOUD_RUNTIME (auto). No authentication.",
  );
  const config = loadVlmServerConfig();
  const server = await startVlmReferenceServer(config);
  console.log(JSON.stringify({
    level: "info",
    msg: "reference VLM server listening",
    url: server.url,
    model: server.modelName,
    version: server.modelVersion,
  }));
  stopOnSignals(server, config.exitWithParent);
}
