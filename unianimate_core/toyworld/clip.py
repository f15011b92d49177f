"""A CLIP image-embedding stand-in for the synthetic world (implements ``ImageEncoder``).

The UNet wants the reference's OpenCLIP ViT-H-14 image embedding ``(B, 1024)`` and the empty-prompt
text context ``(1, 77, 1024)``. In the world, the embedding has to say *who* the character is, in a
way that does not depend on the pose, and be deterministic. This stand-in un-normalises the CLIP
input, area-averages it to 112 x 112 and computes appearance features:

* the whole-image soft colour histogram (5 x 5 x 5 RGB bins, trilinear weights; square root):
  the scene and the character together, as CLIP sees a photo;
* the *character* histogram: the same, weighted by :func:`foreground_weights` - pixels unlike the
  colours on the image border (the scene) and not identity sleeves (which are the same on every
  character and move with the pose);
* a 4 x 4 grid of mean colours (coarse layout).

The 298 features are centred with fixed constants, weighted 1 / 3 / 0.5 per group (the character
dominates), and projected with a seeded Gaussian matrix scaled by 1/sqrt(298), giving entries of
roughly unit scale (OpenCLIP's un-normalised image embeddings are of the same order). Frames of one
character in one scene are nearer to each other than to other characters (tests measure it).

``empty_context()`` is a seeded standard-normal ``(1, 77, 1024)`` tensor: the UNet only needs a
fixed context that the trained model learns to ignore or use, as it does with the real one.
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..pipeline.conditioning import CLIP_MEAN, CLIP_STD
from ..pipeline.encoders import EMBED_DIM, TEXT_TOKENS
from .errors import ToyWorldError

BINS = 5
GRID = 4
#: Inputs larger than this (per side) are area-averaged to it before the features are computed.
WORK_SIZE = 112
FEATURES = 2 * BINS ** 3 + 3 * GRID * GRID
#: Pixels at least this colourful are identity sleeves (the same on every character): left out of
#: the character histogram (see .character).
SLEEVE_CHROMA = 0.3
#: Colour distance (RGB in [0, 1]) within which a pixel counts as "like the border" (background).
BORDER_TAU = 0.08


def _soft_histogram(rgb: Tensor, weights: Tensor) -> Tensor:
    """Soft (trilinear) RGB histogram ``(B, BINS**3)`` of ``rgb`` (B, 3, H, W) in [0, 1] with per-pixel
    ``weights`` (B, H*W), normalised to sum 1 (all zeros stays zeros)."""
    b = rgb.shape[0]
    x = rgb.clamp(0, 1).flatten(2) * (BINS - 1)            # (B, 3, N)
    lo = x.floor().clamp(max=BINS - 2)
    frac = x - lo
    lo = lo.long()
    idx, wts = [], []
    for dr in (0, 1):
        for dg in (0, 1):
            for db in (0, 1):
                wr = frac[:, 0] if dr else 1 - frac[:, 0]
                wg = frac[:, 1] if dg else 1 - frac[:, 1]
                wb = frac[:, 2] if db else 1 - frac[:, 2]
                idx.append(((lo[:, 0] + dr) * BINS + (lo[:, 1] + dg)) * BINS + (lo[:, 2] + db))
                wts.append(wr * wg * wb * weights)
    offset = (torch.arange(b, device=rgb.device) * BINS ** 3).view(b, 1)
    flat_idx = (torch.cat(idx, 1) + offset).flatten()
    hist = torch.bincount(flat_idx, weights=torch.cat(wts, 1).flatten().double(), minlength=b * BINS ** 3)
    hist = hist.view(b, BINS ** 3).to(rgb.dtype)
    return hist / hist.sum(1, keepdim=True).clamp_min(1e-12)


def foreground_weights(rgb: Tensor) -> Tensor:
    """``(B, H*W)`` weight of each pixel as "character, not sleeve": low for colours that appear on the
    image border (the scene) and for the identity sleeves (high chroma)."""
    b, _, h, w = rgb.shape
    flat = rgb.flatten(2).transpose(1, 2)  # (B, HW, 3)
    ring = torch.cat([rgb[:, :, :2].flatten(2), rgb[:, :, -2:].flatten(2), rgb[:, :, :, :2].flatten(2),
                      rgb[:, :, :, -2:].flatten(2)], dim=2).transpose(1, 2)  # (B, N, 3)
    step = max(1, ring.shape[1] // 64)
    ring = ring[:, ::step]
    d = torch.cdist(flat, ring).amin(-1)  # (B, HW)
    not_scene = 1.0 - torch.exp(-(d / BORDER_TAU) ** 2)
    chroma = flat.amax(-1) - flat.amin(-1)
    return not_scene * (chroma < SLEEVE_CHROMA).to(rgb.dtype)


def appearance_features(rgb: Tensor) -> Tensor:
    """``(B, 3, H, W)`` pixels in [0, 1] -> ``(B, FEATURES)``: sqrt of the whole-image histogram, sqrt
    of the character histogram (:func:`foreground_weights`), 4 x 4 grid of mean colours."""
    b, _, h, w = rgb.shape
    rgb = rgb.clamp(0, 1)
    whole = _soft_histogram(rgb, torch.ones(b, h * w, device=rgb.device, dtype=rgb.dtype))
    fg = _soft_histogram(rgb, foreground_weights(rgb))
    grid = torch.nn.functional.adaptive_avg_pool2d(rgb, GRID).flatten(1)
    return torch.cat([whole.sqrt(), fg.sqrt(), grid], dim=1)


#: Weights of the three feature groups in the embedding (the character histogram dominates).
GROUP_WEIGHTS = (1.0, 3.0, 0.5)


class ToyImageEncoder(nn.Module):
    """Deterministic appearance embedding ``(B, 1024)`` + fixed empty-prompt context (not random weights)."""

    is_random = False

    def __init__(self, seed: int = 0) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(1_000_003 + int(seed))
        self.register_buffer("projection", torch.randn(FEATURES, EMBED_DIM, generator=g) / FEATURES ** 0.5, persistent=False)
        # centre the features: histogram entries of a uniform image, grid values of mid grey
        centre = torch.cat([torch.full((2 * BINS ** 3,), (1.0 / BINS ** 3) ** 0.5), torch.full((3 * GRID * GRID,), 0.5)])
        self.register_buffer("centre", centre, persistent=False)
        n = BINS ** 3
        gw = torch.cat([torch.full((n,), GROUP_WEIGHTS[0]), torch.full((n,), GROUP_WEIGHTS[1]),
                        torch.full((3 * GRID * GRID,), GROUP_WEIGHTS[2])])
        self.register_buffer("group_weights", gw, persistent=False)
        self.register_buffer("_context", torch.randn(1, TEXT_TOKENS, EMBED_DIM, generator=g), persistent=False)

    @torch.no_grad()
    def encode_image(self, pixels: Tensor) -> Tensor:
        """``(B, 3, H, W)`` CLIP-normalised pixels (any size; the pipeline gives 224 x 224) -> ``(B, 1024)``."""
        if not isinstance(pixels, Tensor) or pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ToyWorldError("ToyImageEncoder.encode_image takes CLIP-normalised images (B, 3, H, W); got "
                                f"{tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__}.")
        mean = torch.tensor(CLIP_MEAN, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=pixels.device).view(1, 3, 1, 1)
        rgb = pixels.float() * std + mean
        if min(rgb.shape[-2:]) > WORK_SIZE:  # the features are colour statistics: a 112 x 112 average suffices
            rgb = torch.nn.functional.adaptive_avg_pool2d(rgb, WORK_SIZE)
        feats = (appearance_features(rgb) - self.centre.to(pixels.device)) * self.group_weights.to(pixels.device)
        return (feats * 2.0) @ self.projection.to(pixels.device)

    def encode_rgb(self, rgb: Tensor) -> Tensor:
        """Convenience: ``(B, 3, H, W)`` pixels in [0, 1] (no CLIP normalisation) -> ``(B, 1024)``."""
        mean = torch.tensor(CLIP_MEAN, device=rgb.device).view(1, 3, 1, 1)
        std = torch.tensor(CLIP_STD, device=rgb.device).view(1, 3, 1, 1)
        return self.encode_image((rgb.float() - mean) / std)

    def empty_context(self) -> Tensor:
        return self._context.clone()
