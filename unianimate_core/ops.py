"""Layer factory and attention function used to build the model.

The model never instantiates ``torch.nn.Linear`` & co directly: it asks an *operations* object.
ComfyUI passes ``comfy.ops.manual_cast`` (or ``disable_weight_init``/fp8 variants) here, which gives
it weight-dtype casting, fp8 storage and per-module partial loading for free; standalone use gets
plain ``torch.nn``. The same goes for attention: ComfyUI can hand in its dispatcher
(``optimized_attention``: SDPA, xformers, sage...), standalone use gets SDPA.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

import torch
import torch.nn.functional as F
from torch import nn

#: ``attention_fn(q, k, v, heads) -> out``; q/k/v/out are (batch, tokens, heads*head_dim).
AttentionFn = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor]


class Operations(Protocol):
    """The layer classes the model needs (``torch.nn`` satisfies this protocol)."""

    Linear: type[nn.Linear]
    Conv1d: type[nn.Conv1d]
    Conv2d: type[nn.Conv2d]
    Conv3d: type[nn.Conv3d]
    GroupNorm: type[nn.GroupNorm]
    LayerNorm: type[nn.LayerNorm]


def default_operations() -> Any:
    """Plain PyTorch layers."""
    return nn


def sdpa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int) -> torch.Tensor:
    """Multi-head attention through ``scaled_dot_product_attention``.

    Shapes: q (B, Nq, H*D), k/v (B, Nk, H*D) -> (B, Nq, H*D). Scale 1/sqrt(D), no mask, no dropout:
    this is exactly the official ``memory_efficient_attention`` call, minus the xformers requirement.
    """
    b, nq, inner = q.shape
    d = inner // heads
    q = q.view(b, nq, heads, d).transpose(1, 2)
    k = k.view(b, k.shape[1], heads, d).transpose(1, 2)
    v = v.view(b, v.shape[1], heads, d).transpose(1, 2)
    out = F.scaled_dot_product_attention(q, k, v)
    return out.transpose(1, 2).reshape(b, nq, inner)
