"""The pure-PyTorch selective scan against a naive per-step loop (values and gradients)."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from unianimate_core.mamba import MambaInputError
from unianimate_core.mamba.scan import resolve_chunk, scan_inference, selective_scan

from .reference import naive_scan


def _inputs(b: int, L: int, d: int, n: int, dtype=torch.float32, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(b, L, d, generator=g, dtype=dtype)
    delta = F.softplus(torch.randn(b, L, d, generator=g, dtype=dtype) - 1.0)
    A = -torch.exp(torch.randn(d, n, generator=g, dtype=dtype))
    B = torch.randn(b, L, n, generator=g, dtype=dtype)
    C = torch.randn(b, L, n, generator=g, dtype=dtype)
    return u, delta, A, B, C


@pytest.mark.parametrize("L", [1, 2, 17, 33])
def test_inference_scan_matches_naive_loop(L: int) -> None:
    args = _inputs(3, L, 8, 16)
    with torch.no_grad():
        y = selective_scan(*args)
    ref = naive_scan(*(a.double() for a in args))
    assert y.dtype == torch.float32 and y.shape == (3, L, 8)
    assert (y.double() - ref).abs().max().item() <= 1e-5


def test_half_input_keeps_float32_state() -> None:
    u, delta, A, B, C = _inputs(2, 9, 4, 16)
    y = scan_inference(u.bfloat16(), delta, A, B.bfloat16(), C.bfloat16())
    ref = naive_scan(u.bfloat16().double(), delta.double(), A.double(), B.bfloat16().double(),
                     C.bfloat16().double())
    assert y.dtype == torch.float32
    assert (y.double() - ref).abs().max().item() <= 1e-5


@pytest.mark.parametrize("chunk", [0, 1, 3, 7, 100])
def test_autograd_scan_matches_naive_loop_gradients(chunk: int) -> None:
    args = [a.requires_grad_() for a in _inputs(2, 7, 5, 4, seed=1)]
    ref_args = [a.detach().double().requires_grad_() for a in args]
    y = selective_scan(*args, chunk=chunk)
    ref = naive_scan(*ref_args)
    weight = torch.randn(ref.shape, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    (y * weight.float()).sum().backward()
    (ref * weight).sum().backward()
    assert (y.double() - ref).abs().max().item() <= 1e-5
    for name, a, r in zip("u delta A B C".split(), args, ref_args):
        err = (a.grad.double() - r.grad).abs().max().item()
        scale = r.grad.abs().max().item()
        assert err <= 1e-5 * max(1.0, scale), f"d{name}: {err} (scale {scale})"


def test_autograd_scan_passes_gradcheck() -> None:
    args = [a.requires_grad_() for a in _inputs(2, 6, 3, 4, dtype=torch.float64, seed=3)]
    assert torch.autograd.gradcheck(lambda *a: selective_scan(*a, chunk=4), args)


def test_resolve_chunk_uses_ceil_sqrt_and_clamps() -> None:
    assert [resolve_chunk(L, 0) for L in (1, 2, 16, 17, 33, 1024)] == [1, 2, 4, 5, 6, 32]
    assert resolve_chunk(5, 64) == 5 and resolve_chunk(50, 8) == 8


def test_shape_mismatch_is_a_clear_error() -> None:
    u, delta, A, B, C = _inputs(2, 5, 4, 3)
    with pytest.raises(MambaInputError, match="B must be"):
        selective_scan(u, delta, A, B[:, :4], C)
    with pytest.raises(MambaInputError, match="A must be"):
        selective_scan(u, delta, A.T, B, C)
