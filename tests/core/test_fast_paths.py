"""The faster formulations of UNet layers and the weight-cast layer factory (docs/performance.md).

Each fast path is compared with an independent formulation: PyTorch's own Conv3d / Conv1d kernels, the
context repeated per frame as the official code does, the fp32 model on weights rounded to fp16.
Tolerances: float32 results of the same sums in another order differ by a few ulps of the partial sums;
1e-5 of the output scale bounds that for the reductions here (<= 11 520 terms; measured <= 2e-6).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unianimate_core.checkpoint import load_unet
from unianimate_core.ops import WeightScratch, cast_operations, plain_weight
from unianimate_core.unet.resblock import temporal_conv
from unianimate_core.unet.transformer import SpatialTransformer, pointwise_conv

from tiny_unet import load_tiny_unet, regenerate_tiny_state_dict

REL = 1e-5


def close(a: torch.Tensor, b: torch.Tensor, rel: float = REL) -> bool:
    return float((a - b).abs().max()) <= rel * float(b.abs().max()) + 1e-7


class PatchedConv3d(nn.Conv3d):
    """A ComfyUI-like layer with a weight function (a LoRA patch): it must run its own forward."""

    comfy_cast_weights = False

    def __init__(self, *a, delta: torch.Tensor, **k) -> None:
        super().__init__(*a, **k)
        self.weight_function = [lambda w: w + delta]
        self.bias_function = []

    def forward(self, x):
        return self._conv_forward(x, self.weight_function[0](self.weight), self.bias)


def test_temporal_conv_is_the_conv3d():
    g = torch.Generator().manual_seed(0)
    conv = nn.Conv3d(24, 24, (3, 1, 1), padding=(1, 0, 0))
    x = torch.randn(2, 24, 5, 6, 7, generator=g)
    with torch.no_grad():
        assert plain_weight(conv, x) is not None
        assert close(temporal_conv(conv, x), F.conv3d(x, conv.weight, conv.bias, padding=(1, 0, 0)))


def test_temporal_conv_keeps_a_weight_patch():
    delta = torch.randn(24, 24, 3, 1, 1, generator=torch.Generator().manual_seed(1))
    conv = PatchedConv3d(24, 24, (3, 1, 1), padding=(1, 0, 0), delta=delta)
    x = torch.randn(1, 24, 4, 3, 3)
    with torch.no_grad():
        assert plain_weight(conv, x) is None
        expected = F.conv3d(x, conv.weight + delta, conv.bias, padding=(1, 0, 0))
        assert close(temporal_conv(conv, x), expected)
        assert not close(F.conv3d(x, conv.weight, conv.bias, padding=(1, 0, 0)), expected)


def test_pointwise_conv_is_the_conv1d():
    conv = nn.Conv1d(16, 40, 1)
    tokens = torch.randn(30, 7, 16)  # (tokens, frames, channels)
    with torch.no_grad():
        ref = conv(tokens.transpose(1, 2)).transpose(1, 2)
        assert close(pointwise_conv(conv, tokens), ref)
        # a patched layer is called in its own channels-first layout
        conv.weight_function = [lambda w: w * 2]
        conv.comfy_cast_weights = False
        assert plain_weight(conv, tokens) is None


def test_cross_attention_context_once_per_sample():
    torch.manual_seed(0)
    st = SpatialTransformer(64, 2, 32, 48, nn).eval()
    frames, b = 3, 2
    x = torch.randn(b * frames, 64, 4, 4)
    ctx = torch.randn(b, 9, 48)
    with torch.no_grad():
        once = st(x, ctx)  # (B, 9, C) context for B * 3 frames
        repeated = st(x, ctx.repeat_interleave(frames, dim=0))
    assert close(once, repeated)


def test_half_weight_storage_computes_the_fp32_function_of_the_rounded_weights():
    sd = regenerate_tiny_state_dict()
    sd = {k: v.float() * (1 + 0.01 * torch.randn(v.shape, generator=torch.Generator().manual_seed(3)))
          for k, v in sd.items()}  # not exactly representable in fp16
    zero_y = torch.randn(1, 77, 1024, generator=torch.Generator().manual_seed(4))
    stored = load_unet(sd, dtype="fp16", compute_dtype="fp32", zero_y=zero_y)
    reference = load_unet({k: v.half().float() for k, v in sd.items()}, dtype="fp32", zero_y=zero_y)
    exact = load_unet(sd, dtype="fp32", zero_y=zero_y)
    assert stored.dtype == torch.float32 and stored.time_embed[0].weight.dtype == torch.float16
    assert list(stored.state_dict()) == list(exact.state_dict())  # same keys, same order
    assert all(type(m).__name__ in ("Linear", "Conv1d", "Conv2d", "Conv3d", "GroupNorm", "LayerNorm")
               for m in stored.modules() if hasattr(m, "compute_weight"))
    for m in stored.modules():  # exercise the reused cast buffer on every weight of the tiny model
        if getattr(m, "scratch", None) is not None:
            m.scratch.min_numel = 0
            break
    g = torch.Generator().manual_seed(5)
    x = torch.randn(1, 4, 2, 8, 8, generator=g)
    cond = dict(image=torch.randn(1, 1024, generator=g), dwpose=torch.rand(1, 3, 3, 64, 64, generator=g),
                randomref=torch.randn(1, 4, 1, 8, 8, generator=g))
    with torch.inference_mode():
        out = stored(x, torch.tensor([500]), **cond)
        ref = reference(x, torch.tensor([500]), **cond)
        full = exact(x, torch.tensor([500]), **cond)
    assert out.dtype == torch.float32
    assert close(out, ref)  # the same fp32 computation on the same (rounded) weights
    assert not close(out, full, 1e-4)  # the rounding of the weights is visible: the test can fail


def test_weight_scratch_reuses_one_buffer_and_never_under_autograd():
    s = WeightScratch()
    s.min_numel = 0
    a, b = torch.randn(10, 10).half(), torch.randn(4, 5).half()
    with torch.no_grad():
        wa = s.cast(a, torch.float32)
        assert torch.equal(wa, a.float())
        wb = s.cast(b, torch.float32)
        assert torch.equal(wb, b.float()) and wb.data_ptr() == wa.data_ptr()
    w = s.cast(a, torch.float32)  # gradients on: a fresh tensor autograd may keep
    assert w.data_ptr() != wa.data_ptr()


def test_weight_scratch_works_across_inference_mode_and_no_grad():
    # a first call under inference_mode (benchmarks, ComfyUI) then calls under no_grad (the sampler)
    s = WeightScratch()
    s.min_numel = 0
    w = torch.randn(10, 10).half()
    with torch.inference_mode():
        assert torch.equal(s.cast(w, torch.float32), w.float())
    with torch.no_grad():
        assert torch.equal(s.cast(w, torch.float32), w.float())
    with torch.inference_mode():
        assert torch.equal(s.cast(w * 2, torch.float32), (w * 2).float())


def test_two_models_never_share_a_cast_buffer():
    a, b = cast_operations(), cast_operations()
    assert a.Linear.scratch is not b.Linear.scratch and a.Linear.scratch is a.Conv2d.scratch


@pytest.mark.parametrize("grad", [False, True])
def test_tiny_unet_forward_same_with_and_without_autograd(grad):
    # the in-place SiLU / residual additions are used only without autograd; both give the same numbers
    model = load_tiny_unet()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 4, 2, 8, 8, generator=g)
    cond = dict(image=torch.randn(1, 1024, generator=g), dwpose=torch.rand(1, 3, 3, 64, 64, generator=g),
                randomref=torch.randn(1, 4, 1, 8, 8, generator=g))
    with torch.no_grad():
        ref = model(x, torch.tensor([500]), **cond)
    with torch.set_grad_enabled(grad):
        out = model(x, torch.tensor([500]), **cond)
    assert torch.equal(out.detach(), ref) if not grad else close(out.detach(), ref)
