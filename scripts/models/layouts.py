"""Layouts as data: the point layouts and sensor layouts the build knows, and what it infers for the ones it does not.

A layout says what a frame's J x C numbers are: joint names, the bone graph (the ST-GCN's adjacency and the body
size), left/right pairs (mirroring), the root (centring), the confidence channel, the spatial dimensions and, for 3D,
the vertical axis (rotation augmentation and canonical facing). `resolve()` turns a layout name plus the training
data into the options the build uses; every option can be overridden by a flag, and the build prints what it chose.
"""
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Layout:
    name: str
    kind: str  # "points" (2D/3D joints) or "sensors" (inertial channels)
    joints: list
    bones: list = field(default_factory=list)  # (a, b) joint index pairs
    pairs: list = field(default_factory=list)  # (left, right) joint index pairs
    root: list = field(default_factory=list)  # joint indices whose mean is the root
    confidence: str = "none"  # "none", "last" (the last channel when C = dims + 1)
    dims: int = 2  # spatial dimensions of a point
    vertical: int = 1  # the vertical axis for 3D (y up in Kinect camera space)
    aliases: tuple = ()


def _idx(names, edges):
    pos = {n: i for i, n in enumerate(names)}
    return [(pos[a], pos[b]) for a, b in edges]


def _pairs(names):
    """(left, right) index pairs from names that differ only in a left/right word."""
    pos = {n: i for i, n in enumerate(names)}
    out = []
    for n, i in pos.items():
        for lw, rw in (("left", "right"), ("Left", "Right"), ("l_", "r_"), ("L_", "R_")):
            if lw in n:
                other = n.replace(lw, rw)
                if other in pos:
                    out.append((i, pos[other]))
    return out


COCO17_NAMES = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]
COCO17_BONES = _idx(COCO17_NAMES, [
    ("nose", "left_eye"), ("nose", "right_eye"), ("left_eye", "left_ear"), ("right_eye", "right_ear"),
    ("nose", "left_shoulder"), ("nose", "right_shoulder"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
])

# MediaPipe Pose / BlazePose landmarks (x, y[, z], visibility).
MEDIAPIPE33_NAMES = [
    "nose", "left_eye_inner", "left_eye", "left_eye_outer", "right_eye_inner", "right_eye", "right_eye_outer",
    "left_ear", "right_ear", "mouth_left", "mouth_right", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_pinky", "right_pinky", "left_index", "right_index",
    "left_thumb", "right_thumb", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_heel", "right_heel", "left_foot_index", "right_foot_index",
]
MEDIAPIPE33_BONES = _idx(MEDIAPIPE33_NAMES, [
    ("nose", "left_eye_inner"), ("left_eye_inner", "left_eye"), ("left_eye", "left_eye_outer"),
    ("left_eye_outer", "left_ear"), ("nose", "right_eye_inner"), ("right_eye_inner", "right_eye"),
    ("right_eye", "right_eye_outer"), ("right_eye_outer", "right_ear"), ("mouth_left", "mouth_right"),
    ("left_shoulder", "right_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("left_wrist", "left_pinky"), ("left_wrist", "left_index"), ("left_wrist", "left_thumb"),
    ("left_pinky", "left_index"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("right_wrist", "right_pinky"), ("right_wrist", "right_index"), ("right_wrist", "right_thumb"),
    ("right_pinky", "right_index"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_heel"),
    ("left_heel", "left_foot_index"), ("left_ankle", "left_foot_index"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"), ("right_ankle", "right_heel"), ("right_heel", "right_foot_index"),
    ("right_ankle", "right_foot_index"), ("nose", "mouth_left"), ("nose", "mouth_right"),
])

# Kinect v1 (20 joints; MSR Action3D, UTKinect, Florence 3D order), camera space in metres, y up.
KINECT20_NAMES = [
    "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
]
KINECT20_BONES = _idx(KINECT20_NAMES, [
    ("hip_center", "spine"), ("spine", "shoulder_center"), ("shoulder_center", "head"),
    ("shoulder_center", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("left_wrist", "left_hand"), ("shoulder_center", "right_shoulder"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("right_wrist", "right_hand"), ("hip_center", "left_hip"),
    ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_foot"), ("hip_center", "right_hip"),
    ("right_hip", "right_knee"), ("right_knee", "right_ankle"), ("right_ankle", "right_foot"),
])

# Kinect v2 (25 joints; NTU RGB+D order), camera space in metres, y up.
KINECT25_NAMES = [
    "spine_base", "spine_mid", "neck", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot", "spine_shoulder", "left_hand_tip", "left_thumb",
    "right_hand_tip", "right_thumb",
]
KINECT25_BONES = _idx(KINECT25_NAMES, [
    ("spine_base", "spine_mid"), ("spine_mid", "spine_shoulder"), ("spine_shoulder", "neck"), ("neck", "head"),
    ("spine_shoulder", "left_shoulder"), ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"),
    ("left_wrist", "left_hand"), ("left_hand", "left_hand_tip"), ("left_wrist", "left_thumb"),
    ("spine_shoulder", "right_shoulder"), ("right_shoulder", "right_elbow"), ("right_elbow", "right_wrist"),
    ("right_wrist", "right_hand"), ("right_hand", "right_hand_tip"), ("right_wrist", "right_thumb"),
    ("spine_base", "left_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("left_ankle", "left_foot"),
    ("spine_base", "right_hip"), ("right_hip", "right_knee"), ("right_knee", "right_ankle"),
    ("right_ankle", "right_foot"),
])

# The 13-joint 2D layout of Penn Action (and of datasets converted to it), with a visibility channel.
POSE13_NAMES = [
    "head", "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip",
    "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
]
POSE13_BONES = _idx(POSE13_NAMES, [
    ("head", "left_shoulder"), ("head", "right_shoulder"), ("left_shoulder", "right_shoulder"),
    ("left_shoulder", "left_elbow"), ("left_elbow", "left_wrist"), ("right_shoulder", "right_elbow"),
    ("right_elbow", "right_wrist"), ("left_shoulder", "left_hip"), ("right_shoulder", "right_hip"),
    ("left_hip", "right_hip"), ("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_hip", "right_knee"),
    ("right_knee", "right_ankle"),
])


def _points(name, names, bones, root, confidence, dims, aliases=()):
    pos = {n: i for i, n in enumerate(names)}
    return Layout(name, "points", names, bones, _pairs(names), [pos[r] for r in root], confidence, dims, 1, aliases)


LAYOUTS = [
    _points("coco17", COCO17_NAMES, COCO17_BONES, ["left_hip", "right_hip"], "last", 2, ("coco", "coco-17")),
    _points("mediapipe33", MEDIAPIPE33_NAMES, MEDIAPIPE33_BONES, ["left_hip", "right_hip"], "last", 2,
            ("blazepose33", "blazepose", "mediapipe", "mediapipe-pose")),
    _points("kinect-v1-20", KINECT20_NAMES, KINECT20_BONES, ["hip_center"], "none", 3,
            ("kinect20", "kinect-v1", "kinect1", "msr-action3d", "utkinect", "florence3d")),
    _points("kinect-v2-25", KINECT25_NAMES, KINECT25_BONES, ["spine_base"], "none", 3,
            ("kinect25", "kinect-v2", "kinect2", "ntu", "ntu-rgbd", "ntu25")),
    _points("pose13", POSE13_NAMES, POSE13_BONES, ["left_hip", "right_hip"], "last", 2,
            ("penn13", "penn-action", "penn-action-13", "lsp13")),
    Layout("imu-acc-gyro", "sensors", ["accelerometer", "gyroscope"], aliases=("imu", "acc-gyro")),
    Layout("imu-acc", "sensors", ["accelerometer"], aliases=("accelerometer",)),
]


def find_layout(name):
    """The registered layout with this name or alias (case-insensitive; a `-3d`/`_3d` suffix names the 3D variant of
    a 2D layout), or None."""
    key = name.lower().replace("_", "-")
    for lay in LAYOUTS:
        if key == lay.name or key in lay.aliases:
            return lay
    if key.endswith("-3d"):
        base = find_layout(key[:-3])
        if base is not None and base.kind == "points":
            return Layout(key, "points", base.joints, base.bones, base.pairs, base.root, base.confidence, 3, 1,
                          ())
    return None


def detect_confidence(x, dims_hint=None):
    """The index of a per-point confidence/visibility channel found in data x (N, T, J, C), or None.

    A channel counts as confidence when every value lies in [0, 1] and it is the last channel, and either the data
    has a point layout shape (C = 3 with a 2D hint or C = 4) or, where it is 0, the other channels are 0 too (a
    dropped point) or it varies independently of them."""
    c = x.shape[-1]
    if c < 3:
        return None
    last = x[..., -1]
    if last.min() < 0.0 or last.max() > 1.0 + 1e-6:
        return None
    if dims_hint is not None and c == dims_hint + 1:
        return c - 1
    coords = x[..., :-1]
    zero = last <= 0.0
    if zero.any() and np.abs(coords[zero]).max() == 0.0:
        return c - 1  # dropped points: every channel zeroed together
    values = np.unique(last[: min(len(last), 64)])
    if len(values) <= 3 and np.all(np.isin(values, [0.0, 0.5, 1.0])) and len(np.unique(coords[:64])) > 10:
        return c - 1  # a visibility flag (0/1, or 0/0.5/1) beside continuous coordinates
    # Coordinates spread beyond [0, 1] (metres, pixels) while the last channel stays inside it and is mostly high.
    spread_out = coords.min() < -0.05 or coords.max() > 1.05
    if spread_out and np.median(last) > 0.3:
        return c - 1
    return None


def detect_vertical(x, cc):
    """For 3D points of an unknown layout: the axis along which a body spreads most within a frame (its height),
    median over frames; standing, walking and most actions put it first."""
    keep = [i for i in range(x.shape[-1]) if i != cc]
    p = x[..., keep][:, :: max(1, x.shape[1] // 8)]
    visible = np.abs(p).sum(-1) > 0
    spreads = []
    for axis in range(3):
        v = np.where(visible, p[..., axis], np.nan)
        spreads.append(np.nanmedian(np.nanstd(v, axis=2)))
    return int(np.nanargmax(spreads))


def bone_pairs_for(joints, n_joints):
    """A chain over the joints when a layout has no bone graph (an unknown layout): every joint linked to the next,
    so the graph network still mixes neighbours and learns the rest through its adaptive adjacency."""
    return [(i, i + 1) for i in range(n_joints - 1)]


@dataclass
class Options:
    """What the build does with a layout, all printable."""
    layout: str
    known: bool
    kind: str
    dims: int
    confidence: object  # int or None
    centre: str  # "root", "mean", "none"
    root: list
    scale: str  # "body", "none"
    facing: bool  # rotate 3D sequences to a canonical facing
    vertical: int
    bones: list
    pairs: list
    augment: list  # names of augmentations
    norm: str  # "pose" or "channel"
    sensor_features: list = field(default_factory=list)  # extra channels of 3-axis sensors (nets.ChannelNorm)
    accelerometers: list = field(default_factory=list)  # 1 per sensor that is an accelerometer, else 0

    def describe(self):
        return (f"layout {self.layout} ({'registered' if self.known else 'unknown: inferred from the data'}, "
                f"{self.kind}{', ' + str(self.dims) + 'D' if self.kind == 'points' else ''}); confidence channel {self.confidence}; centre {self.centre}"
                f"{' ' + str(self.root) if self.centre == 'root' else ''}; scale {self.scale}; "
                f"canonical facing {'on' if self.facing else 'off'}"
                f"{'; vertical axis ' + str(self.vertical) if self.dims == 3 and self.kind == 'points' else ''}; bones {len(self.bones)}; "
                f"left/right pairs {len(self.pairs)}; augmentation {', '.join(self.augment) or 'none'}"
                + (f"; sensor features {', '.join(self.sensor_features) or 'none'}" if self.kind == "sensors" else ""))


def resolve(layout_name, x, flags):
    """Options for a layout and training data x (N, T, J, C); flags (argparse namespace) override each choice."""
    n_joints, channels = x.shape[2], x.shape[3]
    lay = find_layout(layout_name)
    if lay is not None and lay.kind == "points" and len(lay.joints) != n_joints:
        lay = None  # a name we know with another joint count: treat as unknown
    known = lay is not None
    if lay is None:
        # Unknown layout: points when there are several joints of 2-4 channels, sensors otherwise.
        kind = "points" if n_joints >= 5 and 2 <= channels <= 4 else "sensors"
    else:
        kind = lay.kind
    # Confidence channel.
    if flags.confidence_channel == "auto":
        if kind != "points":
            cc = None
        elif known and lay.confidence == "none":
            cc = None
        elif known and lay.confidence == "last":
            cc = channels - 1 if channels == lay.dims + 1 or channels == 4 else detect_confidence(x)
        else:
            cc = detect_confidence(x)
    else:
        cc = None if flags.confidence_channel == "none" else int(flags.confidence_channel)
    dims = channels - (1 if cc is not None else 0) if kind == "points" else channels
    if kind == "points" and dims not in (2, 3):
        kind = "sensors"
    points = kind == "points"
    bones = (lay.bones if known else bone_pairs_for(None, n_joints)) if points else []
    pairs = lay.pairs if known and points else []
    root = lay.root if known and points else []
    vertical = lay.vertical if known else (detect_vertical(x, cc) if points and dims == 3 else 1)
    centre = flags.centre if flags.centre != "auto" else ("root" if root else "mean") if points else "none"
    if centre == "root" and not root:
        centre = "mean"
    scale = flags.scale if flags.scale != "auto" else ("body" if points else "none")
    facing = (flags.facing == "on") if flags.facing != "auto" else (points and dims == 3 and len(pairs) > 0)
    if facing and (not points or dims != 3 or not pairs):
        facing = False
    if flags.augment == "auto":
        if points:
            augment = ["scale", "jitter", "time"]
            augment += ["rotate-vertical"] if dims == 3 else ["rotate-plane"]
            if pairs:
                augment.append("mirror")
        else:
            augment = ["scale", "jitter", "time"]
    elif flags.augment == "none":
        augment = []
    else:
        augment = [a.strip() for a in flags.augment.split(",") if a.strip()]
    # 3-axis sensors (channels x, y, z): extra channels inside the graph (nets.ChannelNorm); the gravity direction
    # for the sensors a registered layout names accelerometers.
    accelerometers = [1 if "acc" in name else 0 for name in lay.joints] \
        if known and not points and len(lay.joints) == n_joints else [0] * n_joints
    requested = getattr(flags, "sensor_features", "none")
    if points or channels != 3 or requested == "none":
        features = []
    elif requested == "auto":
        features = list(SENSOR_FEATURES_AUTO)
    else:
        features = [f.strip() for f in requested.split(",") if f.strip()]
    if not any(accelerometers):
        features = [f for f in features if f != "gravity"]
    return Options(layout_name, known, kind, dims, cc, centre, root, scale, facing, vertical, bones, pairs, augment,
                   "pose" if points else "channel", features, accelerometers)


SENSOR_FEATURES_AUTO = ()  # measured on HAPT (README): neither helped on subject-grouped validation
