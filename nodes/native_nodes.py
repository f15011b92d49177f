"""UniAnimateConditioning: UniAnimate's inputs as CONDITIONING + LATENT for ComfyUI's own samplers.

Like WanImageToVideo for Wan: the node encodes the reference (VAE latent, CLIP-H embedding), renders
or resizes the driving poses, and returns a positive and a negative CONDITIONING and an empty LATENT
with one frame per selected pose (ComfyUI's frames-in-batch layout). KSampler / SamplerCustomAdvanced
then sample the MODEL output of 'Load UniAnimate Model' with them.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from comfy_api.latest import io

from ..unianimate_core.config import UNetConfig
from ..unianimate_core.diffusion import NoiseOptions
from ..unianimate_core.errors import InputError
from ..unianimate_core.pipeline.conditioning import size_problem
from . import choices
from .conditioning import CONDITION_MODES, prepare, select
from .native_model import COND_KEY, UniAnimateCondition, UniAnimateVideo
from .sampler import reference_inputs, validate_common

log = logging.getLogger("UniAnimate")

CATEGORY = "UniAnimate"


def build_conditioning(cond: Any, ref_latent: torch.Tensor, width: int, height: int, noise_prior: int,
                       offset_noise: float) -> tuple[list, list, dict]:
    """Core ``Conditions`` (dwpose (1, 3, F + 1, H, W) uint8 ...) -> positive, negative, LATENT.

    noise_prior: timestep the reference latent is diffused to for the start (0 = none);
    offset_noise: strength of the per-(channel, frame) offset noise (0 = none).
    """
    dwpose = cond.dwpose
    frames = int(dwpose.shape[2]) - 1
    noise = NoiseOptions(float(offset_noise), int(noise_prior) or None, "offset_then_prior")
    video = UniAnimateVideo(
        image=cond.image, ref_pose=dwpose[:, :, :1].contiguous(), randomref=cond.randomref,
        local_image=cond.local_image, ref_latent=ref_latent, noise=noise, frames=frames, width=width, height=height)
    poses = dwpose[0, :, 1:].transpose(0, 1).contiguous()  # (F, 3, H, W) uint8, frames in the batch
    positive = [[None, {COND_KEY: UniAnimateCondition(video, poses, conditional=True)}]]
    negative = [[None, {COND_KEY: UniAnimateCondition(video, poses, conditional=False)}]]
    latent = {"samples": torch.zeros(frames, 4, height // 8, width // 8)}
    return positive, negative, latent


class UniAnimateConditioning(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="UniAnimateConditioning",
            display_name="UniAnimate Conditioning",
            category=CATEGORY,
            description=(
                "Prepares UniAnimate for ComfyUI's own samplers: encodes the reference image, renders the driving poses "
                "and returns positive / negative conditioning and an empty LATENT (one frame per pose). Sample the "
                "MODEL output of 'Load UniAnimate Model' with KSampler (e.g. ddim / ddim_uniform, 30 steps, cfg 2.5 "
                "is the official setting) or SamplerCustomAdvanced; add 'Context Windows (Manual)' for long videos."
            ),
            inputs=[
                *reference_inputs("latent frame"),
                io.Int.Input("max_frames", default=32, min=0, max=100000,
                             tooltip="How many frames (0 = one per selected pose). Up to ~64 in one pass; longer: "
                                     "put 'Context Windows (Manual)' on the model."),
                io.Int.Input("frame_interval", default=1, min=1, max=64,
                             tooltip="Use every n-th pose (2 halves a 30 fps driving video to 15 fps of motion)."),
                io.Combo.Input("condition_mode", options=list(CONDITION_MODES), default="standard",
                               tooltip="standard: reference via its latent (the official default). first_frame: the "
                                       "reference becomes the first frame. both: all conditions."),
                io.Combo.Input("pose_colors", options=list(choices.COLOR_KEYS), default="unianimate",
                               tooltip="Colour convention of pose IMAGES. unianimate: the R/B-swapped colours "
                                       "UniAnimate was trained on, what this pack's pose nodes draw. openpose: "
                                       "standard OpenPose colours (pose images from other packs; they are converted). "
                                       "Ignored for POSE_KEYPOINT."),
                io.Int.Input("noise_prior", default=949, min=0, max=999,
                             tooltip="UniAnimate's noise prior: a new video starts from the reference latent diffused to "
                                     "this timestep (official 949 short / 939 long; 0 = plain noise). Applied by the "
                                     "model to the sampler's noise when the latent is empty; a refine or "
                                     "video-to-video latent is left alone."),
                io.Float.Input("offset_noise", default=0.1, min=0.0, max=1.0, step=0.01,
                               tooltip="Offset noise added to the start (one value per channel and frame; official "
                                       "0.1, drawn from the sampler's seed). 0 = none."),
            ],
            outputs=[
                io.Conditioning.Output(display_name="positive",
                                       tooltip="Reference, poses and text context for the conditional pass."),
                io.Conditioning.Output(display_name="negative",
                                       tooltip="UniAnimate's unconditional pass (every condition dropped)."),
                io.Latent.Output(display_name="latent",
                                 tooltip="Empty LATENT, one frame per pose (frames in the batch): connect KSampler's "
                                         "latent_image."),
            ],
        )

    @classmethod
    def validate_inputs(cls, width: Any = None, height: Any = None, pose_colors: Any = None) -> bool | str:
        """What ComfyUI cannot check: sizes that are multiples of 64, old colour labels (see choices.py)."""
        return validate_common(width, height, pose_colors)

    @classmethod
    def execute(cls, vae: Any, clip_vision: Any, reference_image: torch.Tensor, poses: Any, reference_pose: Any,
                width: int = 512, height: int = 768, max_frames: int = 32, frame_interval: int = 1,
                condition_mode: str = "standard", pose_colors: str = "unianimate", noise_prior: int = 949,
                offset_noise: float = 0.1) -> io.NodeOutput:
        multiple = UNetConfig().pixel_multiple  # the released layout; the UNet checks its own at run time
        problems = [size_problem("width", width, multiple), size_problem("height", height, multiple)]
        if isinstance(max_frames, bool) or not isinstance(max_frames, int) or max_frames < 0:
            problems.append(f"max_frames must be 0 (one frame per selected pose) or a positive number of frames; "
                            f"got {max_frames!r}.")
        if any(problems):
            raise InputError(" ".join(p for p in problems if p))
        pose_colors = choices.color_key("pose_colors", pose_colors)
        selection = select(poses, max_frames, frame_interval)
        prep = prepare(vae, clip_vision, reference_image, poses, reference_pose, width, height, multiple,
                       condition_mode, pose_colors, max_frames, frame_interval, selection=selection)
        positive, negative, latent = build_conditioning(prep.cond, prep.ref_latent, prep.width, prep.height,
                                                        noise_prior, offset_noise)
        log.info("UniAnimate: conditioning for %d frames at %dx%d (%s)", prep.frames, prep.width, prep.height,
                 condition_mode)
        return io.NodeOutput(positive, negative, latent)
