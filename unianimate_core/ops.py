"""Layer factory and attention function used to build the model.

The model never instantiates ``torch.nn.Linear`` & co directly: it asks an *operations* object.
ComfyUI passes ``comfy.ops.manual_cast`` (or ``disable_weight_init``/fp8 variants) here, which gives
it weight-dtype casting, fp8 storage and per-module partial loading for free; standalone use gets
plain ``torch.nn``. The same goes for attention: ComfyUI can hand in its dispatcher
(``optimized_attention``: SDPA, xformers, sage...), standalone use gets SDPA.
"""
from __future__ import annotations

from typing import Any, Callable, Optional, Protocol

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


# ------------------------------------------------------------------------------ weight-cast layers
class WeightScratch:
    """One reusable float buffer per (device, dtype) for the per-call weight casts of a model's layers.

    Casting a weight into freshly allocated memory costs a page fault per 4 KiB on the CPU (the allocator
    returns large blocks to the system when they are freed): measured 4-5x slower than casting into
    memory that is reused. Used only on the CPU and only while no gradient is recorded (autograd keeps
    the cast weight for the backward pass; CUDA has its own caching allocator). One layer call uses the
    buffer at a time: the cast weight lives only inside that call.
    """

    #: smaller weights are cast into fresh memory (the allocator reuses small blocks anyway)
    min_numel = 65536

    def __init__(self) -> None:
        self._buffers: dict[tuple[torch.device, torch.dtype], torch.Tensor] = {}

    def cast(self, w: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        if w.dtype == dtype:
            return w
        if w.device.type != "cpu" or torch.is_grad_enabled() or w.numel() < self.min_numel:
            return w.to(dtype)
        key = (w.device, dtype)
        buf = self._buffers.get(key)
        if buf is None or buf.numel() < w.numel():
            # a normal tensor even when the first call runs under inference_mode: an inference tensor could
            # not be written by later calls under no_grad (the sampler's mode)
            with torch.inference_mode(False):
                buf = self._buffers[key] = torch.empty(w.numel(), dtype=dtype, device=w.device)
        return buf[: w.numel()].view(w.shape).copy_(w)


class _CastWeights:
    """Mixin: cast the stored weight and bias to the input's dtype on every call.

    The plain-PyTorch counterpart of ComfyUI's ``manual_cast`` layers: weights can be *stored* in
    fp16/bf16 (half the memory) while activations are *computed* in fp32. Only the dtype changes, never
    the device. ``comfy_cast_weights`` tells :func:`unianimate_core.precision.casts_own_weights` that
    the layer casts by itself (the same attribute ComfyUI's layers carry). ``scratch`` (set by
    :func:`cast_operations`) is the buffer the weights of one model are cast into.
    """

    comfy_cast_weights = True
    scratch: Optional[WeightScratch] = None

    def compute_weight(self, x: torch.Tensor) -> tuple[torch.Tensor, Any]:
        w = self.weight.to(x.dtype) if self.scratch is None else self.scratch.cast(self.weight, x.dtype)
        b = None if self.bias is None else self.bias.to(x.dtype)
        return w, b


class CastLinear(_CastWeights, nn.Linear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.compute_weight(x)
        return F.linear(x, w, b)


class CastConv1d(_CastWeights, nn.Conv1d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, *self.compute_weight(x))


class CastConv2d(_CastWeights, nn.Conv2d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, *self.compute_weight(x))


class CastConv3d(_CastWeights, nn.Conv3d):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self._conv_forward(x, *self.compute_weight(x))


class CastGroupNorm(_CastWeights, nn.GroupNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.compute_weight(x)
        return F.group_norm(x, self.num_groups, w, b, self.eps)


class CastLayerNorm(_CastWeights, nn.LayerNorm):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w, b = self.compute_weight(x)
        return F.layer_norm(x, self.normalized_shape, w, b, self.eps)


def cast_operations() -> Any:
    """A layer factory storing weights in their own dtype and computing in the input's dtype.

    ``load_unet(..., dtype="fp16", compute_dtype="fp32")`` builds the model with it: half the weight
    memory of fp32, fp32 arithmetic (docs/performance.md gives the accuracy cost against fp32 weights).
    Each call returns a fresh set of classes sharing one :class:`WeightScratch`, so one model's layers
    reuse one cast buffer and two models never share one.
    """
    scratch = WeightScratch()
    classes = {name: type(name, (base,), {"scratch": scratch}) for name, base in (
        ("Linear", CastLinear), ("Conv1d", CastConv1d), ("Conv2d", CastConv2d), ("Conv3d", CastConv3d),
        ("GroupNorm", CastGroupNorm), ("LayerNorm", CastLayerNorm))}
    return type("cast_operations", (), classes)


def plain_weight(layer: nn.Module, x: torch.Tensor) -> Optional[tuple[torch.Tensor, Any]]:
    """``(weight, bias)`` to compute ``layer`` on ``x`` with a functional call, or None.

    None means "call the layer itself": a host layer that casts or patches its weights per call (ComfyUI
    ``manual_cast``, a LoRA / low-VRAM weight function) must run its own forward so that its casting,
    offloading and patches apply. The model's faster formulations of a layer (a temporal Conv3d as a 2-D
    convolution, a Conv1d(k=1) as a linear layer) only use weights they may read directly: plain layers
    whose weights already have the input's dtype and device, and the core's own :class:`cast_operations`.
    """
    if isinstance(layer, _CastWeights):
        w, b = layer.compute_weight(x)
        return (w, b) if w.device == x.device else None
    if getattr(layer, "comfy_cast_weights", False) or getattr(layer, "weight_function", None) \
            or getattr(layer, "bias_function", None):
        return None
    w = getattr(layer, "weight", None)
    if not isinstance(w, torch.Tensor) or w.dtype != x.dtype or w.device != x.device:
        return None
    b = getattr(layer, "bias", None)
    if b is not None and (b.dtype != x.dtype or b.device != x.device):
        return None
    # only the torch.nn classes' own forward, or a ComfyUI layer with casting off and no patch (its forward
    # is then torch.nn's plus an interrupt hook); any other override of forward is the layer's business
    if type(layer).forward not in _PLAIN_FORWARDS and not hasattr(layer, "comfy_cast_weights"):
        return None
    return w, b


_PLAIN_FORWARDS = {nn.Linear.forward, nn.Conv1d.forward, nn.Conv2d.forward, nn.Conv3d.forward}
