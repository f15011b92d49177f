"""A world clip feeds the real UNet through the official data path (codec and CLIP stand-ins plugged in)."""
from __future__ import annotations

import torch

from unianimate_core.pipeline.encoders import TinyVAE
from unianimate_core.toyworld import ToyImageEncoder, World, WorldConfig, clip_conditions, decode_latents, encode_frames


def test_clip_conditions_drive_the_tiny_unet_in_every_mode():
    from tests.tiny_unet import load_tiny_unet

    clip = World(WorldConfig(width=64, height=64, frames=3)).clip("train", 0)
    vae, enc = TinyVAE(), ToyImageEncoder()
    target = encode_frames(vae, clip.frames)
    assert target.shape == (1, 4, 3, 8, 8)
    model = load_tiny_unet()
    for mode in ("standard", "first_frame", "both"):
        cond = clip_conditions(clip, vae, enc, mode=mode, generator=torch.Generator().manual_seed(0))
        cond.validate(target.shape)
        with torch.no_grad():
            v = model(target, torch.tensor([500]), **cond.model_kwargs(3))
        assert v.shape == target.shape and torch.isfinite(v).all()
    # frame 0 of the pose stack is the reference pose, the rest the driving poses (uint8, the pipeline's
    # pose stack: the sampler divides by 255 exactly as the official loader)
    cond = clip_conditions(clip, vae, enc)
    assert torch.equal(cond.dwpose[0, :, 0], torch.from_numpy(clip.reference_pose_image()).permute(2, 0, 1))
    assert torch.equal(cond.dwpose[0, :, 1], torch.from_numpy(clip.pose_images()[0]).permute(2, 0, 1))
    assert decode_latents(vae, target).shape == (3, 3, 64, 64)
