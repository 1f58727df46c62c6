/**
 * dmd-edge: the edge app. Wires config -> models -> database -> cloud client -> worker pool -> classifier ->
 * routes, and exports {@link createApp} for tests and {@link startService} for `deno task start`.
 *
 * Lifecycle (one teardown, serve/lifecycle.ts): load models -> open the database (migrations) and the decision log
 * -> reach the cloud (or start the reference server on loopback) -> start and warm the workers -> follow the release
 * registry -> listen -> on SIGINT/SIGTERM, or when a step of the start fails: stop accepting and drain requests in
 * flight, settle shadow calls, stop following, stop the workers and the reference server, flush the decision log
 * (to the database, else the outbox), close the database; exit 0.
 *
 * @module
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { cloudDownWhenOpen, createCircuitBreaker, withCircuitBreaker } from "./cloud/circuit_breaker.ts";
import { createOipClient, type OipClient } from "./cloud/oip_client.ts";
import { type Config, loadConfig } from "./config.ts";
import { type Database, type Db, openDatabase } from "./db/client.ts";
import { createDecisionLog, type DecisionLog } from "./db/decision_log.ts";
import { createThreadedDecisionWriter } from "./db/decision_writer_thread.ts";
import { uuidv7 } from "./db/ids.ts";
import { openOutbox } from "./db/outbox.ts";
import { AppError, onError } from "./errors.ts";
import { sleep, within } from "./lib/deadline.ts";
import { createDrain } from "./routes/drain.ts";
import { seedRegistry } from "./loop/registry.ts";
import { observeRequests } from "./observability/http.ts";
import { createLogger, flushLogsSync, type Logger } from "./observability/logger.ts";
import { createServiceMetrics, observeSink, type ServiceMetrics } from "./observability/metrics.ts";
import type { SwitcherRelease } from "./release/release.ts";
import { type AdminDeps, adminRoutes } from "./routes/admin.ts";
import { classifyRoutes } from "./routes/classify.ts";
import { framesRoutes } from "./routes/frames.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { decisionRoutes, type DecisionsDeps } from "./routes/decisions.ts";
import { type HealthDeps, healthRoutes } from "./routes/health.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { modelRoutes } from "./routes/models.ts";
import { rateLimit, type RateLimitOptions } from "./routes/rate_limit.ts";
import { statsRoutes } from "./routes/stats.ts";
import { startChildCloud } from "./serve/child_cloud.ts";
import { type Cascade, createCascade } from "./serve/cascade.ts";
import { followHopSwitchers } from "./serve/hop_switchers.ts";
import { createTierModel } from "./cloud/tier_models.ts";
import { createTierMetrics } from "./observability/tier_metrics.ts";
import { createHybridClassifier, type HybridClassifier } from "./serve/classifier.ts";
import { answerWhenLogged } from "./serve/durable.ts";
import { type ConnGuard, createConnGuard, type GuardedServer } from "./serve/conn_guard.ts";
import { createLifecycle, type Lifecycle } from "./serve/lifecycle.ts";
import { startMemoryTrim } from "./serve/memory_trim.ts";
import { createReleaseFollower, type ReleaseFollower } from "./serve/release_follower.ts";
import { createOffloadBudget } from "./switcher/decide.ts";
import { featureNames } from "./switcher/features.ts";
import type { Manifest } from "./wasm-models/manifest.ts";
import { loadModelSet } from "./workers/artefacts.ts";
import { createWorkerPool, type EdgeInference } from "./workers/pool.ts";
import { readPoseModel } from "./workers/pose_artefact.ts";
import { createPosePool, type PoseInference } from "./workers/pose_pool.ts";
import type { EngineInit } from "./workers/protocol.ts";
import { parseFlags } from "./scripts/cli.ts";

/** Sibling modules are `.ts` in the source tree and `.js` in the `dist/` bundle (`deno task build`). */
const MODULE_EXT = import.meta.url.endsWith(".js") ? "js" : "ts";

/** Metrics, structured logs and analytics (issue 6). */
export interface ObservabilityDeps {
  metrics: ServiceMetrics;
  logger: Logger;
  /** Guards `/v1/stats` always, and `/metrics` when set. */
  adminToken: string | undefined;
  /** The decision database, for `/v1/stats`; absent: no `/v1/stats`. */
  db?: Db;
  edgeLocation: string;
}

/** What {@link createApp} needs: built by {@link startService}, or by tests with fakes. */
export interface AppDeps {
  config: Pick<Config, "maxBodyBytes" | "maxFrames" | "maxBatchItems">;
  manifest: Manifest;
  classifier: HybridClassifier;
  inference: Pick<EdgeInference, "versions" | "stats" | "overloaded">;
  /** The switcher release the workers serve now (its owner: the release follower). */
  switcher: () => SwitcherRelease;
  /** The operator's `SWITCHER_THRESHOLD`, which replaces every release's threshold when set. */
  thresholdOverride?: number;
  cloudUrl: string;
  decisions: DecisionsDeps;
  health: HealthDeps;
  newId: () => string;
  /** Metrics, logs and `/v1/stats`; absent in tests that do not need them (metrics from `inference`, no logs). */
  observability?: ObservabilityDeps;
  /** Per-client rate limit on `/v1/*`, when the operator configures one (routes/rate_limit.ts). */
  rateLimit?: RateLimitOptions;
  /** The learning loop's admin endpoints under `/admin` (token-guarded); absent in tests that do not need them. */
  admin?: AdminDeps;
  /** Camera frames in (`/v1/classify/frames`): the pose workers and the clip limits; absent: no frames routes. */
  frames?: { pose: PoseInference; config: Pick<Config, "maxClipFrames" | "maxImageBytes" | "maxImagePixels"> };
}

/**
 * Build the HTTP app: middleware, the routes, the OpenAPI document at `/openapi.json`.
 *
 * @param deps the shared objects
 * @returns the Hono app (`app.fetch` serves it; `app.request` tests it)
 */
export function createApp(deps: AppDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  const threshold = () => deps.thresholdOverride ?? deps.switcher().threshold;
  app.use(requestId({ headerName: "X-Request-Id" }));
  const obs: ObservabilityDeps = deps.observability ?? {
    metrics: createServiceMetrics({
      pool: () => deps.inference.stats(),
      versions: () => ({ ...deps.inference.versions(), cloud: deps.manifest.cloud.version }),
      threshold,
      edgeLocation: "local",
    }),
    logger: createLogger({ level: "silent" }),
    adminToken: undefined,
    edgeLocation: "local",
  };
  app.use(observeRequests(obs));
  app.use(secureHeaders());
  // Before the body is read: a client over its rate costs no parsing.
  if (deps.rateLimit) app.use("/v1/*", rateLimit(deps.rateLimit));
  // Past saturation a request is shed before its body is read, so shedding costs the HTTP thread next to nothing.
  app.use("/v1/classify/*", async (c, next) => {
    const refused = c.req.method === "POST" ? deps.inference.overloaded?.() : null;
    if (refused) throw refused;
    await next();
  });
  app.use("/v1/*", async (c, next) => {
    if (c.req.method === "POST") {
      const type = c.req.header("content-type") ?? "";
      // Two exceptions: POST /v1/classify also takes the binary body (routes/binary_body.ts), and the frames route
      // takes multipart.
      const binary = c.req.path === "/v1/classify" && /^application\/octet-stream\b/i.test(type);
      const multipart = deps.frames && c.req.path === "/v1/classify/frames" && /^multipart\/form-data\b/i.test(type);
      if (!binary && !multipart && !/^application\/json\b/i.test(type)) {
        throw new AppError("UNSUPPORTED_MEDIA_TYPE", `Cannot read request: expected application/json, got "${type}"`);
      }
    }
    await next();
  });
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: deps.config.maxBodyBytes,
      onError: () => {
        throw new AppError(
          "PAYLOAD_TOO_LARGE",
          `Cannot read request: body exceeds the limit of ${deps.config.maxBodyBytes} bytes`,
        );
      },
    }),
  );
  // Before /v1/classify, whose body-shape check (routes/body_shape.ts, sized for keypoint sequences) would otherwise
  // also run on /v1/classify/frames: the frames routes answer first and check their own limits.
  if (deps.frames) {
    app.route(
      "/v1/classify/frames",
      framesRoutes({
        pose: deps.frames.pose,
        classifier: deps.classifier,
        edgeSpec: deps.manifest.edge,
        limits: {
          maxFrames: deps.frames.config.maxClipFrames,
          maxImageBytes: deps.frames.config.maxImageBytes,
          maxPixels: deps.frames.config.maxImagePixels,
        },
        maxBatchItems: deps.config.maxBatchItems,
        newId: deps.newId,
      }),
    );
  }
  app.route(
    "/v1/classify",
    classifyRoutes({
      classifier: deps.classifier,
      edgeSpec: deps.manifest.edge,
      maxFrames: deps.config.maxFrames,
      maxBatchItems: deps.config.maxBatchItems,
      newId: deps.newId,
    }),
  );
  app.route("/v1/decisions", decisionRoutes(deps.decisions));
  app.route(
    "/v1/models",
    modelRoutes({
      manifest: deps.manifest,
      versions: () => deps.inference.versions(),
      threshold,
      cloudUrl: deps.cloudUrl,
      switcher: deps.switcher,
    }),
  );
  app.route("/", healthRoutes(deps.health));
  if (obs.db) {
    app.route(
      "/v1/stats",
      statsRoutes({
        db: obs.db,
        adminToken: obs.adminToken,
        versions: () => ({ ...deps.inference.versions(), cloud: deps.manifest.cloud.version }),
        threshold,
        edgeLocation: obs.edgeLocation,
      }),
    );
  }
  app.route("/metrics", metricsRoutes({ metrics: obs.metrics, adminToken: obs.adminToken }));
  app.route("/", dashboardRoutes({ adminTokenSet: obs.adminToken !== undefined }));
  if (deps.admin) app.route("/admin", adminRoutes(deps.admin));
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    servers: [{ url: "http://127.0.0.1:8000", description: "The service on its defaults (HOST, PORT)" }],
    info: {
      title: "dmd-edge",
      version: "1",
      description: "Hybrid edge-cloud action classification: an edge model answers, a learned switcher offloads " +
        "the requests where the cloud model would disagree.",
    },
  });
  const allowed = methodsByPath(app);
  app.notFound((c) => {
    const allow = allowed(c.req.path);
    if (allow.length > 0) {
      c.header("Allow", allow.join(", "));
      return c.json({
        code: "METHOD_NOT_ALLOWED",
        message: `Cannot ${c.req.method} ${c.req.path}: it answers ${allow.join(", ")}`,
      }, 405);
    }
    // The camera-frames routes exist only with pose workers: say so, and where keypoints go instead.
    if (!deps.frames && /^\/v1\/classify\/frames(\/batch)?\/?$/.test(c.req.path)) {
      return c.json({
        code: "NOT_FOUND",
        message: `Cannot classify camera frames: this service runs no pose workers (POSE_WORKERS=0, or no pose model ` +
          `in POSE_MODEL_DIR); send keypoints to POST /v1/classify`,
      }, 404);
    }
    return c.json({ code: "NOT_FOUND", message: `Cannot find ${c.req.method} ${c.req.path}` }, 404);
  });
  app.onError(onError);
  return app;
}

/**
 * The methods each route of the app answers, for 405 answers: a path that matches a route under another method.
 *
 * @param app the app, with every route mounted
 * @returns the methods (GET implies HEAD) that some route answers at a path, sorted; empty when no route matches
 */
function methodsByPath(app: OpenAPIHono): (path: string) => string[] {
  const routes = app.routes
    .filter((r) => r.method !== "ALL" && !r.path.includes("*"))
    .map((r) => ({
      method: r.method,
      pattern: new RegExp(
        `^${r.path.replace(/\/$/, "").replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/:[^/]+/g, "[^/]+")}/?$`,
      ),
    }));
  return (path) => {
    const methods = new Set(routes.filter((r) => r.pattern.test(path)).map((r) => r.method));
    if (methods.has("GET")) methods.add("HEAD");
    return [...methods].sort();
  };
}

/** A running service. */
export interface Service {
  url: string;
  /** Stop accepting, drain, flush the log, stop workers and the reference server (the one teardown). */
  shutdown(): Promise<void>;
}

/** The database and the decision log (with its outbox, which replays what an earlier process left there). */
async function openDecisionStore(
  config: Readonly<Config>,
  life: Lifecycle,
): Promise<{ database: Database; log: DecisionLog }> {
  const logger = createLogger({ level: config.logLevel });
  const database = await openDatabase(config.databaseUrl, {
    authToken: config.databaseAuthToken,
    busyTimeoutMs: config.databaseBusyTimeoutMs,
    // A SIGBUS inside SQLite ends the database process, never this one (db/hosted_client.ts); the next call starts
    // a new one.
    process: config.databaseProcess
      ? { onExit: (reason) => logger.error("database process ended", { reason }) }
      : undefined,
  });
  life.defer("the database", () => database.close());
  const outbox = config.logOutboxDir ? await openOutbox(config.logOutboxDir) : undefined;
  if (outbox) life.defer("the outbox", () => outbox.close());
  // Decisions are written on a connection of their own, replaced after any failure (db/decision_writer.ts), on a
  // thread of their own (db/decision_writer_thread.ts): the driver's synchronous calls never stall requests.
  const writer = /^(:memory:|file::memory:)/.test(config.databaseUrl) ? undefined : createThreadedDecisionWriter({
    url: config.databaseUrl,
    authToken: config.databaseAuthToken,
    busyTimeoutMs: config.databaseBusyTimeoutMs,
    process: config.databaseProcess,
    // Through the leveled logger, so that LOG_LEVEL applies (ready and closed are info; gone is an error).
    onStateChange: (from, to, reason) =>
      logger[to === "ready" || to === "closed" ? "info" : to === "gone" ? "error" : "warn"]("decision writer", {
        from,
        to,
        reason,
      }),
  });
  if (writer) life.defer("the decision writer", () => writer.close());
  // Start the writer thread now, not on the first request.
  await writer?.check();
  const log = createDecisionLog(database.db, {
    batchSize: config.logBatchSize,
    flushIntervalMs: config.logFlushMs,
    outbox,
    durable: config.logDurable,
    writer,
  });
  // Everything to the database, or to the outbox (replayed at the next start), within the bound.
  life.defer("the decision log", () => log.close({ timeoutMs: config.shutdownTimeoutMs }));
  return { database, log };
}

/**
 * Follow the release registry: the release the workers started with (the manifest's) seeds it on a fresh database,
 * and a release activated later (by a job or a rollback) is loaded into every worker without a restart.
 */
async function followReleases(
  config: Readonly<Config>,
  parts: { db: Db; pool: EdgeInference; init: EngineInit; manifest: Manifest },
  life: Lifecycle,
): Promise<ReleaseFollower> {
  await seedRegistry(parts.db, parts.init.switcher).catch((err) =>
    console.error(JSON.stringify({ level: "warn", msg: "cannot seed the release registry", error: err.message }))
  );
  const follower = createReleaseFollower({
    db: parts.db,
    inference: parts.pool,
    initial: parts.init.switcher,
    edge: { version: parts.manifest.edge.version, features: featureNames(parts.manifest.edge.embeddingSize ?? 0) },
    intervalMs: config.switcherPollMs,
  });
  life.defer("the release follower", () => follower.stop());
  await follower.check();
  return follower;
}

/**
 * The classifier: offloads (and shadow calls) through the circuit breaker, whose open state is an input of each
 * decision; the offload and shadow budgets.
 */
function createClassifier(
  config: Readonly<Config>,
  parts: {
    pool: EdgeInference;
    cloud: OipClient;
    log: DecisionLog;
    manifest: Manifest;
    metrics: ServiceMetrics;
    cascade?: Cascade;
  },
  life: Lifecycle,
): HybridClassifier {
  const breaker = createCircuitBreaker({
    failureThreshold: config.cloudBreakerFailures,
    failureRatio: config.cloudBreakerFailureRatio,
    windowSize: config.cloudBreakerWindow,
    openMs: config.cloudBreakerOpenMs,
    maxOpenMs: config.cloudBreakerMaxOpenMs,
    onStateChange: (from, to) =>
      console.log(JSON.stringify({ level: to === "open" ? "warn" : "info", msg: "cloud circuit", from, to })),
  });
  const budget = createOffloadBudget({ ratePerS: config.offloadBudgetPerS });
  const shadowBudget = createOffloadBudget({ ratePerS: config.shadowBudgetPerS });
  const tierMetrics = parts.cascade ? createTierMetrics(parts.metrics.registry) : null;
  const sink = observeSink(parts.log, parts.metrics);
  const classifier = createHybridClassifier({
    inference: parts.pool,
    cloud: withCircuitBreaker(parts.cloud, breaker),
    log: tierMetrics
      ? {
        append(record) {
          const out = sink.append(record);
          tierMetrics.observe(record);
          return out;
        },
      }
      : sink,
    cascade: parts.cascade,
    edgeSpec: parts.manifest.edge,
    cloudSpec: parts.manifest.cloud,
    thresholdOverride: config.switcherThreshold,
    cloudTimeoutMs: config.cloudTimeoutMs,
    takeOffloadToken: () => budget.take(performance.now()),
    cloudDown: cloudDownWhenOpen(breaker),
    edgeLocation: config.edgeLocation,
    newId: uuidv7,
    exploration: {
      rate: config.explorationRate,
      hasToken: () => shadowBudget.available(performance.now()),
      takeToken: () => shadowBudget.take(performance.now()),
    },
  });
  life.defer("shadow calls", () => classifier.drain());
  return classifier;
}

/**
 * Start the whole edge service from a configuration. Every part registers its teardown as it starts, so a failed
 * start and a shutdown run the same steps.
 *
 * @param config the resolved configuration
 * @returns the running service
 */
export async function startService(config: Readonly<Config>): Promise<Service> {
  const life = createLifecycle();
  try {
    const { manifest, init } = await loadModelSet(config.modelsDir, { warmupRuns: config.warmupRuns });
    const { database, log } = await openDecisionStore(config, life);
    const child = config.cloudUrl
      ? null
      : await startChildCloud(config, new URL(`./cloud/reference_server.${MODULE_EXT}`, import.meta.url));
    if (child) life.defer("the reference cloud server", () => child.stop());
    // WORKERS=0: the edge model runs on the HTTP thread (workers/in_process.ts, loaded only then).
    const pool = config.workers === 0
      ? await (await import("./workers/in_process.ts")).createInProcessInference(init, {
        queueMax: config.queueMax,
        maxQueueWaitMs: config.queueMaxWaitMs,
        batchMax: config.inferenceBatchMax,
      })
      : await createWorkerPool(init, {
        size: config.workers,
        queueMax: config.queueMax,
        maxQueueWaitMs: config.queueMaxWaitMs,
        batchMax: config.inferenceBatchMax,
        batchWaitMs: config.inferenceBatchWaitMs,
        depth: config.inferencePipelineDepth,
        taskTimeoutMs: config.workerTaskTimeoutMs,
        workerUrl: new URL(`./workers/inference_worker.${MODULE_EXT}`, import.meta.url),
      });
    life.defer("the workers", () => pool.close());
    const pose = await startPosePool(config, life);
    const follower = await followReleases(config, { db: database.db, pool, init, manifest }, life);
    const cloudUrl = config.cloudUrl ?? child!.url;
    const cloud = createOipClient({
      baseUrl: cloudUrl,
      modelName: config.cloudModelName,
      timeoutMs: config.cloudTimeoutMs,
      auth: config.cloudAuth,
      // The cloud model returns [N, classes]: a reply is never read past what that can take.
      outputSize: manifest.cloud.labels.length,
    });
    // Slow and idle clients (serve/conn_guard.ts); HEADER_TIMEOUT_MS=0: the server listens on the port itself.
    const guard = config.headerTimeoutMs > 0
      ? createConnGuard({
        hostname: config.host,
        port: config.port,
        headerTimeoutMs: config.headerTimeoutMs,
        keepAliveIdleMs: config.keepAliveIdleMs,
        maxConnections: config.maxConnections,
      })
      : null;
    const observability: ObservabilityDeps = {
      metrics: createServiceMetrics({
        pool: () => pool.stats(),
        log: () => log.stats(),
        connections: guard ? () => guard.stats() : undefined,
        versions: () => ({ ...pool.versions(), cloud: manifest.cloud.version }),
        threshold: () => config.switcherThreshold ?? follower.current().threshold,
        edgeLocation: config.edgeLocation,
        pose: pose ? () => pose.stats() : undefined,
      }),
      logger: createLogger({ level: config.logLevel }),
      adminToken: config.adminToken,
      db: database.db,
      edgeLocation: config.edgeLocation,
    };
    const cascade = await startCascade(config, { db: database.db, manifest }, life);
    const classifier = createClassifier(
      config,
      { pool, cloud, log, manifest, metrics: observability.metrics, cascade },
      life,
    );
    const app = createApp({
      config,
      manifest,
      classifier: config.logDurable ? answerWhenLogged(classifier, log) : classifier,
      inference: pool,
      switcher: () => follower.current(),
      thresholdOverride: config.switcherThreshold,
      cloudUrl,
      decisions: { getDecision: (id) => log.get(id), adminToken: config.adminToken },
      health: await healthChecks({
        database,
        log,
        pool,
        pose,
        cloud,
        coldCloud: child !== null,
        maxLagMs: config.logReadyMaxLagMs,
      }),
      newId: uuidv7,
      observability,
      rateLimit: config.rateLimitPerS > 0
        ? { ratePerS: config.rateLimitPerS, burst: config.rateLimitBurst, key: config.rateLimitKey }
        : undefined,
      admin: { adminToken: config.adminToken, db: database.db, follower, modelsDir: config.modelsDir },
      frames: pose ? { pose, config } : undefined,
    });
    const url = await listen(config, app, life, guard);
    // Freed heap memory back to the system once start-up settles, then every MEMORY_TRIM_MS (serve/memory_trim.ts).
    const trimmer = startMemoryTrim({ intervalMs: config.memoryTrimMs, logger: observability.logger });
    life.defer("the memory trimmer", () => trimmer.stop());
    return { url, shutdown: () => life.close() };
  } catch (err) {
    await life.close().catch(() => {});
    throw err;
  }
}

/**
 * The climb past the first cloud tier, when more than two tiers are configured (`TIERS`): each later tier's client,
 * breaker and budget, and the switchers of hops 1 and up followed in the registry. Undefined for two tiers.
 */
async function startCascade(
  config: Readonly<Config>,
  parts: { db: Db; manifest: Manifest },
  life: Lifecycle,
): Promise<Cascade | undefined> {
  const tiers = config.tiers;
  if (!tiers || tiers.length <= 2) return undefined;
  const logger = createLogger({ level: config.logLevel });
  const models = tiers.slice(2).map((tier) =>
    createTierModel(tier as Exclude<typeof tier, { kind: "edge" }>, {
      cloudSpec: parts.manifest.cloud,
      onCircuit: (name, from, to) => logger[to === "open" ? "warn" : "info"]("tier circuit", { tier: name, from, to }),
    })
  );
  const hops = await followHopSwitchers(parts.db, {
    hops: tiers.length - 2,
    intervalMs: config.switcherPollMs,
    warn: (message, fields) => logger.warn(message, fields),
  });
  life.defer("the hop switchers", () => hops.stop());
  return createCascade({
    first: tiers[1] as Exclude<(typeof tiers)[1], { kind: "edge" }>,
    models,
    // A tier's `threshold` replaces the release's of the hop leading to it (as SWITCHER_THRESHOLD does for hop 0).
    switcher: (hop) => {
      const threshold = models[hop - 1].tier.threshold;
      return threshold === null ? hops.current(hop) : { ...hops.current(hop), threshold };
    },
    labels: parts.manifest.cloud.labels,
  });
}

/** The pose workers of the frames routes: none when `POSE_WORKERS` is 0 or the pose model folder has no model. */
async function startPosePool(config: Readonly<Config>, life: Lifecycle): Promise<PoseInference | null> {
  if (config.poseWorkers === 0) return null;
  const dir = new URL(`${config.poseModelDir.replace(/\/*$/, "/")}`, `file://${Deno.cwd()}/`);
  try {
    await Deno.stat(new URL("manifest.json", dir));
  } catch {
    createLogger({ level: config.logLevel }).warn("no pose model; the camera-frames routes are off", {
      poseModelDir: config.poseModelDir,
    });
    return null;
  }
  const pose = await createPosePool((await readPoseModel(dir)).bytes, {
    size: config.poseWorkers,
    queueMax: config.poseQueueMax,
    clipTimeoutMs: config.poseTimeoutMs,
    workerUrl: new URL(`./workers/pose_worker.${MODULE_EXT}`, import.meta.url),
  });
  life.defer("the pose workers", () => pose.close());
  return pose;
}

/**
 * Readiness: models warm, database reachable, decisions reaching it within `maxLagMs`, decision backlog; the cloud
 * probed at most once a second.
 */
async function healthChecks(
  parts: {
    database: Database;
    log: DecisionLog;
    pool: EdgeInference;
    /** The pose workers, when the frames routes are on. */
    pose: PoseInference | null;
    cloud: OipClient;
    coldCloud: boolean;
    maxLagMs: number;
  },
): Promise<HealthDeps> {
  // The first probe waits longer: a reference server just started answers its first request slowly, and readiness
  // should report what the service can do, not how cold the connection was.
  let cloudSeen = {
    at: performance.now(),
    ok: await parts.cloud.ready({ timeoutMs: parts.coldCloud ? 10_000 : 1000 }).catch(() => false),
  };
  return {
    modelsReady: () => parts.pool.stats().size > 0,
    poseReady: parts.pose ? () => parts.pose!.ready() : undefined,
    database: () => parts.database.ping(),
    async cloud() {
      if (performance.now() - cloudSeen.at > 1000) {
        cloudSeen = { at: performance.now(), ok: await parts.cloud.ready({ timeoutMs: 500 }).catch(() => false) };
      }
      return cloudSeen.ok;
    },
    logBacklog: () => parts.log.backlog(),
    writeHealth: () => parts.log.health(parts.maxLagMs),
  };
}

/**
 * Listen (behind the connection guard when there is one); at shutdown, answer new requests 503 (routes/drain.ts) while those in flight finish, then stop accepting,
 * giving requests in flight up to `shutdownTimeoutMs` in all.
 */
async function listen(
  config: Readonly<Config>,
  app: OpenAPIHono,
  life: Lifecycle,
  guard: ConnGuard | null,
): Promise<string> {
  const drain = createDrain();
  const handler = drain.wrap((req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => app.fetch(req, info));
  let server: GuardedServer;
  try {
    server = guard
      ? await guard.serve(handler)
      : Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, handler);
  } catch (err) {
    throw new AppError("INTERNAL", `Cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  life.defer("the HTTP server", async () => {
    // New requests (kept-alive connections included) are answered 503 with `Connection: close` while those in
    // flight finish, for at least shutdownDrainMs; then the server stops accepting. Requests still in flight past
    // shutdownTimeoutMs in all are cut at exit.
    const drainStarted = performance.now();
    drain.start();
    await within(Promise.all([drain.idle(), sleep(config.shutdownDrainMs)]), config.shutdownTimeoutMs);
    const left = config.shutdownTimeoutMs - (performance.now() - drainStarted);
    if (!(await within(server.shutdown(), left))) {
      console.error(JSON.stringify({ level: "warn", msg: "requests still in flight at the shutdown deadline" }));
    }
  });
  return `http://${config.host}:${server.addr.port}`;
}

if (import.meta.main) {
  parseFlags(
    {},
    "usage: deno task start   (or, from a build: cd dist && deno run -A main.js)\n" +
      "The edge service, configured by the environment (config.ts; .env.example lists every variable and default):\n" +
      "PORT (8000), HOST (127.0.0.1), MODELS_DIR (wasm-models), DATABASE_URL (file:data/decisions.db),\n" +
      "CLOUD_URL (unset: a reference cloud server is started on loopback), ADMIN_TOKEN (opens /admin and /v1/stats).",
  );
  let service: Service;
  try {
    service = await startService(loadConfig());
  } catch (err) {
    // A bad setting, missing models, an unusable database or a busy port: say which, and exit non-zero.
    console.error(JSON.stringify({ level: "error", msg: "cannot start dmd-edge", error: (err as Error).message }));
    Deno.exit(1);
  }
  let stopping = false;
  const stop = async () => {
    // A second signal while draining: the operator wants out now.
    if (stopping) Deno.exit(1);
    stopping = true;
    flushLogsSync();
    console.log(JSON.stringify({ level: "info", msg: "shutting down" }));
    try {
      await service.shutdown();
    } catch (err) {
      console.error(JSON.stringify({ level: "error", msg: "shutdown incomplete", error: (err as Error).message }));
      Deno.exit(1);
    }
    flushLogsSync();
    console.log(JSON.stringify({ level: "info", msg: "stopped" }));
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  // Announced once a signal drains the service: whoever waits for this line may stop it at once.
  flushLogsSync();
  console.log(JSON.stringify({ level: "info", msg: "dmd-edge listening", url: service.url }));
  console.log(`dmd-edge listening on ${service.url}  (try: curl ${service.url}/v1/models)`);
}
