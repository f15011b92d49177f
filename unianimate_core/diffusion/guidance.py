"""Classifier-free guidance: one conditional and one unconditional (all conditions dropped) prediction.

Two ways to get them, with the same numbers (up to float rounding of batched matmuls):

* ``sequential`` — two model calls, exactly what the official code does; lowest peak memory.
* ``batched``    — one call on a doubled batch ``[x; x]`` with ``cond_mask = [True]*B + [False]*B``
  and every condition tensor doubled the same way; rows where ``cond_mask`` is False must get
  exactly the unconditional (all conditions None) result. A zero *input* to the condition
  embedders is not the unconditional path (their biases would leak in), so batching needs the UNet
  to accept ``cond_mask`` (``UNetSD_UniAnimate`` does); see docs/sampling.md for the contract.
  Models without it fall back to ``sequential`` under ``cfg_mode="auto"``.
"""
from __future__ import annotations

import inspect
from typing import Any, Callable, Literal

import torch
from torch import Tensor

from .conditions import unconditional_kwargs
from .errors import check

CfgMode = Literal["auto", "batched", "sequential"]
CFG_MODES: tuple[str, ...] = ("auto", "batched", "sequential")

Model = Callable[..., Tensor]
"""``model(x, t, image=, local_image=, dwpose=, randomref=[, cond_mask=]) -> v`` (B, 4, F, h, w)."""


def supports_cond_mask(model: Any) -> bool:
    """Whether ``model`` takes the ``cond_mask`` keyword (explicit attribute wins over the signature).

    A wrapper can declare ``supports_cond_mask = True/False``; otherwise the call signature (for an
    ``nn.Module``: its ``forward``) must name a ``cond_mask`` parameter.
    """
    return takes_keyword(model, "cond_mask", "supports_cond_mask")


def takes_keyword(model: Any, keyword: str, flag_name: str) -> bool:
    """Whether ``model`` accepts ``keyword``: its ``flag_name`` attribute when set, else its call
    signature (for an ``nn.Module``: its ``forward``)."""
    flag = getattr(model, flag_name, None)
    if flag is not None:
        return bool(flag)
    target = model.forward if isinstance(model, torch.nn.Module) else model
    try:
        return keyword in inspect.signature(target).parameters
    except (TypeError, ValueError):
        return False


def resolve_cfg_mode(mode: str, model: Any, guided: bool) -> Literal["batched", "sequential", "cond_only"]:
    """Pick the concrete call pattern; ``cond_only`` when guidance is off (guide_scale == 1)."""
    check(mode in CFG_MODES, f"Unknown cfg_mode {mode!r}; use one of {CFG_MODES}.")
    if not guided:
        return "cond_only"
    if mode == "auto":
        return "batched" if supports_cond_mask(model) else "sequential"
    if mode == "batched":
        check(supports_cond_mask(model),
              "cfg_mode='batched' needs a model that accepts the cond_mask keyword (see docs/sampling.md); "
              "use cfg_mode='sequential' or 'auto' with this model.")
    return mode  # type: ignore[return-value]


def predict_cond_uncond(model: Model, x: Tensor, t: Tensor, cond_kwargs: dict[str, Tensor | None],
                        call_mode: str) -> tuple[Tensor, Tensor | None]:
    """Conditional and unconditional v-predictions for the batch x (B, 4, F, h, w) at timesteps t (B,).

    Returns (cond, uncond) in the model's output dtype; uncond is None for ``cond_only``.
    Order of calls for ``sequential`` is cond first, as in the official code.
    """
    if call_mode == "cond_only":
        return _checked(model(x, t, **cond_kwargs), x), None
    if call_mode == "sequential":
        cond = _checked(model(x, t, **cond_kwargs), x)
        uncond = _checked(model(x, t, **unconditional_kwargs()), x)
        return cond, uncond
    b = x.shape[0]
    mask = torch.cat([torch.ones(b, dtype=torch.bool), torch.zeros(b, dtype=torch.bool)]).to(x.device)
    doubled = {k: None if v is None else torch.cat([v, v]) for k, v in cond_kwargs.items()}
    out = model(torch.cat([x, x]), torch.cat([t, t]), cond_mask=mask, **doubled)
    check(isinstance(out, Tensor) and out.shape[0] == 2 * b,
          f"The model returned batch {getattr(out, 'shape', None)} for a batched CFG call of 2 x {b}; "
          "it must honour cond_mask (docs/sampling.md) or use cfg_mode='sequential'.")
    cond, uncond = out[:b], out[b:]
    return _checked(cond, x), _checked(uncond, x)


def apply_guidance(cond: Tensor, uncond: Tensor | None, guide_scale: float) -> Tensor:
    """``uncond + guide_scale * (cond - uncond)`` in the predictions' dtype (official order of operations)."""
    if uncond is None:
        return cond
    return uncond + guide_scale * (cond - uncond)


def _checked(out: Any, x: Tensor) -> Tensor:
    check(isinstance(out, Tensor) and tuple(out.shape) == tuple(x.shape),
          f"The model must return a v-prediction shaped like its input {tuple(x.shape)}; "
          f"got {getattr(out, 'shape', type(out).__name__)}.")
    return out
