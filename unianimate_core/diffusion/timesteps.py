"""Which timesteps a DDIM run of N requested steps visits.

``official`` reproduces the official UniAnimate code (ali-vilab/UniAnimate @ 643c963):
``stride = 1000 // N``, ``t = 1 + arange(0, 1000, stride)`` clamped to 999, descending. N = 30
therefore runs 31 steps (991, 958, ..., 34, 1). For N = 3, 9, 27, 36-37, 101-111 and 251-1000 that
list contains t = 999, where the official step is NaN, and for N > 500 it contains 999 twice. We deduplicate the list and the DDIM step uses a finite,
algebraically identical formula at t = 999 (see ``ddim.py``), so every N in 1..1000 samples
sanely while the lists of all other N are exactly the official ones.

``trailing`` is the zero-terminal-SNR recommendation (Lin et al. 2023): start at t = 999 and space
N steps evenly; offered for users who want exactly N model evaluations starting from pure noise.

``logsnr`` is the spacing multistep solvers are made for (DPM-Solver, Lu et al. 2022: uniform in the
half-log-SNR lambda = log(alpha / sigma)): t = 999 (pure noise, lambda = -inf), then N - 1 timesteps
whose lambda is evenly spaced from lambda(999 - 1000 // N) (the second trailing timestep) to lambda(1),
each rounded to the nearest integer timestep. Exactly N model evaluations; with ``solver="dpmpp_2m"`` it
integrates the sampling ODE to second order (tests/diffusion/test_solvers.py).
"""
from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from .errors import check, check_int
from .schedule import NUM_TIMESTEPS

TimestepMode = Literal["official", "trailing", "logsnr"]
TIMESTEP_MODES: tuple[str, ...] = ("official", "trailing", "logsnr")


def official_ddim_timesteps_raw(num_steps: int, num_timesteps: int = NUM_TIMESTEPS) -> Tensor:
    """The official list verbatim (may contain 999, possibly twice). Descending int64."""
    num_steps = _check_num_steps(num_steps, num_timesteps)
    stride = num_timesteps // num_steps
    steps = (1 + torch.arange(0, num_timesteps, stride, dtype=torch.int64)).clamp(0, num_timesteps - 1)
    return steps.flip(0)


def ddim_timesteps(num_steps: int, mode: TimestepMode = "official",
                   num_timesteps: int = NUM_TIMESTEPS) -> Tensor:
    """Timesteps (descending, strictly decreasing, int64, shape (S,)) for ``num_steps`` requested steps.

    official: the official list with duplicates removed (S may be N + 1, e.g. 31 for N = 30).
    trailing: exactly N steps, ``round(T - k * T / N) - 1`` for k = 0..N-1 (starts at 999).
    """
    check(mode in TIMESTEP_MODES, f"Unknown timestep mode {mode!r}; use one of {TIMESTEP_MODES}.")
    num_steps = _check_num_steps(num_steps, num_timesteps)
    if mode == "official":
        return torch.unique(official_ddim_timesteps_raw(num_steps, num_timesteps)).flip(0)
    if mode == "logsnr":
        return logsnr_timesteps(num_steps, num_timesteps)
    k = torch.arange(num_steps, dtype=torch.float64)
    steps = torch.round(num_timesteps - k * (num_timesteps / num_steps)).to(torch.int64) - 1
    return torch.unique(steps.clamp(0, num_timesteps - 1)).flip(0)


def logsnr_timesteps(num_steps: int, num_timesteps: int = NUM_TIMESTEPS) -> Tensor:
    """``logsnr`` spacing on the UniAnimate schedule (see the module docstring); (S,) int64, S <= N."""
    from .schedule import NoiseSchedule

    num_steps = _check_num_steps(num_steps, num_timesteps)
    ab = NoiseSchedule.unianimate().alphas_cumprod.to(torch.float64)[:num_timesteps]
    with torch.no_grad():
        lam = 0.5 * (torch.log(ab) - torch.log1p(-ab))  # -inf at t = T - 1 (zero terminal SNR)
    last = num_timesteps - 1
    steps = [last]
    if num_steps > 1:
        hi = max(1, last - num_timesteps // num_steps)
        targets = torch.linspace(float(lam[hi]), float(lam[1]), num_steps - 1, dtype=torch.float64)
        finite = lam[1:last]  # timesteps 1 .. T-2
        for v in targets.tolist():
            t = 1 + int(torch.argmin((finite - v).abs()))
            if t < steps[-1]:
                steps.append(t)
    return torch.tensor(steps, dtype=torch.int64)


def previous_timesteps(timesteps: Tensor) -> Tensor:
    """The timestep each DDIM step lands on: the next entry of the list, and 0 after the last.

    The official code uses ``max(t - stride, 0)``, which is the same for every list it computes
    sanely; it differs only after a clamped t = 999, where the official result is NaN anyway.
    Landing on alpha_bar[0] (not on a clean x0) at the end is official behaviour.
    """
    validate_timesteps(timesteps)
    return torch.cat([timesteps[1:], timesteps.new_zeros(1)])


def validate_timesteps(timesteps: Tensor, num_timesteps: int = NUM_TIMESTEPS) -> Tensor:
    """Check a caller-supplied timestep list: 1-D int, strictly decreasing, within 0..T-1."""
    t = torch.as_tensor(timesteps)
    check(t.ndim == 1 and t.numel() >= 1 and not t.is_floating_point(),
          f"Timesteps must be a non-empty 1-D integer list, got shape {tuple(t.shape)} dtype {t.dtype}.")
    check(bool(((t >= 0) & (t < num_timesteps)).all()),
          f"Timesteps must lie in 0..{num_timesteps - 1}; got min {int(t.min())}, max {int(t.max())}.")
    check(bool((t[:-1] > t[1:]).all()), "Timesteps must be strictly decreasing (each step denoises further).")
    return t.to(torch.int64)


def _check_num_steps(num_steps: int, num_timesteps: int) -> int:
    return check_int("steps", num_steps, 1, num_timesteps)
