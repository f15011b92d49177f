"""End to end with the real tiny UNet (weights regenerated from the fixture recipe): our UNet + our
sampler against the official DDIM runs (tests/fixtures/ddim_short_tiny.*, ddim_long_tiny.*), every
intermediate state and the final latent."""
from __future__ import annotations

import pytest
import torch

from tiny_unet import load_tiny_unet
from unianimate_core.diffusion import Conditions, SamplerOptions, iter_sample_video
from unianimate_core.diffusion.sliding import iter_sample_long_sliding
from unianimate_core.diffusion.windows import SlidingWindowOptions

STEP_ATOL = 1e-4
FINAL_ATOL = 5e-4


@pytest.fixture(scope="module")
def tiny_unet():
    return load_tiny_unet()


@pytest.mark.parametrize("cfg_mode", ["sequential", "batched"])
@pytest.mark.parametrize("run,mode", [("short.standard.gs2.5", "standard"), ("short.local.gs2.5", "first_frame")])
def test_short_run_with_tiny_unet(tiny_unet, short_golden: dict, run: str, mode: str, cfg_mode: str) -> None:
    g = short_golden
    cond = Conditions.build(mode, image=g["short.in.image"], dwpose=g["short.in.dwpose_u8"],
                            ref_latent=g["short.in.ref_latent"], ref_pixels=g["short.in.ref_pixels_u8"])
    steps = list(iter_sample_video(tiny_unet, g["short.in.start"], cond, SamplerOptions(steps=5, cfg_mode=cfg_mode)))
    assert len(steps) == len(g[f"{run}.x_t"])
    for i, step in enumerate(steps):
        torch.testing.assert_close(step.x, g[f"{run}.x_t"][i], atol=STEP_ATOL, rtol=0)
    torch.testing.assert_close(steps[-1].x, g[f"{run}.final"], atol=FINAL_ATOL, rtol=0)


@pytest.mark.parametrize("cbs,cfg_mode", [(1, "sequential"), (2, "batched")])
def test_long_sliding_run_with_tiny_unet(tiny_unet, long_golden: dict, cbs: int, cfg_mode: str) -> None:
    g = long_golden
    cond = Conditions.build("standard", image=g["long.in.image"], dwpose=g["long.in.dwpose_u8"],
                            ref_latent=g["long.in.ref_latent"])
    steps = list(iter_sample_long_sliding(tiny_unet, g["long.in.start"], cond, SamplerOptions(steps=4, cfg_mode=cfg_mode),
                                          SlidingWindowOptions(context_size=4, context_overlap=2, context_batch_size=cbs)))
    run = f"long.cbs{cbs}"
    for i, step in enumerate(steps):
        torch.testing.assert_close(step.x, g[f"{run}.x_t"][i], atol=STEP_ATOL, rtol=0)
    torch.testing.assert_close(steps[-1].x, g[f"{run}.final"], atol=FINAL_ATOL, rtol=0)
