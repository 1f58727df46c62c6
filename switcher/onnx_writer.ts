/**
 * Export a trained switcher ({@link MlpModel}) as an ONNX model, with a minimal protobuf encoder instead of a
 * dependency: the graph is `features [N, F] -> (Gather columns) -> Sub(mean) -> Div(std) -> (Gemm -> Relu)* ->
 * Gemm -> Sigmoid -> score [N, 1]`, with an embedding transform (switcher/embedding_transform.ts) in front of the
 * network when it reads derived features (`Gather` base and embedding columns, `Sub`/`Div` to standardise, `MatMul` onto
 * the principal components, `Mul` + `MatMul` for the novelty, `Concat`), IR version 8, opset 17, loadable by onnxruntime-web and native onnxruntime. Byte-for-byte
 * deterministic for a given model.
 *
 * Field numbers follow onnx/onnx.proto (ModelProto, GraphProto, NodeProto, TensorProto, ValueInfoProto).
 *
 * @module
 */
import type { EmbeddingTransform } from "./embedding_transform.ts";
import type { MlpModel } from "./mlp.ts";

const IR_VERSION = 8;
const OPSET = 17;
const FLOAT = 1; // TensorProto.DataType.FLOAT
const INT64 = 7; // TensorProto.DataType.INT64
const ATTR_INT = 2; // AttributeProto.AttributeType.INT

/** Protobuf writer for the handful of wire types ONNX needs. */
class Writer {
  private chunks: number[] = [];

  varint(value: number): this {
    let v = BigInt(value);
    if (v < 0n) v += 1n << 64n;
    do {
      let byte = Number(v & 0x7fn);
      v >>= 7n;
      if (v > 0n) byte |= 0x80;
      this.chunks.push(byte);
    } while (v > 0n);
    return this;
  }

  tag(field: number, wire: number): this {
    return this.varint((field << 3) | wire);
  }

  int(field: number, value: number): this {
    return this.tag(field, 0).varint(value);
  }

  bytes(field: number, data: Uint8Array): this {
    this.tag(field, 2).varint(data.length);
    for (const b of data) this.chunks.push(b);
    return this;
  }

  string(field: number, value: string): this {
    return this.bytes(field, new TextEncoder().encode(value));
  }

  message(field: number, build: (w: Writer) => void): this {
    const inner = new Writer();
    build(inner);
    return this.bytes(field, inner.finish());
  }

  finish(): Uint8Array {
    return Uint8Array.from(this.chunks);
  }
}

function tensor(w: Writer, name: string, dims: number[], values: Float32Array): void {
  for (const d of dims) w.int(1, d);
  w.int(2, FLOAT);
  w.string(8, name);
  const raw = new Uint8Array(values.length * 4);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setFloat32(i * 4, v, true));
  w.bytes(9, raw);
}

function int64Tensor(w: Writer, name: string, values: number[]): void {
  w.int(1, values.length);
  w.int(2, INT64);
  w.string(8, name);
  const raw = new Uint8Array(values.length * 8);
  const view = new DataView(raw.buffer);
  values.forEach((v, i) => view.setBigInt64(i * 8, BigInt(v), true));
  w.bytes(9, raw);
}

function valueInfo(w: Writer, name: string, dims: (number | string)[]): void {
  w.string(1, name);
  w.message(2, (type) =>
    type.message(1, (t) => {
      t.int(1, FLOAT);
      t.message(2, (shape) => {
        for (const d of dims) {
          shape.message(1, (dim) => (typeof d === "string" ? dim.string(2, d) : dim.int(1, d)));
        }
      });
    }));
}

function node(
  w: Writer,
  options: { op: string; inputs: string[]; outputs: string[]; name: string; ints?: Record<string, number> },
): void {
  for (const i of options.inputs) w.string(1, i);
  for (const o of options.outputs) w.string(2, o);
  w.string(3, options.name);
  w.string(4, options.op);
  for (const [k, v] of Object.entries(options.ints ?? {})) {
    w.message(5, (a) => a.string(1, k).int(3, v).int(20, ATTR_INT));
  }
}

/**
 * Encode a switcher as ONNX bytes.
 *
 * @param model the trained network
 * @param options `version` (written as the graph name and metadata), `features` (names of the graph's input, in
 *   order) and `columns` (the input columns the network reads, when it reads a subset; default all), or `transform`
 *   (the network reads the transform's derived features)
 * @returns the ONNX model
 * @throws TypeError when the feature names or columns do not match the network's input size
 * @example
 * const bytes = exportSwitcherOnnx(model, { version: "switcher-1", features: featureNames(64) });
 * await Deno.writeFile("switcher.onnx", bytes);
 */
export function exportSwitcherOnnx(
  model: MlpModel,
  options: { version: string; features: string[]; columns?: number[]; transform?: EmbeddingTransform },
): Uint8Array {
  const f = model.mean.length;
  const inputSize = options.features.length;
  const t = options.transform;
  if (t && (options.columns || t.start + t.size !== inputSize || t.start + t.componentCount + 1 !== f)) {
    throw new TypeError(
      `Cannot export switcher: the transform reads ${t.start + t.size} features and gives ${
        t.start + t.componentCount + 1
      }, the network reads ${f} of ${inputSize}`,
    );
  }
  const columns = options.columns;
  if (!t && (columns ? columns.length !== f : inputSize !== f)) {
    throw new TypeError(
      `Cannot export switcher: expected ${f} ${columns ? "columns" : "feature names"}, got ${
        columns ? columns.length : inputSize
      }`,
    );
  }
  if (columns?.some((c) => !Number.isInteger(c) || c < 0 || c >= inputSize)) {
    throw new TypeError(`Cannot export switcher: columns must be integers in [0, ${inputSize})`);
  }
  const last = model.layers.length - 1;
  if (model.layers[last]?.outSize !== 1) {
    throw new TypeError("Cannot export switcher: the output layer must have 1 unit");
  }
  const model_ = new Writer();
  model_.int(1, IR_VERSION);
  model_.string(2, "dmd-edge");
  model_.string(3, "1");
  model_.string(6, `dmd-edge switcher ${options.version}: P(edge answer != cloud answer)`);
  model_.message(7, (g) => {
    if (columns) {
      g.message(
        1,
        (n) =>
          node(n, {
            op: "Gather",
            inputs: ["features", "columns"],
            outputs: ["selected"],
            name: "select",
            ints: { axis: 1 },
          }),
      );
    }
    if (t) {
      const gather = (name: string) => (n: Writer) =>
        node(n, { op: "Gather", inputs: ["features", `${name}_columns`], outputs: [name], name, ints: { axis: 1 } });
      g.message(1, gather("base"));
      g.message(1, gather("emb"));
      g.message(1, (n) => node(n, { op: "Sub", inputs: ["emb", "emb_mean"], outputs: ["emb_c"], name: "emb_sub" }));
      g.message(1, (n) => node(n, { op: "Div", inputs: ["emb_c", "emb_std"], outputs: ["emb_z"], name: "emb_div" }));
      if (t.componentCount > 0) {
        g.message(1, (n) => node(n, { op: "MatMul", inputs: ["emb_z", "pca"], outputs: ["pcs"], name: "pca" }));
      }
      g.message(1, (n) => node(n, { op: "Mul", inputs: ["emb_z", "emb_z"], outputs: ["emb_sq"], name: "emb_sq" }));
      g.message(1, (n) => node(n, { op: "MatMul", inputs: ["emb_sq", "avg"], outputs: ["novelty"], name: "novelty" }));
      g.message(1, (n) =>
        node(n, {
          op: "Concat",
          inputs: t.componentCount > 0 ? ["base", "pcs", "novelty"] : ["base", "novelty"],
          outputs: ["derived"],
          name: "derived",
          ints: { axis: 1 },
        }));
    }
    const x = t ? "derived" : columns ? "selected" : "features";
    g.message(1, (n) => node(n, { op: "Sub", inputs: [x, "mean"], outputs: ["centred"], name: "standardise_sub" }));
    g.message(1, (n) => node(n, { op: "Div", inputs: ["centred", "std"], outputs: ["h0"], name: "standardise_div" }));
    model.layers.forEach((_, i) => {
      const z = i === last ? "logit" : `z${i + 1}`;
      g.message(
        1,
        (n) =>
          node(n, {
            op: "Gemm",
            inputs: [`h${i}`, `w${i}`, `b${i}`],
            outputs: [z],
            name: `dense${i}`,
            ints: { transB: 1 },
          }),
      );
      if (i < last) g.message(1, (n) => node(n, { op: "Relu", inputs: [z], outputs: [`h${i + 1}`], name: `relu${i}` }));
    });
    g.message(1, (n) => node(n, { op: "Sigmoid", inputs: ["logit"], outputs: ["score"], name: "sigmoid" }));
    g.string(2, options.version);
    if (columns) g.message(5, (t) => int64Tensor(t, "columns", columns));
    if (t) {
      g.message(5, (w) => int64Tensor(w, "base_columns", Array.from({ length: t.start }, (_, i) => i)));
      g.message(5, (w) => int64Tensor(w, "emb_columns", Array.from({ length: t.size }, (_, i) => t.start + i)));
      g.message(5, (w) => tensor(w, "emb_mean", [t.size], t.mean));
      g.message(5, (w) => tensor(w, "emb_std", [t.size], t.std));
      if (t.componentCount > 0) {
        // MatMul takes [size, components]: the transpose of the row-major components.
        const pca = new Float32Array(t.size * t.componentCount);
        for (let c = 0; c < t.componentCount; c++) {
          for (let k = 0; k < t.size; k++) pca[k * t.componentCount + c] = t.components[c * t.size + k];
        }
        g.message(5, (w) => tensor(w, "pca", [t.size, t.componentCount], pca));
      }
      g.message(5, (w) => tensor(w, "avg", [t.size, 1], new Float32Array(t.size).fill(1 / t.size)));
    }
    g.message(5, (t) => tensor(t, "mean", [f], model.mean));
    g.message(5, (t) => tensor(t, "std", [f], model.std));
    model.layers.forEach((l, i) => {
      g.message(5, (t) => tensor(t, `w${i}`, [l.outSize, l.inSize], l.weight));
      g.message(5, (t) => tensor(t, `b${i}`, [l.outSize], l.bias));
    });
    g.message(11, (v) => valueInfo(v, "features", ["N", inputSize]));
    g.message(12, (v) => valueInfo(v, "score", ["N", 1]));
  });
  model_.message(8, (o) => o.string(1, "").int(2, OPSET));
  model_.message(14, (p) => p.string(1, "features").string(2, options.features.join(",")));
  model_.message(14, (p) => p.string(1, "version").string(2, options.version));
  return model_.finish();
}
