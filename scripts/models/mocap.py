"""The default dataset: DeepMimic motion capture (pybullet_data, zlib licence) as 2D COCO-17 keypoint sequences.

Each clip is one performance of one action. Its 3D joints (skeleton.py) are seen through random virtual cameras
(azimuth, elevation, distance, focal length), projected to normalised image coordinates with a confidence per point,
then given the faults of a real pose estimator: jitter, dropped points, speed changes, mirroring, partial views
(points out of frame), confidence noise. Windows of WINDOW frames at FPS frames per second.

Splits, so that held-out figures mean something with one performance per action:
- test: cameras in a held-out azimuth sector AND windows in held-out time blocks of each clip's timeline (blocks
  interleaved with the training ones, a window inside one block; see BLOCK_PATTERN);
- val: another held-out sector and other blocks, so that model selection measures generalisation to unseen views;
- train / dmd: the other azimuths and the training blocks; other draws from the same distribution (dmd is an
  unlabeled pool from the training conditions; its labels are kept but DMD never reads them);
- deploy: unlabeled traffic from the test conditions (its own random stream, disjoint draws from the test's sector
  and blocks), as an edge site there would log it: the pool the served switcher is distilled from.

Deterministic from --seed.

    python3 scripts/models/mocap.py --out build/mocap --seed 7

With --3d it writes the cross-view 3D benchmark instead: camera-space 3D joints in metres (Kinect v1 layout, 20
joints, y up, no confidence channel), as a depth sensor would give them. Cameras stand in three azimuth sectors
(views); training uses two, the third is held out:
- train / val: the two training views, the training / val blocks of each clip's timeline;
- test: the held-out view, the test blocks;
- test_seen_view: the training views, the test blocks (held-out time, seen views).
Held-out-view accuracy over held-out-time accuracy on seen views measures what a new view costs.

    python3 scripts/models/mocap.py --3d --out build/mocap3d --seed 7
"""
import argparse
import functools
import gzip
import json
import math
from pathlib import Path

import numpy as np
import pybullet_data

from skeleton import ACTIONS, COCO17_FLIP, Performer, forward_kinematics, kinect20_positions

FPS = 30
WINDOW = 32
# Held-out camera sectors (degrees of azimuth relative to the character's initial facing).
TEST_AZIMUTH = (200.0, 250.0)
VAL_AZIMUTH = (100.0, 140.0)
# Held-out time: each looping clip is repeated to at least TIMELINE_S seconds and cut into blocks of BLOCK_FRAMES;
# block i belongs to BLOCK_PATTERN[i % len(BLOCK_PATTERN)] (6 train, 1 val, 3 test in every 10, interleaved), and a
# window lies wholly inside one block (the longest window, 32 frames replayed at 0.75x, spans 41 frames), so no
# window straddles two splits. One-shot clips (kick, punch, the two get-ups: 1.5-4 s) are shorter than two blocks:
# every split draws from the whole clip, so their held-out windows differ by camera, speed and faults only.
TIMELINE_S = 40.0
BLOCK_FRAMES = 60
FAULTS = [2.0]  # the scale of the detection-quality faults of augment() (--faults)
BLOCK_PATTERN = ("train", "train", "test", "train", "val", "train", "test", "train", "train", "test")


def load_clip(action):
    path = Path(pybullet_data.getDataPath()) / "data" / "motions" / f"humanoid3d_{action}.txt"
    motion = json.loads(path.read_text())
    frames = np.asarray(motion["Frames"], dtype=np.float64)
    return frames, motion.get("Loop", "none") == "wrap"


def clip_positions(action, cycles=4, kinematics=forward_kinematics, min_seconds=0.0):
    """3D positions at FPS, (F, J, 3) (COCO-17 points by default); looping clips are repeated (at least `cycles`
    times and `min_seconds` long) with the root's drift carried on."""
    frames, loops = load_clip(action)
    pts = kinematics(frames)
    t = np.concatenate([[0.0], np.cumsum(frames[:-1, 0])])
    if loops:
        drift = pts[-1].mean(axis=0) - pts[0].mean(axis=0)
        drift[1] = 0.0  # keep the height; carry the horizontal travel
        period = t[-1]
        # The clip's last key frame closes the loop: cycle k spans key frames 0..F-2 shifted by k periods, and the
        # timeline ends on the last key frame of the last cycle (cycles - 1 shifts, not cycles: one more would
        # append a period-long slide between two poses that no performance contains).
        cycles = max(cycles, math.ceil(min_seconds / period)) if period > 0 else cycles
        pts = np.concatenate([pts[:-1] + k * drift for k in range(cycles)] + [pts[-1:] + (cycles - 1) * drift])
        t = np.concatenate([t[:-1] + k * period for k in range(cycles)] + [t[-1:] + (cycles - 1) * period])
    n = int(math.floor(t[-1] * FPS)) + 1
    ts = np.arange(n) / FPS
    out = np.empty((n, pts.shape[1], 3))
    for j in range(pts.shape[1]):
        for c in range(3):
            out[:, j, c] = np.interp(ts, t, pts[:, j, c])
    return out, loops


def look_at(eye, target):
    """Camera rotation (rows: right, down, forward) for a camera at eye looking at target, world y up."""
    fwd = target - eye
    fwd /= np.linalg.norm(fwd)
    right = np.cross(fwd, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(fwd, right)
    return np.stack([right, down, fwd])


def project(points, rng, azimuth_deg):
    """Project (T, 17, 3) world points through a random camera at the given azimuth; returns (T, 17, 3) u, v, conf."""
    centre = points.reshape(-1, 3).mean(axis=0)
    height = np.ptp(points[..., 1]) + 0.3
    elev = math.radians(rng.uniform(-5.0, 35.0))
    dist = rng.uniform(1.2, 2.6) * max(height, 1.0) + 0.5
    az = math.radians(azimuth_deg)
    eye = centre + dist * np.array([math.cos(elev) * math.cos(az), math.sin(elev), math.cos(elev) * math.sin(az)])
    target = centre + rng.normal(0.0, 0.15, 3)  # imperfect framing
    r = look_at(eye, target)
    cam = (points - eye) @ r.T
    focal = rng.uniform(1.2, 2.4)
    z = np.maximum(cam[..., 2], 1e-3)
    uv = focal * cam[..., :2] / z[..., None] * 0.5 + 0.5
    # Confidence: high when the point faces the camera, lower when the body hides it; noisy like a detector's.
    conf = rng.uniform(0.75, 0.98) + rng.normal(0.0, 0.05, z.shape)
    depth_rank = (cam[..., 2] - cam[..., 2].mean(axis=1, keepdims=True)) / (height * 0.5)
    conf -= np.clip(depth_rank, 0.0, 1.0) * rng.uniform(0.1, 0.4)
    return np.concatenate([uv, np.clip(conf, 0.05, 1.0)[..., None]], axis=-1)


def augment(seq, rng):
    """Pose-estimator faults on a (T, 17, 3) sequence of u, v, conf. A window's detection quality q (0 clean, 1 poor;
    uniform) scales the faults a detector makes more of on a hard clip: jitter, dropped points, lost limbs, left/right
    swaps on some frames (the common fault of 2D pose estimators seeing a body from the side or behind) and outlier
    points with low confidence."""
    t = seq.shape[0]
    seq = seq.copy()
    q = rng.uniform(0.0, 1.0) * FAULTS[0]
    seq[..., :2] += rng.normal(0.0, rng.uniform(0.001, 0.008) + 0.02 * q * q, seq[..., :2].shape)  # jitter
    if rng.random() < 0.5:  # mirroring: flip horizontally and swap left/right
        seq[..., 0] = 1.0 - seq[..., 0]
        seq = seq[:, COCO17_FLIP]
    if q > 0:
        swap = rng.random(t) < 0.25 * q  # left/right labels swapped on some frames
        seq[swap] = seq[swap][:, COCO17_FLIP]
        wild = rng.random((t, 17)) < 0.03 * q  # outliers: a point detected elsewhere, with low confidence
        seq[wild, :2] = rng.uniform(0.0, 1.0, (int(wild.sum()), 2))
        seq[wild, 2] = rng.uniform(0.1, 0.5, int(wild.sum()))
    drop = rng.random((t, 17)) < rng.uniform(0.0, min(0.5, 0.12 + 0.2 * q))  # dropped points
    if rng.random() < 0.15 + 0.35 * q:  # a limb lost for a stretch of frames
        j = rng.choice([7, 8, 9, 10, 13, 14, 15, 16])
        a = rng.integers(0, t)
        drop[a:a + rng.integers(3, t), j] = True
    out = (seq[..., 0] < 0) | (seq[..., 0] > 1) | (seq[..., 1] < 0) | (seq[..., 1] > 1)  # partial views
    drop |= out
    seq[drop] = 0.0
    return seq


# Kinect v1 joint order (skeleton.KINECT20) with left and right swapped.
KINECT20_FLIP = [0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 16, 17, 18, 19, 12, 13, 14, 15]
KINECT20_LIMB_ENDS = [6, 7, 10, 11, 14, 15, 18, 19]  # wrists, hands, ankles, feet


def camera_space(points, rng, azimuth_deg):
    """(T, J, 3) world points seen by a depth camera at the given azimuth: camera-space metres (x right, y up,
    z away from the camera), with the faults of a depth sensor's skeleton tracker, scaled (like augment()'s) by a
    window's tracking quality q (0 clean, 1 poor; uniform x --faults): jitter; joints the body hides from the sensor
    (more than 10 cm behind the body's median depth) are inferred, noisy and pulled toward the spine; left and right
    swapped on some frames, more often the more side-on the body is to the sensor (the tracker assumes a frontal
    body); a limb's end lost for a stretch of frames; the odd lost joint (all zeros, as depth sensors report them).
    Hidden joints and swaps depend on the view, so a new view brings faults of its own."""
    t, j = points.shape[:2]
    centre = points.reshape(-1, 3).mean(axis=0)
    elev = math.radians(rng.uniform(-5.0, 20.0))
    dist = rng.uniform(2.2, 3.8)
    az = math.radians(azimuth_deg)
    eye = centre + dist * np.array([math.cos(elev) * math.cos(az), math.sin(elev), math.cos(elev) * math.sin(az)])
    eye[1] = max(eye[1], 0.4)  # a sensor on a stand, not under the floor
    r = look_at(eye, centre + rng.normal(0.0, 0.1, 3))
    cam = (points - eye) @ r.T
    cam[..., 1] *= -1.0  # rows are right, down, forward: y up
    q = rng.uniform(0.0, 1.0) * FAULTS[0]
    if q > 0 and j == len(KINECT20_FLIP):
        depth = cam[..., 2]
        hidden = depth > np.median(depth, axis=1, keepdims=True) + 0.10
        spine = cam[:, 1:2, :]
        pull = rng.uniform(0.0, 0.3 * min(q, 1.0))
        cam = np.where(hidden[..., None], cam + pull * (spine - cam) + rng.normal(0.0, 0.01 + 0.04 * q, cam.shape), cam)
        shoulders = cam[:, 4, :] - cam[:, 8, :]
        side_on = np.abs(shoulders[:, 2]) / np.maximum(np.linalg.norm(shoulders, axis=1), 1e-6)
        swap = rng.random(t) < 0.3 * q * side_on
        cam[swap] = cam[swap][:, KINECT20_FLIP]
    cam += rng.normal(0.0, rng.uniform(0.005, 0.02) + 0.03 * q * q, cam.shape)
    lost = rng.random(cam.shape[:2]) < rng.uniform(0.0, 0.03 + 0.05 * q)
    if q > 0 and j == len(KINECT20_FLIP) and rng.random() < 0.15 + 0.35 * min(q, 1.0):
        a = rng.integers(0, t)
        lost[a:a + rng.integers(3, t), rng.choice(KINECT20_LIMB_ENDS)] = True
    cam[lost] = 0.0
    return cam


@functools.lru_cache(maxsize=64)  # one action's performers at a time: splits are drawn action by action
def performed_clip(action, three_d, performer):
    """clip_positions() of one action by one performer (None: the capture), as COCO-17 points or Kinect v1
    joints, computed once per run (every split draws from the same timelines)."""
    kinematics = kinect20_positions if three_d else forward_kinematics
    return clip_positions(action, kinematics=lambda f: kinematics(f, performer), min_seconds=TIMELINE_S)


def blocks_of(n, part):
    """(first, end) frames of the blocks of an n-frame timeline that belong to split `part` (train, val, test)."""
    return [(i * BLOCK_FRAMES, (i + 1) * BLOCK_FRAMES) for i in range(n // BLOCK_FRAMES)
            if BLOCK_PATTERN[i % len(BLOCK_PATTERN)] == part]


def windows_for(action, rng, count, azimuths, part, three_d=False, performers=None):
    """`count` windows of one clip lying in the time blocks of split `part` (train, val, test; the whole clip for a
    one-shot clip) with cameras from `azimuths`, each by one of `performers` ([(id, Performer)]; default: the
    captured performance). Returns the windows and their performers' ids."""
    performers = performers or [("deepmimic", None)]
    clips = [performed_clip(action, three_d, p) for _, p in performers]
    out, who = [], []
    for _ in range(count):
        k = rng.integers(0, len(performers)) if len(performers) > 1 else 0
        (pts, loops), performer = clips[k], performers[k][1]
        n = pts.shape[0]
        blocks = blocks_of(n, part) if loops else [(0, n)]
        speed = rng.uniform(0.75, 1.3)  # speed change: resample the clip's time
        if performer is not None:
            speed *= performer.tempo
        span = (WINDOW - 1) * speed
        first, end = blocks[rng.integers(0, len(blocks))]
        last_start = max(float(first), end - 1 - span)
        start = rng.uniform(first, last_start)
        ts = start + np.arange(WINDOW) * speed
        ts = np.minimum(ts, n - 1)
        i0 = np.floor(ts).astype(int)
        i1 = np.minimum(i0 + 1, n - 1)
        w = (ts - i0)[:, None, None]
        window = (1 - w) * pts[i0] + w * pts[i1]
        az = azimuths(rng)
        out.append(camera_space(window, rng, az) if three_d else augment(project(window, rng, az), rng))
        who.append(performers[k][0])
    return out, who


def train_azimuth(rng):
    while True:
        a = rng.uniform(0.0, 360.0)
        if not (TEST_AZIMUTH[0] <= a < TEST_AZIMUTH[1] or VAL_AZIMUTH[0] <= a < VAL_AZIMUTH[1]):
            return a


def val_azimuth(rng):
    return rng.uniform(*VAL_AZIMUTH)


def test_azimuth(rng):
    return rng.uniform(*TEST_AZIMUTH)


def write_jsonl(path, rows):
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt") as f:
        for r in rows:
            f.write(json.dumps(r, separators=(",", ":")) + "\n")


# The 3D benchmark's views: azimuth sectors (degrees, relative to the character's initial facing).
VIEWS_3D = {"front": (-15.0, 15.0), "right": (30.0, 60.0), "left": (-60.0, -30.0)}
TRAIN_VIEWS_3D = ("front", "right")
TEST_VIEW_3D = "left"


def view_sampler(names):
    def pick(rng):
        lo, hi = VIEWS_3D[names[rng.integers(0, len(names))]]
        return rng.uniform(lo, hi) % 360.0
    return pick


def to_rows(made, action, split, prefix, decimals, layout="coco17"):
    windows, who = made
    return [
        {
            "id": f"{prefix}-{action}-{i:05d}",
            "label": action,
            "split": split,
            "subject": who[i],
            "fps": FPS,
            "layout": layout,
            "frames": np.round(w, decimals).tolist(),
        }
        for i, w in enumerate(windows)
    ]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="build/mocap")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--train", type=int, default=500, help="train windows per action")
    ap.add_argument("--val", type=int, default=80, help="val windows per action")
    ap.add_argument("--dmd", type=int, default=200, help="dmd (unlabeled pool) windows per action")
    ap.add_argument("--test", type=int, default=200, help="test windows per action")
    ap.add_argument("--deploy", type=int, default=200,
                    help="deploy (unlabeled traffic from the test conditions) windows per action")
    ap.add_argument("--decimals", type=int, default=3)
    ap.add_argument("--faults", type=float, default=2.0,
                    help="scale of the detection-quality faults (0: jitter, drops and lost limbs as before only)")
    ap.add_argument("--3d", dest="three_d", action="store_true",
                    help="write the cross-view 3D benchmark (camera-space Kinect v1 joints) instead")
    ap.add_argument("--performers", type=int, default=None,
                    help="performers made from each capture (build, limb lengths, movement amplitude, lean, tempo); "
                         "1: the capture as it is (default for 2D); 3D default 16")
    ap.add_argument("--performer-spread", type=float, default=1.0,
                    help="how far performers differ: 1 (heights 0.85-1.15, movement amplitude 0.7-1.3, lean and "
                         "shoulder carriage +-8-10 degrees, tempo 0.85-1.18), 2 doubles each on a log scale")
    ap.add_argument("--test-performers", type=int, default=None,
                    help="performers held out for the test splits (default: 3/8 of --performers, 6 of 16: the "
                         "evaluation's deploy protocol halves them, and grouped folds need 3 in a half)")
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    FAULTS[0] = args.faults
    out = Path(args.out)
    if args.three_d:
        write_3d(args, rng, out)
        return
    splits = {"train": [], "val": [], "dmd": [], "test": []}
    seen, held = make_performers(args, 1)
    for k, action in enumerate(ACTIONS):
        for split, count, az, seg, who in [
            ("train", args.train, train_azimuth, "train", seen),
            ("val", args.val, val_azimuth, "val", seen),
            ("dmd", args.dmd, train_azimuth, "train", seen),
            ("test", args.test, test_azimuth, "test", held),
        ]:
            ws = windows_for(action, rng, count, az, seg, performers=who)
            splits[split] += to_rows(ws, action, split, split, args.decimals)
        print(f"[{k + 1}/{len(ACTIONS)}] {action}", flush=True)
    for split, rows in splits.items():
        order = rng.permutation(len(rows))
        write_jsonl(out / f"{split}.jsonl.gz", [rows[i] for i in order])
        print(f"{split}: {len(rows)} windows -> {out / f'{split}.jsonl.gz'}")
    # Deployment traffic: what an edge site in the test conditions sees, with its own random stream so the other
    # splits stay as they are. Other draws from the test's camera sector and time blocks; DMD reads it unlabeled.
    deploy_rng = np.random.default_rng([args.seed, 1])
    rows = []
    for action in ACTIONS:
        made = windows_for(action, deploy_rng, args.deploy, test_azimuth, "test", performers=held)
        rows += to_rows(made, action, "deploy", "deploy", args.decimals)
    order = deploy_rng.permutation(len(rows))
    write_jsonl(out / "deploy.jsonl.gz", [rows[i] for i in order])
    print(f"deploy: {len(rows)} windows -> {out / 'deploy.jsonl.gz'}")


def make_performers(args, default):
    """(training performers, held-out performers) as [(id, Performer)]; one performer: the capture, in both."""
    n = args.performers or default
    if n <= 1:
        return None, None
    held = args.test_performers or max(1, round(3 * n / 8))
    if not 1 <= held < n:
        raise SystemExit("Cannot write: --test-performers must leave at least one training performer")
    prng = np.random.default_rng([args.seed, 2])  # its own stream: the cameras' and faults' draws stay as they were
    made = [(f"performer{i + 1:02d}", Performer(prng, args.performer_spread)) for i in range(n)]
    return made[:n - held], made[n - held:]


def write_3d(args, rng, out):
    train_views, test_view = view_sampler(TRAIN_VIEWS_3D), view_sampler((TEST_VIEW_3D,))
    seen, held = make_performers(args, 16)
    plan = [("train", args.train, train_views, "train", seen), ("val", args.val, train_views, "val", seen),
            ("test", args.test, test_view, "test", held), ("test_seen_view", args.test, train_views, "test", held)]
    splits = {p[0]: [] for p in plan}
    for k, action in enumerate(ACTIONS):
        for split, count, az, seg, who in plan:
            ws = windows_for(action, rng, count, az, seg, three_d=True, performers=who)
            splits[split] += to_rows(ws, action, split, f"{split}3d", args.decimals, layout="kinect-v1-20")
        print(f"[{k + 1}/{len(ACTIONS)}] {action}", flush=True)
    for split, rows in splits.items():
        order = rng.permutation(len(rows))
        write_jsonl(out / f"{split}.jsonl.gz", [rows[i] for i in order])
        print(f"{split}: {len(rows)} windows -> {out / f'{split}.jsonl.gz'}")


if __name__ == "__main__":
    main()
