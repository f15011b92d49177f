"""LoadUniAnimateModel: the UNet checkpoint as a ComfyUI-managed model.

The UNet is built with ComfyUI's layer factory (``comfy.ops``: weight-dtype casting, low-VRAM
partial loading) and attention dispatcher, and wrapped in a ``ModelPatcher`` so ComfyUI's memory
manager loads it to the GPU when a sampler needs it and offloads it when something else does.
Nothing is moved to the GPU here: loading happens on ComfyUI's offload device.

The patcher holds the UNet inside a ComfyUI ``BaseModel`` (``native_model.UniAnimateNativeModel``),
so the same weights serve both outputs: UNIANIMATE_MODEL for this pack's samplers and MODEL for
ComfyUI's own (KSampler, context windows, caches, patches).
"""
from __future__ import annotations

import logging
import os
import weakref
from typing import Any, Optional

import comfy.model_management as mm
import comfy.ops
import folder_paths
import torch
from comfy.ldm.modules import attention as comfy_attention
from comfy_api.latest import io

from ..unianimate_core.checkpoint import load_unet, read_state_dict, resolve_dtype
from ..unianimate_core.errors import CheckpointError, ModelFileNotFoundError, PrecisionError
from ..unianimate_core.model_files import DOWNLOADS
from ..unianimate_core.precision import dtype_name
from . import folders
from .native_model import make_model_patcher
from .text_context import resolve_zero_y
from .types import UniAnimateModel, UniAnimateModelType

log = logging.getLogger("UniAnimate")

WEIGHT_DTYPES = {"auto": None, "fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32,
                 "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}
CATEGORY = "UniAnimate"

# Already-built patchers by (file, mtime, size, dtype). Weak: ComfyUI's output cache is what keeps a
# model alive between runs; this only lets a re-executed loader (e.g. a new CLIP input) or a second
# loader node reuse the same weights while ComfyUI still holds them, never keeping memory alive.
_loaded: "weakref.WeakValueDictionary[tuple, Any]" = weakref.WeakValueDictionary()


def missing_model_message(model_name: Optional[str]) -> str:
    searched = "\n  ".join(folders.searched_folders(folders.UNET_FOLDER)) or "(no unianimate folder registered)"
    what = f"UniAnimate model file {model_name!r} not found." if model_name else "No UniAnimate model file found."
    return (f"{what} Download {DOWNLOADS['unet'].hint()} "
            f"(or convert it to .safetensors with `python -m unianimate_core.convert`), then press R to refresh. "
            f"Searched:\n  {searched}")


def resolve_model_path(model_name: Optional[str]) -> str:
    path = folder_paths.get_full_path(folders.UNET_FOLDER, model_name) if model_name else None
    if path is None:
        raise ModelFileNotFoundError(missing_model_message(model_name))
    return path


def choose_weight_dtype(choice: str, sd: dict[str, torch.Tensor], load_device: torch.device) -> torch.dtype:
    """"auto" = ComfyUI's pick for this device and model size (respects --fp16-unet etc.)."""
    if choice != "auto":
        return WEIGHT_DTYPES[choice]
    params = sum(v.numel() for v in sd.values())
    return mm.unet_dtype(device=load_device, model_params=params, weight_dtype=resolve_dtype(None, sd))


def check_device_dtype(weight_dtype: torch.dtype, manual_cast: Optional[torch.dtype], load_device: Any) -> None:
    """Refuse weight dtypes the device cannot hold, and say when ComfyUI computes in another dtype."""
    name = dtype_name(weight_dtype)
    if not mm.supports_cast(load_device, weight_dtype):
        raise PrecisionError(
            f"weight_dtype {name} is not supported on {load_device} (PyTorch cannot store {name} tensors there, e.g. "
            "fp8 on Apple MPS or DirectML). Choose fp16 (or auto) in Load UniAnimate Model.")
    if manual_cast is not None and weight_dtype in (torch.float16, torch.bfloat16) and manual_cast != torch.float32:
        log.info("UniAnimate: %s weights are not computed natively on %s; ComfyUI casts them to %s per layer.",
                 name, load_device, dtype_name(manual_cast))


def build_patcher(path: str, weight_choice: str) -> Any:
    """Read the checkpoint, build the UNet with ComfyUI's ops/attention, wrap it in a ModelPatcher."""
    load_device = mm.get_torch_device()
    offload_device = mm.unet_offload_device()
    sd = read_state_dict(path)
    weight_dtype = choose_weight_dtype(weight_choice, sd, load_device)
    manual_cast = mm.unet_manual_cast(weight_dtype, load_device)
    check_device_dtype(weight_dtype, manual_cast, load_device)
    operations = comfy.ops.pick_operations(weight_dtype, manual_cast, load_device=load_device)
    try:
        unet = load_unet(sd, dtype=weight_dtype, device=offload_device, operations=operations,
                         attention_fn=comfy_attention.optimized_attention)
    except CheckpointError as exc:
        raise CheckpointError(f"{os.path.basename(path)}: {exc}") from exc
    del sd
    # ComfyUI's "manual cast": weights stay in weight_dtype, activations run in the device's dtype.
    # manual_cast_dtype is the attribute ComfyUI's own models carry; its partial loading reads it to
    # budget the cast copies of offloaded weights.
    unet.compute_dtype = manual_cast
    unet.manual_cast_dtype = manual_cast
    log.info("UniAnimate: loaded %s (%s temporal layers), weights %s, compute %s, on %s", os.path.basename(path),
             unet.config.temporal, weight_dtype, unet.dtype, offload_device)
    return make_model_patcher(unet, weight_dtype, manual_cast, load_device, offload_device)


def _file_key(path: str, weight_choice: str) -> tuple:
    st = os.stat(path)
    return (os.path.realpath(path), st.st_mtime_ns, st.st_size, weight_choice)


class LoadUniAnimateModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="LoadUniAnimateModel",
            display_name="Load UniAnimate Model",
            category=CATEGORY,
            description=(
                "Loads the UniAnimate 3D UNet (unianimate_16f_32f_non_ema_223000.pth or a converted .safetensors) from "
                "models/unianimate. ComfyUI manages its memory like any other model. The empty-prompt text context is "
                "computed once from an SD2.1 CLIP and cached next to the file."
            ),
            inputs=[
                io.Combo.Input("model_name", options=folders.unet_files(),
                               tooltip="UniAnimate UNet checkpoint from models/unianimate (also searched: an older "
                                       "UniAnimate pack's checkpoints/ folder and extra_model_paths.yaml 'unianimate')."),
                io.Combo.Input("weight_dtype", options=list(WEIGHT_DTYPES), default="auto",
                               tooltip="Precision the weights are stored in. auto = ComfyUI's choice for your device "
                                       "(fp16/bf16 on GPUs, fp32 on CPU). fp16/bf16 halve the memory (2.8 GB instead of "
                                       "5.7 GB); fp8 halves it again (1.4 GB; weights are cast to fp16/bf16 per layer, "
                                       "slightly lower quality)."),
                io.Clip.Input("clip", optional=True,
                              tooltip="SD2.x text encoder (CLIP output of 'Load Checkpoint' with v2-1_512-ema-pruned, "
                                      "or 'Load CLIP' with an SD 2.x text encoder). Needed once: the empty-prompt "
                                      "context is cached next to the model file, then this input can stay empty."),
            ],
            outputs=[UniAnimateModelType.Output(display_name="model",
                                                tooltip="UniAnimate UNet for UniAnimate Sampler / Long Video Loop."),
                     io.Model.Output(display_name="MODEL",
                                     tooltip="The same UNet as a ComfyUI MODEL: sample it with KSampler / "
                                             "SamplerCustomAdvanced and the positive, negative and latent of "
                                             "'UniAnimate Conditioning'; context windows, EasyCache and model "
                                             "patches apply.")],
        )

    @classmethod
    def validate_inputs(cls, model_name: Optional[str] = None) -> bool | str:
        """The file must exist (with the download hint). Only model_name is taken: ComfyUI shows a
        validate_inputs message under every input the function takes, and checks weight_dtype itself."""
        if not model_name or folder_paths.get_full_path(folders.UNET_FOLDER, model_name) is None:
            return missing_model_message(model_name)
        return True

    @classmethod
    def fingerprint_inputs(cls, model_name: Optional[str] = None, weight_dtype: str = "auto", clip: Any = None) -> Any:
        """Reload when the file under this name changes (mtime/size), not just when the name does."""
        path = folder_paths.get_full_path(folders.UNET_FOLDER, model_name) if model_name else None
        if path is None:
            return model_name
        return _file_key(path, weight_dtype)

    @classmethod
    def execute(cls, model_name: str, weight_dtype: str = "auto", clip: Any = None) -> io.NodeOutput:
        if weight_dtype not in WEIGHT_DTYPES:
            raise CheckpointError(f"weight_dtype must be one of {list(WEIGHT_DTYPES)}, got {weight_dtype!r}.")
        path = resolve_model_path(model_name)
        key = _file_key(path, weight_dtype)
        patcher = _loaded.get(key)
        if patcher is None:
            patcher = build_patcher(path, weight_dtype)
            _loaded[key] = patcher
        zero_y = resolve_zero_y(clip, path)
        unet = patcher.model.diffusion_model
        unet.set_zero_y(zero_y)
        model = UniAnimateModel(patcher=patcher, zero_y=zero_y, source=os.path.basename(path),
                                compute_dtype=unet.dtype)
        return io.NodeOutput(model, patcher)
