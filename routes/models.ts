/**
 * `GET /v1/models`: what is loaded.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { redactUrl } from "../config.ts";
import type { SwitcherRelease } from "../release/release.ts";
import type { Manifest } from "../wasm-models/manifest.ts";
import type { EngineVersions } from "../workers/protocol.ts";
import { minimumFrames } from "../sequence/window.ts";
import { rateLimitedResponse } from "./schemas.ts";

/** What the models route needs. */
export interface ModelsDeps {
  manifest: Manifest;
  /** Versions the workers serve now. */
  versions(): EngineVersions;
  /** The threshold in force. */
  threshold(): number;
  /** The cloud server's URL; shown without user, password or query. */
  cloudUrl: string;
  /** The switcher release the workers serve now. */
  switcher: () => SwitcherRelease;
}

const ModelsSchema = z.object({
  edge: z.record(z.string(), z.unknown()),
  cloud: z.record(z.string(), z.unknown()),
  switcher: z.record(z.string(), z.unknown()),
}).openapi("Models");

const route = createRoute({
  method: "get",
  path: "/",
  operationId: "getModels",
  security: [],
  summary: "The loaded models",
  responses: {
    200: { content: { "application/json": { schema: ModelsSchema } }, description: "Loaded models" },
    ...rateLimitedResponse,
  },
});

function describe(spec: Manifest["edge"]) {
  return {
    version: spec.version,
    file: spec.file,
    sha256: spec.sha256,
    bytes: spec.bytes,
    precision: spec.precision,
    layout: spec.layout,
    joints: spec.joints,
    channels: spec.channels,
    windowFrames: spec.windowFrames,
    fps: spec.fps,
    minFrames: minimumFrames(spec),
    labels: spec.labels,
    params: spec.params ?? null,
    flops: spec.flops ?? null,
    metrics: spec.metrics ?? null,
  };
}

/**
 * The models sub-app, mounted at `/v1/models`.
 *
 * @param deps the manifest and what the workers serve
 * @returns the sub-app
 */
export function modelRoutes(deps: ModelsDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openapi(route, (c) => {
    const versions = deps.versions();
    const s = deps.switcher();
    return c.json({
      edge: { ...describe(deps.manifest.edge), serving: versions.edge, runtime: "onnxruntime-web (wasm)" },
      cloud: {
        ...describe(deps.manifest.cloud),
        url: redactUrl(deps.cloudUrl),
        protocol: "open-inference-protocol-v2",
      },
      switcher: {
        version: versions.switcher,
        threshold: deps.threshold(),
        kind: s.scorer.kind,
        rule: s.scorer.kind === "rule" ? s.scorer.rule : null,
        features: s.scorer.kind === "onnx" ? s.features : null,
        calibration: s.calibration,
      },
    }, 200);
  });
  return app;
}
