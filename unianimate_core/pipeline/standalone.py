"""CLIP and VAE outside ComfyUI, from well-kept libraries (the optional ``standalone`` extra).

* :class:`OpenClipEncoder` - OpenCLIP's ViT-H-14 (``open-clip-torch``): ``encode_image`` for the
  reference embedding (un-normalised, docs/official_behaviour.md#clip-image-embedding) and the empty-prompt
  context ``zero_y`` (text tower
  on "" -> every block but the last -> ``ln_final``). Weights: the official
  ``open_clip_pytorch_model.bin`` (text + vision), a ComfyUI/HF-layout ``clip_vision_h`` file
  (vision only; converted here), and the text tower of the SD 2.1 checkpoint
  (``cond_stage_model.model.*``), which is the same frozen OpenCLIP-H text encoder.
* :class:`DiffusersVAE` - diffusers' ``AutoencoderKL`` with the SD 2.1 first-stage weights, converted
  from the LDM key layout by diffusers' own ``convert_ldm_vae_checkpoint`` with a config written
  here (no network access at run time).

Inside ComfyUI none of this is used: the nodes take ComfyUI's ``CLIP_VISION``/``VAE`` objects. Both
libraries import lazily, so ``unianimate_core`` never needs them installed.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import Tensor

from ..checkpoint import read_state_dict

from .encoders import TEXT_TOKENS
from .errors import DependencyError, PipelineError

#: diffusers ``AutoencoderKL`` config of the SD 1.x/2.x KL-f8 VAE (the SD 2.1 first stage).
SD_VAE_CONFIG: dict[str, Any] = {
    "in_channels": 3,
    "out_channels": 3,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "act_fn": "silu",
    "latent_channels": 4,
    "norm_num_groups": 32,
    "sample_size": 768,
    "scaling_factor": 0.18215,
}

_INSTALL_HINT = "install the optional extra with `pip install \"comfyui-unianimate[standalone]\"` (or `pip install open-clip-torch diffusers`)"


def _import_open_clip() -> Any:
    try:
        import open_clip
    except ImportError as exc:
        raise DependencyError(
            f"the headless pipeline needs OpenCLIP for the CLIP image embedding ({exc}); {_INSTALL_HINT}. "
            "Inside ComfyUI this is not needed."
        ) from exc
    except RuntimeError as exc:  # a torchvision build that does not match torch fails at import
        raise DependencyError(
            f"OpenCLIP could not be imported ({exc}). This usually means torchvision does not match "
            "the installed torch (e.g. a CUDA torchvision next to a CPU-only torch); install a matching "
            "pair, e.g. `pip install torch==2.14.1 torchvision==0.29.1`."
        ) from exc
    return open_clip


def _import_diffusers_vae() -> tuple[Any, Any]:
    try:
        from diffusers import AutoencoderKL
        from diffusers.loaders.single_file_utils import convert_ldm_vae_checkpoint
    except ImportError as exc:
        raise DependencyError(f"the headless pipeline needs diffusers for the SD VAE ({exc}); {_INSTALL_HINT}.") from exc
    return AutoencoderKL, convert_ldm_vae_checkpoint


def _strip(sd: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    return {k[len(prefix):]: v for k, v in sd.items() if k.startswith(prefix)}


# --------------------------------------------------------------------------------------------
# OpenCLIP ViT-H-14
# --------------------------------------------------------------------------------------------

def clip_vision_hf_to_openclip(sd: Mapping[str, Tensor]) -> dict[str, Tensor]:
    """Convert an HF/ComfyUI-layout CLIP vision tower (``vision_model.*``, ``visual_projection``) to
    OpenCLIP's ``visual.*`` keys (q/k/v are fused into ``in_proj``; the projection is transposed).
    """
    p = "vision_model."
    out: dict[str, Tensor] = {
        "visual.class_embedding": sd[p + "embeddings.class_embedding"],
        "visual.conv1.weight": sd[p + "embeddings.patch_embedding.weight"],
        "visual.positional_embedding": sd[p + "embeddings.position_embedding.weight"],
        "visual.ln_pre.weight": sd[p + "pre_layrnorm.weight"],
        "visual.ln_pre.bias": sd[p + "pre_layrnorm.bias"],
        "visual.ln_post.weight": sd[p + "post_layernorm.weight"],
        "visual.ln_post.bias": sd[p + "post_layernorm.bias"],
        "visual.proj": sd["visual_projection.weight"].t().contiguous(),
    }
    layers = sorted({int(k.split(".")[3]) for k in sd if k.startswith(p + "encoder.layers.")})
    for i in layers:
        src, dst = f"{p}encoder.layers.{i}.", f"visual.transformer.resblocks.{i}."
        for kind in ("weight", "bias"):
            out[dst + f"attn.in_proj_{kind}"] = torch.cat(
                [sd[src + f"self_attn.{n}_proj.{kind}"] for n in ("q", "k", "v")], dim=0)
            out[dst + f"attn.out_proj.{kind}"] = sd[src + f"self_attn.out_proj.{kind}"]
            out[dst + f"ln_1.{kind}"] = sd[src + f"layer_norm1.{kind}"]
            out[dst + f"ln_2.{kind}"] = sd[src + f"layer_norm2.{kind}"]
            out[dst + f"mlp.c_fc.{kind}"] = sd[src + f"mlp.fc1.{kind}"]
            out[dst + f"mlp.c_proj.{kind}"] = sd[src + f"mlp.fc2.{kind}"]
    return out


def split_openclip_state_dict(sd: Mapping[str, Tensor], name: str) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
    """Return ``(vision, text)`` OpenCLIP-layout weights found in ``sd`` (either may be empty).

    Recognised: OpenCLIP checkpoints (``visual.*`` + text keys at the top level), HF/ComfyUI
    ``clip_vision`` files, and SD 2.x checkpoints (``cond_stage_model.model.*`` text tower).
    """
    if any(k.startswith("cond_stage_model.model.") for k in sd):
        sd = _strip(sd, "cond_stage_model.model.")
    if "vision_model.embeddings.patch_embedding.weight" in sd:
        try:
            vision = clip_vision_hf_to_openclip(sd)
        except KeyError as exc:
            raise PipelineError(f"{name}: incomplete CLIP vision file (missing {exc}); download it again.") from None
        return vision, {}
    vision = {k: v for k, v in sd.items() if k.startswith("visual.")}
    text = {k: v for k, v in sd.items() if not k.startswith("visual.") and k != "logit_scale" and k != "logit_bias"}
    if "token_embedding.weight" not in text:
        text = {}
    if not vision and not text:
        raise PipelineError(
            f"{name} is not an OpenCLIP ViT-H-14 file (no 'visual.*', 'vision_model.*' or text-tower keys); "
            "use open_clip_pytorch_model.bin, a clip_vision_h .safetensors or the SD 2.1 checkpoint."
        )
    return vision, text


def _create_vit_h14(open_clip: Any) -> Any:
    """OpenCLIP ViT-H-14 with uninitialised (to be loaded) weights, built without random init.

    Random-initialising ~1 B parameters only to overwrite them costs ~30 s on a small CPU, so the
    model is built on the meta device and materialised empty; the one non-persistent buffer, the
    text tower's causal mask, is rebuilt. Falls back to a normal build if OpenCLIP's layout changes.
    """
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # OpenCLIP warns "no pretrained weights loaded": we load them ourselves
    try:
        with torch.device("meta"):
            model = open_clip.create_model("ViT-H-14", pretrained=None, device="meta")
    except Exception:  # noqa: BLE001 - any failure: build the ordinary (slower) way
        return open_clip.create_model("ViT-H-14", pretrained=None, device="cpu")
    finally:
        root.setLevel(level)
    persistent = set(model.state_dict())
    transient = {name: buf for name, buf in model.named_buffers() if name not in persistent}
    if set(transient) != {"attn_mask"}:
        return open_clip.create_model("ViT-H-14", pretrained=None, device="cpu")
    n = transient["attn_mask"].shape[-1]
    model = model.to_empty(device="cpu")
    model.attn_mask = torch.full((n, n), float("-inf")).triu_(1)
    return model


class OpenClipEncoder:
    """OpenCLIP ViT-H-14 image embedding and empty-prompt context (implements ``ImageEncoder``)."""

    is_random = False

    def __init__(self, model: Any, has_vision: bool, has_text: bool, device: torch.device, dtype: torch.dtype) -> None:
        self.model = model
        self.has_vision = has_vision
        self.has_text = has_text
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_files(cls, *paths: str | os.PathLike, device: str | torch.device = "cpu",
                   dtype: torch.dtype = torch.float32) -> "OpenClipEncoder":
        """Build ViT-H-14 and load vision and/or text weights from the given files (first wins per tower)."""
        open_clip = _import_open_clip()
        vision: dict[str, Tensor] = {}
        text: dict[str, Tensor] = {}
        for path in paths:
            v, t = split_openclip_state_dict(read_state_dict(path), Path(path).name)
            vision = vision or v
            text = text or t
        if not vision and not text:
            raise PipelineError("no CLIP weights given; pass open_clip_pytorch_model.bin or a clip_vision_h file.")
        model = _create_vit_h14(open_clip)
        expected = model.state_dict()
        for tower, weights in (("vision", vision), ("text", text)):
            if not weights:
                continue
            keys = {k for k in expected if k.startswith("visual.") == (tower == "vision") and k not in ("logit_scale", "logit_bias")}
            missing = sorted(keys - weights.keys())
            unexpected = sorted(weights.keys() - expected.keys())
            if missing or unexpected:
                raise PipelineError(
                    f"the CLIP {tower} weights do not match OpenCLIP ViT-H-14 (missing {missing[:3]}, "
                    f"unexpected {unexpected[:3]}); UniAnimate needs the ViT-H-14 (laion2b) weights."
                )
            bad = [k for k in weights if tuple(weights[k].shape) != tuple(expected[k].shape)]
            if bad:
                raise PipelineError(f"the CLIP {tower} weights have other shapes than ViT-H-14 (e.g. {bad[0]}); "
                                    "UniAnimate needs OpenCLIP ViT-H-14.")
            model.load_state_dict(weights, strict=False)
        if not text:  # the uninitialised text tower is never used; make it harmless zeros anyway
            for key, value in model.state_dict().items():
                if not key.startswith("visual."):
                    value.zero_()
        if not vision:
            model.visual.requires_grad_(False)
            for value in model.visual.state_dict().values():
                value.zero_()
        dev = torch.device(device)
        model = model.to(device=dev, dtype=dtype).eval().requires_grad_(False)
        return cls(model, bool(vision), bool(text), dev, dtype)

    @torch.no_grad()
    def encode_image(self, pixels: Tensor) -> Tensor:
        """``(B, 3, 224, 224)`` normalised pixels -> ``(B, 1024)`` float32 (``model.encode_image``, no L2 norm)."""
        if not self.has_vision:
            raise PipelineError("these CLIP weights have no vision tower; give open_clip_pytorch_model.bin or a clip_vision_h file.")
        return self.model.encode_image(pixels.to(self.device, self.dtype), normalize=False).float()

    @torch.no_grad()
    def empty_context(self) -> Tensor:
        """``zero_y``: the text tower on "" up to the penultimate block, then ``ln_final`` -> (1, 77, 1024) for ViT-H-14.

        The blocks are called one by one in the layout the installed OpenCLIP uses (``batch_first``
        since 2.26, sequence-first before), which is what broke the official code on new versions
        (docs/official_behaviour.md#open-clip-text).
        """
        if not self.has_text:
            raise PipelineError(
                "the empty-prompt context needs the OpenCLIP-H text tower, which this CLIP file lacks; "
                "also give open_clip_pytorch_model.bin or the SD 2.1 checkpoint (v2-1_512-ema-pruned.ckpt)."
            )
        open_clip = _import_open_clip()
        m = self.model
        tokens = open_clip.tokenize([""]).to(self.device)
        x = m.token_embedding(tokens).to(self.dtype) + m.positional_embedding.to(self.dtype)
        batch_first = getattr(m.transformer, "batch_first", False)
        if not batch_first:
            x = x.permute(1, 0, 2)
        for block in m.transformer.resblocks[:-1]:
            x = block(x, attn_mask=m.attn_mask)
        if not batch_first:
            x = x.permute(1, 0, 2)
        out = m.ln_final(x).float()
        if tuple(out.shape[:2]) != (1, TEXT_TOKENS) or not bool(torch.isfinite(out).all()):
            raise PipelineError(f"the empty-prompt context came out as {tuple(out.shape)} with non-finite values or "
                                "a wrong length; the CLIP text weights are broken - download them again.")
        return out


# --------------------------------------------------------------------------------------------
# SD 2.1 VAE through diffusers
# --------------------------------------------------------------------------------------------

def vae_state_dict_to_diffusers(sd: Mapping[str, Tensor], name: str) -> dict[str, Tensor]:
    """LDM-layout VAE weights (bare, or inside an SD checkpoint under ``first_stage_model.``) -> diffusers keys.

    A file already in diffusers layout passes through unchanged. The conversion is diffusers' own.
    """
    _, convert = _import_diffusers_vae()
    if any(k.startswith("first_stage_model.") for k in sd):
        sd = _strip(sd, "first_stage_model.")
    if "encoder.conv_in.weight" not in sd or "decoder.conv_in.weight" not in sd:
        raise PipelineError(
            f"{name} holds no SD VAE weights (no encoder/decoder keys); use the SD 2.1 checkpoint "
            "v2-1_512-ema-pruned.ckpt/.safetensors or an SD 1.x/2.x VAE file such as vae-ft-mse-840000-ema-pruned."
        )
    if "encoder.down_blocks.0.resnets.0.conv1.weight" in sd:
        return dict(sd)
    return convert(dict(sd), SD_VAE_CONFIG)


class DiffusersVAE:
    """SD KL-f8 VAE via diffusers ``AutoencoderKL`` (implements ``LatentCodec``)."""

    is_random = False

    def __init__(self, vae: Any, device: torch.device, dtype: torch.dtype) -> None:
        self.vae = vae
        self.device = device
        self.dtype = dtype

    @classmethod
    def from_file(cls, path: str | os.PathLike, device: str | torch.device = "cpu",
                  dtype: torch.dtype = torch.float32) -> "DiffusersVAE":
        AutoencoderKL, _ = _import_diffusers_vae()
        sd = vae_state_dict_to_diffusers(read_state_dict(path), Path(path).name)
        vae = AutoencoderKL(**SD_VAE_CONFIG)
        result = vae.load_state_dict(sd, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise PipelineError(
                f"{Path(path).name}: the VAE weights do not fit the SD KL-f8 VAE (missing "
                f"{list(result.missing_keys)[:3]}, unexpected {list(result.unexpected_keys)[:3]}); "
                "UniAnimate needs the SD 2.1 (or SD 1.x) VAE."
            )
        dev = torch.device(device)
        vae = vae.to(device=dev) if dtype == torch.float32 else vae.to(device=dev, dtype=dtype)
        return cls(vae.eval().requires_grad_(False), dev, dtype)

    @torch.no_grad()
    def encode_moments(self, pixels: Tensor) -> Tensor:
        """``(B, 3, H, W)`` in [-1, 1] -> moments ``(B, 8, H/8, W/8)`` (encoder + quant_conv)."""
        return self.vae.encode(pixels.to(self.device, self.dtype)).latent_dist.parameters.float()

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        """Unscaled latents ``(B, 4, h, w)`` -> images ``(B, 3, 8h, 8w)`` in ~[-1, 1] (post_quant_conv + decoder)."""
        return self.vae.decode(latents.to(self.device, self.dtype)).sample.float()
