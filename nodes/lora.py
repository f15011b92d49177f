"""Load UniAnimate LoRA: a LoRA trained by ``python -m unianimate_core train`` (mode lora) on a UNIANIMATE_MODEL.

The file is in ComfyUI's generic LoRA layout (``diffusion_model.<module>.lora_A/lora_B.weight`` +
``.alpha``, see docs/training.md), so ComfyUI's own LoRA machinery applies it: ``comfy.lora.load_lora``
turns it into weight patches keyed by the UNet's parameter names and the ``ModelPatcher`` adds them to
a clone of the model. ComfyUI applies the patches when it loads the model for sampling (also with
partial/low-VRAM loading), the base weights stay untouched, and several LoRAs can be chained.
"""
from __future__ import annotations

import dataclasses
import logging
from typing import Any

import comfy.lora
import comfy.utils
import folder_paths
from comfy_api.latest import io

from ..unianimate_core.errors import CheckpointError
from ..unianimate_core.lora import PREFIX, parse_lora
from .types import UniAnimateModel, UniAnimateModelType

log = logging.getLogger("UniAnimate")
LORA_FOLDER = "loras"


def lora_key_map(model: Any) -> dict[str, str]:
    """LoRA module name -> the patcher model's parameter name.

    ``model`` is what the ModelPatcher wraps: the native BaseModel, whose state dict holds the UNet under
    ``diffusion_model.`` (ComfyUI's patches are keyed by those names). LoRA files name a module with or
    without that prefix; both are accepted.
    """
    out = {}
    for key in model.state_dict():
        if key.startswith(PREFIX) and key.endswith(".weight"):
            module = key[len(PREFIX): -len(".weight")]
            out[PREFIX + module] = key
            out[module] = key
    return out


def apply_lora_patches(patcher: Any, lora: dict, strength: float, name: str) -> Any:
    """A clone of ``patcher`` with the LoRA's weight patches; refuses a LoRA of another architecture."""
    try:
        layers = parse_lora(lora)
    except CheckpointError as exc:
        raise CheckpointError(f"{name}: {exc}") from exc
    key_map = lora_key_map(patcher.model)
    unknown = sorted(m for m in layers if m not in key_map)
    if unknown:
        raise CheckpointError(
            f"{name} adapts {len(unknown)} layer(s) this UniAnimate model does not have (e.g. {unknown[0]!r}): it "
            "was trained for another model or temporal option (attention vs Mamba). Use a LoRA trained on this "
            "checkpoint.")
    patches = comfy.lora.load_lora(lora, key_map)
    clone = patcher.clone()
    applied = clone.add_patches(patches, strength)
    if len(applied) != len(layers):
        raise CheckpointError(f"{name}: only {len(applied)} of {len(layers)} LoRA layers could be applied.")
    log.info("UniAnimate: LoRA %s applied to %d layers at strength %g", name, len(applied), strength)
    return clone


class LoadUniAnimateLora(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="UniAnimateLoraLoader",
            display_name="Load UniAnimate LoRA",
            category="UniAnimate",
            description=(
                "Applies a LoRA trained with `python -m unianimate_core train` (mode lora) to a UniAnimate model, through "
                "ComfyUI's LoRA patching (base weights untouched; chain several). Files go in models/loras."
            ),
            inputs=[
                UniAnimateModelType.Input("model", tooltip="From Load UniAnimate Model (or another LoRA loader)."),
                io.Combo.Input("lora_name", options=folder_paths.get_filename_list(LORA_FOLDER),
                               tooltip="LoRA file from models/loras (lora.safetensors of a training run)."),
                io.Float.Input("strength", default=1.0, min=-10.0, max=10.0, step=0.01,
                               tooltip="Scale of the LoRA update (1 = as trained, 0 = off, negative = inverted)."),
            ],
            outputs=[UniAnimateModelType.Output(display_name="model", tooltip="The model with the LoRA applied.")],
        )

    @classmethod
    def execute(cls, model: UniAnimateModel, lora_name: str, strength: float = 1.0) -> io.NodeOutput:
        if strength == 0:
            return io.NodeOutput(model)
        path = folder_paths.get_full_path_or_raise(LORA_FOLDER, lora_name)
        lora = comfy.utils.load_torch_file(path, safe_load=True)
        patcher = apply_lora_patches(model.patcher, lora, float(strength), lora_name)
        return io.NodeOutput(dataclasses.replace(model, patcher=patcher, source=f"{model.source} + {lora_name}"))
