/**
 * DMD labels (Dual-Model Distillation, Wei et al. 2024, section 3): whether the edge answer agrees with the cloud
 * model, computed from the two models' outputs alone, with no human label.
 *
 * @module
 */
import { probabilityStats } from "./features.ts";

/** The DMD label of one pair. */
export interface DmdLabel {
  /** 1 when the edge top-1 class differs from the cloud top-1 class, else 0. */
  hard: 0 | 1;
  /** One minus the cloud's probability of the edge top-1 class ("alignment"): in [0, 1]. */
  soft: number;
}

/**
 * The DMD label of a pair of outputs, or null when the cloud output is missing (the pair cannot teach).
 *
 * @param edgeProbs the edge model's class probabilities
 * @param cloudProbs the cloud model's class probabilities, or null
 * @returns the label, or null
 * @throws TypeError when the two have different lengths
 */
export function dmdLabel(edgeProbs: ArrayLike<number>, cloudProbs: ArrayLike<number> | null): DmdLabel | null {
  if (cloudProbs === null || cloudProbs.length === 0) return null;
  if (edgeProbs.length !== cloudProbs.length) {
    throw new TypeError(
      `Cannot label pair: expected ${edgeProbs.length} cloud probabilities, got ${cloudProbs.length}`,
    );
  }
  const edgeTop = probabilityStats(edgeProbs).top;
  const cloudTop = probabilityStats(cloudProbs).top;
  const soft = Math.min(1, Math.max(0, 1 - cloudProbs[edgeTop]));
  return { hard: edgeTop === cloudTop ? 0 : 1, soft };
}
