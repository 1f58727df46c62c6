/**
 * Timing helpers the benchmarks share: the median of samples, the median and range of repetitions, the median time
 * of repeated calls after one untimed warm-up call, and the service's own time read from a `Server-Timing` header.
 *
 * @module
 */

/**
 * The median (the upper one for an even count).
 *
 * @param xs samples
 * @returns their median
 */
export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** The median and range of paired repetitions, with the values themselves. */
export interface Spread {
  median: number;
  min: number;
  max: number;
  values: number[];
}

/**
 * The median (the upper one for an even count) and the range of repetitions.
 *
 * @param values one figure per repetition
 * @returns its median, minimum, maximum and the values
 */
export function spread(values: number[]): Spread {
  const sorted = [...values].sort((a, b) => a - b);
  return { median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted.at(-1)!, values };
}

/**
 * The median wall time of `n` calls of `fn`, after one untimed call.
 *
 * @param fn what to time
 * @param n how many timed calls
 * @returns milliseconds
 */
export async function timeMedian(fn: () => unknown, n: number): Promise<number> {
  await fn();
  const ts: number[] = [];
  for (let i = 0; i < n; i++) {
    const t = performance.now();
    await fn();
    ts.push(performance.now() - t);
  }
  return median(ts);
}

/**
 * The duration of the `app` metric in a `Server-Timing` header (the service's own time on a request, set by
 * observability/http.ts), in milliseconds.
 *
 * @param header the header's value, or null
 * @returns the duration, or null when the header has no `app` metric with a duration
 * @example
 * appDurationMs('cache;desc="hit", app;dur=0.712'); // 0.712
 */
export function appDurationMs(header: string | null): number | null {
  for (const metric of header?.split(",") ?? []) {
    const [name, ...params] = metric.split(";").map((p) => p.trim());
    if (name !== "app") continue;
    const dur = params.find((p) => /^dur=/i.test(p));
    const ms = dur ? Number(dur.slice(4)) : NaN;
    return Number.isFinite(ms) ? ms : null;
  }
  return null;
}
