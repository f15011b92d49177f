"""Turn the sampler nodes' inputs (IMAGE batches, POSE_KEYPOINT, ComfyUI's VAE/CLIP vision) into the
core's prepared clip. The preparation itself - frame selection, pose stack, squash resize, CLIP and
VAE encoding of the reference, conditions - is the core's one path (``unianimate_core.pipeline.
prepare``, shared with the command line); this module only checks ComfyUI's values and adapts
ComfyUI's VAE / CLIP vision objects to the core's encoder callables.
"""
from __future__ import annotations

import logging
from typing import Any, Optional

import torch

from ..unianimate_core.errors import InputError
from ..unianimate_core.pipeline.frames import FrameSelection
from ..unianimate_core.pipeline.prepare import (
    PreparedClip, is_keypoints, prepare_clip, select_poses,
)
from . import comfy_bridge

log = logging.getLogger("UniAnimate")

CONDITION_MODES = ("standard", "first_frame", "both")
#: The prepared clip (kept under its former name for the other node modules).
Prepared = PreparedClip


def image_batch(images: Any, name: str) -> torch.Tensor:
    """Check a ComfyUI IMAGE batch (N >= 1, H, W, C) with C = 3 (1 = grey, 4 = RGBA also work).

    The usual mistakes get named: a MASK (N, H, W) in an IMAGE socket, an empty batch (a video
    loader that produced no frames), another type (POSE_KEYPOINT, LATENT ...).
    """
    if not isinstance(images, torch.Tensor):
        raise InputError(f"{name} must be an IMAGE (a batch shaped (N, H, W, 3)); got {type(images).__name__}.")
    if images.ndim == 3:
        raise InputError(
            f"{name} got a tensor shaped {tuple(images.shape)}: that is a MASK, not an IMAGE. Connect an IMAGE "
            "output (e.g. the first output of Load Image), or convert the mask with 'Convert Mask to Image'."
        )
    if images.ndim != 4 or images.shape[-1] not in (1, 3, 4):
        raise InputError(f"{name} must be an IMAGE (a batch shaped (N, H, W, 3)); got shape {tuple(images.shape)}.")
    if images.shape[0] == 0:
        raise InputError(f"{name} is an empty IMAGE batch (0 images); check the loader that feeds it (e.g. a video "
                         "with no frames, or a frame range past its end).")
    return images


def first_image(images: torch.Tensor, name: str) -> torch.Tensor:
    """One (H, W, C) image from an IMAGE batch; more than one is a mistake worth naming."""
    images = image_batch(images, name)
    if images.shape[0] > 1:
        raise InputError(
            f"{name} has {images.shape[0]} images; it must be a single image. If this is a video, connect it to the "
            "pose input instead, or pick one frame with 'ImageFromBatch'."
        )
    return images[0]


def pose_frame_count(poses: Any) -> int:
    if is_keypoints(poses):
        count = len(poses)
    elif isinstance(poses, torch.Tensor):
        count = int(image_batch(poses, "poses").shape[0])
    else:
        raise InputError(f"poses must be pose images (IMAGE) or POSE_KEYPOINT; got {type(poses).__name__}.")
    if count == 0:
        raise InputError("The pose sequence is empty: no frames to animate. Check the video loader and the pose "
                         "extractor.")
    return count


def check_reference_pose(reference_pose: Any) -> Any:
    """The reference pose: one frame of keypoints or one image (a multi-frame input: swapped sockets?)."""
    if is_keypoints(reference_pose):
        if len(reference_pose) != 1:
            raise InputError(
                f"reference_pose has {len(reference_pose)} frames of keypoints; it must be the pose of the reference "
                "image only (connect the reference_pose output of UniAnimate Pose Align)."
            )
        return reference_pose
    return first_image(reference_pose, "reference_pose")[None]


def select(poses: Any, max_frames: int, frame_interval: int) -> FrameSelection:
    selection = select_poses(pose_frame_count(poses), max_frames, frame_interval)
    comfy_bridge.log_note(selection.note)
    return selection


def prepare(vae: Any, clip_vision: Any, reference_image: torch.Tensor, poses: Any, reference_pose: Any,
            width: int, height: int, multiple: int, condition_mode: str, pose_colors: str,
            max_frames: int, frame_interval: int, selection: Optional[FrameSelection] = None) -> PreparedClip:
    """The core's preparation with ComfyUI's VAE and CLIP vision (everything on the CPU)."""
    if condition_mode not in CONDITION_MODES:
        raise InputError(f"condition_mode must be one of {CONDITION_MODES}; got {condition_mode!r}.")
    selection = selection or select(poses, max_frames, frame_interval)
    reference = first_image(reference_image, "reference_image")
    reference_pose = check_reference_pose(reference_pose)
    comfy_bridge.check_vae(vae)
    return prepare_clip(
        reference, poses, reference_pose, width=width, height=height, mode=condition_mode,
        encode_image=lambda pixels: comfy_bridge.clip_image_embedding(clip_vision, pixels),
        encode_latent=lambda pixels: comfy_bridge.vae_encode_mean(vae, pixels),
        selection=selection, colors=pose_colors, pixel_multiple=multiple)


__all__ = ["CONDITION_MODES", "Prepared", "check_reference_pose", "first_image", "image_batch", "pose_frame_count",
           "prepare", "select"]
