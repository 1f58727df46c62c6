/**
 * Confidence rules: the obvious switchers a learned one has to beat. Each scores a request from the edge model's own
 * confidence (the first three switcher features: max probability, margin, entropy), higher meaning "more likely to
 * disagree with the cloud", exactly as the evaluation's baselines do (switcher/metrics.ts `policies`). A rule is a
 * switcher release of its own (release/release.ts `ruleRelease`): no model file, its threshold on this scale.
 * Pure: numbers in, numbers out.
 *
 * @module
 */

/** The confidence rules, by name. */
export const CONFIDENCE_RULES = ["max_prob", "margin", "entropy"] as const;

/** One confidence rule. */
export type ConfidenceRule = typeof CONFIDENCE_RULES[number];

/** Feature column each rule reads (see `BASE_FEATURES` in features.ts) and whether low values mean "unsure". */
const RULE_COLUMN: Record<ConfidenceRule, { column: number; lowIsUnsure: boolean }> = {
  max_prob: { column: 0, lowIsUnsure: true },
  margin: { column: 1, lowIsUnsure: true },
  entropy: { column: 2, lowIsUnsure: false },
};

/**
 * The feature column a rule reads.
 *
 * @param rule the rule
 * @returns its column in the switcher feature vector
 */
export function ruleColumn(rule: ConfidenceRule): number {
  return RULE_COLUMN[rule].column;
}

/**
 * The rule's score of one feature vector: 1 - max probability, 1 - margin, or the normalised entropy.
 *
 * @param rule the rule
 * @param features a full switcher feature vector
 * @returns the score, higher offloads first
 */
export function ruleScore(rule: ConfidenceRule, features: ArrayLike<number>): number {
  const { column, lowIsUnsure } = RULE_COLUMN[rule];
  return lowIsUnsure ? 1 - features[column] : features[column];
}

/**
 * The rule's scores of many feature vectors.
 *
 * @param rule the rule
 * @param rows full switcher feature vectors
 * @returns one score per row
 */
export function ruleScores(rule: ConfidenceRule, rows: ArrayLike<number>[]): Float64Array {
  return Float64Array.from(rows, (r) => ruleScore(rule, r));
}
