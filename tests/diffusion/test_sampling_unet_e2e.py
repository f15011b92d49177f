"""End to end with the real tiny UNet (weights regenerated from the fixture recipe): our UNet + our
sampler against the official DDIM runs (tests/fixtures/ddim_short_tiny.*, ddim_long_tiny.*), every
intermediate state and the final latent."""
from __future__ import annotations

import pytest
import torch

from tiny_unet import load_tiny_unet
from unianimate_core.diffusion import (
    Conditions, ContinuationOptions, SamplerOptions, iter_sample_long_continuation, iter_sample_video, sample_video,
)
from unianimate_core.diffusion.sliding import iter_sample_long_sliding, sample_long_sliding
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


# ------------------------------------------------------------------------------------------------
# edge lengths with the real (tiny) UNet: no official reference exists for these, so they check
# that the real model runs and that the strategies agree where they must
# ------------------------------------------------------------------------------------------------

class CallLog:
    """Forwards to the UNet and records the frame count of every call."""

    def __init__(self, unet) -> None:
        self.unet, self.frames = unet, []
        self.supports_cond_mask = True

    def __call__(self, x, t, **kwargs):
        self.frames.append(x.shape[2])
        return self.unet(x, t, **kwargs)


def _long_cond(g: dict, f: int) -> Conditions:
    return Conditions.build("standard", image=g["long.in.image"], dwpose=g["long.in.dwpose_u8"][:, :, :f + 1],
                            ref_latent=g["long.in.ref_latent"])


@pytest.mark.parametrize("mode", ["standard", "first_frame"])
def test_single_frame_clip_with_tiny_unet(tiny_unet, short_golden: dict, mode: str) -> None:
    """F = 1 (the official code needs F >= 2): runs, and batched guidance equals the sequential calls."""
    g = short_golden
    cond = Conditions.build(mode, image=g["short.in.image"], dwpose=g["short.in.dwpose_u8"][:, :, :2],
                            ref_latent=g["short.in.ref_latent"], ref_pixels=g["short.in.ref_pixels_u8"])
    noise = g["short.in.start"][:, :, :1]
    seq = sample_video(tiny_unet, noise, cond, SamplerOptions(steps=2, cfg_mode="sequential"))
    batched = sample_video(tiny_unet, noise, cond, SamplerOptions(steps=2, cfg_mode="batched"))
    assert seq.shape == (1, 4, 1, 16, 16) and bool(torch.isfinite(seq).all())
    torch.testing.assert_close(batched, seq, atol=1e-4, rtol=0)


@pytest.mark.parametrize("f", [3, 4, 5])
def test_sliding_around_the_window_size_with_tiny_unet(tiny_unet, long_golden: dict, f: int) -> None:
    """context_size 4: F = 3 and 4 are one window (exactly the short sampler), F = 5 two windows."""
    g = long_golden
    noise, cond = g["long.in.start"][:, :, :f], _long_cond(g, f)
    options = SamplerOptions(steps=2, cfg_mode="sequential")
    model = CallLog(tiny_unet)
    out = sample_long_sliding(model, noise, cond, options, SlidingWindowOptions(context_size=4, context_overlap=2))
    assert out.shape == noise.shape and bool(torch.isfinite(out).all())
    assert set(model.frames) == {min(f, 4)}
    if f <= 4:
        assert torch.equal(out, sample_video(tiny_unet, noise, cond, options))
    else:
        assert len(model.frames) == 2 * 2 * 2  # steps x windows x (cond, uncond)


def test_two_frame_continuation_segments_with_tiny_unet(tiny_unet, long_golden: dict) -> None:
    """segment_length 2 (one handed-over frame + one new frame per later segment) over 3 frames."""
    g = long_golden
    model = CallLog(tiny_unet)

    def decode(latent: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(latent[:, :3]).repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)

    segments = list(iter_sample_long_continuation(
        model, _long_cond(g, 3), SamplerOptions(steps=2), ContinuationOptions(segment_length=2),
        decode_last_frame=decode, generator=torch.Generator().manual_seed(0)))
    assert [s.pose_frames for s in segments] == [(0, 1), (1, 2)]
    assert [s.latent.shape[2] for s in segments] == [2, 1] and set(model.frames) == {2}
    assert all(bool(torch.isfinite(s.latent).all()) for s in segments)
