"""Nodes and command line share one path: the same inputs and seed give the same latent.

The command line's ``animate`` (tiny random CLIP/VAE stand-ins, keypoint poses of the demo clip) and
the UniAnimate Sampler / Long Video Loop nodes get the same reference photo, the same rendered poses,
the same UNet file and the same encoders (the stand-ins wrapped in ComfyUI's VAE / CLIP-vision
interface: ``encode`` returns the posterior mean, ``encode_image`` normalises a 224 x 224 input the
way ComfyUI does), for each strategy. Expected: the node's LATENT equals the command line's latent
divided by 0.18215, frames in the batch.

Tolerance: both sides compute the same float32 operations on the CPU; the node's layers are ComfyUI's
(``comfy.ops`` in the fake) and its attention goes through ComfyUI's dispatcher, which may order
the same sums differently. 1e-4 relative to the latent's scale allows that rounding (float32 epsilon
1.2e-7 times a few thousand accumulated operations) and is far below any real difference: another
seed changes the latent by its full scale, and drawing a posterior sample instead of the mean on the
command-line side changed it by 4.6 (latent scale 19) with these stand-ins. Measured here: the two
latents are bit-identical (max difference 0.0) for all three strategies.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from comfy_fake.models import ClipVisionOutput
from unianimate_core.checkpoint import load_unet
from unianimate_core.pipeline.conditioning import (
    LATENT_SCALE, clip_normalize, frames_from_decoded, posterior_mean, vae_input,
)
from unianimate_core.pipeline.encoders import TinyImageEncoder, TinyVAE
from unianimate_core.pipeline.poses import prepare_poses
from unianimate_core.pipeline.providers import TinyModels
from unianimate_core.pipeline.runner import AnimateOptions, animate
from unianimate_core.pipeline.video import read_clip, read_image

DEMO = Path(__file__).resolve().parents[2] / "demo"
KEYPOINTS = DEMO / "driving_keypoints.json"
SIZE, FRAMES, SEED = 64, 5, 21


class ComfyStyleVAE:
    """TinyVAE behind ComfyUI's VAE interface (IMAGE in/out, raw latents, posterior mean)."""

    latent_channels, downscale_ratio, upscale_ratio, latent_dim, output_channels = 4, 8, 8, 2, 3

    def __init__(self, vae: TinyVAE):
        self.vae = vae

    def encode(self, pixel_samples):
        return posterior_mean(self.vae.encode_moments(vae_input(pixel_samples.movedim(-1, 1))))

    def decode(self, samples_in, vae_options={}):
        return frames_from_decoded(self.vae.decode(samples_in)).movedim(1, -1)


class ComfyStyleClipVision:
    """TinyImageEncoder behind ComfyUI's CLIP-vision interface (8-bit rounding + mean/std at 224 x 224)."""

    def __init__(self, encoder: TinyImageEncoder):
        self.encoder = encoder

    def encode_image(self, image, crop=True):
        assert image.shape[1:3] == (224, 224)
        x = torch.clip(255.0 * image[..., :3], 0, 255).round() / 255.0
        out = ClipVisionOutput()
        out["image_embeds"] = self.encoder.encode_image(clip_normalize(x.movedim(-1, 1)))
        return out


class FixtureTinyModels(TinyModels):
    """The command line's tiny models with the UNet file the node loads (the tiny fixture checkpoint)."""

    def __init__(self, checkpoint: Path):
        super().__init__(seed=0)
        self.checkpoint = checkpoint

    def unet(self, zero_y):
        return load_unet(str(self.checkpoint), dtype=torch.float32, zero_y=zero_y)


@pytest.fixture(scope="module")
def media():
    reference = read_image(DEMO / "reference.png")
    clip = read_clip(DEMO / "driving.mp4", limit=FRAMES)
    stage = prepare_poses(reference, clip.frames, range(FRAMES), (SIZE, SIZE), backend="keypoints",
                          keypoints_file=KEYPOINTS)
    return reference, clip, stage


@pytest.fixture
def node_inputs(host, tiny_ckpt, media):
    """The node side: the same UNet file, the CLI's empty-prompt context cached next to it, wrapped encoders."""
    from node_helpers import install_tiny_model

    zero_y = TinyImageEncoder(0).empty_context()
    model = install_tiny_model(host, tiny_ckpt, zero_y)
    reference, _, stage = media
    as_image = lambda frames: torch.from_numpy(np.stack(frames)).float() / 255.0  # noqa: E731
    return dict(model=model, vae=ComfyStyleVAE(TinyVAE(0)), clip_vision=ComfyStyleClipVision(TinyImageEncoder(0)),
                reference_image=as_image([reference]), poses=as_image(stage.poses),
                reference_pose=as_image([stage.reference_pose]), width=SIZE, height=SIZE, max_frames=0,
                frame_interval=1, steps=2, guidance=2.5, seed=SEED, condition_mode="standard")


def cli_latent(tmp_path, media, tiny_ckpt, **options) -> torch.Tensor:
    reference, clip, _ = media
    opts = AnimateOptions(width=SIZE, height=SIZE, frames=FRAMES, steps=2, seed=SEED, pose_backend="keypoints",
                          preview=False, **options)
    result = animate(FixtureTinyModels(tiny_ckpt), reference, clip, opts, tmp_path / "cli.mp4", keypoints_file=KEYPOINTS,
                     log=lambda _msg: None, show_progress=False)
    assert result.frames == FRAMES and result.latent is not None
    return result.latent[0].permute(1, 0, 2, 3) / LATENT_SCALE  # ComfyUI's LATENT layout


def assert_same(node: torch.Tensor, cli: torch.Tensor) -> None:
    assert node.shape == cli.shape == (FRAMES, 4, SIZE // 8, SIZE // 8)
    scale = float(cli.abs().max())
    torch.testing.assert_close(node, cli, rtol=1e-4, atol=1e-4 * scale)


def test_sampler_node_and_cli_give_the_same_latent(host, tmp_path, media, tiny_ckpt, node_inputs):
    node = host.node_classes()["UniAnimateSampler"].execute(**node_inputs, noise_prior=949)[0]["samples"]
    cli = cli_latent(tmp_path, media, tiny_ckpt, strategy="short")
    assert_same(node, cli)
    other = host.node_classes()["UniAnimateSampler"].execute(**{**node_inputs, "seed": SEED + 1},
                                                             noise_prior=949)[0]["samples"]
    assert float((other - cli).abs().max()) > 0.1 * float(cli.abs().max())  # the comparison can fail


@pytest.mark.parametrize("strategy, cli_strategy", [("sliding_windows", "windows"),
                                                    ("first_frame_continuation", "continuation")])
def test_long_video_node_and_cli_give_the_same_latent(host, tmp_path, media, tiny_ckpt, node_inputs, strategy,
                                                      cli_strategy):
    prior = 939 if cli_strategy == "windows" else 949  # the command line's official prior per strategy
    node = host.node_classes()["UniAnimateLongVideoLoop"].execute(
        **node_inputs, noise_prior=prior, strategy=strategy, context_size=3, context_overlap=1)[0]["samples"]
    cli = cli_latent(tmp_path, media, tiny_ckpt, strategy=cli_strategy, context_size=3, context_overlap=1,
                     segment_length=3)
    assert_same(node, cli)
