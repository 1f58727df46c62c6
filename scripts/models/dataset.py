"""The project's dataset format (JSONL, optionally gzipped), one sequence per line:
{id, label?, split?, subject?, fps, layout, frames: T x J x C}. Any J and C; labels needed for building models.
"""
import gzip
import json

import numpy as np


def read_jsonl(path, limit=None):
    """The rows of a dataset file (the first `limit` of them, when given), each row's frames as one float64 array
    (T, J, C) as soon as its line is parsed: about 8 bytes a number instead of some 67 as nested Python lists of
    floats, so large files fit in memory. The values are those of the lists exactly (a Python float is a float64).
    Frames that do not form a T x J x C block stay as parsed, for the caller to refuse."""
    opener = gzip.open if str(path).endswith(".gz") else open
    rows = []
    with opener(path, "rt") as f:
        for line in f:
            if limit is not None and len(rows) >= limit:
                break
            if not line.strip():
                continue
            row = json.loads(line)
            frames = row.get("frames")
            if isinstance(frames, list):
                try:
                    array = np.asarray(frames, dtype=np.float64)
                except (ValueError, TypeError):
                    array = None
                if array is not None and array.ndim == 3:
                    row["frames"] = array
            rows.append(row)
    return rows


def resample(frames, out_frames):
    """Linear interpolation over the whole sequence, the service's definition (sequence/preprocess.ts):
    output frame i reads source position i * (T - 1) / (out_frames - 1). Like the service, the input is taken as
    float32 (what the service holds after parsing JSON), interpolated in float64 and stored as float32, so both
    sides produce bit-identical windows."""
    x = np.asarray(frames, dtype=np.float32).astype(np.float64)
    t = x.shape[0]
    if t == out_frames:
        return x.astype(np.float32)
    if t == 1 or out_frames == 1:
        return np.repeat(x[:1], out_frames, axis=0).astype(np.float32)
    s = np.arange(out_frames) * (t - 1) / (out_frames - 1)
    i0 = np.floor(s).astype(int)
    i1 = np.minimum(i0 + 1, t - 1)
    w = (s - i0).reshape((-1,) + (1,) * (x.ndim - 1))
    return ((1 - w) * x[i0] + w * x[i1]).astype(np.float32)


def to_arrays(rows, window, labels):
    """Stack rows into X (N, window, J, C) float32 and y (N,) int64 (-1 where unlabelled or unknown)."""
    index = {l: i for i, l in enumerate(labels)}
    x = np.stack([resample(r["frames"], window) for r in rows])
    y = np.array([index.get(r.get("label"), -1) for r in rows], dtype=np.int64)
    return x, y


def split_rows(rows, args, rng):
    """Divide rows into train/val/dmd/test by their `split` field; carve val (and dmd) out of train by subject when
    the file has none."""
    by = {}
    for r in rows:
        by.setdefault(r.get("split", "train"), []).append(r)
    train = by.get("train", [])
    for name, fraction in (("val", args.val_fraction), ("dmd", args.dmd_fraction)):
        if name in by or fraction <= 0 or not train:
            continue
        subjects = sorted({str(r.get("subject", r["id"])) for r in train})
        rng.shuffle(subjects)
        if len(subjects) >= 5:
            k = max(1, int(round(len(subjects) * fraction)))
            chosen = set(subjects[:k])
            by[name] = [r for r in train if str(r.get("subject", r["id"])) in chosen]
            train = [r for r in train if str(r.get("subject", r["id"])) not in chosen]
        else:
            order = rng.permutation(len(train))
            k = int(len(train) * fraction)
            by[name] = [train[i] for i in order[:k]]
            train = [train[i] for i in order[k:]]
    by["train"] = train
    return by
