/**
 * Prometheus metrics of the tiers past the edge, when more than two are configured (serve/cascade.ts): per tier,
 * the calls by outcome, the answers it gave (its share), its agreement with the tier below it, and its cost
 * (milliseconds: configured, else measured; and configured price). Counted from each logged decision's tier rows,
 * on the app's registry (observability/metrics.ts).
 *
 * @module
 */
import { Counter, type Registry } from "prom-client";
import type { DecisionRecord } from "../db/schema.ts";

/** Counts the tier rows of logged decisions. */
export interface TierMetrics {
  /** Count one decision's tier rows (none for two-tier decisions). */
  observe(record: DecisionRecord): void;
}

/**
 * Register the tier metrics.
 *
 * @param registry the app's registry
 * @returns the counters' observer
 */
export function createTierMetrics(registry: Registry): TierMetrics {
  const calls = new Counter({
    name: "dmd_tier_calls_total",
    help: "Calls to each cloud tier, by outcome (ok, or the error code) and whether it was an exploration",
    labelNames: ["tier", "outcome", "shadow"],
    registers: [registry],
  });
  const answers = new Counter({
    name: "dmd_tier_answers_total",
    help: "Answers given by each cloud tier (its share of the climbing requests)",
    labelNames: ["tier"],
    registers: [registry],
  });
  const agreement = new Counter({
    name: "dmd_tier_agreement_total",
    help: "Calls answered by a tier, by whether its label agrees with the tier below it",
    labelNames: ["tier", "agree"],
    registers: [registry],
  });
  const costMs = new Counter({
    name: "dmd_tier_cost_ms_total",
    help: "Cost of each tier's calls in milliseconds (configured per call, else measured)",
    labelNames: ["tier"],
    registers: [registry],
  });
  const price = new Counter({
    name: "dmd_tier_price_total",
    help: "Configured price of each tier's calls",
    labelNames: ["tier"],
    registers: [registry],
  });
  return {
    observe(record) {
      const rows = record.tiers ?? [];
      for (const row of rows) {
        if (row.ms === null) continue;
        const tier = row.tierName;
        calls.inc({ tier, outcome: row.error ?? "ok", shadow: String(row.shadow) });
        if (row.answered) answers.inc({ tier });
        if (row.costMs !== null) costMs.inc({ tier }, row.costMs);
        if (row.price !== null) price.inc({ tier }, row.price);
        const below = rows.find((r) => r.tier === row.tier - 1);
        if (row.label !== null && below?.label) agreement.inc({ tier, agree: String(row.label === below.label) });
      }
    },
  };
}
