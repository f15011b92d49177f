"""FAKE `comfy.ops` (tests only): layer factories with ComfyUI's class names.

`disable_weight_init.X` skips parameter initialisation (weights come from a checkpoint) and casts
weights to the input dtype when `comfy_cast_weights` is set; `manual_cast.X` always casts. That is
the behaviour the core relies on; offloading/lowvram is not simulated.
"""
from __future__ import annotations

import torch


class CastWeightBiasOp:
    comfy_cast_weights = False
    weight_function = []
    bias_function = []


def cast_to_input(weight, input, non_blocking=False, copy=True):
    return weight.to(device=input.device, dtype=input.dtype, copy=copy)


def _cast(module, input):
    weight = module.weight.to(device=input.device, dtype=input.dtype) if module.weight is not None else None
    bias = module.bias.to(device=input.device, dtype=input.dtype) if getattr(module, "bias", None) is not None else None
    return weight, bias


def _make(base: type, fn) -> type:
    def reset_parameters(self):
        return None

    def forward(self, *args, **kwargs):
        if self.comfy_cast_weights:
            weight, bias = _cast(self, args[0])
            return fn(self, args[0], weight, bias)
        return base.forward(self, *args, **kwargs)

    return type(base.__name__, (base, CastWeightBiasOp), {"reset_parameters": reset_parameters,
                                                           "forward": forward})


def _linear(self, x, w, b):
    return torch.nn.functional.linear(x, w, b)


def _conv(self, x, w, b):
    return self._conv_forward(x, w, b)


def _group_norm(self, x, w, b):
    return torch.nn.functional.group_norm(x, self.num_groups, w, b, self.eps)


def _layer_norm(self, x, w, b):
    return torch.nn.functional.layer_norm(x, self.normalized_shape, w, b, self.eps)


class disable_weight_init:  # noqa: N801 - the real class name
    Linear = _make(torch.nn.Linear, _linear)
    Conv1d = _make(torch.nn.Conv1d, _conv)
    Conv2d = _make(torch.nn.Conv2d, _conv)
    Conv3d = _make(torch.nn.Conv3d, _conv)
    GroupNorm = _make(torch.nn.GroupNorm, _group_norm)
    LayerNorm = _make(torch.nn.LayerNorm, _layer_norm)


def _always_cast(base: type) -> type:
    return type(base.__name__, (base,), {"comfy_cast_weights": True})


class manual_cast(disable_weight_init):  # noqa: N801
    Linear = _always_cast(disable_weight_init.Linear)
    Conv1d = _always_cast(disable_weight_init.Conv1d)
    Conv2d = _always_cast(disable_weight_init.Conv2d)
    Conv3d = _always_cast(disable_weight_init.Conv3d)
    GroupNorm = _always_cast(disable_weight_init.GroupNorm)
    LayerNorm = _always_cast(disable_weight_init.LayerNorm)


def pick_operations(weight_dtype, compute_dtype, load_device=None, disable_fast_fp8=False,
                    fp8_optimizations=False, model_config=None):
    if compute_dtype is None or weight_dtype == compute_dtype:
        return disable_weight_init
    return manual_cast
