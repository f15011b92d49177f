"""Headless UniAnimate: conditioning preparation shared with the ComfyUI nodes, the standalone
CLIP/VAE encoders (optional extra), video I/O and the command line (``python -m unianimate_core``).

The conditioning helpers are plain functions on tensors so the nodes can reuse them; see
docs/headless.md for the list and the rules they implement.
"""
from .conditioning import (
    CLIP_MEAN, CLIP_SIZE, CLIP_STD, LATENT_SCALE, check_size, clip_input, clip_normalize, clip_pixels,
    frames_from_decoded, latents_for_decode, posterior_sample, reference_latent, resize_frames,
    size_problem, squash_resize_u8, to_uint8_hwc, vae_input,
)
from .encoders import ImageEncoder, LatentCodec, TinyImageEncoder, TinyVAE
from .errors import MediaError, PipelineError
from .frames import FrameSelection, select_frames
from .preview import NOISE_BANNER, burn_banner, side_by_side
from .video import Clip, read_clip, read_image, to_uint8, write_video

__all__ = [
    "CLIP_MEAN", "CLIP_SIZE", "CLIP_STD", "LATENT_SCALE", "Clip", "FrameSelection", "ImageEncoder", "LatentCodec",
    "MediaError", "NOISE_BANNER", "PipelineError", "TinyImageEncoder", "TinyVAE", "burn_banner", "check_size",
    "clip_input", "clip_normalize", "clip_pixels", "frames_from_decoded", "latents_for_decode", "posterior_sample",
    "read_clip", "read_image", "reference_latent", "resize_frames", "select_frames", "side_by_side",
    "size_problem", "squash_resize_u8", "to_uint8", "to_uint8_hwc", "vae_input", "write_video",
]
