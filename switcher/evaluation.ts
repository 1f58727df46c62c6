/**
 * Evaluation of routing policies on a labelled set (DESIGN.md, "Evaluation"), pure: the two models' outputs, the
 * truth and each policy's scores in; curves and summaries out. Shared by `deno task eval` and retraining.
 *
 * A policy offloads the sequences with the highest scores first. Its hybrid answer for an offloaded sequence is
 * the cloud's, or, for a fusion policy, the argmax of the averaged edge and cloud probabilities.
 *
 * @module
 */
import {
  accuracy,
  accuracyStandardError,
  bestPoint,
  curveArea,
  type CurvePoint,
  hybridCurve,
  macroF1,
  minRateReaching,
  offloadOrder,
  pairedDifference,
  pointAt,
} from "./metrics.ts";

/** A policy to evaluate. */
export interface Policy {
  name: string;
  scores: ArrayLike<number>;
  /** What an offloaded sequence answers: the cloud's label (default) or the fused label. */
  answer?: "cloud" | "fusion";
}

/** Summary of one policy. */
export interface PolicySummary {
  name: string;
  answer: "cloud" | "fusion";
  /** Area under accuracy vs offload rate (0..1). */
  accuracyArea: number;
  macroF1Area: number;
  /** Smallest offload rate reaching cloud-only accuracy, or null. */
  rateToCloudAccuracy: number | null;
  best: { accuracy: number; macroF1: number; rate: number };
  /** Accuracy and macro-F1 at the requested rates. */
  at: { rate: number; accuracy: number; macroF1: number }[];
  /** Best hybrid accuracy minus each single model's, paired over the same sequences, with standard errors. */
  bestVsEdge: { difference: number; standardError: number };
  bestVsCloud: { difference: number; standardError: number };
  /** The curve on a grid of `gridPoints` rates. */
  curve: CurvePoint[];
}

/** Everything one evaluation reports. */
export interface EvaluationReport {
  sequences: number;
  classes: number;
  edgeOnly: { accuracy: number; macroF1: number; standardError: number };
  cloudOnly: { accuracy: number; macroF1: number; standardError: number };
  /** Fraction of sequences where the two models agree. */
  agreement: number;
  policies: PolicySummary[];
}

/** Inputs of {@link evaluatePolicies}. */
export interface EvaluationInputs {
  truth: ArrayLike<number>;
  edgeProbs: ArrayLike<number>[];
  cloudProbs: ArrayLike<number>[];
  classes: number;
}

function argmax(p: ArrayLike<number>): number {
  let b = 0;
  for (let i = 1; i < p.length; i++) if (p[i] > p[b]) b = i;
  return b;
}

/** Per-sequence correctness (1/0) of a hybrid that offloads the top `rate` fraction by score. */
function hybridCorrect(
  truth: ArrayLike<number>,
  edgePred: ArrayLike<number>,
  offPred: ArrayLike<number>,
  scores: ArrayLike<number>,
  rate: number,
): Uint8Array {
  const n = truth.length;
  const off = new Uint8Array(n);
  offloadOrder(scores).slice(0, Math.round(rate * n)).forEach((i) => (off[i] = 1));
  return Uint8Array.from({ length: n }, (_, i) => ((off[i] ? offPred[i] : edgePred[i]) === truth[i] ? 1 : 0));
}

/**
 * Evaluate policies.
 *
 * @param inputs truth, both models' probabilities, class count
 * @param policies the policies, as scores
 * @param options `rates` to report (default 0.1, 0.2, 0.3, 0.5) and `gridPoints` of the stored curves (default 101)
 * @returns the report
 */
export function evaluatePolicies(
  inputs: EvaluationInputs,
  policies: Policy[],
  options: { rates?: number[]; gridPoints?: number } = {},
): EvaluationReport {
  const { truth, classes } = inputs;
  const n = truth.length;
  if (inputs.edgeProbs.length !== n || inputs.cloudProbs.length !== n) {
    throw new TypeError(`Cannot evaluate: expected ${n} edge and cloud outputs`);
  }
  const rates = options.rates ?? [0.1, 0.2, 0.3, 0.5];
  const grid = options.gridPoints ?? 101;
  const edgePred = inputs.edgeProbs.map(argmax);
  const cloudPred = inputs.cloudProbs.map(argmax);
  const fusedPred = inputs.edgeProbs.map((e, i) => argmax(Array.from(e, (v, k) => v + inputs.cloudProbs[i][k])));
  const edgeAcc = accuracy(edgePred, truth);
  const cloudAcc = accuracy(cloudPred, truth);
  const edgeCorrect = Uint8Array.from(edgePred, (p, i) => (p === truth[i] ? 1 : 0));
  const cloudCorrect = Uint8Array.from(cloudPred, (p, i) => (p === truth[i] ? 1 : 0));

  const summaries = policies.map((policy): PolicySummary => {
    const answer = policy.answer ?? "cloud";
    const offPred = answer === "fusion" ? fusedPred : cloudPred;
    const curve = hybridCurve({ edgePred, cloudPred: offPred, truth, classes }, policy.scores);
    const best = bestPoint(curve);
    const bestCorrect = hybridCorrect(truth, edgePred, offPred, policy.scores, best.rate);
    return {
      name: policy.name,
      answer,
      accuracyArea: curveArea(curve),
      macroF1Area: curveArea(curve, "macroF1"),
      rateToCloudAccuracy: minRateReaching(curve, cloudAcc),
      best: { accuracy: best.accuracy, macroF1: best.macroF1, rate: best.rate },
      at: rates.map((r) => {
        const p = pointAt(curve, r);
        return { rate: r, accuracy: p.accuracy, macroF1: p.macroF1 };
      }),
      bestVsEdge: pairedDifference(bestCorrect, edgeCorrect),
      bestVsCloud: pairedDifference(bestCorrect, cloudCorrect),
      curve: Array.from({ length: grid }, (_, g) => pointAt(curve, g / (grid - 1))),
    };
  });
  let agree = 0;
  for (let i = 0; i < n; i++) if (edgePred[i] === cloudPred[i]) agree++;
  return {
    sequences: n,
    classes,
    edgeOnly: {
      accuracy: edgeAcc,
      macroF1: macroF1(edgePred, truth, classes),
      standardError: accuracyStandardError(edgeAcc, n),
    },
    cloudOnly: {
      accuracy: cloudAcc,
      macroF1: macroF1(cloudPred, truth, classes),
      standardError: accuracyStandardError(cloudAcc, n),
    },
    agreement: agree / n,
    policies: summaries,
  };
}
