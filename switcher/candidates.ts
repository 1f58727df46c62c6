/**
 * The candidate switchers (confidence rules, MLPs on growing feature sets) and the DMD pool as selection reads it.
 * Pure: numbers in, numbers out.
 *
 * @module
 */
import type { Pair } from "./dmd.ts";
import { dmdLabel } from "./dmd_labels.ts";
import { applyEmbeddingTransform, type EmbeddingTransform, fitEmbeddingTransform } from "./embedding_transform.ts";
import { BASE_FEATURES, type FeatureSet, selectColumns } from "./features.ts";
import type { ConfidenceRule } from "./rules.ts";

/** The columns the rank average reads: max probability, margin, entropy. */
export const RANK_COLUMNS = [0, 1, 2];

/** Quantile intervals per rule in the rank average's CDFs. */
export const RANK_KNOTS = 64;

/** A confidence rule as a candidate. */
export interface RuleCandidate {
  kind: "rule";
  /** `rule:<rule>`, the name the release and the evaluation carry. */
  name: string;
  rule: ConfidenceRule;
  /** Order for the one-standard-error rule: lower is simpler. */
  complexity: number;
}

/**
 * The rank average of some confidence rules as a candidate (switcher/rank.ts): fitted on the pool's rule scores
 * without its labels, served as a small ONNX network.
 */
export interface RankCandidate {
  kind: "rank";
  /** `rank:confidence` for the rank average of `max_prob` and `margin`. */
  name: string;
  rules: readonly ConfidenceRule[];
  /** Quantile intervals of each rule's CDF. */
  knots: number;
  complexity: number;
}

/** An MLP on a feature set as a candidate. */
export interface MlpCandidate {
  kind: "mlp";
  /** `mlp:<feature set>`. */
  name: string;
  set: FeatureSet;
  complexity: number;
  hidden: number[];
  /** L2 penalty: stronger for wider inputs (the embedding). */
  l2: number;
  /** Read the embedding through a transform fitted on the training rows: novelty and this many components. */
  embedding?: { components: number };
}

/** A candidate switcher. */
export type Candidate = RuleCandidate | RankCandidate | MlpCandidate;

/**
 * The candidates `deno task dmd` and retraining choose from, simplest first (the one-standard-error rule's order).
 *
 * First the rank average of the two rules that read the top of the probability vector (`max_prob`, `margin`): it uses
 * no label at all, not even to pick between them, so a single rule is taken only when the folds show it better than
 * the average by more than one standard error. Picking one of several near-equal rules is itself a choice fitted to
 * the pool's labels, and which one ranks best moves with the subjects (on HAPT the pool's best rule was the worst on
 * the evaluated subjects in one seed of three); the average does not make that choice. Then the rules, ordered by how
 * much of the probability vector they read (the top probability; the top two; all of them), then the MLPs on growing
 * feature sets.
 */
export const DEFAULT_CANDIDATES: readonly Candidate[] = [
  {
    kind: "rank",
    name: "rank:confidence",
    // Not `entropy`: it also reads the classes the edge did not answer, and it was the worst rule on every model pair
    // measured (three HAPT pairs, 3D cross-view, the default data; docs/routing.md), dragging the average with it.
    rules: ["max_prob", "margin"],
    knots: RANK_KNOTS,
    complexity: 0,
  },
  { kind: "rule", name: "rule:max_prob", rule: "max_prob", complexity: 1 },
  { kind: "rule", name: "rule:margin", rule: "margin", complexity: 2 },
  { kind: "rule", name: "rule:entropy", rule: "entropy", complexity: 3 },
  { kind: "mlp", name: "mlp:confidence", set: "confidence", complexity: 4, hidden: [16], l2: 1e-4 },
  { kind: "mlp", name: "mlp:confidence+quality", set: "confidence+quality", complexity: 5, hidden: [16], l2: 1e-4 },
  {
    kind: "mlp",
    name: "mlp:confidence+quality+novelty",
    set: "confidence+quality+novelty",
    complexity: 6,
    hidden: [16],
    l2: 1e-4,
    embedding: { components: 0 },
  },
  {
    kind: "mlp",
    name: "mlp:confidence+quality+pca",
    set: "confidence+quality+pca",
    complexity: 7,
    hidden: [16],
    l2: 1e-3,
    embedding: { components: 8 },
  },
  { kind: "mlp", name: "mlp:all", set: "all", complexity: 8, hidden: [32], l2: 1e-3 },
];

/**
 * The candidates restricted to some feature sets (the rules and their rank average always stay: the rules are the bar).
 *
 * @param sets feature sets allowed for MLP candidates
 * @returns the rules and the MLPs on those sets
 */
export function candidatesFor(sets: readonly FeatureSet[]): Candidate[] {
  return DEFAULT_CANDIDATES.filter((c) => c.kind !== "mlp" || sets.includes(c.set));
}

/** DMD pool rows with their labels, as selection uses them. */
export interface LabelledPool {
  pairs: Pair[];
  /** Index of each usable pair in the input. */
  index: number[];
  disagree: Float64Array;
  soft: Float64Array;
  weight: Float64Array;
}

/**
 * Keep the pairs that have a DMD label.
 *
 * @param pairs the pool
 * @returns the usable pairs with hard and soft labels and weights
 */
export function labelPool(pairs: Pair[]): LabelledPool {
  const index: number[] = [];
  const disagree: number[] = [];
  const soft: number[] = [];
  for (let i = 0; i < pairs.length; i++) {
    const label = dmdLabel(pairs[i].edgeProbs, pairs[i].cloudProbs);
    if (!label) continue;
    index.push(i);
    disagree.push(label.hard);
    soft.push(label.soft);
  }
  const kept = index.map((i) => pairs[i]);
  return {
    pairs: kept,
    index,
    disagree: Float64Array.from(disagree),
    soft: Float64Array.from(soft),
    weight: Float64Array.from(kept, (p) => p.weight ?? 1),
  };
}

/**
 * Pack some rows' selected columns, row-major.
 *
 * @param pairs the pairs
 * @param rows row indices
 * @param columns feature columns
 * @returns `rows.length x columns.length` values
 */
export function pack(pairs: Pair[], rows: number[], columns: number[]): Float32Array {
  const x = new Float32Array(rows.length * columns.length);
  rows.forEach((r, i) => x.set(selectColumns(pairs[r].features, columns), i * columns.length));
  return x;
}

/**
 * Candidates that can read this feature vector: those reading the embedding need one.
 *
 * @param candidates the candidates
 * @param featureCount length of the full feature vector
 * @returns the usable ones, in order
 */
export function usableCandidates(candidates: readonly Candidate[], featureCount: number): Candidate[] {
  return candidates.filter((c) => c.kind !== "mlp" || !c.embedding || featureCount > BASE_FEATURES.length);
}

/**
 * The embedding transform a candidate reads through, fitted on some rows (null when it reads none).
 *
 * @param candidate the MLP candidate
 * @param rows full feature vectors to fit on
 * @param seed for the principal directions
 * @returns the transform or null
 */
export function fitTransform(candidate: MlpCandidate, rows: Float32Array[], seed: number): EmbeddingTransform | null {
  if (!candidate.embedding) return null;
  const start = BASE_FEATURES.length;
  const components = Math.min(candidate.embedding.components, (rows[0]?.length ?? 0) - start);
  return fitEmbeddingTransform(rows, { start, components, seed });
}

/**
 * Pairs with their features replaced by the transform's output.
 *
 * @param pairs the pairs
 * @param transform the transform
 * @returns new pairs
 */
export function derivePairs(pairs: Pair[], transform: EmbeddingTransform): Pair[] {
  return pairs.map((p) => ({ ...p, features: applyEmbeddingTransform(transform, p.features) }));
}

/**
 * Every column of the pairs' feature vectors.
 *
 * @param pairs the pairs
 * @returns 0 .. F-1
 */
export function allColumns(pairs: Pair[]): number[] {
  return Array.from({ length: pairs[0]?.features.length ?? 0 }, (_, i) => i);
}
