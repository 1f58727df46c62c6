"""Split a model at one tensor into the two models either side of it, to time each part on its own
(`deno task bench:runtime --model PART`).

    python3 scripts/models/split_graph.py wasm-models/edge.int8.onnx build/parts [--at TENSOR]

Without --at, the cut is where the int8 network starts: the input of the first QuantizeLinear that quantises an
activation (not a weight). The float part before it is the input normalisation and the velocity features
(nets.py); the part after it is the quantised network. Writes OUT/float.onnx (the model's inputs to the cut) and
OUT/int8.onnx (the cut to the model's outputs), and prints both parts' node counts by operator.
"""
import argparse
import collections
from pathlib import Path

import onnx
from onnx import utils


def first_activation_quantize(graph):
    weights = {i.name for i in graph.initializer}
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.input[0] not in weights:
            return node.input[0]
    raise SystemExit("split_graph: no QuantizeLinear on an activation; name the cut with --at")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("out")
    p.add_argument("--at", help="the tensor to cut at (default: where the int8 network starts)")
    a = p.parse_args()
    model = onnx.load(a.model)
    cut = a.at or first_activation_quantize(model.graph)
    names = {o for n in model.graph.node for o in n.output}
    if cut not in names:
        raise SystemExit(f"split_graph: no node writes the tensor {cut!r}")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    inputs = [i.name for i in model.graph.input]
    outputs = [o.name for o in model.graph.output]
    utils.extract_model(a.model, str(out / "float.onnx"), inputs, [cut])
    utils.extract_model(a.model, str(out / "int8.onnx"), [cut], outputs)
    print(f"cut at {cut}")
    for part in ("float", "int8"):
        ops = collections.Counter(n.op_type for n in onnx.load(str(out / f"{part}.onnx")).graph.node)
        print(f"{out / part}.onnx: {sum(ops.values())} nodes:", ", ".join(f"{k} {v}" for k, v in ops.most_common()))


if __name__ == "__main__":
    main()
