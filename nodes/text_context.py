"""The UNet's empty-prompt context ``zero_y``: from ComfyUI's CLIP once, then from a small file.

UniAnimate attends to the OpenCLIP ViT-H-14 text tower's output for the empty prompt (penultimate
block + final LayerNorm, (1, 77, 1024)), exactly what ComfyUI's SD2.x CLIP computes: its SD2 text
model defaults to ``layer="penultimate"`` (hidden state of block 22 of 0..23) with
``layer_norm_hidden_state=True`` (the final LayerNorm applied to it), tokenises "" as
[start, end, pad 0 x 75] and uses only the causal mask - the same recipe as the official code. We
still pin ``clip_layer(-2)`` on a clone so an upstream "CLIP Set Last Layer" cannot change it.

The vector does not depend on the UniAnimate checkpoint, so it is computed once from a connected
CLIP (the CLIP output of the SD2.1 checkpoint loader, or an SD2 text encoder loaded with Load CLIP)
and saved as ``zero_y_openclip_vit_h14.npy`` (310 KB, numpy, no pickle) next to the UNet
checkpoint; later runs find it there (or in any ``unianimate`` folder) and need no CLIP. The
``.npy`` extension keeps it out of the model list.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from ..unianimate_core.errors import InputError, ModelFileNotFoundError
from ..unianimate_core.model_files import DOWNLOADS
from . import folders

log = logging.getLogger("UniAnimate")

ZERO_Y_FILENAME = "zero_y_openclip_vit_h14.npy"
ZERO_Y_SHAPE = (1, 77, 1024)


def zero_y_from_clip(clip: Any) -> torch.Tensor:
    """Encode the empty prompt with ComfyUI's CLIP; (1, 77, 1024) float32 on the CPU."""
    if not (hasattr(clip, "tokenize") and hasattr(clip, "encode_from_tokens")):
        raise InputError(
            f"The clip input must be a ComfyUI CLIP (text encoder); got {type(clip).__name__}. Connect the CLIP "
            "output of 'Load Checkpoint' with the SD2.1 checkpoint (v2-1_512-ema-pruned), or 'Load CLIP' with an "
            "SD2 text encoder (type stable_diffusion)."
        )
    clip = clip.clone()
    clip.clip_layer(-2)
    cond = clip.encode_from_tokens(clip.tokenize(""))
    if isinstance(cond, (tuple, list)):
        cond = cond[0]
    cond = torch.as_tensor(cond).detach().float().cpu()
    if tuple(cond.shape) != ZERO_Y_SHAPE:
        width = cond.shape[-1] if cond.ndim else "?"
        hint = {768: "an SD1.x CLIP-L", 1280: "an SDXL CLIP-G", 2048: "an SDXL CLIP (L+G)", 4096: "a T5/LLM encoder"}
        raise InputError(
            f"The connected CLIP gives a text context of shape {tuple(cond.shape)}; UniAnimate needs the SD2.x "
            f"OpenCLIP ViT-H text encoder, shape {ZERO_Y_SHAPE}"
            + (f" (this looks like {hint[width]})" if width in hint else "")
            + ". Connect the CLIP output of 'Load Checkpoint' with the SD2.1 checkpoint (v2-1_512-ema-pruned)."
        )
    _check_finite(cond, "the CLIP's empty-prompt context")
    return cond


def _check_finite(t: torch.Tensor, what: str) -> None:
    if not bool(torch.isfinite(t).all()):
        raise InputError(f"{what} contains NaN/inf values; the text encoder weights are broken - load them again.")


def cache_candidates(checkpoint_path: str) -> list[Path]:
    """Where a cached ``zero_y`` is looked for: the checkpoint's folder, then every unianimate folder."""
    dirs = [Path(checkpoint_path).parent] + [Path(d) for d in folders.searched_folders(folders.UNET_FOLDER)]
    seen: list[Path] = []
    for d in dirs:
        p = d / ZERO_Y_FILENAME
        if p not in seen:
            seen.append(p)
    return seen


def load_cached_zero_y(checkpoint_path: str) -> Optional[torch.Tensor]:
    for path in cache_candidates(checkpoint_path):
        if path.is_file():
            try:
                arr = np.load(path, allow_pickle=False)
            except (OSError, ValueError) as exc:
                log.warning("UniAnimate: ignoring unreadable %s (%s)", path, exc)
                continue
            t = torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))
            if tuple(t.shape) != ZERO_Y_SHAPE or not bool(torch.isfinite(t).all()):
                log.warning("UniAnimate: ignoring %s (shape %s, expected %s, or non-finite values)",
                            path, tuple(t.shape), ZERO_Y_SHAPE)
                continue
            return t
    return None


def save_zero_y(zero_y: torch.Tensor, checkpoint_path: str) -> Optional[Path]:
    """Write the cache next to the checkpoint; a read-only folder only costs a log line."""
    path = Path(checkpoint_path).parent / ZERO_Y_FILENAME
    try:
        tmp = path.with_name(path.name + ".tmp.npy")
        np.save(tmp, zero_y.numpy().astype(np.float32), allow_pickle=False)
        os.replace(tmp, path)
        return path
    except OSError as exc:
        log.warning("UniAnimate: could not cache the empty-prompt context in %s (%s); keep the CLIP input "
                    "connected, or make the folder writable.", path.parent, exc)
        return None


def resolve_zero_y(clip: Any, checkpoint_path: str) -> torch.Tensor:
    """zero_y from the connected CLIP (refreshing the cache) or from the cache file."""
    if clip is not None:
        zero_y = zero_y_from_clip(clip)
        cached = load_cached_zero_y(checkpoint_path)
        if cached is None or not torch.equal(cached, zero_y):
            saved = save_zero_y(zero_y, checkpoint_path)
            if saved:
                log.info("UniAnimate: cached the empty-prompt context in %s; the CLIP input can be removed now.", saved)
        return zero_y
    cached = load_cached_zero_y(checkpoint_path)
    if cached is not None:
        return cached
    searched = ", ".join(str(p.parent) for p in cache_candidates(checkpoint_path))
    raise ModelFileNotFoundError(
        "UniAnimate needs the empty-prompt text context of the SD2.x OpenCLIP ViT-H text encoder once. Connect the "
        "CLIP output of 'Load Checkpoint' (SD2.1: v2-1_512-ema-pruned), or of 'Load CLIP' (type stable_diffusion) with "
        f"an SD 2.x text encoder such as {DOWNLOADS['openclip'].name} from {DOWNLOADS['openclip'].url}, to this "
        "loader's clip input and run once; "
        f"it is then saved as {ZERO_Y_FILENAME} next to the model and later runs need no CLIP "
        f"(searched: {searched})."
    )
