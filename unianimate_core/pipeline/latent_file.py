"""Latent files in ComfyUI's Save Latent format (``.latent``), written by the command line and batches.

A ``.latent`` file is a safetensors file with ``latent_tensor`` ``(F, 4, h, w)`` at raw VAE scale (the
model-space latent divided by 0.18215, frames in the batch dimension) and the empty marker
``latent_format_version_0``; ComfyUI's Load Latent reads it back (to refine or decode it), and
:func:`load_latent` turns it into the model-space ``(1, 4, F, h, w)`` latent again.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ..paths import write_atomic
from .conditioning import LATENT_SCALE
from .errors import PipelineError

LATENT_SUFFIX = ".latent"


def latent_bytes(model_latent: Tensor) -> bytes:
    """Model-space ``(1, 4, F, h, w)`` latent (x 0.18215) -> the bytes of a ``.latent`` file."""
    from safetensors.torch import save

    if not isinstance(model_latent, Tensor) or model_latent.ndim != 5:
        raise PipelineError(f"expected a (1, 4, F, h, w) latent; got "
                            f"{tuple(model_latent.shape) if isinstance(model_latent, Tensor) else type(model_latent).__name__}.")
    b, c, f, h, w = model_latent.shape
    samples = model_latent.detach().float().cpu().permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w) / LATENT_SCALE
    return save({"latent_tensor": samples.contiguous(), "latent_format_version_0": torch.tensor([])})


def save_latent(path: str | os.PathLike, model_latent: Tensor) -> Path:
    """Write the latent to ``path`` atomically (see :func:`latent_bytes`)."""
    return write_atomic(path, latent_bytes(model_latent))


def load_latent(path: str | os.PathLike) -> Tensor:
    """A ``.latent`` file -> model-space ``(1, 4, F, h, w)`` float32 latent (x 0.18215)."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        data = load_file(str(path))
    except (OSError, SafetensorError) as exc:
        raise PipelineError(f"could not read the latent file {path}: {exc}") from exc
    samples = data.get("latent_tensor")
    if samples is None or samples.ndim != 4:
        raise PipelineError(f"{path} is not a ComfyUI latent file (no (F, 4, h, w) 'latent_tensor').")
    scale = 1.0 if "latent_format_version_0" in data else 1.0 / LATENT_SCALE  # ComfyUI's pre-version files
    return (samples.float() * scale * LATENT_SCALE).permute(1, 0, 2, 3).unsqueeze(0).contiguous()


__all__ = ["LATENT_SUFFIX", "latent_bytes", "load_latent", "save_latent"]
