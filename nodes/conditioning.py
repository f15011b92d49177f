"""Turn the sampler nodes' inputs (IMAGE batches, POSE_KEYPOINT, ComfyUI's VAE/CLIP vision) into the
core's :class:`Conditions` - every rule (squash resize, CLIP preprocessing, frame selection) is the
core's; this module only moves data between ComfyUI's layouts and the core's.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Optional, Sequence

import numpy as np
import torch

from ..unianimate_core.diffusion import Conditions
from ..unianimate_core.errors import InputError
from ..unianimate_core.pipeline.conditioning import check_size, clip_pixels, resize_frames, squash_resize_u8
from ..unianimate_core.pipeline.frames import FrameSelection, select_frames
from ..unianimate_core.pose.image import swap_red_blue
from . import comfy_bridge

log = logging.getLogger("UniAnimate")

CONDITION_MODES = ("standard", "first_frame", "both")


@dataclass(frozen=True)
class Prepared:
    """Everything a sampler needs, on the CPU.

    cond: conditions with dwpose (1, 3, F + 1, H, W) uint8, image (1, 1, 1024), and - per mode -
    randomref (1, 4, 1, h, w) / local_image (1, 3, 1, H, W). ref_latent: (1, 4, h, w) x 0.18215.
    """

    cond: Conditions
    ref_latent: torch.Tensor
    ref_pixels: torch.Tensor
    width: int
    height: int
    selection: FrameSelection

    @property
    def frames(self) -> int:
        return self.selection.num_frames

    @property
    def latent_shape(self) -> tuple[int, int, int, int, int]:
        return (1, 4, self.frames, self.height // 8, self.width // 8)


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


def is_keypoints(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and (len(value) == 0 or isinstance(value[0], dict))


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


def render_keypoints(frames: Sequence[dict], width: int, height: int) -> np.ndarray:
    """POSE_KEYPOINT frames -> (N, H, W, 3) uint8 drawn in the trained style at the target size."""
    from ..unianimate_core.pose.pose_keypoint import from_pose_keypoint
    from ..unianimate_core.pose.render import render_poses

    return render_poses(from_pose_keypoint(list(frames)), width, height)


def pose_pixels_u8(poses: Any, indices: Sequence[int], width: int, height: int, colors: str) -> np.ndarray:
    """Selected pose frames as (F, H, W, 3) uint8 in the trained colour convention."""
    if is_keypoints(poses):
        return render_keypoints([poses[i] for i in indices], width, height)
    frames = np.stack([squash_resize_u8(poses[i], (width, height)) for i in indices])
    return swap_red_blue(frames) if colors == "openpose" else frames


def reference_pose_u8(reference_pose: Any, width: int, height: int, colors: str) -> np.ndarray:
    """The reference pose as (1, H, W, 3) uint8; a multi-frame input is rejected (swapped sockets?)."""
    if is_keypoints(reference_pose):
        if len(reference_pose) != 1:
            raise InputError(
                f"reference_pose has {len(reference_pose)} frames of keypoints; it must be the pose of the reference "
                "image only (connect the reference_pose output of UniAnimate Pose Align)."
            )
        return render_keypoints(reference_pose, width, height)
    image = first_image(reference_pose, "reference_pose")
    arr = squash_resize_u8(image, (width, height))[None]
    return swap_red_blue(arr) if colors == "openpose" else arr


def select(poses: Any, max_frames: int, frame_interval: int) -> FrameSelection:
    total = pose_frame_count(poses)
    if max_frames == 1:  # a single frame (repose): the first selected pose
        first = select_frames(total, None, frame_interval).indices[:1]
        return FrameSelection(first, 1, 0, frame_interval)
    selection = select_frames(total, max_frames if max_frames > 0 else None, frame_interval)
    comfy_bridge.log_note(selection.note)
    return selection


def prepare(vae: Any, clip_vision: Any, reference_image: torch.Tensor, poses: Any, reference_pose: Any,
            width: int, height: int, multiple: int, condition_mode: str, pose_colors: str,
            max_frames: int, frame_interval: int, selection: Optional[FrameSelection] = None) -> Prepared:
    """Resize, select, encode: the sampler inputs in the core's layout (all on the CPU)."""
    if condition_mode not in CONDITION_MODES:
        raise InputError(f"condition_mode must be one of {CONDITION_MODES}; got {condition_mode!r}.")
    check_size(width, height, multiple)
    selection = selection or select(poses, max_frames, frame_interval)
    reference = first_image(reference_image, "reference_image")
    comfy_bridge.check_vae(vae)

    ref_pose_u8 = reference_pose_u8(reference_pose, width, height, pose_colors)  # cheap checks first
    pose_u8 = pose_pixels_u8(poses, selection.indices, width, height, pose_colors)
    stack = np.concatenate([ref_pose_u8, pose_u8])  # (F + 1, H, W, 3), frame 0 = reference pose
    dwpose = torch.from_numpy(np.ascontiguousarray(stack)).permute(3, 0, 1, 2).unsqueeze(0)  # (1, 3, F+1, H, W)

    ref_pixels = resize_frames(reference, (width, height))  # (1, 3, H, W) in [0, 1]
    image = comfy_bridge.clip_image_embedding(clip_vision, clip_pixels(reference))
    ref_latent = comfy_bridge.vae_encode_reference(vae, ref_pixels)
    cond = Conditions.build(condition_mode, image=image, dwpose=dwpose, ref_latent=ref_latent, ref_pixels=ref_pixels)
    return Prepared(cond=cond, ref_latent=ref_latent, ref_pixels=ref_pixels, width=width, height=height,
                    selection=selection)
