"""LoRA files for the UniAnimate UNet: the format the trainer writes, and applying one to a model.

Format (ComfyUI's generic LoRA layout, a ``.safetensors`` file), for every adapted layer with
module path ``M`` in the UNet's own (official) naming::

    diffusion_model.M.lora_A.weight   (r, in[, k...])   down projection
    diffusion_model.M.lora_B.weight   (out, r[, 1...])  up projection
    diffusion_model.M.alpha           ()                the update is  strength * alpha / r * B @ A

``diffusion_model.`` is the prefix ComfyUI gives a model's UNet, so ComfyUI's own LoRA loading
(``comfy.lora.load_lora`` + ``model_lora_keys_unet``, i.e. ``LoraLoaderModelOnly`` on a native
MODEL, and this pack's ``Load UniAnimate LoRA`` node on a UNIANIMATE_MODEL) maps the keys without a
conversion; ``lora_A``/``lora_B`` are the names peft uses, which ComfyUI reads as well. The file's
metadata records ``format = "unianimate-lora"``, rank, alpha and the target layers.

:func:`apply_lora` merges a LoRA into a loaded UNet (``W += strength * alpha / r * B @ A``), the
headless counterpart of what ComfyUI's model patcher does on the fly. It also reads the
``lora_up``/``lora_down`` spelling and files without the prefix.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Mapping, Optional, Union

import torch
from torch import nn

from .errors import CheckpointError

PREFIX = "diffusion_model."
FORMAT = "unianimate-lora"
_PAIR = re.compile(r"^(?P<module>.+)\.(?P<kind>lora_A|lora_B|lora_down|lora_up)\.weight$")


def to_comfy_lora(peft_state_dict: Mapping[str, torch.Tensor], alpha: float,
                  dtype: Optional[torch.dtype] = None) -> dict[str, torch.Tensor]:
    """peft's ``get_peft_model_state_dict`` output (``M.lora_A.weight``...) -> the file layout above."""
    out: dict[str, torch.Tensor] = {}
    modules = set()
    for key, value in peft_state_dict.items():
        m = _PAIR.match(key)
        if m is None:
            raise CheckpointError(f"unexpected LoRA key {key!r}: only lora_A/lora_B weights are supported.")
        modules.add(m.group("module"))
        v = value.detach().to("cpu")
        out[PREFIX + key] = (v.to(dtype) if dtype is not None else v).contiguous()
    for module in sorted(modules):
        out[f"{PREFIX}{module}.alpha"] = torch.tensor(float(alpha))
    return out


def is_lora_state_dict(sd: Mapping[str, torch.Tensor]) -> bool:
    return any(_PAIR.match(k) for k in sd)


def parse_lora(sd: Mapping[str, torch.Tensor]) -> dict[str, tuple[torch.Tensor, torch.Tensor, float]]:
    """``{module path (no prefix): (down A, up B, alpha)}``; alpha defaults to the rank (scale 1)."""
    pairs: dict[str, dict[str, torch.Tensor]] = {}
    for key, value in sd.items():
        m = _PAIR.match(key)
        if m is None:
            continue
        module = m.group("module")
        module = module[len(PREFIX):] if module.startswith(PREFIX) else module
        kind = "down" if m.group("kind") in ("lora_A", "lora_down") else "up"
        pairs.setdefault(module, {})[kind] = value
    out = {}
    for module, p in pairs.items():
        if set(p) != {"down", "up"}:
            raise CheckpointError(f"LoRA layer {module!r} lacks its {'up (lora_B)' if 'up' not in p else 'down (lora_A)'} "
                                  "matrix; the file is incomplete.")
        rank = p["down"].shape[0]
        alpha_t = sd.get(f"{PREFIX}{module}.alpha", sd.get(f"{module}.alpha"))
        alpha = float(alpha_t) if alpha_t is not None else float(rank)
        out[module] = (p["down"], p["up"], alpha)
    if not out:
        raise CheckpointError("this file holds no LoRA weights (no *.lora_A.weight / *.lora_down.weight keys); "
                              "is it a full model? Load full models with the model loader instead.")
    return out


def read_lora(path: Union[str, Path]) -> dict[str, torch.Tensor]:
    """Read a LoRA ``.safetensors`` file (CPU tensors)."""
    from safetensors.torch import load_file

    p = Path(path)
    if not p.is_file():
        raise CheckpointError(f"LoRA file not found: {p}.")
    try:
        sd = load_file(str(p), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(f"{p}: not a readable safetensors file ({exc}).") from exc
    if not is_lora_state_dict(sd):
        raise CheckpointError(f"{p.name} holds no LoRA weights (no *.lora_A.weight keys). A full UniAnimate model "
                              "is loaded with the model loader, not as a LoRA.")
    return sd


def lora_delta(down: torch.Tensor, up: torch.Tensor, alpha: float, shape: torch.Size) -> torch.Tensor:
    """``alpha / r * B @ A`` reshaped to the weight's shape (linear and convolution weights), float32."""
    rank = down.shape[0]
    delta = up.flatten(1).float() @ down.flatten(1).float()
    return (delta * (alpha / rank)).reshape(shape)


@torch.no_grad()
def apply_lora(model: nn.Module, lora: Union[str, Path, Mapping[str, torch.Tensor]], strength: float = 1.0) -> list[str]:
    """Merge a LoRA into ``model``'s weights in place; returns the patched module paths.

    Every LoRA layer must exist in the model with a matching shape (a LoRA for another architecture
    is refused, naming the first mismatch). Merging happens in float32 and is stored in the weight's
    dtype.
    """
    sd = read_lora(lora) if isinstance(lora, (str, Path)) else lora
    layers = parse_lora(sd)
    modules = dict(model.named_modules())
    patched = []
    for name, (down, up, alpha) in sorted(layers.items()):
        module = modules.get(name)
        weight = getattr(module, "weight", None)
        if module is None or not isinstance(weight, torch.Tensor):
            raise CheckpointError(f"the LoRA adapts layer {name!r}, which this model does not have; it was trained "
                                  "for another architecture (or another temporal option).")
        if weight.shape[0] != up.shape[0] or down.flatten(1).shape[1] != weight[0].numel():
            raise CheckpointError(f"LoRA layer {name!r} has shapes {tuple(down.shape)}/{tuple(up.shape)} that do not fit "
                                  f"the model's weight {tuple(weight.shape)}; it was trained for another model size.")
        delta = lora_delta(down, up, alpha, weight.shape) * float(strength)
        weight.copy_((weight.float() + delta.to(weight.device)).to(weight.dtype))
        patched.append(name)
    return patched


def lora_metadata(rank: int, alpha: float, targets: list[str], base: str) -> dict[str, str]:
    return {"format": FORMAT, "rank": str(rank), "alpha": str(alpha), "targets": json.dumps(targets), "base": base}
