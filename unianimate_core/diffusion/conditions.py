"""The conditioning inputs of one UniAnimate run and how they are cut into windows/segments.

The UNet takes four optional keyword arguments (see docs/architecture.md). This module keeps them
together, validates their shapes against the latent once, and produces the per-call keyword
arguments: frame windows for long videos (the reference pose stays frame 0), per-window batching,
uint8 -> float conversion and the transfer to the compute device, all lazily so that a long pose
sequence can live on the CPU (even as uint8) while only the current window reaches the GPU.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from .errors import check

CONDITION_KEYS: tuple[str, ...] = ("image", "local_image", "dwpose", "randomref")
"""The UNet keyword arguments the sampler fills (an unconditional call passes them all as None)."""

ConditionMode = Literal["standard", "first_frame", "both"]
CONDITION_MODES: tuple[str, ...] = ("standard", "first_frame", "both")

PIXEL_KEYS: tuple[str, ...] = ("local_image", "dwpose")
PIXEL_SLACK = 0.5
"""How far float pixel conditions may leave [0, 1] (resampling overshoot) before they are refused."""

LATENT_TO_PIXEL = 8
"""Pixel conditions are exactly 8x the latent size (the UNet's pose/image embedders downsample by 8)."""


@dataclass(frozen=True)
class Conditions:
    """Condition tensors for a clip of F target frames (any of them may be None).

    image:       (B, 1, 1024) or (B, 1024) CLIP image embedding of the reference.
    local_image: (B, 3, F, H, W) or (B, 3, 1, H, W) first-frame / reference pixels in [0, 1]
                 (float) or 0..255 (uint8); a single frame is repeated over the clip.
    dwpose:      (B, 3, F + 1, H, W) pose renders, frame 0 = the reference pose; float [0, 1] or uint8.
    randomref:   (B, 4, F, h, w) or (B, 4, 1, h, w) reference latent (x 0.18215); the UNet uses frame 0.

    uint8 pixels are converted exactly as the official code receives them (``u8.float() / 255``),
    which lets a long pose sequence be stored 4x smaller.
    """

    image: Tensor | None = None
    local_image: Tensor | None = None
    dwpose: Tensor | None = None
    randomref: Tensor | None = None

    # ----------------------------------------------------------------------------------- builders
    @classmethod
    def build(cls, mode: ConditionMode, *, image: Tensor | None, dwpose: Tensor,
              ref_latent: Tensor | None = None, ref_pixels: Tensor | None = None) -> "Conditions":
        """Conditions for one of the three documented modes.

        standard:    image + randomref (ref_latent) + dwpose      (the official default)
        first_frame: image + local_image (ref_pixels) + dwpose    (the official "local_image" run)
        both:        all four.
        ref_latent: (B, 4, h, w) or (B, 4, 1|F, h, w); ref_pixels: (B, 3, H, W) or (B, 3, 1|F, H, W).
        """
        check(mode in CONDITION_MODES, f"Unknown condition mode {mode!r}; use one of {CONDITION_MODES}.")
        wants_latent = mode in ("standard", "both")
        wants_pixels = mode in ("first_frame", "both")
        check(not wants_latent or ref_latent is not None,
              f"Condition mode {mode!r} needs the reference latent (ref_latent); encode the reference image with the VAE.")
        check(not wants_pixels or ref_pixels is not None,
              f"Condition mode {mode!r} needs the reference pixels (ref_pixels) as the first-frame image.")
        return cls(
            image=image,
            local_image=_as_video(ref_pixels, "ref_pixels") if wants_pixels else None,
            dwpose=dwpose,
            randomref=_as_video(ref_latent, "ref_latent") if wants_latent else None,
        )

    # ---------------------------------------------------------------------------------- queries
    @property
    def num_frames(self) -> int | None:
        """Number of target frames F implied by dwpose (F + 1 frames), or None without poses."""
        return None if self.dwpose is None else int(self.dwpose.shape[2]) - 1

    def validate(self, latent_shape: Sequence[int]) -> None:
        """Check every tensor against the latent (B, 4, F, h, w); raise SamplingError naming the fix."""
        check(len(latent_shape) == 5, f"The latent must be (B, 4, F, h, w); got shape {tuple(latent_shape)}.")
        for key in CONDITION_KEYS:
            value = getattr(self, key)
            check(value is None or isinstance(value, Tensor),
                  f"Condition {key!r} must be a torch.Tensor or None, got {type(value).__name__}.")
        b, _, f, h, w = (int(s) for s in latent_shape)
        hp, wp = h * LATENT_TO_PIXEL, w * LATENT_TO_PIXEL
        if self.image is not None:
            check(self.image.ndim in (2, 3) and self.image.shape[0] == b and self.image.shape[-1] == 1024
                  and (self.image.ndim == 2 or self.image.shape[1] == 1),
                  f"image must be (B, 1, 1024) or (B, 1024) with B = {b}; got {tuple(self.image.shape)}.")
        if self.dwpose is not None:
            check(tuple(self.dwpose.shape) == (b, 3, f + 1, hp, wp),
                  f"dwpose must be (B, 3, F + 1, H, W) = {(b, 3, f + 1, hp, wp)} (frame 0 = reference pose, "
                  f"then one pose per generated frame, pixels 8x the latent); got {tuple(self.dwpose.shape)}.")
        if self.local_image is not None:
            check(self.local_image.ndim == 5 and tuple(self.local_image.shape[:2]) == (b, 3)
                  and self.local_image.shape[2] in (1, f) and tuple(self.local_image.shape[3:]) == (hp, wp),
                  f"local_image must be (B, 3, F or 1, H, W) with B = {b}, F = {f}, H x W = {hp} x {wp}; "
                  f"got {tuple(self.local_image.shape)}.")
        if self.randomref is not None:
            check(self.randomref.ndim == 5 and tuple(self.randomref.shape[:2]) == (b, 4)
                  and self.randomref.shape[2] in (1, f) and tuple(self.randomref.shape[3:]) == (h, w),
                  f"randomref must be (B, 4, F or 1, h, w) with B = {b}, F = {f}, h x w = {h} x {w}; "
                  f"got {tuple(self.randomref.shape)}.")
            check(self.dwpose is not None,
                  "randomref needs dwpose as well (the UNet embeds the reference pose, dwpose frame 0, "
                  "together with the reference latent); pass the pose stack.")
        for key in CONDITION_KEYS:
            value = getattr(self, key)
            if value is None:
                continue
            if key in ("image", "randomref"):  # embeddings, not pixels: uint8 would be divided by 255
                check(value.is_floating_point(), f"Condition {key!r} must be a float tensor, got {value.dtype}.")
            if value.is_floating_point():
                check(bool(torch.isfinite(value).all()), f"Condition {key!r} contains NaN or inf values.")
            if key in PIXEL_KEYS and value.is_floating_point() and value.numel():
                low, high = float(value.min()), float(value.max())
                check(low >= -PIXEL_SLACK and high <= 1.0 + PIXEL_SLACK,
                      f"Condition {key!r} must hold pixels in [0, 1] (float) or 0..255 (uint8); got float values in "
                      f"[{low:.3g}, {high:.3g}]. Divide 0..255 floats by 255, map [-1, 1] with (x + 1) / 2.")

    # ------------------------------------------------------------------------------ transforms
    def replace(self, **changes: Tensor | None) -> "Conditions":
        """A copy with some tensors replaced (the original is never modified)."""
        return dataclasses.replace(self, **changes)

    def frames(self, indices: Sequence[int]) -> "Conditions":
        """Conditions for the target frames ``indices`` (0-based) of the clip.

        dwpose keeps frame 0 (the reference pose) first and then takes frames ``i + 1``;
        per-frame local_image/randomref are sliced, single-frame ones kept; image is unchanged.
        """
        idx = torch.as_tensor(list(indices), dtype=torch.int64)
        return Conditions(
            image=self.image,
            local_image=_slice_frames(self.local_image, idx),
            dwpose=None if self.dwpose is None else self.dwpose.index_select(
                2, torch.cat([idx.new_zeros(1), idx + 1]).to(self.dwpose.device)),
            randomref=_slice_frames(self.randomref, idx),
        )

    def windows(self, windows: Sequence[Sequence[int]]) -> "Conditions":
        """Several equally long frame windows stacked along the batch, window-major.

        Result batch = len(windows) * B, matching ``torch.cat([x[:, :, w] for w in windows])``.
        """
        parts = [self.frames(w) for w in windows]
        if len(parts) == 1:
            return parts[0]
        return Conditions(**{key: _cat_or_none([getattr(p, key) for p in parts]) for key in CONDITION_KEYS})

    def model_kwargs(self, num_frames: int, device: torch.device | str | None = None,
                     dtype: torch.dtype = torch.float32) -> dict[str, Tensor | None]:
        """Keyword arguments for ``model(x, t, **kwargs)`` with F = ``num_frames``.

        Moves to ``device`` first (uint8 is 4x cheaper to transfer), then converts uint8 pixels with
        ``/ 255`` in float32 and casts to ``dtype``; a single-frame local_image is expanded to F frames
        (the UNet embeds it per frame).
        """
        out: dict[str, Tensor | None] = {}
        for key in CONDITION_KEYS:
            value = getattr(self, key)
            if value is not None:
                value = _to_float(value.to(device) if device is not None else value, dtype)
                if key == "local_image" and value.shape[2] == 1 and num_frames != 1:
                    value = value.expand(-1, -1, num_frames, -1, -1)
            out[key] = value
        return out

    def to(self, device: torch.device | str) -> "Conditions":
        """All tensors moved to ``device`` (dtypes kept)."""
        return Conditions(**{k: None if getattr(self, k) is None else getattr(self, k).to(device)
                             for k in CONDITION_KEYS})


def unconditional_kwargs() -> dict[str, None]:
    """The classifier-free-guidance unconditional call: every condition dropped (official behaviour)."""
    return {key: None for key in CONDITION_KEYS}


def pixels_to_float(pixels: Tensor) -> Tensor:
    """uint8 0..255 -> float32 [0, 1] exactly as the official loader (``u8.float() / 255``); floats pass."""
    return pixels.to(torch.float32) / 255.0 if pixels.dtype == torch.uint8 else pixels


def _to_float(value: Tensor, dtype: torch.dtype) -> Tensor:
    return pixels_to_float(value).to(dtype)


def _slice_frames(value: Tensor | None, idx: Tensor) -> Tensor | None:
    if value is None or value.shape[2] == 1:
        return value
    return value.index_select(2, idx.to(value.device))


def _cat_or_none(values: list[Tensor | None]) -> Tensor | None:
    if values[0] is None:
        return None
    return torch.cat(values, dim=0)  # type: ignore[arg-type]


def _as_video(value: Tensor | None, name: str) -> Tensor | None:
    """(B, C, H, W) -> (B, C, 1, H, W); (B, C, F, H, W) unchanged."""
    if value is None:
        return None
    check(value.ndim in (4, 5), f"{name} must be (B, C, H, W) or (B, C, F, H, W); got {tuple(value.shape)}.")
    return value.unsqueeze(2) if value.ndim == 4 else value
