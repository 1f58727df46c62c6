/**
 * Analytics of the tiers past the edge (more than two tiers configured; `decision_tiers`): per tier over a window,
 * how many requests reached it, its share of the answers, its agreement with the tier below it, its failures and
 * its cost. Part of `GET /v1/stats` (db/analytics.ts `statsReport`); empty when only two tiers ever served.
 *
 * Definitions: **reached** counts the tier's rows that were calls (a tier skipped for an open circuit is not a
 * call); **share** = answers it gave / decisions that reached tier 1 in the window; **agreement** = its calls whose
 * label matches the tier below's, over its calls where both have a label (null without any); **cost** sums the
 * configured cost per call (else the measured time) and the configured price.
 *
 * @module
 */
import { and, eq, gte, isNotNull, lt, sql } from "drizzle-orm";
import { alias } from "drizzle-orm/sqlite-core";
import type { AnalyticsQuery } from "./analytics_params.ts";
import type { Db } from "./client.ts";
import { run } from "./queries.ts";
import { decisionTiers as t } from "./schema.ts";

/** One tier's figures over a window. */
export interface TierFigures {
  tier: number;
  name: string;
  /** Calls made to it (exploration calls included). */
  calls: number;
  /** Exploration calls among them. */
  explored: number;
  /** Answers it gave. */
  answered: number;
  /** Answers it gave / decisions that reached tier 1. */
  share: number;
  /** Calls that failed. */
  errors: number;
  /** Agreement with the tier below, or null without a pair. */
  agreement: number | null;
  /** Mean measured round trip of its calls, milliseconds, or null. */
  meanMs: number | null;
  /** Summed cost (configured per call, else measured), milliseconds. */
  costMs: number;
  /** Summed configured price. */
  price: number;
}

/**
 * The tier figures of a window (the query's window; its location and version filters do not apply to tier rows).
 *
 * @param db the database
 * @param q the window
 * @returns one entry per tier that was reached, in tier order
 */
export async function tierFigures(db: Db, q: Pick<AnalyticsQuery, "fromMs" | "toMs">): Promise<TierFigures[]> {
  const below = alias(t, "below");
  const window = and(gte(t.createdAt, q.fromMs), lt(t.createdAt, q.toMs), isNotNull(t.ms));
  const rows = await run("read the tier figures", () =>
    db.select({
      tier: t.tier,
      name: sql<string>`max(${t.tierName})`,
      calls: sql<number>`count(*)`,
      explored: sql<number>`coalesce(sum(${t.shadow}), 0)`,
      answered: sql<number>`coalesce(sum(${t.answered}), 0)`,
      errors: sql<number>`coalesce(sum(case when ${t.error} is not null then 1 else 0 end), 0)`,
      pairs: sql<
        number
      >`coalesce(sum(case when ${t.label} is not null and ${below.label} is not null then 1 else 0 end), 0)`,
      agreements: sql<number>`coalesce(sum(case when ${t.label} = ${below.label} then 1 else 0 end), 0)`,
      meanMs: sql<number | null>`avg(${t.ms})`,
      costMs: sql<number>`coalesce(sum(${t.costMs}), 0)`,
      price: sql<number>`coalesce(sum(${t.price}), 0)`,
    }).from(t)
      .leftJoin(below, and(eq(below.decisionId, t.decisionId), eq(below.tier, sql`${t.tier} - 1`)))
      .where(window).groupBy(t.tier).orderBy(t.tier));
  const climbing = rows.find((r) => r.tier === 1)?.calls ?? 0;
  return rows.map((r) => ({
    tier: r.tier,
    name: r.name,
    calls: r.calls,
    explored: r.explored,
    answered: r.answered,
    share: climbing > 0 ? r.answered / climbing : 0,
    errors: r.errors,
    agreement: r.pairs > 0 ? r.agreements / r.pairs : null,
    meanMs: r.meanMs,
    costMs: r.costMs,
    price: r.price,
  }));
}
