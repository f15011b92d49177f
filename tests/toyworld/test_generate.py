"""End to end on the world: a (tiny, random-weight) UNet generates a clip through the real sampler with
each long-video strategy, and the evaluation scores it."""
from __future__ import annotations

import numpy as np
import pytest

from unianimate_core.toyworld import ToyImageEncoder, World, WorldConfig
from unianimate_core.toyworld.generate import GenerateOptions, generate


@pytest.fixture(scope="module")
def model():
    from tests.tiny_unet import load_tiny_unet

    m = load_tiny_unet()
    m.set_zero_y(ToyImageEncoder().empty_context())
    return m


@pytest.mark.parametrize("strategy, mode", [("short", "standard"), ("windows", "both"), ("continuation", "first_frame")])
def test_generate_runs_every_strategy_deterministically(model, strategy, mode):
    from unianimate_core.evaluation import evaluate_toy_clip

    clip = World(WorldConfig(width=64, height=64, frames=5)).clip("test", 1)
    opts = GenerateOptions(steps=2, guidance=2.0, mode=mode, strategy=strategy, segment_length=3, context_size=3,
                           context_overlap=1)
    a = generate(model, clip, opts)
    assert a.shape == clip.frames.shape and a.dtype == np.uint8
    # block frames: the decoder fills 8x8 blocks
    assert (a == np.repeat(np.repeat(a[:, ::8, ::8], 8, 1), 8, 2)).all()
    np.testing.assert_array_equal(a, generate(model, clip, opts))
    m = evaluate_toy_clip(a, clip, warp=False)
    assert np.isfinite(m.summary["psnr"]) and 0 <= m.summary["pck_0.2"] <= 1


def test_noise_prior_changes_the_start(model):
    clip = World(WorldConfig(width=64, height=64, frames=2)).clip("test", 2)
    with_prior = generate(model, clip, GenerateOptions(steps=1))
    without = generate(model, clip, GenerateOptions(steps=1, noise_prior=False))
    assert not np.array_equal(with_prior, without)
