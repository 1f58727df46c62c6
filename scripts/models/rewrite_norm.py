"""Rewrite the input normalisation of built models as nets.py builds it now, keeping every weight, and check that the
rewritten graph computes the same numbers.

    python3 scripts/models/rewrite_norm.py DIR [--data FILE.jsonl.gz ...] [--dry-run]

DIR holds manifest.json and the models it names (edge and cloud). For each model, every normalisation subgraph (the
nodes under `/norm/`, or `/members.K/norm/` in an ensemble) is exported anew from nets.PoseNorm or nets.ChannelNorm
with the options the manifest records, and spliced in its place; nothing after it changes. Before a file is
replaced, the old and new subgraphs run on the same inputs in native onnxruntime: random sequences with missing
points, whole sequences missing, a root never seen, and the first window of each sequence in --data. Their outputs
must agree to 1e-5 of the largest value, else the file is left as it was and the script exits 1. The models'
outputs are compared too (largest logit difference, top-1 agreement) and printed. The manifest's sha256 and byte
counts follow, and its provenance records the rewrite.
"""
import argparse
import copy
import datetime
import hashlib
import json
import re
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper, numpy_helper

from build import export
from dataset import read_jsonl
from layouts import bone_pairs_for, find_layout
from nets import ChannelNorm, PoseNorm

PREFIX = re.compile(r"^(/(?:members\.\d+/)?)norm/")
TOLERANCE = 1e-5


def norm_prefixes(graph):
    """The scopes holding a normalisation subgraph: '/' or '/members.K/'."""
    return sorted({m.group(1) for n in graph.node if (m := PREFIX.match(n.name))})


def subgraph(graph, scope):
    """The scope's normalisation nodes, the one tensor they take from outside and the one they hand on."""
    nodes = [n for n in graph.node if n.name.startswith(scope + "norm/")]
    made = {o for n in nodes for o in n.output}
    fixed = {i.name for i in graph.initializer}
    for n in graph.node:  # constants, and what is computed from constants alone (the exporter's shared Identity)
        if all(i in fixed for i in n.input if i):
            fixed.update(n.output)
    inputs = {i for n in nodes for i in n.input if i and i not in made and i not in fixed}
    rest = [n for n in graph.node if not n.name.startswith(scope + "norm/")]
    used = {i for n in rest for i in n.input} | {o.name for o in graph.output}
    outputs = [o for o in made if o in used]
    if len(inputs) != 1 or len(outputs) != 1:
        raise SystemExit(f"rewrite_norm: {scope}norm/ takes {sorted(inputs)} and hands on {sorted(outputs)}; "
                         "expected one tensor each")
    return nodes, inputs.pop(), outputs[0]


def constant(graph, name):
    """The value of a tensor that is an initializer, a Constant node's output or an Identity of one of them."""
    for i in graph.initializer:
        if i.name == name:
            return numpy_helper.to_array(i)
    for n in graph.node:
        if n.op_type == "Constant" and n.output[0] == name:
            return numpy_helper.to_array(n.attribute[0].t)
        if n.op_type == "Identity" and n.output[0] == name:
            return constant(graph, n.input[0])
    return None


def candidates(entry, graph, nodes):
    """The normalisation modules the manifest's options allow (several where an option was found in the data)."""
    window, joints, channels = entry["windowFrames"], entry["joints"], entry["channels"]
    pre = entry.get("provenance", {}).get("preprocessing", {})
    ops = sorted(n.op_type for n in nodes if n.op_type != "Constant")
    if not {"Greater", "Sign"} & set(ops):  # no visibility mask: a sensor layout's ChannelNorm
        if ops != ["Div", "Sub"]:
            raise SystemExit("rewrite_norm: a sensor normalisation with extra channels (--sensor-features); rebuild "
                             "the model with build.py instead")
        sub = next(n for n in nodes if n.op_type == "Sub")
        div = next(n for n in nodes if n.op_type == "Div")
        mean, std = constant(graph, sub.input[1]), constant(graph, div.input[1])
        if mean is None or std is None:
            raise SystemExit("rewrite_norm: the sensor normalisation's mean or std is not a constant")
        mean, std = mean.reshape(-1, joints, channels)[0].copy(), std.reshape(-1, joints, channels)[0].copy()
        return [ChannelNorm(mean, std, window)]
    layout = find_layout(entry["layout"]) if pre.get("layoutRegistered", True) else None
    if layout is not None and layout.kind == "points" and len(layout.joints) != joints:
        layout = None
    cc = entry.get("confidenceChannel")
    bones = layout.bones if layout else bone_pairs_for(None, joints)
    pairs = layout.pairs if layout else []
    root = layout.root if layout else []
    centre = pre.get("centre", "root" if root else "mean")
    if centre == "root" and not root:
        centre = "mean"
    facing = bool(pre.get("canonicalFacing", False))
    verticals = ([layout.vertical] if layout else []) + [v for v in (1, 2, 0) if not layout or v != layout.vertical]
    return [PoseNorm(cc, channels, joints, root=root, bones=bones, pairs=pairs, centre=centre,
                     scale=pre.get("scale", "body"), facing=facing, vertical=v) for v in (verticals if facing else [1])]


def export_norm(module, shape):
    """The module as an ONNX graph exported as build.py exports models, input `frames`, output `out`."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "norm.onnx"
        export(module, np.zeros((1, *shape), dtype=np.float32), path, ["out"])
        return onnx.load(str(path))


def splice(model, scope, new):
    """A copy of `model` with the scope's normalisation replaced by `new`'s graph (names moved into the scope)."""
    model = copy.deepcopy(model)
    g = model.graph
    nodes, source, sink = subgraph(g, scope)
    old = {id(n) for n in nodes}
    at = next(i for i, n in enumerate(g.node) if id(n) in old)
    kept = [n for n in g.node if id(n) not in old]
    still_used = {i for n in kept for i in n.input}
    for init in [i for i in g.initializer if i.name not in still_used]:
        g.initializer.remove(init)
    taken = {i.name for i in g.initializer} | {o for n in kept for o in n.output} | {sink}

    def rename(name):
        if name == "frames":
            return source
        if name == "out":
            return sink
        moved = scope + "norm/cf/" + name.lstrip("/")
        if moved in taken:
            raise SystemExit(f"rewrite_norm: the name {moved} is already taken in the model")
        return moved

    added = []
    for n in new.graph.node:
        m = copy.deepcopy(n)
        m.name = rename(n.name or n.output[0])
        m.input[:] = [rename(i) if i else i for i in n.input]
        m.output[:] = [rename(o) for o in n.output]
        added.append(m)
    for init in new.graph.initializer:
        i = copy.deepcopy(init)
        i.name = rename(init.name)
        g.initializer.append(i)
    order = kept[:at] + added + kept[at:]
    while True:  # drop the constants only the old subgraph read
        used = {i for n in order for i in n.input} | {o.name for o in g.output}
        dead = {id(n) for n in order if n.op_type in ("Constant", "Identity") and not set(n.output) & used}
        if not dead:
            break
        order = [n for n in order if id(n) not in dead]
    for init in [i for i in g.initializer if i.name not in used]:
        g.initializer.remove(init)
    del g.node[:]
    g.node.extend(order)
    return model


def with_output(model, name):
    """A copy of `model` that also outputs the tensor `name`."""
    model = copy.deepcopy(model)
    model.graph.output.append(helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    return model


def session(model):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def check_inputs(entry, data, rng):
    """Inputs for the comparison: random sequences with missing points, edge cases, and the first window of each
    sequence in `data` (lists of frame arrays, one per --data file) that fits the model."""
    t, j, c = entry["windowFrames"], entry["joints"], entry["channels"]
    x = rng.normal(size=(64, t, j, c)).astype(np.float32)
    cc = entry.get("confidenceChannel")
    if cc is not None:
        x[..., cc] = rng.uniform(-0.3, 1.0, size=(64, t, j))
    else:
        x[rng.uniform(size=(64, t, j)) < 0.2] = 0
    x[0] = 0  # nobody in view
    if cc is None:
        x[1, :, : j // 2] = 0  # half the body never seen
    else:
        x[1, :, : j // 2, cc] = 0
    windows = [x]
    for frames in data:
        rows = [f[:t].astype(np.float32) for f in frames if f.shape[0] >= t and f.shape[1:] == (j, c)]
        if rows:
            windows.append(np.stack(rows))
    return np.concatenate(windows)


def rewrite(path, entry, data, rng):
    """The rewritten model and a line on what was checked, or SystemExit when it does not compute the same."""
    model = onnx.load(str(path))
    shape = (entry["windowFrames"], entry["joints"], entry["channels"])
    x = check_inputs(entry, data, rng)
    out = model
    report = []
    for scope in norm_prefixes(model.graph):
        nodes, _, sink = subgraph(out.graph, scope)
        ref = session(with_output(out, sink)).run([sink], {"frames": x})[0]
        best = None
        for module in candidates(entry, out.graph, nodes):
            trial = splice(out, scope, export_norm(module, shape))
            got = session(with_output(trial, sink)).run([sink], {"frames": x})[0]
            err = float(np.abs(got - ref).max()) / max(1.0, float(np.abs(ref).max()))
            if best is None or err < best[0]:
                best = (err, trial)
        if best[0] > TOLERANCE:
            raise SystemExit(f"rewrite_norm: {path} {scope}norm/: the rewritten normalisation differs by {best[0]:.2e} "
                             f"(more than {TOLERANCE:g}); the file is unchanged")
        out = best[1]
        report.append(f"{scope}norm/ within {best[0]:.1e}")
    if not report:
        return None, f"{path.name}: no normalisation subgraph"
    names = [o.name for o in model.graph.output]
    a, b = session(model).run(names, {"frames": x}), session(out).run(names, {"frames": x})
    diffs = ", ".join(f"{n} max |diff| {float(np.abs(p - q).max()):.2e}" for n, p, q in zip(names, a, b))
    top1 = float(np.mean(a[0].argmax(axis=1) == b[0].argmax(axis=1)))
    onnx.checker.check_model(out)
    return out, (f"{path.name}: {'; '.join(report)}; on {len(x)} inputs {diffs}; top-1 agrees on {top1:.2%}; "
                 f"nodes {len(model.graph.node)} -> {len(out.graph.node)}")


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("dir")
    p.add_argument("--data", nargs="*", default=[], help="dataset files whose windows join the comparison")
    p.add_argument("--dry-run", action="store_true", help="check and report, write nothing")
    a = p.parse_args()
    root = Path(a.dir)
    manifest_path = root / "manifest.json"
    if not manifest_path.is_file():
        raise SystemExit(f"rewrite_norm: {manifest_path} not found; name a folder build.py wrote")
    manifest = json.loads(manifest_path.read_text())
    for entry in (manifest.get("edge"), manifest.get("cloud")):
        if entry and not (root / entry["file"]).is_file():
            raise SystemExit(f"rewrite_norm: {root / entry['file']}, named by the manifest, not found")
    # The --data files are read once for both models: each file's first 512 sequences that parsed as T x J x C.
    data = [[r["frames"] for r in read_jsonl(f, limit=512) if isinstance(r.get("frames"), np.ndarray)] for f in a.data]
    rng = np.random.default_rng(1)
    done = []  # every model is checked before any file is written, so a refusal leaves the folder as it was
    for key in ("edge", "cloud"):
        entry = manifest.get(key)
        if not entry:
            continue
        model, line = rewrite(root / entry["file"], entry, data, rng)
        print(line)
        if model is not None:
            done.append((entry, model, line))
    if a.dry_run or not done:
        return 0
    for entry, model, line in done:
        data = model.SerializeToString()
        (root / entry["file"]).write_bytes(data)
        entry["sha256"] = hashlib.sha256(data).hexdigest()
        entry["bytes"] = len(data)
        entry.setdefault("provenance", {}).setdefault("rewrites", []).append({
            "tool": "scripts/models/rewrite_norm.py",
            "date": datetime.date.today().isoformat(),
            "what": "input normalisation re-exported channels first (nets.py); weights unchanged",
            "check": line,
        })
    manifest_path.write_text(json.dumps(manifest, indent=2, ensure_ascii=False) + "\n")
    print(f"wrote {', '.join(e['file'] for e, _, _ in done)} and {manifest_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
