"""What the pipeline needs from CLIP and the VAE, and tiny random stand-ins for installation checks.

The headless pipeline talks to two small interfaces so that the same code runs with

* the real models through well-kept libraries (``standalone.py``: OpenCLIP ViT-H-14, diffusers'
  ``AutoencoderKL`` with the SD 2.1 first-stage weights; the optional ``standalone`` extra),
* ComfyUI's own loaders (the nodes wrap ``CLIP_VISION`` / ``VAE`` the same way),
* or :class:`TinyImageEncoder` / :class:`TinyVAE` below: seeded random layers built in-process,
  so the whole pipeline can be exercised without any model file. Their output is noise by design
  and every caller must label it so (they carry ``is_random = True``).
"""
from __future__ import annotations

import math
import zlib
from typing import Protocol, runtime_checkable

import torch
from torch import Tensor, nn

#: Width of the OpenCLIP ViT-H-14 image embedding and text context.
EMBED_DIM = 1024
#: Tokens of the empty-prompt text context.
TEXT_TOKENS = 77


@runtime_checkable
class ImageEncoder(Protocol):
    """CLIP side: image embedding of the reference and the empty-prompt context (``zero_y``)."""

    is_random: bool

    def encode_image(self, pixels: Tensor) -> Tensor:
        """``(B, 3, 224, 224)`` CLIP-normalised pixels -> ``(B, 1024)`` un-normalised embedding."""

    def empty_context(self) -> Tensor:
        """The empty-prompt text context ``(1, 77, 1024)`` (penultimate layer + final LayerNorm)."""


@runtime_checkable
class LatentCodec(Protocol):
    """VAE side: per-frame 2-D encode to posterior moments and decode."""

    is_random: bool

    def encode_moments(self, pixels: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> posterior moments ``(B, 8, H/8, W/8)`` (mean, log-variance)."""

    def decode(self, latents: Tensor) -> Tensor:
        """``(B, 4, h, w)`` *unscaled* latents (already divided by 0.18215) -> ``(B, 3, 8h, 8w)`` in ~[-1, 1]."""


def seeded_(module: nn.Module, seed: int) -> nn.Module:
    """Fill every parameter with a seeded normal draw (per-name stream, fan-in scaled); norms get 1/0.

    Deterministic for a given seed and parameter name, independent of the global RNG and of the
    order in which modules were built, so the same seed gives the same random model everywhere.
    """
    with torch.no_grad():
        for name, p in module.named_parameters():
            g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1))
            z = torch.randn(p.shape, generator=g, dtype=torch.float32)
            if p.ndim == 1 and name.endswith("weight"):
                value = 1.0 + 0.1 * z
            elif p.ndim == 1:
                value = 0.05 * z
            else:
                value = z / math.sqrt(max(1, math.prod(p.shape[1:])))
            p.copy_(value.to(p.dtype))
    return module


class TinyImageEncoder(nn.Module):
    """Random stand-in for OpenCLIP ViT-H-14: patchify, pool, project to 1024. Output is noise."""

    is_random = True

    def __init__(self, seed: int = 0, width: int = 32) -> None:
        super().__init__()
        self.patch = nn.Conv2d(3, width, kernel_size=14, stride=14)
        self.proj = nn.Linear(width, EMBED_DIM)
        seeded_(self, seed)
        g = torch.Generator().manual_seed(seed + 77)
        self.register_buffer("_context", torch.randn(1, TEXT_TOKENS, EMBED_DIM, generator=g), persistent=False)

    @torch.no_grad()
    def encode_image(self, pixels: Tensor) -> Tensor:
        feats = self.patch(pixels.to(self.patch.weight.dtype)).mean(dim=(2, 3))
        return self.proj(torch.nn.functional.gelu(feats)).float()

    def empty_context(self) -> Tensor:
        return self._context.clone()


class TinyVAE(nn.Module):
    """Random stand-in for the SD KL-f8 VAE (same interface and factor 8). Output is noise."""

    is_random = True

    def __init__(self, seed: int = 0, latent_channels: int = 4) -> None:
        super().__init__()
        self.encoder = nn.Conv2d(3, 2 * latent_channels, kernel_size=8, stride=8)
        self.decoder = nn.Conv2d(latent_channels, 3 * 64, kernel_size=3, padding=1)
        self.shuffle = nn.PixelShuffle(8)
        seeded_(self, seed)

    @torch.no_grad()
    def encode_moments(self, pixels: Tensor) -> Tensor:
        moments = self.encoder(pixels.to(self.encoder.weight.dtype)).float()
        mean, logvar = moments.chunk(2, dim=1)
        return torch.cat([mean, logvar.clamp(-8.0, -2.0)], dim=1)  # keep the random posterior narrow

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        return torch.tanh(self.shuffle(self.decoder(latents.to(self.decoder.weight.dtype)))).float()
