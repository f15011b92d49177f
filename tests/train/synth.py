"""Small generated training videos: a stick figure waving on a coloured background, with its poses.

The frames are drawn from known keypoints, so the POSE_KEYPOINT sidecar written next to each video
is its exact ground truth. Used for the data-plumbing tests of the trainer (the synthetic world of
the observatory is the richer source once available).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from unianimate_core.pose.keypoints import NUM_KEYPOINTS, Person, PoseFrame
from unianimate_core.pose.pose_keypoint import to_pose_keypoint

# OpenPose-18 limb pairs (body only)
LIMBS = [(1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13), (1, 0)]


def figure(t: float, dx: float = 0.0, scale: float = 1.0) -> Person:
    """A standing figure (normalised coordinates) whose arms and legs swing with phase ``t``."""
    kp = np.zeros((NUM_KEYPOINTS, 2))
    sc = np.zeros(NUM_KEYPOINTS)
    cx = 0.5 + dx
    s = scale
    a = 0.6 * np.sin(t)
    body = {
        0: (cx, 0.18), 1: (cx, 0.28), 2: (cx - 0.1 * s, 0.3), 5: (cx + 0.1 * s, 0.3),
        8: (cx - 0.06 * s, 0.58), 11: (cx + 0.06 * s, 0.58),
    }
    body[3] = (body[2][0] - 0.12 * s * np.cos(a), body[2][1] + 0.12 * s * np.sin(a) + 0.05)
    body[4] = (body[3][0] - 0.1 * s * np.cos(2 * a), body[3][1] - 0.1 * s * np.sin(2 * a))
    body[6] = (body[5][0] + 0.12 * s * np.cos(a), body[5][1] - 0.12 * s * np.sin(a) + 0.05)
    body[7] = (body[6][0] + 0.1 * s * np.cos(2 * a), body[6][1] + 0.1 * s * np.sin(2 * a))
    body[9] = (body[8][0] - 0.03 * np.sin(t), 0.75)
    body[10] = (body[9][0] - 0.03 * np.sin(t), 0.92)
    body[12] = (body[11][0] + 0.03 * np.sin(t), 0.75)
    body[13] = (body[12][0] + 0.03 * np.sin(t), 0.92)
    body[14], body[15] = (cx - 0.02, 0.16), (cx + 0.02, 0.16)
    body[16], body[17] = (cx - 0.04, 0.17), (cx + 0.04, 0.17)
    for i, (x, y) in body.items():
        kp[i] = (x, y)
        sc[i] = 0.95
    return Person(kp, sc)


def draw(person: Person, width: int, height: int, colour: tuple[int, int, int], background: tuple[int, int, int]) -> np.ndarray:
    img = Image.new("RGB", (width, height), background)
    d = ImageDraw.Draw(img)
    pts = person.keypoints * np.array([width, height])
    lw = max(2, width // 16)
    for a, b in LIMBS:
        d.line([tuple(pts[a]), tuple(pts[b])], fill=colour, width=lw)
    r = max(3, width // 10)
    x, y = pts[0]
    d.ellipse([x - r, y - r, x + r, y + r], fill=tuple(255 - c for c in colour))
    return np.asarray(img)


def make_video(folder: Path, name: str, frames: int, width: int = 96, height: int = 80, seed: int = 0,
               kind: str = "frames", sidecar: bool = True, person: bool = True) -> Path:
    """Write a clip (``kind``: 'frames' = a folder of PNGs (lossless), 'mp4', 'gif') and its POSE_KEYPOINT json."""
    rng = np.random.default_rng(seed)
    colour = tuple(int(c) for c in rng.integers(60, 255, 3))
    background = tuple(int(c) for c in rng.integers(0, 60, 3))
    phase, speed = rng.uniform(0, 6), rng.uniform(0.3, 0.6)
    people = [figure(phase + speed * i, dx=0.05 * np.sin(0.2 * i)) for i in range(frames)]
    images = [draw(p, width, height, colour, background) if person else
              np.full((height, width, 3), background, dtype=np.uint8) for p in people]
    folder.mkdir(parents=True, exist_ok=True)
    if kind == "frames":
        path = folder / name
        path.mkdir()
        for i, im in enumerate(images):
            Image.fromarray(im).save(path / f"{i:04d}.png")
    elif kind == "mp4":
        from unianimate_core.pipeline.video import write_video

        path = write_video(folder / f"{name}.mp4", images, fps=8)
    elif kind == "gif":
        path = folder / f"{name}.gif"
        ims = [Image.fromarray(im) for im in images]
        ims[0].save(path, save_all=True, append_images=ims[1:], duration=125, loop=0)
    else:
        raise ValueError(kind)
    if sidecar:
        frames_kp = [PoseFrame(width, height, [p] if person else []) for p in people]
        (folder / f"{name}.json").write_text(json.dumps(to_pose_keypoint(frames_kp)))
    return path
