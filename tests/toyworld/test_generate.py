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


def test_generate_feeds_the_model_what_the_pipeline_prepares(model):
    """generate() goes through pipeline.prepare (the nodes' and CLI's path): the model sees the reference
    latent as the codec's posterior mean x 0.18215 (not a posterior sample), the CLIP stand-in's embedding
    of the reference, and the clip's own pose renders (u8 / 255)."""
    import torch

    from unianimate_core.pipeline.conditioning import clip_input
    from unianimate_core.toyworld import encode_frames, load_toy_codec

    clip = World(WorldConfig(width=64, height=64, frames=3)).clip("test", 3)
    seen = []

    def recording(x, t, **kw):
        seen.append(kw)
        return model(x, t, **kw)

    generate(recording, clip, GenerateOptions(steps=1, guidance=1.0))
    kw = seen[0]
    codec = load_toy_codec()
    expected_ref = encode_frames(codec, clip.reference[None])            # (1, 4, 1, 8, 8): posterior mean x 0.18215
    torch.testing.assert_close(kw["randomref"].float()[:, :, :1], expected_ref, rtol=0, atol=1e-6)
    emb = ToyImageEncoder().encode_image(clip_input(clip.reference)).float()
    torch.testing.assert_close(kw["image"].float().reshape(1, -1), emb.reshape(1, -1), rtol=0, atol=1e-6)
    poses = torch.from_numpy(clip.pose_images()).permute(3, 0, 1, 2).float() / 255
    assert torch.equal(kw["dwpose"].float()[0, :, 1:], poses)


def test_generate_passes_the_deep_cache_options_to_the_sampler(model):
    clip = World(WorldConfig(width=64, height=64, frames=3)).clip("test", 3)
    seen = []

    def spying(x, t, transformer_options=None, **kw):
        slot = (transformer_options or {}).get("deep_cache")
        out = model(x, t, transformer_options=transformer_options, **kw)
        seen.append(None if slot is None else (slot.depth, slot.stored is None))
        return out

    generate(spying, clip, GenerateOptions(steps=3, guidance=1.0, deep_cache_interval=2, deep_cache_depth=3))
    assert seen == [(3, False), (3, True), (3, False), (3, True)]  # 3 requested steps run 4, one call each
    seen.clear()
    generate(spying, clip, GenerateOptions(steps=3, guidance=1.0))
    assert seen == [None] * 4
