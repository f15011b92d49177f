"""Model providers for headless runs: the real files, or a tiny random-weight set built in memory.

:class:`RealModels` loads lazily and in the order that keeps memory low (CLIP first and released
before the 1.4 B-parameter UNet is loaded). :class:`TinyModels` needs no file at all: the tiny UNet
configuration of the golden fixtures with seeded random weights, plus random CLIP/VAE stand-ins.
Its output is noise - it only proves that the installation runs end to end.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from ..checkpoint import load_unet
from ..config import UNetConfig
from ..precision import check_compute_dtype

from .encoders import EMBED_DIM, TEXT_TOKENS, ImageEncoder, LatentCodec, TinyImageEncoder, TinyVAE, seeded_
from .errors import PipelineError
from .models import ZERO_Y_NAME, ModelFiles

log = logging.getLogger("unianimate")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


def resolve_device(device: str = "auto") -> torch.device:
    """``auto`` -> CUDA if available, else Apple MPS, else CPU."""
    if device != "auto":
        try:
            return torch.device(device)
        except RuntimeError as exc:
            raise PipelineError(f"unknown device {device!r} ({exc}); use auto, cpu, cuda or cuda:N.") from exc
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """``auto`` -> fp16 on CUDA (the official inference runs the UNet in fp16), fp32 elsewhere.

    A dtype the device cannot compute in (bf16 below NVIDIA compute capability 8.0, ...) raises
    :class:`PrecisionError` naming the alternative.
    """
    if dtype == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    try:
        resolved = DTYPES[dtype]
    except KeyError:
        raise PipelineError(f"unknown dtype {dtype!r}; use auto, fp32, fp16 or bf16.") from None
    check_compute_dtype(resolved, device)
    return resolved


class TinyModels:
    """Seeded random tiny UNet + CLIP/VAE stand-ins, all in memory. The output is noise."""

    is_random = True
    label = "tiny random-weight model (installation check, output is noise)"

    def __init__(self, seed: int = 0, device: torch.device | str = "cpu") -> None:
        self.seed = seed
        self.device = torch.device(device)
        self.dtype = torch.float32
        self.config = UNetConfig.tiny()
        self.pixel_multiple = self.config.pixel_multiple

    def image_encoder(self) -> ImageEncoder:
        return TinyImageEncoder(self.seed)

    def zero_y(self, encoder: ImageEncoder) -> Tensor:
        return encoder.empty_context()

    def vae(self) -> LatentCodec:
        return TinyVAE(self.seed)

    def unet(self, zero_y: Tensor) -> Callable[..., Tensor]:
        from ..unet import UNetSD_UniAnimate

        model = seeded_(UNetSD_UniAnimate(self.config), self.seed)
        model.set_zero_y(zero_y)
        return model.to(self.device).eval().requires_grad_(False)

    def release(self, what: str) -> None:
        del what


class RealModels:
    """The released UniAnimate UNet with OpenCLIP ViT-H-14 and the SD 2.1 VAE (standalone extra)."""

    is_random = False

    def __init__(self, files: ModelFiles, device: torch.device, dtype: torch.dtype) -> None:
        if not files.complete:
            raise PipelineError(files.describe_missing())
        self.files = files
        self.device = device
        self.dtype = dtype
        self.label = f"UniAnimate ({Path(str(files.unet)).name}) on {device} in {str(dtype).replace('torch.', '')}"
        self.pixel_multiple = 64
        self._vae: LatentCodec | None = None

    def image_encoder(self) -> ImageEncoder:
        from .standalone import OpenClipEncoder

        paths: list[Any] = [self.files.clip_vision]
        if self.files.zero_y is None and self.files.clip_text not in (None, self.files.clip_vision):
            paths.append(self.files.clip_text)
        log.info("loading CLIP from %s", ", ".join(str(p) for p in paths))
        return OpenClipEncoder.from_files(*paths, device=self.device, dtype=torch.float32)

    def zero_y(self, encoder: ImageEncoder) -> Tensor:
        """The cached empty-prompt context when there is one (the nodes write the same file), else computed."""
        if self.files.zero_y is not None:
            value = np.load(self.files.zero_y, allow_pickle=False)
            if value.shape != (1, TEXT_TOKENS, EMBED_DIM) or not np.isfinite(value).all():
                raise PipelineError(f"{self.files.zero_y} is not a valid (1, 77, 1024) context; delete it to recompute it.")
            return torch.from_numpy(value.astype(np.float32))
        value = encoder.empty_context().float().cpu()
        target = Path(str(self.files.unet)).parent / ZERO_Y_NAME
        try:
            np.save(target, value.numpy())
            log.info("cached the empty-prompt context in %s", target)
        except OSError:
            pass
        return value

    def vae(self) -> LatentCodec:
        from .standalone import DiffusersVAE

        if self._vae is None:
            self._vae = DiffusersVAE.from_file(str(self.files.vae), device=self.device, dtype=torch.float32)
        return self._vae

    def unet(self, zero_y: Tensor) -> Callable[..., Tensor]:
        return load_unet(str(self.files.unet), dtype=self.dtype, device=self.device, zero_y=zero_y.to(self.device))

    def release(self, what: str) -> None:
        del what
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
