"""Spatial and temporal transformers (attention through an injectable ``attention_fn``)."""
from __future__ import annotations

import inspect
from typing import Any, Callable, Optional

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import nn

from ..ops import AttentionFn, sdpa_attention
from .layers import run_norm
from .options import TransformerOptions, extra_options, patch_list, replace_patch


def _accepts_options(fn: Callable) -> bool:
    """Whether ``fn`` can be called with ``transformer_options=`` (named, or through ``**kwargs``)."""
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.kind is p.VAR_KEYWORD or p.name == "transformer_options" for p in params)


class Attention(nn.Module):
    """Multi-head (cross-)attention. Keys: ``to_q``, ``to_k``, ``to_v`` (no bias), ``to_out.0``.

    Shapes: x (B, N, query_dim), context (B, M, context_dim) or None (self-attention) -> (B, N, query_dim).
    """

    def __init__(
        self,
        query_dim: int,
        heads: int,
        head_dim: int,
        ops: Any,
        context_dim: Optional[int] = None,
        attention_fn: Optional[AttentionFn] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        inner = heads * head_dim
        context_dim = query_dim if context_dim is None else context_dim
        kw = dict(device=device, dtype=dtype)
        self.heads = heads
        self.head_dim = head_dim
        self.attention_fn = attention_fn or sdpa_attention
        self._fn_takes_options = _accepts_options(self.attention_fn)
        self.to_q = ops.Linear(query_dim, inner, bias=False, **kw)
        self.to_k = ops.Linear(context_dim, inner, bias=False, **kw)
        self.to_v = ops.Linear(context_dim, inner, bias=False, **kw)
        self.to_out = nn.Sequential(ops.Linear(inner, query_dim, **kw), nn.Dropout(0.0))

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None, value: Optional[torch.Tensor] = None,
                transformer_options: Optional[TransformerOptions] = None) -> torch.Tensor:
        """``value`` defaults to ``context``, ``context`` to ``x`` (self-attention)."""
        context = x if context is None else context
        value = context if value is None else value
        return self.to_out(self.attend(self.to_q(x), self.to_k(context), self.to_v(value), transformer_options))

    def attend(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
               transformer_options: Optional[TransformerOptions] = None) -> torch.Tensor:
        """The attention itself on projected q/k/v; the options reach ``attention_fn`` when it takes them."""
        if transformer_options is not None and self._fn_takes_options:
            return self.attention_fn(q, k, v, self.heads, transformer_options=transformer_options)
        return self.attention_fn(q, k, v, self.heads)

    def replaced(self, fn: Callable, x: torch.Tensor, context: torch.Tensor, value: torch.Tensor,
                 extra: dict) -> torch.Tensor:
        """A ``patches_replace`` function instead of the attention (projections kept)."""
        return self.to_out(fn(self.to_q(x), self.to_k(context), self.to_v(value), extra))


class GEGLU(nn.Module):
    """``proj`` to 2x hidden, value * GELU(gate). Key: ``proj.*``."""

    def __init__(self, dim_in: int, dim_out: int, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.proj = ops.Linear(dim_in, dim_out * 2, device=device, dtype=dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        value, gate = self.proj(x).chunk(2, dim=-1)
        return value * F.gelu(gate)


class FeedForward(nn.Module):
    """GEGLU feed-forward, 4x hidden. Keys: ``net.0.proj``, ``net.2``."""

    def __init__(self, dim: int, ops: Any, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.net = nn.Sequential(GEGLU(dim, 4 * dim, ops, **kw), nn.Dropout(0.0), ops.Linear(4 * dim, dim, **kw))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """Self-attention, (cross-)attention, GEGLU feed-forward, each pre-LayerNorm with a residual.

    Registration order (attn1, ff, attn2, norm1..3) matches the official state-dict order.
    With ``context=None`` the second attention is a second self-attention (temporal layers,
    docs/official_behaviour.md#temporal-attention).
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        head_dim: int,
        ops: Any,
        context_dim: Optional[int] = None,
        attention_fn: Optional[AttentionFn] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        self.attn1 = Attention(dim, heads, head_dim, ops, None, attention_fn, **kw)
        self.ff = FeedForward(dim, ops, **kw)
        self.attn2 = Attention(dim, heads, head_dim, ops, context_dim, attention_fn, **kw)
        self.norm1 = ops.LayerNorm(dim, **kw)
        self.norm2 = ops.LayerNorm(dim, **kw)
        self.norm3 = ops.LayerNorm(dim, **kw)

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None,
                transformer_options: Optional[TransformerOptions] = None, patchable: bool = True) -> torch.Tensor:
        """``transformer_options`` (see ``options.py``): patches apply when ``patchable`` (spatial blocks)."""
        to = transformer_options
        if to is None or not patchable:
            x = x + self.attn1(run_norm(self.norm1, x), transformer_options=to)
            x = x + self.attn2(run_norm(self.norm2, x), context, transformer_options=to)
            return x + self.ff(run_norm(self.norm3, x))
        extra = extra_options(to, self.attn1.heads, self.attn1.head_dim)

        n = run_norm(self.norm1, x)
        ctx1 = val1 = None
        for p in patch_list(to, "attn1_patch"):
            if ctx1 is None:
                ctx1 = n
            val1 = ctx1 if val1 is None else val1
            n, ctx1, val1 = p(n, ctx1, val1, extra)
        fn = replace_patch(to, "attn1")
        if fn is not None:
            n = self.attn1.replaced(fn, n, n if ctx1 is None else ctx1, n if val1 is None else val1, extra)
        else:
            n = self.attn1(n, ctx1, val1, transformer_options=to)
        for p in patch_list(to, "attn1_output_patch"):
            n = p(n, extra)
        x = x + n
        for p in patch_list(to, "middle_patch"):
            x = p(x, extra)

        n = run_norm(self.norm2, x)
        ctx2 = n if context is None else context
        val2 = None
        for p in patch_list(to, "attn2_patch"):
            val2 = ctx2 if val2 is None else val2
            n, ctx2, val2 = p(n, ctx2, val2, extra)
        fn = replace_patch(to, "attn2")
        if fn is not None:
            n = self.attn2.replaced(fn, n, ctx2, ctx2 if val2 is None else val2, extra)
        else:
            n = self.attn2(n, ctx2, val2, transformer_options=to)
        for p in patch_list(to, "attn2_output_patch"):
            n = p(n, extra)
        x = x + n
        return x + self.ff(run_norm(self.norm3, x))


class SpatialTransformer(nn.Module):
    """Per-frame attention over the h*w tokens with cross-attention to the 81-token context.

    Keys: ``norm`` (GroupNorm, eps 1e-6), ``proj_in``/``proj_out`` (Linear), ``transformer_blocks.0``.
    Shapes: x (B*F, C, h, w), context (B*F, 81, context_dim) -> (B*F, C, h, w).
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        head_dim: int,
        context_dim: int,
        ops: Any,
        attention_fn: Optional[AttentionFn] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        inner = heads * head_dim
        self.norm = ops.GroupNorm(32, channels, eps=1e-6, **kw)
        self.proj_in = ops.Linear(channels, inner, **kw)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, head_dim, ops, context_dim, attention_fn, **kw)]
        )
        self.proj_out = ops.Linear(inner, channels, **kw)

    def forward(self, x: torch.Tensor, context: torch.Tensor,
                transformer_options: Optional[TransformerOptions] = None) -> torch.Tensor:
        _, _, h, w = x.shape
        if transformer_options is not None:
            transformer_options["activations_shape"] = list(x.shape)
        y = rearrange(run_norm(self.norm, x), "n c h w -> n (h w) c")
        y = self.proj_in(y)
        for i, block in enumerate(self.transformer_blocks):
            if transformer_options is not None:
                transformer_options["block_index"] = i
            y = block(y, context, transformer_options)
        y = self.proj_out(y)
        return x + rearrange(y, "n (h w) c -> n c h w", h=h, w=w)


class TemporalTransformer(nn.Module):
    """Attention across the frames at each spatial position; no positional encoding
    (docs/official_behaviour.md#temporal-attention).

    Keys: ``norm`` (GroupNorm over the whole 5-D sample, eps 1e-6), ``proj_in``/``proj_out`` (Conv1d
    k=1), ``transformer_blocks.0`` whose two attentions are both self-attention.
    Shapes: (B, C, F, h, w) -> (B, C, F, h, w); F includes the reference slot.
    """

    def __init__(
        self,
        channels: int,
        heads: int,
        head_dim: int,
        ops: Any,
        attention_fn: Optional[AttentionFn] = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__()
        kw = dict(device=device, dtype=dtype)
        inner = heads * head_dim
        self.norm = ops.GroupNorm(32, channels, eps=1e-6, **kw)
        self.proj_in = ops.Conv1d(channels, inner, 1, **kw)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, head_dim, ops, None, attention_fn, **kw)]
        )
        self.proj_out = ops.Conv1d(inner, channels, 1, **kw)

    def forward(self, x: torch.Tensor, transformer_options: Optional[TransformerOptions] = None) -> torch.Tensor:
        """``transformer_options`` only reach ``attention_fn`` here (no attention patches on frames)."""
        b, _, f, h, w = x.shape
        y = rearrange(run_norm(self.norm, x), "b c f h w -> (b h w) c f")
        y = rearrange(self.proj_in(y), "n c f -> n f c")
        for block in self.transformer_blocks:
            y = block(y, transformer_options=transformer_options, patchable=False)
        y = self.proj_out(rearrange(y, "n f c -> n c f"))
        return x + rearrange(y, "(b h w) c f -> b c f h w", b=b, h=h, w=w)
