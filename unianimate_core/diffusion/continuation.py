"""Long videos, strategy 2: iterative first-frame continuation (the paper's one-minute videos).

The clip is generated in segments. Segment 0 is an ordinary short run over the first poses. Its
last frame is decoded to pixels (through the caller's ``decode_last_frame``; the core has no VAE)
and becomes the first-frame condition (``local_image``) of segment 1, whose poses *start at that
same frame*; the regenerated duplicate of that frame is dropped from the output. The reference
image embedding, the reference latent and the reference pose (dwpose frame 0) stay in their slots
for every segment. Repeat until the pose sequence is covered.

Every segment's latent is handed out as soon as it is finished (``iter_sample_long_continuation``
is a generator), so an interrupted render keeps the finished part, and a later run can *resume*
from it: given the finished segments' latents (``resume``) and a generator restored to the state it
had when the last of them was handed out, the remaining segments are exactly those of an
uninterrupted run (the handed-over frame is decoded again from the last finished latent). Only the current segment lives
on the compute device; finished latents go to the storage device (the device of the poses).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Literal, Sequence

import torch
from torch import Tensor

from .conditions import LATENT_TO_PIXEL, PIXEL_SLACK, Conditions, pixels_to_float
from .errors import check, check_int, check_number, check_type
from .guidance import Model
from .noise import NoiseOptions, prepare_noise
from .progress import CancelFn, ProgressFn, ProgressTracker
from .sampler import SamplerOptions, iter_sample_video
from .schedule import NoiseSchedule

PriorSource = Literal["reference", "last_frame"]
PRIOR_SOURCES: tuple[str, ...] = ("reference", "last_frame")

DecodeFn = Callable[[Tensor], Tensor]
"""``decode_last_frame(latent (B, 4, h, w) float32) -> pixels (B, 3, H, W) in [0, 1]`` (VAE decode of one frame)."""

NoiseFn = Callable[[int, tuple[int, ...], "Tensor | None"], Tensor]
"""``make_noise(segment_index, shape (B, 4, n, h, w), prior_latent (B, 4, 1, h, w) | None) -> start latent``."""


@dataclass(frozen=True)
class ContinuationOptions:
    """Settings of the first-frame continuation.

    segment_length: pose frames per segment, including the handed-over first frame of segments
        after the first (so each later segment adds ``segment_length - 1`` new frames). Default 32,
        the clip length the official model is run with (trained on 16 and 32 frames).
    prior_source: which latent the noise prior diffuses for segments after the first: "reference"
        (the reference latent, as for segment 0; pulls every segment back to the reference and so
        resists drift - the default) or "last_frame" (the previous segment's last latent; smoother
        start, but errors can accumulate). Only used when the noise options have a prior.
    colour_anchor: 0..1, how far the handed-over frame's per-channel mean/std is pulled to the anchor
        image's before it becomes the next condition (0 = off, the default: the official code has
        no such step, and a strong anchor can make the next segment start in visibly different
        colours than the frame it continues; use it against slow colour drift in very long runs).
    """

    segment_length: int = 32
    prior_source: PriorSource = "reference"
    colour_anchor: float = 0.0

    def __post_init__(self) -> None:
        check_int("segment_length (one handed-over frame plus at least one new frame)", self.segment_length, 2)
        check(self.prior_source in PRIOR_SOURCES, f"Unknown prior_source {self.prior_source!r}; use one of {PRIOR_SOURCES}.")
        check_number("colour_anchor", self.colour_anchor, 0.0, 1.0)


@dataclass(frozen=True)
class Segment:
    """One finished segment.

    index: 0-based segment number. pose_frames: the target frames (0-based indices into the pose
    sequence without the reference pose) the segment was generated for; for index > 0 the first
    one is the previous segment's last frame. new_frames: the frames it adds to the video
    (pose_frames without the handed-over duplicate). latent: (B, 4, len(new_frames), h, w) float32
    on the storage device. first_frame: (B, 3, H, W) pixels used as ``local_image`` (None for
    segment 0, which uses the caller's conditions unchanged).
    """

    index: int
    pose_frames: tuple[int, ...]
    new_frames: tuple[int, ...]
    latent: Tensor
    first_frame: Tensor | None


def plan_segments(num_frames: int, segment_length: int) -> list[tuple[int, ...]]:
    """Pose-frame indices of every segment: [0, L), then each starts at the previous one's last frame.

    The last segment may be shorter (at least 2 frames). Example: F = 10, L = 4 ->
    (0..3), (3..6), (6..9).
    """
    check_int("the pose sequence length (number of frames)", num_frames, 1)
    ContinuationOptions(segment_length=segment_length)
    num_frames, segment_length = int(num_frames), int(segment_length)
    segments: list[tuple[int, ...]] = []
    start = 0
    while True:
        end = min(start + segment_length, num_frames)
        segments.append(tuple(range(start, end)))
        if end >= num_frames:
            return segments
        start = end - 1


def anchor_colours(pixels: Tensor, anchor: Tensor, strength: float) -> Tensor:
    """Pull per-sample, per-channel mean/std of ``pixels`` (B, 3, H, W) towards ``anchor``'s.

    anchor: (B or 1, 3, H', W') in [0, 1]; strength 0 returns the input, 1 matches the statistics.
    The result is clamped to [0, 1].
    """
    if strength == 0.0:
        return pixels
    # population std (correction 0): a one-pixel anchor has std 0, not NaN
    mean_p, std_p = pixels.mean(dim=(2, 3), keepdim=True), pixels.std(dim=(2, 3), keepdim=True, correction=0)
    anchor = anchor.to(pixels)
    mean_a, std_a = anchor.mean(dim=(2, 3), keepdim=True), anchor.std(dim=(2, 3), keepdim=True, correction=0)
    matched = (pixels - mean_p) / std_p.clamp(min=1e-6) * std_a + mean_a
    return (pixels + strength * (matched - pixels)).clamp(0.0, 1.0)


@torch.no_grad()
def iter_sample_long_continuation(
        model: Model, cond: Conditions, options: SamplerOptions = SamplerOptions(),
        continuation: ContinuationOptions = ContinuationOptions(), *, decode_last_frame: DecodeFn,
        noise: NoiseOptions = NoiseOptions.short(), generator: torch.Generator | None = None,
        make_noise: NoiseFn | None = None, prior_latent: Tensor | None = None, anchor_pixels: Tensor | None = None,
        schedule: NoiseSchedule | None = None, progress: ProgressFn | None = None,
        should_cancel: CancelFn | None = None, resume: Sequence[Tensor] = ()) -> Iterator[Segment]:
    """Generate the clip segment by segment, yielding each :class:`Segment` as soon as it is done.

    cond: full-length conditions; dwpose (B, 3, F + 1, H, W) is required (it defines F) and its
    device is the storage device. Each segment's starting latent comes from ``make_noise`` or, by
    default, ``prepare_noise`` with ``noise`` and ``generator`` (drawn segment by segment, so a seed
    reproduces the whole run). prior_latent: (B, 4, [1,] h, w) for the noise prior; defaults to
    randomref frame 0. anchor_pixels: colour anchor (B, 3, H, W); defaults to local_image frame 0.
    ``progress`` counts denoising steps over all segments.

    resume: the latents of the first ``len(resume)`` segments of an earlier run of the same clip (each
    as its :class:`Segment` had it, ``(B, 4, len(new_frames), h, w)``); they are not generated again
    and not yielded again. For the same video as an uninterrupted run, ``generator`` must be in the
    state it had right after the last resumed segment was yielded (``generator.get_state()`` then).
    """
    check(callable(model), f"model must be callable as model(x, t, **conditions), got {type(model).__name__}.")
    check_type("cond", cond, Conditions, "build it with Conditions.build(...).")
    check_type("options", options, SamplerOptions, "pass SamplerOptions(...) before the ContinuationOptions.")
    check_type("continuation", continuation, ContinuationOptions, "pass ContinuationOptions(...) after the sampler options.")
    check_type("noise", noise, NoiseOptions, "pass NoiseOptions(...), e.g. NoiseOptions.short().")
    check(callable(decode_last_frame), "decode_last_frame must be a function latent (B, 4, h, w) -> pixels (B, 3, H, W) "
          "in [0, 1] (the VAE decode of one frame).")
    check(isinstance(cond.dwpose, Tensor) and cond.dwpose.ndim == 5,
          "Continuation needs the pose sequence (dwpose, (B, 3, F + 1, H, W)) to know how many frames to make; got "
          f"{tuple(cond.dwpose.shape) if isinstance(cond.dwpose, Tensor) else type(cond.dwpose).__name__}.")
    b, _, f1, hp, wp = cond.dwpose.shape  # type: ignore[union-attr]
    check(hp % LATENT_TO_PIXEL == 0 and wp % LATENT_TO_PIXEL == 0,
          f"Pose frames must be a multiple of 8 pixels in each dimension, got {hp}x{wp}.")
    h, w = hp // LATENT_TO_PIXEL, wp // LATENT_TO_PIXEL
    cond.validate((b, 4, f1 - 1, h, w))
    storage = cond.dwpose.device  # type: ignore[union-attr]
    schedule = schedule or NoiseSchedule.unianimate()
    plan = plan_segments(f1 - 1, continuation.segment_length)
    steps = len(options.schedule_timesteps())
    done = _check_resume(resume, plan, (b, 4, h, w))
    tracker = ProgressTracker(len(plan) * steps, progress, should_cancel, done=done * steps)
    reference_prior = _reference_prior(prior_latent, cond)
    anchor = _anchor(anchor_pixels, cond, b) if continuation.colour_anchor > 0 else None
    if noise.prior_t is not None and make_noise is None:
        check(reference_prior is not None, "The noise prior needs a reference latent: pass prior_latent, use "
              "conditions with randomref, or set NoiseOptions.prior_t=None.")

    first_frame: Tensor | None = None
    last_latent: Tensor | None = None
    if 0 < done < len(plan):  # resumed: hand over the last finished frame as an uninterrupted run did
        last = resume[-1][:, :, -1:].to(storage)
        last_latent = last
        first_frame = _hand_over(decode_last_frame, last[:, :, 0], (b, 3, hp, wp), anchor,
                                 float(continuation.colour_anchor)).to(storage)
    for index, frames in enumerate(plan):
        if index < done:
            continue
        seg_cond = cond.frames(frames)
        if first_frame is not None:
            seg_cond = seg_cond.replace(local_image=first_frame.unsqueeze(2))
        use_last = index > 0 and continuation.prior_source == "last_frame"
        prior = last_latent if use_last else reference_prior
        shape = (b, 4, len(frames), h, w)
        if make_noise is not None:
            start = make_noise(index, shape, prior)
            check(isinstance(start, Tensor) and tuple(start.shape) == shape,
                  f"make_noise must return the starting latent of segment {index} shaped {shape}; got "
                  f"{tuple(start.shape) if isinstance(start, Tensor) else type(start).__name__}.")
        else:
            start = prepare_noise(shape, generator, noise, prior if noise.prior_t is not None else None,
                                  schedule, device=storage)
        x = start
        for step in iter_sample_video(model, start, seg_cond, options, schedule=schedule, generator=generator,
                                      tracker=tracker):
            x = step.x
        new = x if index == 0 else x[:, :, 1:]
        segment = Segment(index, frames, frames if index == 0 else frames[1:], new.to(storage).contiguous(),
                          first_frame)
        if index + 1 < len(plan):
            last_latent = x[:, :, -1:].to(storage)
            first_frame = _hand_over(decode_last_frame, x[:, :, -1], (b, 3, hp, wp), anchor,
                                     float(continuation.colour_anchor)).to(storage)
        del x, start
        yield segment


def sample_long_continuation(model: Model, cond: Conditions, options: SamplerOptions = SamplerOptions(),
                             continuation: ContinuationOptions = ContinuationOptions(), *,
                             decode_last_frame: DecodeFn, on_segment: Callable[[Segment], None] | None = None,
                             **kwargs) -> Tensor:
    """Run :func:`iter_sample_long_continuation` to the end; returns (B, 4, F, h, w) on the storage device.

    ``on_segment(segment)`` is called as each segment finishes (save it there to survive a cancel).
    Other keyword arguments are those of the iterator.
    """
    parts = []
    for segment in iter_sample_long_continuation(model, cond, options, continuation,
                                                 decode_last_frame=decode_last_frame, **kwargs):
        if on_segment is not None:
            on_segment(segment)
        parts.append(segment.latent)
    return torch.cat(parts, dim=2)


def _hand_over(decode: DecodeFn, latent: Tensor, shape: tuple[int, ...], anchor: Tensor | None,
               strength: float) -> Tensor:
    """Decode the last frame (B, 4, h, w) and turn it into the next first-frame condition (B, 3, H, W)."""
    pixels = decode(latent.to(torch.float32))
    check(isinstance(pixels, Tensor) and tuple(pixels.shape) == shape,
          f"decode_last_frame must return pixels shaped {shape} (B, 3, H, W); got "
          f"{tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__}.")
    pixels = pixels_to_float(pixels).to(torch.float32)
    check(bool(torch.isfinite(pixels).all()), "decode_last_frame returned NaN/inf pixels.")
    # A decoder returning [-1, 1] or 0..255 floats would silently become a black or white condition.
    low, high = float(pixels.min()), float(pixels.max())
    check(low >= -PIXEL_SLACK and high <= 1.0 + PIXEL_SLACK,
          f"decode_last_frame must return pixels in [0, 1]; got values in [{low:.3g}, {high:.3g}]. Map a [-1, 1] "
          "VAE output with (x + 1) / 2, divide 0..255 values by 255.")
    pixels = pixels.clamp(0.0, 1.0)
    return pixels if anchor is None else anchor_colours(pixels, anchor.to(pixels.device), strength)


def _check_resume(resume: Sequence[Tensor], plan: list[tuple[int, ...]], latent_frame: tuple[int, ...]) -> int:
    """Number of finished segments given in ``resume``; each must be shaped as its segment."""
    check(isinstance(resume, (list, tuple)), f"resume must be a list of segment latents; got {type(resume).__name__}.")
    check(len(resume) <= len(plan), f"resume holds {len(resume)} segments but this clip has only {len(plan)}; it "
          "belongs to another clip (frames or segment_length changed).")
    b, c, h, w = latent_frame
    for i, latent in enumerate(resume):
        new = len(plan[i]) if i == 0 else len(plan[i]) - 1
        want = (b, c, new, h, w)
        check(isinstance(latent, Tensor) and tuple(latent.shape) == want,
              f"resumed segment {i} must be shaped {want}; got "
              f"{tuple(latent.shape) if isinstance(latent, Tensor) else type(latent).__name__} - it belongs to "
              "another clip (size, frames or segment_length changed).")
    return len(resume)


def _reference_prior(prior_latent: Tensor | None, cond: Conditions) -> Tensor | None:
    if prior_latent is not None:
        check(isinstance(prior_latent, Tensor) and prior_latent.ndim in (4, 5),
              "prior_latent must be the reference latent (B, 4, h, w) or (B, 4, F, h, w); got "
              f"{tuple(prior_latent.shape) if isinstance(prior_latent, Tensor) else type(prior_latent).__name__}.")
        return prior_latent.unsqueeze(2) if prior_latent.ndim == 4 else prior_latent[:, :, :1]
    return None if cond.randomref is None else cond.randomref[:, :, :1]


def _anchor(anchor_pixels: Tensor | None, cond: Conditions, batch: int) -> Tensor:
    if anchor_pixels is None:
        check(cond.local_image is not None,
              "colour_anchor > 0 needs anchor_pixels (the reference image, (B, 3, H, W) in [0, 1]) or a local_image.")
        anchor_pixels = cond.local_image[:, :, 0]  # type: ignore[index]
    check(isinstance(anchor_pixels, Tensor), f"anchor_pixels must be a tensor (B, 3, H, W), got {type(anchor_pixels).__name__}.")
    if anchor_pixels.ndim == 5:
        anchor_pixels = anchor_pixels[:, :, 0]
    check(anchor_pixels.ndim == 4 and anchor_pixels.shape[1] == 3 and anchor_pixels.shape[0] in (1, batch),
          f"anchor_pixels must be (B, 3, H, W) with B = 1 or {batch}; got {tuple(anchor_pixels.shape)}.")
    return pixels_to_float(anchor_pixels).to(torch.float32)
