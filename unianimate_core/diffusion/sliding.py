"""Long videos, strategy 1: overlapping sliding windows averaged at every denoising step.

Per step (as the official ``DiffusionDDIMLong``): run the model on each window (groups of
``context_batch_size`` windows per call, the reference pose always dwpose frame 0), add the
conditional and unconditional predictions into full-length sums, divide by how many windows
covered each frame, apply guidance to the averages and do one DDIM update of the whole sequence.

Memory: the full-length latent, the two sums and the conditions stay on the *storage* device (the
device of the noise tensor, normally the CPU); only the current window group is moved to the
compute device (``SamplerOptions.device``). Peak compute-device memory therefore depends on the
window size and batch, not on the length of the video.
"""
from __future__ import annotations

from typing import Iterator

import torch
from torch import Tensor

from .conditions import Conditions
from .deep_cache import DeepCache
from .guidance import Model, apply_guidance, predict_cond_uncond, resolve_cfg_mode
from .progress import CancelFn, ProgressFn, ProgressTracker
from .errors import check_type
from .sampler import (
    SamplerOptions, StepResult, check_finite_state, check_run_inputs, draw_step_noise,
)
from .schedule import NoiseSchedule
from .timesteps import previous_timesteps
from .windows import SlidingWindowOptions


def count_work_units(num_frames: int, options: SamplerOptions, windows: SlidingWindowOptions) -> int:
    """Number of progress units (window groups x steps) a sliding-window run reports."""
    return len(options.schedule_timesteps()) * len(windows.groups(num_frames))


@torch.no_grad()
def iter_sample_long_sliding(model: Model, noise: Tensor, cond: Conditions,
                             options: SamplerOptions = SamplerOptions(),
                             windows: SlidingWindowOptions = SlidingWindowOptions(), *,
                             schedule: NoiseSchedule | None = None, generator: torch.Generator | None = None,
                             progress: ProgressFn | None = None,
                             should_cancel: CancelFn | None = None) -> Iterator[StepResult]:
    """Sliding-window DDIM over the whole clip, yielding the full-length state after every step.

    noise: starting latent (B, 4, F, h, w) on the storage device; cond: full-length conditions
    (dwpose (B, 3, F + 1, H, W), may be uint8 and on the CPU). Yields StepResult with x and x0 on
    the storage device, float32. ``progress`` counts window groups (total = steps x groups).
    """
    check_run_inputs(model, noise, cond, options)
    check_type("windows", windows, SlidingWindowOptions, "pass SlidingWindowOptions(...) after the sampler options.")
    schedule = schedule or NoiseSchedule.unianimate()
    timesteps = options.schedule_timesteps()
    prev = previous_timesteps(timesteps)
    storage = noise.device
    compute = options.compute_device(storage)
    call_mode = resolve_cfg_mode(options.cfg_mode, model, options.guided)
    b, f = noise.shape[0], noise.shape[2]
    groups = windows.groups(f)
    tracker = ProgressTracker(len(timesteps) * len(groups), progress, should_cancel)
    # The same every step: frame indices per window and how many windows cover each frame.
    plan = [(group, [torch.as_tensor(w, dtype=torch.int64, device=storage) for w in group]) for group in groups]
    count = torch.zeros(f, dtype=torch.float32, device=storage)
    for _, indices in plan:
        for idx in indices:
            count[idx] += 1
    count = count.view(1, 1, f, 1, 1)

    x = noise.to(torch.float32, copy=True)
    solver = options.make_solver(schedule)
    n = len(timesteps)
    deep = DeepCache.for_run(model, options)  # None unless deep_cache_interval > 1; one entry per window group
    try:
        for i, (t, t_prev) in enumerate(zip(timesteps.tolist(), prev.tolist())):
            mode = call_mode if options.guided_at(i, n) else "cond_only"
            if deep is not None:
                deep.begin_step(i)
            v = _averaged_prediction(deep or model, x, t, cond, plan, count, options, mode, compute, tracker)
            step_noise = draw_step_noise(x.shape, generator, storage) if options.eta > 0 else None
            x, x0 = solver.step(x, v, t, t_prev, float(options.eta), step_noise)
            check_finite_state(x, t)
            tracker.advance(x0)  # the step's last window group, reported with the new preview
            yield StepResult(i, t, x, x0)
    finally:
        if deep is not None:
            deep.clear()


def sample_long_sliding(model: Model, noise: Tensor, cond: Conditions, options: SamplerOptions = SamplerOptions(),
                        windows: SlidingWindowOptions = SlidingWindowOptions(), *,
                        schedule: NoiseSchedule | None = None, generator: torch.Generator | None = None,
                        progress: ProgressFn | None = None, should_cancel: CancelFn | None = None) -> Tensor:
    """Sample a long clip with sliding windows; returns the final latent (B, 4, F, h, w) float32
    on the noise's (storage) device. See :func:`iter_sample_long_sliding`."""
    x = noise
    for step in iter_sample_long_sliding(model, noise, cond, options, windows, schedule=schedule,
                                         generator=generator, progress=progress, should_cancel=should_cancel):
        x = step.x
    return x


def _averaged_prediction(model: Model, x: Tensor, t: int, cond: Conditions,
                         plan: list[tuple[list[list[int]], list[Tensor]]], count: Tensor,
                         options: SamplerOptions, call_mode: str, compute: torch.device,
                         tracker: ProgressTracker) -> Tensor:
    """Window-averaged guided v for the whole clip (B, 4, F, h, w), float32 on x's device.

    plan: per window group, the windows and their frame indices (int64 on x's device); count:
    (1, 1, F, 1, 1) windows covering each frame. Conditional and unconditional predictions are
    averaged separately and guidance is applied to the averages, in the official order.
    """
    b = x.shape[0]
    cond_sum = torch.zeros_like(x)
    uncond_sum = torch.zeros_like(x) if call_mode != "cond_only" else None
    dtype = options.input_dtype()
    for k, (group, indices) in enumerate(plan):
        tracker.check_cancel()
        x_in = torch.cat([x.index_select(2, idx) for idx in indices]).to(device=compute, dtype=dtype)
        t_in = torch.full((x_in.shape[0],), t, dtype=torch.int64, device=compute)
        kwargs = cond.windows(group).model_kwargs(len(group[0]), compute, dtype)
        c, u = predict_cond_uncond(model, x_in, t_in, kwargs, call_mode)
        del x_in, kwargs
        for j, idx in enumerate(indices):
            cond_sum.index_add_(2, idx, c[j * b:(j + 1) * b].to(device=x.device, dtype=torch.float32))
            if uncond_sum is not None:
                uncond_sum.index_add_(2, idx, u[j * b:(j + 1) * b].to(device=x.device, dtype=torch.float32))  # type: ignore[index]
        del c, u
        if k < len(plan) - 1:
            tracker.advance()  # the last group is reported by the caller, after the update
    uncond_avg = None if uncond_sum is None else uncond_sum / count
    return apply_guidance(cond_sum / count, uncond_avg, float(options.guide_scale))
