"""Pure-PyTorch selective scan (the SSM core of Mamba-1), for CPU and for GPUs without mamba-ssm.

Recurrence, per batch row b, channel d and state n (``A`` negative, ``delta`` > 0)::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * u_t * B_t        h_{-1} = 0
    y_t = sum_n h_t * C_t

``D * u`` and the ``SiLU(z)`` gate are applied by the caller, outside this file: they are
element-wise on (b, d, L) and autograd handles them cheaply.

Why a sequential loop: the state ``h`` is (b, d, n) and is updated in place once per frame,
reading each frame's (b, d) slices straight from the (b, L, d) inputs, so the scan allocates
only its output plus O(b * d * n) scratch whatever the sequence length (time-major copies of
the inputs were measured ~0-20 % faster on CPU but cost 2-3 extra (b, L, d) tensors).
Parallel/closed-form scans materialise (b, d, L, n) tensors (16x the activations at d_state
16), which is exactly what the temporal-Mamba option is meant to avoid, and were slower on CPU.

Autograd: an in-place loop cannot be differentiated by autograd, and a functional loop would keep
every h_t (O(L * b * d * n)). ``selective_scan`` therefore uses a hand-written backward: the
forward stores h only every ``chunk`` frames, the backward recomputes the states of one chunk at
a time and runs the adjoint recurrence in reverse. Stored state memory is
O((L / chunk + chunk) * b * d * n), i.e. O(sqrt(L) * b * d * n) with the default chunk.

Computation is in float32 for half/bfloat16 inputs (float64 stays float64, for gradcheck), and
the output stays in that compute dtype so that the caller applies ``D * u`` and the gate in
float32 too, as mamba-ssm's kernel does.
"""
from __future__ import annotations

import math
from typing import Optional

import torch

from .errors import MambaInputError as ScanShapeError


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for half types (the state must not be kept in 16 bits), else the input dtype."""
    return torch.promote_types(dtype, torch.float32)


def _check_shapes(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                  C: torch.Tensor) -> None:
    if u.dim() != 3:
        raise ScanShapeError(f"selective_scan expects u of shape (batch, length, d_inner), "
                             f"got {tuple(u.shape)}.")
    b, L, d = u.shape
    if delta.shape != u.shape:
        raise ScanShapeError(f"delta must have the shape of u {tuple(u.shape)}, "
                             f"got {tuple(delta.shape)}.")
    if A.dim() != 2 or A.shape[0] != d:
        raise ScanShapeError(f"A must be (d_inner={d}, d_state), got {tuple(A.shape)}.")
    n = A.shape[1]
    for name, t in (("B", B), ("C", C)):
        if t.shape != (b, L, n):
            raise ScanShapeError(f"{name} must be (batch, length, d_state) = {(b, L, n)}, "
                                 f"got {tuple(t.shape)}.")


def resolve_chunk(length: int, chunk: int) -> int:
    """Frames between stored states; 0 means ceil(sqrt(L)) (minimises L/K + K)."""
    if chunk <= 0:
        chunk = math.isqrt(max(length - 1, 0)) + 1
    return max(1, min(chunk, max(length, 1)))


def _step(x: torch.Tensor, t: int, dtype: torch.dtype) -> torch.Tensor:
    """Frame t of a (b, L, x) tensor as a (b, x) view, cast to the compute dtype if needed."""
    return x[:, t].to(dtype)


class _Workspace:
    """Per-call scratch buffers of the recurrence: O(b * d * n), independent of L."""

    def __init__(self, b: int, d: int, n: int, like: torch.Tensor, dtype: torch.dtype) -> None:
        self.decay = like.new_empty(b, d, n, dtype=dtype)
        self.du = like.new_empty(b, d, dtype=dtype)
        self.y = like.new_empty(b, d, 1, dtype=dtype)


def _scan_steps(h: torch.Tensor, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor,
                B: torch.Tensor, C: Optional[torch.Tensor], y: Optional[torch.Tensor],
                start: int, stop: int, ws: _Workspace,
                states: Optional[torch.Tensor] = None) -> None:
    """Advance the state h (b, d, n) in place over frames [start, stop).

    u, delta: (b, L, d); B, C: (b, L, n); A: (d, n) in the compute dtype. y: (b, L, d) output
    written frame by frame (skipped when None). states: optional (stop - start, b, d, n)
    buffer receiving h_t after each step (the backward's recomputation).
    """
    dtype = h.dtype
    for t in range(start, stop):
        d_t = _step(delta, t, dtype)
        torch.mul(d_t.unsqueeze(-1), A, out=ws.decay).exp_()
        torch.mul(d_t, _step(u, t, dtype), out=ws.du)
        h.mul_(ws.decay).addcmul_(ws.du.unsqueeze(-1), _step(B, t, dtype).unsqueeze(1))
        if y is not None:
            torch.bmm(h, _step(C, t, dtype).unsqueeze(-1), out=ws.y)
            y[:, t].copy_(ws.y.squeeze(-1))
        if states is not None:
            states[t - start].copy_(h)


def scan_inference(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor) -> torch.Tensor:
    """Selective scan without autograd support; memory O(b * d * n) besides inputs/outputs.

    u, delta: (b, L, d); A: (d, n); B, C: (b, L, n). Returns y: (b, L, d) in the compute dtype
    (float32 for half inputs).
    """
    _check_shapes(u, delta, A, B, C)
    y, _ = _forward(u, delta, A, B, C, store_every=0)
    return y


def _forward(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             C: torch.Tensor, store_every: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Returns y (b, L, d) in the compute dtype and, when store_every > 0, the states entering
    every chunk of ``store_every`` frames: (ceil(L / store_every), b, d, n)."""
    b, L, d = u.shape
    n = A.shape[1]
    dtype = _compute_dtype(torch.promote_types(u.dtype, delta.dtype))
    with torch.no_grad():
        Af = A.to(dtype)
        h = u.new_zeros(b, d, n, dtype=dtype)
        ws = _Workspace(b, d, n, u, dtype)
        y = u.new_empty(b, L, d, dtype=dtype)
        if store_every <= 0:
            _scan_steps(h, u, delta, Af, B, C, y, 0, L, ws)
            return y, None
        starts = range(0, L, store_every)
        saved = u.new_empty(len(starts), b, d, n, dtype=dtype)
        for i, s in enumerate(starts):
            saved[i].copy_(h)
            _scan_steps(h, u, delta, Af, B, C, y, s, min(L, s + store_every), ws)
    return y, saved


class _SelectiveScan(torch.autograd.Function):
    """Selective scan with a chunk-recomputing hand-written backward (see module docstring)."""

    @staticmethod
    def forward(ctx, u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                C: torch.Tensor, chunk: int) -> torch.Tensor:
        K = resolve_chunk(u.shape[1], chunk)
        y, saved = _forward(u, delta, A, B, C, store_every=K)
        ctx.save_for_backward(u, delta, A, B, C, saved)
        ctx.chunk = K
        return y

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        u, delta, A, B, C, saved = ctx.saved_tensors
        gu, gdelta, gA, gB, gC = _backward(u, delta, A, B, C, saved, grad_y, ctx.chunk)
        return (gu.to(u.dtype), gdelta.to(delta.dtype), gA.to(A.dtype), gB.to(B.dtype),
                gC.to(C.dtype), None)


def _backward(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
              C: torch.Tensor, saved: torch.Tensor, grad_y: torch.Tensor, K: int
              ) -> tuple[torch.Tensor, ...]:
    """Adjoint recurrence, one chunk at a time from the end.

    With a_t = exp(delta_t A) and g_t the adjoint of h_t (all (b, d, n)):
        g_t   = gy_t C_t + a_{t+1} g_{t+1}
        gC_t  = sum_d gy_t h_t          gB_t = sum_d g_t delta_t u_t
        g(delta_t u_t) = sum_n g_t B_t  g(delta_t A) = g_t h_{t-1} a_t
    Besides the gradients themselves, memory is O((L / K + K) * b * d * n).
    Returns gradients shaped like the inputs, in the compute dtype.
    """
    b, L, d = u.shape
    n = A.shape[1]
    dtype = _compute_dtype(torch.promote_types(u.dtype, delta.dtype))
    Af = A.to(dtype)
    ws = _Workspace(b, d, n, u, dtype)
    g = u.new_zeros(b, d, n, dtype=dtype)          # adjoint of the state
    gA_acc = torch.zeros_like(g)                   # sum_t g(delta_t A) * delta_t per batch row
    tmp = torch.empty_like(g)
    g_du = u.new_empty(b, d, 1, dtype=dtype)       # grad wrt delta_t * u_t
    g_dA = u.new_empty(b, d, dtype=dtype)          # sum_n g(delta_t A) * A
    states = u.new_empty(min(K, L), b, d, n, dtype=dtype)  # h_t of the current chunk
    g_u = u.new_empty(b, L, d, dtype=dtype)
    g_delta = u.new_empty(b, L, d, dtype=dtype)
    gB = u.new_empty(b, L, n, dtype=dtype)
    gC = u.new_empty(b, L, n, dtype=dtype)

    for ci in range(saved.shape[0] - 1, -1, -1):
        s = ci * K
        e = min(L, s + K)
        h = saved[ci].clone()
        _scan_steps(h, u, delta, Af, B, None, None, s, e, ws, states)
        for t in range(e - 1, s - 1, -1):
            k = t - s
            h_t = states[k]
            h_prev = states[k - 1] if k > 0 else saved[ci]
            gy = _step(grad_y, t, dtype)
            d_t, u_t = _step(delta, t, dtype), _step(u, t, dtype)
            # y_t = sum_n h_t C_t
            gC[:, t] = torch.bmm(gy.unsqueeze(1), h_t).squeeze(1)
            g.addcmul_(gy.unsqueeze(-1), _step(C, t, dtype).unsqueeze(1))
            # h_t = a_t h_{t-1} + (delta u)_t B_t
            torch.mul(d_t, u_t, out=ws.du)
            gB[:, t] = torch.bmm(ws.du.unsqueeze(1), g).squeeze(1)
            torch.bmm(g, _step(B, t, dtype).unsqueeze(-1), out=g_du)
            torch.mul(d_t.unsqueeze(-1), Af, out=ws.decay).exp_()
            torch.mul(g, h_prev, out=tmp).mul_(ws.decay)       # grad wrt delta_t * A
            gA_acc.addcmul_(tmp, d_t.unsqueeze(-1))
            torch.sum(tmp.mul_(Af), dim=-1, out=g_dA)
            g_u[:, t] = g_du.squeeze(-1) * d_t
            g_delta[:, t] = torch.addcmul(g_dA, g_du.squeeze(-1), u_t)
            g.mul_(ws.decay)                                    # propagate to h_{t-1}
    return g_u, g_delta, gA_acc.sum(0), gB, gC


def selective_scan(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor, chunk: int = 0) -> torch.Tensor:
    """y_t = sum_n h_t C_t for the Mamba-1 recurrence; differentiable when needed.

    u, delta: (b, L, d) (delta already positive, i.e. after softplus); A: (d, n) negative;
    B, C: (b, L, n). Returns (b, L, d) in the compute dtype (float32 for half inputs).
    Without autograd (inference, ``torch.no_grad``) this is the in-place O(b*d*n) loop; with
    autograd it keeps states every ``chunk`` frames (0 = ceil(sqrt(L))) and recomputes the rest.
    """
    _check_shapes(u, delta, A, B, C)
    needs_grad = torch.is_grad_enabled() and any(
        t.requires_grad for t in (u, delta, A, B, C))
    if not needs_grad:
        return scan_inference(u, delta, A, B, C)
    return _SelectiveScan.apply(u, delta, A, B, C, chunk)
