"""FAKE `comfy.model_management` (tests only): one device, a simple model loader, ComfyUI's dtype rules.

Same function names and signatures as ComfyUI v0.8.0 for what the nodes call. `load_models_gpu`
records what it was asked to load (tests assert the sampler hands its ModelPatcher to ComfyUI's
memory manager) and moves the model the way ComfyUI's ModelPatcher.load does; the interrupt flag
behaves like the real one (cleared when it fires).

The device is a `FakeDevice` profile (test helper, not in ComfyUI; `set_fake_device`): "cpu" is
ComfyUI started with --cpu (fp32 compute, half weights manually cast to fp32), "nvidia" an Ampere or
newer GPU (fp16/bf16 weights computed as they are: no manual cast, half compute), "nvidia_pascal" a
GPU without bf16 (bf16 weights cast to fp16), "mps" Apple silicon (no fp8). The dtype decisions
(`unet_dtype`, `unet_manual_cast`, `supports_cast`) follow the real functions' code for those
capabilities; `tests/host/test_comfy_host.py::test_fake_dtype_rules_match_the_real_ones` checks them
against the real module with its capability probes patched to the same answers. `torch_device` is
what `get_torch_device()` returns: "cpu" computes on the CPU whatever the profile; "cuda" only works
inside the pretend-device mode of tests/device_check.py.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Optional

import torch


@dataclasses.dataclass
class FakeDevice:
    """Capabilities of the fake inference device (what ComfyUI probes on a real one)."""

    name: str = "cpu"
    torch_device: str = "cpu"
    fp16: bool = False          # should_use_fp16
    bf16: bool = False          # should_use_bf16
    fp8_compute: bool = False   # supports_fp8_compute
    mps: bool = False           # is_device_mps: no fp8 casts
    unet_weight_dtype: Optional[torch.dtype] = None  # --fp16-unet / --fp8_e4m3fn-unet ...
    lowvram: bool = False       # load_models_gpu leaves every second cast-capable layer offloaded


PROFILES = {
    "cpu": FakeDevice(),
    "nvidia": FakeDevice(name="nvidia", fp16=True, bf16=True, fp8_compute=False),
    "nvidia_pascal": FakeDevice(name="nvidia_pascal", fp16=True, bf16=False),
    "mps": FakeDevice(name="mps", fp16=True, bf16=True, mps=True),
}
device_profile = FakeDevice()


def set_fake_device(profile: str = "cpu", **overrides) -> FakeDevice:
    """Test helper (not in ComfyUI): switch the fake device; returns the active profile."""
    global device_profile
    device_profile = dataclasses.replace(PROFILES[profile], **overrides)
    return device_profile

OOM_EXCEPTION = torch.cuda.OutOfMemoryError

# What the nodes asked the memory manager for, newest last: (patchers, memory_required).
load_calls: list[tuple[list, int]] = []
current_loaded_models: list = []


class InterruptProcessingException(Exception):
    pass


interrupt_processing_mutex = threading.RLock()
interrupt_processing = False


def interrupt_current_processing(value=True):
    global interrupt_processing
    with interrupt_processing_mutex:
        interrupt_processing = value


def processing_interrupted():
    with interrupt_processing_mutex:
        return interrupt_processing


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    with interrupt_processing_mutex:
        if interrupt_processing:
            interrupt_processing = False
            raise InterruptProcessingException()


def get_torch_device():
    return torch.device(device_profile.torch_device)


def intermediate_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def vae_device():
    return torch.device("cpu")


def text_encoder_device():
    return torch.device("cpu")


def is_device_cpu(device):
    return torch.device(device).type == "cpu"


def should_use_fp16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    if device is not None and is_device_cpu(device) and device_profile.torch_device != "cpu":
        return False
    return device_profile.fp16


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    if device is not None and is_device_cpu(device) and device_profile.torch_device != "cpu":
        return False
    return device_profile.bf16


def supports_fp8_compute(device=None):
    return device_profile.fp8_compute


def supports_cast(device, dtype):
    if dtype in (torch.float32, torch.float16, torch.bfloat16):
        return True
    if device_profile.mps:
        return False
    return dtype in (torch.float8_e4m3fn, torch.float8_e5m2)


def unet_dtype(device=None, model_params=0, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32],
               weight_dtype=None):
    if device_profile.unet_weight_dtype is not None:
        return device_profile.unet_weight_dtype
    if weight_dtype in (torch.float8_e4m3fn, torch.float8_e5m2) and supports_fp8_compute(device):
        return weight_dtype
    if weight_dtype == torch.float16 and torch.float16 in supported_dtypes and should_use_fp16(device, model_params):
        return torch.float16
    for dt in supported_dtypes:
        if dt == torch.float16 and should_use_fp16(device, model_params):
            return torch.float16
        if dt == torch.bfloat16 and should_use_bf16(device, model_params):
            return torch.bfloat16
    return torch.float32


def unet_manual_cast(weight_dtype, inference_device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32]):
    if weight_dtype == torch.float32 or weight_dtype == torch.float64:
        return None
    fp16_supported = should_use_fp16(inference_device, prioritize_performance=False)
    if fp16_supported and weight_dtype == torch.float16:
        return None
    bf16_supported = should_use_bf16(inference_device)
    if bf16_supported and weight_dtype == torch.bfloat16:
        return None
    for dt in supported_dtypes:
        if dt == torch.float16 and fp16_supported:
            return torch.float16
        if dt == torch.bfloat16 and bf16_supported:
            return torch.bfloat16
    return torch.float32


def get_free_memory(dev=None, torch_free_too=False):
    free = 8 * 1024 ** 3
    return (free, free) if torch_free_too else free


def get_total_memory(dev=None, torch_total_too=False):
    total = 16 * 1024 ** 3
    return (total, total) if torch_total_too else total


def module_size(module):
    return sum(t.nelement() * t.element_size() for t in module.state_dict().values())


def load_models_gpu(models, memory_required=0, force_patch_weights=False, minimum_memory_required=None,
                    force_full_load=False):
    load_calls.append((list(models), memory_required))
    for m in models:
        _load(m)
        if m not in current_loaded_models:
            current_loaded_models.insert(0, m)


def _load(patcher):
    """What ComfyUI's ModelPatcher.load does to placement: every module whose parameters are all its own
    (and every comfy.ops layer) moves to the load device; parameters of non-leaf modules (e.g. a Mamba
    mixer's A_log/D) and buffers of the container modules stay where they are. In low-VRAM mode every
    second comfy.ops layer stays on the offload device and casts its weights per call instead."""
    device = patcher.load_device
    lowvram_index = 0
    for _, module in patcher.model.named_modules():
        own = list(module.parameters(recurse=False))
        if len(own) != len(list(module.parameters())):
            continue
        castable = hasattr(module, "comfy_cast_weights")
        if not (castable or own):
            continue
        if castable and device_profile.lowvram:
            lowvram_index += 1
            if lowvram_index % 2:
                if not hasattr(module, "prev_comfy_cast_weights"):
                    module.prev_comfy_cast_weights = module.comfy_cast_weights
                module.comfy_cast_weights = True
                continue
        module.to(device)
    patcher.model.device = device


def load_model_gpu(model):
    return load_models_gpu([model])


def soft_empty_cache(force=False):
    return None


def unload_all_models():
    current_loaded_models.clear()


def reset_fake_state():
    """Test helper (not in ComfyUI): forget recorded calls and clear the interrupt flag."""
    global interrupt_processing
    load_calls.clear()
    current_loaded_models.clear()
    interrupt_processing = False
    set_fake_device("cpu")


def cast_to_device(tensor, device, dtype, copy=False):
    """Move and/or cast (the CPU-only subset of ComfyUI's cast_to)."""
    if (device is None or tensor.device == torch.device(device)) and not copy and (dtype is None or tensor.dtype == dtype):
        return tensor
    return tensor.to(device=device, dtype=dtype, copy=copy)
