/**
 * Cross-validation folds grouped by what the traffic carries (subject, client, edge location, camera): every row of
 * a group lands in the same fold, so a held-out fold measures a switcher on groups it never learned from. Without
 * enough groups, folds are contiguous blocks of the given order (time, for logged traffic) or a seeded random split
 * (a corpus with no order). Pure: numbers in, numbers out.
 *
 * @module
 */
import { createPrng } from "./prng.ts";

/** How the folds were made. */
export type FoldBasis = "group" | "blocks" | "random";

/** Folds of n rows. */
export interface Folds {
  /** Fold index of each row, in [0, k). */
  fold: Int32Array;
  k: number;
  basis: FoldBasis;
  /** Distinct groups seen (0 when the rows carry none). */
  groups: number;
}

/** Options of {@link groupedFolds}. */
export interface FoldOptions {
  /** Folds wanted. @default 5 */
  k?: number;
  seed?: number;
  /** Without at least 3 distinct groups: contiguous blocks of the row order, or a seeded random split. */
  fallback?: "blocks" | "random";
}

/**
 * Assign rows to folds, grouped when the rows carry groups.
 *
 * With at least 3 distinct groups, `min(k, groups)` folds: groups are shuffled (seeded) and each, largest first, goes
 * to the fold with the fewest rows. Rows with a null group count as one group of their own.
 *
 * @param groups one group key per row, or null
 * @param options folds wanted, seed, fallback
 * @returns the folds
 * @throws RangeError with fewer than 2 rows per fold, or k < 2
 */
export function groupedFolds(groups: readonly (string | null)[], options: FoldOptions = {}): Folds {
  const n = groups.length;
  const want = options.k ?? 5;
  if (!Number.isInteger(want) || want < 2) throw new RangeError(`Cannot make folds: k must be an integer >= 2`);
  if (n < 2 * want) throw new RangeError(`Cannot make ${want} folds: expected at least ${2 * want} rows, got ${n}`);
  const rng = createPrng(options.seed ?? 1);
  const fold = new Int32Array(n);
  const sizes = new Map<string, number>();
  for (const g of groups) if (g !== null) sizes.set(g, (sizes.get(g) ?? 0) + 1);
  const keyOf = (g: string | null) => g ?? "\u0000none";
  if (groups.some((g) => g === null) && sizes.size > 0) {
    sizes.set(keyOf(null), groups.filter((g) => g === null).length);
  }
  if (sizes.size >= 3) {
    const k = Math.min(want, sizes.size);
    const keys = rng.shuffle([...sizes.keys()].sort()).sort((a, b) => sizes.get(b)! - sizes.get(a)!);
    const load = new Array(k).fill(0);
    const foldOf = new Map<string, number>();
    for (const key of keys) {
      let best = 0;
      for (let f = 1; f < k; f++) if (load[f] < load[best]) best = f;
      foldOf.set(key, best);
      load[best] += sizes.get(key)!;
    }
    groups.forEach((g, i) => (fold[i] = foldOf.get(keyOf(g))!));
    return { fold, k, basis: "group", groups: sizes.size };
  }
  if ((options.fallback ?? "blocks") === "blocks") {
    for (let i = 0; i < n; i++) fold[i] = Math.min(want - 1, Math.floor((i * want) / n));
    return { fold, k: want, basis: "blocks", groups: sizes.size };
  }
  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  order.forEach((row, r) => (fold[row] = r % want));
  return { fold, k: want, basis: "random", groups: sizes.size };
}
