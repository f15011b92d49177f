"""The optional fast solvers and partial guidance against an independent source.

Independent source: for Gaussian data x0 ~ N(mu, s^2) (per element) the v-prediction of the ideal
model is analytic (posterior means of x0 and eps given x_t), and the probability-flow ODE has an exact
solution: z = (x_t - alpha_t mu) / sqrt(alpha_t^2 s^2 + sigma_t^2) is constant along it, so a run from
t0 to t1 must end at alpha_1 mu + sqrt(alpha_1^2 s^2 + sigma_1^2) z. Every deterministic solver
integrates that ODE; its error against the exact endpoint must fall like h^order when the number of
steps grows (DDIM: order 1, DPM-Solver++(2M): order 2).
"""
from __future__ import annotations

import math

import pytest
import torch

from unianimate_core.diffusion import Conditions, NoiseSchedule, SamplerOptions, SamplingError, sample_video
from unianimate_core.diffusion.timesteps import ddim_timesteps, previous_timesteps

SCHEDULE = NoiseSchedule.unianimate()
SHAPE = (1, 4, 3, 4, 4)


def gaussian_data(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    mu = torch.randn(SHAPE, generator=g, dtype=torch.float64)
    s = 0.2 + torch.rand(SHAPE, generator=g, dtype=torch.float64)  # 0.2 .. 1.2: unit-scale data as the VAE latent
    return mu, s


class GaussianV:
    """The ideal v-prediction for x0 ~ N(mu, s^2): v = alpha E[eps | x] - sigma E[x0 | x] (float64 inside)."""

    def __init__(self, mu: torch.Tensor, s: torch.Tensor) -> None:
        self.mu, self.s, self.calls = mu, s, 0

    def __call__(self, x, t, **cond):
        self.calls += x.shape[0]
        ab = SCHEDULE.alphas_cumprod.to(torch.float64)[t.cpu()].view(-1, 1, 1, 1, 1)
        a, sg = ab.sqrt(), (1 - ab).sqrt()
        xd = x.to(torch.float64)
        var = a ** 2 * self.s ** 2 + sg ** 2
        x0 = self.mu + a * self.s ** 2 / var * (xd - a * self.mu)
        eps = sg / var * (xd - a * self.mu)
        return (a * eps - sg * x0).to(torch.float32)


def exact_endpoint(x_start: torch.Tensor, t0: int, t1: int, mu: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    ab = SCHEDULE.alphas_cumprod.to(torch.float64)
    a0, s0, a1, s1 = ab[t0].sqrt(), (1 - ab[t0]).sqrt(), ab[t1].sqrt(), (1 - ab[t1]).sqrt()
    z = (x_start.to(torch.float64) - a0 * mu) / (a0 ** 2 * s ** 2 + s0 ** 2).sqrt()
    return a1 * mu + (a1 ** 2 * s ** 2 + s1 ** 2).sqrt() * z


def run(solver: str, steps: int, mode: str = "trailing", seed: int = 1) -> tuple[float, int]:
    mu, s = gaussian_data()
    model = GaussianV(mu, s)
    x_T = torch.randn(SHAPE, generator=torch.Generator().manual_seed(seed))
    opts = SamplerOptions(steps=steps, guide_scale=1.0, timestep_mode=mode, solver=solver)
    out = sample_video(model, x_T, Conditions(), opts, schedule=SCHEDULE)
    ts = ddim_timesteps(steps, mode)
    exact = exact_endpoint(x_T, int(ts[0]), int(previous_timesteps(ts)[-1]), mu, s)
    return float((out.to(torch.float64) - exact).abs().max()), model.calls


@pytest.mark.parametrize("solver,order", [("ddim", 1.0), ("dpmpp_2m", 2.0)])
def test_convergence_order_against_the_exact_ode_solution(solver, order):
    # logsnr spacing (uniform in log-SNR, the spacing the multistep solver is built for): the error
    # against the exact endpoint goes to 0 like N^-order. Measured: DDIM 1.00, DPM-Solver++(2M) 1.95
    # between 40 and 80 steps; 0.3 of slack for the integer rounding of the timesteps.
    errs = [run(solver, n, mode="logsnr")[0] for n in (20, 40, 80)]
    observed = [math.log2(a / b) for a, b in zip(errs, errs[1:])]
    assert abs(observed[-1] - order) < 0.3, (errs, observed)
    assert errs[-1] < (0.1 if solver == "ddim" else 0.005)


def test_second_order_solver_beats_ddim_at_equal_evaluations():
    for n in (10, 15, 25):
        ddim, calls_d = run("ddim", n, mode="logsnr")
        dpm, calls_p = run("dpmpp_2m", n, mode="logsnr")
        assert calls_d == calls_p == n
        assert dpm < ddim / 4, (n, ddim, dpm)


def test_twelve_logsnr_steps_beat_the_official_run():
    # 12 DPM-Solver++(2M) steps (24 evaluations with guidance, 0.39x the official 62) against the official
    # 31-step DDIM list: measured 0.063 vs 0.16 max |error| from the exact ODE endpoint
    dpm, calls = run("dpmpp_2m", 12, mode="logsnr")
    ddim, calls_official = run("ddim", 30, mode="official")
    assert (calls, calls_official) == (12, 31)
    assert dpm < ddim / 2, (dpm, ddim)


def test_official_and_trailing_timesteps_work_with_the_second_order_solver():
    # on these spacings the large log-SNR steps near t = 999 dominate the error: at 10 trailing steps
    # DPM-Solver++(2M) is no better than DDIM (0.49 vs 0.45), from 20 steps on it is (docs/sampling.md)
    for mode in ("official", "trailing"):
        for n in (20, 40):
            assert run("dpmpp_2m", n, mode=mode)[0] < run("ddim", n, mode=mode)[0]


def test_logsnr_timesteps():
    from unianimate_core.diffusion.timesteps import ddim_timesteps

    for n in (1, 2, 5, 10, 12, 30, 100):
        ts = ddim_timesteps(n, "logsnr")
        assert int(ts[0]) == 999 and len(ts) <= n and bool((ts[:-1] > ts[1:]).all())
        if n <= 30:
            assert len(ts) == n
    ab = SCHEDULE.alphas_cumprod.to(torch.float64)
    lam = 0.5 * torch.log(ab / (1 - ab))
    ts = ddim_timesteps(12, "logsnr")
    gaps = (lam[ts[2:]] - lam[ts[1:-1]]).tolist()
    assert max(gaps) - min(gaps) < 0.25 * (sum(gaps) / len(gaps))  # even in log-SNR up to integer rounding


class CountingCFG:
    """Element-wise fake UNet with cond_mask: v = x * 0.1 + (conditional rows: 0.05)."""

    supports_cond_mask = True

    def __init__(self) -> None:
        self.rows: list[tuple[int, bool]] = []

    def __call__(self, x, t, cond_mask=None, **cond):
        guided = cond_mask is not None
        self.rows.append((int(t[0]), guided))
        out = 0.1 * x
        if cond_mask is None:
            return out + 0.05
        return out + 0.05 * cond_mask.view(-1, 1, 1, 1, 1).to(x.dtype)


@pytest.mark.parametrize("interval,expected_guided", [((0.0, 1.0), 31), ((0.0, 0.5), 16), ((0.25, 0.75), 16),
                                                      ((0.0, 0.0), 0)])
def test_guidance_interval_counts_and_places_the_guided_steps(interval, expected_guided):
    model = CountingCFG()
    opts = SamplerOptions(steps=30, guide_scale=2.5, guidance_interval=interval)
    sample_video(model, torch.zeros(SHAPE), Conditions(), opts)
    guided = [i for i, (_, g) in enumerate(model.rows) if g]
    assert len(model.rows) == 31 and len(guided) == expected_guided
    assert opts.model_evaluations() == 31 + expected_guided
    if guided:  # one contiguous block of steps, starting at the interval's start
        assert guided == list(range(guided[0], guided[0] + len(guided)))
        assert guided[0] == math.ceil(interval[0] * 31)


def test_unguided_steps_use_the_conditional_prediction_only():
    # guidance_interval (0, 0): every step is the conditional prediction = guide_scale 1
    a = sample_video(CountingCFG(), torch.ones(SHAPE), Conditions(),
                     SamplerOptions(steps=5, guide_scale=2.5, guidance_interval=(0.0, 0.0)))
    b = sample_video(CountingCFG(), torch.ones(SHAPE), Conditions(), SamplerOptions(steps=5, guide_scale=1.0))
    assert torch.equal(a, b)


def test_default_is_the_official_sampler():
    o = SamplerOptions()
    assert o.solver == "ddim" and tuple(o.guidance_interval) == (0.0, 1.0)
    assert o.model_evaluations() == 62  # 31 steps x cond + uncond


@pytest.mark.parametrize("kwargs,needle", [
    (dict(solver="dpmpp_3m"), "Unknown solver"),
    (dict(solver="dpmpp_2m", eta=0.5), "eta = 0"),
    (dict(guidance_interval=(0.6, 0.2)), "guidance_interval"),
    (dict(guidance_interval=(0.0, 1.5)), "guidance_interval"),
])
def test_bad_solver_options_are_clear_errors(kwargs, needle):
    with pytest.raises(SamplingError, match=needle):
        SamplerOptions(**kwargs)
