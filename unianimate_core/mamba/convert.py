"""Switching a UNet between temporal attention and temporal Mamba, and recognising checkpoints.

No Mamba weights were released, so the practical route is: load the official attention UNet,
swap every temporal transformer for a fresh (identity) ``TemporalMamba`` and fine-tune.
Checkpoints saved afterwards carry ``*.A_log`` keys, which is how a loader tells them apart;
``mamba_config_from_state_dict`` recovers the shape-relevant hyper-parameters from them.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional

import torch
from torch import nn

from .config import MambaConfig
from .errors import MambaConfigError
from .layer import TemporalMamba


def is_mamba_state_dict(state_dict: Mapping[str, Any]) -> bool:
    """True when the state dict holds Mamba mixers (a key ending in ``.A_log``)."""
    return any(k == "A_log" or k.endswith(".A_log") for k in state_dict)


def _channels_of(module: nn.Module) -> int:
    """Channel width of a temporal transformer: its attribute, else its GroupNorm's width."""
    for attr in ("in_channels", "channels"):
        value = getattr(module, attr, None)
        if isinstance(value, int):
            return value
    norm = getattr(module, "norm", None)
    if norm is not None and isinstance(getattr(norm, "num_channels", None), int):
        return norm.num_channels
    raise MambaConfigError(
        f"Cannot tell the channel width of {type(module).__name__}: it has no in_channels "
        "attribute and no GroupNorm named 'norm'.")


def _placement(module: nn.Module) -> tuple[Any, Optional[torch.dtype]]:
    """Device and floating dtype of a module's first parameter (None, None without any)."""
    for p in module.parameters():
        return p.device, (p.dtype if p.dtype.is_floating_point else None)
    return None, None


def _default_temporal_cls() -> type:
    from ..unet import TemporalTransformer  # lazy: the UNet package imports this package
    return TemporalTransformer


def convert_temporal_to_mamba(model: nn.Module, config: Optional[MambaConfig] = None,
                              operations: Any = None,
                              temporal_cls: Optional[type] = None) -> nn.Module:
    """Replace every temporal transformer in ``model`` (in place) with a fresh ``TemporalMamba``.

    Each new layer has the replaced module's channel width, device and dtype and starts as the
    identity (zero ``proj_out``). A model whose attention temporal layers were *also* identities
    therefore computes the same function before and after; a trained attention UNet loses its
    temporal attention and is meant to be fine-tuned afterwards. If ``model.config`` is a
    dataclass with ``temporal``/``mamba`` fields it is updated to ``temporal="mamba"``.
    ``temporal_cls`` defaults to ``unianimate_core.unet.TemporalTransformer``. Returns ``model``.
    """
    config = config if config is not None else MambaConfig()
    temporal_cls = temporal_cls if temporal_cls is not None else _default_temporal_cls()
    targets = [(name, m) for name, m in model.named_modules()
               if isinstance(m, temporal_cls) and name]
    if isinstance(model, temporal_cls):
        raise MambaConfigError(
            "convert_temporal_to_mamba got a single temporal transformer; build "
            "TemporalMamba(channels, config) directly instead.")
    for name, module in targets:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        device, dtype = _placement(module)
        layer = TemporalMamba(_channels_of(module), config, operations=operations,
                              device=device, dtype=dtype)
        setattr(parent, child, layer)
    _update_model_config(model, config)
    return model


def _update_model_config(model: nn.Module, config: MambaConfig) -> None:
    cfg = getattr(model, "config", None)
    if dataclasses.is_dataclass(cfg) and not isinstance(cfg, type):
        names = {f.name for f in dataclasses.fields(cfg)}
        if {"temporal", "mamba"} <= names:
            model.config = dataclasses.replace(cfg, temporal="mamba", mamba=config)


def mamba_config_from_state_dict(state_dict: Mapping[str, torch.Tensor],
                                 base: Optional[MambaConfig] = None) -> MambaConfig:
    """Shape-relevant Mamba settings of a checkpoint (d_state, d_conv, expand, dt_rank, biases).

    Runtime/initialisation fields are taken from ``base`` (default ``MambaConfig()``). Raises
    ``MambaConfigError`` when the checkpoint has no Mamba mixer or its layers disagree.
    """
    base = base if base is not None else MambaConfig()
    prefixes = [k[: -len("A_log")] for k in state_dict if k == "A_log" or k.endswith(".A_log")]
    if not prefixes:
        raise MambaConfigError("The checkpoint has no Mamba mixer (no key ending in '.A_log'); "
                               "load it with temporal='attention'.")
    found: dict[str, set] = {"d_state": set(), "d_conv": set(), "expand": set(),
                             "bias": set(), "conv_bias": set()}
    ranks: list[tuple[int, int]] = []
    for p in prefixes:
        try:
            d_inner, d_state = state_dict[p + "A_log"].shape
            d_model = state_dict[p + "in_proj.weight"].shape[1]
            d_conv = state_dict[p + "conv1d.weight"].shape[-1]
            dt_rank = state_dict[p + "dt_proj.weight"].shape[1]
        except KeyError as exc:
            raise MambaConfigError(f"Mamba mixer '{p}' in the checkpoint lacks {exc}; the file "
                                   "is incomplete or not a mamba-ssm style mixer.") from None
        found["d_state"].add(int(d_state))
        found["d_conv"].add(int(d_conv))
        found["expand"].add(d_inner / d_model)
        ranks.append((int(d_model), int(dt_rank)))
        found["bias"].add(p + "in_proj.bias" in state_dict)
        found["conv_bias"].add(p + "conv1d.bias" in state_dict)
    values = {}
    for key, seen in found.items():
        if len(seen) != 1:
            raise MambaConfigError(f"The checkpoint's Mamba layers disagree on {key} "
                                   f"({sorted(map(str, seen))}); one MambaConfig cannot load it.")
        values[key] = seen.pop()
    if values["expand"] != int(values["expand"]):
        raise MambaConfigError(f"Mamba expand factor {values['expand']} is not an integer.")
    values["expand"] = int(values["expand"])
    values["dt_rank"] = _dt_rank_setting(ranks)
    return dataclasses.replace(base, **values)


def _dt_rank_setting(ranks: list[tuple[int, int]]) -> Any:
    """"auto" when every layer uses ceil(C/16), else the one fixed rank all layers share."""
    if all(r == -(-c // 16) for c, r in ranks):
        return "auto"
    fixed = {r for _, r in ranks}
    if len(fixed) == 1:
        return fixed.pop()
    raise MambaConfigError(f"The checkpoint's Mamba layers use dt ranks {sorted(fixed)} that are "
                           "neither ceil(C/16) nor one fixed value; one MambaConfig cannot "
                           "load it.")
