/**
 * A small hand-built decision log for the analytics tests: eight decisions in a three-hour window (two locations,
 * two switcher versions, every route, a shadow that agreed and one that failed, a timeout, a spent budget) plus one
 * decision on each side of the window. The expected figures in `tests/analytics_test.ts` are worked out by hand
 * from this table.
 *
 * @module
 */
import type { DecisionRecord } from "../db/schema.ts";
import { decision } from "./fixtures/db_records.ts";

/** An hour in milliseconds. */
export const H = 3_600_000;
/** Start of the window: a whole hour (497222 h since the epoch). */
export const T0 = 497_222 * H;

const none = { cloudModelVersion: null, cloudLabel: null, cloudProb: null, cloudProbs: null, cloudMs: null };

/**
 * The log, in time order. Columns that matter: (location, version, route, reason, shadow, edge/cloud label,
 * cloud error, cloud ms, queue/edge/total ms, answer label).
 *
 * @returns the decisions (fresh objects each call)
 */
export function handBuiltLog(): DecisionRecord[] {
  const v1 = { switcherVersion: "v1", switcherScore: 0.75, switcherThreshold: 0.6 };
  const v2 = { switcherVersion: "v2", switcherScore: 0.25, switcherThreshold: 0.5 };
  const row = (n: number, at: number, o: Partial<DecisionRecord>) =>
    decision({ id: `d${n}`, requestId: `r${n}`, createdAt: at, forced: false, shadow: false, cloudError: null, ...o });
  return [
    row(0, T0 - 1, { edgeLocation: "edge-a", ...v1, route: "edge", routeReason: "below_threshold", ...none }),
    // Bucket 0.
    row(1, T0, {
      edgeLocation: "edge-a",
      ...v1,
      route: "edge",
      routeReason: "below_threshold",
      ...none,
      edgeLabel: "walk",
      label: "walk",
      queueMs: 1,
      edgeMs: 2,
      totalMs: 3,
    }),
    row(2, T0 + 10, {
      edgeLocation: "edge-a",
      ...v1,
      route: "cloud",
      routeReason: "above_threshold",
      edgeLabel: "walk",
      cloudLabel: "run",
      label: "run",
      cloudMs: 10,
      queueMs: 2,
      edgeMs: 4,
      totalMs: 16,
    }),
    row(3, T0 + 20, {
      edgeLocation: "edge-b",
      ...v1,
      route: "cloud",
      routeReason: "above_threshold",
      edgeLabel: "run",
      cloudLabel: "run",
      label: "run",
      cloudMs: 20,
      queueMs: 3,
      edgeMs: 6,
      totalMs: 30,
    }),
    row(4, T0 + 30, {
      edgeLocation: "edge-b",
      ...v1,
      route: "edge_fallback",
      routeReason: "above_threshold",
      ...none,
      cloudError: "OFFLOAD_TIMEOUT",
      cloudMs: 100,
      edgeLabel: "walk",
      label: "walk",
      queueMs: 4,
      edgeMs: 8,
      totalMs: 112,
    }),
    row(5, T0 + H - 1, {
      edgeLocation: "edge-a",
      ...v1,
      route: "edge",
      routeReason: "budget_exhausted",
      ...none,
      edgeLabel: "jump",
      label: "jump",
      queueMs: 5,
      edgeMs: 10,
      totalMs: 15,
    }),
    // Bucket 1.
    row(6, T0 + H, {
      edgeLocation: "edge-a",
      ...v2,
      route: "edge",
      routeReason: "below_threshold",
      shadow: true,
      edgeLabel: "walk",
      cloudLabel: "walk",
      label: "walk",
      cloudMs: 30,
      queueMs: 6,
      edgeMs: 12,
      totalMs: 18,
    }),
    row(7, T0 + H + 5, {
      edgeLocation: "edge-a",
      ...v2,
      route: "edge",
      routeReason: "below_threshold",
      shadow: true,
      ...none,
      cloudError: "OFFLOAD_FAILED",
      cloudMs: 40,
      edgeLabel: "walk",
      label: "walk",
      queueMs: 7,
      edgeMs: 14,
      totalMs: 21,
    }),
    row(8, T0 + 2 * H - 1, {
      edgeLocation: "edge-b",
      ...v2,
      route: "cloud",
      routeReason: "forced_cloud",
      forced: true,
      edgeLabel: "jump",
      cloudLabel: "walk",
      label: "walk",
      cloudMs: 60,
      queueMs: 8,
      edgeMs: 16,
      totalMs: 84,
    }),
    // Bucket 2 is empty; this one is just past the window.
    row(9, T0 + 3 * H, { edgeLocation: "edge-b", ...v2, route: "edge", routeReason: "below_threshold", ...none }),
  ];
}
