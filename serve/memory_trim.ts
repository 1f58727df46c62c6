/**
 * Give freed heap memory back to the system, on a timer: glibc's `malloc_trim(0)` through Deno's FFI, run on Deno's
 * blocking-call threads (`nonblocking`), so the HTTP thread never waits for it.
 *
 * Why: the service's threads (inference and pose workers, the guard's relay, the decision writer) each get a glibc
 * malloc arena, and an arena keeps what its thread freed. Loading and warming the pose model frees most of what it
 * allocated, yet a 2-core box with the default workers held 840-960 MiB resident at ready; one `malloc_trim(0)` took
 * it to 375-403 MiB in 28-44 ms (three starts each). Load grows the arenas again, so the trim repeats.
 *
 * Where there is no glibc (musl, macOS, Windows) or no FFI permission, the trimmer says so once and does nothing.
 *
 * @module
 */
import type { Logger } from "../observability/logger.ts";

/** What one trim did. */
export interface TrimResult {
  /** Resident set before and after, bytes (`Deno.memoryUsage().rss`). */
  rssBefore: number;
  rssAfter: number;
  /** How long the call took, in milliseconds. */
  ms: number;
  /** `malloc_trim`'s own answer: 1 when memory was given back, 0 when there was none to give. */
  released: boolean;
}

/** A running trimmer. */
export interface MemoryTrimmer {
  /** Whether trimming works here (glibc and FFI); when false, `reason` says why not. */
  readonly available: boolean;
  readonly reason: string | null;
  /** Trim now (also what the timer does); null where trimming is not available. */
  trim(): Promise<TrimResult | null>;
  /** The trims so far, and the bytes they gave back. */
  stats(): { trims: number; releasedBytes: number };
  /** Stop the timer, wait for a trim in progress, release the library. */
  stop(): Promise<void>;
}

/** Options of {@link startMemoryTrim}. */
export interface MemoryTrimOptions {
  /** Time between trims, ms; 0: no timer (`trim()` still works). */
  intervalMs: number;
  /** Time from start to the first trim, ms (after start-up's allocations settle). @default min(intervalMs, 10000) */
  firstAfterMs?: number;
  logger?: Logger;
  /** The C library to open. @default "libc.so.6" */
  library?: string;
}

type Libc = Deno.DynamicLibrary<{ malloc_trim: { parameters: ["usize"]; result: "i32"; nonblocking: true } }>;

function openLibc(library: string): { libc: Libc; reason: null } | { libc: null; reason: string } {
  if (Deno.build.os !== "linux") return { libc: null, reason: `not on Linux (${Deno.build.os})` };
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return { libc: null, reason: "no FFI permission (--allow-ffi)" };
  }
  try {
    const libc = Deno.dlopen(library, {
      malloc_trim: { parameters: ["usize"], result: "i32", nonblocking: true },
    }) as Libc;
    return { libc, reason: null };
  } catch (err) {
    // musl and other C libraries have no malloc_trim, or no libc.so.6.
    return { libc: null, reason: `no malloc_trim in ${library}: ${(err as Error).message}` };
  }
}

/**
 * Start trimming.
 *
 * @param options the interval, the first delay, the logger, the library
 * @returns the trimmer (stop it at shutdown)
 * @example
 * const trimmer = startMemoryTrim({ intervalMs: 60_000, logger });
 * life.defer("the memory trimmer", () => trimmer.stop());
 */
export function startMemoryTrim(options: MemoryTrimOptions): MemoryTrimmer {
  const { libc, reason } = openLibc(options.library ?? "libc.so.6");
  if (reason !== null) options.logger?.info("memory trim unavailable", { reason });
  let trims = 0;
  let releasedBytes = 0;
  let running: Promise<TrimResult | null> | null = null;
  let timer: ReturnType<typeof setTimeout> | null = null;
  let stopped = false;

  const trim = (): Promise<TrimResult | null> => {
    if (!libc || stopped) return Promise.resolve(null);
    // One at a time: a trim asked for while one runs gets that one's result.
    running ??= (async () => {
      const rssBefore = Deno.memoryUsage().rss;
      const t = performance.now();
      const answer = await libc.symbols.malloc_trim(0n);
      const result = {
        rssBefore,
        rssAfter: Deno.memoryUsage().rss,
        ms: performance.now() - t,
        released: answer === 1,
      };
      trims++;
      releasedBytes += Math.max(0, result.rssBefore - result.rssAfter);
      options.logger?.debug("memory trimmed", {
        rssBeforeMiB: Math.round(result.rssBefore / 1048576),
        rssAfterMiB: Math.round(result.rssAfter / 1048576),
        ms: Math.round(result.ms * 10) / 10,
      });
      return result;
    })().finally(() => running = null);
    return running;
  };

  const schedule = (ms: number) => {
    const t = setTimeout(() => {
      trim().catch(() => null).finally(() => {
        if (!stopped) schedule(options.intervalMs);
      });
    }, ms);
    // The timer never keeps the process alive.
    Deno.unrefTimer(t);
    timer = t;
  };
  if (libc && options.intervalMs > 0) schedule(options.firstAfterMs ?? Math.min(options.intervalMs, 10_000));

  return {
    available: libc !== null,
    reason,
    trim,
    stats: () => ({ trims, releasedBytes }),
    async stop() {
      stopped = true;
      if (timer !== null) clearTimeout(timer);
      await running?.catch(() => null);
      libc?.close();
    },
  };
}
