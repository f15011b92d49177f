"""GPU acceptance check: one command, random weights, no download, no ComfyUI install (about 4 minutes on
one H100 including warm-up). Prints a table and writes JSON.

    python benchmarks/gpu_check.py                       # CUDA, full size
    python benchmarks/gpu_check.py --device cpu --tiny   # the CPU mode CI runs (tiny UNet, seconds)
    options: --json PATH (default gpu_check.json)  --only SECTION ...  --comfyui PATH  --dwpose-dir DIR
             --steps N (30)  --frames F (32)  --height H (768)  --width W (512)  --ref-frames N (4)
             --budget SECONDS (240: sections still to come are skipped, the sampling run stops early)

Sections (one that needs a package or device this machine lacks is skipped with the reason):

  precision  the full-size UNet (seeded random weights) at F x H x W in fp16 and bf16 against fp32 on
             --ref-frames frames: max / mean |delta| and the tolerance derived from weight rounding,
             tol = E_w(dtype) + 4 E_w(dtype) + 1e-4 max|ref| (docs/precision.md), both with plain
             torch.nn layers and ComfyUI-like disable_weight_init layers
  sampling   one --steps-step DDIM run with batched classifier-free guidance at F x H x W in fp16: wall
             time, seconds per step, peak VRAM (torch.cuda.max_memory_allocated) and the activation peak
             against unianimate_core.memory.activation_bytes (what ComfyUI is told to keep free)
  mamba      the Mamba UNet with the mamba-ssm kernels against the pure-PyTorch scan: max |delta|, time
  dwpose     DWPose on onnxruntime's CUDA execution provider against the CPU one: frames/s, keypoint
             |delta| (the stand-in models of tests/fixtures/dwpose by default: then the delta only proves
             the plumbing; --dwpose-dir with the real yolox_l.onnx / dw-ll_ucoco_384.onnx for real numbers)
  speed      the speed options (DPM-Solver++(2M) 12 logsnr steps; guidance on half the steps): wall time,
             peak VRAM, evaluations; one UNet call at F frames of 1216 x 768 (batch 1 and 2): time, peak
             VRAM against a 12 GiB card
  comfy_ops  ComfyUI's own comfy.ops layers (disable_weight_init fp16/bf16, manual_cast fp8 -> fp16, a
             LoRA-style weight function) on the device, from a ComfyUI source tree given by --comfyui PATH

Exit status: 0 when no section failed (skips are fine), 1 otherwise.
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from unianimate_core.config import UNetConfig  # noqa: E402
from unianimate_core.diffusion import Conditions, NoiseOptions, SamplerOptions, prepare_noise  # noqa: E402
from unianimate_core.diffusion.sampler import iter_sample_video  # noqa: E402
from unianimate_core.memory import activation_bytes  # noqa: E402
from unianimate_core.precision import dtype_name  # noqa: E402
from unianimate_core.unet import UNetSD_UniAnimate  # noqa: E402

SECTIONS = ("precision", "sampling", "mamba", "dwpose", "comfy_ops", "speed")
FP32, FP16, BF16 = torch.float32, torch.float16, torch.bfloat16
FP32_NOISE = 1e-4
ACTIVATION_ROUNDINGS = 4  # see tests/precision/matrix_helpers.py and docs/precision.md


class Skip(Exception):
    """A section cannot run here (missing package, device, input); the message says why."""


@dataclass
class Section:
    name: str
    status: str = "ok"
    reason: str = ""
    rows: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    def row(self, what: str, value: Any, unit: str = "", **extra: Any) -> None:
        self.rows.append(dict(what=what, value=value, unit=unit, **extra))
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        note = "  " + "  ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in extra.items()) \
            if extra else ""
        print(f"  {self.name:10s} {what:58s} {shown:>12s} {unit:8s}{note}", flush=True)


@dataclass
class Setup:
    device: torch.device
    tiny: bool
    frames: int
    height: int
    width: int
    ref_frames: int
    steps: int
    budget: float
    comfyui: Optional[Path]
    dwpose_dir: Path
    t0: float = field(default_factory=time.perf_counter)

    @property
    def config(self) -> UNetConfig:
        return UNetConfig.tiny() if self.tiny else UNetConfig.full()

    def left(self) -> float:
        return self.budget - (time.perf_counter() - self.t0)

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


# ------------------------------------------------------------------------------------------- helpers
def seeded_model(cfg: UNetConfig, device: torch.device, seed: int = 0, operations: Any = None) -> UNetSD_UniAnimate:
    """fp32 UNet with seeded fan-in-scaled normal weights (norm scales 1 + 0.1 z, biases 0.05 z), drawn on the
    device (seconds for 1.4 B parameters on a GPU)."""
    g = torch.Generator(device=device).manual_seed(seed)
    with torch.device(device):
        model = UNetSD_UniAnimate(cfg, operations=operations).eval().requires_grad_(False)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(("A_log", ".D")):
                continue  # keep mamba-ssm's initialisation
            z = torch.randn(p.shape, generator=g, device=device)
            if p.ndim == 1:
                p.copy_(1 + 0.1 * z if name.endswith("weight") else 0.05 * z)
            else:
                p.copy_(z / math.sqrt(max(1, math.prod(p.shape[1:]))))
    model.set_zero_y(torch.randn(1, cfg.text_tokens, cfg.context_dim, generator=torch.Generator().manual_seed(seed)))
    return model


def converted(model: UNetSD_UniAnimate, dtype: torch.dtype, operations: Any = None) -> UNetSD_UniAnimate:
    """A copy of ``model`` with its weights in ``dtype`` (A_log / D stay fp32), built with ``operations``."""
    from unianimate_core.checkpoint import load_unet

    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    device = next(model.parameters()).device
    out = load_unet(sd, config=model.config, dtype=dtype, device=device, operations=operations)
    out.set_zero_y(model.zero_y.cpu())
    return out


def rounded_like(dst: UNetSD_UniAnimate, src: UNetSD_UniAnimate) -> None:
    """Copy ``src``'s (lower-precision) weights into the fp32 model ``dst``: dst then holds the rounded weights."""
    with torch.no_grad():
        for (n, p), q in zip(dst.named_parameters(), src.parameters()):
            p.copy_(q.float())


def model_inputs(cfg: UNetConfig, frames: int, height: int, width: int, batch: int, device, dtype, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    h, w = height // 8, width // 8
    x = torch.randn(batch, 4, frames, h, w, generator=g)
    kw = dict(image=torch.randn(batch, cfg.context_dim, generator=g),
              dwpose=torch.rand(batch, 3, frames + 1, height, width, generator=g),
              randomref=torch.randn(batch, 4, 1, h, w, generator=g))
    return x.to(device, dtype), {k: v.to(device, dtype) for k, v in kw.items()}


def forward(model, x, kw) -> torch.Tensor:
    with torch.inference_mode():
        return model(x, torch.full((x.shape[0],), 500, device=x.device), **kw).float()


def timed(setup: Setup, fn: Callable[[], Any]) -> tuple[Any, float]:
    setup.sync()
    t0 = time.perf_counter()
    out = fn()
    setup.sync()
    return out, time.perf_counter() - t0


def free() -> None:
    """Return cached blocks to the driver between sections (callers ``del`` their tensors first)."""
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


# ------------------------------------------------------------------------------------------ sections
def section_precision(s: Section, setup: Setup) -> None:
    cfg, dev = setup.config, setup.device
    ref_model = seeded_model(cfg, dev)
    x32, kw32 = model_inputs(cfg, setup.ref_frames, setup.height, setup.width, 1, dev, FP32)
    ref, t_ref = timed(setup, lambda: forward(ref_model, x32, kw32))
    scale = float(ref.abs().max())
    s.row(f"fp32 reference, {setup.ref_frames} frames {setup.height}x{setup.width}", scale, "max|ref|", seconds=t_ref)
    halves = [FP16, BF16] if dev.type != "cuda" or torch.cuda.is_bf16_supported(including_emulation=False) else [FP16]
    if BF16 not in halves:
        s.row("bf16", "skipped", "", reason=f"{torch.cuda.get_device_name(dev)} has no native bf16")
    models = {d: converted(ref_model, d) for d in halves}
    e_w = {}
    for d, m in models.items():
        rounded_like(ref_model, m)
        e_w[d] = float((forward(ref_model, x32, kw32) - ref).abs().max())
        s.row(f"E_w({dtype_name(d)}): fp32 compute on {dtype_name(d)}-rounded weights", e_w[d], "max|d|")
    del ref_model
    free()
    ops = {"torch.nn": None, "disable_weight_init-like": comfy_like_ops()}
    for d, m in models.items():
        tol = e_w[d] + ACTIVATION_ROUNDINGS * e_w[d] + FP32_NOISE * scale
        for label, op in ops.items():
            model = m if op is None else converted(m, d, op)
            x, kw = x32.to(d), {k: v.to(d) for k, v in kw32.items()}
            out, t = timed(setup, lambda: forward(model, x, kw))
            delta = (out - ref).abs()
            ok = bool(torch.isfinite(out).all()) and float(delta.max()) <= tol
            s.row(f"{dtype_name(d)} vs fp32, {label}", float(delta.max()), "max|d|", mean=float(delta.mean()),
                  tolerance=tol, passed=ok, seconds=t)
            if not ok:
                s.status, s.reason = "failed", f"{dtype_name(d)} ({label}) outside the derived tolerance"
            del model
            free()


def comfy_like_ops():
    """Layers that run their stored weights as they are unless patched: ComfyUI's disable_weight_init rule,
    rebuilt here so the section needs no ComfyUI (the comfy_ops section runs the real ones)."""
    from torch import nn

    def make(base):
        class Layer(base):
            comfy_cast_weights = False
            weight_function: list = []
            bias_function: list = []

        Layer.__name__ = base.__name__
        return Layer

    class Ops:
        Linear, Conv1d, Conv2d, Conv3d = make(nn.Linear), make(nn.Conv1d), make(nn.Conv2d), make(nn.Conv3d)
        GroupNorm, LayerNorm = make(nn.GroupNorm), make(nn.LayerNorm)

    return Ops


def sampling_inputs(setup: Setup) -> tuple:
    """The fp16 full-size model, seeded conditions, the official short start noise at the setup's size, and
    the generator (for the section's further draws)."""
    cfg, dev = setup.config, setup.device
    model = converted(seeded_model(cfg, dev), FP16)
    free()
    f, hp, wp = setup.frames, setup.height, setup.width
    g = torch.Generator().manual_seed(2)
    cond = Conditions(image=torch.randn(1, 1, cfg.context_dim, generator=g),
                      dwpose=torch.randint(0, 256, (1, 3, f + 1, hp, wp), generator=g, dtype=torch.uint8),
                      randomref=torch.randn(1, 4, 1, hp // 8, wp // 8, generator=g))
    noise = prepare_noise((1, 4, f, hp // 8, wp // 8), g, NoiseOptions.short(), prior_latent=cond.randomref)
    return model, cond, noise, g


def section_sampling(s: Section, setup: Setup) -> None:
    cfg, dev = setup.config, setup.device
    f, hp, wp = setup.frames, setup.height, setup.width
    model, cond, noise, g = sampling_inputs(setup)
    options = SamplerOptions(steps=setup.steps, guide_scale=2.5, device=dev, model_dtype=FP16, cfg_mode="batched")
    # warm-up: one batched-guidance call at the full size (kernel selection, allocator growth)
    x, kw = model_inputs(cfg, f, hp, wp, 2, dev, FP16)
    _, t_warm = timed(setup, lambda: forward(model, x, kw))
    s.row("warm-up call (batch 2)", t_warm, "s")
    del x, kw
    free()
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
        base = torch.cuda.memory_allocated(dev)
    steps_total = len(options.schedule_timesteps())
    done, t_steps = 0, []
    setup.sync()
    t0 = time.perf_counter()
    last = t0
    for step in iter_sample_video(model, noise, cond, options, generator=g):
        setup.sync()
        now = time.perf_counter()
        t_steps.append(now - last)
        last = now
        done += 1
        if not bool(torch.isfinite(step.x).all()):
            raise RuntimeError(f"non-finite latent at step {done}")
        projected = (now - t0) / done * (steps_total - done)
        if done < steps_total and projected > setup.left() - 20:
            s.row("stopped early (time budget)", done, "steps", projected_rest_s=projected)
            break
    wall = time.perf_counter() - t0
    s.row(f"{done}/{steps_total} model steps, {f} frames {hp}x{wp}, CFG 2.5 batched, fp16", wall, "s")
    s.row("seconds per step (median)", sorted(t_steps)[len(t_steps) // 2], "s/step")
    est = activation_bytes(f, hp // 8, wp // 8, batch=2, dtype=FP16)
    if dev.type == "cuda":
        peak = torch.cuda.max_memory_allocated(dev)
        s.row("peak VRAM (max_memory_allocated, weights included)", peak / 2**30, "GiB")
        act = peak - base
        s.row("activation peak (peak - allocated before the run)", act / 2**30, "GiB")
        s.row("activation_bytes estimate (batch 2)", est / 2**30, "GiB", error=(est - act) / act)
    else:
        s.row("activation_bytes estimate (batch 2)", est / 2**30, "GiB", note="VRAM is measured on CUDA only")


def section_mamba(s: Section, setup: Setup) -> None:
    import dataclasses

    from unianimate_core.mamba import MambaConfig, MambaMixer, load_fused_kernels

    if setup.device.type != "cuda":
        raise Skip("the mamba-ssm kernels are CUDA-only (the pure-PyTorch scan is covered by the test suite)")
    kernels = load_fused_kernels()
    if kernels is None:
        raise Skip("mamba_ssm is not importable here (pip install mamba-ssm causal-conv1d --no-build-isolation); "
                   "the reason is logged by unianimate.mamba")
    cfg = dataclasses.replace(setup.config, temporal="mamba", mamba=MambaConfig())
    model = converted(seeded_model(cfg, setup.device), FP16)
    frames = min(setup.frames, 16)
    x, kw = model_inputs(cfg, frames, setup.height, setup.width, 1, setup.device, FP16)
    results = {}
    for backend in ("torch", "mamba_ssm"):
        for m in model.modules():
            if isinstance(m, MambaMixer):
                m.config = dataclasses.replace(m.config, backend=backend)
        forward(model, x, kw)  # warm-up
        results[backend], t = timed(setup, lambda: forward(model, x, kw))
        s.row(f"Mamba UNet forward, {backend} backend, {frames} frames", t, "s")
    d = (results["mamba_ssm"] - results["torch"]).abs()
    s.row("mamba-ssm vs torch scan", float(d.max()), "max|d|", mean=float(d.mean()),
          scale=float(results["torch"].abs().max()))


def section_dwpose(s: Section, setup: Setup) -> None:
    try:
        import numpy as np
        import onnxruntime as ort
        from PIL import Image

        from unianimate_core.pose import DWPoseEstimator
    except ImportError as exc:
        raise Skip(f"{exc.name or exc} is not installed (pip install onnxruntime-gpu opencv-python-headless)") from exc
    det, pose = setup.dwpose_dir / "yolox_l.onnx", setup.dwpose_dir / "dw-ll_ucoco_384.onnx"
    if not (det.is_file() and pose.is_file()):
        raise Skip(f"no yolox_l.onnx / dw-ll_ucoco_384.onnx in {setup.dwpose_dir}")
    stand_in = setup.dwpose_dir.resolve() == (ROOT / "tests" / "fixtures" / "dwpose").resolve()
    src = ROOT / "tests" / "fixtures" / "pose_align" / "anim2_to_jump" / "source"
    frames = [np.array(Image.open(p).convert("RGB")) for p in sorted(src.glob("frame_*.png"))]
    label = "stand-in models (delta proves the plumbing only)" if stand_in else "real models"
    results = {}
    providers = ["cpu"]
    if "CUDAExecutionProvider" in ort.get_available_providers() and setup.device.type == "cuda":
        providers.append("cuda")
    for prov in providers:
        est = DWPoseEstimator(det, pose, prov)
        est.wholebody(frames[0])  # warm-up (session initialisation, CUDA graphs)
        t0 = time.perf_counter()
        results[prov] = [est.wholebody(f) for f in frames]
        s.row(f"DWPose {prov} ({est.provider}), {label}", len(frames) / (time.perf_counter() - t0), "frames/s")
    if "cuda" not in results:
        s.row("CUDA execution provider", "skipped", "",
              reason=f"onnxruntime {ort.__version__} offers {ort.get_available_providers()} on device {setup.device}")
        return
    d = max(float(np.abs(a.keypoints133 - b.keypoints133).max()) if a.keypoints133.size else 0.0
            for a, b in zip(results["cpu"], results["cuda"]))
    s.row("keypoints CUDA vs CPU", d, "max|d| px")


def section_comfy_ops(s: Section, setup: Setup) -> None:
    if setup.comfyui is None:
        raise Skip("no --comfyui PATH given (a ComfyUI source tree; nothing is installed)")
    if not (setup.comfyui / "comfy" / "ops.py").is_file():
        raise Skip(f"{setup.comfyui} has no comfy/ops.py")
    sys.path.insert(0, str(setup.comfyui))
    saved = sys.argv
    try:
        import comfy.options

        sys.argv = [saved[0]] + (["--cpu"] if setup.device.type == "cpu" else [])
        comfy.options.enable_args_parsing()
        import comfy.cli_args  # noqa: F401 - parsed now, with only the device flag
        import comfy.ops as ops
    except ImportError as exc:
        raise Skip(f"ComfyUI at {setup.comfyui} could not be imported ({exc}); run this script with ComfyUI's Python")
    finally:
        sys.argv = saved
    cfg, dev = setup.config, setup.device
    ref_model = seeded_model(cfg, dev)
    frames, hp, wp = (2, 64, 64) if setup.tiny else (setup.ref_frames, setup.height, setup.width)
    x32, kw32 = model_inputs(cfg, frames, hp, wp, 1, dev, FP32)
    ref = forward(ref_model, x32, kw32)
    scale = float(ref.abs().max())
    e_w = {}
    rounded = converted(ref_model, FP32)
    for d in (FP16, BF16, torch.float8_e4m3fn):
        m = converted(ref_model, d, ops.manual_cast)
        rounded_like(rounded, m)
        e_w[d] = float((forward(rounded, x32, kw32) - ref).abs().max())
        del m
    del rounded
    free()
    cases = [("disable_weight_init", FP16, FP16, False), ("disable_weight_init", BF16, BF16, False),
             ("manual_cast", torch.float8_e4m3fn, FP16, False), ("manual_cast", FP16, FP32, False),
             ("disable_weight_init + weight_function", FP16, FP16, True)]
    for label, store, compute, patch in cases:
        if compute == BF16 and dev.type == "cuda" and not torch.cuda.is_bf16_supported(including_emulation=False):
            continue
        factory = ops.disable_weight_init if label.startswith("disable") else ops.manual_cast
        model = converted(ref_model, store, factory)
        model.compute_dtype = compute
        if patch:  # an identity patch: forces ComfyUI's cast-and-patch path on every layer
            for mod in model.modules():
                if hasattr(mod, "weight_function") and getattr(mod, "weight", None) is not None:
                    mod.weight_function = [lambda w: w * 1.0]
        x, kw = x32.to(compute), {k: v.to(compute) for k, v in kw32.items()}
        out, t = timed(setup, lambda: forward(model, x, kw))
        err = float((out - ref).abs().max())
        tol = e_w[store] + ACTIVATION_ROUNDINGS * e_w.get(compute, 0.0) + FP32_NOISE * scale
        ok = bool(torch.isfinite(out).all()) and err <= tol
        s.row(f"comfy.ops.{label}: {dtype_name(store)} -> {dtype_name(compute)}", err, "max|d|", tolerance=tol,
              passed=ok, seconds=t)
        if not ok:
            s.status, s.reason = "failed", f"comfy.ops {label} {dtype_name(store)} outside the derived tolerance"
        del model
        free()


def section_speed(s: Section, setup: Setup) -> None:
    """The speed options against the official sampler, and the large size on a 12 GB budget.

    * the fast sampler: DPM-Solver++(2M), logsnr spacing, 12 steps, CFG 2.5 (24 evaluations, 0.39x the
      official 62) at F x H x W in fp16: wall time, peak VRAM, and the official run's time from the
      ``sampling`` section for the ratio;
    * guidance on the first half of the steps only (official DDIM list): wall time, evaluations;
    * one UNet call at F frames of 1216 x 768 (portrait of 768 x 1216) in fp16, batch 1 (sequential
      guidance, what ComfyUI chooses when memory is short) and batch 2 (batched guidance): time and peak
      VRAM, against a 12 GiB card (weights 2.6 GiB fp16 included).
    """
    cfg, dev = setup.config, setup.device
    f, hp, wp = setup.frames, setup.height, setup.width
    model, cond, noise, g = sampling_inputs(setup)
    runs = [("dpmpp_2m, logsnr, 12 steps, CFG 2.5", dict(steps=12, solver="dpmpp_2m", timestep_mode="logsnr")),
            (f"ddim official {setup.steps} steps, guidance on the first half", dict(steps=setup.steps,
                                                                                   guidance_interval=(0.0, 0.5)))]
    for label, kw in runs:
        if setup.left() < (5 if setup.tiny else 40):
            raise Skip(f"time budget: {setup.left():.0f} s left")
        options = SamplerOptions(guide_scale=2.5, device=dev, model_dtype=FP16, cfg_mode="batched", **kw)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        setup.sync()
        t0 = time.perf_counter()
        for step in iter_sample_video(model, noise, cond, options, generator=g):
            pass
        setup.sync()
        wall = time.perf_counter() - t0
        if not bool(torch.isfinite(step.x).all()):
            raise RuntimeError(f"non-finite latent with {label}")
        peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
        s.row(f"{label}: {f} frames {hp}x{wp} fp16", wall, "s", evaluations=options.model_evaluations(),
              official_evaluations=SamplerOptions(steps=30).model_evaluations(), peak_vram_gib=peak)
        free()
    scale = 1216 / 768
    h_big, w_big = int(round(hp * scale / 64)) * 64, wp * 768 // 512 // 64 * 64 or 64
    for batch in (1, 2):
        if setup.left() < (5 if setup.tiny else 30):
            raise Skip(f"time budget: {setup.left():.0f} s left")
        x, kw = model_inputs(cfg, f, h_big, w_big, batch, dev, FP16)
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        try:
            _, t = timed(setup, lambda: forward(model, x, kw))
        except torch.cuda.OutOfMemoryError as exc:  # a result too: this size does not fit this card
            s.row(f"one UNet call, batch {batch}, {f} frames {h_big}x{w_big} fp16: out of memory", 0.0, "s",
                  error=str(exc)[:200])
            del x, kw
            free()
            continue
        peak = torch.cuda.max_memory_allocated(dev) / 2**30 if dev.type == "cuda" else float("nan")
        s.row(f"one UNet call, batch {batch}, {f} frames {h_big}x{w_big} fp16", t, "s", peak_vram_gib=peak,
              fits_12_gib=bool(peak <= 12.0) if dev.type == "cuda" else "n/a (CUDA only)")
        del x, kw
        free()


RUNNERS: dict[str, Callable[[Section, Setup], None]] = {
    "precision": section_precision, "sampling": section_sampling, "mamba": section_mamba,
    "dwpose": section_dwpose, "comfy_ops": section_comfy_ops, "speed": section_speed,
}
#: seconds a section needs at least (full size on an H100); it is skipped when less budget is left
MIN_SECONDS = {"precision": 25, "sampling": 60, "mamba": 15, "dwpose": 5, "comfy_ops": 15, "speed": 60}


def environment(setup: Setup) -> dict:
    env = dict(python=platform.python_version(), torch=torch.__version__, device=str(setup.device),
               cuda=torch.version.cuda, tiny=setup.tiny, frames=setup.frames, size=f"{setup.height}x{setup.width}",
               steps=setup.steps)
    if setup.device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(setup.device)
        env["capability"] = ".".join(map(str, torch.cuda.get_device_capability(setup.device)))
    return env


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda")
    p.add_argument("--tiny", action="store_true", help="tiny UNet, 64x64, 2 frames, 2 steps (the CPU test mode)")
    p.add_argument("--only", nargs="+", choices=SECTIONS, default=list(SECTIONS))
    p.add_argument("--json", type=Path, default=Path("gpu_check.json"))
    p.add_argument("--comfyui", type=Path, default=None, help="ComfyUI source tree for the comfy_ops section")
    p.add_argument("--dwpose-dir", type=Path, default=ROOT / "tests" / "fixtures" / "dwpose")
    p.add_argument("--steps", type=int, default=None)
    p.add_argument("--frames", type=int, default=None)
    p.add_argument("--height", type=int, default=None)
    p.add_argument("--width", type=int, default=None)
    p.add_argument("--ref-frames", type=int, default=None)
    p.add_argument("--budget", type=float, default=240.0)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(f"--device {a.device}: this PyTorch ({torch.__version__}) sees no CUDA device; use --device cpu --tiny "
              "for the CPU mode.", file=sys.stderr)
        return 2
    if a.threads:
        torch.set_num_threads(a.threads)
    small = dict(frames=2, height=64, width=64, ref_frames=2, steps=2)
    big = dict(frames=32, height=768, width=512, ref_frames=4, steps=30)
    defaults = small if a.tiny else big
    setup = Setup(device=device, tiny=a.tiny, frames=a.frames or defaults["frames"],
                  height=a.height or defaults["height"], width=a.width or defaults["width"],
                  ref_frames=a.ref_frames or defaults["ref_frames"], steps=a.steps or defaults["steps"],
                  budget=a.budget, comfyui=a.comfyui, dwpose_dir=a.dwpose_dir)
    env = environment(setup)
    print("gpu_check " + "  ".join(f"{k}={v}" for k, v in env.items()), flush=True)
    results: dict[str, Section] = {}
    for name in a.only:
        sec = Section(name)
        t0 = time.perf_counter()
        need = 1 if setup.tiny else MIN_SECONDS[name]
        try:
            if setup.left() < need:
                raise Skip(f"time budget: {setup.left():.0f} s left, the section needs about {need} s")
            RUNNERS[name](sec, setup)
        except Skip as exc:
            sec.status, sec.reason = "skipped", str(exc)
        except Exception as exc:  # noqa: BLE001 - report and go on with the next section
            sec.status, sec.reason = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        sec.seconds = time.perf_counter() - t0
        results[name] = sec
        print(f"  {name:10s} -> {sec.status}{': ' + sec.reason if sec.reason else ''} ({sec.seconds:.1f} s)", flush=True)
        free()
    total = time.perf_counter() - setup.t0
    print(f"\n{'section':12s} {'status':8s} {'seconds':>8s}  reason")
    for sec in results.values():
        print(f"{sec.name:12s} {sec.status:8s} {sec.seconds:8.1f}  {sec.reason}")
    print(f"total {total:.1f} s")
    out = dict(environment=env, total_seconds=total,
               sections={k: dict(status=v.status, reason=v.reason, seconds=v.seconds, rows=v.rows)
                         for k, v in results.items()})
    a.json.write_text(json.dumps(out, indent=1, default=str))
    print(f"wrote {a.json}")
    return 1 if any(v.status == "failed" for v in results.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
