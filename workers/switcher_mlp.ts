/**
 * The switcher's ONNX model read back into plain JavaScript: the graph that switcher/onnx_writer.ts writes
 * (`features -> (Gather columns) -> Sub(mean) -> Div(std) -> (Gemm -> Relu)* -> Gemm -> Sigmoid -> score`) scored
 * with typed-array loops instead of a second onnxruntime session. The network is a few thousand multiply-adds; a
 * session run costs far more in call overhead than in arithmetic (about 10% of the edge model's time; issue 14).
 *
 * Every step is float32 as in onnxruntime: Sub and Div are rounded to float32 (so they are bit-identical), each
 * Gemm output is accumulated in float64 and rounded once, the sigmoid is exact then rounded. Scores differ from
 * onnxruntime's only in the last bits of the Gemm sums and of its sigmoid approximation
 * (tests/switcher_mlp_test.ts measures the bound). A graph of any other form returns null, and the caller scores
 * it with onnxruntime.
 *
 * The protobuf reading covers the fields of onnx/onnx.proto that the graph uses (ModelProto.graph, GraphProto.node
 * and initializer, NodeProto inputs, outputs, op and int attributes, TensorProto dims, type, float/int64/raw data).
 *
 * @module
 */

/** Scores feature rows: `x` is `n x f` row-major; returns one score per row. */
export type SwitcherScoreFn = (x: Float32Array, n: number) => Float32Array;

interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  ints: Map<string, number>;
  floats: Map<string, number>;
}

interface Tensor {
  dims: number[];
  type: number;
  floats: Float32Array | null;
  ints: number[] | null;
}

const FLOAT = 1;
const INT64 = 7;

/** A protobuf reader over one message's bytes: fields as (number, wire type, value). */
class Reader {
  private pos = 0;
  private readonly view: DataView;

  constructor(private readonly bytes: Uint8Array) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  done(): boolean {
    return this.pos >= this.bytes.length;
  }

  varint(): number {
    let result = 0;
    let scale = 1;
    for (let i = 0; i < 10; i++) {
      if (this.pos >= this.bytes.length) throw new RangeError("truncated varint");
      const b = this.bytes[this.pos++];
      result += (b & 0x7f) * scale;
      scale *= 128;
      if ((b & 0x80) === 0) return result >= 2 ** 63 ? result - 2 ** 64 : result;
    }
    throw new RangeError("varint too long");
  }

  /** The next field: its number, wire type, and the value (a number, or the bytes of a length-delimited field). */
  field(): { num: number; wire: number; value: number | Uint8Array } {
    const key = this.varint();
    const num = Math.floor(key / 8);
    const wire = key & 7;
    switch (wire) {
      case 0:
        return { num, wire, value: this.varint() };
      case 1: {
        const v = this.view.getFloat64(this.pos, true);
        this.pos += 8;
        return { num, wire, value: v };
      }
      case 2: {
        const len = this.varint();
        if (this.pos + len > this.bytes.length) throw new RangeError("truncated field");
        const v = this.bytes.subarray(this.pos, this.pos + len);
        this.pos += len;
        return { num, wire, value: v };
      }
      case 5: {
        const v = this.view.getFloat32(this.pos, true);
        this.pos += 4;
        return { num, wire, value: v };
      }
      default:
        throw new RangeError(`unsupported wire type ${wire}`);
    }
  }
}

const text = new TextDecoder();

function fields(bytes: Uint8Array, visit: (num: number, value: number | Uint8Array) => void): void {
  const r = new Reader(bytes);
  while (!r.done()) {
    const { num, value } = r.field();
    visit(num, value);
  }
}

/** Repeated int64 values, packed (one length-delimited field) or not. */
function pushInts(out: number[], value: number | Uint8Array): void {
  if (typeof value === "number") out.push(value);
  else {
    const r = new Reader(value);
    while (!r.done()) out.push(r.varint());
  }
}

function readNode(bytes: Uint8Array): Node {
  const node: Node = { op: "", inputs: [], outputs: [], ints: new Map(), floats: new Map() };
  fields(bytes, (num, value) => {
    if (num === 1 && value instanceof Uint8Array) node.inputs.push(text.decode(value));
    else if (num === 2 && value instanceof Uint8Array) node.outputs.push(text.decode(value));
    else if (num === 4 && value instanceof Uint8Array) node.op = text.decode(value);
    else if (num === 5 && value instanceof Uint8Array) {
      let name = "";
      let i: number | null = null;
      let f: number | null = null;
      fields(value, (n, v) => {
        if (n === 1 && v instanceof Uint8Array) name = text.decode(v);
        else if (n === 3 && typeof v === "number") i = v;
        else if (n === 2 && typeof v === "number") f = v;
      });
      if (i !== null) node.ints.set(name, i);
      if (f !== null) node.floats.set(name, f);
    }
  });
  return node;
}

function readTensor(bytes: Uint8Array): { name: string; tensor: Tensor } {
  let name = "";
  const dims: number[] = [];
  let type = 0;
  const floatData: number[] = [];
  const intData: number[] = [];
  let raw: Uint8Array | null = null;
  fields(bytes, (num, value) => {
    if (num === 1) pushInts(dims, value);
    else if (num === 2 && typeof value === "number") type = value;
    else if (num === 4) {
      if (typeof value === "number") floatData.push(value);
      else {
        const v = new DataView(value.buffer, value.byteOffset, value.byteLength);
        for (let o = 0; o + 4 <= value.byteLength; o += 4) floatData.push(v.getFloat32(o, true));
      }
    } else if (num === 7) pushInts(intData, value);
    else if (num === 8 && value instanceof Uint8Array) name = text.decode(value);
    else if (num === 9 && value instanceof Uint8Array) raw = value;
  });
  const tensor: Tensor = { dims, type, floats: null, ints: null };
  const bytesOf = raw as Uint8Array | null;
  if (type === FLOAT) {
    if (bytesOf) {
      const v = new DataView(bytesOf.buffer, bytesOf.byteOffset, bytesOf.byteLength);
      tensor.floats = new Float32Array(bytesOf.byteLength / 4);
      for (let i = 0; i < tensor.floats.length; i++) tensor.floats[i] = v.getFloat32(i * 4, true);
    } else tensor.floats = Float32Array.from(floatData);
  } else if (type === INT64) {
    if (bytesOf) {
      const v = new DataView(bytesOf.buffer, bytesOf.byteOffset, bytesOf.byteLength);
      tensor.ints = Array.from({ length: bytesOf.byteLength / 8 }, (_, i) => Number(v.getBigInt64(i * 8, true)));
    } else tensor.ints = intData;
  }
  return { name, tensor };
}

function readGraph(model: Uint8Array): { nodes: Node[]; initializers: Map<string, Tensor>; input: string } | null {
  let graph: Uint8Array | null = null;
  fields(model, (num, value) => {
    if (num === 7 && value instanceof Uint8Array) graph = value;
  });
  if (!graph) return null;
  const nodes: Node[] = [];
  const initializers = new Map<string, Tensor>();
  const inputs: string[] = [];
  fields(graph, (num, value) => {
    if (!(value instanceof Uint8Array)) return;
    if (num === 1) nodes.push(readNode(value));
    else if (num === 5) {
      const { name, tensor } = readTensor(value);
      initializers.set(name, tensor);
    } else if (num === 11) {
      fields(value, (n, v) => {
        if (n === 1 && v instanceof Uint8Array) inputs.push(text.decode(v));
      });
    }
  });
  const input = inputs.find((i) => !initializers.has(i));
  return input ? { nodes, initializers, input } : null;
}

/** One dense layer as read from a Gemm node: `weight` is `outSize x inSize`, row-major. */
interface Dense {
  inSize: number;
  outSize: number;
  weight: Float32Array;
  bias: Float32Array;
  relu: boolean;
}

/** The network read from the graph. */
interface Network {
  columns: number[] | null;
  mean: Float32Array;
  std: Float32Array;
  layers: Dense[];
}

/** Walk the node chain; any deviation from the exporter's form gives null. */
function readNetwork(bytes: Uint8Array): Network | null {
  const g = readGraph(bytes);
  if (!g) return null;
  const { nodes, initializers } = g;
  let k = 0;
  let x = g.input;
  const float = (name: string | undefined) => (name ? initializers.get(name)?.floats ?? null : null);
  let columns: number[] | null = null;
  const gather = nodes[k];
  if (gather?.op === "Gather") {
    const cols = gather.inputs[1] ? initializers.get(gather.inputs[1])?.ints : null;
    if (gather.inputs[0] !== x || !cols || (gather.ints.get("axis") ?? 0) !== 1) return null;
    columns = cols;
    x = gather.outputs[0];
    k++;
  }
  const sub = nodes[k++];
  const div = nodes[k++];
  if (sub?.op !== "Sub" || sub.inputs[0] !== x || div?.op !== "Div" || div.inputs[0] !== sub.outputs[0]) return null;
  const mean = float(sub.inputs[1]);
  const std = float(div.inputs[1]);
  if (!mean || !std || mean.length !== std.length) return null;
  x = div.outputs[0];
  const layers: Dense[] = [];
  let width = mean.length;
  while (nodes[k]?.op === "Gemm") {
    const gemm = nodes[k++];
    const weight = float(gemm.inputs[1]);
    const bias = float(gemm.inputs[2]);
    const wDims = initializers.get(gemm.inputs[1])?.dims;
    const plain = (gemm.ints.get("transB") ?? 0) === 1 && (gemm.ints.get("transA") ?? 0) === 0 &&
      (gemm.floats.get("alpha") ?? 1) === 1 && (gemm.floats.get("beta") ?? 1) === 1;
    if (gemm.inputs[0] !== x || !weight || !bias || !wDims || wDims.length !== 2 || !plain) return null;
    const [outSize, inSize] = wDims;
    if (inSize !== width || weight.length !== outSize * inSize || bias.length !== outSize) return null;
    x = gemm.outputs[0];
    const relu = nodes[k]?.op === "Relu" && nodes[k].inputs[0] === x;
    if (relu) x = nodes[k++].outputs[0];
    layers.push({ inSize, outSize, weight, bias, relu });
    width = outSize;
  }
  const sigmoid = nodes[k++];
  const last = layers[layers.length - 1];
  if (!last || last.relu || last.outSize !== 1 || sigmoid?.op !== "Sigmoid" || sigmoid.inputs[0] !== x) return null;
  if (k !== nodes.length || layers.slice(0, -1).some((l) => !l.relu)) return null;
  return { columns, mean, std, layers };
}

/**
 * Read a switcher's ONNX model as a plain-JS scorer, when the graph is the exporter's MLP form.
 *
 * @param bytes the ONNX model
 * @param f the feature count of a row (the graph's input width)
 * @returns the scorer, or null when the graph has another form (score it with onnxruntime)
 * @example
 * const score = switcherMlp(release.artefact, release.features.length);
 * const scores = score?.(features, 1);
 */
export function switcherMlp(bytes: Uint8Array, f: number): SwitcherScoreFn | null {
  let net: Network | null;
  try {
    net = readNetwork(bytes);
  } catch {
    return null;
  }
  if (!net) return null;
  const { mean, std, layers } = net;
  const columns = net.columns ?? Array.from({ length: f }, (_, i) => i);
  if (columns.length !== mean.length || columns.some((c) => !(c >= 0 && c < f))) return null;
  const cols = Int32Array.from(columns);
  const widest = Math.max(mean.length, ...layers.map((l) => l.outSize));
  let a = new Float32Array(widest);
  let b = new Float32Array(widest);
  const round = Math.fround;
  return (x, n) => {
    if (x.length !== n * f) throw new TypeError(`Cannot score features: expected ${n * f} values, got ${x.length}`);
    const out = new Float32Array(n);
    for (let r = 0; r < n; r++) {
      const row = r * f;
      for (let i = 0; i < cols.length; i++) a[i] = round(round(x[row + cols[i]] - mean[i]) / std[i]);
      for (const l of layers) {
        for (let o = 0; o < l.outSize; o++) {
          let z = 0;
          const w = o * l.inSize;
          for (let i = 0; i < l.inSize; i++) z += l.weight[w + i] * a[i];
          const v = round(round(z) + l.bias[o]);
          b[o] = l.relu && v < 0 ? 0 : v;
        }
        const t = a;
        a = b;
        b = t;
      }
      out[r] = round(1 / (1 + Math.exp(-a[0])));
    }
    return out;
  };
}
