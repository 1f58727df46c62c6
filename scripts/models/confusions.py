"""Where a model pair errs on labelled data: each model's accuracy (binomial SE), its most frequent confusions, and
its errors by subject; with --pair A,B, the errors between two labels by subject, and (sensor layouts) each subject's
mean accelerometer direction for the two labels (the device's orientation in those postures); with --train FILE too,
how well hand features separate the pair across subjects (a logistic regression fit on FILE's windows of the pair,
scored on --dataset's): the accelerometer's mean direction alone, and the spreads of every channel with the mean
acceleration's length (no direction).

    python3 scripts/models/confusions.py --models build/hapt --dataset ../shared/datasets/hapt/test.jsonl.gz \\
        --pair sitting,standing --train ../shared/datasets/hapt/train.jsonl.gz
"""
import argparse
import collections
import json
from pathlib import Path

import numpy as np
import onnxruntime as ort

from dataset import read_jsonl, to_arrays


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", required=True, help="a models folder with manifest.json")
    ap.add_argument("--dataset", required=True, help="labelled sequences (JSONL or JSONL.gz)")
    ap.add_argument("--pair", default=None, help="two labels A,B whose mutual errors are counted by subject")
    ap.add_argument("--train", default=None, help="with --pair (sensor layouts): fit the hand-feature check here")
    ap.add_argument("--top", type=int, default=8)
    args = ap.parse_args()
    d = Path(args.models)
    m = json.loads((d / "manifest.json").read_text())
    labels, window = m["edge"]["labels"], m["edge"]["windowFrames"]
    rows = [r for r in read_jsonl(args.dataset) if r.get("label") in labels]
    x, y = to_arrays(rows, window, labels)
    subjects = np.array([str(r.get("subject", "")) for r in rows])
    pair = [labels.index(p) for p in args.pair.split(",")] if args.pair else None
    for role in ("edge", "cloud"):
        sess = ort.InferenceSession(str(d / m[role]["file"]), providers=["CPUExecutionProvider"])
        pred = np.concatenate([sess.run(["logits"], {"frames": x[i:i + 256]})[0] for i in range(0, len(x), 256)])
        pred = pred.argmax(1)
        ok = pred == y
        acc = ok.mean()
        print(f"{role} ({m[role]['version']}): {acc:.4f} ± {(acc * (1 - acc) / len(y)) ** 0.5:.4f} on {len(y)} "
              f"sequences of {args.dataset}; {int((~ok).sum())} errors")
        pairs = collections.Counter((labels[a], labels[b]) for a, b in zip(y[~ok], pred[~ok]))
        print("  most frequent (true -> answered): " + ", ".join(f"{a} -> {b} {n}" for (a, b), n in
                                                                   pairs.most_common(args.top)))
        by_subject = collections.Counter(subjects[~ok])
        print("  errors by subject: " + ", ".join(f"{s} {by_subject[s]}" for s in sorted(set(subjects))))
        if pair:
            inside = np.isin(y, pair) & np.isin(pred, pair) & ~ok
            print(f"  {args.pair} errors: {int(inside.sum())} of {int(np.isin(y, pair).sum())} sequences; by subject: "
                  + ", ".join(f"{s} {int((inside & (subjects == s)).sum())}" for s in sorted(set(subjects))))
    if pair and m["edge"]["layout"].startswith("imu") and x.shape[3] == 3:
        print(f"mean accelerometer direction (unit vector) by subject, {labels[pair[0]]} | {labels[pair[1]]}:")
        g = x[:, :, 0].astype(np.float64).mean(axis=1)
        g = g / np.linalg.norm(g, axis=1, keepdims=True)
        for s in sorted(set(subjects)):
            a = g[(subjects == s) & (y == pair[0])].mean(axis=0)
            b = g[(subjects == s) & (y == pair[1])].mean(axis=0)
            print(f"  {s}: {np.round(a, 3).tolist()} | {np.round(b, 3).tolist()}")
        if args.train:
            train = [r for r in read_jsonl(args.train) if r.get("label") in (labels[pair[0]], labels[pair[1]])]
            xt, yt = to_arrays(train, window, labels)
            inside = np.isin(y, pair)
            for name, cols in (("mean accelerometer direction", slice(0, 3)), ("spreads + mean length", slice(3, 10))):
                right = logistic(features(xt)[:, cols], yt == pair[0], features(x[inside])[:, cols],
                                 y[inside] == pair[0])
                print(f"  hand features, {name}: {right:.3f} of {int(inside.sum())} {args.pair} windows right "
                      f"(fit on {len(yt)} windows of {args.train})")


def features(x):
    """Per window: the accelerometer's mean direction (3), every channel's spread (6), the mean's length (1)."""
    x = x.astype(np.float64)
    g = x[:, :, 0].mean(axis=1)
    length = np.linalg.norm(g, axis=1, keepdims=True)
    return np.concatenate([g / length, x.std(axis=1).reshape(len(x), -1), length], axis=1)


def logistic(a, ya, b, yb, steps=3000, lr=0.5):
    """Accuracy on (b, yb) of a logistic regression fit on (a, ya) by gradient descent, features standardised on a."""
    mean, std = a.mean(axis=0), a.std(axis=0) + 1e-9
    za = np.c_[(a - mean) / std, np.ones(len(a))]
    zb = np.c_[(b - mean) / std, np.ones(len(b))]
    w = np.zeros(za.shape[1])
    for _ in range(steps):
        w -= lr * za.T @ (1 / (1 + np.exp(-za @ w)) - ya) / len(ya)
    return float(((zb @ w > 0) == yb).mean())


if __name__ == "__main__":
    main()
