"""Whole-body pose model (``dw-ll_ucoco_384.onnx``, RTMPose/SimCC) pre- and post-processing.

Reproduces the official UniAnimate code's top-down crop and SimCC decoding
(docs/official_behaviour.md#dwpose-pose-model): the box is
padded by 1.25 and fixed to the model's 3:4 aspect, the crop is an affine warp built from three
float32 point pairs (so the matrix carries float32 rounding), pixels are normalised with the RGB
ImageNet mean/std applied to **BGR** channels (same page, #dwpose-bgr), and the keypoint of each SimCC row pair is the
argmax with score min(max_x, max_y) (<= 0 -> location -1).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._deps import import_cv2

#: RTMPose normalisation constants (RGB order, applied to BGR pixels as the official code does).
POSE_MEAN = (123.675, 116.28, 103.53)
POSE_STD = (58.395, 57.12, 57.375)


@dataclass(frozen=True)
class CropGeometry:
    """Where one person box sits in the image: ``center`` (2,) and ``scale`` (2,) = box size after
    padding and aspect fix, both float64 pixels; ``matrix`` (2, 3) the image -> crop affine map."""

    center: np.ndarray
    scale: np.ndarray
    matrix: np.ndarray


def box_to_center_scale(box_xyxy: np.ndarray, padding: float = 1.25) -> tuple[np.ndarray, np.ndarray]:
    """(4,) xyxy -> (center (2,), scale (2,)) with ``scale = box size * padding``."""
    b = np.asarray(box_xyxy, dtype=np.float64)
    center = np.array([b[0] + b[2], b[1] + b[3]]) * 0.5
    scale = np.array([b[2] - b[0], b[3] - b[1]]) * padding
    return center, scale


def fix_aspect_ratio(scale: np.ndarray, aspect_ratio: float) -> np.ndarray:
    """Grow the shorter side so that ``w / h == aspect_ratio`` (the crop is never squashed)."""
    w, h = float(scale[0]), float(scale[1])
    if w > h * aspect_ratio:
        return np.array([w, w / aspect_ratio])
    return np.array([h * aspect_ratio, h])


def _third_point(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a`` rotated by 90 degrees about ``b`` (defines the affine map's third point pair)."""
    d = a - b
    return b + np.array([-d[1], d[0]])


def crop_geometry(box_xyxy: np.ndarray, input_wh: tuple[int, int]) -> CropGeometry:
    """Affine geometry mapping a person box to the model input of ``input_wh`` = (w, h) pixels."""
    cv2 = import_cv2()
    w, h = input_wh
    center, scale = box_to_center_scale(box_xyxy)
    scale = fix_aspect_ratio(scale, w / h)
    src = np.zeros((3, 2), dtype=np.float32)
    src[0] = center
    src[1] = center + np.array([0.0, scale[0] * -0.5])
    src[2] = _third_point(src[0], src[1])
    dst = np.zeros((3, 2), dtype=np.float32)
    dst[0] = [w * 0.5, h * 0.5]
    dst[1] = np.array([w * 0.5, h * 0.5]) + np.array([0.0, w * -0.5])
    dst[2] = _third_point(dst[0], dst[1])
    matrix = cv2.getAffineTransform(src, dst)
    return CropGeometry(center=center, scale=scale, matrix=matrix)


def crop_person(image_bgr: np.ndarray, geometry: CropGeometry, input_wh: tuple[int, int]) -> np.ndarray:
    """Warp the box to the model input: (H, W, 3) uint8 -> (h, w, 3) uint8 (INTER_LINEAR, border 0)."""
    cv2 = import_cv2()
    return cv2.warpAffine(image_bgr, geometry.matrix, (int(input_wh[0]), int(input_wh[1])), flags=cv2.INTER_LINEAR)


def normalization_table(mean: tuple[float, ...] = POSE_MEAN, std: tuple[float, ...] = POSE_STD) -> np.ndarray:
    """(3, 256) float32: ``float32((v - mean[c]) / std[c])`` computed in float64 for every byte v."""
    v = np.arange(256, dtype=np.float64)
    return np.stack([((v - m) / s) for m, s in zip(mean, std)]).astype(np.float32)


_TABLE = normalization_table()
_TABLE.setflags(write=False)  # a constant


def normalize_crop(crop: np.ndarray, table: np.ndarray | None = None) -> np.ndarray:
    """(h, w, 3) uint8 -> (1, 3, h, w) float32 = float32((x - mean) / std) with float64 arithmetic.

    Implemented as a per-channel lookup table (identical values, several times faster than the
    float64 array arithmetic of the official code).
    """
    lut = _TABLE if table is None else table
    out = np.empty((1, 3) + crop.shape[:2], dtype=np.float32)
    for c in range(3):
        out[0, c] = lut[c][crop[..., c]]
    return out


def decode_simcc(simcc_x: np.ndarray, simcc_y: np.ndarray, split_ratio: float = 2.0) -> tuple[np.ndarray, np.ndarray]:
    """SimCC maxima: (N, K, Wx), (N, K, Wy) -> (locations (N, K, 2) in input pixels, scores (N, K)).

    Location = argmax bin / ``split_ratio`` (first bin on ties); score = min(max_x, max_y);
    locations whose score is <= 0 become -1 **before** the division (so -0.5), as in the official
    decoder.
    """
    n, k, _ = simcc_x.shape
    sx = simcc_x.reshape(n * k, -1)
    sy = simcc_y.reshape(n * k, -1)
    locs = np.stack((sx.argmax(axis=1), sy.argmax(axis=1)), axis=-1).astype(np.float32)
    vals = np.minimum(sx.max(axis=1), sy.max(axis=1))
    locs[vals <= 0.0] = -1
    return (locs / np.float32(split_ratio)).reshape(n, k, 2), vals.reshape(n, k)


def to_image_coords(locs: np.ndarray, input_wh: tuple[int, int], geometry: CropGeometry) -> np.ndarray:
    """Model-input pixel locations (K, 2) -> original image pixels (K, 2) float64."""
    size = np.array(input_wh)
    return locs / size * geometry.scale + geometry.center - geometry.scale / 2
