/**
 * Confidence rules: the obvious switchers a learned one has to beat. Each scores a request from the edge model's own
 * confidence (the first three switcher features: max probability, margin, entropy), higher meaning "more likely to
 * disagree with the cloud". Pure: numbers in, numbers out.
 *
 * A rule is a release like a learned switcher: {@link ruleAsMlp} writes it as a network with no hidden layer that
 * reads one feature column (`Gather -> Sub -> Div -> Gemm -> Sigmoid`, through the same ONNX export), so the workers
 * serve it with no new code path. Its scores rank requests exactly as the rule does (the sigmoid is monotone), and
 * its threshold is calibrated on those scores like any switcher's.
 *
 * @module
 */
import type { MlpModel } from "./mlp.ts";

/** The confidence rules, by name. */
export const CONFIDENCE_RULES = ["max_prob", "margin", "entropy"] as const;

/** One confidence rule. */
export type ConfidenceRule = typeof CONFIDENCE_RULES[number];

/** Feature column each rule reads (see `BASE_FEATURES` in features.ts) and the sign that makes "unsure" high. */
const RULE_COLUMN: Record<ConfidenceRule, { column: number; sign: number }> = {
  max_prob: { column: 0, sign: -1 },
  margin: { column: 1, sign: -1 },
  entropy: { column: 2, sign: 1 },
};

/** Slope of the exported rule's sigmoid: spreads scores of confidences in [0, 1] over most of (0, 1). */
const RULE_SLOPE = 8;

/**
 * The rule's score of one feature vector: 1 - max probability, 1 - margin, or the normalised entropy.
 *
 * @param rule the rule
 * @param features a full switcher feature vector
 * @returns the score, higher offloads first
 */
export function ruleScore(rule: ConfidenceRule, features: ArrayLike<number>): number {
  const { column, sign } = RULE_COLUMN[rule];
  const v = features[column];
  return sign < 0 ? 1 - v : v;
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

/**
 * The rule as a network with no hidden layer, for export and serving: `sigmoid(slope * (score - 0.5))` where score
 * is {@link ruleScore}, reading only the rule's column.
 *
 * @param rule the rule
 * @returns the network and the one column it reads
 */
export function ruleAsMlp(rule: ConfidenceRule): { model: MlpModel; columns: number[] } {
  const { column, sign } = RULE_COLUMN[rule];
  // sign < 0: slope * ((1 - v) - 0.5) = -slope * v + slope / 2; sign > 0: slope * v - slope / 2.
  const weight = Float32Array.of(sign * RULE_SLOPE);
  const bias = Float32Array.of(-sign * RULE_SLOPE / 2);
  return {
    model: {
      mean: Float32Array.of(0),
      std: Float32Array.of(1),
      layers: [{ inSize: 1, outSize: 1, weight, bias }],
    },
    columns: [column],
  };
}
