/**
 * Drift the learning loop can see without labels, pure: the agreement rate on shadow pairs, the switcher's score
 * distribution and the edge label distribution, in a recent window against a reference window (the one the active
 * switcher was trained on).
 *
 * Distributions are compared with the population stability index, PSI = sum (r - q) ln(r / q) over bins (scores:
 * 10 equal-width bins on [0, 1]; labels: one bin per label), with a floor of 1e-4 per bin. Conventional reading:
 * below 0.1 stable, 0.1 to 0.25 moderate, above 0.25 a shift. Agreement is compared as a difference of rates with a
 * two-proportion z score.
 *
 * @module
 */

/** One window's observations. */
export interface DriftWindow {
  /** Switcher scores of all decisions. */
  scores: number[];
  /** Edge labels of all decisions. */
  labels: string[];
  /** Agreement (1) or not (0) on the shadow pairs (unbiased sample of kept traffic). */
  shadowAgreement: number[];
}

/** What changed. */
export interface DriftReport {
  scorePsi: number;
  labelPsi: number;
  agreement: { reference: number; recent: number; z: number } | null;
  /** Human-readable findings; empty when nothing shifted. */
  shifts: string[];
  counts: { reference: number; recent: number; referenceShadow: number; recentShadow: number };
}

const FLOOR = 1e-4;

function psi(ref: number[], cur: number[]): number {
  const rs = ref.reduce((a, b) => a + b, 0);
  const cs = cur.reduce((a, b) => a + b, 0);
  if (rs === 0 || cs === 0) return NaN;
  let out = 0;
  for (let i = 0; i < ref.length; i++) {
    const r = Math.max(cur[i] / cs, FLOOR);
    const q = Math.max(ref[i] / rs, FLOOR);
    out += (r - q) * Math.log(r / q);
  }
  return out;
}

function scoreBins(scores: number[]): number[] {
  const bins = new Array(10).fill(0);
  for (const s of scores) bins[Math.min(9, Math.max(0, Math.floor(s * 10)))]++;
  return bins;
}

/**
 * Compare a recent window with a reference window.
 *
 * @param reference the window the active switcher was trained on
 * @param recent the window since
 * @param options `psi` threshold for a shift (default 0.25), `z` for agreement (default 3)
 * @returns PSIs, agreement change and findings
 */
export function detectDrift(
  reference: DriftWindow,
  recent: DriftWindow,
  options: { psi?: number; z?: number } = {},
): DriftReport {
  const psiLimit = options.psi ?? 0.25;
  const zLimit = options.z ?? 3;
  const scorePsi = psi(scoreBins(reference.scores), scoreBins(recent.scores));
  const labels = [...new Set([...reference.labels, ...recent.labels])].sort();
  const count = (xs: string[]) => labels.map((l) => xs.filter((x) => x === l).length);
  const labelPsi = psi(count(reference.labels), count(recent.labels));
  let agreement: DriftReport["agreement"] = null;
  const n1 = reference.shadowAgreement.length;
  const n2 = recent.shadowAgreement.length;
  if (n1 > 0 && n2 > 0) {
    const p1 = reference.shadowAgreement.reduce((a, b) => a + b, 0) / n1;
    const p2 = recent.shadowAgreement.reduce((a, b) => a + b, 0) / n2;
    const p = (p1 * n1 + p2 * n2) / (n1 + n2);
    const se = Math.sqrt(p * (1 - p) * (1 / n1 + 1 / n2));
    agreement = { reference: p1, recent: p2, z: se > 0 ? (p2 - p1) / se : 0 };
  }
  const shifts: string[] = [];
  if (scorePsi > psiLimit) shifts.push(`switcher score distribution shifted (PSI ${scorePsi.toFixed(3)})`);
  if (labelPsi > psiLimit) shifts.push(`edge label distribution shifted (PSI ${labelPsi.toFixed(3)})`);
  if (agreement && Math.abs(agreement.z) > zLimit) {
    shifts.push(
      `shadow agreement moved from ${agreement.reference.toFixed(3)} to ${agreement.recent.toFixed(3)} (z ${
        agreement.z.toFixed(1)
      })`,
    );
  }
  return {
    scorePsi,
    labelPsi,
    agreement,
    shifts,
    counts: { reference: reference.scores.length, recent: recent.scores.length, referenceShadow: n1, recentShadow: n2 },
  };
}
