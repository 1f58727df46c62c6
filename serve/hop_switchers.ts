/**
 * The switchers of hops 1 and up (serve/cascade.ts), followed in the release registry: for each hop, the active
 * switcher release of that hop (`deno task dmd --hop N` publishes them), checked every `intervalMs` and on
 * {@link HopSwitchers.refresh}. A hop with no release is seeded with the built-in `max_prob` rule at 0.5, so that
 * rollback has somewhere to go. Past hop 0 a switcher scores the confidence features of the previous tier's
 * probabilities: a confidence rule, or an ONNX network of those three features (loop/hop_dmd.ts), read into
 * JavaScript (workers/switcher_mlp.ts) and scored on this thread (a few hundred multiply-adds). A release that reads
 * other features (e.g. a hop-0 network of edge features) is refused, reported, and the hop keeps the release it had.
 *
 * @module
 */
import type { Db } from "../db/client.ts";
import { hopScorer } from "../loop/hop_dmd.ts";
import { activeRelease, seedRegistry } from "../loop/registry.ts";
import { ruleRelease, type SwitcherRelease } from "../release/release.ts";
import type { HopSwitcher } from "./cascade.ts";

/** The hop switchers in service. */
export interface HopSwitchers {
  /** Hop N's switcher now (1 <= N <= hops). */
  current(hop: number): HopSwitcher;
  /** Read the active releases now; a release that cannot serve is reported and skipped. */
  refresh(): Promise<void>;
  /** Stop following. */
  stop(): void;
}

/**
 * The built-in switcher of a hop past the first: `max_prob` at 0.5.
 *
 * @param hop the hop
 * @returns the release
 */
export function builtinHopRelease(hop: number): SwitcherRelease {
  return ruleRelease({ version: `builtin-max-probability-hop${hop}`, rule: "max_prob", threshold: 0.5, hop, nowMs: 0 });
}

function asSwitcher(release: SwitcherRelease): HopSwitcher | null {
  const score = hopScorer(release);
  return score ? { version: release.version, score, threshold: release.threshold } : null;
}

/**
 * Seed and follow the switchers of hops 1 to `hops`.
 *
 * @param db the database holding the registry
 * @param options the number of hops past the first, the poll interval (0: only on refresh), where to report
 * @returns the followed switchers, once each hop has one
 */
export async function followHopSwitchers(
  db: Db,
  options: { hops: number; intervalMs: number; warn?: (message: string, fields: Record<string, unknown>) => void },
): Promise<HopSwitchers> {
  const warn = options.warn ?? (() => {});
  const serving: HopSwitcher[] = [];
  for (let hop = 1; hop <= options.hops; hop++) {
    const active = await seedRegistry(db, builtinHopRelease(hop));
    serving[hop] = asSwitcher(active) ?? asSwitcher(builtinHopRelease(hop))!;
  }
  async function refresh() {
    for (let hop = 1; hop <= options.hops; hop++) {
      const active = await activeRelease(db, { role: "switcher", hop });
      if (!active || active.version === serving[hop].version) continue;
      const next = asSwitcher(active);
      if (next) serving[hop] = next;
      else {
        warn(
          "a hop past the first serves confidence rules and networks of the confidence features only; release refused",
          {
            hop,
            version: active.version,
          },
        );
      }
    }
  }
  await refresh();
  const timer = options.intervalMs > 0
    ? setInterval(
      () => refresh().catch((err) => warn("cannot read the hop switchers", { error: String(err) })),
      options.intervalMs,
    )
    : undefined;
  return {
    current: (hop) => serving[hop],
    refresh,
    stop: () => clearInterval(timer),
  };
}
