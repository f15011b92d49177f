"""LongVideoLoop: videos of any length with either of UniAnimate's long-video strategies.

* sliding_windows - every denoising step runs the model on overlapping windows of ``context_size``
  frames and averages the overlaps (the official long-video sampler). All frames are denoised
  together, so nothing is finished before the last step.
* first_frame_continuation - segments of ``context_size`` frames; each segment starts from the
  decoded last frame of the previous one (the paper's iterative first-frame conditioning). Finished
  segments are kept when the job is cancelled (``keep_finished_on_cancel``): the node then returns the
  frames made so far and the workflow goes on to decode and save them.

One progress bar covers the whole job (denoising steps x window groups, or steps x segments).
"""
from __future__ import annotations

import logging
from typing import Any

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..unianimate_core.diffusion import (
    ContinuationOptions, NoiseOptions, SamplerOptions, SlidingWindowOptions, count_work_units,
    iter_sample_long_continuation, plan_segments, prepare_noise, sample_long_sliding,
)
from ..unianimate_core.errors import InputError
from . import choices, comfy_bridge
from .conditioning import Prepared, prepare
from .sampler import (
    CATEGORY, activate, check_model, check_run_inputs, latent_output, make_generator, model_inputs, noise_options,
    sampler_options, sampling_inputs, selection_inputs, validate_common,
)
from .types import UniAnimateModel

log = logging.getLogger("UniAnimate")

STRATEGIES = ("sliding_windows", "first_frame_continuation")


def window_problem(context_size: Any, context_overlap: Any) -> str | None:
    """context_size in 2..256 and context_overlap in 0..context_size - 1 (None = linked, unknown yet)."""
    if context_size is not None and (isinstance(context_size, bool) or not isinstance(context_size, int)
                                     or not 2 <= context_size <= 256):
        return f"context_size = {context_size!r} must be in 2..256 frames."
    if context_overlap is not None and (isinstance(context_overlap, bool) or not isinstance(context_overlap, int)
                                        or context_overlap < 0):
        return f"context_overlap = {context_overlap!r} must be 0 or more frames."
    if context_size is not None and context_overlap is not None and context_overlap >= context_size:
        return (f"context_overlap = {context_overlap} must be smaller than context_size ({context_size}), otherwise "
                "the windows never advance.")
    return None


class LongVideoLoop(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="UniAnimateLongVideoLoop",
            display_name="UniAnimate Long Video Loop",
            category=CATEGORY,
            description=(
                "Animates a pose sequence of any length. sliding_windows: overlapping windows averaged at every step "
                "(official long mode, smooth, all frames finish together). first_frame_continuation: segment after "
                "segment, each continuing from the last frame of the previous one (the paper's long videos; a "
                "cancelled job keeps its finished segments). Memory depends on context_size, not on the length."
            ),
            inputs=model_inputs() + selection_inputs(0) + sampling_inputs(939) + [
                io.Combo.Input("strategy", options=list(STRATEGIES), default=STRATEGIES[0],
                               tooltip="sliding_windows: overlapping windows denoised together (official long mode). "
                                       "first_frame_continuation: segments chained through their last frame."),
                io.Int.Input("context_size", default=32, min=2, max=256,
                             tooltip="Frames the model sees per call: the window length (sliding) or segment length "
                                     "(continuation). 32 = training length; lower it if you run out of memory."),
                io.Int.Input("context_overlap", default=8, min=0, max=255,
                             tooltip="sliding_windows: frames shared by neighbouring windows (official 8). More "
                                     "overlap = smoother transitions, more compute."),
                io.Int.Input("context_batch_size", default=1, min=1, max=64,
                             tooltip="sliding_windows: windows run together in one model call (faster on big GPUs, "
                                     "more memory)."),
                io.Float.Input("colour_anchor", default=0.0, min=0.0, max=1.0, step=0.05,
                               tooltip="first_frame_continuation: pull each handed-over frame's colours towards the "
                                       "reference (0 = off, official). Helps against slow colour drift in very long "
                                       "videos."),
                io.Boolean.Input("keep_finished_on_cancel", default=True,
                                 tooltip="first_frame_continuation: on Cancel, return the segments that are finished so "
                                         "the rest of the workflow decodes and saves them (off = a plain cancel)."),
            ],
            outputs=[latent_output()],
        )

    @classmethod
    def validate_inputs(cls, width: Any = None, height: Any = None, pose_colors: Any = None,
                        context_size: Any = None, context_overlap: Any = None) -> bool | str:
        """Static checks ComfyUI cannot make (see validate_common, plus overlap < window); ComfyUI passes a
        linked input as None (its value is not known yet): checked at run time. Each message names its input."""
        ok = validate_common(width, height, pose_colors)
        problems = [] if ok is True else [ok]
        problems.append(window_problem(context_size, context_overlap))
        return choices.verdict(problems)

    @classmethod
    def execute(cls, model: Any, vae: Any, clip_vision: Any, reference_image: torch.Tensor, poses: Any,
                reference_pose: Any, width: int = 512, height: int = 768, max_frames: int = 0,
                frame_interval: int = 1, steps: int = 30, guidance: float = 2.5, seed: int = 11,
                noise_prior: int = 939, condition_mode: str = "standard", pose_colors: str = "unianimate",
                strategy: str = STRATEGIES[0], context_size: int = 32, context_overlap: int = 8,
                context_batch_size: int = 1, colour_anchor: float = 0.0,
                keep_finished_on_cancel: bool = True) -> io.NodeOutput:
        if strategy not in STRATEGIES:
            raise InputError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
        model = check_model(model)
        pose_colors = check_run_inputs(model, width, height, max_frames, pose_colors)
        msg = window_problem(context_size, context_overlap)
        if msg:
            raise InputError(msg)
        # every option is validated before the encoders run (CLIP vision takes seconds to minutes)
        options = sampler_options(model, steps, guidance)
        generator = make_generator(seed)
        if strategy == "sliding_windows":
            windows = SlidingWindowOptions(context_size=int(context_size), context_overlap=int(context_overlap),
                                           context_batch_size=int(context_batch_size))
            noise = noise_options(noise_prior, "prior_then_offset")  # official long mode: prior first
            prep = prepare(vae, clip_vision, reference_image, poses, reference_pose, width, height,
                           model.config.pixel_multiple, condition_mode, pose_colors, max_frames, frame_interval)
            latent = run_sliding(model, prep, options, windows, noise, generator)
        else:
            continuation = ContinuationOptions(segment_length=int(context_size), colour_anchor=float(colour_anchor))
            noise = noise_options(noise_prior, "offset_then_prior")  # each segment's noise like a short run
            prep = prepare(vae, clip_vision, reference_image, poses, reference_pose, width, height,
                           model.config.pixel_multiple, condition_mode, pose_colors, max_frames, frame_interval)
            latent = run_continuation(model, vae, prep, options, continuation, noise, generator,
                                      keep_finished_on_cancel)
        return io.NodeOutput(comfy_bridge.to_comfy_latent(latent))


def run_sliding(model: UniAnimateModel, prep: Prepared, options: SamplerOptions, windows: SlidingWindowOptions,
                noise_opts: NoiseOptions, generator: torch.Generator) -> torch.Tensor:
    """Official long mode: every step denoises overlapping windows and averages the overlaps."""
    noise = prepare_noise(prep.latent_shape, generator, noise_opts, prior_latent=prep.ref_latent)
    per_call = min(windows.context_size, prep.frames)
    with comfy_bridge.oom_advice(f"sampling windows of {per_call} frames at {prep.width}x{prep.height}"):
        unet, options = activate(model, prep, per_call, windows.context_batch_size, options)
        total = count_work_units(prep.frames, options, windows)
        progress = comfy_bridge.ComfyProgress(total, model.patcher.load_device)
        latent = sample_long_sliding(unet, noise, prep.cond, options, windows, generator=generator,
                                     progress=progress, should_cancel=comfy_bridge.should_cancel)
    log.info("UniAnimate: generated %d frames at %dx%d with sliding windows of %d (overlap %d)",
             prep.frames, prep.width, prep.height, per_call, windows.context_overlap)
    return latent


def run_continuation(model: UniAnimateModel, vae: Any, prep: Prepared, options: SamplerOptions,
                     continuation: ContinuationOptions, noise_opts: NoiseOptions, generator: torch.Generator,
                     keep_finished: bool) -> torch.Tensor:
    """Segments chained through their decoded last frame; finished segments survive a Cancel."""
    per_call = min(continuation.segment_length, prep.frames)
    segments = plan_segments(prep.frames, continuation.segment_length)
    mem = comfy_bridge.memory_estimate(per_call, prep.height // 8, prep.width // 8, 1, model.compute_dtype)

    def decode_last_frame(latent: torch.Tensor) -> torch.Tensor:
        pixels = comfy_bridge.vae_decode_frames(vae, latent)
        comfy_bridge.load_for_sampling(model.patcher, mem)  # the VAE may have pushed the UNet out
        return pixels.to(latent.device)

    parts: list[torch.Tensor] = []
    with comfy_bridge.oom_advice(f"sampling segments of {per_call} frames at {prep.width}x{prep.height}"):
        unet, options = activate(model, prep, per_call, 1, options)
        progress = comfy_bridge.ComfyProgress(len(segments) * len(options.schedule_timesteps()),
                                              model.patcher.load_device)
        try:
            for segment in iter_sample_long_continuation(
                    unet, prep.cond, options, continuation, decode_last_frame=decode_last_frame,
                    noise=noise_opts, generator=generator, prior_latent=prep.ref_latent,
                    anchor_pixels=prep.ref_pixels, progress=progress, should_cancel=comfy_bridge.should_cancel):
                parts.append(segment.latent)
                log.info("UniAnimate: segment %d/%d done (%d frames)", segment.index + 1, len(segments),
                         sum(p.shape[2] for p in parts))
        except mm.InterruptProcessingException:
            if not (keep_finished and parts):
                raise
            done = sum(p.shape[2] for p in parts)
            log.warning("UniAnimate: cancelled after %d of %d segments; returning the %d finished frames of %d.",
                        len(parts), len(segments), done, prep.frames)
    return torch.cat(parts, dim=2)
