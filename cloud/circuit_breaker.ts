/**
 * A circuit breaker in front of the cloud model: it stops calling a cloud that keeps failing, answers at once
 * instead (the classifier then gives the edge answer, flagged `CIRCUIT_OPEN`), and probes the cloud back with one
 * call at a time.
 *
 * Lifecycle of the circuit:
 * - `closed`: every call goes through. It opens after `failureThreshold` consecutive failures, or when at least
 *   `failureRatio` of the last `windowSize` calls failed (counted once the window is full).
 * - `open`: no call goes through; each one is refused with `CIRCUIT_OPEN`. After the cool-down (`openMs`) the next
 *   call becomes a probe.
 * - `half_open`: exactly one probe is in flight; other calls are refused. The probe's success closes the circuit;
 *   its failure opens it again with twice the previous cool-down (at most `maxOpenMs`), so a cloud that stays down
 *   sees one call per cool-down from this edge app, never a retry storm.
 *
 * A call's outcome counts only in the circuit state it started in: a slow call that fails after the circuit
 * opened, or succeeds while a probe is out, changes nothing. The breaker never retries by itself.
 *
 * @module
 */
import { AppError } from "../errors.ts";
import { backoffMs } from "../lib/deadline.ts";

/** The circuit's state. */
export type CircuitState = "closed" | "open" | "half_open";

/** Options of {@link createCircuitBreaker}. */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the circuit. @default 5 */
  failureThreshold?: number;
  /** Share of failures among the last `windowSize` calls that opens the circuit, in (0, 1]. @default 0.5 */
  failureRatio?: number;
  /** Calls in the sliding window of the ratio rule. @default 20 */
  windowSize?: number;
  /** First cool-down before a probe, in milliseconds. @default 5000 */
  openMs?: number;
  /** Longest cool-down, in milliseconds (it doubles per failed probe). @default 60000 */
  maxOpenMs?: number;
  /** The clock, in milliseconds. @default performance.now */
  now?: () => number;
  /** Called on every state change (logging, metrics). */
  onStateChange?: (from: CircuitState, to: CircuitState) => void;
}

/** A permit to make one call; give it back with {@link CircuitBreaker.record}. */
export interface CallPermit {
  /** The circuit generation the call started in. */
  readonly generation: number;
  /** True for the half-open probe. */
  readonly probe: boolean;
}

/** Breaker counters, for logs and metrics. */
export interface CircuitStats {
  state: CircuitState;
  /** Calls let through. */
  allowed: number;
  /** Calls refused while open or half-open. */
  refused: number;
  successes: number;
  failures: number;
  /** Times the circuit opened. */
  opened: number;
  /** Current cool-down, in milliseconds. */
  openMs: number;
}

/** A circuit breaker. */
export interface CircuitBreaker {
  /** @returns the state now (an open circuit past its cool-down reads `half_open`) */
  state(): CircuitState;
  /**
   * Ask to make one call.
   *
   * @returns a permit, or null when the call must not be made
   */
  acquire(): CallPermit | null;
  /**
   * Record how a permitted call ended.
   *
   * @param permit the call's permit
   * @param ok true when the call succeeded
   */
  record(permit: CallPermit, ok: boolean): void;
  /**
   * Give back a permit without a verdict (the caller cancelled the call): a probe may be made again.
   *
   * @param permit the call's permit
   */
  release(permit: CallPermit): void;
  /** @returns milliseconds until a probe may be made (0 unless open) */
  retryInMs(): number;
  stats(): CircuitStats;
}

function check(name: string, value: number, min: number, max: number, integer: boolean): number {
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    throw new RangeError(
      `Cannot create the circuit breaker: ${name} must be ${
        integer ? "an integer" : "a number"
      } in [${min}, ${max}], got ${value}`,
    );
  }
  return value;
}

/**
 * Create a circuit breaker. Pure: time comes from `now`, so tests drive it with a fake clock.
 *
 * @param options thresholds, window and cool-downs
 * @returns the breaker, closed
 * @throws RangeError when an option is out of range
 * @example
 * const breaker = createCircuitBreaker({ failureThreshold: 5, openMs: 5000 });
 * const permit = breaker.acquire();
 * if (permit) breaker.record(permit, await callCloud().then(() => true, () => false));
 */
export function createCircuitBreaker(options: CircuitBreakerOptions = {}): CircuitBreaker {
  const failureThreshold = check("failureThreshold", options.failureThreshold ?? 5, 1, 1e6, true);
  const failureRatio = options.failureRatio ?? 0.5;
  if (!(failureRatio > 0 && failureRatio <= 1)) {
    throw new RangeError(`Cannot create the circuit breaker: failureRatio must be in (0, 1], got ${failureRatio}`);
  }
  const windowSize = check("windowSize", options.windowSize ?? 20, 1, 1e6, true);
  const baseOpenMs = check("openMs", options.openMs ?? 5000, 1, 864e5, false);
  const maxOpenMs = check("maxOpenMs", options.maxOpenMs ?? 60_000, baseOpenMs, 864e5, false);
  const now = options.now ?? (() => performance.now());

  let state: CircuitState = "closed";
  let generation = 0;
  let openedAt = 0;
  /** Probes that failed since the circuit last closed: the cool-down doubles with each (lib/deadline.ts). */
  let failedProbes = 0;
  let openMs = baseOpenMs;
  let probeOut = false;
  let consecutive = 0;
  /** Outcomes of the last calls in the closed state: true = failure; a ring buffer. */
  const window: boolean[] = [];
  let windowFailures = 0;
  const counters = { allowed: 0, refused: 0, successes: 0, failures: 0, opened: 0 };

  function moveTo(next: CircuitState): void {
    if (next === state) return;
    const from = state;
    state = next;
    generation++;
    options.onStateChange?.(from, next);
  }

  function open(): void {
    openedAt = now();
    probeOut = false;
    counters.opened++;
    moveTo("open");
  }

  function close(): void {
    consecutive = 0;
    window.length = 0;
    windowFailures = 0;
    failedProbes = 0;
    openMs = baseOpenMs;
    probeOut = false;
    moveTo("closed");
  }

  function observe(failed: boolean): void {
    window.push(failed);
    if (failed) windowFailures++;
    if (window.length > windowSize && window.shift()) windowFailures--;
    consecutive = failed ? consecutive + 1 : 0;
    const ratioTrips = window.length >= windowSize && windowFailures / window.length >= failureRatio;
    if (consecutive >= failureThreshold || ratioTrips) open();
  }

  function current(): CircuitState {
    if (state === "open" && now() - openedAt >= openMs) moveTo("half_open");
    return state;
  }

  return {
    state: current,
    acquire() {
      switch (current()) {
        case "closed":
          counters.allowed++;
          return { generation, probe: false };
        case "half_open":
          if (probeOut) break;
          probeOut = true;
          counters.allowed++;
          return { generation, probe: true };
        case "open":
          break;
      }
      counters.refused++;
      return null;
    },
    record(permit, ok) {
      if (ok) counters.successes++;
      else counters.failures++;
      if (permit.generation !== generation) return;
      if (state === "closed") observe(!ok);
      else if (state === "half_open" && permit.probe) {
        if (ok) close();
        else {
          openMs = backoffMs(++failedProbes + 1, { baseMs: baseOpenMs, maxMs: maxOpenMs });
          open();
        }
      }
    },
    release(permit) {
      if (permit.probe && permit.generation === generation) probeOut = false;
    },
    retryInMs() {
      return current() === "open" ? Math.max(0, openMs - (now() - openedAt)) : 0;
    },
    stats: () => ({ state: current(), ...counters, openMs }),
  };
}

/** What the breaker guards: anything with the cloud client's `infer`. */
interface Infers {
  // deno-lint-ignore no-explicit-any
  infer(...args: any[]): Promise<unknown>;
}

/**
 * True when an error says the cloud failed, as opposed to the caller cancelling or a bug on this side: timeouts
 * and failures (`OFFLOAD_TIMEOUT`, `OFFLOAD_FAILED`) count; a `TypeError` (a wrong shape from this app) does not.
 */
function isCloudFailure(err: unknown, signal: AbortSignal | undefined): boolean {
  if (err instanceof TypeError) return false;
  if (signal?.aborted && !(signal.reason instanceof DOMException && signal.reason.name === "TimeoutError")) {
    return false;
  }
  return true;
}

/**
 * The error a call gets while the circuit is open: `CIRCUIT_OPEN`, saying when calls resume.
 *
 * @param breaker the breaker
 * @returns the error
 */
export function circuitOpenError(breaker: CircuitBreaker): AppError {
  const inMs = Math.ceil(breaker.retryInMs());
  return new AppError(
    "CIRCUIT_OPEN",
    `Cannot offload: the cloud failed repeatedly; calls are paused${inMs > 0 ? ` for ${inMs} ms` : ""}`,
  );
}

/**
 * The breaker's state as an input of the routing decision (serve/classifier.ts `cloudDown`): the open-circuit
 * error while the circuit is open, else null (closed, or half-open: the next call is the probe).
 *
 * @param breaker the breaker
 * @returns the check
 */
export function cloudDownWhenOpen(breaker: CircuitBreaker): () => AppError | null {
  return () => (breaker.state() === "open" ? circuitOpenError(breaker) : null);
}

/**
 * Put a circuit breaker in front of a cloud client's `infer`. While the circuit is open, `infer` throws
 * `AppError` `CIRCUIT_OPEN` at once, without a network call; every other method is passed through.
 *
 * @param client the cloud client (an {@link import("./oip_client.ts").OipClient}, or a fake)
 * @param breaker the breaker
 * @returns a client with the same signature
 */
export function withCircuitBreaker<C extends Infers>(client: C, breaker: CircuitBreaker): C {
  const infer = (...args: Parameters<C["infer"]>) =>
    throughBreaker(breaker, () => client.infer(...args), (args[2] as { signal?: AbortSignal } | undefined)?.signal);
  return Object.assign(Object.create(Object.getPrototypeOf(client)), client, { infer }) as C;
}

/**
 * Make one cloud call through a breaker: refused at once with `CIRCUIT_OPEN` while the circuit is open, its outcome
 * recorded otherwise (a cancellation by the caller, or a `TypeError` from this side, is not a cloud failure).
 *
 * @param breaker the breaker
 * @param call the call
 * @param signal the caller's signal, if any
 * @returns what the call returns
 * @throws AppError CIRCUIT_OPEN; whatever the call throws
 */
export async function throughBreaker<T>(
  breaker: CircuitBreaker,
  call: () => Promise<T>,
  signal?: AbortSignal,
): Promise<T> {
  const permit = breaker.acquire();
  if (!permit) throw circuitOpenError(breaker);
  try {
    const reply = await call();
    breaker.record(permit, true);
    return reply;
  } catch (err) {
    if (isCloudFailure(err, signal)) breaker.record(permit, false);
    else breaker.release(permit);
    throw err;
  }
}
