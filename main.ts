/**
 * dmd-edge: the edge app. Wires config -> models -> database -> cloud client -> worker pool -> classifier ->
 * routes, and exports {@link createApp} for tests and {@link startService} for `deno task start`.
 *
 * Lifecycle: load models and warm the workers -> open the database (migrations) -> reach the cloud (or start the
 * reference server on loopback) -> listen -> on SIGINT/SIGTERM: stop accepting, drain requests in flight, flush
 * the decision log, stop the workers and the reference server, exit 0.
 *
 * @module
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { createCircuitBreaker, withCircuitBreaker } from "./cloud/circuit_breaker.ts";
import { createOipClient } from "./cloud/oip_client.ts";
import { type Config, loadConfig } from "./config.ts";
import { openDatabase } from "./db/client.ts";
import { createDecisionLog } from "./db/decision_log.ts";
import { uuidv7 } from "./db/ids.ts";
import { openOutbox, type Outbox } from "./db/outbox.ts";
import { AppError, onError } from "./errors.ts";
import { createHybridClassifier, type HybridClassifier } from "./hybrid/classifier.ts";
import { createSwitcherSync, registerSwitcher } from "./hybrid/switcher_sync.ts";
import { type AdminDeps, adminRoutes } from "./routes/admin.ts";
import { classifyRoutes } from "./routes/classify.ts";
import { decisionRoutes, type DecisionsDeps } from "./routes/decisions.ts";
import { type HealthDeps, healthRoutes } from "./routes/health.ts";
import { modelRoutes } from "./routes/models.ts";
import type { Db } from "./db/client.ts";
import { observeRequests } from "./observability/http.ts";
import { createLogger, type Logger } from "./observability/logger.ts";
import { createServiceMetrics, observeSink, type ServiceMetrics } from "./observability/metrics.ts";
import { dashboardRoutes } from "./routes/dashboard.ts";
import { metricsRoutes } from "./routes/metrics.ts";
import { statsRoutes } from "./routes/stats.ts";
import { rateLimit, type RateLimitOptions } from "./routes/rate_limit.ts";
import { createOffloadBudget } from "./switcher/decide.ts";
import { featureNames } from "./switcher/features.ts";
import type { Manifest, SwitcherSpec } from "./wasm-models/manifest.ts";
import { loadModelSet } from "./workers/artefacts.ts";
import { createWorkerPool, type EdgeInference } from "./workers/pool.ts";

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
  inference: Pick<EdgeInference, "versions" | "stats">;
  threshold: () => number;
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
  /** The switcher serving now, when it may change at run time. */
  switcher?: () => SwitcherSpec | null;
}

/**
 * Build the HTTP app: middleware, the routes, the OpenAPI document at `/openapi.json`.
 *
 * @param deps the shared objects
 * @returns the Hono app (`app.fetch` serves it; `app.request` tests it)
 */
export function createApp(deps: AppDeps): OpenAPIHono {
  const app = new OpenAPIHono();
  app.use(requestId({ headerName: "X-Request-Id" }));
  const obs: ObservabilityDeps = deps.observability ?? {
    metrics: createServiceMetrics({
      pool: () => deps.inference.stats(),
      versions: () => ({ ...deps.inference.versions(), cloud: deps.manifest.cloud.version }),
      threshold: deps.threshold,
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
  app.use("/v1/*", async (c, next) => {
    if (c.req.method === "POST") {
      const type = c.req.header("content-type") ?? "";
      if (!/^application\/json\b/i.test(type)) {
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
      threshold: deps.threshold,
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
        threshold: deps.threshold,
        edgeLocation: obs.edgeLocation,
      }),
    );
  }
  app.route("/metrics", metricsRoutes({ metrics: obs.metrics, adminToken: obs.adminToken }));
  app.route("/", dashboardRoutes({ adminTokenSet: obs.adminToken !== undefined }));
  if (deps.admin) app.route("/admin", adminRoutes(deps.admin));
  app.doc31("/openapi.json", {
    openapi: "3.1.0",
    info: {
      title: "dmd-edge",
      version: "1",
      description: "Hybrid edge-cloud action classification: an edge model answers, a learned switcher offloads " +
        "the requests where the cloud model would disagree.",
    },
  });
  app.notFound((c) => c.json({ code: "NOT_FOUND", message: `Cannot find ${c.req.method} ${c.req.path}` }, 404));
  app.onError(onError);
  return app;
}

/** Wait for `work` at most `ms` milliseconds; true when it finished in time. */
async function within(work: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      work.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A running reference cloud server, started as a child process on loopback. */
interface ChildCloud {
  url: string;
  stop(): Promise<void>;
}

async function startChildCloud(config: Config): Promise<ChildCloud> {
  const entry = new URL(`./cloud/reference_server.${MODULE_EXT}`, import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--allow-read", "--allow-net=127.0.0.1", "--allow-env", "--allow-ffi", "--allow-sys", entry.href],
    env: { CLOUD_SERVER_HOST: "127.0.0.1", CLOUD_SERVER_PORT: "0", MODELS_DIR: config.modelsDir },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buffered = "";
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const { value, done } = await reader.read();
    if (done) break;
    buffered += value;
    const line = buffered.split("\n").find((l) => l.includes('"url"'));
    if (line) {
      const { url } = JSON.parse(line) as { url: string };
      // Keep forwarding the server's log lines.
      (async () => {
        for (;;) {
          const next = await reader.read().catch(() => ({ done: true, value: "" }));
          if (next.done) return;
          Deno.stdout.writeSync(new TextEncoder().encode(next.value));
        }
      })();
      return {
        url,
        async stop() {
          try {
            child.kill("SIGTERM");
          } catch {
            // already gone
          }
          await child.status;
        },
      };
    }
  }
  child.kill("SIGKILL");
  throw new AppError("INTERNAL", "Cannot start the reference cloud server: it printed no URL");
}

/** A running service. */
export interface Service {
  url: string;
  /** Stop accepting, drain, flush the log, stop workers and the reference server. */
  shutdown(): Promise<void>;
}

/**
 * Start the whole edge service from a configuration.
 *
 * @param config the resolved configuration
 * @returns the running service
 */
export async function startService(config: Readonly<Config>): Promise<Service> {
  const { manifest, init } = await loadModelSet(config.modelsDir, { warmupRuns: config.warmupRuns });
  const database = await openDatabase(config.databaseUrl, {
    authToken: config.databaseAuthToken,
    busyTimeoutMs: config.databaseBusyTimeoutMs,
  });
  // Decisions the database cannot take go to the outbox, and rows an earlier process left there are replayed.
  let outbox: Outbox | undefined;
  try {
    outbox = config.logOutboxDir ? await openOutbox(config.logOutboxDir) : undefined;
  } catch (err) {
    database.close();
    throw err;
  }
  const log = createDecisionLog(database.db, {
    batchSize: config.logBatchSize,
    flushIntervalMs: config.logFlushMs,
    outbox,
    durable: config.logDurable,
  });
  let child: ChildCloud | null = null;
  let pool: EdgeInference;
  try {
    child = config.cloudUrl ? null : await startChildCloud(config);
    pool = await createWorkerPool(init, {
      size: config.workers,
      queueMax: config.queueMax,
      taskTimeoutMs: config.workerTaskTimeoutMs,
      workerUrl: new URL(`./workers/inference_worker.${MODULE_EXT}`, import.meta.url),
    });
  } catch (err) {
    // Release what was opened before the failure, so a failed start leaves no process or handle behind.
    await child?.stop();
    await log.close().catch(() => {});
    await outbox?.close();
    database.close();
    throw err;
  }
  const cloudUrl = config.cloudUrl ?? child!.url;
  const cloud = createOipClient({
    baseUrl: cloudUrl,
    modelName: config.cloudModelName,
    timeoutMs: config.cloudTimeoutMs,
  });
  // Offloads (and shadow calls) go through the circuit breaker; readiness probes use the bare client.
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
  // Follow the active switcher in the database: the manifest's starts the version history on a fresh database, and
  // a version promoted by the retraining job (or a rollback) is loaded into every worker without a restart.
  const edgeFeatures = featureNames(manifest.edge.embeddingSize ?? 0);
  if (init.switcher) {
    await registerSwitcher(database.db, init.switcher).catch((err) =>
      console.error(JSON.stringify({ level: "warn", msg: "cannot record the manifest's switcher", error: err.message }))
    );
  }
  const sync = createSwitcherSync({
    db: database.db,
    inference: pool,
    initial: init.switcher,
    edge: { version: manifest.edge.version, features: edgeFeatures },
    intervalMs: config.switcherPollMs,
  });
  await sync.check();
  const threshold = () => config.switcherThreshold ?? sync.current()?.threshold ?? 0.5;
  const shadowBudget = createOffloadBudget({ ratePerS: config.shadowBudgetPerS });

  const observability: ObservabilityDeps = {
    metrics: createServiceMetrics({
      pool: () => pool.stats(),
      log: () => log.stats(),
      versions: () => ({ ...pool.versions(), cloud: manifest.cloud.version }),
      threshold: () => threshold(),
      edgeLocation: config.edgeLocation,
    }),
    logger: createLogger({ level: config.logLevel }),
    adminToken: config.adminToken,
    db: database.db,
    edgeLocation: config.edgeLocation,
  };

  const classifier = createHybridClassifier({
    inference: pool,
    cloud: withCircuitBreaker(cloud, breaker),
    log: observeSink(log, observability.metrics),
    edgeSpec: manifest.edge,
    cloudSpec: manifest.cloud,
    threshold,
    cloudTimeoutMs: config.cloudTimeoutMs,
    takeOffloadToken: () => budget.take(performance.now()),
    edgeLocation: config.edgeLocation,
    newId: uuidv7,
    exploration: { rate: config.explorationRate, takeToken: () => shadowBudget.take(performance.now()) },
  });

  // Durable mode: a request is answered only once its decisions are committed or fsynced (db/decision_log.ts).
  const answering: HybridClassifier = config.logDurable
    ? {
      ...classifier,
      async classify(items, options) {
        const answers = await classifier.classify(items, options);
        await log.whenLogged(answers.map((a) => a.decisionId));
        return answers;
      },
    }
    : classifier;

  // The first probe waits longer: a reference server just started answers its first request slowly, and readiness
  // should report what the service can do, not how cold the connection was.
  let cloudSeen = {
    at: performance.now(),
    ok: await cloud.ready({ timeoutMs: child ? 10_000 : 1000 }).catch(() => false),
  };
  const app = createApp({
    config,
    manifest,
    classifier: answering,
    inference: pool,
    threshold,
    cloudUrl,
    decisions: { getDecision: (id) => log.get(id) },
    health: {
      modelsReady: () => pool.stats().size > 0,
      database: () => database.ping(),
      async cloud() {
        // Probed at most once a second, so readiness checks never load the cloud.
        if (performance.now() - cloudSeen.at > 1000) {
          cloudSeen = { at: performance.now(), ok: await cloud.ready({ timeoutMs: 500 }).catch(() => false) };
        }
        return cloudSeen.ok;
      },
      logBacklog: () => log.backlog(),
    },
    newId: uuidv7,
    observability,
    rateLimit: config.rateLimitPerS > 0
      ? { ratePerS: config.rateLimitPerS, burst: config.rateLimitBurst, key: config.rateLimitKey }
      : undefined,
    admin: { adminToken: config.adminToken, db: database.db, sync },
    switcher: () => sync.current(),
  });

  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve({ hostname: config.host, port: config.port, onListen: () => {} }, app.fetch);
  } catch (err) {
    await pool.close();
    await child?.stop();
    await log.close().catch(() => {});
    await outbox?.close();
    database.close();
    throw new AppError("INTERNAL", `Cannot listen on ${config.host}:${config.port}: ${(err as Error).message}`, {
      cause: err,
    });
  }
  const url = `http://${config.host}:${server.addr.port}`;
  let stopping: Promise<void> | null = null;
  return {
    url,
    shutdown() {
      stopping ??= (async () => {
        // Stop accepting; requests in flight get up to shutdownTimeoutMs, and are cut at exit after that.
        if (!(await within(server.shutdown(), config.shutdownTimeoutMs))) {
          console.error(JSON.stringify({ level: "warn", msg: "requests still in flight at the shutdown deadline" }));
        }
        sync.stop();
        await classifier.drain();
        // Everything to the database, or to the outbox (replayed at the next start), within the bound.
        let logError: unknown = null;
        await log.close({ timeoutMs: config.shutdownTimeoutMs }).catch((err) => (logError = err));
        await outbox?.close();
        await pool.close();
        await child?.stop();
        database.close();
        if (logError) throw logError;
      })();
      return stopping;
    },
  };
}

if (import.meta.main) {
  let service: Service;
  try {
    service = await startService(loadConfig());
  } catch (err) {
    // A bad setting, missing models, an unusable database or a busy port: say which, and exit non-zero.
    console.error(JSON.stringify({ level: "error", msg: "cannot start dmd-edge", error: (err as Error).message }));
    Deno.exit(1);
  }
  console.log(JSON.stringify({ level: "info", msg: "dmd-edge listening", url: service.url }));
  console.log(`dmd-edge listening on ${service.url}  (try: curl ${service.url}/v1/models)`);
  let stopping = false;
  const stop = async () => {
    // A second signal while draining: the operator wants out now.
    if (stopping) Deno.exit(1);
    stopping = true;
    console.log(JSON.stringify({ level: "info", msg: "shutting down" }));
    try {
      await service.shutdown();
    } catch (err) {
      console.error(JSON.stringify({ level: "error", msg: "shutdown incomplete", error: (err as Error).message }));
      Deno.exit(1);
    }
    console.log(JSON.stringify({ level: "info", msg: "stopped" }));
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
}
