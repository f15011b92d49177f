"""Schedule and timestep selection against tests/fixtures/schedule.*, and NaN-freedom for every N."""
from __future__ import annotations

import pytest
import torch

from unianimate_core.diffusion import (
    NoiseSchedule, SamplingError, ddim_step, ddim_timesteps, official_ddim_timesteps_raw, previous_timesteps,
)
from unianimate_core.diffusion.schedule import linear_sd_betas, rescale_zero_terminal_snr

ARRAYS = ["betas", "alphas_cumprod", "sqrt_alphas_cumprod", "sqrt_one_minus_alphas_cumprod",
          "sqrt_recip_alphas_cumprod", "sqrt_recipm1_alphas_cumprod"]


SCHEDULE_RTOL = 1e-12
"""Relative tolerance between our float64 schedule arrays and the official ones. Only the operations
that are not single correctly-rounded IEEE operations can round differently on another CPU or build:
``linspace``, ``x ** 2`` and the two ``cumprod`` (vectorised kernels, FMA, reassociation). A first-order
error analysis of the schedule (each such operation off by one float64 ulp, all errors aligned, for
both implementations) bounds the relative difference by 7.5e-13 (betas at t = 1, where 1 - alpha
cancels; 5.0e-13 for alphas_cumprod at t = 998, <= 3.9e-13 for the square-root arrays). Measured on
another x86-64 CPU: 1 to 26 ulp (<= 5.8e-15 relative). A change of the recipe (betas range, number of
steps, no zero-SNR rescale, float32 arithmetic) moves these arrays by 1e-7 relative or more."""


@pytest.mark.parametrize("name", ARRAYS)
def test_schedule_arrays_match_the_official_float64_arrays(schedule_golden: dict, name: str) -> None:
    ours, official = getattr(NoiseSchedule.unianimate(), name), schedule_golden[name]
    assert ours.dtype == official.dtype == torch.float64
    # inf (1 / alpha_bar at t = 999) must match as inf; every finite value within SCHEDULE_RTOL
    torch.testing.assert_close(ours, official, rtol=SCHEDULE_RTOL, atol=0)


def test_schedule_tolerance_rejects_a_float32_schedule(schedule_golden: dict) -> None:
    float32 = NoiseSchedule.from_betas(rescale_zero_terminal_snr(linear_sd_betas().float().double()))
    with pytest.raises(AssertionError):
        torch.testing.assert_close(float32.betas, schedule_golden["betas"], rtol=SCHEDULE_RTOL, atol=0)


def test_ddim_timesteps_match_official_where_sane(schedule_golden: dict, schedule_meta: dict) -> None:
    for n_str, meta in schedule_meta["ddim_timesteps"].items():
        n = int(n_str)
        golden = schedule_golden[f"ddim_timesteps_{n}"]
        assert torch.equal(official_ddim_timesteps_raw(n), golden), n
        ours = ddim_timesteps(n)
        if meta["hits_t999"]:
            # deviation: duplicates removed, still every official timestep visited once
            assert torch.equal(ours, torch.unique(golden).flip(0)), n
        else:
            assert torch.equal(ours, golden), n
            assert len(ours) == meta["num_steps_run"]


def test_every_step_count_gives_a_valid_list() -> None:
    for n in range(1, 1001):
        ts = ddim_timesteps(n)
        raw = official_ddim_timesteps_raw(n)
        assert bool((ts[:-1] > ts[1:]).all()) and int(ts.min()) >= 0 and int(ts.max()) <= 999
        if not bool((raw == 999).any()):
            assert torch.equal(ts, raw), n  # exact parity wherever the official list is sane
        trailing = ddim_timesteps(n, "trailing")
        assert len(trailing) == n and int(trailing[0]) == 999 and bool((trailing[:-1] > trailing[1:]).all())


def test_every_scheduled_step_is_finite_for_every_n() -> None:
    """All (t, t_prev) pairs any N in 1..1000 can produce, stepped at once with eta 0 and 1."""
    pairs = set()
    for n in range(1, 1001):
        for mode in ("official", "trailing"):
            ts = ddim_timesteps(n, mode)
            pairs.update(zip(ts.tolist(), previous_timesteps(ts).tolist()))
    t, t_prev = (torch.tensor(v, dtype=torch.int64) for v in zip(*sorted(pairs)))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(len(t), 4, 1, 2, 2, generator=gen)
    v = torch.randn(x.shape, generator=gen)
    schedule = NoiseSchedule.unianimate()
    for eta in (0.0, 1.0):
        out, x0 = ddim_step(schedule, x, v, t, t_prev, eta, torch.randn(x.shape, generator=gen))
        assert bool(torch.isfinite(out).all()) and bool(torch.isfinite(x0).all())
    assert 999 in t.tolist()


def test_terminal_step_uses_the_finite_equivalent() -> None:
    """At t=999 (alpha_bar = 0) the official eps formula is inf/inf; ours gives eps = x, x0 = -v."""
    schedule = NoiseSchedule.unianimate()
    x = torch.randn(1, 4, 2, 3, 3)
    v = torch.randn(1, 4, 2, 3, 3)
    t, t_prev = torch.tensor([999]), torch.tensor([990])
    out, x0 = ddim_step(schedule, x, v, t, t_prev)
    torch.testing.assert_close(x0, -v)
    ab = schedule.alphas_cumprod[990]
    torch.testing.assert_close(out, (ab.sqrt() * -v + (1 - ab).sqrt() * x).float())


@pytest.mark.parametrize("n", [3, 500, 1000])
def test_official_nan_step_counts_sample_finitely(n: int) -> None:
    from unianimate_core.diffusion import Conditions, SamplerOptions, sample_video

    def model(x, t, **cond):
        return 0.5 * x + 0.01 * t.view(-1, 1, 1, 1, 1).float() / 1000

    out = sample_video(model, torch.randn(1, 4, 2, 2, 2), Conditions(), SamplerOptions(steps=n, guide_scale=1.0))
    assert bool(torch.isfinite(out).all())


@pytest.mark.parametrize("bad", [0, 1001, -3, 2.5, True])
def test_bad_step_counts_are_rejected(bad) -> None:
    with pytest.raises(SamplingError, match="steps"):
        ddim_timesteps(bad)


def test_reference_values_from_the_official_code() -> None:
    """Values read by running the official code (docs/official_behaviour.md#schedule)."""
    s = NoiseSchedule.unianimate()
    assert s.alphas_cumprod[999] == 0 and s.betas[999] == 1.0
    assert abs(float(s.sqrt_alphas_cumprod[949]) - 0.0247496) < 1e-7
    assert abs(float(s.sqrt_alphas_cumprod[939]) - 0.0303538) < 1e-7
