"""The VAE and CLIP the trainer prepares data with (and decodes validation clips with), plus fingerprints.

Any object with the pipeline's ``LatentCodec`` / ``ImageEncoder`` protocol works; the fingerprint
(hash of the weights or of the model files) is part of the cache key of the latents/embeddings, so
changing the VAE never reuses latents made with another one.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from ..pipeline.encoders import EMBED_DIM, TEXT_TOKENS, ImageEncoder, LatentCodec, TinyImageEncoder, TinyVAE
from .config import EncodersConfig
from .data import DigestIndex, key_of, tensor_fingerprint
from .errors import TrainError


@dataclass
class TrainEncoders:
    vae: LatentCodec
    clip: ImageEncoder
    zero_y: Tensor  # (1, 77, 1024) float32 CPU
    vae_id: str
    clip_id: str
    device: torch.device
    is_random: bool
    label: str

    def release_clip(self) -> None:
        """CLIP is only needed while preparing; drop it before training."""
        self.clip = None  # type: ignore[assignment]
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


def _module_id(kind: str, module: Any) -> str:
    return f"{kind}:" + tensor_fingerprint(module.state_dict().items())


def build_encoders(cfg: EncodersConfig, device: torch.device, cache: Path) -> TrainEncoders:
    """Build the encoders named by ``cfg`` on ``device`` (the tiny stand-ins need no file)."""
    if cfg.kind == "tiny":
        vae, clip = TinyVAE(cfg.seed).to(device), TinyImageEncoder(cfg.seed).to(device)
        return TrainEncoders(vae, clip, clip.empty_context().float().cpu(), _module_id("tiny-vae", vae),
                             _module_id("tiny-clip", clip), device, True,
                             "tiny random VAE/CLIP stand-ins (plumbing only: decoded images are noise)")
    if cfg.kind == "toyworld":
        try:
            from ..toyworld import ToyImageEncoder, load_toy_codec
        except ImportError as exc:
            raise TrainError(f"encoders.kind = toyworld needs unianimate_core.toyworld ({exc}).") from exc
        vae, clip = load_toy_codec(device), ToyImageEncoder(cfg.seed).to(device)
        return TrainEncoders(vae, clip, clip.empty_context().float().cpu(), _module_id("toyworld-codec", vae),
                             _module_id("toyworld-clip", clip), device, False,
                             "synthetic-world block codec + CLIP stand-in")
    return _standalone(cfg, device, cache)


def _standalone(cfg: EncodersConfig, device: torch.device, cache: Path) -> TrainEncoders:
    from ..pipeline.models import find_models

    files = find_models(cfg.models, clip=cfg.clip, vae=cfg.vae)
    missing = [m for m in files.missing if m != "unet"]
    if missing:
        raise TrainError("the training data needs the real CLIP and VAE (encoders.kind = standalone), but "
                         + files.describe_missing().replace("missing model files:", "these are missing:")
                         + "\nSet encoders.models to the folder holding them (or encoders.clip / encoders.vae).")
    from ..pipeline.standalone import DiffusersVAE, OpenClipEncoder

    paths: list[Any] = [files.clip_vision]
    if files.zero_y is None and files.clip_text not in (None, files.clip_vision):
        paths.append(files.clip_text)
    clip = OpenClipEncoder.from_files(*paths, device=device, dtype=torch.float32)
    vae = DiffusersVAE.from_file(str(files.vae), device=device, dtype=torch.float32)
    zero_y = _zero_y(files.zero_y, clip)
    digests = DigestIndex(cache)
    vae_id = "sd-vae:" + key_of(digests.digest(Path(str(files.vae))))
    clip_id = "openclip:" + key_of(digests.digest(Path(str(files.clip_vision))))
    try:
        digests.save()
    except OSError:
        pass
    return TrainEncoders(vae, clip, zero_y, vae_id, clip_id, device, False,
                         f"OpenCLIP ViT-H-14 ({Path(str(files.clip_vision)).name}) + SD VAE ({Path(str(files.vae)).name})")


def _zero_y(path: Optional[Path], clip: ImageEncoder) -> Tensor:
    if path is not None:
        value = np.load(path, allow_pickle=False)
        if value.shape == (1, TEXT_TOKENS, EMBED_DIM) and np.isfinite(value).all():
            return torch.from_numpy(value.astype(np.float32))
    return clip.empty_context().float().cpu()
