"""From a world clip to what the UNet and the sampler take, through the official data path.

The reference embedding goes through the pipeline's CLIP input rule (224 x 224 squash + CLIP
normalisation), the reference latent is a posterior *sample* x 0.18215, pose images are the pose
pipeline's renders - exactly what a real run feeds the model, with the world's codec and CLIP
stand-in in place of the SD VAE and OpenCLIP.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..diffusion.conditions import Conditions, ConditionMode
from ..pipeline.conditioning import LATENT_SCALE, clip_input, reference_latent, vae_input
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


@torch.no_grad()
def clip_conditions(clip: ToyClip, codec: LatentCodec, encoder: ImageEncoder, mode: ConditionMode = "standard",
                    generator: torch.Generator | None = None) -> Conditions:
    """The :class:`Conditions` of one clip (batch 1): CLIP embedding, reference latent/pixels, poses."""
    image = encoder.encode_image(clip_input(clip.reference)).float()
    poses = _pixels(clip.pose_images())                       # (F, 3, H, W)
    ref_pose = _pixels(clip.reference_pose_image())           # (1, 3, H, W)
    dwpose = torch.cat([ref_pose, poses]).permute(1, 0, 2, 3).unsqueeze(0)  # (1, 3, F+1, H, W)
    ref = _pixels(clip.reference)                             # (1, 3, H, W)
    ref_latent = reference_latent(codec.encode_moments(vae_input(ref)), generator) if mode != "first_frame" else None
    return Conditions.build(mode, image=image, dwpose=dwpose, ref_latent=ref_latent,
                            ref_pixels=ref if mode != "standard" else None)
