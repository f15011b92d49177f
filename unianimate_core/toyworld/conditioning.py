"""From a world clip to what the UNet and the sampler take, through the official data path.

Conditions come from the pipeline's one preparation path (``pipeline.prepare.prepare_clip``, shared
with the nodes and the command line): the CLIP input rule (224 x 224 squash + CLIP normalisation),
the reference latent as the VAE posterior *mean* x 0.18215, the pose stack of the pose pipeline's
renders - exactly what a real run feeds the model, with the world's codec and CLIP stand-in in place
of the SD VAE and OpenCLIP.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..diffusion.conditions import Conditions, ConditionMode
from ..pipeline.conditioning import LATENT_SCALE, clip_normalize, posterior_mean, vae_input
from ..pipeline.encoders import ImageEncoder, LatentCodec
from .world import ToyClip


def _pixels(frames_u8) -> Tensor:
    """uint8 ``(F, H, W, 3)`` or ``(H, W, 3)`` -> float32 ``(F, 3, H, W)`` in [0, 1] (``u8 / 255``)."""
    t = torch.from_numpy(frames_u8.copy() if not frames_u8.flags.c_contiguous else frames_u8)
    if t.ndim == 3:
        t = t[None]
    return t.permute(0, 3, 1, 2).to(torch.float32) / 255.0


@torch.no_grad()
def encode_frames(codec: LatentCodec, frames_u8, batch: int = 16) -> Tensor:
    """Posterior *means* of frames ``(F, H, W, 3)`` uint8 -> ``(1, 4, F, h, w)`` x 0.18215 (UNet scale)."""
    pix = vae_input(_pixels(frames_u8))
    means = [codec.encode_moments(pix[i:i + batch])[:, :4] for i in range(0, pix.shape[0], batch)]
    return (torch.cat(means) * LATENT_SCALE).permute(1, 0, 2, 3).unsqueeze(0)


@torch.no_grad()
def decode_latents(codec: LatentCodec, latents: Tensor, batch: int = 16) -> Tensor:
    """UNet-scale latents ``(1, 4, F, h, w)`` -> frames ``(F, 3, H, W)`` in [0, 1]."""
    z = (latents[0] / LATENT_SCALE).permute(1, 0, 2, 3)
    out = [codec.decode(z[i:i + batch]) for i in range(0, z.shape[0], batch)]
    return (torch.cat(out).float() * 0.5 + 0.5).clamp(0.0, 1.0)


def toy_encoders(codec: LatentCodec, encoder: ImageEncoder):
    """The ``encode_image`` / ``encode_latent`` callables of :func:`~unianimate_core.pipeline.prepare.prepare_clip`
    for a codec and an image encoder (CLIP normalisation; posterior mean), as the headless runner builds them."""

    def encode_image(pixels: Tensor) -> Tensor:      # (1, 224, 224, 3) in [0, 1]
        return encoder.encode_image(clip_normalize(pixels.permute(0, 3, 1, 2))).float()

    def encode_latent(pixels: Tensor) -> Tensor:     # (1, 3, H, W) in [0, 1] -> raw posterior mean
        return posterior_mean(codec.encode_moments(vae_input(pixels)))

    return encode_image, encode_latent


@torch.no_grad()
def prepare_toy_clip(clip: ToyClip, codec: LatentCodec, encoder: ImageEncoder, mode: ConditionMode = "standard"):
    """One world clip through the pipeline's one preparation path (``pipeline.prepare.prepare_clip``, the
    path of the nodes and the command line): reference embedding and latent (posterior mean), pose stack
    (reference pose, then the driving poses) -> a :class:`~unianimate_core.pipeline.prepare.PreparedClip`."""
    from ..pipeline.prepare import prepare_clip

    encode_image, encode_latent = toy_encoders(codec, encoder)
    return prepare_clip(clip.reference, clip.pose_images(), clip.reference_pose_image(), width=clip.width,
                        height=clip.height, mode=mode, encode_image=encode_image, encode_latent=encode_latent)


@torch.no_grad()
def clip_conditions(clip: ToyClip, codec: LatentCodec, encoder: ImageEncoder, mode: ConditionMode = "standard",
                    generator: torch.Generator | None = None) -> Conditions:
    """The :class:`Conditions` of one clip (batch 1), from :func:`prepare_toy_clip` (``generator`` is
    accepted for compatibility and unused: the reference latent is the posterior mean, as in every front end)."""
    return prepare_toy_clip(clip, codec, encoder, mode).cond
