"""Pure-PyTorch selective scan (the SSM core of Mamba-1), for CPU and for GPUs without mamba-ssm.

Recurrence, per batch row b, channel d and state n (``A`` negative, ``delta`` > 0)::

    h_t = exp(delta_t * A) * h_{t-1} + delta_t * u_t * B_t        h_{-1} = 0
    y_t = sum_n h_t * C_t

``D * u`` and the ``SiLU(z)`` gate are applied by the caller, outside this file: they are
element-wise on (b, d, L) and autograd handles them cheaply.

Why a sequential time-major loop: the state ``h`` is (b, d, n) and is updated in place once per
frame, so memory is O(b * d * n) whatever the sequence length. Parallel/closed-form scans
materialise (b, d, L, n) tensors (16x the activations at d_state 16), which is exactly what the
temporal-Mamba option is meant to avoid, and were slower on CPU when measured.

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


def _time_major(t: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(b, L, x) -> contiguous (L, b, x) so that every per-frame slice is contiguous."""
    return t.to(dtype).transpose(0, 1).contiguous()


def _scan_steps(h: torch.Tensor, delta: torch.Tensor, du: torch.Tensor, A: torch.Tensor,
                B: torch.Tensor, C: Optional[torch.Tensor], y: Optional[torch.Tensor],
                decay: torch.Tensor, states: Optional[torch.Tensor] = None) -> None:
    """Run the recurrence in place over the frames of the given time-major slices.

    h: (b, d, n) state, updated in place. delta, du: (T, b, d); B, C: (T, b, n); A: (d, n).
    y: (T, b, d) output written in place (skipped when None). decay: (b, d, n) scratch.
    states: optional (T, b, d, n) buffer receiving h_t after each step (used by the backward).
    """
    for t in range(delta.shape[0]):
        torch.mul(delta[t].unsqueeze(-1), A, out=decay).exp_()
        h.mul_(decay).addcmul_(du[t].unsqueeze(-1), B[t].unsqueeze(1))
        if y is not None:
            torch.bmm(h, C[t].unsqueeze(-1), out=y[t].unsqueeze(-1))
        if states is not None:
            states[t].copy_(h)


def scan_inference(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                   C: torch.Tensor) -> torch.Tensor:
    """Selective scan without autograd support; memory O(b * d * n) besides inputs/outputs.

    u, delta: (b, L, d); A: (d, n); B, C: (b, L, n). Returns y: (b, L, d) in the compute dtype
    (float32 for half inputs).
    """
    _check_shapes(u, delta, A, B, C)
    y, _ = _forward(u, delta, A, B, C, store_every=0)
    return y.transpose(0, 1)


def _forward(u: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
             C: torch.Tensor, store_every: int) -> tuple[torch.Tensor, Optional[torch.Tensor]]:
    """Time-major forward. Returns y (L, b, d) in the compute dtype and, when store_every > 0,
    the states entering every chunk: (ceil(L / store_every), b, d, n)."""
    b, L, d = u.shape
    n = A.shape[1]
    dtype = _compute_dtype(torch.promote_types(u.dtype, delta.dtype))
    with torch.no_grad():
        dT = _time_major(delta, dtype)
        duT = dT * _time_major(u, dtype)
        BT, CT = _time_major(B, dtype), _time_major(C, dtype)
        Af = A.to(dtype)
        h = u.new_zeros(b, d, n, dtype=dtype)
        decay = torch.empty_like(h)
        y = u.new_empty(L, b, d, dtype=dtype)
        if store_every <= 0:
            _scan_steps(h, dT, duT, Af, BT, CT, y, decay)
            return y, None
        starts = range(0, L, store_every)
        saved = u.new_empty(len(starts), b, d, n, dtype=dtype)
        for i, s in enumerate(starts):
            e = min(L, s + store_every)
            saved[i].copy_(h)
            _scan_steps(h, dT[s:e], duT[s:e], Af, BT[s:e], CT[s:e], y[s:e], decay)
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
        return y.transpose(0, 1)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_y: torch.Tensor):
        u, delta, A, B, C, saved = ctx.saved_tensors
        K = ctx.chunk
        grads = _backward(u, delta, A, B, C, saved, grad_y, K)
        gu, gdelta, gA, gB, gC = grads
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
    Returns time-major-free gradients shaped like the inputs (compute dtype).
    """
    b, L, d = u.shape
    n = A.shape[1]
    dtype = _compute_dtype(torch.promote_types(u.dtype, delta.dtype))
    dT = _time_major(delta, dtype)
    uT = _time_major(u, dtype)
    duT = dT * uT
    BT, CT = _time_major(B, dtype), _time_major(C, dtype)
    gyT = _time_major(grad_y, dtype)
    Af = A.to(dtype)

    g = u.new_zeros(b, d, n, dtype=dtype)          # adjoint of the state
    gA_acc = torch.zeros_like(g)                   # sum_t g(delta_t A) * delta_t, per batch row
    decay = torch.empty_like(g)
    tmp = torch.empty_like(g)
    states = u.new_empty(K, b, d, n, dtype=dtype)  # h_t of the current chunk
    g_du = u.new_empty(L, b, d, dtype=dtype)
    g_dA = u.new_empty(L, b, d, dtype=dtype)       # sum_n g(delta_t A) * A
    gB = u.new_empty(L, b, n, dtype=dtype)
    gC = u.new_empty(L, b, n, dtype=dtype)

    for ci in range(saved.shape[0] - 1, -1, -1):
        s = ci * K
        e = min(L, s + K)
        h = saved[ci].clone()
        _scan_steps(h, dT[s:e], duT[s:e], Af, BT[s:e], None, None, decay, states[: e - s])
        for t in range(e - 1, s - 1, -1):
            k = t - s
            h_t = states[k]
            h_prev = states[k - 1] if k > 0 else saved[ci]
            gy = gyT[t]
            # y_t = sum_n h_t C_t
            torch.bmm(gy.unsqueeze(1), h_t, out=gC[t].unsqueeze(1))
            g.addcmul_(gy.unsqueeze(-1), CT[t].unsqueeze(1))
            # h_t = a_t h_{t-1} + (delta u)_t B_t
            torch.bmm(duT[t].unsqueeze(1), g, out=gB[t].unsqueeze(1))
            torch.bmm(g, BT[t].unsqueeze(-1), out=g_du[t].unsqueeze(-1))
            torch.mul(dT[t].unsqueeze(-1), Af, out=decay).exp_()
            torch.mul(g, h_prev, out=tmp).mul_(decay)          # grad wrt delta_t * A
            gA_acc.addcmul_(tmp, dT[t].unsqueeze(-1))
            torch.sum(tmp.mul_(Af), dim=-1, out=g_dA[t])
            g.mul_(decay)                                       # propagate to h_{t-1}

    g_delta = g_dA.addcmul_(g_du, uT)
    g_u = g_du.mul_(dT)
    gA = gA_acc.sum(0)
    return (g_u.transpose(0, 1), g_delta.transpose(0, 1), gA, gB.transpose(0, 1),
            gC.transpose(0, 1))


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
