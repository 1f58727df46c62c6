"""Convert a TensorFlow.js graph model (model.json + weight shards) to ONNX, for the ops MoveNet uses.

No TensorFlow is needed: the graph JSON is read as JSON, the weights as raw little-endian shards (float16-quantized
float32 weights are widened back to float32), and each TF op is written as the ONNX ops that compute the same thing.

Layout: TF.js graphs are NHWC. Convolutions, depthwise convolutions, bilinear resizes and additions of their outputs
run in NCHW in the ONNX graph (what onnxruntime's kernels want); every other op sees the tensor in its TF (NHWC)
layout, and a Transpose is inserted wherever a tensor crosses between the two. The outputs keep the TF signature;
the inputs do too (MoveNet: int32 [1, S, S, 3] RGB) unless `--input-layout nchw` / `--input-dtype` say otherwise:
an NCHW input feeds the convolutions directly, and the transposes the graph then has in front of its NHWC
pre-processing are pushed down and cancelled by onnxruntime's transpose optimiser (`--ort-optimize`, or at session
start).

    python3 scripts/models/tfjs_to_onnx.py --model movenet-lightning.json --out pose.onnx \
      [--input-layout nchw] [--input-dtype DT_FLOAT] [--ort-optimize extended]
"""

from __future__ import annotations

import argparse
import base64
import json
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

DTYPES = {"float32": np.float32, "int32": np.int32}
TF_DTYPES = {"DT_FLOAT": TensorProto.FLOAT, "DT_INT32": TensorProto.INT32}
CONV_OPS = {"_FusedConv2D", "FusedDepthwiseConv2dNative", "DepthwiseConv2dNative", "Conv2D"}
SUPPORTED = CONV_OPS | {
    "Const", "Placeholder", "Identity", "Cast", "Unpack", "Pack", "ExpandDims", "Squeeze", "Sub", "Mul", "AddV2",
    "RealDiv", "Sigmoid", "Sqrt", "SquaredDifference", "ResizeBilinear", "Reshape", "ArgMax", "FloorDiv", "GatherNd",
    "ConcatV2",
}


def load_weights(model: dict, folder: Path) -> dict[str, np.ndarray]:
    """Every Const's value, in manifest order across the shards."""
    out: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        data = b"".join((folder / p).read_bytes() for p in group["paths"])
        offset = 0
        for w in group["weights"]:
            shape = [int(d) for d in w["shape"]]
            count = int(np.prod(shape)) if shape else 1
            quant = w.get("quantization")
            if quant is None:
                dt = np.dtype(DTYPES[w["dtype"]])
                arr = np.frombuffer(data, dtype=dt, count=count, offset=offset)
                offset += count * dt.itemsize
            elif quant["dtype"] == "float16":
                arr = np.frombuffer(data, dtype=np.float16, count=count, offset=offset).astype(np.float32)
                offset += count * 2
            else:
                raise ValueError(f"unsupported weight quantization {quant} for {w['name']}")
            out[w["name"]] = arr.reshape(shape).copy()
    return out


def attr_list(node: dict, key: str) -> list[int]:
    return [int(i) for i in node.get("attr", {}).get(key, {}).get("list", {}).get("i", [])]


def attr_str(node: dict, key: str) -> str:
    s = node.get("attr", {}).get(key, {}).get("s", "")
    return base64.b64decode(s).decode() if s else ""


def attr_int(node: dict, key: str, default: int = 0) -> int:
    return int(node.get("attr", {}).get(key, {}).get("i", default))


def attr_bool(node: dict, key: str) -> bool:
    return bool(node.get("attr", {}).get(key, {}).get("b", False))


class Converter:
    def __init__(self, model: dict, weights: dict[str, np.ndarray], input_layout: str = "nhwc",
                 input_dtype: str = ""):
        self.model = model
        self.input_layout = input_layout
        self.input_dtype = input_dtype
        self.weights = weights
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.layout: dict[str, str] = {}  # tensor name -> "nhwc" | "nchw"
        self.hw: dict[str, tuple[int, int]] = {}  # spatial size of 4D conv-path tensors
        self.transposed: dict[str, str] = {}
        self.counter = 0

    def fresh(self, base: str) -> str:
        self.counter += 1
        return f"{base}__{self.counter}"

    def const(self, name: str, value: np.ndarray) -> str:
        if value.dtype == np.float32 and value.size >= 256 and np.array_equal(value.astype(np.float16), value):
            # The published weights are float16: store them so (half the file) and widen once at session start.
            self.inits.append(numpy_helper.from_array(value.astype(np.float16), name + "_f16"))
            self.nodes.append(helper.make_node("Cast", [name + "_f16"], [name], name=self.fresh("Cast"),
                                               to=TensorProto.FLOAT))
            return name
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], outputs: list[str], **attrs) -> None:
        self.nodes.append(helper.make_node(op, inputs, outputs, name=self.fresh(op), **attrs))

    @staticmethod
    def ref(name: str) -> str:
        """TF input reference -> tensor name ("a" and "a:0" are output 0)."""
        if name.endswith(":0"):
            return name[:-2]
        return name

    def as_nhwc(self, t: str) -> str:
        if self.layout.get(t, "nhwc") == "nhwc":
            return t
        if t not in self.transposed:
            out = self.fresh(t + "_nhwc")
            self.node("Transpose", [t], [out], perm=[0, 2, 3, 1])
            self.transposed[t] = out
        return self.transposed[t]

    def as_nchw(self, t: str) -> str:
        if self.layout.get(t) == "nchw":
            return t
        key = t + "#nchw"
        if key not in self.transposed:
            out = self.fresh(t + "_nchw")
            self.node("Transpose", [t], [out], perm=[0, 3, 1, 2])
            self.transposed[key] = out
        return self.transposed[key]

    def value(self, t: str) -> np.ndarray:
        if t not in self.weights:
            raise ValueError(f"{t} must be a constant")
        return self.weights[t]

    def spatial(self, t: str) -> tuple[int, int]:
        if t in self.hw:
            return self.hw[t]
        raise ValueError(f"spatial size of {t} unknown")

    def convert(self) -> onnx.ModelProto:
        topo = self.model["modelTopology"]["node"]
        unknown = sorted({n["op"] for n in topo if n["op"] not in SUPPORTED})
        if unknown:
            raise ValueError(f"unsupported TF ops: {unknown}")
        inputs, outputs = [], []
        for n in topo:
            name, op = n["name"], n["op"]
            ins = [self.ref(i) for i in n.get("input", []) if not i.startswith("^")]
            if op == "Const":
                self.const(name, self.weights[name])
                continue
            if op == "Placeholder":
                dims = [int(d["size"]) for d in n["attr"]["shape"]["shape"]["dim"]]
                dtype = TF_DTYPES[self.input_dtype] if self.input_dtype else TF_DTYPES[n["attr"]["dtype"]["type"]]
                self.layout[name] = "nhwc"
                if len(dims) == 4:
                    self.hw[name] = (dims[1], dims[2])
                    if self.input_layout == "nchw":
                        dims = [dims[0], dims[3], dims[1], dims[2]]
                        self.layout[name] = "nchw"
                inputs.append(helper.make_tensor_value_info(name, dtype, dims))
                continue
            getattr(self, "op_" + op)(n, name, ins)
        sig = self.model.get("signature", {}).get("outputs", {})
        for key, spec in sig.items():
            t = self.ref(spec["name"])
            dims = [int(d["size"]) for d in spec["tensorShape"]["dim"]]
            out_name = key.split(":")[0]
            src = self.as_nhwc(t)
            if src != out_name:
                self.node("Identity", [src], [out_name + "_out"])
                out_name = out_name + "_out"
            outputs.append(helper.make_tensor_value_info(out_name, TF_DTYPES[spec["dtype"]], dims))
        # Constants read at conversion time (shapes, axes, weights rewritten to NCHW) are dropped when no node uses them.
        nodes = list(self.nodes)
        wanted = {o.name for o in outputs}
        while True:
            used = {i for n in nodes for i in n.input} | wanted
            live = [n for n in nodes if any(o in used for o in n.output)]
            if len(live) == len(nodes):
                break
            nodes = live
        inits = [t for t in self.inits if t.name in used]
        graph = helper.make_graph(nodes, "tfjs_graph", inputs, outputs, inits)
        m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="dmd-edge tfjs_to_onnx")
        m.ir_version = 8
        return m

    # --- convolution path (NCHW) ---

    def conv(self, n: dict, name: str, ins: list[str], depthwise: bool) -> None:
        x = self.as_nchw(ins[0])
        w = self.value(ins[1])  # HWIO, or HW C M for depthwise
        strides = attr_list(n, "strides")[1:3] or [1, 1]
        dil = attr_list(n, "dilations")[1:3] or [1, 1]
        padding = attr_str(n, "padding")
        if attr_str(n, "data_format") not in ("", "NHWC"):
            raise ValueError(f"{name}: only NHWC convolutions are supported")
        if depthwise:
            kh, kw, c, m = w.shape
            wt = w.transpose(2, 3, 0, 1).reshape(c * m, 1, kh, kw)
            group = c
        else:
            wt = w.transpose(3, 2, 0, 1)
            group = 1
        args = [x, self.const(name + "/W", np.ascontiguousarray(wt, dtype=np.float32))]
        fused = [base64.b64decode(s).decode() for s in n.get("attr", {}).get("fused_ops", {}).get("list", {}).get("s", [])]
        if fused and fused[0] == "BiasAdd":
            args.append(self.const(name + "/B", self.value(ins[2]).astype(np.float32)))
            fused = fused[1:]
        elif fused:
            raise ValueError(f"{name}: unsupported fused ops {fused}")
        attrs = {"strides": strides, "dilations": dil, "group": group, "kernel_shape": list(wt.shape[2:])}
        if padding == "SAME":
            attrs["auto_pad"] = "SAME_UPPER"
        elif padding == "VALID":
            attrs["pads"] = [0, 0, 0, 0]
        else:
            raise ValueError(f"{name}: padding {padding!r} unsupported")
        out = name if not fused else self.fresh(name + "_conv")
        self.node("Conv", args, [out], **attrs)
        for i, f in enumerate(fused):
            nxt = name if i == len(fused) - 1 else self.fresh(name + "_act")
            if f == "Relu":
                self.node("Relu", [out], [nxt])
            elif f == "Relu6":
                self.node("Clip", [out, self.const(self.fresh("zero"), np.array(0, np.float32)),
                                   self.const(self.fresh("six"), np.array(6, np.float32))], [nxt])
            else:
                raise ValueError(f"{name}: unsupported fused op {f}")
            out = nxt
        h, wd = self.spatial(ins[0])
        if padding == "SAME":
            self.hw[name] = (math.ceil(h / strides[0]), math.ceil(wd / strides[1]))
        else:
            kh, kw = wt.shape[2:]
            self.hw[name] = ((h - (kh - 1) * dil[0] - 1) // strides[0] + 1, (wd - (kw - 1) * dil[1] - 1) // strides[1] + 1)
        self.layout[name] = "nchw"

    def op__FusedConv2D(self, n, name, ins):
        self.conv(n, name, ins, depthwise=False)

    def op_Conv2D(self, n, name, ins):
        self.conv(n, name, ins, depthwise=False)

    def op_FusedDepthwiseConv2dNative(self, n, name, ins):
        self.conv(n, name, ins, depthwise=True)

    def op_DepthwiseConv2dNative(self, n, name, ins):
        self.conv(n, name, ins, depthwise=True)

    def op_ResizeBilinear(self, n, name, ins):
        size = self.value(ins[1]).astype(np.int64)
        h, w = self.spatial(ins[0])
        if attr_bool(n, "align_corners"):
            mode = "align_corners"
        elif attr_bool(n, "half_pixel_centers"):
            mode = "half_pixel"
        else:
            mode = "asymmetric"
        scales = np.array([1, 1, size[0] / h, size[1] / w], np.float32)
        self.node("Resize", [self.as_nchw(ins[0]), "", self.const(name + "/scales", scales)], [name],
                  mode="linear", coordinate_transformation_mode=mode)
        self.hw[name] = (int(size[0]), int(size[1]))
        self.layout[name] = "nchw"

    def op_AddV2(self, n, name, ins):
        if all(self.layout.get(i) == "nchw" for i in ins):
            self.node("Add", ins, [name])
            self.layout[name] = "nchw"
            self.hw[name] = self.spatial(ins[0])
        else:
            self.node("Add", [self.as_nhwc(i) for i in ins], [name])

    # --- everything else (TF layout) ---

    def simple(self, op: str, ins: list[str], name: str, **attrs) -> None:
        self.node(op, [self.as_nhwc(i) for i in ins], [name], **attrs)
        if len(ins) == 1 and ins[0] in self.hw:
            self.hw[name] = self.hw[ins[0]]

    def op_Identity(self, n, name, ins):
        self.simple("Identity", ins, name)

    def op_Sigmoid(self, n, name, ins):
        self.simple("Sigmoid", ins, name)

    def op_Sqrt(self, n, name, ins):
        self.simple("Sqrt", ins, name)

    def op_Sub(self, n, name, ins):
        self.simple("Sub", ins, name)
        self.keep_hw(name, ins)

    def op_Mul(self, n, name, ins):
        self.simple("Mul", ins, name)
        self.keep_hw(name, ins)

    def op_RealDiv(self, n, name, ins):
        self.simple("Div", ins, name)

    def op_FloorDiv(self, n, name, ins):
        # Integer division; the graph divides non-negative indices only, where truncation is the floor.
        self.simple("Div", ins, name)

    def keep_hw(self, name: str, ins: list[str]) -> None:
        for i in ins:
            if i in self.hw and i not in self.weights:
                self.hw[name] = self.hw[i]

    def op_SquaredDifference(self, n, name, ins):
        d = self.fresh(name + "_diff")
        self.node("Sub", [self.as_nhwc(i) for i in ins], [d])
        self.node("Mul", [d, d], [name])

    def op_Cast(self, n, name, ins):
        dst = TF_DTYPES[n["attr"]["DstT"]["type"]]
        self.simple("Cast", ins, name, to=dst)

    def axes_const(self, name: str, axes: list[int]) -> str:
        return self.const(self.fresh(name + "_axes"), np.array(axes, np.int64))

    def op_ExpandDims(self, n, name, ins):
        axis = int(self.value(ins[1]))
        self.node("Unsqueeze", [self.as_nhwc(ins[0]), self.axes_const(name, [axis])], [name])
        if axis == 0 and ins[0] in self.hw:
            self.hw[name] = self.hw[ins[0]]

    def op_Squeeze(self, n, name, ins):
        dims = attr_list(n, "squeeze_dims")
        self.node("Squeeze", [self.as_nhwc(ins[0]), self.axes_const(name, dims)], [name])
        if dims == [0] and ins[0] in self.hw:
            self.hw[name] = self.hw[ins[0]]

    def op_Unpack(self, n, name, ins):
        axis, num = attr_int(n, "axis"), attr_int(n, "num")
        outs = [name if i == 0 else f"{name}:{i}" for i in range(num)]
        parts = [self.fresh(f"{name}_part{i}") for i in range(num)]
        self.node("Split", [self.as_nhwc(ins[0]), self.const(self.fresh(name + "_split"), np.ones(num, np.int64))],
                  parts, axis=axis)
        for p, o in zip(parts, outs):
            self.node("Squeeze", [p, self.axes_const(name, [axis])], [o])
        if axis == 0 and ins[0] in self.hw:
            self.hw[name] = self.hw[ins[0]]

    def op_Pack(self, n, name, ins):
        axis = attr_int(n, "axis")
        parts = []
        for i in ins:
            p = self.fresh(name + "_unsq")
            self.node("Unsqueeze", [self.as_nhwc(i), self.axes_const(name, [axis])], [p])
            parts.append(p)
        self.node("Concat", parts, [name], axis=axis)

    def op_ConcatV2(self, n, name, ins):
        axis = int(self.value(ins[-1]))
        self.node("Concat", [self.as_nhwc(i) for i in ins[:-1]], [name], axis=axis)

    def op_Reshape(self, n, name, ins):
        shape = self.const(self.fresh(name + "_shape"), self.value(ins[1]).astype(np.int64))
        self.node("Reshape", [self.as_nhwc(ins[0]), shape], [name])

    def op_ArgMax(self, n, name, ins):
        axis = int(self.value(ins[1]))
        raw = self.fresh(name + "_i64")
        self.node("ArgMax", [self.as_nhwc(ins[0])], [raw], axis=axis, keepdims=0)
        out_t = n.get("attr", {}).get("output_type", {}).get("type", "DT_INT64")
        if out_t == "DT_INT32":
            self.node("Cast", [raw], [name], to=TensorProto.INT32)
        else:
            self.node("Identity", [raw], [name])

    def op_GatherNd(self, n, name, ins):
        idx = self.fresh(name + "_idx")
        self.node("Cast", [self.as_nhwc(ins[1])], [idx], to=TensorProto.INT64)
        self.node("GatherND", [self.as_nhwc(ins[0]), idx], [name])


def ort_optimize(path: Path, level: str) -> None:
    """Replace the model at `path` by what onnxruntime makes of it at `level`, so that sessions start from the
    optimised graph. Kept to levels whose output is portable: "basic" (constant folding, transpose push-down and
    cancelling, redundant node removal; standard ONNX ops) and "extended" (plus Conv+activation fusion into
    com.microsoft FusedConv, which onnxruntime-web's CPU kernels run). Never "all": its NCHWc layout is the
    building machine's CPU's. Folded constants are stored as float32 (the float16 storage is folded away)."""
    import onnxruntime as ort  # build-time only

    so = ort.SessionOptions()
    so.graph_optimization_level = {
        "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
        "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
    }[level]
    tmp = path.with_suffix(".opt.onnx")
    so.optimized_model_filepath = str(tmp)
    ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    tmp.replace(path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, type=Path, help="TF.js graph model.json")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--input-layout", choices=["nhwc", "nchw"], default="nhwc",
                    help="layout of 4D inputs (nchw: the tensor goes straight to the convolutions)")
    ap.add_argument("--input-dtype", choices=["", "DT_FLOAT", "DT_INT32"], default="",
                    help="dtype of the inputs (default: as in the TF graph)")
    ap.add_argument("--ort-optimize", choices=["none", "basic", "extended"], default="none",
                    help="save the graph as onnxruntime optimises it at this level (offline, with the Python package)")
    args = ap.parse_args()
    model = json.loads(args.model.read_text())
    if model.get("format") != "graph-model":
        raise SystemExit(f"{args.model}: not a TF.js graph model")
    weights = load_weights(model, args.model.parent)
    onnx_model = Converter(model, weights, args.input_layout, args.input_dtype).convert()
    onnx.checker.check_model(onnx_model, full_check=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    onnx.save(onnx_model, str(args.out))
    if args.ort_optimize != "none":
        ort_optimize(args.out, args.ort_optimize)
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes, {len(onnx.load(str(args.out)).graph.node)} nodes)")


if __name__ == "__main__":
    main()
