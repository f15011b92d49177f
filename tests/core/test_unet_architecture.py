"""The full-size architecture matches the released checkpoint's key manifest exactly (no weights)."""
from __future__ import annotations

import json

import pytest
import torch

from unianimate_core.config import UNetConfig
from unianimate_core.errors import InputError
from unianimate_core.unet import UNetSD_UniAnimate


@pytest.fixture(scope="module")
def manifest(fixtures_dir):
    return json.loads((fixtures_dir / "unet_full_manifest.json").read_text())


def test_full_model_keys_shapes_and_order_match_manifest(manifest):
    sd = UNetSD_UniAnimate(UNetConfig.full(), device="meta").state_dict()
    expected = [(k, list(s)) for k, s in manifest["keys"]]
    got = [(k, list(v.shape)) for k, v in sd.items()]
    missing = sorted(set(k for k, _ in expected) - set(sd))
    extra = sorted(set(sd) - set(k for k, _ in expected))
    assert not missing and not extra, (missing[:5], extra[:5])
    assert got == expected  # same shapes, same state-dict order
    assert sum(v.numel() for v in sd.values()) == manifest["n_params"] == 1_416_564_300


def test_zero_y_is_not_part_of_the_checkpoint():
    m = UNetSD_UniAnimate(UNetConfig.tiny(), device="meta")
    assert "zero_y" not in m.state_dict()


def test_attention_placement_is_the_effective_official_one():
    """Transformers at latent scales 1, 1/2, 1/4 (docs/official_behaviour.md#attn-scales), none at 1/8
    outside the middle block."""
    sd = UNetSD_UniAnimate(UNetConfig.full(), device="meta").state_dict()
    assert "input_blocks.1.1.norm.weight" in sd
    assert "input_blocks.10.1.norm.weight" not in sd
    assert "output_blocks.2.1.conv.weight" in sd and "output_blocks.5.3.conv.weight" in sd
    heads_init = sd["input_blocks.0.1.proj_in.weight"].shape
    assert tuple(heads_init) == (512, 320, 1)


@pytest.mark.parametrize(
    "kwargs, fragment",
    [
        (dict(dim=48), "multiple of 32"),
        (dict(temporal="lstm"), "'attention' or 'mamba'"),
        (dict(dim_mult=()), "dim_mult"),
    ],
)
def test_invalid_config_is_rejected_with_a_reason(kwargs, fragment):
    with pytest.raises(InputError, match=fragment):
        UNetConfig(**kwargs)


def test_config_roundtrip_json():
    cfg = UNetConfig.tiny()
    assert UNetConfig.from_dict(json.loads(cfg.to_json())) == cfg


def test_tiny_model_runs_any_multiple_of_64_and_frame_counts():
    """Pixel embedders pool to half the *actual* input size
    (docs/official_behaviour.md#pixel-embedder-pool): no resolution is baked in."""
    torch.manual_seed(0)
    m = UNetSD_UniAnimate(UNetConfig.tiny()).eval()
    m.set_zero_y(torch.randn(1, 77, 1024))
    for (hp, wp), f, b in [((64, 64), 1, 1), ((128, 64), 2, 1), ((64, 192), 3, 2)]:
        x = torch.randn(b, 4, f, hp // 8, wp // 8)
        with torch.no_grad():
            out = m(x, torch.full((b,), 500), image=torch.randn(b, 1024),
                    dwpose=torch.rand(b, 3, f + 1, hp, wp), randomref=torch.randn(b, 4, 1, hp // 8, wp // 8))
        assert out.shape == x.shape and torch.isfinite(out).all()
