"""The CLIP stand-in: protocol, determinism, identity information."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unianimate_core.pipeline.conditioning import clip_input
from unianimate_core.pipeline.encoders import ImageEncoder
from unianimate_core.toyworld import ToyImageEncoder, ToyWorldError, World, WorldConfig
from unianimate_core.toyworld.clip import BINS, appearance_features


def test_protocol_shapes_and_determinism():
    enc = ToyImageEncoder()
    assert isinstance(enc, ImageEncoder) and enc.is_random is False
    x = clip_input(np.full((64, 48, 3), 120, np.uint8))
    a, b = enc.encode_image(x), ToyImageEncoder().encode_image(x)
    assert a.shape == (1, 1024) and torch.equal(a, b)
    assert enc.empty_context().shape == (1, 77, 1024) and torch.equal(enc.empty_context(), ToyImageEncoder().empty_context())
    assert not torch.equal(ToyImageEncoder(seed=1).encode_image(x), a)
    with pytest.raises(ToyWorldError, match="CLIP-normalised"):
        enc.encode_image(torch.zeros(3, 224, 224))


def test_histogram_of_a_flat_colour_is_its_bin():
    """Analytic case: a flat image whose colour sits exactly on a bin centre puts all its mass there."""
    v = 2 / (BINS - 1)  # bin 2 of each channel
    feats = appearance_features(torch.full((1, 3, 16, 16), v))
    hist = feats[0, :BINS ** 3] ** 2
    idx = (2 * BINS + 2) * BINS + 2
    assert float(hist[idx]) == pytest.approx(1.0, abs=1e-6) and float(hist.sum()) == pytest.approx(1.0, abs=1e-6)


def test_embedding_identifies_the_character_across_poses():
    """Same scene and motion, ten characters: a frame's embedding is nearest to another frame (2 s
    later, another pose) of the same character for at least 9 of 10 characters."""
    from unianimate_core.toyworld import Motion

    enc = ToyImageEncoder()
    w = World(WorldConfig(width=128, height=128, frames=1, occluder_prob=0.0))
    motion_id = next(m for m in range(50) if Motion(m).kinds([0.0, 2.0]) == ["dance", "dance"])
    a, b = [], []
    for c in range(10):
        for t, out in ((0.0, a), (2.0, b)):
            clip = w.render(character_id=c, motion_id=motion_id, scene_seed=7, start=t)
            assert clip.body_mask().mean() > 0.03  # the character is in the picture
            out.append(enc.encode_image(clip_input(clip.frames[0]))[0])
    a, b = torch.stack(a), torch.stack(b)
    d = torch.cdist(a, b)
    assert int((d.argmin(1) == torch.arange(10)).sum()) >= 9
