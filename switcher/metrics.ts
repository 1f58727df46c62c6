/**
 * Metrics of a hybrid edge-cloud classifier, shared by the DMD job, the evaluation harness and retraining. Pure:
 * predictions, labels and scores in, numbers out.
 *
 * A routing policy is a score per sequence: the hybrid offloads the sequences with the highest scores first. The
 * hybrid's prediction for a sequence is the cloud's when offloaded and the edge's otherwise.
 *
 * @module
 */
import { createPrng } from "./prng.ts";

function checkLengths(action: string, n: number, arrays: Record<string, ArrayLike<number>>): void {
  if (n === 0) throw new RangeError(`Cannot ${action}: expected at least 1 sequence, got 0`);
  for (const [name, a] of Object.entries(arrays)) {
    if (a.length !== n) throw new TypeError(`Cannot ${action}: expected ${n} ${name}, got ${a.length}`);
  }
}

/**
 * Fraction of predictions equal to the truth.
 *
 * @param pred predicted class indices
 * @param truth true class indices
 * @returns accuracy in [0, 1]
 */
export function accuracy(pred: ArrayLike<number>, truth: ArrayLike<number>): number {
  checkLengths("compute accuracy", truth.length, { predictions: pred });
  let c = 0;
  for (let i = 0; i < truth.length; i++) if (pred[i] === truth[i]) c++;
  return c / truth.length;
}

/**
 * Macro-averaged F1 over the classes that occur in the truth or the predictions (a class absent from both has no
 * F1 and is left out).
 *
 * @param pred predicted class indices
 * @param truth true class indices
 * @param classes number of classes
 * @returns macro-F1 in [0, 1]
 */
export function macroF1(pred: ArrayLike<number>, truth: ArrayLike<number>, classes: number): number {
  checkLengths("compute macro-F1", truth.length, { predictions: pred });
  const tp = new Float64Array(classes);
  const fp = new Float64Array(classes);
  const fn = new Float64Array(classes);
  for (let i = 0; i < truth.length; i++) {
    if (pred[i] === truth[i]) tp[truth[i]]++;
    else {
      fp[pred[i]]++;
      fn[truth[i]]++;
    }
  }
  return f1FromCounts(tp, fp, fn);
}

function f1FromCounts(tp: Float64Array, fp: Float64Array, fn: Float64Array): number {
  let sum = 0;
  let present = 0;
  for (let c = 0; c < tp.length; c++) {
    const d = 2 * tp[c] + fp[c] + fn[c];
    if (d === 0) continue;
    sum += (2 * tp[c]) / d;
    present++;
  }
  return present === 0 ? 0 : sum / present;
}

/**
 * Weighted ROC AUC: the weighted probability that a positive scores above a negative (ties count half).
 *
 * @param scores one score per pair
 * @param labels 1 for positive
 * @param weights one weight per pair
 * @returns the AUC, NaN without both classes
 */
export function weightedAuc(scores: ArrayLike<number>, labels: ArrayLike<number>, weights: ArrayLike<number>): number {
  const n = scores.length;
  if (labels.length !== n || weights.length !== n) {
    throw new RangeError(`Cannot compute AUC: ${n} scores, ${labels.length} labels, ${weights.length} weights`);
  }
  const idx = Array.from({ length: n }, (_, i) => i).sort((a, b) => scores[a] - scores[b]);
  let negBelow = 0;
  let total = 0;
  let posW = 0;
  let negW = 0;
  for (let i = 0; i < n;) {
    let j = i;
    let pos = 0;
    let neg = 0;
    while (j < n && scores[idx[j]] === scores[idx[i]]) {
      if (labels[idx[j]]) pos += weights[idx[j]];
      else neg += weights[idx[j]];
      j++;
    }
    total += pos * (negBelow + neg / 2);
    negBelow += neg;
    posW += pos;
    negW += neg;
    i = j;
  }
  return posW === 0 || negW === 0 ? NaN : total / (posW * negW);
}

/**
 * Area under the ROC curve of scores against binary labels (the Mann-Whitney statistic; tied scores count half).
 *
 * @param scores higher means more likely positive
 * @param labels 1 for positive, 0 for negative
 * @returns the AUC, or NaN when only one class is present
 */
export function rocAuc(scores: ArrayLike<number>, labels: ArrayLike<number>): number {
  checkLengths("compute AUC", scores.length, { labels });
  return weightedAuc(scores, labels, new Float64Array(scores.length).fill(1));
}

/** One point of an accuracy-versus-offload curve. */
export interface CurvePoint {
  /** Fraction of sequences offloaded. */
  rate: number;
  accuracy: number;
  macroF1: number;
  /** Fraction of hybrid predictions equal to the cloud's. */
  agreement: number;
}

/** Inputs of a hybrid curve. */
export interface HybridInputs {
  edgePred: ArrayLike<number>;
  cloudPred: ArrayLike<number>;
  truth: ArrayLike<number>;
  classes: number;
}

/**
 * The order in which a policy offloads: by score, highest first; ties keep index order, so the curve is
 * deterministic.
 *
 * @param scores the policy's scores
 * @returns sequence indices, first offloaded first
 */
export function offloadOrder(scores: ArrayLike<number>): number[] {
  return Array.from({ length: scores.length }, (_, i) => i).sort((a, b) => scores[b] - scores[a] || a - b);
}

/**
 * The hybrid's accuracy, macro-F1 and agreement after offloading the top-k sequences by score, for every k from 0
 * (edge only) to n (cloud only).
 *
 * @param inputs edge, cloud and true class indices and the class count
 * @param scores the policy's scores (higher offloads first)
 * @returns n + 1 points, rates 0, 1/n, ..., 1
 */
export function hybridCurve(inputs: HybridInputs, scores: ArrayLike<number>): CurvePoint[] {
  const { edgePred, cloudPred, truth, classes } = inputs;
  const n = truth.length;
  checkLengths("compute hybrid curve", n, { "edge predictions": edgePred, "cloud predictions": cloudPred, scores });
  const tp = new Float64Array(classes);
  const fp = new Float64Array(classes);
  const fn = new Float64Array(classes);
  let correct = 0;
  let agree = 0;
  const add = (p: number, t: number, sign: number) => {
    if (p === t) tp[t] += sign;
    else {
      fp[p] += sign;
      fn[t] += sign;
    }
  };
  for (let i = 0; i < n; i++) {
    add(edgePred[i], truth[i], 1);
    if (edgePred[i] === truth[i]) correct++;
    if (edgePred[i] === cloudPred[i]) agree++;
  }
  const points: CurvePoint[] = [{
    rate: 0,
    accuracy: correct / n,
    macroF1: f1FromCounts(tp, fp, fn),
    agreement: agree / n,
  }];
  const order = offloadOrder(scores);
  for (let k = 0; k < n; k++) {
    const i = order[k];
    add(edgePred[i], truth[i], -1);
    add(cloudPred[i], truth[i], 1);
    correct += (cloudPred[i] === truth[i] ? 1 : 0) - (edgePred[i] === truth[i] ? 1 : 0);
    if (edgePred[i] !== cloudPred[i]) agree++;
    points.push({ rate: (k + 1) / n, accuracy: correct / n, macroF1: f1FromCounts(tp, fp, fn), agreement: agree / n });
  }
  return points;
}

/**
 * Area under a curve's accuracy over offload rates 0..1 (trapezoid rule).
 *
 * @param points a curve
 * @param key which figure @default "accuracy"
 * @returns the area
 */
export function curveArea(points: CurvePoint[], key: "accuracy" | "macroF1" | "agreement" = "accuracy"): number {
  let area = 0;
  for (let i = 1; i < points.length; i++) {
    area += ((points[i].rate - points[i - 1].rate) * (points[i][key] + points[i - 1][key])) / 2;
  }
  return area;
}

/**
 * The smallest offload rate whose accuracy reaches a target (e.g. cloud-only accuracy).
 *
 * @param points a curve
 * @param target accuracy to reach
 * @returns the rate, or null when no point reaches it
 */
export function minRateReaching(points: CurvePoint[], target: number): number | null {
  for (const p of points) if (p.accuracy >= target - 1e-12) return p.rate;
  return null;
}

/**
 * The best accuracy on a curve and the smallest rate where it occurs.
 *
 * @param points a curve
 * @returns accuracy and rate
 */
export function bestPoint(points: CurvePoint[]): CurvePoint {
  return points.reduce((b, p) => (p.accuracy > b.accuracy + 1e-12 ? p : b), points[0]);
}

/**
 * The curve's point nearest to a rate.
 *
 * @param points a curve
 * @param rate an offload rate in [0, 1]
 * @returns the point
 */
export function pointAt(points: CurvePoint[], rate: number): CurvePoint {
  return points[Math.round(rate * (points.length - 1))];
}

/**
 * Standard error of an accuracy measured on n sequences.
 *
 * @param p accuracy
 * @param n sequences
 * @returns sqrt(p (1 - p) / n)
 */
export function accuracyStandardError(p: number, n: number): number {
  return Math.sqrt((p * (1 - p)) / n);
}

/**
 * Standard error of the difference between two accuracies measured on the same sequences (paired): the standard
 * deviation of the per-sequence difference of correctness, over sqrt(n).
 *
 * @param a 1/0 correctness of the first classifier per sequence
 * @param b 1/0 correctness of the second, same order
 * @returns the difference (a - b) and its standard error
 */
export function pairedDifference(
  a: ArrayLike<number>,
  b: ArrayLike<number>,
): { difference: number; standardError: number } {
  checkLengths("compare accuracies", a.length, { "second correctness values": b });
  const n = a.length;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += (a[i] - b[i]) / n;
  let v = 0;
  for (let i = 0; i < n; i++) v += (a[i] - b[i] - mean) ** 2;
  const sd = n > 1 ? Math.sqrt(v / (n - 1)) : 0;
  return { difference: mean, standardError: sd / Math.sqrt(n) };
}

/** Baseline policies, as scores. */
export const policies = {
  /** Offload the least confident first: 1 - max probability. */
  maxProbability: (pMax: ArrayLike<number>): Float64Array => Float64Array.from(pMax, (p) => 1 - p),
  /** Offload the smallest top-2 margin first. */
  margin: (margin: ArrayLike<number>): Float64Array => Float64Array.from(margin, (m) => 1 - m),
  /** Offload the highest entropy first. */
  entropy: (entropy: ArrayLike<number>): Float64Array => Float64Array.from(entropy),
  /** Offload in a seeded random order. */
  random: (n: number, seed: number): Float64Array => {
    const rng = createPrng(seed);
    return Float64Array.from({ length: n }, () => rng.next());
  },
  /**
   * The oracle, which knows the truth: first where the edge is wrong and the cloud right, then where both are
   * wrong, then the rest; a sequence the edge gets right and the cloud wrong is offloaded last.
   */
  oracle: (inputs: Omit<HybridInputs, "classes">): Float64Array =>
    Float64Array.from({ length: inputs.truth.length }, (_, i) => {
      const e = inputs.edgePred[i] === inputs.truth[i];
      const c = inputs.cloudPred[i] === inputs.truth[i];
      return !e && c ? 3 : !e && !c ? 2 : e && c ? 1 : 0;
    }),
};
