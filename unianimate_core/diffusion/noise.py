"""The starting latent: Gaussian noise, offset noise and UniAnimate's "noise prior".

Official inference (ali-vilab/UniAnimate @ 643c963) starts DDIM at t = 991 not from pure noise but
from the reference latent diffused to t = 949 (short) or 939 (long) with that noise ("noise prior"),
and adds offset noise (one N(0, 1) scalar per channel and frame, times 0.1). The two official scripts
apply these in different orders (short: offset, then prior; long: prior, then offset unscaled by the
prior), so both orders are offered and :meth:`NoiseOptions.short` / :meth:`NoiseOptions.long` give
the official defaults.

Determinism: every random number comes from one ``torch.Generator`` (CPU unless the caller passes
another), in a fixed order - main noise, then offset noise - and is moved to the target device
afterwards. The same seed therefore gives the same start on every device. (The official code draws
the offset noise on the CUDA generator, so it cannot be reproduced bit for bit from its seed.)
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Literal, Sequence

import torch
from torch import Tensor

from .errors import check, check_int, check_number
from .schedule import NUM_TIMESTEPS, NoiseSchedule

NoisePriorOrder = Literal["offset_then_prior", "prior_then_offset"]
PRIOR_ORDERS: tuple[str, ...] = ("offset_then_prior", "prior_then_offset")


@dataclass(frozen=True)
class NoiseOptions:
    """How the starting latent is built from noise.

    offset_strength: scale of the per-(channel, frame) offset noise (official 0.1; 0 disables it).
    prior_t: timestep the reference latent is diffused to (official 949 short / 939 long); None = no prior.
    prior_order: "offset_then_prior" (short script) or "prior_then_offset" (long script).
    """

    offset_strength: float = 0.1
    prior_t: int | None = 949
    prior_order: NoisePriorOrder = "offset_then_prior"

    def __post_init__(self) -> None:
        check_number("offset_strength", self.offset_strength, 0.0)
        if self.prior_t is not None:
            check_int("prior_t (None = no noise prior)", self.prior_t, 0, NUM_TIMESTEPS - 1)
        check(self.prior_order in PRIOR_ORDERS, f"Unknown prior_order {self.prior_order!r}; use one of {PRIOR_ORDERS}.")

    @classmethod
    def short(cls) -> "NoiseOptions":
        """Official short-video defaults: offset 0.1, then the prior at t = 949."""
        return cls(0.1, 949, "offset_then_prior")

    @classmethod
    def long(cls) -> "NoiseOptions":
        """Official long-video defaults: the prior at t = 939, then offset 0.1."""
        return cls(0.1, 939, "prior_then_offset")

    @classmethod
    def pure(cls) -> "NoiseOptions":
        """Plain Gaussian noise (no offset, no prior)."""
        return cls(0.0, None)


def draw_noise(shape: Sequence[int], generator: torch.Generator | None = None,
               with_offset: bool = True) -> tuple[Tensor, Tensor | None]:
    """Draw the main noise (B, C, F, h, w) and the offset noise (B, C, F, 1, 1), in that order.

    Both are float32 on the generator's device (CPU for a default ``torch.Generator()``).
    """
    check(len(shape) == 5 and all(isinstance(n, numbers.Integral) and n >= 1 for n in shape),
          f"Noise shape must be five positive integers (B, 4, F, h, w); got {tuple(shape)}.")
    device = generator.device if generator is not None else torch.device("cpu")
    noise = torch.randn(tuple(int(n) for n in shape), generator=generator, dtype=torch.float32, device=device)
    if not with_offset:
        return noise, None
    offset = torch.randn((*(int(n) for n in shape[:3]), 1, 1), generator=generator, dtype=torch.float32, device=device)
    return noise, offset


def combine_noise(noise: Tensor, offset_noise: Tensor | None, options: NoiseOptions,
                  prior_latent: Tensor | None = None, schedule: NoiseSchedule | None = None) -> Tensor:
    """Build the starting latent from already drawn noise (parity tests pass the official tensors).

    noise: (B, 4, F, h, w); offset_noise: (B, 4, F, 1, 1) or None (= no offset);
    prior_latent: (B, 4, h, w), (B, 4, 1, h, w) or (B, 4, F, h, w) reference latent (x 0.18215),
    required when ``options.prior_t`` is set. Returns a new float32 tensor; inputs are not modified.
    """
    use_offset = offset_noise is not None and options.offset_strength > 0
    if use_offset:
        check(tuple(offset_noise.shape) == (*noise.shape[:3], 1, 1),  # type: ignore[union-attr]
              f"offset_noise must be (B, 4, F, 1, 1) = {(*noise.shape[:3], 1, 1)}; got {tuple(offset_noise.shape)}.")  # type: ignore[union-attr]
    x = noise.to(torch.float32)
    if use_offset and options.prior_order == "offset_then_prior":
        x = x + options.offset_strength * offset_noise.to(x)  # type: ignore[union-attr]
    if options.prior_t is not None:
        ref = _prior_latent(prior_latent, noise.shape)
        x = (schedule or NoiseSchedule.unianimate()).q_sample(ref.to(x), int(options.prior_t), x)
    if use_offset and options.prior_order == "prior_then_offset":
        x = x + options.offset_strength * offset_noise.to(x)  # type: ignore[union-attr]
    return x


def prepare_noise(shape: Sequence[int], generator: torch.Generator | None = None,
                  options: NoiseOptions = NoiseOptions(), prior_latent: Tensor | None = None,
                  schedule: NoiseSchedule | None = None, device: torch.device | str | None = None) -> Tensor:
    """Draw and combine the starting latent (B, 4, F, h, w) float32 on ``device`` (default: generator's)."""
    noise, offset = draw_noise(shape, generator, with_offset=options.offset_strength > 0)
    start = combine_noise(noise, offset, options, prior_latent, schedule)
    return start if device is None else start.to(device)


def _prior_latent(prior_latent: Tensor | None, shape: Sequence[int]) -> Tensor:
    check(prior_latent is not None,
          "The noise prior needs the reference latent (prior_latent); pass it or set NoiseOptions.prior_t=None.")
    check(isinstance(prior_latent, Tensor) and prior_latent.is_floating_point(),
          f"prior_latent must be a float tensor (B, 4, h, w), got {type(prior_latent).__name__}.")
    check(bool(torch.isfinite(prior_latent).all()), "prior_latent (the reference latent) contains NaN or inf values.")  # type: ignore[arg-type]
    ref = prior_latent.unsqueeze(2) if prior_latent.ndim == 4 else prior_latent  # type: ignore[union-attr]
    b, c, f, h, w = shape
    check(ref.ndim == 5 and tuple(ref.shape[:2]) == (b, c) and ref.shape[2] in (1, f) and tuple(ref.shape[3:]) == (h, w),
          f"prior_latent must be (B, 4, h, w) or (B, 4, 1 or F, h, w) matching the noise {tuple(shape)}; "
          f"got {tuple(prior_latent.shape)}.")  # type: ignore[union-attr]
    return ref
