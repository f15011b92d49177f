"""The world's codec: an exact, fixed stand-in for the SD VAE (8x reduction, 4 latent channels).

The world renders its frames *block-constant* (``WorldConfig.render="blocks"``: every 8x8 block is
one colour), so a fixed linear transform of each block's colour is a lossless codec - no training,
no weights file, the same numbers on every machine, and any error measured downstream is the
UNet's, never the codec's. It implements the pipeline's
:class:`~unianimate_core.pipeline.encoders.LatentCodec` protocol, so it plugs in wherever the VAE
does (pipeline, sampler decode, trainer caches):

* ``encode_moments(pixels)``: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 8, H/8, W/8)`` (mean, log-variance):
  the block means ``m`` (3 channels) are whitened with the world's colour statistics,
  ``x = C^(-1/2) (m - mu)``, mixed into 4 channels by a fixed matrix ``M`` (4 x 3, orthogonal
  columns, unit rows: three columns of a 4 x 4 Hadamard matrix x sqrt(4/3)) and divided by 0.18215;
* ``decode(latents)``: ``(B, 4, h, w)`` *unscaled* -> ``(B, 3, 8h, 8w)``: the inverse
  (``M^+ = 3/4 M^T`` drops the fourth direction, which no block colour has) and each block filled
  with its colour.

Scale convention (the SD one): the UNet works on ``latent x 0.18215``; with the whitening, each of
those 4 channels has mean ~0 and standard deviation ~1 on world frames (measured in the tests and in
docs/observatory.md), what the noise schedule assumes. Like SD latents the channels are correlated
(here they span 3 dimensions). The posterior is deterministic (log-variance -30, the LDM clamp's
minimum: a sample differs from the mean by ~3e-7).

For any image, ``decode(encode(x))`` is ``x`` with every block replaced by its mean; for a
block-constant 8-bit frame it is the frame itself.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..pipeline.conditioning import LATENT_SCALE
from .errors import ToyWorldError

LATENT_CHANNELS = 4
FACTOR = 8
#: Block colour statistics of world frames in [-1, 1] units (seed 0, training split, 128 and 256 px,
#: 307 200 blocks): mean and covariance. Re-measured by ``measure_block_statistics``.
COLOUR_MEAN = (-0.0194, -0.0259, -0.0179)
COLOUR_COV = ((0.18747, 0.11750, 0.11505),
              (0.11750, 0.19294, 0.11869),
              (0.11505, 0.11869, 0.18988))
#: Posterior log-variance (the minimum of the LDM clamp: deterministic in practice).
LOGVAR = -30.0


def _mix_matrix() -> Tensor:
    h = torch.tensor([[1.0, 1.0, 1.0, 1.0], [1.0, -1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0], [1.0, -1.0, -1.0, 1.0]]) / 2
    return h[:, 1:] * math.sqrt(4.0 / 3.0)  # (4, 3): columns orthogonal (norm^2 4/3), rows unit length


class BlockCodec(nn.Module):
    """The exact :class:`LatentCodec` of block-constant world frames (see the module docstring)."""

    is_random = False

    def __init__(self) -> None:
        super().__init__()
        cov = torch.tensor(COLOUR_COV, dtype=torch.float64)
        evals, evecs = torch.linalg.eigh(cov)
        whiten = evecs @ torch.diag(evals.rsqrt()) @ evecs.T
        colour = evecs @ torch.diag(evals.sqrt()) @ evecs.T
        mix = _mix_matrix().double()
        # encode: z = M W (m - mu) / s ; decode: m = W^-1 M^+ z s + mu
        self.register_buffer("mean", torch.tensor(COLOUR_MEAN, dtype=torch.float64).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("enc", (mix @ whiten / LATENT_SCALE), persistent=False)          # (4, 3)
        self.register_buffer("dec", (colour @ (0.75 * mix.T) * LATENT_SCALE), persistent=False)  # (3, 4)

    @staticmethod
    def _check(pixels: Tensor, what: str) -> None:
        if not isinstance(pixels, Tensor) or pixels.ndim != 4 or pixels.shape[1] != 3:
            raise ToyWorldError(f"{what} takes images (B, 3, H, W) in [-1, 1]; got "
                                f"{tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__}.")
        h, w = pixels.shape[-2:]
        if h % FACTOR or w % FACTOR:
            raise ToyWorldError(f"{what}: image size {w}x{h} must be a multiple of {FACTOR}; resize or crop first.")

    @torch.no_grad()
    def encode_moments(self, pixels: Tensor) -> Tensor:
        self._check(pixels, "BlockCodec.encode_moments")
        m = torch.nn.functional.avg_pool2d(pixels.double(), FACTOR) - self.mean.to(pixels.device)
        z = torch.einsum("oc,bchw->bohw", self.enc.to(pixels.device), m)
        moments = torch.cat([z, torch.full_like(z, LOGVAR)], dim=1)
        return moments.to(pixels.dtype if pixels.is_floating_point() else torch.float32)

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """Posterior means ``(B, 4, h, w)`` (unscaled)."""
        return self.encode_moments(pixels)[:, :LATENT_CHANNELS]

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        if not isinstance(latents, Tensor) or latents.ndim != 4 or latents.shape[1] != LATENT_CHANNELS:
            raise ToyWorldError(f"BlockCodec.decode takes unscaled latents (B, {LATENT_CHANNELS}, h, w); got "
                                f"{tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__}.")
        m = torch.einsum("co,bohw->bchw", self.dec.to(latents.device), latents.double()) + self.mean.to(latents.device)
        out = m.repeat_interleave(FACTOR, dim=2).repeat_interleave(FACTOR, dim=3)
        return out.to(latents.dtype if latents.is_floating_point() else torch.float32)


def load_toy_codec(device: str | torch.device = "cpu") -> BlockCodec:
    """The world's codec (fixed: nothing to load; named like the other model loaders)."""
    return BlockCodec().to(device).eval()


@torch.no_grad()
def measure_block_statistics(frames: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(3,)`` and covariance ``(3, 3)`` of the 8x8 block colours of frames ``(N, 3, H, W)`` in [-1, 1]
    (how :data:`COLOUR_MEAN` / :data:`COLOUR_COV` were measured)."""
    m = torch.nn.functional.avg_pool2d(frames.double(), FACTOR).permute(1, 0, 2, 3).reshape(3, -1)
    return m.mean(1), torch.cov(m)
