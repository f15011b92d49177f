"""Short-clip sampling: DDIM with classifier-free guidance over all F frames in one model call.

Generates exactly as many frames as the latent has (the official script instead zero-pads the
pose sequence to ``max_frames`` and generates black-pose frames; we never do).
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import Tensor

from .conditions import Conditions
from .deep_cache import DEFAULT_DEPTH, DeepCache
from .errors import SamplingError, check, check_int, check_number, check_type
from .guidance import (
    CFG_MODES, CfgMode, Model, apply_guidance, predict_cond_uncond, resolve_cfg_mode,
)
from .progress import CancelFn, ProgressFn, ProgressTracker
from .schedule import NoiseSchedule
from .solvers import SOLVERS, Solver, make_solver
from .timesteps import (
    TIMESTEP_MODES, TimestepMode, ddim_timesteps, previous_timesteps, validate_timesteps,
)


@dataclass(frozen=True)
class SamplerOptions:
    """DDIM + guidance settings shared by all sampling strategies (official defaults).

    steps: requested DDIM steps (1..1000); the official list for 30 runs 31 steps.
    guide_scale: classifier-free guidance scale; 1.0 skips the unconditional call.
    eta: DDIM stochasticity (0 = deterministic, official).
    timestep_mode: "official" or "trailing" (see timesteps.py); ``timesteps`` overrides both.
    cfg_mode: "auto" (batched when the model supports ``cond_mask``), "batched" or "sequential".
    device: compute device for the model calls (None = the device of the noise tensor).
    model_dtype: dtype of x and float conditions handed to the model (None = float32); the DDIM
        state and update always stay float32.
    solver: "ddim" (official, default) or "dpmpp_2m" (DPM-Solver++(2M): second order, about the DDIM
        quality of many more steps at few steps; deterministic, eta must be 0). See solvers.py.
    guidance_interval: (start, end) fractions of the run's steps where guidance is applied; step i of
        S is guided when start <= i / S < end, the others make only the conditional call (one model
        evaluation instead of two). (0, 1) = every step (official).
    deep_cache_interval: DeepCache-style reuse of the UNet's deep features (deep_cache.py): every
        N-th step runs the UNet in full, the steps between run only its shallow blocks and reuse the
        deep part's result of the last full step. 1 = off (official, default).
    deep_cache_depth: how many input blocks (and as many output blocks) run on reuse steps, 1..12
        for the UniAnimate UNet; smaller = less work per reuse call and a larger departure from
        the full result. Only used when deep_cache_interval > 1.
    """

    steps: int = 30
    guide_scale: float = 2.5
    eta: float = 0.0
    timestep_mode: TimestepMode = "official"
    timesteps: tuple[int, ...] | None = None
    cfg_mode: CfgMode = "auto"
    device: torch.device | str | None = None
    model_dtype: torch.dtype | None = None
    solver: str = "ddim"
    guidance_interval: tuple[float, float] = (0.0, 1.0)
    deep_cache_interval: int = 1
    deep_cache_depth: int = DEFAULT_DEPTH

    def __post_init__(self) -> None:
        check_int("steps", self.steps, 1, 1000)
        check_number("guide_scale", self.guide_scale, -1e6, 1e6)
        check_number("eta (0 = deterministic DDIM, 1 = DDPM-like)", self.eta, 0.0, 1.0)
        check(self.timestep_mode in TIMESTEP_MODES,
              f"Unknown timestep_mode {self.timestep_mode!r}; use one of {TIMESTEP_MODES}.")
        if self.timesteps is not None:  # validated now, not at the first step of a long run
            check(all(isinstance(t, numbers.Integral) and not isinstance(t, bool) for t in self.timesteps),
                  f"timesteps must be integers, got {self.timesteps!r}.")
            validate_timesteps(torch.tensor([int(t) for t in self.timesteps], dtype=torch.int64))
        check(self.cfg_mode in CFG_MODES, f"Unknown cfg_mode {self.cfg_mode!r}; use one of {CFG_MODES}.")
        check(self.solver in SOLVERS, f"Unknown solver {self.solver!r}; use one of {SOLVERS}.")
        check(self.solver == "ddim" or float(self.eta) == 0.0,
              f"solver {self.solver!r} is deterministic: set eta = 0 (or use solver='ddim' for eta > 0).")
        gi = self.guidance_interval
        check(isinstance(gi, (tuple, list)) and len(gi) == 2
              and all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in gi)
              and 0.0 <= float(gi[0]) <= float(gi[1]) <= 1.0,
              f"guidance_interval must be (start, end) fractions of the steps with 0 <= start <= end <= 1; got {gi!r}.")
        check_int("deep_cache_interval (1 = off: every step runs the whole UNet; N = the whole UNet every N-th "
                  "step, only its shallow blocks in between)", self.deep_cache_interval, 1, 1000)
        check_int("deep_cache_depth (input blocks, and as many output blocks, run on reuse steps; 1..12 for the "
                  "UniAnimate UNet)", self.deep_cache_depth, 1, 1000)
        check(self.model_dtype is None or (isinstance(self.model_dtype, torch.dtype) and self.model_dtype.is_floating_point),
              f"model_dtype must be None or a floating torch dtype (e.g. torch.float16), got {self.model_dtype!r}.")
        if self.device is not None:
            try:
                torch.device(self.device)
            except (RuntimeError, TypeError) as exc:
                raise SamplingError(f"device {self.device!r} is not a torch device (use e.g. 'cuda', 'cuda:1', "
                                    f"'cpu', 'mps'): {exc}") from exc

    @property
    def guided(self) -> bool:
        return float(self.guide_scale) != 1.0

    def guided_at(self, index: int, num_steps: int) -> bool:
        """Whether step ``index`` (0-based) of ``num_steps`` applies guidance (see ``guidance_interval``)."""
        start, end = (float(v) for v in self.guidance_interval)
        return self.guided and start <= index / num_steps < end

    def model_evaluations(self, batch_rows: int = 1) -> int:
        """UNet evaluations of a run (a batched guidance call counts 2): steps + guided steps."""
        n = len(self.schedule_timesteps())
        return batch_rows * (n + sum(self.guided_at(i, n) for i in range(n)))

    def make_solver(self, schedule: NoiseSchedule) -> Solver:
        return make_solver(self.solver, schedule)

    def schedule_timesteps(self) -> Tensor:
        """The descending timesteps this run visits (S,) int64."""
        if self.timesteps is not None:
            return validate_timesteps(torch.tensor([int(t) for t in self.timesteps], dtype=torch.int64))
        return ddim_timesteps(self.steps, self.timestep_mode)

    def compute_device(self, fallback: torch.device) -> torch.device:
        device = torch.device(self.device) if self.device is not None else fallback
        check(device.type != "cuda" or torch.cuda.is_available(),
              f"device {str(device)!r} was requested but this PyTorch has no usable CUDA; install a CUDA build "
              "of PyTorch or sample on device='cpu'.")
        return device

    def input_dtype(self) -> torch.dtype:
        return self.model_dtype or torch.float32


@dataclass(frozen=True)
class StepResult:
    """State after one denoising step: index (0-based), the timestep t it started from, x_t after the
    step (B, 4, F, h, w) float32 and the x0 estimate made inside it (same shape)."""

    index: int
    t: int
    x: Tensor
    x0: Tensor


def check_latent(noise: Tensor) -> None:
    """The starting latent must be a finite float (B, 4, F, h, w) tensor with no empty dimension."""
    check(isinstance(noise, Tensor) and noise.ndim == 5 and noise.shape[1] == 4 and noise.is_floating_point(),
          f"The starting latent must be a float tensor (B, 4, F, h, w); got "
          f"{tuple(noise.shape) if isinstance(noise, Tensor) else type(noise).__name__}.")
    check(noise.numel() > 0, f"The starting latent {tuple(noise.shape)} is empty: it needs at least one sample, "
          "one frame (one pose) and a non-zero size.")
    check(bool(torch.isfinite(noise).all()), "The starting latent contains NaN or inf values.")


def check_run_inputs(model: Model, noise: Tensor, cond: Conditions, options: SamplerOptions) -> None:
    """Argument types and the latent/condition shapes shared by every sampling entry point."""
    check(callable(model), f"model must be callable as model(x, t, **conditions), got {type(model).__name__}.")
    check_type("cond", cond, Conditions, "build it with Conditions.build(...) (Conditions() = unconditional).")
    check_type("options", options, SamplerOptions, "pass SamplerOptions(...) (or leave it out for the defaults).")
    check_latent(noise)
    cond.validate(noise.shape)


def check_finite_state(x: Tensor, t: int) -> None:
    """Refuse to continue from a NaN/inf state (e.g. an fp16 overflow inside the model)."""
    check(bool(torch.isfinite(x).all()),
          f"The model produced NaN/inf at timestep {t}; run the model in float32 or bfloat16 "
          "(float16 can overflow) or check the model weights.")


def draw_step_noise(shape: torch.Size, generator: torch.Generator | None, device: torch.device) -> Tensor:
    """Noise for the eta > 0 term, drawn on the generator's device (CPU by default) for device-independent seeds."""
    gen_device = generator.device if generator is not None else torch.device("cpu")
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32, device=gen_device).to(device)


@torch.no_grad()
def iter_sample_video(model: Model, noise: Tensor, cond: Conditions, options: SamplerOptions = SamplerOptions(), *,
                      schedule: NoiseSchedule | None = None, generator: torch.Generator | None = None,
                      progress: ProgressFn | None = None, should_cancel: CancelFn | None = None,
                      tracker: ProgressTracker | None = None) -> Iterator[StepResult]:
    """Denoise ``noise`` (the starting latent x_T, (B, 4, F, h, w)) step by step, yielding every step.

    The state lives on the compute device; results are float32 there. ``tracker`` (internal) lets a
    caller that runs several clips share one progress count.
    """
    check_run_inputs(model, noise, cond, options)
    schedule = schedule or NoiseSchedule.unianimate()
    timesteps = options.schedule_timesteps()
    prev = previous_timesteps(timesteps)
    device = options.compute_device(noise.device)
    call_mode = resolve_cfg_mode(options.cfg_mode, model, options.guided)
    tracker = tracker or ProgressTracker(len(timesteps), progress, should_cancel)

    b, f = noise.shape[0], noise.shape[2]
    cond_kwargs = cond.model_kwargs(f, device, options.input_dtype())
    x = noise.to(device=device, dtype=torch.float32)
    solver = options.make_solver(schedule)
    n = len(timesteps)
    deep = DeepCache.for_run(model, options)  # None unless deep_cache_interval > 1
    try:
        for i, (t, t_prev) in enumerate(zip(timesteps.tolist(), prev.tolist())):
            tracker.check_cancel()
            t_batch = torch.full((b,), t, dtype=torch.int64)
            mode = call_mode if options.guided_at(i, n) else "cond_only"
            if deep is not None:
                deep.begin_step(i)
            c, u = predict_cond_uncond(deep or model, x.to(options.input_dtype()), t_batch.to(device), cond_kwargs,
                                       mode)
            v = apply_guidance(c, u, float(options.guide_scale))
            step_noise = draw_step_noise(x.shape, generator, device) if options.eta > 0 else None
            x, x0 = solver.step(x, v, t, t_prev, float(options.eta), step_noise)
            check_finite_state(x, t)
            tracker.advance(x0)
            yield StepResult(i, t, x, x0)
    finally:
        if deep is not None:
            deep.clear()


def sample_video(model: Model, noise: Tensor, cond: Conditions, options: SamplerOptions = SamplerOptions(), *,
                 schedule: NoiseSchedule | None = None, generator: torch.Generator | None = None,
                 progress: ProgressFn | None = None, should_cancel: CancelFn | None = None) -> Tensor:
    """Sample a short clip; returns the final latent (B, 4, F, h, w) float32 on the noise's device.

    model: ``model(x, t, **cond)`` returning the v-prediction; noise: starting latent (see
    ``prepare_noise``); cond: the conditions (``Conditions.build``). Raises SamplingCancelled when
    ``should_cancel()`` turns True, SamplingError on bad inputs or a NaN-producing model.
    """
    x = noise
    for step in iter_sample_video(model, noise, cond, options, schedule=schedule, generator=generator,
                                  progress=progress, should_cancel=should_cancel):
        x = step.x
    return x.to(noise.device)
