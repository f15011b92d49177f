"""FAKE `comfy.model_base` (tests only): the BaseModel surface a custom model builds on.

Construction without building a UNet (`disable_unet_model_creation`), `model_sampling`, the
APPLY_MODEL wrapper chain around `_apply_model`, dtype conversion of extra conds, latent scaling.
The discrete EPS / V_PREDICTION kinds only.
"""
from __future__ import annotations

from enum import Enum

import torch

from . import model_management, model_sampling as ms, patcher_extension


class ModelType(Enum):
    EPS = 1
    V_PREDICTION = 2


def model_sampling(model_config, model_type):
    c = ms.V_PREDICTION if model_type == ModelType.V_PREDICTION else ms.EPS

    class ModelSampling(ms.ModelSamplingDiscrete, c):
        pass

    return ModelSampling(model_config)


def convert_tensor(extra, dtype, device):
    if hasattr(extra, "dtype"):
        if extra.dtype != torch.int and extra.dtype != torch.long:
            extra = model_management.cast_to_device(extra, device, dtype)
        else:
            extra = model_management.cast_to_device(extra, device, None)
    return extra


class UNetModel(torch.nn.Module):
    """Stands in for ComfyUI's SD UNet class (the default `unet_model`); the fake never builds one."""


class BaseModel(torch.nn.Module):
    def __init__(self, model_config, model_type=ModelType.EPS, device=None, unet_model=UNetModel):
        super().__init__()
        if not model_config.unet_config.get("disable_unet_model_creation", False):
            raise NotImplementedError("the fake BaseModel never builds a UNet")
        self.latent_format = model_config.latent_format
        self.model_config = model_config
        self.manual_cast_dtype = model_config.manual_cast_dtype
        self.device = device
        self.current_patcher = None
        self.model_type = model_type
        self.model_sampling = model_sampling(model_config, model_type)
        self.adm_channels = model_config.unet_config.get("adm_in_channels", None) or 0
        self.concat_keys = ()
        self.memory_usage_factor = model_config.memory_usage_factor
        self.memory_usage_factor_conds = ()
        self.memory_usage_shape_process = {}

    def apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        return patcher_extension.WrapperExecutor.new_class_executor(
            self._apply_model, self,
            patcher_extension.get_all_wrappers(patcher_extension.WrappersMP.APPLY_MODEL, transformer_options),
        ).execute(x, t, c_concat, c_crossattn, control, transformer_options, **kwargs)

    def _apply_model(self, x, t, c_concat=None, c_crossattn=None, control=None, transformer_options={}, **kwargs):
        raise NotImplementedError("the fake BaseModel has no diffusion model of its own")

    def get_dtype(self):
        return self.diffusion_model.dtype

    def extra_conds(self, **kwargs):
        return {}

    def extra_conds_shapes(self, **kwargs):
        return {}

    def memory_required(self, input_shape, cond_shapes={}):
        area = input_shape[0] * input_shape[2] * input_shape[3]
        return area * 0.15 * self.memory_usage_factor * (1024 * 1024)

    def process_latent_in(self, latent):
        return self.latent_format.process_in(latent)

    def process_latent_out(self, latent):
        return self.latent_format.process_out(latent)
