"""FAKE `comfy.ops` (tests only): layer factories with ComfyUI v0.8.0's class names and casting rules.

Like the real module:

* every layer checks ComfyUI's interrupt flag first (`run_every_op`);
* `disable_weight_init.X` skips parameter initialisation (weights come from a checkpoint) and runs
  its stored weights as they are - unless `comfy_cast_weights` is set or a weight/bias function (a
  LoRA or low-VRAM patch) is attached: then `cast_bias_weight` casts weight and bias to the input's
  dtype and device and applies the functions;
* `manual_cast.X` always casts (fp8/fp16/bf16 storage with another compute dtype);
* `pick_operations` returns `disable_weight_init` when no manual cast is needed, else `manual_cast`.

Offload streams, pinned memory, quantized tensors and the fp8-matmul / cuBLAS variants are not
simulated. `tests/host/test_comfy_host.py::test_fake_ops_compute_like_the_real_ones` runs both this
module and the real one on the same layers and inputs.
"""
from __future__ import annotations

import torch

from . import model_management


def run_every_op():
    model_management.throw_exception_if_processing_interrupted()


def cast_to_input(weight, input, non_blocking=False, copy=True):
    return weight.to(device=input.device, dtype=input.dtype, copy=copy)


def cast_bias_weight(s, input=None, dtype=None, device=None, bias_dtype=None, offloadable=False):
    if input is not None:
        dtype = input.dtype if dtype is None else dtype
        bias_dtype = dtype if bias_dtype is None else bias_dtype
        device = input.device if device is None else device
    weight = s.weight.to(device=device, copy=len(s.weight_function) > 0)
    bias = None
    if s.bias is not None:
        bias = s.bias.to(device=device, dtype=bias_dtype, copy=len(s.bias_function) > 0)
        for f in s.bias_function:
            bias = f(bias)
    if s.weight_function or weight.dtype != dtype:
        weight = weight.to(dtype=dtype)
        for f in s.weight_function:
            weight = f(weight)
    if offloadable:
        return weight, bias, None
    return weight, bias


def uncast_bias_weight(s, weight, bias, offload_stream):
    return None


class CastWeightBiasOp:
    comfy_cast_weights = False
    weight_function = []
    bias_function = []


def _make(base: type, fn) -> type:
    def reset_parameters(self):
        return None

    def forward_comfy_cast_weights(self, input):
        if self.weight is None:  # LayerNorm(elementwise_affine=False)
            return fn(self, input, None, None)
        weight, bias, stream = cast_bias_weight(self, input, offloadable=True)
        out = fn(self, input, weight, bias)
        uncast_bias_weight(self, weight, bias, stream)
        return out

    def forward(self, *args, **kwargs):
        run_every_op()
        if self.comfy_cast_weights or len(self.weight_function) > 0 or len(self.bias_function) > 0:
            return self.forward_comfy_cast_weights(*args, **kwargs)
        return base.forward(self, *args, **kwargs)

    return type(base.__name__, (base, CastWeightBiasOp), {"reset_parameters": reset_parameters,
                                                           "forward_comfy_cast_weights": forward_comfy_cast_weights,
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
