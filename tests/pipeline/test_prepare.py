"""The shared preparation/sampling path (pipeline/prepare.py): its rules, checked against their definitions."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unianimate_core.diffusion import SamplerOptions
from unianimate_core.pipeline.errors import PipelineError
from unianimate_core.pipeline.prepare import (
    effective_sampler, noise_options, pose_stack, refine_timesteps, render_pose_frames, select_poses, strategy_name,
)


def test_noise_recipe_per_strategy_is_the_official_one():
    assert noise_options("short") == noise_options("short", 949)
    assert (noise_options("short").prior_t, noise_options("short").prior_order) == (949, "offset_then_prior")
    assert (noise_options("windows").prior_t, noise_options("windows").prior_order) == (939, "prior_then_offset")
    assert noise_options("sliding_windows") == noise_options("windows")
    assert (noise_options("first_frame_continuation").prior_order) == "offset_then_prior"
    assert noise_options("short", 0).prior_t is None and noise_options("short").offset_strength == 0.1
    with pytest.raises(PipelineError, match="zigzag"):
        strategy_name("zigzag")


def test_refinement_runs_the_tail_of_a_longer_schedule():
    """30 steps at denoise 0.5 (ComfyUI: the last steps of a 60-step schedule): the official 60-step list is
    1 + 16 k (stride 1000 // 60 = 16), and a 30-step run has 31 timesteps, so k = 30 .. 0."""
    assert refine_timesteps(SamplerOptions(steps=30), 0.5) == tuple(1 + 16 * k for k in range(30, -1, -1))
    # denoise 1.0 is the plain schedule; more than 1000 steps is capped
    assert refine_timesteps(SamplerOptions(steps=30), 1.0) == tuple(SamplerOptions(steps=30).schedule_timesteps().tolist())
    assert refine_timesteps(SamplerOptions(steps=600), 0.5)[0] <= 999
    for bad in (0.0, -0.1, 1.5, float("nan"), True):
        with pytest.raises(PipelineError, match="denoise"):
            refine_timesteps(SamplerOptions(steps=30), bad)


def test_denoise_without_a_latent_is_refused():
    plain = SamplerOptions(steps=4)
    assert effective_sampler(plain) is plain
    with pytest.raises(PipelineError, match="needs a latent"):
        effective_sampler(plain, 0.5, refining=False)
    assert effective_sampler(plain, 0.5, refining=True).timesteps == refine_timesteps(plain, 0.5)


def test_pose_selection_zero_all_one_first():
    assert select_poses(5, 0, 2).indices == (0, 2, 4)
    assert select_poses(5, 1, 2).indices == (0,)
    assert select_poses(5, 3, 1).indices == (0, 1, 2)


def test_pose_images_openpose_colours_and_the_stack():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (3, 8, 8, 3), dtype=np.uint8)
    same = render_pose_frames(frames, [2, 0], (8, 8))
    assert np.array_equal(same, frames[[2, 0]])
    swapped = render_pose_frames(frames, [1], (8, 8), "openpose")
    assert np.array_equal(swapped[0], frames[1][..., [2, 1, 0]])
    one = render_pose_frames(frames[0], [0], (8, 8))  # a single (H, W, 3) image
    assert np.array_equal(one[0], frames[0])
    stack = pose_stack(frames[0], frames[1:])
    assert stack.dtype == torch.uint8 and stack.shape == (1, 3, 3, 8, 8)
    assert torch.equal(stack[0, :, 0], torch.from_numpy(frames[0]).permute(2, 0, 1))  # reference pose first
    with pytest.raises(PipelineError, match="colours"):
        render_pose_frames(frames, [0], (8, 8), "sepia")
