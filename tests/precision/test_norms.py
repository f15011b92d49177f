"""run_norm: GroupNorm/LayerNorm in half precision with every layer factory the core can be handed.

Reference: ``torch.nn.functional`` norms in float64 on the same (already rounded) input with the
weights the layer holds (after its weight function, if any). Tolerance, elementwise:
``eps(dtype)/2 * |ref| + 1e-5 * max|ref|`` - rounding the float32-accurate result to the output
dtype moves it by at most half an ulp (eps/2 relative); 1e-5 of the output scale bounds the
float32 arithmetic of mean/variance/affine (a float32 sum of 2e5 terms is accurate to ~1e-6
relative in the pairwise/vectorised kernels). A kernel that accumulated in 16 bits would miss by
orders of magnitude (see the first test).
"""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from unianimate_core import precision
from unianimate_core.errors import PrecisionError
from unianimate_core.unet.layers import run_norm

HALF = [torch.float16, torch.bfloat16]


def tol(ref: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    return torch.finfo(dtype).eps / 2 * ref.abs() + 1e-5 * ref.abs().max()


def reference(norm: nn.Module, x: torch.Tensor, weight=None, bias=None) -> torch.Tensor:
    w = (norm.weight if weight is None else weight).detach().double()
    b = (norm.bias if bias is None else bias).detach().double()
    if isinstance(norm, nn.GroupNorm):
        return F.group_norm(x.double(), norm.num_groups, w, b, norm.eps)
    return F.layer_norm(x.double(), norm.normalized_shape, w, b, norm.eps)


def make_input(shape, dtype, seed=0, offset=40.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g) * 3 + offset).to(dtype)


def init_affine(norm: nn.Module, seed: int = 1) -> nn.Module:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        norm.weight.copy_(1 + 0.2 * torch.randn(norm.weight.shape, generator=g))
        norm.bias.copy_(0.2 * torch.randn(norm.bias.shape, generator=g))
    return norm


@pytest.mark.parametrize("dtype", HALF)
def test_cpu_norm_kernels_accumulate_half_inputs_in_fp32(dtype):
    """The premise of running norms natively on the CPU: one group holds 10 channels x 33 frames x 24 x 32
    pixels = 253 440 values around 40, whose sum (1e7) overflows fp16 (max 65504) and has no integer
    precision in bf16 - a kernel accumulating in 16 bits could not come within an ulp."""
    x = make_input((1, 320, 33, 24, 32), dtype)
    w = (1 + 0.2 * torch.randn(320)).to(dtype)
    b = (0.2 * torch.randn(320)).to(dtype)
    out = F.group_norm(x, 32, w, b, 1e-6)
    ref = F.group_norm(x.double(), 32, w.double(), b.double(), 1e-6)
    assert out.dtype == dtype
    assert bool(((out.double() - ref).abs() <= tol(ref, dtype)).all())
    xl = make_input((2, 2048, 1280), dtype, seed=2)
    ln = F.layer_norm(xl, (1280,), w[:1].expand(1280).contiguous(), b[:1].expand(1280).contiguous(), 1e-5)
    ref_ln = F.layer_norm(xl.double(), (1280,), w[:1].double().expand(1280), b[:1].double().expand(1280), 1e-5)
    assert bool(((ln.double() - ref_ln).abs() <= tol(ref_ln, dtype)).all())


def factories(fake_comfy):
    ops = fake_comfy["comfy.ops"]
    return {"torch.nn": nn, "disable_weight_init": ops.disable_weight_init, "manual_cast": ops.manual_cast}


NORMS = {"GroupNorm": (lambda f, dt: f.GroupNorm(32, 320, eps=1e-6, dtype=dt), (2, 320, 5, 6, 7)),
         "LayerNorm": (lambda f, dt: f.LayerNorm(320, dtype=dt), (3, 40, 320))}


SAME = [(torch.float32, torch.float32), (torch.float16, torch.float16), (torch.bfloat16, torch.bfloat16)]
CAST = [(torch.float16, torch.float32), (torch.bfloat16, torch.float16), (torch.float8_e4m3fn, torch.float16),
        (torch.float8_e4m3fn, torch.bfloat16), (torch.float8_e5m2, torch.float32)]
#: (factory, weight dtype, compute dtype): plain and disable_weight_init layers compute in their weight
#: dtype (a mismatched fp32 input is covered too); casting layers take any storage/compute pair.
COMBOS = ([("torch.nn", w, c) for w, c in SAME + [(torch.float16, torch.float32)]]
          + [("disable_weight_init", w, c) for w, c in SAME + [(torch.bfloat16, torch.float32)]]
          + [("manual_cast", w, c) for w, c in SAME + CAST])


@pytest.mark.parametrize("upcast_everywhere", [False, True], ids=["native_kernels", "fp32_round_trip"])
@pytest.mark.parametrize("kind", list(NORMS))
@pytest.mark.parametrize("factory, weight_dtype, compute", COMBOS)
def test_run_norm_with_every_factory(fake_comfy, monkeypatch, upcast_everywhere, kind, factory, weight_dtype, compute):
    """Weights stored in one dtype, activations in another, for each layer factory; ``fp32_round_trip``
    is the path of devices whose kernels are not known to accumulate in fp32 (MPS, XPU...)."""
    if upcast_everywhere:
        monkeypatch.setattr(precision, "NORM_KERNELS_ACCUMULATE_IN_FP32", frozenset())
    build, shape = NORMS[kind]
    norm = init_affine(build(factories(fake_comfy)[factory], torch.float32)).to(weight_dtype)
    x = make_input(shape, compute, offset=5.0)
    out = run_norm(norm, x)
    assert out.dtype == compute and out.shape == x.shape
    ref = reference(norm, x)
    assert bool(((out.double() - ref).abs() <= tol(ref, compute)).all())


@pytest.mark.parametrize("dtype", HALF)
def test_weight_functions_of_comfy_layers_are_applied(fake_comfy, dtype):
    """A LoRA / low-VRAM patch on a disable_weight_init norm (ComfyUI then casts and patches per call) must
    reach the output: the reference uses the patched weights, and the unpatched result is far off."""
    ops = fake_comfy["comfy.ops"]
    norm = init_affine(ops.disable_weight_init.GroupNorm(32, 320, eps=1e-6)).to(dtype)
    delta = 0.3 * torch.ones(320)
    norm.weight_function = [lambda w: (w.float() + delta).to(w.dtype)]
    norm.bias_function = [lambda b: (b.float() - delta).to(b.dtype)]
    x = make_input((1, 320, 4, 6, 6), dtype, offset=2.0)
    out = run_norm(norm, x).double()
    ref = reference(norm, x, (norm.weight.float() + delta).to(dtype), (norm.bias.float() - delta).to(dtype))
    assert bool(((out - ref).abs() <= tol(ref, dtype)).all())
    assert (out - reference(norm, x)).abs().max() > 0.2


def test_layer_norm_without_affine_parameters(fake_comfy):
    for f in factories(fake_comfy).values():
        norm = f.LayerNorm(64, elementwise_affine=False)
        x = make_input((4, 64), torch.float16, offset=1.0)
        ref = F.layer_norm(x.double(), (64,))
        assert bool(((run_norm(norm, x).double() - ref).abs() <= tol(ref, torch.float16)).all())


def test_compute_dtype_checks_name_the_fix():
    with pytest.raises(PrecisionError, match="storage format.*fp16/bf16"):
        precision.check_compute_dtype(torch.float8_e4m3fn)
    precision.check_compute_dtype(torch.bfloat16, "cpu")
    precision.check_weight_dtype(torch.float8_e5m2, "cpu")
    with pytest.raises(PrecisionError, match="fp8"):
        precision.check_weight_dtype(torch.int8)


def test_bf16_on_a_gpu_without_it_is_refused_with_the_alternative(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: (7, 5))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=None: "Tesla T4")
    with pytest.raises(PrecisionError, match=r"Tesla T4 \(compute capability 7.5\).*Use fp16"):
        precision.check_compute_dtype(torch.bfloat16, "cuda")


def test_fp8_on_mps_is_refused():
    with pytest.raises(PrecisionError, match="MPS.*fp16"):
        precision.check_weight_dtype(torch.float8_e4m3fn, "mps")
