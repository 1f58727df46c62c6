"""Build an edge/cloud model pair from a labelled dataset in the project's format, for the dmd-edge service.

    python3 scripts/models/build.py --dataset build/mocap/train.jsonl.gz build/mocap/val.jsonl.gz \\
        build/mocap/test.jsonl.gz --out wasm-models --samples 4

Rows are divided by their `split` field (train, val, dmd, test); val (and dmd, with --dmd-fraction) are carved out
of train by subject when the data has none. Every sequence is resampled to --window frames with the service's
function. Writes to --out: edge.int8.onnx (static int8 QDQ, calibrated on training windows), cloud.onnx (fp32),
manifest.json, golden.json and samples/ (with --samples), report.json; prints a report.
"""
import argparse
import datetime
import hashlib
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch import nn

from dataset import read_jsonl, resample, split_rows, to_arrays
from nets import ChannelNorm, CloudTCN, CloudTransformer, EdgeNet, PoseNorm, count_flops


def log(msg):
    print(msg, flush=True)


def train(model, data, args, name, epochs, lr):
    (xtr, ytr), (xva, yva) = data
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    steps = epochs * ((len(xtr) + args.batch - 1) // args.batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.15)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    best = (-1.0, None, 0)
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(xtr_t), generator=gen)
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            out = model(xtr_t[idx])
            logits = out[0] if isinstance(out, tuple) else out
            loss = loss_fn(logits, ytr_t[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item() * len(idx)
        acc = accuracy(predict_torch(model, xva), yva)
        if acc >= best[0]:  # on ties, the later (longer trained) epoch
            best = (acc, {k: v.clone() for k, v in model.state_dict().items()}, epoch + 1)
        log(f"  {name} epoch {epoch + 1:3d}/{epochs}  loss {total / len(xtr):.4f}  val acc {acc:.4f}  "
            f"({time.time() - t0:.0f}s)")
    model.load_state_dict(best[1])
    model.eval()
    log(f"  {name}: best val acc {best[0]:.4f} at epoch {best[2]}")
    return {"epochs": epochs, "bestEpoch": best[2], "valAccuracy": round(best[0], 4), "seconds": round(time.time() - t0)}


def predict_torch(model, x, batch=512):
    model.eval()
    outs = []
    with torch.no_grad():
        for i in range(0, len(x), batch):
            out = model(torch.from_numpy(x[i:i + batch]))
            outs.append((out[0] if isinstance(out, tuple) else out).numpy())
    return np.concatenate(outs)


def accuracy(logits, y):
    return float((logits.argmax(1) == y).mean())


def macro_f1(pred, y, k):
    f1s = []
    for c in range(k):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        if tp + fp + fn == 0:
            continue
        f1s.append(2 * tp / (2 * tp + fp + fn))
    return float(np.mean(f1s))


def export(model, example, path, outputs):
    model.eval()
    dyn = {"frames": {0: "N"}, **{o: {0: "N"} for o in outputs}}
    torch.onnx.export(model, (torch.from_numpy(example),), str(path), input_names=["frames"], output_names=outputs,
                      dynamic_axes=dyn, opset_version=17, dynamo=False)
    m = onnx.load(str(path))
    m.ir_version = min(m.ir_version, 9)  # onnxruntime-web 1.30 and native onnxruntime both load IR <= 9
    m.producer_name = "dmd-edge"
    onnx.checker.check_model(m)
    onnx.save(m, str(path))


class Calibration(CalibrationDataReader):
    def __init__(self, x, batch=32):
        self.batches = iter([{"frames": x[i:i + batch]} for i in range(0, len(x), batch)])

    def get_next(self):
        return next(self.batches, None)


def session(path, threads=1):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def run_logits(sess, x, batch=256):
    return np.concatenate([sess.run(["logits"], {"frames": x[i:i + batch]})[0] for i in range(0, len(x), batch)])


def time_per_sequence(sess, x, runs=200):
    sample = x[:1]
    for _ in range(10):
        sess.run(None, {"frames": sample})
    times = []
    for i in range(runs):
        t0 = time.perf_counter()
        sess.run(None, {"frames": x[i % len(x):i % len(x) + 1]})
        times.append((time.perf_counter() - t0) * 1000)
    return float(np.median(times))


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def git_commit():
    try:
        return subprocess.check_output(["git", "rev-parse", "--short", "HEAD"], text=True).strip()
    except Exception:
        return None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", nargs="+", required=True, help="JSONL(.gz) files in the dataset format")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-name", default=None, help="how figures name the data (default: the file names)")
    ap.add_argument("--window", type=int, default=None, help="frames per model input (default: median length)")
    ap.add_argument("--confidence-channel", default="auto", help="index, 'none' or 'auto' (2 for coco layouts)")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--dmd-fraction", type=float, default=0.0)
    ap.add_argument("--edge-epochs", type=int, default=40)
    ap.add_argument("--cloud-epochs", type=int, default=40)
    ap.add_argument("--cloud-arch", choices=["tcn", "transformer"], default="tcn")
    ap.add_argument("--cloud-width", type=int, default=160)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--samples", type=int, default=0, help="sample request files + golden outputs to write")
    ap.add_argument("--write-splits", action="store_true", help="write the dmd and test splits used to --out")
    ap.add_argument("--notice", default=None, help="a licence notice for the data, recorded in the manifest")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_name = args.data_name or ", ".join(Path(p).name for p in args.dataset)

    rows = [r for p in args.dataset for r in read_jsonl(p)]
    splits = split_rows(rows, args, rng)
    train_rows, val_rows, test_rows = splits["train"], splits.get("val", []), splits.get("test", [])
    if not train_rows or not val_rows:
        sys.exit("Cannot build: expected train and val sequences (give a split field or --val-fraction)")
    first = train_rows[0]
    layout, fps = first["layout"], first["fps"]
    joints, channels = len(first["frames"][0]), len(first["frames"][0][0])
    window = args.window or int(np.median([len(r["frames"]) for r in train_rows]))
    labels = sorted({r["label"] for r in train_rows if r.get("label") is not None})
    cc = (2 if layout.startswith("coco") and channels == 3 else None) if args.confidence_channel == "auto" else (
        None if args.confidence_channel == "none" else int(args.confidence_channel))
    log(f"data: {data_name}; layout {layout}, {joints} points x {channels} channels, window {window}, "
        f"{len(labels)} classes; " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))

    xtr, ytr = to_arrays(train_rows, window, labels)
    xva, yva = to_arrays(val_rows, window, labels)
    xte, yte = to_arrays(test_rows, window, labels) if test_rows else (xva, yva)
    test_name = "test" if test_rows else "val"

    def norm():
        if cc is not None:
            return PoseNorm(cc)
        return ChannelNorm(xtr.mean(axis=(0, 1)), xtr.std(axis=(0, 1)) + 1e-6)

    edge = EdgeNet(joints, channels, len(labels), norm())
    if args.cloud_arch == "tcn":
        cloud = CloudTCN(joints, channels, len(labels), norm(), width=args.cloud_width)
    else:
        cloud = CloudTransformer(joints, channels, len(labels), norm(), window)
    log(f"edge: {sum(p.numel() for p in edge.parameters()):,} parameters; cloud ({args.cloud_arch}): "
        f"{sum(p.numel() for p in cloud.parameters()):,}")
    log("training the edge model")
    edge_train = train(edge, ((xtr, ytr), (xva, yva)), args, "edge", args.edge_epochs, 3e-3)
    log("training the cloud model")
    cloud_train = train(cloud, ((xtr, ytr), (xva, yva)), args, "cloud", args.cloud_epochs, 2e-3)

    log("exporting and quantizing")
    fp32_path = out / "edge.fp32.onnx"
    export(edge, xtr[:2], fp32_path, ["logits", "embedding"])
    export(cloud, xtr[:2], out / "cloud.onnx", ["logits"])
    pre = out / "edge.pre.onnx"
    quant_pre_process(str(fp32_path), str(pre))
    quantize_static(str(pre), str(out / "edge.int8.onnx"), Calibration(xtr[rng.permutation(len(xtr))[:512]]),
                    quant_format=QuantFormat.QDQ, per_channel=True, activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8, op_types_to_quantize=["Conv", "Gemm", "MatMul"])
    pre.unlink()
    m = onnx.load(str(out / "edge.int8.onnx"))
    m.ir_version = min(m.ir_version, 9)
    onnx.save(m, str(out / "edge.int8.onnx"))

    log(f"evaluating on the {test_name} split with native onnxruntime")
    s_fp32, s_int8, s_cloud = session(fp32_path), session(out / "edge.int8.onnx"), session(out / "cloud.onnx")
    l_fp32, l_int8, l_cloud = run_logits(s_fp32, xte), run_logits(s_int8, xte), run_logits(s_cloud, xte)
    k = len(labels)
    figures = {
        "edgeFp32Accuracy": accuracy(l_fp32, yte),
        "edgeInt8Accuracy": accuracy(l_int8, yte),
        "cloudAccuracy": accuracy(l_cloud, yte),
        "edgeInt8MacroF1": macro_f1(l_int8.argmax(1), yte, k),
        "cloudMacroF1": macro_f1(l_cloud.argmax(1), yte, k),
        "agreementInt8Cloud": float((l_int8.argmax(1) == l_cloud.argmax(1)).mean()),
        "int8Fp32Agreement": float((l_int8.argmax(1) == l_fp32.argmax(1)).mean()),
        "sequences": int(len(yte)),
    }
    ms = {
        "edgeFp32": time_per_sequence(s_fp32, xte),
        "edgeInt8": time_per_sequence(s_int8, xte),
        "cloud": time_per_sequence(s_cloud, xte, runs=100),
    }
    example = torch.from_numpy(xtr[:1])
    flops = {"edge": count_flops(edge, example), "cloud": count_flops(cloud, example)}
    params = {"edge": sum(p.numel() for p in edge.parameters()), "cloud": sum(p.numel() for p in cloud.parameters())}
    data_desc = f"{data_name}, {test_name} split ({len(yte)} sequences)"
    stamp = datetime.date.today().strftime("%Y%m%d")
    provenance = {
        "data": data_name, "splits": {k2: len(v) for k2, v in splits.items()}, "seed": args.seed,
        "command": " ".join(["python3", "scripts/models/build.py"] + sys.argv[1:]), "gitCommit": git_commit(),
        "torch": torch.__version__, "onnxruntime": ort.__version__,
    }

    def spec(file, version, outputs, precision, extra):
        return {
            "file": file, "sha256": sha256(out / file), "bytes": (out / file).stat().st_size, "version": version,
            "inputs": [{"name": "frames", "shape": [-1, window, joints, channels], "dtype": "float32"}],
            "outputs": [{"name": n, "shape": [-1, s], "dtype": "float32"} for n, s in outputs],
            "layout": layout, "joints": joints, "channels": channels, "confidenceChannel": cc,
            "windowFrames": window, "fps": fps, "labels": labels, "precision": precision, **extra,
        }

    emb = edge.embed[0].out_features
    manifest = {
        "schemaVersion": 1,
        "edge": spec("edge.int8.onnx", f"edge-{layout}-{stamp}-s{args.seed}", [("logits", k), ("embedding", emb)],
                     "int8-qdq", {
                         "embeddingSize": emb, "params": params["edge"], "flops": flops["edge"],
                         "provenance": {**provenance, "recipe": {"arch": "EdgeNet (3 conv1d, 64-d embedding)",
                                                                 "quantization": "static QDQ, per-channel int8 "
                                                                 "weights, uint8 activations, 512 calibration windows",
                                                                 **edge_train}},
                         "metrics": {"data": data_desc, "accuracy": figures["edgeInt8Accuracy"],
                                     "fp32Accuracy": figures["edgeFp32Accuracy"],
                                     "macroF1": figures["edgeInt8MacroF1"], "nativeMsPerSequence": ms["edgeInt8"],
                                     "fp32NativeMsPerSequence": ms["edgeFp32"]},
                     }),
        "cloud": spec("cloud.onnx", f"cloud-{layout}-{args.cloud_arch}-{stamp}-s{args.seed}", [("logits", k)],
                      "fp32", {
                          "params": params["cloud"], "flops": flops["cloud"],
                          "provenance": {**provenance, "recipe": {"arch": f"cloud {args.cloud_arch}", **cloud_train}},
                          "metrics": {"data": data_desc, "accuracy": figures["cloudAccuracy"],
                                      "macroF1": figures["cloudMacroF1"], "nativeMsPerSequence": ms["cloud"],
                                      "agreementWithEdge": figures["agreementInt8Cloud"]},
                      }),
    }
    if args.notice:
        manifest["notices"] = [Path(args.notice).read_text()]

    if args.samples:
        write_samples(out, test_rows or val_rows, args.samples, window, labels, s_int8, s_cloud)
    if args.write_splits:
        for name in ("dmd", "test", "val"):
            if splits.get(name):
                write_split(out / f"{name}.jsonl.gz", splits[name])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    fp32_path.unlink()
    report = {"data": data_desc, "figures": figures, "msPerSequenceNative1Thread": ms, "flops": flops,
              "params": params, "bytes": {"edgeInt8": manifest["edge"]["bytes"], "cloud": manifest["cloud"]["bytes"]},
              "window": window, "labels": labels, "splits": {k2: len(v) for k2, v in splits.items()},
              "training": {"edge": edge_train, "cloud": cloud_train}}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"\nReport — {data_desc}")
    log("| model | accuracy | macro-F1 | params | FLOPs/seq | bytes | native ms/seq (1 thread) |")
    log("|---|---|---|---|---|---|---|")
    log(f"| edge fp32 | {figures['edgeFp32Accuracy']:.4f} | | {params['edge']:,} | {flops['edge']:,} | | "
        f"{ms['edgeFp32']:.3f} |")
    log(f"| edge int8 | {figures['edgeInt8Accuracy']:.4f} | {figures['edgeInt8MacroF1']:.4f} | {params['edge']:,} | "
        f"{flops['edge']:,} | {manifest['edge']['bytes']:,} | {ms['edgeInt8']:.3f} |")
    log(f"| cloud | {figures['cloudAccuracy']:.4f} | {figures['cloudMacroF1']:.4f} | {params['cloud']:,} | "
        f"{flops['cloud']:,} | {manifest['cloud']['bytes']:,} | {ms['cloud']:.3f} |")
    log(f"edge int8 / cloud agreement: {figures['agreementInt8Cloud']:.4f}; cloud/edge FLOPs: "
        f"{flops['cloud'] / flops['edge']:.1f}x")


def write_split(path, rows):
    import gzip
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


def write_samples(out, rows, count, window, labels, s_edge, s_cloud):
    """Sample request files (one per label, the first stretched to a different length so the service must
    resample) and the native onnxruntime outputs the worker must reproduce."""
    (out / "samples").mkdir(exist_ok=True)
    chosen, seen = [], set()
    for r in rows:
        if r["label"] not in seen:
            seen.add(r["label"])
            chosen.append(r)
        if len(chosen) == count:
            break
    golden = {"tolerance": {"centredLogit": 0.3, "embeddingRelative": 0.05,
                            "note": "int8 edge model: native onnxruntime fuses QDQ into integer kernels, "
                                    "onnxruntime-web runs the QDQ float path; an activation on a rounding boundary "
                                    "moves logits by a quantization step (about 0.1). Logits are compared after "
                                    "subtracting their mean; the top-1 label must match"}, "samples": []}
    for i, r in enumerate(chosen):
        frames = np.asarray(r["frames"], dtype=np.float64)
        if i == 0:
            frames = resample(frames, int(round(len(frames) * 1.5))).astype(np.float64)
        frames = np.round(frames, 4)
        body = {"id": r["id"], "layout": r["layout"], "fps": r["fps"], "frames": frames.tolist()}
        name = f"samples/{r['label']}.json"
        (out / name).write_text(json.dumps(body, separators=(",", ":")) + "\n")
        x = resample(frames, window)[None]
        logits, emb = s_edge.run(["logits", "embedding"], {"frames": x})
        golden["samples"].append({"file": name, "label": r["label"], "frames": len(frames),
                                  "edgeLogits": logits[0].tolist(), "embedding": emb[0].tolist(),
                                  "cloudLogits": s_cloud.run(["logits"], {"frames": x})[0][0].tolist()})
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")


if __name__ == "__main__":
    main()
