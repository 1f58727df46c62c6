/**
 * Switcher features: what the edge knows about a request before any cloud call (DESIGN.md, "The learning loop").
 * Pure: numbers in, numbers out. The worker computes them after the edge model; the DMD trainer reads them back
 * from the decision log, so both sides share this one definition.
 *
 * @module
 */

/** Names of the fixed features, in order; the edge embedding follows as `emb_0 ... emb_{E-1}`. */
export const BASE_FEATURES = [
  "p_max",
  "margin",
  "entropy",
  "conf_mean",
  "missing_frac",
  "motion_energy",
] as const;

/** Shape of one preprocessed sequence: `frames` x `joints` x `channels`. */
export interface SequenceShape {
  frames: number;
  joints: number;
  channels: number;
  /** Index of the confidence channel, or null when the data has none. */
  confidenceChannel: number | null;
}

/**
 * The full feature name list for an edge embedding of `embeddingSize` values.
 *
 * @param embeddingSize length of the edge embedding (0 to leave it out)
 * @returns feature names in input order
 */
export function featureNames(embeddingSize: number): string[] {
  const names: string[] = [...BASE_FEATURES];
  for (let i = 0; i < embeddingSize; i++) names.push(`emb_${i}`);
  return names;
}

/**
 * Softmax of one row of logits, computed stably.
 *
 * @param logits class logits
 * @returns class probabilities summing to 1
 */
export function softmax(logits: ArrayLike<number>): Float64Array {
  const out = new Float64Array(logits.length);
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  let sum = 0;
  for (let i = 0; i < logits.length; i++) {
    out[i] = Math.exp(logits[i] - max);
    sum += out[i];
  }
  for (let i = 0; i < out.length; i++) out[i] /= sum;
  return out;
}

/**
 * Confidence statistics of a probability vector.
 *
 * @param probs class probabilities
 * @returns the top-1 index and probability, the margin to the runner-up and the entropy normalised to [0, 1]
 */
export function probabilityStats(
  probs: ArrayLike<number>,
): { top: number; pMax: number; margin: number; entropy: number } {
  if (probs.length < 2) {
    throw new RangeError(`Cannot summarise probabilities: expected at least 2, got ${probs.length}`);
  }
  let top = 0;
  let second = -1;
  for (let i = 1; i < probs.length; i++) {
    if (probs[i] > probs[top]) {
      second = top;
      top = i;
    } else if (second < 0 || probs[i] > probs[second]) second = i;
  }
  let h = 0;
  for (let i = 0; i < probs.length; i++) if (probs[i] > 0) h -= probs[i] * Math.log(probs[i]);
  return { top, pMax: probs[top], margin: probs[top] - probs[second], entropy: h / Math.log(probs.length) };
}

/**
 * Input-quality statistics of one preprocessed sequence.
 *
 * A point is missing when its confidence is 0 or, without a confidence channel, when all its channels are 0.
 * Motion energy is the mean absolute frame-to-frame change of the non-confidence channels over points present in
 * both frames.
 *
 * @param frames the sequence, flattened `[frames, joints, channels]`
 * @param shape its shape
 * @returns mean confidence (1 without a confidence channel), missing fraction and motion energy
 */
export function qualityStats(
  frames: ArrayLike<number>,
  shape: SequenceShape,
): { confMean: number; missingFrac: number; motionEnergy: number } {
  const { frames: t, joints: j, channels: c, confidenceChannel: cc } = shape;
  if (frames.length !== t * j * c) {
    throw new TypeError(`Cannot compute quality: expected ${t * j * c} values, got ${frames.length}`);
  }
  const present = (f: number, p: number): boolean => {
    const base = (f * j + p) * c;
    if (cc !== null) return frames[base + cc] > 0;
    for (let k = 0; k < c; k++) if (frames[base + k] !== 0) return true;
    return false;
  };
  let confSum = 0;
  let missing = 0;
  let motion = 0;
  let motionCount = 0;
  for (let f = 0; f < t; f++) {
    for (let p = 0; p < j; p++) {
      const base = (f * j + p) * c;
      if (cc !== null) confSum += frames[base + cc];
      const here = present(f, p);
      if (!here) missing++;
      if (f > 0 && here && present(f - 1, p)) {
        const prev = base - j * c;
        for (let k = 0; k < c; k++) {
          if (k === cc) continue;
          motion += Math.abs(frames[base + k] - frames[prev + k]);
          motionCount++;
        }
      }
    }
  }
  const points = t * j;
  return {
    confMean: cc === null ? 1 : confSum / points,
    missingFrac: missing / points,
    motionEnergy: motionCount === 0 ? 0 : motion / motionCount,
  };
}

/**
 * The switcher's input for one request.
 *
 * @param probs the edge model's class probabilities
 * @param embedding the edge model's embedding (may be empty)
 * @param quality input-quality statistics from {@link qualityStats}
 * @returns the feature vector, ordered as {@link featureNames}
 */
export function switcherFeatures(
  probs: ArrayLike<number>,
  embedding: ArrayLike<number>,
  quality: { confMean: number; missingFrac: number; motionEnergy: number },
): Float32Array {
  const s = probabilityStats(probs);
  const out = new Float32Array(BASE_FEATURES.length + embedding.length);
  out.set([s.pMax, s.margin, s.entropy, quality.confMean, quality.missingFrac, quality.motionEnergy]);
  out.set(Array.from(embedding), BASE_FEATURES.length);
  return out;
}

/**
 * Named feature subsets, as column indices of the full feature vector (`all`: every column). The `+novelty` and
 * `+pca` sets read the embedding through an embedding transform (switcher/embedding_transform.ts): its novelty, and
 * a few principal components with it.
 */
export const FEATURE_SETS = [
  "confidence",
  "confidence+quality",
  "confidence+quality+novelty",
  "confidence+quality+pca",
  "all",
] as const;

/** A named feature subset. */
export type FeatureSet = typeof FEATURE_SETS[number];

/**
 * The columns of a feature subset.
 *
 * @param set the subset: `confidence` (max probability, margin, entropy), `confidence+quality` (plus mean
 *   confidence, missing fraction, motion energy) or `all` (plus the edge embedding); the `+novelty` and `+pca` sets
 *   read every column, through their transform
 * @param featureCount length of the full feature vector
 * @returns column indices, ascending
 */
export function featureColumns(set: FeatureSet, featureCount: number): number[] {
  const n = set === "confidence" ? 3 : set === "confidence+quality" ? BASE_FEATURES.length : featureCount;
  if (n > featureCount) throw new RangeError(`Cannot select ${set} features: only ${featureCount} features`);
  return Array.from({ length: n }, (_, i) => i);
}

/**
 * The values of some columns of a feature vector.
 *
 * @param features the full vector
 * @param columns column indices
 * @returns the selected values
 */
export function selectColumns(features: ArrayLike<number>, columns: number[]): Float32Array {
  return Float32Array.from(columns, (c) => features[c]);
}
