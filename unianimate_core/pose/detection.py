"""YOLOX-L person detector: letterbox pre-processing, grid decoding and NMS (numpy + OpenCV).

Reproduces the pre/post-processing the official UniAnimate code (ali-vilab/UniAnimate @ 643c963)
wraps around ``yolox_l.onnx`` (docs/official_behaviour.md#dwpose-detector), including its details that
change results: the image is
fed **BGR** and un-normalised (same page, #dwpose-bgr), the box IoU uses the "+1 pixel" convention, NMS runs after the
boxes were divided by the letterbox ratio, and only class 0 (person) with score > 0.3 survives.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._deps import import_cv2
from .errors import PoseInputError

#: Strides of the three YOLOX heads (grid sizes 80, 40, 20 for a 640 input).
YOLOX_STRIDES = (8, 16, 32)


@dataclass(frozen=True)
class DetectorConfig:
    """Thresholds of the official detector post-processing."""

    input_size: tuple[int, int] = (640, 640)  # (height, width) of the letterboxed input
    nms_threshold: float = 0.45  # suppress boxes whose IoU with a better box is above this
    candidate_threshold: float = 0.1  # per-class score needed to enter NMS
    person_threshold: float = 0.3  # final person score needed to keep a box
    pad_value: int = 114


def letterbox(image_bgr: np.ndarray, input_size: tuple[int, int] = (640, 640), pad_value: int = 114) -> tuple[np.ndarray, float]:
    """Resize keeping the aspect ratio and paste top-left on a ``pad_value`` canvas.

    ``image_bgr`` (H, W, 3) uint8 -> ((1, 3, h_in, w_in) float32 in the image's channel order, ratio r).
    """
    cv2 = import_cv2()
    h_in, w_in = input_size
    height, width = image_bgr.shape[:2]
    ratio = min(h_in / height, w_in / width)
    new_w, new_h = int(width * ratio), int(height * ratio)
    padded = np.full((h_in, w_in, 3), pad_value, dtype=np.uint8)
    if new_w > 0 and new_h > 0:
        resized = cv2.resize(image_bgr, (new_w, new_h), interpolation=cv2.INTER_LINEAR)
        padded[:new_h, :new_w] = resized.reshape(new_h, new_w, -1)[..., :3]
    chw = np.ascontiguousarray(padded.transpose(2, 0, 1), dtype=np.float32)
    return chw[None], ratio


def yolox_grid(input_size: tuple[int, int] = (640, 640)) -> tuple[np.ndarray, np.ndarray]:
    """Anchor grid of the three heads: (cells (A, 2) float64 ``x, y``, strides (A, 1) float64).

    Cells are enumerated per stride (8, 16, 32), row-major with ``(x, y) = meshgrid(arange(w),
    arange(h))``; A = 8400 for a 640x640 input. Constant per input size: compute it once.
    """
    h_in, w_in = input_size
    grids, strides = [], []
    for stride in YOLOX_STRIDES:
        gh, gw = h_in // stride, w_in // stride
        xv, yv = np.meshgrid(np.arange(gw), np.arange(gh))
        grids.append(np.stack((xv, yv), axis=2).reshape(-1, 2))
        strides.append(np.full((gh * gw, 1), stride))
    return np.concatenate(grids, axis=0).astype(np.float64), np.concatenate(strides, axis=0).astype(np.float64)


def decode_yolox(
    raw: np.ndarray,
    input_size: tuple[int, int] = (640, 640),
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Decode raw YOLOX head output into xyxy boxes (letterbox pixels) and class scores.

    ``raw`` (A, 5 + C) float32 (A = 8400 at 640x640) -> (boxes (A, 4) float32, scores (A, C)
    float32 = objectness x class). ``grid`` = :func:`yolox_grid` of ``input_size`` (recomputed
    when omitted). Rows may be a subset of anchors only if ``grid`` is subset the same way.
    """
    raw = np.asarray(raw)
    cells, stride_col = grid if grid is not None else yolox_grid(input_size)
    if raw.shape[0] != cells.shape[0]:
        raise PoseInputError(
            f"the detector returned {raw.shape[0]} anchors but a {input_size[1]}x{input_size[0]} YOLOX input "
            f"has {cells.shape[0]}; is this a YOLOX model (yolox_l.onnx)?"
        )
    # The official code computes in float64 and stores back into the float32 output array; the
    # size exponential is taken in float32.
    centers = ((raw[:, :2] + cells) * stride_col).astype(np.float32)
    sizes = (np.exp(raw[:, 2:4].astype(np.float32)) * stride_col).astype(np.float32)
    half = sizes / np.float32(2.0)
    boxes = np.concatenate([centers - half, centers + half], axis=1)
    scores = raw[:, 4:5].astype(np.float32) * raw[:, 5:].astype(np.float32)
    return boxes, scores


def nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> list[int]:
    """Greedy NMS with the "+1 pixel" IoU convention; returns kept indices, best score first.

    ``boxes`` (K, 4) xyxy, ``scores`` (K,). Ties are ordered like the official code
    (``argsort()[::-1]``), so the same box wins.
    """
    x1, y1, x2, y2 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = (x2 - x1 + 1) * (y2 - y1 + 1)
    order = scores.argsort()[::-1]
    keep: list[int] = []
    while order.size > 0:
        i = int(order[0])
        keep.append(i)
        rest = order[1:]
        w = np.maximum(0.0, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + 1)
        inter = w * h
        iou = inter / (areas[i] + areas[rest] - inter)
        order = rest[iou <= threshold]
    return keep


def multiclass_nms(
    boxes: np.ndarray,
    scores: np.ndarray,
    nms_threshold: float = 0.45,
    score_threshold: float = 0.1,
    classes: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Class-aware NMS: (K, 4) boxes, (K, C) scores -> (M, 6) float64 ``x1 y1 x2 y2 score class``.

    Rows are grouped by class (ascending), best score first within a class. ``classes`` restricts
    the work to some classes (the estimator only needs class 0; the result for those classes is
    identical to running all of them).
    """
    out = []
    for cls in (range(scores.shape[1]) if classes is None else classes):
        cls_scores = scores[:, cls]
        mask = cls_scores > score_threshold
        if not mask.any():
            continue
        valid_scores, valid_boxes = cls_scores[mask], boxes[mask]
        keep = nms(valid_boxes, valid_scores, nms_threshold)
        if keep:
            out.append(np.concatenate(
                [valid_boxes[keep], valid_scores[keep, None], np.full((len(keep), 1), float(cls))], axis=1
            ).astype(np.float64))
    if not out:
        return np.zeros((0, 6), dtype=np.float64)
    return np.concatenate(out, axis=0)


def person_boxes(
    raw: np.ndarray,
    ratio: float,
    config: DetectorConfig = DetectorConfig(),
    grid: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Raw detector output (A, 85) -> person boxes (M, 5) float64 ``x1 y1 x2 y2 score`` in pixels of
    the original image, best first (the official order; the official code keeps person 0).

    Only class 0 matters (NMS is per class and only persons are kept), and only anchors whose
    person score passes the NMS candidate threshold can survive, so only those are decoded; the
    result is identical to decoding everything.
    """
    raw = np.asarray(raw)
    cells, strides = grid if grid is not None else yolox_grid(config.input_size)
    person_score = raw[:, 4].astype(np.float32) * raw[:, 5].astype(np.float32)
    keep = np.flatnonzero(person_score > config.candidate_threshold)
    if keep.size == 0:
        return np.zeros((0, 5), dtype=np.float64)
    boxes, scores = decode_yolox(raw[keep][:, :6], config.input_size, (cells[keep], strides[keep]))
    boxes = boxes / float(ratio)  # float32 division by a Python float, as the official in-place op
    dets = multiclass_nms(boxes, scores, config.nms_threshold, config.candidate_threshold, classes=(0,))
    keep_final = dets[:, 4] > config.person_threshold
    return dets[keep_final][:, :5]
