"""Side-by-side preview frames: reference | aligned pose | result (+ an optional burned-in banner).

The official inference saves its result next to the condition panels
(docs/official_behaviour.md#output-saving); this is the same
idea for people checking a run at a glance: was the reference read right, did the poses align, what
came out. A banner is burned into every frame when the result must not be mistaken for a real one
(the random-weight installation check).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .conditioning import squash_resize_u8
from .errors import PipelineError

NOISE_BANNER = "RANDOM-WEIGHT NOISE - installation check, not a result"


def _font(height: int) -> ImageFont.ImageFont:
    size = max(8, min(24, height // 28))
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1 has only the fixed bitmap font
        return ImageFont.load_default()


def burn_banner(frame: np.ndarray, text: str) -> np.ndarray:
    """Draw ``text`` in a red bar across the top of a uint8 ``(H, W, 3)`` frame (wrapped to fit)."""
    image = Image.fromarray(np.ascontiguousarray(frame))
    draw = ImageDraw.Draw(image)
    font = _font(image.height)
    words, lines, line = text.split(), [], ""
    for word in words:
        trial = f"{line} {word}".strip()
        if draw.textlength(trial, font=font) > image.width - 8 and line:
            lines.append(line)
            line = word
        else:
            line = trial
    lines.append(line)
    bbox = draw.textbbox((0, 0), "Ag", font=font)
    line_h = bbox[3] - bbox[1] + 4
    draw.rectangle([0, 0, image.width, line_h * len(lines) + 4], fill=(200, 0, 0))
    for i, text_line in enumerate(lines):
        draw.text((4, 2 + i * line_h), text_line, fill=(255, 255, 255), font=font)
    return np.asarray(image).copy()


def side_by_side(reference: np.ndarray, poses: Sequence[np.ndarray], result: Sequence[np.ndarray],
                 banner: str | None = None) -> list[np.ndarray]:
    """Compose preview frames ``[reference | pose_i | result_i]`` for every result frame.

    ``reference``: uint8 ``(H0, W0, 3)``; ``poses``/``result``: uint8 ``(H, W, 3)`` per frame (equal
    counts). The reference is squash-resized to the result size exactly as the model saw it, and
    poses of another size are squash-resized too. Returns uint8 ``(H, 3W, 3)`` frames.
    """
    if len(poses) != len(result):
        raise PipelineError(f"preview needs one pose per result frame; got {len(poses)} poses and {len(result)} frames.")
    if not len(result):
        raise PipelineError("preview needs at least one result frame.")
    h, w = np.asarray(result[0]).shape[:2]
    ref = squash_resize_u8(reference, (w, h))
    frames = []
    for pose, out in zip(poses, result):
        pose_u8 = squash_resize_u8(pose, (w, h))
        frame = np.concatenate([ref, pose_u8, np.asarray(out, dtype=np.uint8)], axis=1)
        if banner:
            frame = burn_banner(frame, banner)
        frames.append(frame)
    return frames
