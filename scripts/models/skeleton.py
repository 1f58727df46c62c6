"""Forward kinematics of the DeepMimic humanoid and its mapping to the COCO-17 keypoint layout.

The DeepMimic motion files (pybullet_data/data/motions/humanoid3d_*.txt) store, per frame: the frame's duration,
the root position (3), the root rotation (w, x, y, z), then the local rotation of each joint: a quaternion
(w, x, y, z) for spherical joints, an angle about the local z axis for knees and elbows. The humanoid's joint
offsets come from pybullet_data/humanoid/humanoid.urdf (in URDF units, 4x metres: DeepMimic loads it with
globalScaling 0.25). World frame: y up; the character faces +x with its right side towards +z.
"""
import re
from pathlib import Path

import numpy as np
import pybullet_data

URDF_SCALE = 0.25

# (joint, parent, kind) in the order the motion frames store them after the root.
MOTION_JOINTS = [
    ("chest", "root", "sph"),
    ("neck", "chest", "sph"),
    ("right_hip", "root", "sph"),
    ("right_knee", "right_hip", "rev"),
    ("right_ankle", "right_knee", "sph"),
    ("right_shoulder", "chest", "sph"),
    ("right_elbow", "right_shoulder", "rev"),
    ("left_hip", "root", "sph"),
    ("left_knee", "left_hip", "rev"),
    ("left_ankle", "left_knee", "sph"),
    ("left_shoulder", "chest", "sph"),
    ("left_elbow", "left_shoulder", "rev"),
]
FIXED_JOINTS = [("right_wrist", "right_elbow"), ("left_wrist", "left_elbow")]

COCO17 = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]
# Left/right pairs, for mirroring.
COCO17_FLIP = [0, 2, 1, 4, 3, 6, 5, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15]

ACTIONS = [
    "walk", "run", "jump", "kick", "punch", "spinkick", "cartwheel", "backflip", "crawl", "roll", "spin", "dance_a",
    "dance_b", "getup_facedown", "getup_faceup",
]


def urdf_offsets():
    """Joint origins (parent-link frame, metres) and the head sphere's centre and radius, read from the URDF."""
    text = (Path(pybullet_data.getDataPath()) / "humanoid" / "humanoid.urdf").read_bytes().decode("latin-1")
    offsets = {}
    for m in re.finditer(r'<joint name="(\w+)".*?<origin[^>]*xyz\s*=\s*"([^"]+)"', text, re.S):
        offsets[m.group(1)] = np.array([float(v) for v in m.group(2).split()]) * URDF_SCALE
    neck = re.search(r'<link name="neck".*?<collision>.*?xyz\s*=\s*"([^"]+)".*?radius\s*=\s*"([^"]+)"', text, re.S)
    head_centre = np.array([float(v) for v in neck.group(1).split()]) * URDF_SCALE
    head_radius = float(neck.group(2)) * URDF_SCALE
    return offsets, head_centre, head_radius


def quat_to_mat(q):
    """Rotation matrices from quaternions (..., 4) in (w, x, y, z) order."""
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    m = np.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
        2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
        2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
    ], axis=-1)
    return m.reshape(q.shape[:-1] + (3, 3))


def rot_z(angle):
    c, s = np.cos(angle), np.sin(angle)
    m = np.zeros(angle.shape + (3, 3))
    m[..., 0, 0], m[..., 0, 1], m[..., 1, 0], m[..., 1, 1], m[..., 2, 2] = c, -s, s, c, 1
    return m


LIMB_GROUP = {
    "chest": "spine", "neck": "spine", "right_hip": "legs", "right_knee": "legs", "right_ankle": "legs",
    "left_hip": "legs", "left_knee": "legs", "left_ankle": "legs", "right_shoulder": "arms", "right_elbow": "arms",
    "left_shoulder": "arms", "left_elbow": "arms", "right_wrist": "arms", "left_wrist": "arms",
}


class Performer:
    """One performer's build and style, applied to the captured motion: body size and the lengths of legs and arms
    (bone offsets scaled, the root's path with the height), how far each limb group moves (each joint's rotation away
    from its rest pose scaled: a stiffer or a more expansive mover), a forward lean of the chest, arms held wider or
    closer, and a tempo. The captured performance itself is Performer() (no change)."""

    def __init__(self, rng=None, spread=1.0):
        def u(lo, hi):
            return 1.0 if rng is None else float(np.exp(rng.uniform(np.log(lo), np.log(hi)) * spread))

        self.height = u(0.85, 1.15)
        self.length = {"legs": u(0.92, 1.08), "arms": u(0.92, 1.08), "spine": u(0.94, 1.06)}
        self.amplitude = {"legs": u(0.75, 1.2), "arms": u(0.7, 1.3), "spine": u(0.7, 1.3)}
        self.lean = 0.0 if rng is None else float(rng.uniform(-0.14, 0.14) * spread)  # radians, about +-8 degrees
        self.carriage = 0.0 if rng is None else float(rng.uniform(-0.17, 0.17) * spread)  # shoulder abduction
        self.tempo = u(0.85, 1.18)


def _scale_rotation(q, amount):
    """Quaternions (F, 4) (w, x, y, z) with their rotation angle scaled by `amount` about the same axis."""
    if amount == 1.0:
        return q
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    q = np.where(q[:, :1] < 0, -q, q)  # the shorter way round
    v = q[:, 1:]
    n = np.linalg.norm(v, axis=-1, keepdims=True)
    half = np.arctan2(n, q[:, :1]) * amount
    axis = v / np.maximum(n, 1e-12)
    return np.concatenate([np.cos(half), axis * np.sin(half)], axis=-1)


def _kinematics(frames, performer=None):
    """World positions and rotations of every humanoid joint, and a function placing points on the head sphere."""
    offsets, head_centre, head_r = urdf_offsets()
    p = performer or Performer()
    frames = np.asarray(frames, dtype=np.float64)
    pos = {"root": frames[:, 1:4] * p.height}
    rot = {"root": quat_to_mat(frames[:, 4:8])}
    head_centre, head_r = head_centre * p.height, head_r * p.height
    i = 8
    for name, parent, kind in MOTION_JOINTS:
        group = LIMB_GROUP[name]
        if kind == "sph":
            local = quat_to_mat(_scale_rotation(frames[:, i:i + 4], p.amplitude[group]))
            i += 4
        else:
            local = rot_z(frames[:, i] * p.amplitude[group])
            i += 1
        if name == "chest" and p.lean:
            local = rot_z(np.full(len(frames), -p.lean)) @ local
        if name.endswith("shoulder") and p.carriage:
            side = 1.0 if name.startswith("right") else -1.0  # the right side is towards +z
            local = np.array([[1.0, 0, 0], [0, np.cos(p.carriage), -side * np.sin(p.carriage)],
                              [0, side * np.sin(p.carriage), np.cos(p.carriage)]]) @ local
        pos[name] = pos[parent] + np.einsum("fij,j->fi", rot[parent], offsets[name] * p.height * p.length[group])
        rot[name] = rot[parent] @ local
    for name, parent in FIXED_JOINTS:
        length = p.height * p.length[LIMB_GROUP[name]]
        pos[name] = pos[parent] + np.einsum("fij,j->fi", rot[parent], offsets[name] * length)
        rot[name] = rot[parent]
    # Face points from the head sphere: the humanoid has a ball for a head, so nose, eyes and ears are placed on it
    # in the neck link's frame (x forward, y up, z towards the character's right).
    def on_head(local):
        return pos["neck"] + np.einsum("fij,j->fi", rot["neck"], head_centre + head_r * np.asarray(local))
    return pos, rot, on_head


def forward_kinematics(frames, performer=None):
    """World positions (F, 17, 3) of the COCO-17 points for motion frames (F, 44)."""
    pos, rot, on_head = _kinematics(frames, performer)
    face = {
        "nose": on_head([0.95, -0.05, 0.0]),
        "left_eye": on_head([0.8, 0.3, -0.35]),
        "right_eye": on_head([0.8, 0.3, 0.35]),
        "left_ear": on_head([0.0, 0.1, -1.0]),
        "right_ear": on_head([0.0, 0.1, 1.0]),
    }
    joint_of = {
        "left_shoulder": "left_shoulder", "right_shoulder": "right_shoulder", "left_elbow": "left_elbow",
        "right_elbow": "right_elbow", "left_wrist": "left_wrist", "right_wrist": "right_wrist", "left_hip": "left_hip",
        "right_hip": "right_hip", "left_knee": "left_knee", "right_knee": "right_knee", "left_ankle": "left_ankle",
        "right_ankle": "right_ankle",
    }
    return np.stack([face[k] if k in face else pos[joint_of[k]] for k in COCO17], axis=1)


KINECT20 = [
    "hip_center", "spine", "shoulder_center", "head", "left_shoulder", "left_elbow", "left_wrist", "left_hand",
    "right_shoulder", "right_elbow", "right_wrist", "right_hand", "left_hip", "left_knee", "left_ankle", "left_foot",
    "right_hip", "right_knee", "right_ankle", "right_foot",
]


def kinect20_positions(frames, performer=None):
    """World positions (F, 20, 3) of the Kinect v1 joints for motion frames (F, 44): the humanoid's joints where
    they exist; the spine halfway up the chest link; the head at the head sphere's centre; hands and feet a hand's
    and a foot's length beyond the wrist and ankle, along the forearm and the foot's forward axis."""
    pos, rot, on_head = _kinematics(frames, performer)
    scale = (performer or Performer()).height
    forearm = pos["right_wrist"] - pos["right_elbow"], pos["left_wrist"] - pos["left_elbow"]

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)

    def foot(ankle):
        return pos[ankle] + np.einsum("fij,j->fi", rot[ankle], np.array([0.12, -0.04, 0.0]) * scale)

    p = {
        "hip_center": pos["root"], "spine": (pos["root"] + pos["neck"]) / 2, "shoulder_center": pos["neck"],
        "head": on_head([0.0, 0.0, 0.0]), "left_hand": pos["left_wrist"] + 0.08 * scale * unit(forearm[1]),
        "right_hand": pos["right_wrist"] + 0.08 * scale * unit(forearm[0]), "left_foot": foot("left_ankle"),
        "right_foot": foot("right_ankle"),
    }
    for k in KINECT20:
        if k not in p:
            p[k] = pos[k]
    return np.stack([p[k] for k in KINECT20], axis=1)
