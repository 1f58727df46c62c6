"""Build an edge/cloud model pair from a labelled dataset in the project's format, for the dmd-edge service.

    python3 scripts/models/build.py --dataset build/mocap/train.jsonl.gz build/mocap/val.jsonl.gz \\
        build/mocap/test.jsonl.gz --out wasm-models --samples 4

Rows are divided by their `split` field (train, val, dmd, test); val (and dmd, with --dmd-fraction) are carved out
of train by subject when the data has none. Every sequence is resampled to --window frames with the service's
function. Writes to --out: edge.int8.onnx (static int8 QDQ, calibrated on training windows), cloud.onnx (fp32),
manifest.json, golden.json and samples/ (with --samples), report.json; prints a report.
"""
import argparse
import copy
import datetime
import hashlib
import json
import math
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

warnings.filterwarnings("ignore", category=DeprecationWarning)
warnings.filterwarnings("ignore", category=FutureWarning)
warnings.filterwarnings("ignore", message=".*NNPACK.*")

import numpy as np
import onnx
import onnxruntime as ort
import torch
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from torch import nn

from dataset import read_jsonl, resample, split_rows, to_arrays
from layouts import resolve
from nets import ChannelNorm, CloudEnsemble, CloudSTGCN, CloudTCN, CloudTransformer, EdgeNet, PoseNorm, count_flops

torch.backends.nnpack.set_flags(False)  # this CPU has no NNPACK: without this, every conv warns once


def log(msg):
    print(msg, flush=True)


def augment_batch(x, opts, gen):
    """Training augmentation on raw input windows x (B, T, J, C), chosen by the layout (layouts.Options.augment):
    rotation about the vertical axis (3D) or in the image plane (2D), scale, mirror with left/right swap, jitter, and
    temporal crop (a faster replay resampled to the window). Missing points stay zero."""
    b, t = x.shape[0], x.shape[1]
    aug = set(opts.augment)
    x = x.clone()

    def u(lo, hi, *shape):
        return lo + (hi - lo) * torch.rand(*shape, generator=gen)

    if opts.norm == "pose":
        cc = opts.confidence
        idx = [i for i in range(x.shape[3]) if i != cc]
        p = x[..., idx]
        mask = (x[..., cc:cc + 1] > 0).float() if cc is not None else (p.abs().sum(-1, keepdim=True) > 0).float()
        count = mask.sum(dim=(1, 2), keepdim=True).clamp(min=1.0)
        centre = (p * mask).sum(dim=(1, 2), keepdim=True) / count
        p = p - centre
        if "rotate-vertical" in aug and opts.dims == 3:
            a, v, bb = [i for i in range(3) if i != opts.vertical][0], opts.vertical, \
                [i for i in range(3) if i != opts.vertical][1]
            ang = u(-np.pi, np.pi, b, 1, 1)
            cos, sin = torch.cos(ang), torch.sin(ang)
            pa, pb = p[..., a].clone(), p[..., bb].clone()
            p[..., a], p[..., bb] = cos * pa - sin * pb, sin * pa + cos * pb
        if "rotate-plane" in aug and opts.dims == 2:
            ang = u(-0.17, 0.17, b, 1, 1)
            cos, sin = torch.cos(ang), torch.sin(ang)
            p0, p1 = p[..., 0].clone(), p[..., 1].clone()
            p[..., 0], p[..., 1] = cos * p0 - sin * p1, sin * p0 + cos * p1
        if "scale" in aug:
            p = p * u(0.85, 1.15, b, 1, 1, 1) * u(0.92, 1.08, b, 1, 1, p.shape[-1])
        if "jitter" in aug:
            spread = torch.sqrt((p * p * mask).sum(dim=(1, 2, 3), keepdim=True) / count + 1e-8)
            p = p + torch.randn(p.shape, generator=gen) * spread * u(0.0, 0.02, b, 1, 1, 1)
        x[..., idx] = (p + centre) * mask
        if "mirror" in aug and opts.pairs:
            flip = torch.rand(b, generator=gen) < 0.5
            if flip.any():
                perm = list(range(x.shape[2]))
                for l, r in opts.pairs:
                    perm[l], perm[r] = r, l
                m = x[flip][:, :, perm]
                mi = [i for i in range(x.shape[3]) if i != cc]
                mm = (m[..., cc:cc + 1] > 0).float() if cc is not None else \
                    (m[..., mi].abs().sum(-1, keepdim=True) > 0).float()
                c0 = (m[..., mi[0]:mi[0] + 1] * mm).sum(dim=(1, 2), keepdim=True) / mm.sum(dim=(1, 2),
                                                                                              keepdim=True).clamp(min=1)
                m[..., mi[0]:mi[0] + 1] = (2 * c0 - m[..., mi[0]:mi[0] + 1]) * mm
                x[flip] = m
    else:
        if "rotate-device" in aug and x.shape[3] == 3:
            # The device worn a little differently: one random rotation per window (about a random axis, up to
            # DEVICE_ROTATION radians) applied to every 3-axis sensor of the device alike (accelerometer, gyroscope).
            axis = torch.randn(b, 3, generator=gen)
            axis = axis / axis.norm(dim=1, keepdim=True).clamp(min=1e-6)
            ang = u(-DEVICE_ROTATION, DEVICE_ROTATION, b)
            k = torch.zeros(b, 3, 3)
            k[:, 0, 1], k[:, 0, 2], k[:, 1, 2] = -axis[:, 2], axis[:, 1], -axis[:, 0]
            k = k - k.transpose(1, 2)
            rot = torch.eye(3)[None] + torch.sin(ang)[:, None, None] * k + \
                (1 - torch.cos(ang))[:, None, None] * (k @ k)
            x = torch.einsum("btjc,bdc->btjd", x, rot)
        if "scale" in aug:
            x = x * u(0.95, 1.05, b, 1, 1, 1)
        if "jitter" in aug:
            std = x.std(dim=(0, 1), keepdim=True)
            x = x + torch.randn(x.shape, generator=gen) * std * 0.02
    if "time" in aug:
        crop = torch.where(torch.rand(b, generator=gen) < 0.5, u(0.8, 1.0, b), torch.ones(b))
        start = torch.rand(b, generator=gen) * (1 - crop) * (t - 1)
        pos = start[:, None] + torch.arange(t)[None, :] * crop[:, None] * (t - 1) / max(t - 1, 1)
        i0 = pos.floor().long().clamp(0, t - 1)
        i1 = (i0 + 1).clamp(max=t - 1)
        w = (pos - i0.float())[:, :, None, None]
        g0 = torch.gather(x, 1, i0[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3]))
        g1 = torch.gather(x, 1, i1[:, :, None, None].expand(-1, -1, x.shape[2], x.shape[3]))
        x = (1 - w) * g0 + w * g1
        if opts.norm == "pose":  # a point interpolated with a missing neighbour is missing
            if opts.confidence is not None:
                miss = (torch.minimum(g0[..., opts.confidence], g1[..., opts.confidence]) <= 0)
            else:
                miss = (g0.abs().sum(-1) == 0) | (g1.abs().sum(-1) == 0)
            x = x * (~miss).float()[..., None]
    return x


DEVICE_ROTATION = math.radians(20.0)  # the most a device is turned by the rotate-device augmentation


def one_cycle(lr, progress, warm=0.2):
    """The learning rate at a progress (0..1) of a one-cycle schedule: linear from lr/10 to lr over the first `warm`
    fraction, then cosine down to zero (a schedule that converges in few epochs)."""
    frac = min(1.0, progress)
    if frac < warm:
        return lr * (0.1 + 0.9 * frac / warm)
    return lr * 0.5 * (1 + math.cos(math.pi * (frac - warm) / (1 - warm)))


def train_step(model, opt, loss_fn, xb, yb, opts, gen):
    xb = augment_batch(xb, opts, gen) if opts.augment else xb
    out = model(xb)
    loss = loss_fn(out[0] if isinstance(out, tuple) else out, yb)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def step_seconds(model, xtr, ytr, args, opts, steps=3):
    """Seconds per training step of a copy of the model (a warm-up step, then the mean of `steps` timed ones): the
    probe that plans the epochs and sizes the cloud network before training starts."""
    probe = copy.deepcopy(model)
    probe.train()
    opt = torch.optim.AdamW(probe.parameters(), lr=1e-6)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(args.seed)
    idx = torch.randint(0, len(xtr), (args.batch,), generator=gen)
    xb, yb = torch.from_numpy(xtr[idx.numpy()]), torch.from_numpy(ytr[idx.numpy()])
    train_step(probe, opt, loss_fn, xb, yb, opts, gen)
    t0 = time.time()
    for _ in range(steps):
        train_step(probe, opt, loss_fn, xb, yb, opts, gen)
    return (time.time() - t0) / steps


def make_norm(opts, xtr):
    """The input normalisation module for the layout's options (inside the graph), from the training windows."""
    channels = xtr.shape[3]
    if opts.norm == "pose":
        return PoseNorm(opts.confidence, channels, xtr.shape[2], root=opts.root, bones=opts.bones, pairs=opts.pairs,
                        centre=opts.centre, scale=opts.scale, facing=opts.facing, vertical=opts.vertical)
    mag = None
    if "magnitude" in opts.sensor_features:
        m = np.sqrt((xtr.astype(np.float64) ** 2).sum(axis=-1))
        mag = (m.mean(axis=(0, 1)), m.std(axis=(0, 1)) + 1e-6)
    gravity = opts.accelerometers if "gravity" in opts.sensor_features else None
    return ChannelNorm(xtr.mean(axis=(0, 1)), xtr.std(axis=(0, 1)) + 1e-6, xtr.shape[1], mag, gravity)


TCN_WIDTHS = (160, 128, 96, 64)  # 64 wide is still 1.7x (HAPT) to 3x (mocap) the edge network's FLOPs


def sized_tcn(joints, channels, classes, norm, stride, xtr, ytr, args, opts, budget_s):
    """The widest cloud TCN of TCN_WIDTHS that trains --min-epochs epochs within the time budget, from a timed probe
    of each width on this machine (the narrowest when none does): a network sized to the budget converges, where a
    wider one cut to two or three epochs does not."""
    per_epoch = (len(xtr) + args.batch - 1) // args.batch
    for width in TCN_WIDTHS:
        cloud = CloudTCN(joints, channels, classes, norm(), width=width, stride=stride)
        epoch_s = 1.15 * step_seconds(cloud, xtr, ytr, args, opts) * per_epoch
        fits = int(budget_s / epoch_s)
        log(f"cloud tcn width {width}: about {epoch_s:.0f}s per epoch, {fits} epochs in the budget")
        if fits >= args.min_epochs:
            break
    return cloud


COOL_EPOCHS = 4  # an early stop's cool-down


def train(model, data, args, name, budget_s, lr, opts):
    """Train with AdamW and a one-cycle learning rate (a warm-up from lr/10 over the first fifth, then cosine to
    zero) over the time budget (or the most epochs, when they fit sooner); the epochs are planned from a timed probe
    of a few steps and follow the measured epoch times. After --patience epochs without a better validation accuracy,
    stop early: the learning rate cools down to zero over COOL_EPOCHS epochs first.

    Kept: the weights where the schedule ends (--keep final, the default) or the best validation epoch's (--keep
    best-val). Measured on HAPT (cloud TCN, one core, test accuracy per epoch beside the 3 validation subjects'):
    validation peaked at epoch 7 (0.991, test 0.919) and fell to 0.980 by the end while the test subjects rose to
    0.938; picking a high-learning-rate epoch by a few subjects' accuracy selects noise, the annealed end does not."""
    (xtr, ytr), (xva, yva) = data
    per_epoch = (len(xtr) + args.batch - 1) // args.batch
    max_epochs = args.epochs
    probe = step_seconds(model, xtr, ytr, args, opts)
    planned = min(max_epochs, max(2, int(budget_s / (1.15 * probe * per_epoch))))
    log(f"  {name}: {probe:.3f}s per step measured, {probe * per_epoch:.0f}s per epoch, {planned} epochs planned")
    torch.manual_seed(args.seed)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-3)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=0.05)
    xtr_t, ytr_t = torch.from_numpy(xtr), torch.from_numpy(ytr)
    best = (-1.0, None, 0)
    keep_best = args.keep == "best-val"
    gen = torch.Generator().manual_seed(args.seed)
    t0 = time.time()
    step, since_best, epoch = 0, 0, 0
    cooling = None  # (step, learning rate) where the early stop's cool-down began
    stopped = "time budget" if planned < max_epochs else "epochs"
    while epoch < planned:
        model.train()
        order = torch.randperm(len(xtr_t), generator=gen)
        total = 0.0
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            # The schedule's progress is the larger of the steps' share of the most epochs and the time's share of
            # the budget, so it never goes back when epochs get faster and ends as the budget does.
            cur = one_cycle(lr, max(step / (max_epochs * per_epoch), (time.time() - t0) / budget_s))
            if cooling is not None:  # early stop: the rest of the schedule, compressed into the cool-down epochs
                frac = min(1.0, (step - cooling[0]) / (COOL_EPOCHS * per_epoch))
                cur = min(cur, cooling[1] * 0.5 * (1 + math.cos(math.pi * frac)))
            for g in opt.param_groups:
                g["lr"] = cur
            total += train_step(model, opt, loss_fn, xtr_t[idx], ytr_t[idx], opts, gen) * len(idx)
            step += 1
        epoch += 1
        acc = accuracy(predict_torch(model, xva), yva)
        if acc > best[0] or (acc == best[0] and epoch > best[2]):  # on ties, the later (longer trained) epoch
            since_best = 0 if acc > best[0] else since_best
            best = (acc, {k: v.clone() for k, v in model.state_dict().items()} if keep_best else None, epoch)
        else:
            since_best += 1
        elapsed = time.time() - t0
        per = elapsed / epoch
        affordable = min(max_epochs, max(epoch, int(budget_s / per)))
        if cooling is not None:
            affordable = min(affordable, planned)
        if affordable != planned:  # epochs get slower or faster as the machine's load changes
            planned = affordable
            stopped = "time budget" if planned < max_epochs else "epochs"
        eta = per * (planned - epoch)
        log(f"  {name} epoch {epoch:3d}/{planned}  loss {total / len(xtr):.4f}  val acc {acc:.4f}  "
            f"best {best[0]:.4f}@{best[2]}  {elapsed:.0f}s, ETA {eta:.0f}s")
        if cooling is not None and step - cooling[0] >= COOL_EPOCHS * per_epoch:
            stopped = "early stop"
            break
        if cooling is None and since_best >= args.patience and epoch >= min(planned, 2 * args.patience):
            # No better validation for --patience epochs: rather than stop at a high learning rate (the one-cycle
            # schedule may be early on), cool down to zero over COOL_EPOCHS epochs, then stop.
            cooling = (step, cur)
            planned = min(planned, epoch + COOL_EPOCHS)
            log(f"  {name}: no better val acc for {since_best} epochs: cooling down over {COOL_EPOCHS} epochs")
    if keep_best:
        model.load_state_dict(best[1])
    model.eval()
    kept = (best[0], best[2]) if keep_best else (acc, epoch)
    log(f"  {name}: kept epoch {kept[1]}, val acc {kept[0]:.4f} (best {best[0]:.4f} at epoch {best[2]}; {epoch} "
        f"epochs, stopped by {stopped}, {time.time() - t0:.0f}s)")
    return {"epochs": epoch, "keptEpoch": kept[1], "valAccuracy": round(kept[0], 4), "bestValEpoch": best[2],
            "bestValAccuracy": round(best[0], 4), "stoppedBy": stopped, "seconds": round(time.time() - t0)}


def train_side_by_side(edge, make_cloud, data, args, budget_s, opts, out, member=None):
    """Train the edge model in a forked process (one core) while this process makes the cloud model (sized while the
    edge trains, as it will train) and trains it (the other core). With `member` (a function of a time budget that
    makes a second cloud network, or None), the forked process goes on, once the edge model is done, to train that
    second cloud member with another seed for what is left of the budget, when at least MEMBER_SHARE of it is: the
    core would idle otherwise (a small edge model stops early, in about a minute on HAPT). Returns the edge's
    training figures, the cloud model (an ensemble when the member was trained) and its figures."""
    import multiprocessing as mp
    path = out / ".edge-train.pt"
    member_path = out / ".cloud-member.pt"
    ctx = mp.get_context("fork")
    t0 = time.time()

    def child():
        torch.set_num_threads(1)
        info = train(edge, data, args, "edge", budget_s, 3e-3, opts)
        torch.save({"state": edge.state_dict(), "info": info}, path)
        left = budget_s - (time.time() - t0)
        if member is None or left < MEMBER_SHARE * budget_s:
            return
        log(f"the edge model is done: a second cloud member on its core ({left:.0f}s left)")
        margs = copy.copy(args)
        margs.seed = args.seed + 1
        torch.manual_seed(margs.seed)
        net = member(left)
        minfo = train(net, data, margs, "cloud member 2", left, 2e-3, opts)
        torch.save({"net": net, "info": minfo}, member_path)

    proc = ctx.Process(target=child)
    proc.start()
    cloud = make_cloud()
    cloud_info = train(cloud, data, args, "cloud", budget_s, 2e-3, opts)
    proc.join()
    if proc.exitcode != 0 or not path.exists():
        sys.exit(f"Cannot build: the edge model's training process failed (exit {proc.exitcode})")
    saved = torch.load(path)
    path.unlink()
    edge.load_state_dict(saved["state"])
    edge.eval()
    if member_path.exists():
        second = torch.load(member_path, weights_only=False)
        member_path.unlink()
        second["net"].eval()
        cloud = CloudEnsemble([cloud, second["net"]])
        cloud.eval()
        cloud_info = {"members": [cloud_info, second["info"]], "seconds": max(cloud_info["seconds"],
                                                                           second["info"]["seconds"])}
    return saved["info"], cloud, cloud_info


MEMBER_SHARE = 0.5  # the least share of the time budget left for a second cloud member to be worth training


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


def se(p, n):
    """Standard error of an accuracy p over n sequences (binomial; windows of one performance are not independent,
    so this understates the uncertainty of mocap figures)."""
    return math.sqrt(max(p * (1 - p), 0.0) / max(n, 1))


def paired_gap(correct_a, correct_b):
    """Mean of a - b over the same sequences and its paired standard error."""
    d = correct_a.astype(np.float64) - correct_b.astype(np.float64)
    return float(d.mean()), float(d.std(ddof=1) / math.sqrt(len(d))) if len(d) > 1 else 0.0


def main():
    t_start = time.time()
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", nargs="+", required=True, help="JSONL(.gz) files in the dataset format")
    ap.add_argument("--out", required=True)
    ap.add_argument("--data-name", default=None, help="how figures name the data (default: the file names)")
    ap.add_argument("--window", type=int, default=None, help="frames per model input (default: median length)")
    ap.add_argument("--confidence-channel", default="auto",
                    help="index, 'none' or 'auto' (the layout's, or found in the data for unknown layouts)")
    ap.add_argument("--centre", choices=["auto", "root", "mean", "none"], default="auto",
                    help="per-sequence centring of point layouts (auto: the layout's root, else the visible mean)")
    ap.add_argument("--scale", choices=["auto", "body", "none"], default="auto",
                    help="divide point layouts by body size (auto: body for points)")
    ap.add_argument("--facing", choices=["auto", "on", "off"], default="auto",
                    help="rotate 3D sequences to a canonical facing (auto: on for 3D layouts with left/right pairs)")
    ap.add_argument("--augment", default="auto",
                    help="'auto' (by layout), 'none', or a list of rotate-vertical,rotate-plane,scale,mirror,jitter,time")
    ap.add_argument("--sensor-features", default="auto",
                    help="3-axis sensor layouts: extra input channels inside the graph, 'auto', 'none' or a list of "
                         "magnitude (each sensor's length), gravity (an accelerometer's low-passed direction)")
    ap.add_argument("--val-fraction", type=float, default=0.15)
    ap.add_argument("--dmd-fraction", type=float, default=0.0)
    ap.add_argument("--epochs", type=int, default=60, help="most epochs per model (early stopping may end sooner)")
    ap.add_argument("--edge-epochs", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--cloud-epochs", type=int, default=None, help=argparse.SUPPRESS)
    ap.add_argument("--patience", type=int, default=8,
                    help="cool down and stop after this many epochs without a better val acc")
    ap.add_argument("--keep", choices=["final", "best-val"], default="final",
                    help="the weights kept: where the learning-rate schedule ends, or the best validation epoch's")
    ap.add_argument("--time-budget", type=float, default=11.0,
                    help="minutes of training: each model's when they train side by side (--threads 2), else both "
                         "together (edge 30%%, cloud 70%%)")
    ap.add_argument("--cloud-arch", choices=["auto", "tcn", "transformer", "stgcn"], default="auto",
                    help="auto: tcn (chosen by measurement on 2 CPU cores, see README)")
    ap.add_argument("--cloud-members", choices=["auto", "1", "2"], default="auto",
                    help="cloud networks averaged: with --threads 2, auto trains a second member on the edge model's "
                         "core once the edge is done, when at least half the budget is left")
    ap.add_argument("--cloud-width", type=int, default=None,
                    help="cloud width (default: per architecture; the tcn's is sized to --min-epochs in the budget)")
    ap.add_argument("--min-epochs", type=int, default=8,
                    help="epochs the default tcn width must fit in the time budget, as measured before training")
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--samples", type=int, default=0, help="sample request files + golden outputs to write")
    ap.add_argument("--sample-labels", default=None, help="comma-separated labels to draw samples of, in order")
    ap.add_argument("--write-splits", action="store_true", help="write the dmd and test splits used to --out")
    ap.add_argument("--notice", default=None, help="a licence notice for the data, recorded in the manifest")
    args = ap.parse_args()
    torch.set_num_threads(1)  # one thread per model; --threads 2 trains the two models side by side
    rng = np.random.default_rng(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    data_name = args.data_name or ", ".join(Path(p).name for p in args.dataset)

    rows = [r for p in args.dataset for r in read_jsonl(p)]
    splits = split_rows(rows, args, rng)
    train_rows, val_rows = splits["train"], splits.get("val", [])
    # Every split other than train, val, dmd and deploy is a test set; "test" (or the first) is the headline one.
    test_names = sorted([k for k in splits if k not in ("train", "val", "dmd", "deploy")], key=lambda k: (k != "test", k))
    if not train_rows or not val_rows:
        sys.exit("Cannot build: expected train and val sequences (give a split field or --val-fraction)")
    first = train_rows[0]
    layout, fps = first["layout"], first["fps"]
    joints, channels = len(first["frames"][0]), len(first["frames"][0][0])
    window = args.window or int(np.median([len(r["frames"]) for r in train_rows]))
    labels = sorted({r["label"] for r in train_rows if r.get("label") is not None})
    log(f"data: {data_name}; {joints} points x {channels} channels, window {window}, "
        f"{len(labels)} classes; " + ", ".join(f"{k} {len(v)}" for k, v in splits.items()))

    xtr, ytr = to_arrays(train_rows, window, labels)
    xva, yva = to_arrays(val_rows, window, labels)
    tests = {k: to_arrays(splits[k], window, labels) for k in test_names}
    if not tests:
        tests = {"val": (xva, yva)}
        test_names = ["val"]
    test_name = test_names[0]
    xte, yte = tests[test_name]
    opts = resolve(layout, xtr, args)
    cc = opts.confidence
    log("options: " + opts.describe())
    # The ST-GCN took about 2x the TCN's time per epoch at similar FLOPs on 2 CPU cores (graph products and (k, 1)
    # kernels run poorly there), so within a minutes-long budget the TCN is the default for every layout.
    arch = args.cloud_arch if args.cloud_arch != "auto" else "tcn"

    # The normalisation's statistics are read from the training windows once; each network gets its own copy.
    norm_template = make_norm(opts, xtr)

    def norm():
        return copy.deepcopy(norm_template)

    feat = channels + (norm_template.extra_channels() if opts.norm == "channel" else 0)

    stride = max(1, window // 32)
    edge = EdgeNet(joints, feat, len(labels), norm())
    budget_s = args.time_budget * 60

    def make_cloud(cloud_budget_s):
        if arch == "tcn" and args.cloud_width:
            cloud = CloudTCN(joints, feat, len(labels), norm(), width=args.cloud_width, stride=stride)
        elif arch == "tcn":
            cloud = sized_tcn(joints, feat, len(labels), norm, stride, xtr, ytr, args, opts, cloud_budget_s)
        elif arch == "stgcn":
            w = args.cloud_width or 48
            cloud = CloudSTGCN(joints, feat, len(labels), norm(), opts.bones, widths=(w, w, 2 * w, 2 * w),
                               strides=(1, 2, 1, 1), kernel=5, window=window)
        else:
            cloud = CloudTransformer(joints, feat, len(labels), norm(), window, width=args.cloud_width or 128)
        log(f"edge: {sum(p.numel() for p in edge.parameters()):,} parameters; cloud ({arch}): "
            f"{sum(p.numel() for p in cloud.parameters()):,}")
        return cloud

    if args.edge_epochs or args.cloud_epochs:
        log("note: --edge-epochs/--cloud-epochs are replaced by --epochs (the most per model) and --time-budget")
    data = ((xtr, ytr), (xva, yva))
    if args.threads >= 2:
        # Both cores, one model each: two single-threaded trainings side by side. (Two intra-op threads per model
        # on a busy 2-core machine spin-wait on each other and ran up to 30x slower, measured.)
        log(f"training the edge and cloud models side by side, one core each (time budget {budget_s:.0f}s each)")
        members = 2 if args.cloud_members == "auto" else int(args.cloud_members)
        edge_train, cloud, cloud_train = train_side_by_side(edge, lambda: make_cloud(budget_s), data, args,
                                                            budget_s, opts, out,
                                                            member=make_cloud if members >= 2 else None)
    else:
        log(f"training the edge model (time budget {0.3 * budget_s:.0f}s)")
        edge_train = train(edge, data, args, "edge", 0.3 * budget_s, 3e-3, opts)
        log(f"training the cloud model (time budget {budget_s - edge_train['seconds']:.0f}s)")
        cloud = make_cloud(budget_s - edge_train["seconds"])
        cloud_train = train(cloud, data, args, "cloud", budget_s - edge_train["seconds"], 2e-3, opts)

    if isinstance(cloud, CloudEnsemble):
        arch = f"{arch}x{len(cloud.members)}"  # e.g. tcnx2
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

    log(f"evaluating on {', '.join(test_names)} with native onnxruntime")
    s_fp32, s_int8, s_cloud = session(fp32_path), session(out / "edge.int8.onnx"), session(out / "cloud.onnx")
    k = len(labels)
    per_split = {}
    for name in test_names:
        x, y = tests[name]
        l_fp32, l_int8, l_cloud = run_logits(s_fp32, x), run_logits(s_int8, x), run_logits(s_cloud, x)
        ok_e, ok_c = l_int8.argmax(1) == y, l_cloud.argmax(1) == y
        gap, gap_se = paired_gap(ok_c, ok_e)
        n = int(len(y))
        per_split[name] = {
            "sequences": n,
            "edgeFp32Accuracy": accuracy(l_fp32, y),
            "edgeInt8Accuracy": float(ok_e.mean()), "edgeInt8AccuracySE": se(float(ok_e.mean()), n),
            "cloudAccuracy": float(ok_c.mean()), "cloudAccuracySE": se(float(ok_c.mean()), n),
            "cloudMinusEdge": gap, "cloudMinusEdgeSE": gap_se,
            "edgeInt8MacroF1": macro_f1(l_int8.argmax(1), y, k), "cloudMacroF1": macro_f1(l_cloud.argmax(1), y, k),
            "agreementInt8Cloud": float((l_int8.argmax(1) == l_cloud.argmax(1)).mean()),
            "int8Fp32Agreement": float((l_int8.argmax(1) == l_fp32.argmax(1)).mean()),
        }
    figures = per_split[test_name]
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
        "preprocessing": {"centre": opts.centre, "scale": opts.scale, "canonicalFacing": opts.facing,
                          "augment": opts.augment, "layoutRegistered": opts.known},
    }

    # The fewest frames the model reads (the service stretches them to the window, sequence/window.ts): the time
    # augmentation trains on crops of 80 to 100% of a window's span; without it, only whole windows.
    min_frames = math.ceil(0.8 * (window - 1) - 1e-9) + 1 if "time" in opts.augment else window

    def spec(file, version, outputs, precision, extra):
        return {
            "file": file, "sha256": sha256(out / file), "bytes": (out / file).stat().st_size, "version": version,
            "inputs": [{"name": "frames", "shape": [-1, window, joints, channels], "dtype": "float32"}],
            "outputs": [{"name": n, "shape": [-1, s], "dtype": "float32"} for n, s in outputs],
            "layout": layout, "joints": joints, "channels": channels, "confidenceChannel": cc,
            "windowFrames": window, "fps": fps, "minFrames": min(min_frames, window), "labels": labels,
            "precision": precision, **extra,
        }

    def other_splits(key, se_key):
        return {n: {"accuracy": v[key], "accuracySE": v[se_key], "sequences": v["sequences"]}
                for n, v in per_split.items() if n != test_name}

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
                                     "accuracySE": figures["edgeInt8AccuracySE"],
                                     "fp32Accuracy": figures["edgeFp32Accuracy"],
                                     "macroF1": figures["edgeInt8MacroF1"], "nativeMsPerSequence": ms["edgeInt8"],
                                     "fp32NativeMsPerSequence": ms["edgeFp32"],
                                     **({"otherSplits": other_splits("edgeInt8Accuracy", "edgeInt8AccuracySE")}
                                        if len(per_split) > 1 else {})},
                     }),
        "cloud": spec("cloud.onnx", f"cloud-{layout}-{arch}-{stamp}-s{args.seed}", [("logits", k)],
                      "fp32", {
                          "params": params["cloud"], "flops": flops["cloud"],
                          "provenance": {**provenance, "recipe": {"arch": f"cloud {arch}", **cloud_train}},
                          "metrics": {"data": data_desc, "accuracy": figures["cloudAccuracy"],
                                      "accuracySE": figures["cloudAccuracySE"],
                                      "macroF1": figures["cloudMacroF1"], "nativeMsPerSequence": ms["cloud"],
                                      "agreementWithEdge": figures["agreementInt8Cloud"],
                                      "minusEdgeAccuracy": figures["cloudMinusEdge"],
                                      "minusEdgeAccuracySE": figures["cloudMinusEdgeSE"],
                                      **({"otherSplits": other_splits("cloudAccuracy", "cloudAccuracySE")}
                                         if len(per_split) > 1 else {})},
                      }),
    }
    if args.notice:
        manifest["notices"] = [Path(args.notice).read_text()]

    sample_check = None
    if args.samples:
        sample_rows = splits[test_name] if test_name in splits else val_rows
        sample_check = write_samples(out, sample_rows, args.samples, window, labels, s_int8, s_cloud,
                                     args.sample_labels.split(",") if args.sample_labels else None)
    if args.write_splits:
        for name in ("dmd", "test", "val"):
            if splits.get(name):
                write_split(out / f"{name}.jsonl.gz", splits[name])
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    fp32_path.unlink()
    build_s = time.time() - t_start
    report = {"data": data_desc, "figures": figures, "splits": per_split, "msPerSequenceNative1Thread": ms,
              "flops": flops, "params": params, "cloudArch": arch, "options": opts.describe(),
              "bytes": {"edgeInt8": manifest["edge"]["bytes"], "cloud": manifest["cloud"]["bytes"]},
              "window": window, "labels": labels, "splitSizes": {k2: len(v) for k2, v in splits.items()},
              "training": {"edge": edge_train, "cloud": cloud_train}, "buildSeconds": round(build_s),
              "threads": args.threads, "samples": sample_check}
    (out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    log(f"\nReport — {data_name} (built in {build_s / 60:.1f} min on {args.threads} threads)")
    log("| split | model | accuracy ± SE | macro-F1 |")
    log("|---|---|---|---|")
    for name, v in per_split.items():
        log(f"| {name} ({v['sequences']}) | edge int8 | {v['edgeInt8Accuracy']:.4f} ± {v['edgeInt8AccuracySE']:.4f} "
            f"| {v['edgeInt8MacroF1']:.4f} |")
        log(f"| {name} ({v['sequences']}) | cloud {arch} | {v['cloudAccuracy']:.4f} ± {v['cloudAccuracySE']:.4f} "
            f"| {v['cloudMacroF1']:.4f} |")
        log(f"| {name} ({v['sequences']}) | cloud - edge | {100 * v['cloudMinusEdge']:+.2f} ± "
            f"{100 * v['cloudMinusEdgeSE']:.2f} points (paired) | |")
    log("| model | params | FLOPs/seq | bytes | native ms/seq (1 thread) |")
    log("|---|---|---|---|---|")
    log(f"| edge fp32 ({figures['edgeFp32Accuracy']:.4f}) | {params['edge']:,} | {flops['edge']:,} | | "
        f"{ms['edgeFp32']:.3f} |")
    log(f"| edge int8 | {params['edge']:,} | {flops['edge']:,} | {manifest['edge']['bytes']:,} | {ms['edgeInt8']:.3f} |")
    log(f"| cloud {arch} | {params['cloud']:,} | {flops['cloud']:,} | {manifest['cloud']['bytes']:,} | "
        f"{ms['cloud']:.3f} |")
    log(f"edge int8 / cloud agreement: {figures['agreementInt8Cloud']:.4f}; cloud/edge FLOPs: "
        f"{flops['cloud'] / flops['edge']:.1f}x")
    if sample_check is not None:
        log(f"samples: {sample_check['correct']}/{sample_check['count']} answered correctly by both models")


def write_split(path, rows):
    import gzip
    with gzip.open(path, "wt") as f:
        for r in rows:
            # Frames read as arrays (dataset.read_jsonl) are written as the lists they were read from.
            frames = r.get("frames")
            row = {**r, "frames": frames.tolist()} if isinstance(frames, np.ndarray) else r
            f.write(json.dumps(row, separators=(",", ":")) + "\n")


def write_samples(out, rows, count, window, labels, s_edge, s_cloud, prefer=None):
    """Sample request files drawn from the test data with their true labels: for each label (in `prefer`'s order,
    then the rest), the first test sequence both models answer correctly as the service will see it (the first
    sample stretched to 1.5x its length, so the service must resample). Writes the native onnxruntime outputs the
    worker must reproduce (golden.json); returns how many samples both models answer correctly."""
    (out / "samples").mkdir(exist_ok=True)
    ref_opts = ort.SessionOptions()
    ref_opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    ref_opts.intra_op_num_threads = 1
    s_ref = ort.InferenceSession(s_edge._model_path, ref_opts, providers=["CPUExecutionProvider"])
    for old in (out / "samples").glob("*.json"):
        old.unlink()
    order = [l for l in (prefer or []) if l in labels] + [l for l in labels if l not in (prefer or [])]
    by_label = {}
    for r in rows:
        by_label.setdefault(r["label"], []).append(r)

    def request(r, stretch):
        frames = np.asarray(r["frames"], dtype=np.float64)
        if stretch:
            frames = resample(frames, int(round(len(frames) * 1.5))).astype(np.float64)
        return np.round(frames, 4)

    def answers(frames):
        x = resample(frames, window)[None]
        logits, emb = s_edge.run(["logits", "embedding"], {"frames": x})
        cloud = s_cloud.run(["logits"], {"frames": x})[0][0]
        return logits[0], emb[0], cloud

    golden = {"tolerance": {"centredLogit": 0.3, "embeddingRelative": 0.05,
                            "note": "int8 edge model: native onnxruntime fuses QDQ into integer kernels, "
                                    "onnxruntime-web runs the QDQ float path; an activation on a rounding boundary "
                                    "moves logits by a quantization step (about 0.1). Logits are compared after "
                                    "subtracting their mean; the top-1 label must match"}, "samples": []}
    correct = 0
    for label in order:
        if len(golden["samples"]) == count:
            break
        stretch = not golden["samples"]
        found = None
        for r in by_label.get(label, []):
            frames = request(r, stretch)
            logits, emb, cloud = answers(frames)
            # Both models right, the edge's top-1 not on a near tie, and the QDQ float path (what onnxruntime-web
            # runs) close to the fused integer kernels here, so the worker reproduces the golden outputs.
            top2 = np.sort(logits)[-2:]
            x = resample(frames, window)[None]
            ref_logits, ref_emb = s_ref.run(["logits", "embedding"], {"frames": x})
            close = np.abs(ref_emb[0] - emb).max() <= 0.5 * 0.05 * np.abs(emb).max() and \
                np.abs((ref_logits[0] - ref_logits[0].mean()) - (logits - logits.mean())).max() <= 0.15
            if labels[int(logits.argmax())] == label and labels[int(cloud.argmax())] == label and \
                    top2[1] - top2[0] > 0.5 and close:
                found = (r, frames, logits, emb, cloud)
                break
        if found is None:
            continue
        r, frames, logits, emb, cloud = found
        correct += 1
        # The stretched sample is the same motion recorded at a higher rate: 1.5 x the frames at 1.5 x the fps (the
        # service reads a fixed span of time, sequence/window.ts), so it answers as the original does.
        fps = r["fps"] * 1.5 if len(frames) != len(r["frames"]) else r["fps"]
        body = {"id": r["id"], "layout": r["layout"], "fps": fps, "frames": frames.tolist()}
        name = f"samples/{label}.json"
        (out / name).write_text(json.dumps(body, separators=(",", ":")) + "\n")
        golden["samples"].append({"file": name, "label": label, "frames": len(frames),
                                  "edgeLogits": logits.tolist(), "embedding": emb.tolist(),
                                  "cloudLogits": cloud.tolist()})
    (out / "golden.json").write_text(json.dumps(golden, indent=1) + "\n")
    return {"count": len(golden["samples"]), "requested": count, "correct": correct}


if __name__ == "__main__":
    main()
