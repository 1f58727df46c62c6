"""Try a preprocessing option on the cloud network alone, as the build would train it: one model on one core within a
time budget, chosen on the validation split (carved out of train by subject, as build.py does), then scored on the
test split. Run two at once (one per core) to compare options under the same load; choose on validation only.

    python3 scripts/models/ablate.py --dataset ../shared/datasets/hapt/train.jsonl.gz \\
        ../shared/datasets/hapt/test.jsonl.gz --name gravity --sensor-features gravity --minutes 7

Prints (and appends to --log) one JSON line: validation and test accuracy, and the errors between --pair's labels.
"""
import argparse
import json

import numpy as np
import torch

from build import make_norm, predict_torch, train
from dataset import read_jsonl, split_rows, to_arrays
from layouts import resolve
from nets import CloudTCN


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", nargs="+", required=True)
    ap.add_argument("--name", required=True)
    ap.add_argument("--augment", default="auto")
    ap.add_argument("--sensor-features", default="none")
    ap.add_argument("--width", type=int, default=96)
    ap.add_argument("--minutes", type=float, default=7.0)
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--pair", default="sitting,standing")
    ap.add_argument("--patience", type=int, default=8)
    ap.add_argument("--keep", choices=["final", "best-val"], default="final")
    ap.add_argument("--seed", type=int, default=7, help="the model's seed (the validation subjects stay those of 7)")
    ap.add_argument("--save-logits", default=None, help="an .npy file for the test split's logits")
    ap.add_argument("--log", default=None, help="a JSONL file to append the result to")
    a = ap.parse_args()
    torch.set_num_threads(1)
    args = argparse.Namespace(val_fraction=a.val_fraction, dmd_fraction=0.0, seed=7, batch=64, epochs=60,
                              patience=a.patience, confidence_channel="auto", centre="auto", scale="auto",
                              facing="auto", augment=a.augment, sensor_features=a.sensor_features, keep=a.keep)
    rows = [r for p in a.dataset for r in read_jsonl(p)]
    splits = split_rows(rows, args, np.random.default_rng(args.seed))
    labels = sorted({r["label"] for r in splits["train"]})
    window = int(np.median([len(r["frames"]) for r in splits["train"]]))
    xtr, ytr = to_arrays(splits["train"], window, labels)
    xva, yva = to_arrays(splits["val"], window, labels)
    xte, yte = to_arrays(splits["test"], window, labels)
    opts = resolve(splits["train"][0]["layout"], xtr, args)
    print("options: " + opts.describe(), flush=True)
    joints, channels = xtr.shape[2], xtr.shape[3]
    norm = make_norm(opts, xtr)
    feat = channels + (norm.extra_channels() if opts.norm == "channel" else 0)
    torch.manual_seed(a.seed)
    model = CloudTCN(joints, feat, len(labels), norm, width=a.width, stride=max(1, window // 32))
    args.seed = a.seed
    info = train(model, ((xtr, ytr), (xva, yva)), args, a.name, a.minutes * 60, 2e-3, opts)
    logits = predict_torch(model, xte)
    if a.save_logits:
        np.save(a.save_logits, logits)
    pred = logits.argmax(1)
    pair = [labels.index(p) for p in a.pair.split(",") if p in labels]
    inside = np.isin(yte, pair) & np.isin(pred, pair) & (pred != yte)
    result = {"name": a.name, "options": opts.describe(), "valAccuracy": info["valAccuracy"],
              "testAccuracy": round(float((pred == yte).mean()), 4), "testSequences": int(len(yte)),
              f"{a.pair} errors": int(inside.sum()), "training": info}
    print(json.dumps(result), flush=True)
    if a.log:
        with open(a.log, "a") as f:
            f.write(json.dumps(result) + "\n")


if __name__ == "__main__":
    main()
