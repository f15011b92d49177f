"""Forward kinematics: a character + a pose vector -> 3-D joints, the 134 keypoints and the body parts.

Body frame: ``+x`` is the subject's *left*, ``+y`` up, ``+z`` forward; the camera looks along
``-z`` from ``+z`` (orthographic), so at yaw 0 the character faces the camera and its right side is
on the image's left, as in a photo. Units are body heights; the soles touch ``y = 0`` (plus the
pose's ``lift``).

Keypoints follow the pose pipeline's Wholebody-134 layout (``unianimate_core.pose.keypoints``):
OpenPose-18 body, 6 foot points, 68 face points (iBUG order), 21 points per hand. A face/eye/ear/
nose point is *visible* only while it faces the camera (so a turned-away body has no face), the
others always; the renderer then hides points outside the frame or behind an occluder.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .character import LIMBS, CharacterSpec
from .motion import I_ARM, I_HEAD_TILT, I_HEAD_YAW, I_LEAN_F, I_LEAN_S, I_LEG, I_LIFT, I_YAW

# Labels of the rendered label map (one uint8 per pixel).
BACKGROUND, SHIRT, SHORTS, SKIN, HAIR, EYE, HAND, SHOE = 0, 1, 2, 3, 4, 5, 6, 7
LIMB_LABEL0 = 8
OCCLUDER = LIMB_LABEL0 + len(LIMBS)
NUM_LABELS = OCCLUDER + 1
LABEL_NAMES: tuple[str, ...] = ("background", "shirt", "shorts", "skin", "hair", "eye", "hand", "shoe", *LIMBS, "occluder")


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def _ry(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


_DOWN = np.array([0.0, -1.0, 0.0])


def _unit(v: np.ndarray) -> np.ndarray:
    n = float(np.linalg.norm(v))
    return v / n if n > 1e-9 else v


def _face_template() -> np.ndarray:
    """68 iBUG face points on a unit-radius head, head frame (x = subject's left, y up, z forward)."""
    pts: list[tuple[float, float]] = []
    for k in range(17):  # jaw: subject's right ear level -> chin -> left
        a = math.pi * k / 16
        pts.append((-0.85 * math.cos(a), 0.1 - 0.9 * math.sin(a)))
    for side in (-1, 1):  # eyebrows 17-21 (subject's right = image left), 22-26
        xs = np.linspace(-0.62, -0.15, 5) if side < 0 else np.linspace(0.15, 0.62, 5)
        for x in xs:
            pts.append((float(x), 0.38 + 0.06 * math.cos((abs(x) - 0.38) * 5)))
    for y in np.linspace(0.25, -0.12, 4):  # nose bridge 27-30
        pts.append((0.0, float(y)))
    for x in np.linspace(-0.15, 0.15, 5):  # nose bottom 31-35
        pts.append((float(x), -0.2 - 0.03 * (1 - abs(x) / 0.15)))
    for cx in (-0.35, 0.35):  # eyes 36-41, 42-47
        for k in range(6):
            a = math.pi - 2 * math.pi * k / 6
            pts.append((cx + 0.13 * math.cos(a), 0.15 + 0.05 * math.sin(a)))
    for k in range(12):  # outer lip 48-59
        a = math.pi - 2 * math.pi * k / 12
        pts.append((0.3 * math.cos(a), -0.45 + 0.1 * math.sin(a)))
    for k in range(8):  # inner lip 60-67
        a = math.pi - 2 * math.pi * k / 8
        pts.append((0.2 * math.cos(a), -0.45 + 0.04 * math.sin(a)))
    xy = np.array(pts)
    z = np.sqrt(np.clip(1.0 - (xy ** 2).sum(1), 0.0, None)) * 0.98
    return np.concatenate([xy, z[:, None]], axis=1)


FACE_TEMPLATE = _face_template()


@dataclass
class Part:
    """A body part to draw: ``kind`` 'capsule' (a, b, radius), 'disc' (a, radius) or 'hull' (points)."""

    label: int
    kind: str
    points: np.ndarray   # (K, 3) body-frame points
    radius: float
    depth: float
    limb: int = -1       # limb index for capsules of the identity limbs


@dataclass
class Skeleton:
    """One posed body (body frame, before the camera).

    ``keypoints`` (134, 3), ``facing`` (134,) bool (True where the point faces the camera or is not
    orientation-dependent), ``parts`` in drawing order (far to near), ``torso_axis`` (neck, mid-hip)
    for pattern coordinates, ``limb_axes`` (8, 2, 3) proximal/distal joint of each limb.
    """

    keypoints: np.ndarray
    facing: np.ndarray
    parts: list[Part]
    neck: np.ndarray
    mid_hip: np.ndarray
    limb_axes: np.ndarray


def pose_body(spec: CharacterSpec, pose: np.ndarray) -> Skeleton:
    """Pose ``spec`` with one pose vector (see :mod:`.motion`)."""
    yaw = float(pose[I_YAW])
    r_pelvis = _ry(yaw)
    r_torso = r_pelvis @ _rz(float(pose[I_LEAN_S])) @ _rx(float(pose[I_LEAN_F]))
    r_head = r_torso @ _ry(float(pose[I_HEAD_YAW])) @ _rz(float(pose[I_HEAD_TILT]))
    fwd_p = r_pelvis @ np.array([0.0, 0.0, 1.0])

    pelvis = np.zeros(3)
    neck = r_torso @ np.array([0.0, spec.torso, 0.0])
    head = neck + r_torso @ np.array([0.0, spec.neck + spec.head_r, 0.0])
    joints: dict[str, np.ndarray] = {}
    limb_axes = np.zeros((len(LIMBS), 2, 3))
    hands: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for side, sigma in (("R", -1.0), ("L", 1.0)):
        a = I_ARM[side]
        flex, abd, elbow, es = (float(v) for v in pose[a:a + 4])
        shoulder = neck + r_torso @ np.array([sigma * spec.shoulder, -0.015, 0.0])
        up_dir = r_torso @ _rz(sigma * abd) @ _rx(-flex) @ _DOWN
        fo_dir = r_torso @ _rz(sigma * (abd + es)) @ _rx(-(flex + elbow)) @ _DOWN
        elb = shoulder + spec.upper_arm * up_dir
        wrist = elb + spec.forearm * fo_dir
        joints[side + "shoulder"], joints[side + "elbow"], joints[side + "wrist"] = shoulder, elb, wrist
        hands[side] = (wrist, fo_dir)
        l_ = I_LEG[side]
        lflex, labd, knee_a = (float(v) for v in pose[l_:l_ + 3])
        hip = pelvis + r_pelvis @ np.array([sigma * spec.hip, 0.0, 0.0])
        th_dir = r_pelvis @ _rz(sigma * labd) @ _rx(-lflex) @ _DOWN
        sh_dir = r_pelvis @ _rz(sigma * labd) @ _rx(-(lflex - knee_a)) @ _DOWN
        knee = hip + spec.thigh * th_dir
        ankle = knee + spec.shin * sh_dir
        joints[side + "hip"], joints[side + "knee"], joints[side + "ankle"] = hip, knee, ankle
        inner = r_pelvis @ np.array([-sigma, 0.0, 0.0])
        sole = ankle + np.array([0.0, -0.03, 0.0])
        joints[side + "heel"] = sole - 0.25 * spec.foot * fwd_p
        joints[side + "bigtoe"] = sole + spec.foot * fwd_p + 0.012 * inner
        joints[side + "smalltoe"] = sole + 0.8 * spec.foot * fwd_p - 0.018 * inner
    i = {"R": 0, "L": 2}
    for side in ("R", "L"):
        limb_axes[i[side]] = (joints[side + "shoulder"], joints[side + "elbow"])
        limb_axes[i[side] + 1] = (joints[side + "elbow"], joints[side + "wrist"])
        limb_axes[4 + i[side]] = (joints[side + "hip"], joints[side + "knee"])
        limb_axes[4 + i[side] + 1] = (joints[side + "knee"], joints[side + "ankle"])

    # ---- keypoints (134)
    kp = np.zeros((134, 3))
    facing = np.ones(134, dtype=bool)
    hfwd = r_head @ np.array([0.0, 0.0, 1.0])
    r = spec.head_r
    nose = head + r_head @ np.array([0.0, -0.1 * r, 0.95 * r])
    eyes = {s: head + r_head @ np.array([sg * 0.35 * r, 0.15 * r, 0.85 * r]) for s, sg in (("R", -1), ("L", 1))}
    ears = {s: head + r_head @ np.array([sg * 0.98 * r, 0.0, -0.05 * r]) for s, sg in (("R", -1), ("L", 1))}
    body_rows = {0: nose, 1: neck, 2: joints["Rshoulder"], 3: joints["Relbow"], 4: joints["Rwrist"],
                 5: joints["Lshoulder"], 6: joints["Lelbow"], 7: joints["Lwrist"], 8: joints["Rhip"],
                 9: joints["Rknee"], 10: joints["Rankle"], 11: joints["Lhip"], 12: joints["Lknee"],
                 13: joints["Lankle"], 14: eyes["R"], 15: eyes["L"], 16: ears["R"], 17: ears["L"]}
    for row, p in body_rows.items():
        kp[row] = p
    facing[0] = hfwd[2] > 0.1
    for row, s in ((14, "R"), (15, "L")):
        facing[row] = _unit(eyes[s] - head)[2] > 0.15
    for row, s, sg in ((16, "R", -1), (17, "L", 1)):
        facing[row] = (r_head @ np.array([sg, 0.0, -0.05]))[2] > -0.25
    feet = [joints["Lbigtoe"], joints["Lsmalltoe"], joints["Lheel"], joints["Rbigtoe"], joints["Rsmalltoe"], joints["Rheel"]]
    kp[18:24] = np.array(feet)
    face = head + (FACE_TEMPLATE * r) @ r_head.T
    kp[24:92] = face
    facing[24:92] = (FACE_TEMPLATE @ r_head.T)[:, 2] > 0.1
    for side, start in (("L", 92), ("R", 113)):
        wrist, d = hands[side]
        kp[start:start + 21] = _hand_points(wrist, d, r_torso, spec.hand_r)

    # ---- ground contact
    lift = float(pose[I_LIFT])
    lowest = min(float(p[1]) for p in feet) - 0.008
    shift = np.array([0.0, lift - lowest, 0.0])
    kp += shift
    for k in joints:
        joints[k] = joints[k] + shift
    neck, head, pelvis = neck + shift, head + shift, pelvis + shift
    limb_axes += shift

    # ---- parts (body frame, drawn far to near)
    parts: list[Part] = []
    top = [neck + r_torso @ np.array([sx * spec.shoulder, -0.01, sz * spec.depth]) for sx in (-1, 1) for sz in (-1, 1)]
    top += [neck + r_torso @ np.array([sx * 0.6 * spec.shoulder, 0.02, sz * 0.8 * spec.depth]) for sx in (-1, 1) for sz in (-1, 1)]
    bottom = [pelvis + r_pelvis @ np.array([sx * (spec.hip + 0.3 * spec.leg_r), 0.02, sz * spec.depth]) for sx in (-1, 1) for sz in (-1, 1)]
    parts.append(Part(SHIRT, "hull", np.array(top + bottom), 0.0, float(pelvis[2] + neck[2]) / 2))
    sh_pts = [pelvis + r_pelvis @ np.array([sx * (spec.hip + spec.leg_r), sy, sz * spec.depth * 1.05])
              for sx in (-1, 1) for sy in (0.03, -0.06) for sz in (-1, 1)]
    # behind the thighs: the whole thigh (and so the hip joint) stays visible
    parts.append(Part(SHORTS, "hull", np.array(sh_pts), 0.0, float(pelvis[2]) - 0.001))
    parts.append(Part(SKIN, "capsule", np.array([neck, neck + r_torso @ np.array([0, spec.neck + 0.5 * r, 0])]),
                      0.42 * r, float(neck[2]) - 0.005))
    parts.append(Part(SKIN, "disc", head[None], r, float(head[2]) + 0.01))
    if spec.hair_style != "bald":
        hc = head + r_head @ np.array([0.0, 0.18 * r, -0.3 * r])
        parts.append(Part(HAIR, "disc", hc[None], 1.0 * r, float(hc[2]) + 0.01))
        if spec.hair_style == "long":
            back = [head + r_head @ np.array([sx * 1.0 * r, sy * r, -0.75 * r]) for sx in (-1, 1) for sy in (0.4, -1.6)]
            parts.append(Part(HAIR, "hull", np.array(back), 0.0, float(head[2] - 0.75 * r * hfwd[2])))
    if hfwd[2] > 0.25:
        for s in ("R", "L"):
            parts.append(Part(EYE, "disc", (eyes[s] + shift)[None], 0.12 * r, float(head[2] + r) + 0.01))
    for k, name in enumerate(LIMBS):
        a, b = limb_axes[k]
        rad = spec.arm_r if "arm" in name else spec.leg_r
        parts.append(Part(LIMB_LABEL0 + k, "capsule", np.array([a, b]), rad, float((a[2] + b[2]) / 2) + 0.012, limb=k))
    for side in ("R", "L"):
        wrist, d = hands[side]
        c = wrist + d * spec.hand_r * 0.9 + shift
        parts.append(Part(HAND, "disc", c[None], spec.hand_r, float(c[2]) + 0.013))
        heel, toe = joints[side + "heel"], (joints[side + "bigtoe"] + joints[side + "smalltoe"]) / 2
        parts.append(Part(SHOE, "capsule", np.array([heel + [0, 0.015, 0], toe + [0, 0.012, 0]]), 0.02,
                          float((heel[2] + toe[2]) / 2) + 0.011))
    parts.sort(key=lambda p: p.depth)
    return Skeleton(kp, facing, parts, neck, pelvis, limb_axes)


def _hand_points(wrist: np.ndarray, d: np.ndarray, r_torso: np.ndarray, hand_r: float) -> np.ndarray:
    """21 OpenPose hand points: wrist, thumb 1-4, index 5-8, middle 9-12, ring 13-16, pinky 17-20."""
    d = _unit(d)
    fwd = r_torso @ np.array([0.0, 0.0, 1.0])
    side = r_torso @ np.array([1.0, 0.0, 0.0])
    w = side - np.dot(side, d) * d
    w = _unit(w) if np.linalg.norm(w) > 1e-3 else _unit(fwd - np.dot(fwd, d) * d)
    t = _unit(fwd - np.dot(fwd, d) * d) if np.linalg.norm(fwd - np.dot(fwd, d) * d) > 1e-3 else w
    out = np.zeros((21, 3))
    out[0] = wrist
    palm = 1.5 * hand_r
    seg = 0.45 * hand_r
    base = wrist + 0.35 * palm * d + 0.5 * hand_r * t
    tdir = _unit(d + t)
    for j in range(4):
        out[1 + j] = base + j * seg * tdir
    for f in range(4):
        off = (f - 1.5) * 0.35 * hand_r
        b = wrist + palm * d + off * w
        fd = _unit(d + 0.12 * (f - 1.5) * w)
        for j in range(4):
            out[5 + 4 * f + j] = b + j * seg * fd
    return out
