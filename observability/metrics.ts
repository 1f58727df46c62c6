/**
 * Prometheus metrics of one edge app, with `prom-client` (one registry per app, no global default registry):
 * HTTP requests by route and status with a latency histogram, decisions by route and reason with per-stage
 * latency histograms, cloud errors, the inference queue and worker pool, the decision log's backlog and write
 * counters, and the versions in service as an info gauge.
 *
 * Gauges and counters that mirror state kept elsewhere (pool, decision log, versions) are read when Prometheus
 * scrapes (`collect`), so they cost nothing between scrapes.
 *
 * prom-client's `collectDefaultMetrics()` is not used: under Deno its event-loop-lag gauges read NaN and 9.2e9
 * (Deno's `perf_hooks.monitorEventLoopDelay` is a stub), so the process gauges here come from `Deno.memoryUsage()`.
 *
 * @module
 */
import { Counter, Gauge, Histogram, Registry } from "prom-client";
import type { DecisionLogStats } from "../db/decision_log.ts";
import type { WriterState } from "../db/decision_writer.ts";

const WRITER_STATES: readonly WriterState[] = ["disconnected", "ready", "failing", "gone", "closed"];
import type { DecisionRecord } from "../db/schema.ts";
import type { PoolStats } from "../workers/pool.ts";
import type { PosePoolStats } from "../workers/pose_protocol.ts";
import { registerPoseMetrics } from "./pose_metrics.ts";
import type { ConnGuardStats } from "../serve/conn_guard.ts";

/** The versions in service. */
export interface ServiceVersions {
  edge: string;
  switcher: string;
  cloud: string;
}

/** Where the scraped state comes from. */
export interface MetricsSources {
  /** The worker pool's state. */
  pool(): PoolStats;
  /** The decision log's counters (`outbox` and `spilled` when it has an outbox); absent when there is no log. */
  log?: () =>
    & Pick<DecisionLogStats, "written" | "failedWrites" | "rejected" | "backlog">
    & Partial<Pick<DecisionLogStats, "outbox" | "spilled" | "oldestUnwrittenMs" | "writer" | "lastWriteAt">>;
  /** The connection guard's counts (serve/conn_guard.ts); absent when the guard is off. */
  connections?: () => ConnGuardStats;
  /** The versions in service. */
  versions(): ServiceVersions;
  /** The switcher threshold in force. */
  threshold(): number;
  /** This app's edge location. */
  edgeLocation: string;
  /** The pose pool's state (camera frames); absent when the frames routes are off. */
  pose?: () => PosePoolStats;
}

/** The app's metrics. */
export interface ServiceMetrics {
  /** The registry `GET /metrics` renders. */
  readonly registry: Registry;
  /**
   * Count one finished HTTP request.
   *
   * @param labels method, route pattern (`/v1/decisions/:id`, `unmatched`) and status
   * @param seconds time from the request to the response
   */
  observeRequest(labels: { method: string; route: string; status: number }, seconds: number): void;
  /**
   * Count one logged decision: its route and reason, its stage timings, its cloud error.
   *
   * @param record the decision row
   */
  observeDecision(record: DecisionRecord): void;
  /**
   * The Prometheus text exposition.
   *
   * @returns the content type and the body
   */
  render(): Promise<{ contentType: string; body: string }>;
}

/** Request latency buckets, in seconds: 0.5 ms to 10 s. */
const HTTP_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Decision stage buckets, in seconds. */
const STAGE_BUCKETS = [0.0001, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

/**
 * A counter that mirrors a cumulative count kept elsewhere, read at scrape time.
 *
 * @param registry where it is registered
 * @param name the metric name
 * @param help its help text
 * @param read the current count (undefined: not exposed)
 */
export function mirroredCounter(registry: Registry, name: string, help: string, read: () => number | undefined): void {
  new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const v = read();
      this.reset();
      if (v !== undefined && Number.isFinite(v)) this.inc(v);
    },
  });
}

/**
 * Create the app's metrics.
 *
 * @param sources where the scraped state comes from
 * @returns the metrics
 * @example
 * const metrics = createServiceMetrics({ pool: () => pool.stats(), log: () => log.stats(), versions, threshold,
 *   edgeLocation: "local" });
 * const { contentType, body } = await metrics.render();
 */
export function createServiceMetrics(sources: MetricsSources): ServiceMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ edge_location: sources.edgeLocation });

  const requests = new Counter({
    name: "http_requests_total",
    help: "HTTP requests by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    registers: [registry],
  });
  const requestSeconds = new Histogram({
    name: "http_request_duration_seconds",
    help: "HTTP request latency, from the request to the response, by method, route pattern and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: HTTP_BUCKETS,
    registers: [registry],
  });
  const decisions = new Counter({
    name: "dmd_decisions_total",
    help: "Decisions logged, by route (edge, cloud, edge_fallback) and route reason",
    labelNames: ["route", "reason"] as const,
    registers: [registry],
  });
  const shadows = new Counter({
    name: "dmd_shadow_decisions_total",
    help: "Kept decisions also sent to the cloud in the background (exploration)",
    registers: [registry],
  });
  const stageSeconds = new Histogram({
    name: "dmd_decision_stage_seconds",
    help: "Decision latency per stage: queue (waiting for a worker), edge (pre-processing, edge model, switcher), " +
      "cloud (the offload call), total",
    labelNames: ["stage"] as const,
    buckets: STAGE_BUCKETS,
    registers: [registry],
  });
  const cloudErrors = new Counter({
    name: "dmd_cloud_errors_total",
    help: "Failed cloud calls (offloads and shadows), by error code",
    labelNames: ["code"] as const,
    registers: [registry],
  });

  new Gauge({
    name: "dmd_inference_queue_depth",
    help: "Edge inference calls waiting for a worker",
    registers: [registry],
    collect() {
      this.set(sources.pool().queued);
    },
  });
  new Gauge({
    name: "dmd_inference_queue_max",
    help: "Waiting calls past which requests are shed with 503",
    registers: [registry],
    collect() {
      const max = sources.pool().queueMax;
      this.set(Number.isFinite(max) ? max : -1);
    },
  });
  new Gauge({
    name: "dmd_workers",
    help: "Inference workers by state",
    labelNames: ["state"] as const,
    registers: [registry],
    collect() {
      const s = sources.pool();
      this.set({ state: "busy" }, s.busy);
      this.set({ state: "idle" }, Math.max(0, s.size - s.busy));
    },
  });
  mirroredCounter(
    registry,
    "dmd_worker_jobs_completed_total",
    "Inference jobs completed",
    () => sources.pool().completed,
  );
  mirroredCounter(registry, "dmd_worker_jobs_failed_total", "Inference jobs failed", () => sources.pool().failed);
  mirroredCounter(registry, "dmd_worker_restarts_total", "Crashed workers replaced", () => sources.pool().restarts);
  mirroredCounter(
    registry,
    "dmd_inference_batches_total",
    "Forward passes of the edge model (micro-batches)",
    () => sources.pool().batches,
  );
  mirroredCounter(
    registry,
    "dmd_inference_batched_sequences_total",
    "Sequences in those forward passes (over dmd_inference_batches_total: the mean batch size)",
    () => sources.pool().batchedItems,
  );

  if (sources.pose) registerPoseMetrics(registry, sources.pose);

  new Gauge({
    name: "dmd_decision_log_backlog",
    help: "Decisions accepted and not yet written to the database",
    registers: [registry],
    collect() {
      this.set(sources.log?.().backlog ?? 0);
    },
  });
  new Gauge({
    name: "dmd_http_connections_open",
    help: "Client connections open (connection guard; 0 when it is off)",
    registers: [registry],
    collect() {
      this.set(sources.connections?.().open ?? 0);
    },
  });
  const closedBy = {
    header_timeout: "headerTimeouts",
    idle: "idleClosed",
    limit: "refusedAtLimit",
    bad_request: "badRequests",
  } as const;
  new Counter({
    name: "dmd_http_connections_closed_total",
    help: "Client connections the guard closed: header_timeout (HEADER_TIMEOUT_MS), idle (KEEPALIVE_IDLE_MS), " +
      "limit (refused at MAX_CONNECTIONS), bad_request (malformed framing or a head over the limit)",
    labelNames: ["reason"],
    registers: [registry],
    collect() {
      const stats = sources.connections?.();
      this.reset();
      for (const [reason, key] of Object.entries(closedBy)) this.inc({ reason }, stats?.[key] ?? 0);
    },
  });
  mirroredCounter(registry, "dmd_decision_log_written_total", "Decisions written", () => sources.log?.().written);
  mirroredCounter(
    registry,
    "dmd_decision_log_failed_writes_total",
    "Decision log writes that failed (each is retried)",
    () => sources.log?.().failedWrites,
  );
  new Gauge({
    name: "dmd_decision_log_outbox",
    help: "Decisions waiting in the on-disk outbox for the database to come back",
    registers: [registry],
    collect() {
      this.set(sources.log?.().outbox ?? 0);
    },
  });
  new Gauge({
    name: "dmd_decision_log_oldest_unwritten_seconds",
    help: "Age of the oldest accepted decision not yet in the database (memory or outbox); 0 when none. " +
      "Readiness fails past LOG_READY_MAX_LAG_MS",
    registers: [registry],
    collect() {
      this.set((sources.log?.().oldestUnwrittenMs ?? 0) / 1000);
    },
  });
  new Gauge({
    name: "dmd_decision_log_last_write_timestamp_seconds",
    help: "Unix time of the last successful database write of decisions (0: none yet)",
    registers: [registry],
    collect() {
      this.set((sources.log?.().lastWriteAt ?? 0) / 1000);
    },
  });
  new Gauge({
    name: "dmd_decision_log_writer_state",
    help: "The database writer's state (1 for the current one): disconnected, ready, failing, gone, closed",
    labelNames: ["state"],
    registers: [registry],
    collect() {
      const now = sources.log?.().writer;
      for (const state of WRITER_STATES) this.set({ state }, state === now ? 1 : 0);
    },
  });
  mirroredCounter(
    registry,
    "dmd_decision_log_spilled_total",
    "Decisions moved to the outbox because the database could not take them",
    () => sources.log?.().spilled,
  );
  mirroredCounter(
    registry,
    "dmd_decision_log_rejected_total",
    "Decisions the database refused (logged in full, not retried)",
    () => sources.log?.().rejected,
  );

  new Gauge({
    name: "dmd_model_info",
    help: "The versions in service (always 1): edge model, switcher, cloud model",
    labelNames: ["edge_version", "switcher_version", "cloud_version"] as const,
    registers: [registry],
    collect() {
      const v = sources.versions();
      this.reset();
      this.set({ edge_version: v.edge, switcher_version: v.switcher, cloud_version: v.cloud }, 1);
    },
  });
  new Gauge({
    name: "dmd_switcher_threshold",
    help: "The switcher threshold in force: scores at or above it offload",
    registers: [registry],
    collect() {
      this.set(sources.threshold());
    },
  });
  new Gauge({
    name: "process_resident_memory_bytes",
    help: "Resident memory size in bytes",
    registers: [registry],
    collect() {
      this.set(Deno.memoryUsage().rss);
    },
  });
  new Gauge({
    name: "deno_heap_used_bytes",
    help: "V8 heap in use, in bytes",
    registers: [registry],
    collect() {
      this.set(Deno.memoryUsage().heapUsed);
    },
  });
  const startSeconds = Math.floor(Date.now() / 1000);
  new Gauge({
    name: "process_start_time_seconds",
    help: "Start time of the process since the Unix epoch, in seconds",
    registers: [registry],
    collect() {
      this.set(startSeconds);
    },
  });

  return {
    registry,
    observeRequest(labels, seconds) {
      const l = { method: labels.method, route: labels.route, status: String(labels.status) };
      requests.inc(l);
      requestSeconds.observe(l, seconds);
    },
    observeDecision(record) {
      decisions.inc({ route: record.route, reason: record.routeReason });
      if (record.shadow) shadows.inc();
      stageSeconds.observe({ stage: "queue" }, record.queueMs / 1000);
      stageSeconds.observe({ stage: "edge" }, record.edgeMs / 1000);
      if (record.cloudMs !== null && record.cloudMs !== undefined) {
        stageSeconds.observe({ stage: "cloud" }, record.cloudMs / 1000);
      }
      stageSeconds.observe({ stage: "total" }, record.totalMs / 1000);
      if (record.cloudError) cloudErrors.inc({ code: record.cloudError });
    },
    async render() {
      return { contentType: registry.contentType, body: await registry.metrics() };
    },
  };
}

/**
 * Wrap a decision sink so that each decision it accepts is also counted in the metrics.
 *
 * @param sink the sink (the decision log)
 * @param metrics the metrics
 * @returns a sink whose `append` returns what the sink's returns (a durable log's promise included)
 */
export function observeSink<R>(
  sink: { append(record: DecisionRecord): R },
  metrics: Pick<ServiceMetrics, "observeDecision">,
): { append(record: DecisionRecord): R } {
  return {
    append(record) {
      const out = sink.append(record);
      metrics.observeDecision(record);
      return out;
    },
  };
}
