"""Check the model build's targets from the reports builds write, and the shipped default set itself.

    python3 scripts/models/measure.py --hapt build/hapt --cross-view build/m3d --default wasm-models

- --hapt DIR: a build on HAPT (official subject split): edge int8 >= 0.85, cloud >= 0.94, built in <= 15 min;
- --cross-view DIR: a build on the 3D cross-view benchmark (mocap.py --3d): accuracy on the held-out view (test) >=
  0.9 x accuracy on held-out time segments of the training views (test_seen_view), for each model;
- --default DIR: a models folder (manifest.json, samples/, golden.json): cloud - edge >= 3 points on its test data,
  both with standard errors, and every shipped sample answered with its true label by both models (native
  onnxruntime, after the service's resampling).
Mocap figures come from one capture per action. Exit 1 when a target is missed.
"""
import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dataset import resample

ROWS = []


def check(name, ok, detail):
    ROWS.append((name, ok, detail))


def hapt(d):
    r = json.loads((Path(d) / "report.json").read_text())
    f = r["figures"]
    e, c = f["edgeInt8Accuracy"], f["cloudAccuracy"]
    check("HAPT edge int8 >= 0.85", e >= 0.85, f"{e:.4f} ± {f['edgeInt8AccuracySE']:.4f} ({r['data']})")
    check("HAPT cloud >= 0.94", c >= 0.94, f"{c:.4f} ± {f['cloudAccuracySE']:.4f} ({r['cloudArch']})")
    check("HAPT built in <= 15 min", r["buildSeconds"] <= 900,
          f"{r['buildSeconds'] / 60:.1f} min on {r['threads']} cores of a shared machine")


def cross_view(d):
    r = json.loads((Path(d) / "report.json").read_text())
    s = r["splits"]
    new, seen = s["test"], s["test_seen_view"]
    for model, key in (("edge int8", "edgeInt8Accuracy"), ("cloud", "cloudAccuracy")):
        ratio = new[key] / max(seen[key], 1e-9)
        check(f"mocap 3D cross-view {model}: new view >= 0.9 x seen views", ratio >= 0.9,
              f"{new[key]:.4f} ± {new[key + 'SE']:.4f} / {seen[key]:.4f} ± {seen[key + 'SE']:.4f} = {ratio:.3f} "
              "(one capture per action; the test splits' performers made from it and held out)")


def measured_pair(d, m, test_file):
    """Both shipped models on labelled test data, natively: accuracies, binomial SEs, the paired gap and its SE."""
    from dataset import read_jsonl, to_arrays
    labels, window = m["edge"]["labels"], m["edge"]["windowFrames"]
    x, y = to_arrays(read_jsonl(test_file), window, labels)
    right = {}
    for role in ("edge", "cloud"):
        sess = ort.InferenceSession(str(d / m[role]["file"]), providers=["CPUExecutionProvider"])
        logits = np.concatenate([sess.run(["logits"], {"frames": x[i:i + 256]})[0] for i in range(0, len(x), 256)])
        right[role] = (logits.argmax(1) == y).astype(np.float64)
    n = len(y)
    e, c = right["edge"].mean(), right["cloud"].mean()
    diff = right["cloud"] - right["edge"]
    return e, (e * (1 - e) / n) ** 0.5, c, (c * (1 - c) / n) ** 0.5, diff.mean(), diff.std(ddof=1) / n ** 0.5, n


def default(d, test_file=None):
    d = Path(d)
    m = json.loads((d / "manifest.json").read_text())
    em, cm = m["edge"]["metrics"], m["cloud"]["metrics"]
    gap, gap_se = cm.get("minusEdgeAccuracy"), cm.get("minusEdgeAccuracySE")
    if gap is None:
        gap, gap_se = cm["accuracy"] - em["accuracy"], None
    if test_file:
        e, e_se, c, c_se, gap, gap_se, n = measured_pair(d, m, test_file)
        check("default data: cloud - edge >= 3 points", gap >= 0.03,
              f"edge {e:.4f} ± {e_se:.4f}, cloud {c:.4f} ± {c_se:.4f}, gap {100 * gap:+.2f} ± {100 * gap_se:.2f} "
              f"points (paired), {test_file} ({n} sequences, one performance per action)")
    n = int(m["edge"]["provenance"]["splits"].get("test", 0)) or None

    def acc(metrics):
        s = metrics.get("accuracySE")
        if s is None and n:
            s = (metrics["accuracy"] * (1 - metrics["accuracy"]) / n) ** 0.5  # binomial, from the test split's size
        return f"{metrics['accuracy']:.4f}" + (f" ± {s:.4f}" if s is not None else "")

    if "default data: cloud - edge >= 3 points" not in [r[0] for r in ROWS]:
        check("default data: cloud - edge >= 3 points", gap >= 0.03,
              f"edge {acc(em)}, cloud {acc(cm)}, gap {100 * gap:+.2f}"
              f"{' (paired SE not recorded)' if gap_se is None else f' ± {100 * gap_se:.2f}'} points ({em['data']})")
    golden = json.loads((d / "golden.json").read_text())
    edge = ort.InferenceSession(str(d / m["edge"]["file"]), providers=["CPUExecutionProvider"])
    cloud = ort.InferenceSession(str(d / m["cloud"]["file"]), providers=["CPUExecutionProvider"])
    labels, window = m["edge"]["labels"], m["edge"]["windowFrames"]
    right, total, wrong = 0, 0, []
    for s in golden["samples"]:
        body = json.loads((d / s["file"]).read_text())
        x = resample(np.asarray(body["frames"], dtype=np.float32), window)[None]
        e = labels[int(edge.run(["logits"], {"frames": x})[0][0].argmax())]
        c = labels[int(cloud.run(["logits"], {"frames": x})[0][0].argmax())]
        total += 1
        if e == s["label"] and c == s["label"]:
            right += 1
        else:
            wrong.append(f"{s['file']}: true {s['label']}, edge {e}, cloud {c}")
    check("every shipped sample answered correctly", total > 0 and right == total,
          f"{right}/{total} by both models" + ("; " + "; ".join(wrong) if wrong else ""))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--hapt", help="a build folder (report.json) of HAPT")
    ap.add_argument("--cross-view", help="a build folder (report.json) of the 3D cross-view benchmark")
    ap.add_argument("--default", help="a models folder: manifest.json, samples/, golden.json")
    ap.add_argument("--test", help="with --default: labelled test data to measure both models on (paired gap SE)")
    args = ap.parse_args()
    if args.hapt:
        hapt(args.hapt)
    if args.cross_view:
        cross_view(args.cross_view)
    if args.default:
        default(args.default, args.test)
    print("| target | met | measured |")
    print("|---|---|---|")
    for name, ok, detail in ROWS:
        print(f"| {name} | {'yes' if ok else 'NO'} | {detail} |")
    sys.exit(0 if all(ok for _, ok, _ in ROWS) else 1)


if __name__ == "__main__":
    main()
