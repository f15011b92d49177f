"""TemporalMamba: identity at init, layout (one causal scan per pixel, reference slot first),
operations factory, gradients."""
from __future__ import annotations

import types

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unianimate_core.mamba import MambaConfig, MambaConfigError, MambaInputError, TemporalMamba
from unianimate_core.mamba.mixer import MambaMixer


def _video(b: int = 2, c: int = 64, f: int = 5, h: int = 3, w: int = 4, seed: int = 0):
    return torch.randn(b, c, f, h, w, generator=torch.Generator().manual_seed(seed))


def _randomise_output(layer: TemporalMamba, seed: int = 1) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.proj_out.weight.copy_(torch.randn(layer.proj_out.weight.shape, generator=g) * 0.1)
        layer.proj_out.bias.copy_(torch.randn(layer.proj_out.bias.shape, generator=g) * 0.1)


@pytest.mark.parametrize("frames", [1, 2, 17, 33])
def test_fresh_layer_is_exactly_the_identity(frames: int) -> None:
    torch.manual_seed(0)
    layer = TemporalMamba(64, MambaConfig())
    x = _video(f=frames)
    with torch.no_grad():
        assert torch.equal(layer(x), x)


def test_fresh_half_precision_layer_is_exactly_the_identity() -> None:
    layer = TemporalMamba(64, dtype=torch.bfloat16)
    x = _video().bfloat16()
    with torch.no_grad():
        y = layer(x)
    assert y.dtype == torch.bfloat16 and torch.equal(y, x)


def test_layer_runs_one_scan_per_pixel_over_frames() -> None:
    """Recompute the layer pixel by pixel from its parts: (B, C, F, h, w) -> per-pixel (F, C)."""
    torch.manual_seed(2)
    layer = TemporalMamba(32)
    _randomise_output(layer)
    x = _video(b=2, c=32, f=6, h=2, w=3, seed=3)
    with torch.no_grad():
        out = layer(x)
        normed = F.group_norm(x, 32, layer.norm.weight, layer.norm.bias, 1e-6)
        for b in range(2):
            for i in range(2):
                for j in range(3):
                    seq = normed[b, :, :, i, j].T[None]            # (1, F, C), frame 0 first
                    hid = layer.proj_in(seq)
                    hid = hid + layer.mamba.mixer(layer.mamba.norm(hid))
                    ref = layer.proj_out(hid)[0].T                 # (C, F)
                    assert torch.allclose(out[b, :, :, i, j] - x[b, :, :, i, j], ref, atol=1e-5)


def test_mixer_is_causal_so_the_reference_slot_reaches_every_frame() -> None:
    torch.manual_seed(4)
    mixer = MambaMixer(32)
    x = torch.randn(1, 8, 32)
    late, first = x.clone(), x.clone()
    late[:, 5] += 1.0
    first[:, 0] += 1.0
    with torch.no_grad():
        y, y_late, y_first = mixer(x), mixer(late), mixer(first)
    assert torch.equal(y[:, :5], y_late[:, :5])                    # no look-ahead
    assert (y_first - y).abs().amax(dim=-1).min() > 0               # frame 0 reaches all frames


def test_every_layer_comes_from_the_operations_factory() -> None:
    made = []

    def recording(cls):
        class Recorded(cls):
            def __init__(self, *a, **k):
                super().__init__(*a, **k)
                made.append(type(self).__name__)
        Recorded.__name__ = "Recorded" + cls.__name__
        return Recorded

    ops = types.SimpleNamespace(**{n: recording(getattr(nn, n)) for n in
                                   ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm",
                                    "LayerNorm")})
    layer = TemporalMamba(32, operations=ops)
    leaves = [type(m).__name__ for m in layer.modules() if not list(m.children())]
    assert set(leaves) == {"RecordedGroupNorm", "RecordedLinear", "RecordedLayerNorm",
                           "RecordedConv1d"}
    # norm, proj_in, block norm, in_proj, conv1d, x_proj, dt_proj, out_proj, proj_out
    assert len(leaves) == len(made) == 9
    assert torch.equal(layer(_video(c=32)), _video(c=32))


def test_zero_init_training_dynamics() -> None:
    """First backward: only proj_out gets gradient (zero weight blocks the rest); after one
    step the gradient reaches the mixer, through the scan."""
    torch.manual_seed(5)
    layer = TemporalMamba(32, MambaConfig(scan_chunk=2))
    x = _video(b=1, c=32, f=5, h=2, w=2, seed=6)
    target = x + 0.1 * _video(b=1, c=32, f=5, h=2, w=2, seed=7)
    opt = torch.optim.SGD(layer.parameters(), lr=0.1)
    F.mse_loss(layer(x), target).backward()
    assert layer.proj_out.weight.grad.abs().sum() > 0
    assert layer.mamba.mixer.in_proj.weight.grad.abs().sum() == 0
    opt.step()
    opt.zero_grad()
    F.mse_loss(layer(x), target).backward()
    for name, p in layer.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name


def test_bad_inputs_are_clear_errors() -> None:
    with pytest.raises(MambaConfigError, match="multiple of 32"):
        TemporalMamba(48)
    layer = TemporalMamba(32)
    with pytest.raises(MambaInputError, match=r"\(batch, 32, frames, height, width\)"):
        layer(torch.randn(2, 32, 5, 4))
    with pytest.raises(MambaInputError):
        layer(torch.randn(1, 64, 2, 2, 2))


def test_builds_on_meta_device_without_memory() -> None:
    layer = TemporalMamba(1280, device="meta", dtype=torch.float16)
    assert all(p.is_meta for p in layer.parameters())
    assert layer.mamba.mixer.A_log.dtype == torch.float32
