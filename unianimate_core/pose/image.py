"""Image conventions at the pose pipeline's boundary (RGB uint8 in, colour-order helpers out)."""
from __future__ import annotations

from typing import Any

import numpy as np

from .errors import PoseInputError


_FLOAT_SLACK = 0.5
"""How far a float image may leave [0, 1] before it is refused instead of clamped."""


def to_rgb_uint8(image: Any) -> np.ndarray:
    """Accept one image and return it as a C-contiguous (H, W, 3) uint8 RGB array.

    Accepted: numpy arrays or tensors (anything with ``.cpu().numpy()``) shaped (H, W, 3),
    (H, W, 4) (alpha dropped), (H, W, 1) or (H, W) (grey replicated); uint8, or float in [0, 1]
    (ComfyUI ``IMAGE`` values; converted with ``round(x * 255)``, exact for 8-bit sources; values
    slightly outside [0, 1] are clamped, a clearly different range is refused).
    """
    if hasattr(image, "detach"):  # a torch tensor (any device / float dtype, e.g. bfloat16)
        tensor = image.detach()
        if tensor.is_floating_point():
            tensor = tensor.float()
        image = tensor.cpu().numpy()
    arr = np.asarray(image)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4) or arr.shape[0] == 0 or arr.shape[1] == 0:
        raise PoseInputError(
            f"expected one image shaped (height, width, 3) (RGB), got shape {arr.shape}. "
            "Pass video frames one at a time (a ComfyUI IMAGE batch is (frames, height, width, 3))."
        )
    if arr.shape[2] == 1:
        arr = np.repeat(arr, 3, axis=2)
    arr = arr[..., :3]
    if arr.dtype == np.uint8:
        return np.ascontiguousarray(arr)
    if np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise PoseInputError("the image contains NaN or infinite values.")
        # Slight overshoot is clamped; a 0..255 or [-1, 1] float image would silently turn white/black.
        low, high = float(arr.min()), float(arr.max())
        if low < -_FLOAT_SLACK or high > 1.0 + _FLOAT_SLACK:
            raise PoseInputError(
                f"float images must hold values in [0, 1]; this one spans [{low:.3g}, {high:.3g}]. Divide 0..255 "
                "values by 255 (or pass uint8), map [-1, 1] images with (x + 1) / 2."
            )
        return np.ascontiguousarray(np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8))
    if np.issubdtype(arr.dtype, np.integer) or arr.dtype == np.bool_:
        return np.ascontiguousarray(np.clip(arr, 0, 255).astype(np.uint8))
    raise PoseInputError(f"unsupported image dtype {arr.dtype}; use uint8 or float in [0, 1].")


def swap_red_blue(images: Any) -> Any:
    """Swap the first and third channel of (..., 3) images (numpy array or torch tensor).

    Pose images drawn in standard OpenPose colours (e.g. by controlnet_aux) have R and B the other
    way round from what UniAnimate was trained on (docs/official_behaviour.md#pose-colours); this converts
    between the two.
    """
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) < 1 or shape[-1] != 3:
        raise PoseInputError(f"expected images with 3 channels last, got shape {shape}.")
    return images[..., [2, 1, 0]]
