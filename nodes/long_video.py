"""LongVideoLoop: videos of any length with either of UniAnimate's long-video strategies.

* sliding_windows - every denoising step runs the model on overlapping windows of ``context_size``
  frames and averages the overlaps (the official long-video sampler). All frames are denoised
  together, so nothing is finished before the last step.
* first_frame_continuation - segments of ``context_size`` frames; each segment starts from the
  decoded last frame of the previous one (the paper's iterative first-frame conditioning). Finished
  segments are kept when the job is cancelled (``keep_finished_on_cancel``): before the cancel is
  passed on, their latent and their decoded video are written to ComfyUI's output folder
  (``UniAnimate/cancelled_long_video_NNNNN_.latent`` / ``.mp4``). The job still ends as cancelled:
  nothing downstream runs and ComfyUI caches nothing, so queueing it again computes it again.

One progress bar covers the whole job (denoising steps x window groups, or steps x segments).
"""
from __future__ import annotations

import logging
from typing import Any

import comfy.model_management as mm
import torch
from comfy_api.latest import io

from ..unianimate_core.diffusion import (
    ContinuationOptions, NoiseOptions, SamplerOptions, SlidingWindowOptions, plan_segments,
)
from ..unianimate_core.pipeline.prepare import (
    effective_sampler, noise_options, sample_clip, strategy_name, work_units,
)
from ..unianimate_core.errors import InputError
from . import choices, comfy_bridge
from .conditioning import Prepared, prepare, select
from .sampler import (
    CATEGORY, activate, check_model, check_run_inputs, latent_output, make_generator, model_inputs, refine_inputs,
    refine_latent, sampler_options, sampling_inputs, selection_inputs, validate_common,
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
                "cancelled job saves its finished segments to the output folder). Memory depends on context_size, "
                "not on the length."
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
                                 tooltip="first_frame_continuation: on Cancel, save the finished segments to ComfyUI's "
                                         "output folder (UniAnimate/cancelled_long_video_*.mp4 and .latent for Load "
                                         "Latent) before the job ends as cancelled. Off: nothing is saved."),
            ] + refine_inputs(),
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
                keep_finished_on_cancel: bool = True, latent: Any = None, denoise: float = 1.0) -> io.NodeOutput:
        if strategy not in STRATEGIES:
            raise InputError(f"strategy must be one of {STRATEGIES}; got {strategy!r}.")
        model = check_model(model)
        pose_colors = check_run_inputs(model, width, height, max_frames, pose_colors)
        msg = window_problem(context_size, context_overlap)
        if msg:
            raise InputError(msg)
        # every option is validated before the encoders run (CLIP vision takes seconds to minutes)
        options = sampler_options(model, steps, guidance)
        core_strategy = strategy_name(strategy)
        windows = SlidingWindowOptions(context_size=int(context_size), context_overlap=int(context_overlap),
                                       context_batch_size=int(context_batch_size))
        continuation = ContinuationOptions(segment_length=int(context_size), colour_anchor=float(colour_anchor))
        noise = noise_options(core_strategy, noise_prior)  # the strategy's official order of prior and offset
        selection = select(poses, max_frames, frame_interval)
        init = refine_latent(latent, denoise, selection.num_frames, width, height)
        prep = prepare(vae, clip_vision, reference_image, poses, reference_pose, width, height,
                       model.config.pixel_multiple, condition_mode, pose_colors, max_frames, frame_interval,
                       selection=selection)
        out = run_long(model, vae, prep, core_strategy, options, windows, continuation, noise,
                       make_generator(seed), keep_finished_on_cancel, init, float(denoise))
        return io.NodeOutput(comfy_bridge.to_comfy_latent(out))


def run_long(model: UniAnimateModel, vae: Any, prep: Prepared, strategy: str, options: SamplerOptions,
             windows: SlidingWindowOptions, continuation: ContinuationOptions, noise: NoiseOptions,
             generator: torch.Generator, keep_finished: bool, init: torch.Tensor | None = None,
             denoise: float = 1.0) -> torch.Tensor:
    """The core's sampling path with ComfyUI's memory management, progress bar and Cancel.

    sliding windows: every step denoises overlapping windows and averages the overlaps (one part at
    the end). continuation: segments chained through their decoded last frame; finished segments
    survive a Cancel.
    """
    per_call = min(windows.context_size if strategy == "windows" else continuation.segment_length, prep.frames)
    batch = windows.context_batch_size if strategy == "windows" else 1
    mem = comfy_bridge.memory_estimate(per_call, prep.height // 8, prep.width // 8, 1, model.compute_dtype,
                                      model.config.temporal)

    def decode_last_frame(latent: torch.Tensor) -> torch.Tensor:
        pixels = comfy_bridge.vae_decode_frames(vae, latent)
        comfy_bridge.load_for_sampling(model.patcher, mem)  # the VAE may have pushed the UNet out
        return pixels.to(latent.device)

    parts: list[torch.Tensor] = []
    segments = len(plan_segments(prep.frames, continuation.segment_length))
    what = "windows" if strategy == "windows" else "segments"
    with comfy_bridge.oom_advice(f"sampling {what} of {per_call} frames at {prep.width}x{prep.height}"):
        unet, options = activate(model, prep, per_call, batch, options)
        steps_run = effective_sampler(options, denoise, init is not None)
        progress = comfy_bridge.ComfyProgress(work_units(prep.frames, strategy, steps_run, windows, continuation),
                                              model.patcher.load_device)
        try:
            for part in sample_clip(unet, prep, strategy, options, generator=generator, noise=noise, windows=windows,
                                    continuation=continuation, decode_last_frame=decode_last_frame, progress=progress,
                                    should_cancel=comfy_bridge.should_cancel, init_latent=init, denoise=denoise):
                parts.append(part.latent)
                if part.index is not None:
                    log.info("UniAnimate: segment %d/%d done (%d frames)", part.index + 1, segments,
                             sum(p.shape[2] for p in parts))
        except mm.InterruptProcessingException:
            if keep_finished and parts:
                done = sum(p.shape[2] for p in parts)
                files = comfy_bridge.save_finished_frames(vae, torch.cat(parts, dim=2))
                log.warning("UniAnimate: cancelled after %d of %d segments; the %d finished frames of %d are saved "
                            "in ComfyUI's output folder: %s", len(parts), segments, done, prep.frames,
                            ", ".join(files))
            raise  # a cancel stays a cancel: ComfyUI reports the job cancelled and caches nothing
    if strategy == "windows":
        log.info("UniAnimate: generated %d frames at %dx%d with sliding windows of %d (overlap %d)",
                 prep.frames, prep.width, prep.height, per_call, windows.context_overlap)
    return torch.cat(parts, dim=2)
