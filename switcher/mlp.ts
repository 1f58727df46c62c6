/**
 * The switcher network: a small MLP trained on weighted binary targets (hard or soft DMD labels) to predict
 * P(edge answer != cloud answer). Inputs are standardised with the training data's mean and std; hidden layers use
 * ReLU; the output is a sigmoid. Adam, minibatches, L2, early stopping on a seeded validation split.
 *
 * Written out here rather than taken from a library: the network is a few thousand parameters and the whole trainer
 * is a few typed-array loops, deterministic for a seed and free of native code.
 *
 * @module
 */
import { createPrng } from "./prng.ts";

/** One dense layer: `weight` is `outSize x inSize`, row-major. */
export interface DenseLayer {
  inSize: number;
  outSize: number;
  weight: Float32Array;
  bias: Float32Array;
}

/** A trained switcher network. */
export interface MlpModel {
  /** Feature means and standard deviations used to standardise the input. */
  mean: Float32Array;
  std: Float32Array;
  /** Hidden layers (ReLU) then the output layer (one unit, sigmoid). */
  layers: DenseLayer[];
}

/** Options of {@link trainMlp}. */
export interface TrainOptions {
  /** Hidden layer widths. @default [32] */
  hidden?: number[];
  /** @default 60 */
  epochs?: number;
  /** @default 256 */
  batchSize?: number;
  /** Adam step size. @default 0.003 */
  learningRate?: number;
  /** L2 penalty on weights. @default 0.0001 */
  l2?: number;
  /** @default 1 */
  seed?: number;
  /** Fraction held out for early stopping. @default 0.15 */
  validationFraction?: number;
  /** Epochs without validation improvement before stopping. @default 8 */
  patience?: number;
  /** Called after each epoch. */
  onEpoch?: (epoch: number, trainLoss: number, validationLoss: number) => void;
}

/** What training did. */
export interface TrainResult {
  model: MlpModel;
  history: { epoch: number; trainLoss: number; validationLoss: number }[];
  bestEpoch: number;
}

const STD_FLOOR = 1e-6;
const EPS = 1e-7;

function checkData(x: Float32Array, n: number, f: number, targets: ArrayLike<number>, weights?: ArrayLike<number>) {
  if (n < 2) throw new RangeError(`Cannot train switcher: expected at least 2 rows, got ${n}`);
  if (x.length !== n * f) {
    throw new TypeError(`Cannot train switcher: expected ${n * f} feature values, got ${x.length}`);
  }
  if (targets.length !== n) throw new TypeError(`Cannot train switcher: expected ${n} targets, got ${targets.length}`);
  if (weights && weights.length !== n) {
    throw new TypeError(`Cannot train switcher: expected ${n} weights, got ${weights.length}`);
  }
  for (let i = 0; i < x.length; i++) {
    if (!Number.isFinite(x[i])) throw new RangeError(`Cannot train switcher: feature value ${i} is not finite`);
  }
  for (let i = 0; i < n; i++) {
    const t = targets[i];
    if (!(t >= 0 && t <= 1)) throw new RangeError(`Cannot train switcher: target ${i} is not in [0, 1]`);
    if (weights && !(weights[i] >= 0 && Number.isFinite(weights[i]))) {
      throw new RangeError(`Cannot train switcher: weight ${i} is not a finite number >= 0`);
    }
  }
}

/**
 * Forward pass for a batch, keeping each layer's activations (for back-propagation).
 * `acts[0]` is the standardised input; `acts[L]` holds the output probabilities.
 */
function forward(model: MlpModel, xs: Float32Array, rows: number): Float64Array[] {
  const f = model.mean.length;
  const input = new Float64Array(rows * f);
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < f; k++) input[r * f + k] = (xs[r * f + k] - model.mean[k]) / model.std[k];
  }
  const acts: Float64Array[] = [input];
  model.layers.forEach((layer, li) => {
    const last = li === model.layers.length - 1;
    const prev = acts[li];
    const out = new Float64Array(rows * layer.outSize);
    for (let r = 0; r < rows; r++) {
      for (let o = 0; o < layer.outSize; o++) {
        let z = layer.bias[o];
        const w = o * layer.inSize;
        const a = r * layer.inSize;
        for (let i = 0; i < layer.inSize; i++) z += layer.weight[w + i] * prev[a + i];
        out[r * layer.outSize + o] = last ? 1 / (1 + Math.exp(-z)) : z > 0 ? z : 0;
      }
    }
    acts.push(out);
  });
  return acts;
}

/**
 * Several networks of the same shape as one: its logit is the mean of theirs (so its score ranks as the mean logit
 * does), exactly, in one network of the usual form that exports and scores like any other. The first layer reads the
 * first network's standardised input (the others' standardisation folded into their weights), hidden layers sit side
 * by side (block-diagonal), and the output averages.
 *
 * @param models networks with the same input width and the same layer widths
 * @returns the merged network
 * @throws RangeError when there is none, or their shapes differ
 */
export function mergeMlps(models: MlpModel[]): MlpModel {
  if (models.length === 0) throw new RangeError("Cannot merge networks: expected at least one");
  if (models.length === 1) return models[0];
  const [first] = models;
  const f = first.mean.length;
  const shape = (m: MlpModel) => [m.mean.length, ...m.layers.map((l) => l.outSize)].join("x");
  if (models.some((m) => shape(m) !== shape(first)) || first.layers.at(-1)!.outSize !== 1) {
    throw new RangeError(
      `Cannot merge networks: expected one shape with one output, got ${models.map(shape).join(", ")}`,
    );
  }
  const k = models.length;
  const layers: DenseLayer[] = first.layers.map((layer, li) => {
    const last = li === first.layers.length - 1;
    const inSize = li === 0 ? f : layer.inSize * k;
    const outSize = last ? 1 : layer.outSize * k;
    const weight = new Float32Array(outSize * inSize);
    const bias = new Float32Array(outSize);
    models.forEach((m, j) => {
      const l = m.layers[li];
      for (let o = 0; o < l.outSize; o++) {
        const row = last ? 0 : j * l.outSize + o;
        // The output layer averages the members' logits; a hidden layer keeps each member's units.
        const share = last ? 1 / k : 1;
        let b = l.bias[o];
        for (let i = 0; i < l.inSize; i++) {
          const w = l.weight[o * l.inSize + i];
          if (li === 0) {
            // Member j standardises x as (x - mean_j) / std_j; the merged input is (x - mean_0) / std_0.
            weight[row * inSize + i] += (share * w * first.std[i]) / m.std[i];
            b += (w * (first.mean[i] - m.mean[i])) / m.std[i];
          } else weight[row * inSize + j * l.inSize + i] += share * w;
        }
        bias[row] += share * b;
      }
    });
    return { inSize, outSize, weight, bias };
  });
  return { mean: Float32Array.from(first.mean), std: Float32Array.from(first.std), layers };
}

/**
 * Scores of a trained switcher.
 *
 * @param model the network
 * @param x features, `n x F` row-major
 * @param n number of rows
 * @returns one score in (0, 1) per row
 */
export function predictMlp(model: MlpModel, x: Float32Array, n: number): Float32Array {
  const f = model.mean.length;
  if (x.length !== n * f) throw new TypeError(`Cannot score features: expected ${n * f} values, got ${x.length}`);
  const out = new Float32Array(n);
  const chunk = 1024;
  for (let s = 0; s < n; s += chunk) {
    const rows = Math.min(chunk, n - s);
    const acts = forward(model, x.subarray(s * f, (s + rows) * f), rows);
    out.set(acts[acts.length - 1], s);
  }
  return out;
}

function weightedLoss(p: ArrayLike<number>, t: ArrayLike<number>, w: ArrayLike<number>, idx: number[]): number {
  let loss = 0;
  let total = 0;
  for (let j = 0; j < idx.length; j++) {
    const i = idx[j];
    const q = Math.min(1 - EPS, Math.max(EPS, p[j]));
    loss -= w[i] * (t[i] * Math.log(q) + (1 - t[i]) * Math.log(1 - q));
    total += w[i];
  }
  return total > 0 ? loss / total : 0;
}

/**
 * Train the switcher.
 *
 * @param data `x` (n x f features, row-major), `n`, `f`, `targets` in [0, 1], optional `weights` (default 1)
 * @param options architecture and optimisation settings
 * @returns the network with the best validation loss, and the loss history
 * @throws TypeError on mismatched lengths; RangeError on non-finite values or targets outside [0, 1]
 */
export function trainMlp(
  data: { x: Float32Array; n: number; f: number; targets: ArrayLike<number>; weights?: ArrayLike<number> },
  options: TrainOptions = {},
): TrainResult {
  const { x, n, f, targets } = data;
  checkData(x, n, f, targets, data.weights);
  const weights = data.weights ?? new Float64Array(n).fill(1);
  const hidden = options.hidden ?? [32];
  const epochs = options.epochs ?? 60;
  const batchSize = options.batchSize ?? 256;
  const lr = options.learningRate ?? 0.003;
  const l2 = options.l2 ?? 1e-4;
  const patience = options.patience ?? 8;
  const rng = createPrng(options.seed ?? 1);

  const order = rng.shuffle(Array.from({ length: n }, (_, i) => i));
  const nVal = Math.min(n - 1, Math.max(1, Math.round(n * (options.validationFraction ?? 0.15))));
  const valIdx = order.slice(0, nVal);
  const trainIdx = order.slice(nVal);

  // Standardisation from the training rows.
  const mean = new Float32Array(f);
  const std = new Float32Array(f);
  for (const i of trainIdx) for (let k = 0; k < f; k++) mean[k] += x[i * f + k] / trainIdx.length;
  for (const i of trainIdx) for (let k = 0; k < f; k++) std[k] += (x[i * f + k] - mean[k]) ** 2 / trainIdx.length;
  for (let k = 0; k < f; k++) std[k] = Math.max(Math.sqrt(std[k]), STD_FLOOR);

  const sizes = [f, ...hidden, 1];
  const layers: DenseLayer[] = [];
  for (let l = 0; l < sizes.length - 1; l++) {
    const inSize = sizes[l];
    const outSize = sizes[l + 1];
    const scale = Math.sqrt(2 / inSize); // He initialisation
    const weight = new Float32Array(outSize * inSize).map(() => rng.normal() * scale);
    layers.push({ inSize, outSize, weight, bias: new Float32Array(outSize) });
  }
  const model: MlpModel = { mean, std, layers };

  // Adam state.
  const m = layers.map((l) => ({ w: new Float64Array(l.weight.length), b: new Float64Array(l.bias.length) }));
  const v = layers.map((l) => ({ w: new Float64Array(l.weight.length), b: new Float64Array(l.bias.length) }));
  const beta1 = 0.9;
  const beta2 = 0.999;
  let step = 0;

  const gather = (idx: number[]) => {
    const xs = new Float32Array(idx.length * f);
    idx.forEach((i, r) => xs.set(x.subarray(i * f, (i + 1) * f), r * f));
    return xs;
  };
  const valX = gather(valIdx);
  const history: TrainResult["history"] = [];
  let best = {
    loss: Infinity,
    epoch: 0,
    layers: layers.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() })),
  };

  for (let epoch = 1; epoch <= epochs; epoch++) {
    rng.shuffle(trainIdx);
    let trainLoss = 0;
    let trainWeight = 0;
    for (let s = 0; s < trainIdx.length; s += batchSize) {
      const idx = trainIdx.slice(s, s + batchSize);
      const rows = idx.length;
      const acts = forward(model, gather(idx), rows);
      const out = acts[acts.length - 1];
      let wsum = 0;
      for (const i of idx) wsum += weights[i];
      if (wsum === 0) continue;
      for (let j = 0; j < rows; j++) {
        const q = Math.min(1 - EPS, Math.max(EPS, out[j]));
        const t = targets[idx[j]];
        trainLoss -= weights[idx[j]] * (t * Math.log(q) + (1 - t) * Math.log(1 - q));
      }
      trainWeight += wsum;
      // Back-propagation. For a sigmoid output with cross-entropy, dL/dz = w (p - t) / sum(w).
      let delta = new Float64Array(rows);
      for (let j = 0; j < rows; j++) delta[j] = (weights[idx[j]] * (out[j] - targets[idx[j]])) / wsum;
      step++;
      for (let li = layers.length - 1; li >= 0; li--) {
        const layer = layers[li];
        const prev = acts[li];
        const gw = new Float64Array(layer.weight.length);
        const gb = new Float64Array(layer.outSize);
        for (let r = 0; r < rows; r++) {
          for (let o = 0; o < layer.outSize; o++) {
            const d = delta[r * layer.outSize + o];
            if (d === 0) continue;
            gb[o] += d;
            const w = o * layer.inSize;
            const a = r * layer.inSize;
            for (let i = 0; i < layer.inSize; i++) gw[w + i] += d * prev[a + i];
          }
        }
        if (li > 0) {
          const next = new Float64Array(rows * layer.inSize);
          for (let r = 0; r < rows; r++) {
            for (let o = 0; o < layer.outSize; o++) {
              const d = delta[r * layer.outSize + o];
              if (d === 0) continue;
              const w = o * layer.inSize;
              const a = r * layer.inSize;
              for (let i = 0; i < layer.inSize; i++) next[a + i] += d * layer.weight[w + i];
            }
          }
          for (let k = 0; k < next.length; k++) if (prev[k] <= 0) next[k] = 0; // ReLU
          delta = next;
        }
        const c1 = 1 - beta1 ** step;
        const c2 = 1 - beta2 ** step;
        for (let k = 0; k < gw.length; k++) {
          const g = gw[k] + l2 * layer.weight[k];
          m[li].w[k] = beta1 * m[li].w[k] + (1 - beta1) * g;
          v[li].w[k] = beta2 * v[li].w[k] + (1 - beta2) * g * g;
          layer.weight[k] -= (lr * (m[li].w[k] / c1)) / (Math.sqrt(v[li].w[k] / c2) + 1e-8);
        }
        for (let k = 0; k < gb.length; k++) {
          m[li].b[k] = beta1 * m[li].b[k] + (1 - beta1) * gb[k];
          v[li].b[k] = beta2 * v[li].b[k] + (1 - beta2) * gb[k] * gb[k];
          layer.bias[k] -= (lr * (m[li].b[k] / c1)) / (Math.sqrt(v[li].b[k] / c2) + 1e-8);
        }
      }
    }
    const valP = predictMlp(model, valX, valIdx.length);
    const validationLoss = weightedLoss(valP, targets, weights, valIdx);
    const avgTrain = trainWeight > 0 ? trainLoss / trainWeight : 0;
    history.push({ epoch, trainLoss: avgTrain, validationLoss });
    options.onEpoch?.(epoch, avgTrain, validationLoss);
    if (validationLoss < best.loss - 1e-6) {
      best = {
        loss: validationLoss,
        epoch,
        layers: layers.map((l) => ({ ...l, weight: l.weight.slice(), bias: l.bias.slice() })),
      };
    } else if (epoch - best.epoch >= patience) break;
  }
  return { model: { mean, std, layers: best.layers }, history, bestEpoch: best.epoch };
}
