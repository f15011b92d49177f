"""One preparation and sampling path for every front end: the ComfyUI nodes, the command line, batch runners.

Front ends differ only in where images, poses and models come from; everything between "a
reference photo, pose frames and two encoders" and "the latent of the video" happens here, once:

* :func:`prepare_clip` - frame selection, the pose stack (reference pose first, trained colours,
  official squash resize), the CLIP image embedding of the reference (official 224 x 224 squash) and
  its VAE latent, and the :class:`~unianimate_core.diffusion.Conditions` for the condition mode;
* :func:`noise_options` - the start-noise recipe of each strategy (official orders: offset then
  prior for short clips and continuation segments, prior then offset for sliding windows);
* :func:`sample_clip` - one clip by the chosen strategy (``short``, ``windows``, ``continuation``),
  optionally refining a given latent (``init_latent`` + ``denoise``), yielding finished parts as
  they exist (continuation segments one by one) so a front end can keep them.

Encoders are plain callables, so the same code runs with ComfyUI's VAE / CLIP vision objects, the
headless OpenCLIP / diffusers models or test stand-ins:

* ``encode_image(pixels)``: ``(1, 224, 224, 3)`` float32 in [0, 1] (the reference squashed to
  224 x 224, 8-bit values) -> ``(1, 1024)`` un-normalised OpenCLIP ViT-H-14 image embedding;
* ``encode_latent(pixels)``: ``(1, 3, H, W)`` float32 in [0, 1] -> ``(1, 4, H/8, W/8)`` raw VAE
  latent (not yet x 0.18215), the **posterior mean**.

The reference latent is the VAE posterior mean, for every front end. The official code draws a
posterior sample (docs/official_behaviour.md#posterior-sample); ComfyUI's ``VAE.encode`` only returns the mean (TAESD-style VAEs have no
posterior at all), so the nodes cannot draw one, and the command line uses the mean too: node and
command line then give the same latent for the same inputs and seed. The difference to the official
sample is the VAE's posterior noise on the reference latent only.
``conditioning.posterior_sample`` stays available for parity work with official tensors.

Determinism: every random number comes from the caller's CPU ``torch.Generator`` in a fixed order
(the start noise of the clip, or of each continuation segment as it starts), so a seed gives the same
video on every device and in every front end.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..diffusion import (
    Conditions, ContinuationOptions, NoiseOptions, SamplerOptions, SlidingWindowOptions, count_work_units,
    ddim_timesteps, iter_sample_long_continuation, plan_segments, prepare_noise, sample_long_sliding, sample_video,
)
from ..diffusion.progress import CancelFn, ProgressFn

from .conditioning import LATENT_SCALE, check_size, clip_pixels, resize_frames, squash_resize_u8
from .errors import PipelineError
from .frames import FrameSelection, select_frames

EncodeImage = Callable[[Tensor], Tensor]
EncodeLatent = Callable[[Tensor], Tensor]
DecodeFrame = Callable[[Tensor], Tensor]

#: Long-video strategies of the core (front ends may show other names: see ``STRATEGY_ALIASES``).
STRATEGIES: tuple[str, ...] = ("short", "windows", "continuation")
STRATEGY_ALIASES = {"sliding_windows": "windows", "first_frame_continuation": "continuation"}
#: Official start-noise order per strategy (short script: offset then prior; long script: prior then offset;
#: continuation segments are short runs).
NOISE_ORDERS = {"short": "offset_then_prior", "windows": "prior_then_offset", "continuation": "offset_then_prior"}
#: Official noise-prior timestep per strategy (short 949, long 939; continuation segments are short runs).
DEFAULT_NOISE_PRIOR = {"short": 949, "windows": 939, "continuation": 949}
OFFSET_NOISE = 0.1
COLOR_MODES: tuple[str, ...] = ("unianimate", "openpose")


def strategy_name(strategy: str) -> str:
    """The core name of a strategy ("sliding_windows" -> "windows"); unknown names are refused."""
    name = STRATEGY_ALIASES.get(strategy, strategy)
    if name not in STRATEGIES:
        raise PipelineError(f"unknown long-video strategy {strategy!r}; use one of {', '.join(STRATEGIES)}.")
    return name


def noise_options(strategy: str, noise_prior: int | None = None, offset: float = OFFSET_NOISE) -> NoiseOptions:
    """Start-noise recipe of ``strategy``: offset noise and the reference prior at ``noise_prior``
    (None = the official timestep of the strategy, 0 = no prior: pure noise + offset) in the official order."""
    name = strategy_name(strategy)
    prior = DEFAULT_NOISE_PRIOR[name] if noise_prior is None else int(noise_prior)
    return NoiseOptions(offset, prior or None, NOISE_ORDERS[name])  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------------
# the reference
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """What the model sees of the reference photo.

    embedding: (1, 1, 1024) float32 CPU, the CLIP image embedding. latent: (1, 4, h, w) float32 CPU,
    the VAE posterior mean x 0.18215. pixels: (1, 3, H, W) float32 in [0, 1] (first-frame condition).
    """

    embedding: Tensor
    latent: Tensor
    pixels: Tensor


def image_embedding(reference: Any, encode_image: EncodeImage) -> Tensor:
    """CLIP embedding of the reference (official 224 x 224 bilinear squash) -> (1, 1, 1024) float32 CPU."""
    out = encode_image(clip_pixels(reference))
    if not isinstance(out, Tensor) or out.ndim not in (2, 3) or out.shape[-1] != 1024 or out.numel() < 1024:
        raise PipelineError(f"the image encoder must return a (1, 1024) embedding (OpenCLIP ViT-H-14); got "
                            f"{tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__}.")
    out = out.reshape(-1, 1024)[:1].float().cpu()
    if not bool(torch.isfinite(out).all()):
        raise PipelineError("the image encoder returned NaN/inf for the reference; its weights are broken - reload them.")
    return out.unsqueeze(1)


def reference_latent_mean(pixels: Tensor, encode_latent: EncodeLatent) -> Tensor:
    """VAE posterior mean of ``pixels`` (1, 3, H, W) in [0, 1] x 0.18215 -> (1, 4, H/8, W/8) float32 CPU."""
    raw = encode_latent(pixels)
    if isinstance(raw, Tensor) and raw.ndim == 5 and raw.shape[2] == 1:  # a video VAE's (1, C, 1, h, w)
        raw = raw[:, :, 0]
    h, w = pixels.shape[2] // 8, pixels.shape[3] // 8
    if not isinstance(raw, Tensor) or raw.ndim != 4 or tuple(raw.shape[1:]) != (4, h, w):
        raise PipelineError(f"the VAE must return a (1, 4, {h}, {w}) latent for a {pixels.shape[3]}x{pixels.shape[2]} "
                            f"image (an SD 1.x/2.x KL-f8 VAE); got "
                            f"{tuple(raw.shape) if isinstance(raw, Tensor) else type(raw).__name__}.")
    latent = raw[:1].float().cpu() * LATENT_SCALE
    if not bool(torch.isfinite(latent).all()):
        raise PipelineError("the VAE returned NaN/inf for the reference image; its weights are broken - reload the VAE.")
    return latent


def encode_reference(reference: Any, size: tuple[int, int], encode_image: EncodeImage,
                     encode_latent: EncodeLatent) -> Reference:
    """The reference photo's embedding, latent (posterior mean) and pixels at ``size = (W, H)``."""
    embedding = image_embedding(reference, encode_image)
    pixels = resize_frames(reference, size)
    return Reference(embedding, reference_latent_mean(pixels, encode_latent), pixels)


# --------------------------------------------------------------------------------------------
# poses
# --------------------------------------------------------------------------------------------

def is_keypoints(value: Any) -> bool:
    """A ``POSE_KEYPOINT`` value (list of frame dicts) or a list of PoseFrame objects."""
    from ..pose.keypoints import PoseFrame

    return isinstance(value, (list, tuple)) and (len(value) == 0 or isinstance(value[0], (dict, PoseFrame)))


def pose_count(poses: Any) -> int:
    """Number of pose frames in ``poses`` (images (N, H, W, C), a list of images, or keypoints)."""
    if isinstance(poses, (Tensor, np.ndarray)):
        return int(poses.shape[0]) if poses.ndim == 4 else 1
    if isinstance(poses, (list, tuple)):
        return len(poses)
    raise PipelineError(f"poses must be pose images or keypoints; got {type(poses).__name__}.")


def _keypoint_frames(poses: Sequence[Any]) -> list[Any]:
    from ..pose.keypoints import PoseFrame
    from ..pose.pose_keypoint import from_pose_keypoint

    if all(isinstance(p, PoseFrame) for p in poses):
        return list(poses)
    return from_pose_keypoint(list(poses))  # the coordinate space is decided once for the whole sequence


def render_pose_frames(poses: Any, indices: Sequence[int], size: tuple[int, int],
                       colors: str = "unianimate") -> np.ndarray:
    """Frames ``indices`` of ``poses`` as (F, H, W, 3) uint8 in the trained colour convention at ``size``.

    poses: pose images ((N, H, W, C) float in [0, 1] or uint8, or a list of (H, W, C) images), squash
    resized like the official loader; ``colors="openpose"`` converts standard pose images. Or keypoints
    (POSE_KEYPOINT frames or PoseFrame objects), drawn in the trained style at ``size``.
    """
    if colors not in COLOR_MODES:
        raise PipelineError(f"pose colours must be one of {', '.join(COLOR_MODES)}; got {colors!r}.")
    width, height = int(size[0]), int(size[1])
    if isinstance(poses, (Tensor, np.ndarray)) and poses.ndim == 3:  # one (H, W, C) image
        poses = poses[None]
    if is_keypoints(poses):
        from ..pose.render import render_poses

        frames = _keypoint_frames(poses)
        return render_poses([frames[i] for i in indices], width, height)
    out = np.empty((len(indices), height, width, 3), dtype=np.uint8)
    for k, i in enumerate(indices):
        out[k] = squash_resize_u8(poses[i], (width, height))
    return out[..., ::-1].copy() if colors == "openpose" else out


def pose_stack(reference_pose: np.ndarray, poses: np.ndarray) -> Tensor:
    """[reference pose, target poses] as the model's dwpose input: uint8 ``(1, 3, F + 1, H, W)``.

    uint8 keeps the pose stack 4x smaller; the sampler converts it with ``u8 / 255`` exactly as the
    official loader does.
    """
    ref = np.asarray(reference_pose)
    ref = ref[None] if ref.ndim == 3 else ref
    stack = np.concatenate([ref, np.asarray(poses)])
    if stack.ndim != 4 or stack.shape[-1] != 3 or stack.dtype != np.uint8:
        raise PipelineError(f"pose frames must be uint8 (H, W, 3) images; got {stack.dtype} {stack.shape}.")
    return torch.from_numpy(np.ascontiguousarray(stack)).permute(3, 0, 1, 2).unsqueeze(0).contiguous()


def select_poses(count: int, max_frames: int | None, frame_interval: int = 1) -> FrameSelection:
    """Which poses become frames: ``max_frames`` None or 0 = every ``frame_interval``-th pose, 1 = the
    first selected pose only (one image: repose), else the official selection of ``max_frames``."""
    if max_frames == 1:
        first = select_frames(count, None, frame_interval).indices[:1]
        return FrameSelection(first, 1, 0, frame_interval)
    return select_frames(count, max_frames or None, frame_interval)


# --------------------------------------------------------------------------------------------
# one clip, prepared
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PreparedClip:
    """Everything a sampler needs, on the CPU.

    cond: conditions with dwpose (1, 3, F + 1, H, W) uint8, image (1, 1, 1024) and - per mode -
    randomref (1, 4, 1, h, w) / local_image (1, 3, 1, H, W). reference: see :class:`Reference`.
    selection: which pose frames the F generated frames follow.
    """

    cond: Conditions
    reference: Reference
    width: int
    height: int
    selection: FrameSelection

    @property
    def frames(self) -> int:
        return self.selection.num_frames

    @property
    def latent_shape(self) -> tuple[int, int, int, int, int]:
        return (1, 4, self.frames, self.height // 8, self.width // 8)

    @property
    def ref_latent(self) -> Tensor:
        return self.reference.latent

    @property
    def ref_pixels(self) -> Tensor:
        return self.reference.pixels


def prepare_clip(reference: Any, poses: Any, reference_pose: Any, *, width: int, height: int, mode: str,
                 encode_image: EncodeImage, encode_latent: EncodeLatent, selection: FrameSelection | None = None,
                 colors: str = "unianimate", pixel_multiple: int = 64,
                 before_encoding: Callable[[], None] | None = None) -> PreparedClip:
    """Resize, select, encode: one clip's inputs in the model's layout (all on the CPU).

    reference: the photo ((H, W, 3) uint8 / float image, or a one-image (1, H, W, 3) batch).
    poses / reference_pose: see :func:`render_pose_frames` (reference_pose: one frame).
    selection: the pose frames to use (default: all of them). ``before_encoding`` runs after the
    cheap checks and the pose stack, before the (slow) encoders - a front end's last chance to stop.
    """
    from ..diffusion import CONDITION_MODES

    if mode not in CONDITION_MODES:
        raise PipelineError(f"condition mode must be one of {', '.join(CONDITION_MODES)}; got {mode!r}.")
    check_size(width, height, pixel_multiple)
    size = (int(width), int(height))
    selection = selection or select_poses(pose_count(poses), None)
    ref_pose = render_pose_frames(reference_pose, [0], size, colors)
    dwpose = pose_stack(ref_pose, render_pose_frames(poses, selection.indices, size, colors))
    if before_encoding is not None:
        before_encoding()
    ref = encode_reference(reference, size, encode_image, encode_latent)
    cond = Conditions.build(mode, image=ref.embedding, dwpose=dwpose, ref_latent=ref.latent,  # type: ignore[arg-type]
                            ref_pixels=ref.pixels)
    return PreparedClip(cond, ref, size[0], size[1], selection)


# --------------------------------------------------------------------------------------------
# refining a given latent (LATENT in + denoise)
# --------------------------------------------------------------------------------------------

def refine_timesteps(sampler: SamplerOptions, denoise: float) -> tuple[int, ...]:
    """The timesteps a refinement with strength ``denoise`` in (0, 1] runs (ComfyUI's convention).

    The schedule of ``steps / denoise`` steps is built and only its last part - as many timesteps as a
    plain run of ``steps`` has - is run, so ``steps`` model steps are spent on the lower ``denoise``
    share of the noise levels (denoise 0.5 with 30 official steps: 31 steps from t = 481 down).
    """
    if isinstance(denoise, bool) or not isinstance(denoise, (int, float)) or not 0.0 < float(denoise) <= 1.0:
        raise PipelineError(f"denoise must be in (0, 1] (1 = regenerate fully from the noised latent); got {denoise!r}.")
    plain = sampler.schedule_timesteps()
    if sampler.timesteps is not None:  # an explicit list: keep the part at or below the strength
        kept = [int(t) for t in plain.tolist() if t <= math.ceil(float(denoise) * 999)]
        return tuple(kept or [int(plain[-1])])
    total = min(1000, max(sampler.steps, int(sampler.steps / float(denoise))))
    longer = ddim_timesteps(total, sampler.timestep_mode)
    return tuple(int(t) for t in longer[-len(plain):].tolist())


def check_init_latent(init_latent: Tensor, shape: Sequence[int]) -> Tensor:
    """A model-space latent (B, 4, F, h, w) matching the clip, float32; anything else is refused clearly."""
    if not isinstance(init_latent, Tensor) or not init_latent.is_floating_point() or init_latent.ndim != 5:
        raise PipelineError(f"the latent to refine must be a float (B, 4, F, h, w) tensor; got "
                            f"{tuple(init_latent.shape) if isinstance(init_latent, Tensor) else type(init_latent).__name__}.")
    if tuple(init_latent.shape) != tuple(shape):
        raise PipelineError(f"the latent to refine is shaped {tuple(init_latent.shape)}; this clip needs {tuple(shape)}.")
    if not bool(torch.isfinite(init_latent).all()):
        raise PipelineError("the latent to refine contains NaN/inf values.")
    return init_latent.float()


# --------------------------------------------------------------------------------------------
# sampling
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ClipPart:
    """A finished part of the clip: ``index`` (continuation segment, None for a one-piece strategy),
    ``frames`` (indices into the clip's F frames) and ``latent`` (1, 4, len(frames), h, w) float32 CPU."""

    index: int | None
    frames: tuple[int, ...]
    latent: Tensor


def effective_sampler(sampler: SamplerOptions, denoise: float = 1.0, refining: bool = False) -> SamplerOptions:
    """The sampler options a run uses: a refinement (``refining``) runs :func:`refine_timesteps`."""
    if not refining:
        if denoise != 1.0:
            raise PipelineError(f"denoise {denoise} needs a latent to refine; connect a latent or set denoise 1.0.")
        return sampler
    return dataclasses.replace(sampler, timesteps=refine_timesteps(sampler, denoise))


def work_units(frames: int, strategy: str, sampler: SamplerOptions, windows: SlidingWindowOptions | None = None,
               continuation: ContinuationOptions | None = None) -> int:
    """Progress units of a run (model steps x window groups, or x segments); pass the effective sampler."""
    name = strategy_name(strategy)
    steps = len(sampler.schedule_timesteps())
    if name == "windows":
        return count_work_units(frames, sampler, windows or SlidingWindowOptions())
    if name == "continuation":
        return steps * len(plan_segments(frames, (continuation or ContinuationOptions()).segment_length))
    return steps


def sample_clip(model: Any, prep: PreparedClip, strategy: str, sampler: SamplerOptions, *,
                generator: torch.Generator, noise: NoiseOptions | None = None,
                windows: SlidingWindowOptions | None = None, continuation: ContinuationOptions | None = None,
                decode_last_frame: DecodeFrame | None = None, init_latent: Tensor | None = None,
                denoise: float = 1.0, progress: ProgressFn | None = None,
                should_cancel: CancelFn | None = None, resume: Sequence[Tensor] = ()) -> Iterator[ClipPart]:
    """Sample the prepared clip; yield its finished parts (one for short/windows, one per segment).

    model: ``model(x, t, **conditions)`` (the UNet). noise: start-noise recipe (default
    :func:`noise_options` of the strategy). decode_last_frame: the VAE decode of one frame, needed by
    continuation (``(B, 4, h, w)`` model-space latent -> ``(B, 3, H, W)`` in [0, 1]).
    init_latent: a model-space latent (1, 4, F, h, w) to refine instead of starting from the reference
    prior; it is noised to the first timestep of :func:`refine_timesteps` (``denoise``) with the same
    noise draws and offset noise, in the strategy's order.
    resume (continuation only): the latents of the parts an earlier run of the same clip finished, in
    order; they are neither sampled nor yielded again. With ``generator`` restored to its state right
    after the last of them was yielded, the remaining parts equal those of an uninterrupted run.
    """
    name = strategy_name(strategy)
    if resume and name != "continuation":
        raise PipelineError(f"only the continuation strategy can resume from finished parts; {name!r} has one part.")
    noise = noise or noise_options(name)
    refining = init_latent is not None
    sampler = effective_sampler(sampler, float(denoise), refining)
    shape = prep.latent_shape
    prior_latent: Tensor = prep.ref_latent
    if refining:
        prior_latent = check_init_latent(init_latent, shape)  # type: ignore[arg-type]
        noise = dataclasses.replace(noise, prior_t=int(sampler.schedule_timesteps()[0]))
    if name == "continuation":
        if decode_last_frame is None:
            raise PipelineError("the continuation strategy needs decode_last_frame (the VAE decode of one frame).")
        plan = plan_segments(prep.frames, (continuation or ContinuationOptions()).segment_length)

        def segment_noise(index: int, seg_shape: tuple[int, ...], prior: Tensor | None) -> Tensor:
            source = prior_latent[:, :, list(plan[index])] if refining else prior
            return prepare_noise(seg_shape, generator, noise, source if noise.prior_t is not None else None)

        for seg in iter_sample_long_continuation(
                model, prep.cond, sampler, continuation or ContinuationOptions(), decode_last_frame=decode_last_frame,
                noise=noise, generator=generator, make_noise=segment_noise, prior_latent=prep.ref_latent,
                anchor_pixels=prep.ref_pixels, progress=progress, should_cancel=should_cancel, resume=list(resume)):
            yield ClipPart(seg.index, seg.new_frames, seg.latent.float().cpu())
        return
    start = prepare_noise(shape, generator, noise, prior_latent if noise.prior_t is not None else None)
    if name == "windows":
        latent = sample_long_sliding(model, start, prep.cond, sampler, windows or SlidingWindowOptions(),
                                     generator=generator, progress=progress, should_cancel=should_cancel)
    else:
        latent = sample_video(model, start, prep.cond, sampler, generator=generator, progress=progress,
                              should_cancel=should_cancel)
    yield ClipPart(None, tuple(range(prep.frames)), latent.float().cpu())


__all__ = [
    "COLOR_MODES", "ClipPart", "DEFAULT_NOISE_PRIOR", "DecodeFrame", "EncodeImage", "EncodeLatent", "NOISE_ORDERS",
    "OFFSET_NOISE", "PreparedClip", "Reference", "STRATEGIES", "STRATEGY_ALIASES", "check_init_latent",
    "effective_sampler", "encode_reference", "image_embedding", "is_keypoints", "noise_options", "pose_count",
    "pose_stack", "prepare_clip", "reference_latent_mean", "refine_timesteps", "render_pose_frames", "sample_clip",
    "select_poses", "strategy_name", "work_units",
]
