/**
 * Features from the edge embedding that carry over to new subjects better than the raw embedding: its novelty (the
 * mean squared standardised distance to the pool's embedding mean: an input unlike the traffic the switcher learned
 * from is one the edge is less sure of) and a few principal components of the standardised embedding (a reduced
 * embedding, fewer directions in which to memorise the pool's subjects). Fitted on the training rows only. Pure:
 * numbers in, numbers out; the ONNX export computes the same (switcher/onnx_writer.ts).
 *
 * Output layout: the base features (the columns before the embedding), then `components` principal components, then
 * the novelty.
 *
 * @module
 */
import { createPrng } from "./prng.ts";

/** A fitted embedding transform. */
export interface EmbeddingTransform {
  /** Index of the first embedding column in the full feature vector; the base features are the columns before. */
  start: number;
  /** Embedding length. */
  size: number;
  /** Embedding mean and standard deviation on the training rows. */
  mean: Float32Array;
  std: Float32Array;
  /** Principal directions of the standardised embedding, `components x size`, row-major. */
  components: Float32Array;
  componentCount: number;
}

const STD_FLOOR = 1e-6;

/**
 * Fit the transform on training rows.
 *
 * @param rows full feature vectors
 * @param options `start` (first embedding column), `components` (principal components to keep, 0 for novelty only),
 *   `seed`
 * @returns the transform
 * @throws RangeError without an embedding or with more components than embedding values
 */
export function fitEmbeddingTransform(
  rows: ArrayLike<number>[],
  options: { start: number; components: number; seed?: number },
): EmbeddingTransform {
  const { start } = options;
  const size = (rows[0]?.length ?? 0) - start;
  if (rows.length < 2 || size < 1) {
    throw new RangeError(`Cannot fit embedding features: expected at least 2 rows with an embedding`);
  }
  const m = options.components;
  if (!Number.isInteger(m) || m < 0 || m > size) {
    throw new RangeError(`Cannot fit embedding features: components must be an integer in [0, ${size}], got ${m}`);
  }
  const n = rows.length;
  const mean = new Float64Array(size);
  const std = new Float64Array(size);
  for (const r of rows) for (let k = 0; k < size; k++) mean[k] += r[start + k] / n;
  for (const r of rows) for (let k = 0; k < size; k++) std[k] += (r[start + k] - mean[k]) ** 2 / n;
  for (let k = 0; k < size; k++) std[k] = Math.max(Math.sqrt(std[k]), STD_FLOOR);
  const components = new Float32Array(m * size);
  if (m > 0) {
    // Covariance (here: correlation) of the standardised embedding, then subspace iteration for its top directions.
    const cov = new Float64Array(size * size);
    const z = new Float64Array(size);
    for (const r of rows) {
      for (let k = 0; k < size; k++) z[k] = (r[start + k] - mean[k]) / std[k];
      for (let a = 0; a < size; a++) for (let b = 0; b < size; b++) cov[a * size + b] += (z[a] * z[b]) / n;
    }
    const rng = createPrng(options.seed ?? 1);
    let q = Array.from({ length: m }, () => Float64Array.from({ length: size }, () => rng.normal()));
    for (let it = 0; it < 100; it++) {
      q = q.map((v) => {
        const out = new Float64Array(size);
        for (let a = 0; a < size; a++) {
          let s = 0;
          for (let b = 0; b < size; b++) s += cov[a * size + b] * v[b];
          out[a] = s;
        }
        return out;
      });
      orthonormalise(q);
    }
    q.forEach((v, c) => components.set(v, c * size));
  }
  return {
    start,
    size,
    mean: Float32Array.from(mean),
    std: Float32Array.from(std),
    components,
    componentCount: m,
  };
}

/** Gram-Schmidt in place; a vector that vanishes is replaced by a unit axis orthogonal to the others. */
function orthonormalise(q: Float64Array[]): void {
  for (let i = 0; i < q.length; i++) {
    for (let j = 0; j < i; j++) {
      let d = 0;
      for (let k = 0; k < q[i].length; k++) d += q[i][k] * q[j][k];
      for (let k = 0; k < q[i].length; k++) q[i][k] -= d * q[j][k];
    }
    let norm = Math.sqrt(q[i].reduce((a, v) => a + v * v, 0));
    if (norm < 1e-12) {
      q[i].fill(0);
      q[i][i % q[i].length] = 1;
      norm = 1;
    }
    for (let k = 0; k < q[i].length; k++) q[i][k] /= norm;
  }
  // A fixed sign per direction (largest entry positive), so a fit is the same across runs and platforms.
  for (const v of q) {
    let big = 0;
    for (let k = 1; k < v.length; k++) if (Math.abs(v[k]) > Math.abs(v[big])) big = k;
    if (v[big] < 0) { for (let k = 0; k < v.length; k++) v[k] = -v[k]; }
  }
}

/**
 * The derived feature vector of one full feature vector.
 *
 * @param t the transform
 * @param features a full feature vector
 * @returns base features, principal components, novelty
 */
export function applyEmbeddingTransform(t: EmbeddingTransform, features: ArrayLike<number>): Float32Array {
  if (features.length !== t.start + t.size) {
    throw new TypeError(
      `Cannot derive embedding features: expected ${t.start + t.size} values, got ${features.length}`,
    );
  }
  const out = new Float32Array(t.start + t.componentCount + 1);
  for (let k = 0; k < t.start; k++) out[k] = features[k];
  // Float32 steps, in the order the ONNX graph computes them.
  const z = new Float32Array(t.size);
  let novelty = 0;
  for (let k = 0; k < t.size; k++) {
    z[k] = Math.fround(Math.fround(features[t.start + k] - t.mean[k]) / t.std[k]);
    novelty += z[k] * z[k];
  }
  for (let c = 0; c < t.componentCount; c++) {
    let s = 0;
    for (let k = 0; k < t.size; k++) s += z[k] * t.components[c * t.size + k];
    out[t.start + c] = s;
  }
  out[t.start + t.componentCount] = novelty / t.size;
  return out;
}
