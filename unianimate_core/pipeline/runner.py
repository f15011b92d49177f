"""One headless UniAnimate run: reference photo + driving clip -> mp4 (+ side-by-side preview).

Data path (official inference, docs/official_behaviour.md#inference-data-path): select frames -> poses
(extract, align, render) -> the shared preparation and sampling path of ``prepare.py`` (the one the
ComfyUI nodes use: CLIP embedding of the reference (224 squash), VAE posterior *mean* of the reference
x 0.18215, pose stack, conditions, start noise per strategy, DDIM with guidance: short clip, sliding windows or
first-frame continuation) -> VAE decode -> 8-bit frames -> mp4.

Robustness: every finished continuation segment is decoded and written to
``<out>.segments/segment_NNN.mp4`` as soon as it exists, so Ctrl-C keeps it; the final files are
written under a temporary name and renamed, so a crash never leaves a truncated result.
Model memory: the CLIP model is released before the UNet is loaded (CLIP is only needed once).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, TextIO

import numpy as np
import torch
from torch import Tensor

from ..diffusion import Conditions, SamplerOptions
from ..diffusion.continuation import ContinuationOptions
from ..diffusion.deep_cache import DEFAULT_DEPTH
from ..diffusion.windows import SlidingWindowOptions

from .conditioning import (
    LATENT_SCALE, check_size, clip_normalize, frames_from_decoded, latents_for_decode, posterior_mean, resize_frames,
    vae_input,
)
from .encoders import ImageEncoder, LatentCodec
from .errors import PipelineError
from .frames import FrameSelection, select_frames
from .poses import POSE_BACKENDS, PoseStage, prepare_poses
from .prepare import (
    PreparedClip, Reference, image_embedding, noise_options, pose_stack, reference_latent_mean, render_pose_frames,
    sample_clip, select_poses,
)
from .preview import NOISE_BANNER, burn_banner, side_by_side
from .progress import ProgressBar
from .video import Clip, Rounding, to_uint8, write_video

Strategy = Literal["auto", "short", "windows", "continuation"]
STRATEGIES: tuple[str, ...] = ("auto", "short", "windows", "continuation")
MODES: tuple[str, ...] = ("standard", "first_frame", "both")
NOISE_SUFFIX = "_random-weights-noise"


class ModelProvider(Protocol):
    """Where :func:`animate` gets its models; loads lazily so CLIP can be freed before the UNet loads."""

    is_random: bool
    label: str
    pixel_multiple: int
    device: torch.device
    dtype: torch.dtype

    def image_encoder(self) -> ImageEncoder: ...

    def zero_y(self, encoder: ImageEncoder) -> Tensor: ...

    def vae(self) -> LatentCodec: ...

    def unet(self, zero_y: Tensor) -> Callable[..., Tensor]: ...

    def release(self, what: str) -> None: ...


@dataclass(frozen=True)
class AnimateOptions:
    """Everything a user chooses for one run (official defaults where the official code has one).

    width/height: output size in pixels (multiples of 64 for the released model; official 512x768).
    frames: frames to generate (None = every ``frame_interval``-th frame of the whole clip).
    frame_interval: use every n-th driving frame. steps/guidance/seed: DDIM steps (30 runs 31),
    classifier-free guidance scale (2.5), seed. strategy: "short" (one pass), "windows" (official
    sliding windows), "continuation" (first-frame segments, Ctrl-C keeps finished ones) or "auto"
    (short up to ``segment_length`` frames, else continuation). mode: "standard" (reference latent),
    "first_frame" (reference pixels as the first frame) or "both". pose_backend: see poses.py.
    uint8: "round" or "truncate" (official) for the 8-bit conversion. fps: output frame rate
    (None = driving fps / stride). decode_chunk: frames per VAE decode call (official 2).
    solver / timestep_spacing / guidance_end: speed options, off by default (see SamplerOptions:
    "dpmpp_2m" with "logsnr" spacing needs far fewer steps; guidance only on the first fraction of steps).
    deep_cache_interval / deep_cache_depth: reuse the UNet's deep features between steps (1 = off, default;
    N = the whole UNet every N-th step, only its first/last ``deep_cache_depth`` blocks in between).
    """

    width: int = 512
    height: int = 768
    frames: int | None = 32
    frame_interval: int = 1
    steps: int = 30
    guidance: float = 2.5
    seed: int = 11
    strategy: Strategy = "auto"
    segment_length: int = 32
    context_size: int = 32
    context_overlap: int = 8
    mode: str = "standard"
    pose_backend: str = "auto"
    align: bool = True
    uint8: Rounding = "round"
    fps: float | None = None
    decode_chunk: int = 2
    preview: bool = True
    solver: str = "ddim"
    timestep_spacing: str = "official"
    guidance_end: float = 1.0
    deep_cache_interval: int = 1
    deep_cache_depth: int = DEFAULT_DEPTH

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise PipelineError(f"unknown long-video strategy {self.strategy!r}; use one of {', '.join(STRATEGIES)}.")
        if self.mode not in MODES:
            raise PipelineError(f"unknown condition mode {self.mode!r}; use one of {', '.join(MODES)}.")
        if self.pose_backend not in POSE_BACKENDS:
            raise PipelineError(f"unknown pose backend {self.pose_backend!r}; use one of {', '.join(POSE_BACKENDS)}.")
        if self.uint8 not in ("round", "truncate"):
            raise PipelineError(f"--uint8 must be 'round' or 'truncate'; got {self.uint8!r}.")
        if self.decode_chunk < 1:
            raise PipelineError(f"decode_chunk must be >= 1; got {self.decode_chunk}.")
        if self.fps is not None and not (0 < self.fps <= 240):
            raise PipelineError(f"fps must be in (0, 240]; got {self.fps}.")
        if not (-1e6 < float(self.guidance) < 1e6):
            raise PipelineError(f"guidance must be a finite number; got {self.guidance}.")
        if self.frame_interval < 1:
            raise PipelineError(f"--frame-interval must be >= 1 (use every n-th driving frame); got {self.frame_interval}.")
        if self.frames is not None and self.frames < 2:
            raise PipelineError(f"--frames must be >= 2 (or 'all'); got {self.frames}.")

    def long_video_options(self) -> tuple[SlidingWindowOptions, ContinuationOptions]:
        """The window and segment settings, validated (called before anything is loaded)."""
        return (SlidingWindowOptions(self.context_size, self.context_overlap),
                ContinuationOptions(segment_length=self.segment_length))

    def resolved_strategy(self, num_frames: int) -> str:
        if self.strategy != "auto":
            return self.strategy
        return "short" if num_frames <= self.segment_length else "continuation"


@dataclass
class AnimateResult:
    """What a run wrote. ``video``/``preview`` are None when nothing finished before an interrupt."""

    video: Path | None
    preview: Path | None
    preview_image: Path | None
    frames: int
    planned_frames: int
    size: tuple[int, int]
    fps: float
    interrupted: bool
    is_random: bool
    segments_dir: Path | None
    seconds: float
    notes: list[str] = field(default_factory=list)
    latent: Tensor | None = None  # (1, 4, frames, h, w) float32 CPU: the finished frames' latents (x 0.18215)


def output_paths(out: str | Path, is_random: bool) -> tuple[Path, Path, Path, Path]:
    """(video, preview video, preview still, segments folder); noise runs get a telling suffix."""
    p = Path(out)
    if p.suffix.lower() != ".mp4":
        p = p.with_name(p.name + ".mp4") if p.suffix == "" else p.with_suffix(".mp4")
    stem = p.stem + (NOISE_SUFFIX if is_random and not p.stem.endswith(NOISE_SUFFIX) else "")
    video = p.with_name(stem + ".mp4")
    return (video, p.with_name(stem + "_preview.mp4"), p.with_name(stem + "_preview.png"),
            p.with_name(stem + ".segments"))


# --------------------------------------------------------------------------------------------
# conditioning
# --------------------------------------------------------------------------------------------

def build_conditions(mode: str, image_embedding: Tensor, poses: PoseStage, ref_latent: Tensor | None,
                     ref_pixels: Tensor | None) -> Conditions:
    """Conditions of one clip: dwpose = [reference pose, target poses] as uint8 ``(1, 3, F+1, H, W)``
    (``prepare.pose_stack``, the nodes' pose stack)."""
    dwpose = pose_stack(poses.reference_pose, np.stack(poses.poses))
    image = image_embedding.reshape(image_embedding.shape[0], 1, -1)
    return Conditions.build(mode, image=image, dwpose=dwpose, ref_latent=ref_latent, ref_pixels=ref_pixels)  # type: ignore[arg-type]


def decode_latents(vae: LatentCodec, latents: Tensor, chunk: int = 2) -> Tensor:
    """Video latents ``(1, 4, F, h, w)`` (x 0.18215) -> frames ``(F, 3, H, W)`` in [0, 1], ``chunk`` at a time."""
    flat = latents_for_decode(latents)
    parts = [frames_from_decoded(vae.decode(flat[i:i + chunk])).cpu() for i in range(0, flat.shape[0], chunk)]
    return torch.cat(parts, dim=0)


def decode_to_uint8(vae: LatentCodec, latents: Tensor, chunk: int = 2, mode: Rounding = "round") -> list[np.ndarray]:
    """Video latents ``(1, 4, F, h, w)`` -> uint8 frames ``(H, W, 3)``, ``chunk`` frames decoded at a time.

    Each chunk is converted to 8 bits before the next one is decoded, so a long video never holds the
    float frames (4x the bytes of the output) or the decoder's activations of more than one chunk.
    Same frames as ``to_uint8(decode_latents(...))``.
    """
    flat = latents_for_decode(latents)
    out: list[np.ndarray] = []
    for i in range(0, flat.shape[0], chunk):
        out += list(to_uint8(frames_from_decoded(vae.decode(flat[i:i + chunk])).cpu(), mode))
    return out


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

class _Progress:
    """Adapts the sampler's ``progress(done, total, preview)`` callback to the stderr bar."""

    def __init__(self, label: str, stream: TextIO | None, enabled: bool) -> None:
        self.label, self.stream, self.enabled = label, stream, enabled
        self.bar: ProgressBar | None = None

    def __call__(self, done: int, total: int, _preview: Any = None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = ProgressBar(total, self.label, self.stream)
        self.bar.set_total(total)
        self.bar.update(done - self.bar.done)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _prepare(models: ModelProvider, reference: np.ndarray, poses: PoseStage, options: AnimateOptions,
             size: tuple[int, int]) -> tuple[PreparedClip, Tensor, LatentCodec]:
    """The shared preparation (``prepare.py``) with this provider's models: (clip, zero_y, VAE).

    CLIP first, then released (it is needed once) before the VAE and the UNet load; the reference
    latent is the VAE posterior mean, as in the nodes.
    """
    encoder = models.image_encoder()
    embedding = image_embedding(reference, lambda px: encoder.encode_image(clip_normalize(px.permute(0, 3, 1, 2))))
    zero_y = models.zero_y(encoder)
    del encoder
    models.release("clip")
    vae = models.vae()
    pixels = resize_frames(reference, size)
    ref = Reference(embedding, reference_latent_mean(pixels, lambda px: posterior_mean(vae.encode_moments(vae_input(px)))),
                    pixels)
    n = len(poses.poses)
    dwpose = pose_stack(render_pose_frames(poses.reference_pose, [0], size), render_pose_frames(poses.poses, range(n), size))
    cond = Conditions.build(options.mode, image=ref.embedding, dwpose=dwpose, ref_latent=ref.latent,  # type: ignore[arg-type]
                            ref_pixels=ref.pixels)
    return PreparedClip(cond, ref, size[0], size[1], select_poses(n, None)), zero_y, vae


def write_outputs(frames: list[np.ndarray], fps: float, banner: str | None, reference: np.ndarray, poses: PoseStage,
                  paths: tuple[Path, Path, Path, Path], preview: bool) -> tuple[Path, Path | None, Path | None]:
    """The result video (labelled when it is noise) and the side-by-side preview (video + middle frame).

    Every file is written under a temporary name and renamed. Returns (video, preview, still).
    """
    video_path, preview_path, still_path, _ = paths
    video = write_video(video_path, _labelled(frames, banner), fps)
    if not preview:
        return video, None, None
    panels = side_by_side(reference, poses.poses[:len(frames)], frames, banner)
    preview_video = write_video(preview_path, panels, fps)
    import io

    from PIL import Image

    from ..paths import write_atomic

    still = io.BytesIO()
    Image.fromarray(panels[len(panels) // 2]).save(still, format="PNG")
    return video, preview_video, write_atomic(still_path, still.getvalue())


def _labelled(frames: list[np.ndarray], banner: str | None) -> list[np.ndarray]:
    return [burn_banner(f, banner) for f in frames] if banner else frames


@dataclass
class PosePlan:
    """The pose side of one run: the aligned pose renders of the selected driving frames and the output rate.

    poses: see :class:`~.poses.PoseStage`. selection: which driving frames the video follows. fps:
    output frame rate (``options.fps`` or the driving rate / stride). notes: what the user should know.
    """

    poses: PoseStage
    selection: FrameSelection
    fps: float
    notes: list[str] = field(default_factory=list)


def plan_poses(reference: np.ndarray, clip: Clip, options: AnimateOptions, *,
               keypoints_file: str | Path | None = None, dwpose_files: tuple[Path, Path] | None = None,
               log: Callable[[str], None] = print, progress_stream: TextIO | None = None) -> PosePlan:
    """Select the driving frames, extract and align their poses, render them at the output size.

    The pose stage of :func:`animate`, on its own so that batch runners can run it apart from (and
    overlapping with) the sampling.
    """
    width, height = options.width, options.height
    selection = select_frames(len(clip.frames), options.frames, options.frame_interval)
    notes = [selection.note] if selection.note else []
    if selection.note:
        log(f"note: {selection.note}")
    fps = float(options.fps or max(clip.fps / selection.stride, 1.0))
    log(f"poses: {len(selection.indices)} frames of {len(clip.frames)} (every {selection.stride}.), {width}x{height}")
    poses = prepare_poses(reference, clip.frames, selection.indices, (width, height), backend=options.pose_backend,
                          dwpose_files=dwpose_files, keypoints_file=keypoints_file, align=options.align,
                          progress_stream=progress_stream)
    log(f"poses: backend {poses.backend}" + "".join(f"; {n}" for n in poses.notes))
    return PosePlan(poses, selection, fps, notes + poses.notes)


def animate(models: ModelProvider, reference: np.ndarray, clip: Clip, options: AnimateOptions, out: str | Path, *,
            keypoints_file: str | Path | None = None, dwpose_files: tuple[Path, Path] | None = None,
            log: Callable[[str], None] = print, progress_stream: TextIO | None = None,
            show_progress: bool = True) -> AnimateResult:
    """Animate ``reference`` (uint8 ``(H, W, 3)``) with the poses of ``clip``; write the results near ``out``.

    Returns an :class:`AnimateResult`; on Ctrl-C (KeyboardInterrupt) during sampling it writes what
    finished and returns with ``interrupted=True`` instead of raising.
    """
    start = time.monotonic()
    width, height = options.width, options.height
    check_size(width, height, models.pixel_multiple)
    paths = output_paths(out, models.is_random)
    sampler = SamplerOptions(steps=options.steps, guide_scale=float(options.guidance), device=models.device,
                             model_dtype=models.dtype, solver=options.solver, timestep_mode=options.timestep_spacing,
                             guidance_interval=(0.0, float(options.guidance_end)),
                             deep_cache_interval=options.deep_cache_interval,
                             deep_cache_depth=options.deep_cache_depth)  # validates steps/guidance before anything loads
    options.long_video_options()  # and the window / segment settings
    plan = plan_poses(reference, clip, options, keypoints_file=keypoints_file, dwpose_files=dwpose_files, log=log,
                      progress_stream=progress_stream if show_progress else None)
    poses, fps, notes = plan.poses, plan.fps, list(plan.notes)

    generator = torch.Generator().manual_seed(int(options.seed))
    prep, zero_y, vae = _prepare(models, reference, poses, options, (width, height))
    unet = models.unet(zero_y)
    n = prep.frames
    strategy = options.resolved_strategy(n)
    log(f"sampling: {n} frames, strategy {strategy}, {options.steps} steps, guidance {options.guidance}, "
        f"seed {options.seed}, {models.label}")
    banner = NOISE_BANNER if models.is_random else None
    segments_dir = paths[3] if strategy == "continuation" else None
    if segments_dir is not None:
        segments_dir.mkdir(parents=True, exist_ok=True)
    bar = _Progress("sampling", progress_stream, show_progress)
    finished: list[np.ndarray] = []
    latents: list[Tensor] = []
    interrupted = False
    windows, continuation = options.long_video_options()

    def decode_last(latent: Tensor) -> Tensor:
        return frames_from_decoded(vae.decode(latent / LATENT_SCALE))

    try:
        for part in sample_clip(unet, prep, strategy, sampler, generator=generator, noise=noise_options(strategy),
                                windows=windows, continuation=continuation, decode_last_frame=decode_last,
                                progress=bar):
            if part.index is None:  # single-pass strategies: sampling is over, decoding follows
                bar.close()
                log("decoding")
            frames = decode_to_uint8(vae, part.latent, options.decode_chunk, options.uint8)
            finished += frames  # kept even if Ctrl-C comes while its segment file is written
            latents.append(part.latent)
            if segments_dir is not None and part.index is not None:
                write_video(segments_dir / f"segment_{part.index:03d}.mp4", _labelled(frames, banner), fps)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        bar.close()

    result = AnimateResult(None, None, None, len(finished), n, (width, height), fps, interrupted, models.is_random,
                           segments_dir, 0.0, notes, torch.cat(latents, dim=2) if latents else None)
    if finished:
        result.video, result.preview, result.preview_image = write_outputs(finished, fps, banner, reference, poses, paths,
                                                                           options.preview)
    result.seconds = time.monotonic() - start
    return result


def describe(result: AnimateResult) -> str:
    """The closing message: where the files are, and plainly whether the result is noise."""
    lines = []
    if result.interrupted:
        lines.append(f"interrupted: {result.frames} of {result.planned_frames} frames were finished.")
    if result.video is None:
        lines.append("nothing was written (no segment had finished).")
        return "\n".join(lines)
    lines.append(f"video:   {result.video}  ({result.frames} frames, {result.size[0]}x{result.size[1]}, {result.fps:g} fps)")
    if result.preview:
        lines.append(f"preview: {result.preview}  (reference | aligned pose | result)")
    if result.preview_image:
        lines.append(f"still:   {result.preview_image}")
    if result.segments_dir:
        lines.append(f"segments: {result.segments_dir}")
    lines.append(f"time:    {result.seconds:.1f} s")
    if result.is_random:
        lines.append("THIS IS RANDOM-WEIGHT NOISE: it proves the installation works, it is not an animation. "
                     "Add the real model files (see --help, 'Model files') for a real video.")
    return "\n".join(lines)


__all__ = ["AnimateOptions", "AnimateResult", "ModelProvider", "PosePlan", "animate", "build_conditions",
           "decode_latents", "describe", "output_paths", "plan_poses", "write_outputs", "STRATEGIES", "MODES"]
