"""The UniAnimate noise schedule: ``linear_sd`` betas with the zero-terminal-SNR rescale.

Every array is kept in float64, exactly like the official UniAnimate code
(ali-vilab/UniAnimate @ 643c963): values are indexed in float64 and only cast to the latent
dtype afterwards (:meth:`NoiseSchedule.gather`). Casting the arrays first would change the DDIM
result in the last bits and break parity with the golden fixtures.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .errors import check

NUM_TIMESTEPS = 1000
"""Number of training timesteps of UniAnimate (t = 0 .. 999)."""


def linear_sd_betas(num_timesteps: int = NUM_TIMESTEPS, init_beta: float = 0.00085,
                    last_beta: float = 0.012) -> Tensor:
    """Stable-Diffusion "scaled linear" betas: linear in sqrt(beta), float64, shape (T,)."""
    return torch.linspace(math.sqrt(init_beta), math.sqrt(last_beta), num_timesteps,
                          dtype=torch.float64) ** 2


def rescale_zero_terminal_snr(betas: Tensor) -> Tensor:
    """Rescale betas so that the last timestep has zero SNR (alpha_bar[T-1] == 0 exactly).

    UniAnimate was trained with this rescale (v-prediction), so sampling must use it: sqrt(alpha_bar)
    is shifted and scaled so that it ends at 0 while alpha_bar[0] is unchanged; the betas are
    recovered from the ratios of consecutive alpha_bar. Shape (T,) float64 in and out.
    """
    sqrt_ab = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = sqrt_ab[0].clone(), sqrt_ab[-1].clone()
    # Multiply by the ratio (not by ``first`` then divide): this is the rounding order of the
    # official schedule, which the float64 golden arrays reproduce bit for bit.
    sqrt_ab = (sqrt_ab - last) * (first / (first - last))
    alphas_bar = sqrt_ab ** 2
    alphas = torch.cat([alphas_bar[:1], alphas_bar[1:] / alphas_bar[:-1]])
    return 1.0 - alphas


@dataclass(frozen=True)
class NoiseSchedule:
    """Precomputed float64 schedule arrays, each of shape (T,).

    ``sqrt_recip_alphas_cumprod`` and ``sqrt_recipm1_alphas_cumprod`` are ``inf`` at the terminal
    timestep (alpha_bar == 0); the DDIM step never divides by them there (see ``ddim.py``).
    """

    betas: Tensor
    alphas_cumprod: Tensor
    sqrt_alphas_cumprod: Tensor
    sqrt_one_minus_alphas_cumprod: Tensor
    sqrt_recip_alphas_cumprod: Tensor
    sqrt_recipm1_alphas_cumprod: Tensor

    @classmethod
    def from_betas(cls, betas: Tensor) -> "NoiseSchedule":
        """Derive every array from float64 betas of shape (T,)."""
        check(betas.ndim == 1 and betas.numel() >= 2, "NoiseSchedule needs a 1-D betas tensor with at least 2 "
              f"entries, got shape {tuple(betas.shape)}.")
        betas = betas.to(torch.float64)
        alphas_cumprod = torch.cumprod(1.0 - betas, dim=0)
        with torch.no_grad():
            return cls(
                betas=betas,
                alphas_cumprod=alphas_cumprod,
                sqrt_alphas_cumprod=torch.sqrt(alphas_cumprod),
                sqrt_one_minus_alphas_cumprod=torch.sqrt(1.0 - alphas_cumprod),
                sqrt_recip_alphas_cumprod=torch.sqrt(1.0 / alphas_cumprod),
                sqrt_recipm1_alphas_cumprod=torch.sqrt(1.0 / alphas_cumprod - 1.0),
            )

    @classmethod
    def unianimate(cls) -> "NoiseSchedule":
        """The schedule UniAnimate was trained with: linear_sd(0.00085, 0.012), 1000 steps, zero terminal SNR."""
        return cls.from_betas(rescale_zero_terminal_snr(linear_sd_betas()))

    @property
    def num_timesteps(self) -> int:
        return int(self.betas.numel())

    def gather(self, array: Tensor, t: Tensor, like: Tensor) -> Tensor:
        """``array[t]`` reshaped to broadcast against ``like`` (B, ...) and cast to its dtype/device.

        t: (B,) int64 on any device. Indexing happens in float64 before the cast, as in the official
        code; the cast happens on the CPU before the move, so float64 never has to exist on the
        device (MPS has no float64). Returns (B, 1, 1, ...) with ``like.ndim`` dimensions.
        """
        values = array[t.cpu()].to(like.dtype)
        return values.view(-1, *([1] * (like.ndim - 1))).to(like.device)

    def q_sample(self, x0: Tensor, t: Tensor | int, noise: Tensor) -> Tensor:
        """Forward-diffuse x0 to timestep t: sqrt(ab_t) * x0 + sqrt(1 - ab_t) * noise.

        x0, noise: (B, C, F, h, w) (x0 may broadcast, e.g. F = 1); t: int or (B,) int64.
        Result has noise's shape and dtype.
        """
        t = as_timestep_tensor(t, noise.shape[0], self.num_timesteps)
        return (self.gather(self.sqrt_alphas_cumprod, t, noise) * x0
                + self.gather(self.sqrt_one_minus_alphas_cumprod, t, noise) * noise)


def as_timestep_tensor(t: Tensor | int, batch: int, num_timesteps: int = NUM_TIMESTEPS) -> Tensor:
    """Validate a timestep (int or (B,) tensor) and return it as a (batch,) int64 CPU tensor."""
    t = torch.as_tensor(t, dtype=torch.int64).reshape(-1).cpu()
    if t.numel() == 1:
        t = t.expand(batch)
    check(t.numel() == batch, f"Timestep tensor has {t.numel()} entries but the batch has {batch}; pass one "
          "timestep or one per sample.")
    check(bool(((t >= 0) & (t < num_timesteps)).all()),
          f"Timesteps must lie in 0..{num_timesteps - 1}, got {t.tolist()}.")
    return t.contiguous()
