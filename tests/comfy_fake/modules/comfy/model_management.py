"""FAKE `comfy.model_management` (tests only): one CPU device, no VRAM management.

Same function names and signatures as ComfyUI v0.8.0 for what the nodes call. `load_models_gpu`
records what it was asked to load (tests assert the sampler hands its ModelPatcher to ComfyUI's
memory manager); the interrupt flag behaves like the real one (cleared when it fires).
"""
from __future__ import annotations

import threading

import torch

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
    return torch.device("cpu")


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
    return False


def should_use_bf16(device=None, model_params=0, prioritize_performance=True, manual_cast=False):
    return False


def unet_dtype(device=None, model_params=0, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32],
               weight_dtype=None):
    return torch.float32


def unet_manual_cast(weight_dtype, inference_device, supported_dtypes=[torch.float16, torch.bfloat16, torch.float32]):
    if weight_dtype == torch.float32 or weight_dtype == torch.float64:
        return None
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
        if m not in current_loaded_models:
            current_loaded_models.insert(0, m)


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


def cast_to_device(tensor, device, dtype, copy=False):
    """Move and/or cast (the CPU-only subset of ComfyUI's cast_to)."""
    if (device is None or tensor.device == torch.device(device)) and not copy and (dtype is None or tensor.dtype == dtype):
        return tensor
    return tensor.to(device=device, dtype=dtype, copy=copy)
