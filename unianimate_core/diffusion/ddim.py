"""One DDIM update for a v-prediction model (official UniAnimate math, fp32).

Numerics follow the official code (ali-vilab/UniAnimate @ 643c963): schedule values are indexed in
float64 and then cast to float32; x0, eps and the update run in float32 whatever dtype the model
used (a float16 prediction is promoted exactly); eta = 0 is deterministic.

One deviation: at t = 999 alpha_bar is exactly 0 and the official eps formula divides inf by inf
(NaN). There we use the algebraically identical finite form eps = (x - sqrt(ab) x0) / sqrt(1 - ab),
which equals x at t = 999. Every other timestep uses the official expression unchanged.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .errors import check
from .schedule import NoiseSchedule, as_timestep_tensor


def predict_x0(schedule: NoiseSchedule, x: Tensor, t: Tensor, v: Tensor) -> Tensor:
    """x0 = sqrt(ab_t) * x - sqrt(1 - ab_t) * v.  x (B, ...) float32, t (B,) int64, v like x (any float dtype)."""
    return schedule.gather(schedule.sqrt_alphas_cumprod, t, x) * x \
        - schedule.gather(schedule.sqrt_one_minus_alphas_cumprod, t, x) * v


def predict_eps(schedule: NoiseSchedule, x: Tensor, t: Tensor, x0: Tensor) -> Tensor:
    """eps from x_t and x0: official ``(sqrt(1/ab) x - x0) / sqrt(1/ab - 1)``, finite form where ab == 0."""
    eps = (schedule.gather(schedule.sqrt_recip_alphas_cumprod, t, x) * x - x0) \
        / schedule.gather(schedule.sqrt_recipm1_alphas_cumprod, t, x)
    terminal = schedule.alphas_cumprod[t.cpu()] == 0
    if bool(terminal.any()):
        finite = (x - schedule.gather(schedule.sqrt_alphas_cumprod, t, x) * x0) \
            / schedule.gather(schedule.sqrt_one_minus_alphas_cumprod, t, x)
        mask = terminal.to(x.device).view(-1, *([1] * (x.ndim - 1)))
        eps = torch.where(mask, finite, eps)
    return eps


def ddim_step(schedule: NoiseSchedule, x: Tensor, v: Tensor, t: Tensor, t_prev: Tensor,
              eta: float = 0.0, noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Move x_t (B, C, F, h, w) float32 to x_{t_prev} given the guided v-prediction.

    t, t_prev: (B,) int64 (or ints) with t_prev < t (t_prev = 0 lands on alpha_bar[0], as official); any device.
    eta > 0 adds ``sigma * noise`` (noise like x, required then). Returns (x_prev, x0), both float32.
    """
    check(0.0 <= eta <= 1.0, f"eta must be in 0..1, got {eta}.")
    check(x.dtype == torch.float32, f"The DDIM state must be float32 (got {x.dtype}); the update is done in fp32.")
    t = as_timestep_tensor(t, x.shape[0], schedule.num_timesteps)
    t_prev = as_timestep_tensor(t_prev, x.shape[0], schedule.num_timesteps)
    x0 = predict_x0(schedule, x, t, v)
    eps = predict_eps(schedule, x, t, x0)
    alphas = schedule.gather(schedule.alphas_cumprod, t, x)
    alphas_prev = schedule.gather(schedule.alphas_cumprod, t_prev, x)
    if eta == 0.0:
        direction = torch.sqrt(1 - alphas_prev) * eps
        return torch.sqrt(alphas_prev) * x0 + direction, x0
    check(noise is not None and noise.shape == x.shape,
          "eta > 0 needs a noise tensor shaped like the latent for the stochastic DDIM term.")
    sigmas = eta * torch.sqrt((1 - alphas_prev) / (1 - alphas) * (1 - alphas / alphas_prev))
    # clamp: at t = 999 with eta = 1 the argument is 0 up to rounding and may come out as -1e-8
    # (NaN under sqrt); for every non-negative value the clamp is a no-op, so parity is unaffected.
    direction = torch.sqrt((1 - alphas_prev - sigmas ** 2).clamp(min=0)) * eps
    nonzero = (t != 0).to(device=x.device, dtype=x.dtype).view(-1, *([1] * (x.ndim - 1)))
    return torch.sqrt(alphas_prev) * x0 + direction + nonzero * sigmas * noise.to(x), x0
