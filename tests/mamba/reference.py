"""Independent float64 references for the temporal-Mamba tests.

Written from the Mamba-1 equations (Gu & Dao 2023, Alg. 2) as the plainest possible per-step
loops, sharing no code with ``unianimate_core.mamba``.
"""
from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F


def naive_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
               C: torch.Tensor) -> torch.Tensor:
    """u, delta (b, L, d); A (d, n); B, C (b, L, n) -> y (b, L, d); functional (autograd-able)."""
    b, L, d = u.shape
    h = torch.zeros(b, d, A.shape[1], dtype=u.dtype)
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h \
            + (delta[:, t] * u[:, t])[..., None] * B[:, t, None, :]
        ys.append((h * C[:, t, None, :]).sum(-1))
    return torch.stack(ys, 1)


def naive_mixer(sd: dict[str, torch.Tensor], x: torch.Tensor, d_state: int, dt_rank: int,
                d_conv: int) -> torch.Tensor:
    """Mamba-1 mixer from a mamba-ssm style state dict, float64, per-step conv and scan."""
    sd = {k: v.double() for k, v in sd.items()}
    x = x.double()
    b, L, _ = x.shape
    xz = x @ sd["in_proj.weight"].T
    xi, z = xz.chunk(2, -1)
    w = sd["conv1d.weight"][:, 0, :]                       # (E, k); tap k-1 is the current frame
    conv = torch.zeros_like(xi) + sd["conv1d.bias"]
    for t in range(L):
        for j in range(d_conv):
            src = t - (d_conv - 1 - j)
            if src >= 0:
                conv[:, t] += w[:, j] * xi[:, src]
    xc = F.silu(conv)
    dbl = xc @ sd["x_proj.weight"].T
    dt, Bm, Cm = dbl.split([dt_rank, d_state, d_state], -1)
    delta = F.softplus(dt @ sd["dt_proj.weight"].T + sd["dt_proj.bias"])
    A = -torch.exp(sd["A_log"])
    y = naive_scan(xc, delta, A, Bm, Cm) + xc * sd["D"]
    y = y * F.silu(z)
    return y @ sd["out_proj.weight"].T


def reference_selective_scan_fn(u, delta, A, B, C, D=None, z=None, delta_bias=None,
                                delta_softplus=False, return_last_state=False):
    """mamba-ssm's documented ``selective_scan_fn`` contract, channel-major:
    u, delta, z (b, d, L); A (d, n); B, C (b, n, L); D (d,) -> (b, d, L).

    The asserts are the checks of mamba-ssm's CUDA entry point (``selective_scan_cuda.fwd``):
    delta, z and variable B/C in u's dtype, A/D/delta_bias float32, last dim contiguous.
    """
    assert not return_last_state
    b, d, L = u.shape
    n = A.shape[1]
    assert delta.shape == (b, d, L) and delta.dtype == u.dtype, (delta.shape, delta.dtype, u.dtype)
    assert A.shape == (d, n) and A.dtype == torch.float32, (A.shape, A.dtype)
    for t in (B, C):
        assert t.shape == (b, n, L) and t.dtype == u.dtype, (t.shape, t.dtype)
    for t in (u, delta, B, C) + ((z,) if z is not None else ()):
        assert t.stride(-1) == 1
    assert D is None or (D.shape == (d,) and D.dtype == torch.float32)
    assert z is None or (z.shape == (b, d, L) and z.dtype == u.dtype)
    assert delta_bias is None or (delta_bias.shape == (d,) and delta_bias.dtype == torch.float32)
    assert all(t.device == u.device for t in (delta, A, B, C) + tuple(x for x in (D, z, delta_bias) if x is not None))
    dtype = u.dtype
    u, delta = u.double(), delta.double()
    if delta_bias is not None:
        delta = delta + delta_bias.double()[:, None]
    if delta_softplus:
        delta = F.softplus(delta)
    y = naive_scan(u.transpose(1, 2), delta.transpose(1, 2), A.double(),
                   B.double().transpose(1, 2), C.double().transpose(1, 2)).transpose(1, 2)
    if D is not None:
        y = y + u * D.double()[:, None]
    if z is not None:
        y = y * F.silu(z.double())
    return y.to(dtype)


def reference_causal_conv1d_fn(x, weight, bias=None, activation: Optional[str] = None):
    """causal-conv1d's documented contract: x (b, d, L), weight (d, width) -> (b, d, L).

    The asserts are the checks of its CUDA entry point: width 2..4, bias in weight's dtype,
    activation None / "silu" / "swish".
    """
    d, width = weight.shape
    assert x.dim() == 3 and x.shape[1] == d and 2 <= width <= 4, (x.shape, weight.shape)
    assert bias is None or (bias.shape == (d,) and bias.dtype == weight.dtype)
    assert activation in (None, "silu", "swish")
    assert x.stride(-1) == 1 or x.stride(1) == 1
    out = F.conv1d(F.pad(x, (width - 1, 0)), weight[:, None, :], bias, groups=x.shape[1])
    return F.silu(out) if activation == "silu" else out
