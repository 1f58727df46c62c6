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


def _kinematics(frames):
    """World positions and rotations of every humanoid joint, and a function placing points on the head sphere."""
    offsets, head_centre, head_r = urdf_offsets()
    frames = np.asarray(frames, dtype=np.float64)
    pos = {"root": frames[:, 1:4]}
    rot = {"root": quat_to_mat(frames[:, 4:8])}
    i = 8
    for name, parent, kind in MOTION_JOINTS:
        if kind == "sph":
            local = quat_to_mat(frames[:, i:i + 4])
            i += 4
        else:
            local = rot_z(frames[:, i])
            i += 1
        pos[name] = pos[parent] + np.einsum("fij,j->fi", rot[parent], offsets[name])
        rot[name] = rot[parent] @ local
    for name, parent in FIXED_JOINTS:
        pos[name] = pos[parent] + np.einsum("fij,j->fi", rot[parent], offsets[name])
        rot[name] = rot[parent]
    # Face points from the head sphere: the humanoid has a ball for a head, so nose, eyes and ears are placed on it
    # in the neck link's frame (x forward, y up, z towards the character's right).
    def on_head(local):
        return pos["neck"] + np.einsum("fij,j->fi", rot["neck"], head_centre + head_r * np.asarray(local))
    return pos, rot, on_head


def forward_kinematics(frames):
    """World positions (F, 17, 3) of the COCO-17 points for motion frames (F, 44)."""
    pos, rot, on_head = _kinematics(frames)
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


def kinect20_positions(frames):
    """World positions (F, 20, 3) of the Kinect v1 joints for motion frames (F, 44): the humanoid's joints where
    they exist; the spine halfway up the chest link; the head at the head sphere's centre; hands and feet a hand's
    and a foot's length beyond the wrist and ankle, along the forearm and the foot's forward axis."""
    pos, rot, on_head = _kinematics(frames)
    forearm = pos["right_wrist"] - pos["right_elbow"], pos["left_wrist"] - pos["left_elbow"]

    def unit(v):
        return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-9)

    def foot(ankle):
        return pos[ankle] + np.einsum("fij,j->fi", rot[ankle], np.array([0.12, -0.04, 0.0]))

    p = {
        "hip_center": pos["root"], "spine": (pos["root"] + pos["neck"]) / 2, "shoulder_center": pos["neck"],
        "head": on_head([0.0, 0.0, 0.0]), "left_hand": pos["left_wrist"] + 0.08 * unit(forearm[1]),
        "right_hand": pos["right_wrist"] + 0.08 * unit(forearm[0]), "left_foot": foot("left_ankle"),
        "right_foot": foot("right_ankle"),
    }
    for k in KINECT20:
        if k not in p:
            p[k] = pos[k]
    return np.stack([p[k] for k in KINECT20], axis=1)
