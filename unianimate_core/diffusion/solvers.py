"""ODE solvers for the v-prediction, zero-terminal-SNR UniAnimate model: the official DDIM and DPM-Solver++(2M).

Every solver turns the guided v-prediction of a step into an x0 estimate (``predict_x0``) and moves the
state from timestep t to the next one. ``ddim`` is the official update (``ddim.py``, exact parity).
``dpmpp_2m`` is the multistep second-order DPM-Solver++ of Lu et al. 2022 (arXiv 2211.01095, Algorithm 2)
in data prediction, with alpha_t = sqrt(alpha_bar_t), sigma_t = sqrt(1 - alpha_bar_t) and half-log-SNR
lambda_t = log(alpha_t / sigma_t):

    h_i = lambda_{t_i} - lambda_{t_{i-1}}
    x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} - alpha_{t_i} (exp(-h_i) - 1) D_i
    D_i = (1 + 1 / (2 r_i)) x0_{i-1} - 1 / (2 r_i) x0_{i-2},  r_i = h_{i-1} / h_i   (D_1 = x0_0)

Zero terminal SNR: at t = 999 alpha = 0, lambda = -inf, so the first step has h = inf. Its first-order
update is finite (exp(-h) = 0, sigma_{t_0} = 1): x = sigma_{t_1} x_T + alpha_{t_1} x0, which is the DDIM
step from pure noise; the next step then has r = inf and its correction 1 / (2 r) = 0, i.e. it is first
order too. All arithmetic is float32 on the state's device, coefficients are computed in float64.

The convergence order is checked against the exact probability-flow ODE solution for Gaussian data
(``tests/diffusion/test_solvers.py``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .ddim import ddim_step, predict_x0
from .errors import check
from .schedule import NoiseSchedule

SOLVERS: tuple[str, ...] = ("ddim", "dpmpp_2m")


class Solver:
    """Stateful update rule of one sampling run (a multistep solver remembers earlier x0 estimates).

    ``step(x, v, t, t_prev, eta, noise) -> (x_prev, x0)`` with x (B, C, F, h, w) float32, v the guided
    v-prediction, t / t_prev ints (the same for the whole batch). Build one per run with :func:`make_solver`.
    """

    def __init__(self, schedule: NoiseSchedule) -> None:
        self.schedule = schedule

    def step(self, x: Tensor, v: Tensor, t: int, t_prev: int, eta: float = 0.0,
             noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        b = x.shape[0]
        return ddim_step(self.schedule, x, v, torch.full((b,), t, dtype=torch.int64),
                         torch.full((b,), t_prev, dtype=torch.int64), eta, noise)


class DPMSolverPP2M(Solver):
    """DPM-Solver++(2M), deterministic (eta must be 0). See the module docstring for the update."""

    def __init__(self, schedule: NoiseSchedule) -> None:
        super().__init__(schedule)
        self._prev_x0: Tensor | None = None
        self._prev_h: float | None = None

    def _alpha_sigma_lambda(self, t: int) -> tuple[float, float, float]:
        ab = float(self.schedule.alphas_cumprod[t])
        alpha, sigma = math.sqrt(ab), math.sqrt(1.0 - ab)
        lam = -math.inf if alpha == 0.0 else math.log(alpha) - math.log(sigma)
        return alpha, sigma, lam

    def step(self, x: Tensor, v: Tensor, t: int, t_prev: int, eta: float = 0.0,
             noise: Tensor | None = None) -> tuple[Tensor, Tensor]:
        check(eta == 0.0, "the dpmpp_2m solver is deterministic: use eta = 0 (or the ddim solver for eta > 0).")
        check(x.dtype == torch.float32, f"The sampler state must be float32 (got {x.dtype}).")
        b = x.shape[0]
        x0 = predict_x0(self.schedule, x, torch.full((b,), t, dtype=torch.int64), v)
        _, sigma_s, lam_s = self._alpha_sigma_lambda(t)
        alpha_t, sigma_t, lam_t = self._alpha_sigma_lambda(t_prev)
        h = lam_t - lam_s
        check(h > 0, f"dpmpp_2m needs decreasing noise: step {t} -> {t_prev} does not lower the noise level.")
        phi = -math.expm1(-h)  # 1 - exp(-h), exact for small h; 1 when h = inf (then sigma_s = 1)
        d = x0
        if self._prev_x0 is not None and self._prev_h is not None and math.isfinite(self._prev_h):
            r = self._prev_h / h
            d = (1 + 1 / (2 * r)) * x0 - (1 / (2 * r)) * self._prev_x0
        x_prev = (sigma_t / sigma_s) * x + (alpha_t * phi) * d
        self._prev_x0, self._prev_h = x0, h
        return x_prev, x0


def make_solver(name: str, schedule: NoiseSchedule) -> Solver:
    """A fresh solver for one run: ``ddim`` (official) or ``dpmpp_2m``."""
    check(name in SOLVERS, f"Unknown solver {name!r}; use one of {SOLVERS}.")
    return DPMSolverPP2M(schedule) if name == "dpmpp_2m" else Solver(schedule)
