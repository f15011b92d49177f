"""Run inside a real ComfyUI's Python (cwd = the ComfyUI work tree): UniAnimate's MODEL in core sampling.

    python native_probe.py TASK '{"json": "params"}'   ->  prints RESULT{json}

The pack is imported the way ComfyUI imports a custom-node directory; the model is the tiny fixture
UNet (fp32, CPU, one thread: two threads on a busy two-core machine oversubscribe it badly). Each task
returns numbers; tests/host/test_comfy_host_native.py asserts on them and benchmarks/native_comfy.py
prints them. Tasks:

  schedule   ComfyUI's sigmas for our MODEL vs UniAnimate's schedule and vs the fake's model_sampling
  parity     KSampler (comfy.sample.sample, ddim / ddim_uniform) and SamplerCustomAdvanced vs our DDIM,
             every step, plus our DDIM with a float64 model (the rounding floor the tolerance is
             derived from)
  grid       every sampler x every scheduler, finite output
  window_lists  ComfyUI's standard_static window lists vs our sliding windows, many lengths
  windows    "Context Windows (Manual)" over F frames: frames per model call, memory, time, and
             (optionally) per-step parity with our sliding-window sampler
  speed      step time with EasyCache / LazyCache / TorchCompileModel against the plain MODEL
  patches    ComfyUI attention / block patches and the attention override reach the UNet
"""
from __future__ import annotations

import importlib.util
import json
import logging
import math
import os
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACK_NAME = "unianimate_native_probe_pack"
SIZE = 64


# ---------------------------------------------------------------------------------------- setup
def setup(attention: str = "pytorch"):
    args = ["probe", "--cpu"] + (["--use-pytorch-cross-attention"] if attention == "pytorch" else [])
    sys.argv = args
    sys.path.insert(0, os.getcwd())
    sys.path.insert(0, str(REPO / "tests"))
    # tests/tiny_unet.py imports unianimate_core; the repository goes last so that ComfyUI's own `nodes`
    # module (in its base folder, first) is not shadowed by the pack's `nodes/` package
    sys.path.append(str(REPO))
    import comfy.options

    comfy.options.enable_args_parsing()
    import torch

    torch.set_num_threads(1)
    import comfy.model_management  # noqa: F401 - what ComfyUI has imported before it loads packs
    import comfy_api.latest  # noqa: F401
    import folder_paths  # noqa: F401

    spec = importlib.util.spec_from_file_location(PACK_NAME, REPO / "__init__.py",
                                                  submodule_search_locations=[str(REPO)])
    pack = importlib.util.module_from_spec(spec)
    sys.modules[PACK_NAME] = pack
    spec.loader.exec_module(pack)
    return pack


def core(name: str):
    return sys.modules[f"{PACK_NAME}.unianimate_core.{name}"]


def float64_unet():
    """The tiny UNet with float64 weights (the rounding reference)."""
    from tiny_unet import tiny_checkpoint_path, tiny_zero_y

    unet = core("checkpoint").load_unet(str(tiny_checkpoint_path()), dtype="fp32").double()
    unet.set_zero_y(tiny_zero_y())
    return unet


def float64_patcher(pack, unet64):
    """Our MODEL around the float64 UNet: ComfyUI's sampler (float32 state) with a float64 network."""
    import torch

    cpu = torch.device("cpu")
    return pack.nodes.native_model.make_model_patcher(unet64, torch.float64, None, cpu, cpu)


def load_model(pack, dtype: str = "fp32"):
    """The tiny UNet inside the pack's ModelPatcher (what 'Load UniAnimate Model' builds)."""
    from tiny_unet import tiny_checkpoint_path, tiny_zero_y

    patcher = pack.nodes.loader.build_patcher(str(tiny_checkpoint_path()), dtype)
    patcher.model.diffusion_model.set_zero_y(tiny_zero_y())
    return patcher


def make_conditions(pack, frames: int, mode: str = "standard", seed: int = 0, prior: int = 949,
                    offset: float = 0.1, size: int = SIZE):
    """Random but fixed conditions (poses, CLIP embedding, reference latent) -> core Conditions + node outputs."""
    import torch

    diffusion = core("diffusion")
    g = torch.Generator().manual_seed(seed)
    dwpose = (torch.rand(1, 3, frames + 1, size, size, generator=g) * 255).to(torch.uint8)
    image = torch.randn(1, 1, 1024, generator=g)
    ref = torch.randn(1, 4, size // 8, size // 8, generator=g) * 0.5
    pixels = torch.rand(1, 3, size, size, generator=g)
    cond = diffusion.Conditions.build(mode, image=image, dwpose=dwpose, ref_latent=ref, ref_pixels=pixels)
    pos, neg, latent = pack.nodes.native_nodes.build_conditioning(cond, ref, size, size, prior, offset)
    return cond, ref, pos, neg, latent


def our_start(pack, noise, ref, seed: int, prior: int = 949, offset: float = 0.1):
    """UniAnimate's start from ComfyUI's noise (F, 4, h, w): what the noise-prior wrapper should produce."""
    diffusion = core("diffusion")
    main = noise.permute(1, 0, 2, 3).unsqueeze(0)
    off = pack.nodes.native_model.offset_noise(seed, noise.shape[0]) if offset > 0 else None
    return diffusion.combine_noise(main, off, diffusion.NoiseOptions(offset, prior or None, "offset_then_prior"),
                                   prior_latent=ref)


def ulp_nudge(t, seed: int = 123):
    """``t`` with every value moved by one float32 ulp up or down at random (a rounding-sized change)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    up = torch.rand(t.shape, generator=g) < 0.5
    return torch.where(up, torch.nextafter(t, torch.full_like(t, float("inf"))),
                       torch.nextafter(t, torch.full_like(t, float("-inf"))))


def to_video(t):
    """(F, C, h, w) -> (1, C, F, h, w)."""
    return t.permute(1, 0, 2, 3).unsqueeze(0)


class Recorder:
    """Per-step sampler callback: x (k-diffusion units) and denoised."""

    def __init__(self):
        self.x, self.x0 = [], []

    def __call__(self, step, x0, x, total):
        self.x.append(x.detach().float().clone())
        self.x0.append(x0.detach().float().clone())


def max_abs(a, b) -> float:
    return float((a.float() - b.float()).abs().max())


# ---------------------------------------------------------------------------------------- tasks
def task_schedule(pack, params):
    import comfy.model_sampling
    import torch

    ms = pack.nodes.native_model
    patcher = load_model(pack)
    sig_comfy = patcher.model.model_sampling.sigmas.double()
    sched = core("diffusion").NoiseSchedule.unianimate()
    ab = sched.alphas_cumprod
    ours = ((1 - ab[:-1]) / ab[:-1]).sqrt()
    rel = ((sig_comfy[:-1] - ours) / ours).abs()
    # the fake's model_sampling, loaded from its file, with the same settings
    spec = importlib.util.spec_from_file_location("fake_model_sampling",
                                                  REPO / "tests" / "comfy_fake" / "modules" / "comfy" / "model_sampling.py")
    fake = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fake)

    class Cfg:
        sampling_settings = ms.SAMPLING_SETTINGS

    class FakeMS(fake.ModelSamplingDiscrete, fake.V_PREDICTION):
        pass

    fms = FakeMS(Cfg())
    real = patcher.model.model_sampling
    sig = torch.tensor([0.05, 1.0, 30.0, 300.0, 4000.0])
    x = torch.randn(5, 4, 3, 3, generator=torch.Generator().manual_seed(0))
    v = torch.randn(5, 4, 3, 3, generator=torch.Generator().manual_seed(1))
    fake_vs_real = {
        "sigmas": max_abs(fms.sigmas, real.sigmas),
        "timestep": max_abs(fms.timestep(sig), real.timestep(sig)),
        "sigma_of_t": max_abs(fms.sigma(torch.tensor([0.0, 1.5, 500.0, 999.0])), real.sigma(torch.tensor([0.0, 1.5, 500.0, 999.0]))),
        "calculate_input": max_abs(fms.calculate_input(sig, x), real.calculate_input(sig, x)),
        "calculate_denoised": max_abs(fms.calculate_denoised(sig, v, x), real.calculate_denoised(sig, v, x)),
        "noise_scaling": max_abs(fms.noise_scaling(sig[-1:], x, x * 0.5, True), real.noise_scaling(sig[-1:], x, x * 0.5, True)),
        "percent_to_sigma": abs(fms.percent_to_sigma(0.3) - real.percent_to_sigma(0.3)),
    }
    return {"max_rel_sigma_0_998": float(rel.max()), "sigma_999_comfy": float(sig_comfy[-1]),
            "sigma_998": float(ours[-1]), "sigma_0": float(sig_comfy[0]),
            "discrete": isinstance(real, comfy.model_sampling.ModelSamplingDiscrete),
            "v_prediction": isinstance(real, comfy.model_sampling.V_PREDICTION), "fake_vs_real": fake_vs_real}


class Float64Model:
    """The UNet evaluated in float64 (inputs widened exactly, output rounded once to float32)."""

    supports_cond_mask = True

    def __init__(self, unet):
        self.unet = unet

    def __call__(self, x, t, **kwargs):
        import torch

        kwargs = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in kwargs.items()}
        return self.unet(x.double(), t, **kwargs).float()


def our_trajectory(pack, unet, start, cond, steps, guide, timesteps=None):
    import torch

    diffusion = core("diffusion")
    opts = diffusion.SamplerOptions(steps=steps, guide_scale=guide, timesteps=timesteps)
    with torch.no_grad():
        return list(diffusion.iter_sample_video(unet, start, cond, opts))


def compare(steps_ours, rec, sigmas, start, final):
    """Per-step differences between our DDIM states and a ComfyUI run recorded with Recorder."""
    out = {"x0": [], "x": []}
    for i, r in enumerate(steps_ours):
        out["x0"].append(max_abs(to_video(rec.x0[i]), r.x0))
        if i + 1 < len(rec.x):
            s = float(sigmas[i + 1])
            out["x"].append(max_abs(to_video(rec.x[i + 1]) / math.sqrt(1 + s * s), r.x))
    s0 = float(sigmas[0])
    out["start"] = max_abs(to_video(rec.x[0]) / math.sqrt(1 + s0 * s0), start)
    out["final_vs_last_x0"] = max_abs(to_video(final), steps_ours[-1].x0)
    out["final_vs_final_state"] = max_abs(to_video(final), steps_ours[-1].x)
    return out


def task_parity(pack, params):
    import comfy.sample
    import comfy.samplers
    import torch
    from comfy_extras import nodes_custom_sampler as ncs

    frames, steps, guide, seed = params.get("frames", 2), params.get("steps", 30), params.get("guide", 2.5), params.get("seed", 7)
    mode = params.get("mode", "standard")
    patcher = load_model(pack)
    unet = patcher.model.diffusion_model
    cond, ref, pos, neg, latent = make_conditions(pack, frames, mode)
    noise = comfy.sample.prepare_noise(latent["samples"], seed)  # what KSampler draws for this seed
    start = our_start(pack, noise, ref, seed)
    sigmas = comfy.samplers.calculate_sigmas(patcher.model.model_sampling, "ddim_uniform", steps).cpu()
    result = {"sigmas": len(sigmas), "timesteps": [int(patcher.model.model_sampling.timestep(s)) for s in sigmas[:-1]]}

    t0 = time.perf_counter()
    ours = our_trajectory(pack, unet, start, cond, steps, guide)
    result["ours_s"] = time.perf_counter() - t0
    result["our_timesteps"] = [int(r.t) for r in ours]
    # the rounding floor: the same sampler with the model in float64
    from tiny_unet import tiny_checkpoint_path, tiny_zero_y

    unet64 = float64_unet()
    ours64 = our_trajectory(pack, Float64Model(unet64), start, cond, steps, guide)
    result["fp64"] = {"x0": [max_abs(a.x0, b.x0) for a, b in zip(ours, ours64)],
                      "x": [max_abs(a.x, b.x) for a, b in zip(ours, ours64)]}
    nudged = our_trajectory(pack, unet, ulp_nudge(start), cond, steps, guide)
    result["ulp"] = {"x0": [max_abs(a.x0, b.x0) for a, b in zip(ours, nudged)],
                     "x": [max_abs(a.x, b.x) for a, b in zip(ours, nudged)]}
    # both samplers with the float64 network: what is left is the samplers' own float32 arithmetic
    rec64 = Recorder()
    out64 = comfy.sample.sample(float64_patcher(pack, unet64), noise, steps, guide, "ddim", "ddim_uniform", pos, neg,
                                latent["samples"], denoise=1.0, callback=rec64, seed=seed, disable_pbar=True)
    result["ksampler_fp64_network"] = compare(ours64, rec64, sigmas, start, out64 * 0.18215)
    result["scale"] = {"x0": max(float(r.x0.abs().max()) for r in ours), "x": max(float(r.x.abs().max()) for r in ours),
                       "start": float(start.abs().max())}

    # KSampler: comfy.sample.sample is what the KSampler node calls with prepare_noise(latent, seed)
    rec = Recorder()
    t0 = time.perf_counter()
    out = comfy.sample.sample(patcher, noise, steps, guide, "ddim", "ddim_uniform", pos, neg, latent["samples"],
                              denoise=1.0, callback=rec, seed=seed, disable_pbar=True)
    result["ksampler_s"] = time.perf_counter() - t0
    result["ksampler"] = compare(ours, rec, sigmas, start, out * 0.18215)
    # the official last step lands on alpha_bar[0] instead of sigma 0: rebuild our final state from
    # ComfyUI's last x0 and the noise direction of its state at t = 1
    ab = core("diffusion").NoiseSchedule.unianimate().alphas_cumprod
    s1 = float(sigmas[-2])
    x1 = to_video(rec.x[-1]) / math.sqrt(1 + s1 * s1)
    eps = (x1 - math.sqrt(float(ab[1])) * to_video(rec.x0[-1])) / math.sqrt(1 - float(ab[1]))
    official = math.sqrt(float(ab[0])) * to_video(out * 0.18215) + math.sqrt(1 - float(ab[0])) * eps
    result["ksampler"]["official_final_rebuilt"] = max_abs(official, ours[-1].x)

    # SamplerCustomAdvanced with RandomNoise / CFGGuider / KSamplerSelect(ddim) / BasicScheduler. BasicScheduler
    # keeps the last steps + 1 sigmas, and ddim_uniform returns steps + 2 for this model, so it drops t = 991:
    # our sampler runs the same timesteps (an explicit list) for the comparison.
    noise_obj = ncs.RandomNoise.execute(noise_seed=seed).result[0]
    guider = ncs.CFGGuider.execute(model=patcher, positive=pos, negative=neg, cfg=guide).result[0]
    sampler = ncs.KSamplerSelect.execute(sampler_name="ddim").result[0]
    sig2 = ncs.BasicScheduler.execute(model=patcher, scheduler="ddim_uniform", steps=steps, denoise=1.0).result[0]
    adv = ncs.SamplerCustomAdvanced.execute(noise=noise_obj, guider=guider, sampler=sampler, sigmas=sig2,
                                            latent_image=latent).result[0]["samples"]
    rec2 = Recorder()
    guider.sample(noise_obj.generate_noise(latent), latent["samples"], sampler, sig2, callback=rec2, seed=seed,
                  disable_pbar=True)
    ms = patcher.model.model_sampling
    sca_t = [int(ms.timestep(s)) for s in sig2[:-1]]
    start2 = our_start(pack, noise_obj.generate_noise(latent), ref, seed)
    ours2 = our_trajectory(pack, unet, start2, cond, steps, guide, timesteps=tuple(sca_t))
    result["advanced"] = compare(ours2, rec2, sig2, start2, adv * 0.18215)
    result["advanced"]["timesteps"] = sca_t
    return result


def task_grid(pack, params):
    import comfy.sample
    import comfy.samplers
    import torch

    frames, steps = params.get("frames", 1), params.get("steps", 2)
    patcher = load_model(pack)
    cond, ref, pos, neg, latent = make_conditions(pack, frames)
    samplers = params.get("samplers") or list(comfy.samplers.SAMPLER_NAMES)
    schedulers = params.get("schedulers") or list(comfy.samplers.SCHEDULER_NAMES)
    rows = []
    for sampler in samplers:
        for scheduler in schedulers:
            noise = comfy.sample.prepare_noise(latent["samples"], 3)
            t0 = time.perf_counter()
            try:
                out = comfy.sample.sample(patcher, noise, steps, 2.0, sampler, scheduler, pos, neg, latent["samples"],
                                          denoise=1.0, seed=3, disable_pbar=True)
                finite, err = bool(torch.isfinite(out).all()), None
                shape = list(out.shape)
            except Exception as exc:  # recorded, the test reports which pairs fail and why
                finite, err, shape = False, f"{type(exc).__name__}: {exc}"[:300], None
            rows.append({"sampler": sampler, "scheduler": scheduler, "finite": finite, "error": err, "shape": shape,
                         "s": round(time.perf_counter() - t0, 3)})
    return {"samplers": samplers, "schedulers": schedulers, "rows": rows}


class RssPeak:
    """Peak resident-set growth of this process while the block runs (sampled every 5 ms)."""

    def __enter__(self):
        self.base = self.peak = self._rss()
        self._stop = False
        self._t = threading.Thread(target=self._watch, daemon=True)
        self._t.start()
        return self

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _watch(self):
        while not self._stop:
            self.peak = max(self.peak, self._rss())
            time.sleep(0.005)

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()
        self.peak = max(self.peak, self._rss())


def task_windows(pack, params):
    import comfy.sample
    import comfy.samplers
    import torch
    from comfy_extras.nodes_context_windows import ContextWindowsManualNode

    frames, steps, length, overlap = params["frames"], params.get("steps", 2), params.get("length", 8), params.get("overlap", 2)
    seed = 5
    patcher = load_model(pack)
    unet = patcher.model.diffusion_model
    cond, ref, pos, neg, latent = make_conditions(pack, frames, prior=939)
    windowed = ContextWindowsManualNode.execute(model=patcher, context_length=length, context_overlap=overlap,
                                                context_schedule="standard_static", context_stride=1,
                                                closed_loop=False, fuse_method="flat", dim=0,
                                                freenoise=False).result[0]
    calls = []
    hook = unet.register_forward_pre_hook(lambda m, a, k: calls.append(tuple((a[0] if a else k["x"]).shape)),
                                          with_kwargs=True)
    memory = []
    orig = patcher.model.memory_required
    patcher.model.memory_required = lambda shape, cond_shapes={}: memory.append(list(shape)) or orig(shape, cond_shapes)
    noise = comfy.sample.prepare_noise(latent["samples"], seed)
    rec = Recorder()
    with RssPeak() as rss:
        t0 = time.perf_counter()
        out = comfy.sample.sample(windowed, noise, steps, 2.5, "ddim", "ddim_uniform", pos, neg, latent["samples"],
                                  denoise=1.0, callback=rec, seed=seed, disable_pbar=True)
        seconds = time.perf_counter() - t0
    hook.remove()
    patcher.model.memory_required = orig
    result = {"frames": frames, "finite": bool(torch.isfinite(out).all()), "shape": list(out.shape),
              "calls": len(calls), "max_call_frames": max(c[2] for c in calls), "max_call_batch": max(c[0] for c in calls),
              "memory_required_shapes": memory[:3], "rss_growth_mb": (rss.peak - rss.base) / 2**20, "seconds": seconds}
    if params.get("compare"):
        diffusion = core("diffusion")
        start = our_start(pack, noise, ref, seed, prior=939)
        win = diffusion.SlidingWindowOptions(context_size=length, context_overlap=overlap, context_batch_size=1)
        opts = diffusion.SamplerOptions(steps=steps, guide_scale=2.5)
        with torch.no_grad():
            ours = list(diffusion.iter_sample_long_sliding(unet, start, cond, opts, win))
            unet64 = float64_unet()
            ours64 = list(diffusion.iter_sample_long_sliding(Float64Model(unet64), start, cond, opts, win))
            nudged = list(diffusion.iter_sample_long_sliding(unet, ulp_nudge(start), cond, opts, win))
        result["fp64"] = {"x0": [max_abs(a.x0, b.x0) for a, b in zip(ours, ours64)],
                          "x": [max_abs(a.x, b.x) for a, b in zip(ours, ours64)]}
        result["ulp"] = {"x0": [max_abs(a.x0, b.x0) for a, b in zip(ours, nudged)],
                         "x": [max_abs(a.x, b.x) for a, b in zip(ours, nudged)]}
        windowed64 = ContextWindowsManualNode.execute(
            model=float64_patcher(pack, unet64), context_length=length, context_overlap=overlap,
            context_schedule="standard_static", context_stride=1, closed_loop=False, fuse_method="flat", dim=0,
            freenoise=False).result[0]
        rec64 = Recorder()
        out64 = comfy.sample.sample(windowed64, noise, steps, 2.5, "ddim", "ddim_uniform", pos, neg,
                                    latent["samples"], denoise=1.0, callback=rec64, seed=seed, disable_pbar=True)
        sigmas = comfy.samplers.calculate_sigmas(patcher.model.model_sampling, "ddim_uniform", steps).cpu()
        result["start_scale"] = float(start.abs().max())
        result["parity"] = compare(ours, rec, sigmas, start, out * 0.18215)
        result["parity_fp64_network"] = compare(ours64, rec64, sigmas, start, out64 * 0.18215)
        result["our_windows"] = win.windows(frames)
        from comfy.context_windows import IndexListContextHandler, get_matching_context_schedule, get_matching_fuse_method

        handler = IndexListContextHandler(get_matching_context_schedule("standard_static"),
                                          get_matching_fuse_method("flat"), length, overlap)
        result["comfy_windows"] = handler.context_schedule.func(frames, handler, {})
    return result


def sample_timed(pack, model, latent, pos, neg, steps, sampler="ddim", scheduler="ddim_uniform"):
    """Seconds per step (first call excluded: compile / warm-up) and the output."""
    import comfy.sample

    times = []
    last = [time.perf_counter()]

    def cb(step, x0, x, total):
        now = time.perf_counter()
        times.append(now - last[0])
        last[0] = now

    noise = comfy.sample.prepare_noise(latent["samples"], 1)
    t0 = time.perf_counter()
    last[0] = t0
    out = comfy.sample.sample(model, noise, steps, 2.5, sampler, scheduler, pos, neg, latent["samples"], denoise=1.0,
                              callback=cb, seed=1, disable_pbar=True)
    total = time.perf_counter() - t0
    # the callback fires after each step's model call(s); times[0] includes warm-up / compilation
    return out, {"total_s": total, "first_step_s": times[0], "median_step_s": sorted(times[1:])[len(times[1:]) // 2]}


class LogCapture(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


def task_speed(pack, params):
    import torch
    from comfy_extras.nodes_easycache import EasyCacheNode, LazyCacheNode

    frames, steps = params.get("frames", 2), params.get("steps", 20)
    patcher = load_model(pack)
    cond, ref, pos, neg, latent = make_conditions(pack, frames)
    log = LogCapture()
    logging.getLogger().addHandler(log)
    logging.getLogger().setLevel(logging.INFO)
    results = {}
    base, results["plain"] = sample_timed(pack, patcher, latent, pos, neg, steps)
    for name, node in (("easycache", EasyCacheNode), ("lazycache", LazyCacheNode)):
        if name not in params.get("variants", ["easycache", "lazycache", "compile"]):
            continue
        m = node.execute(model=patcher, reuse_threshold=params.get("threshold", 0.2), start_percent=0.15,
                         end_percent=0.95, verbose=False).result[0]
        before = len(log.lines)
        out, results[name] = sample_timed(pack, m, latent, pos, neg, steps)
        results[name]["finite"] = bool(torch.isfinite(out).all())
        results[name]["max_abs_diff_vs_plain"] = max_abs(out, base)
        results[name]["log"] = [line for line in log.lines[before:] if "skipped" in line]
    if "compile" in params.get("variants", ["easycache", "lazycache", "compile"]):
        from comfy_extras.nodes_torch_compile import TorchCompileModel

        m = TorchCompileModel.execute(model=patcher, backend="inductor").result[0]
        try:
            out, results["compile"] = sample_timed(pack, m, latent, pos, neg, steps)
            results["compile"]["finite"] = bool(torch.isfinite(out).all())
            results["compile"]["max_abs_diff_vs_plain"] = max_abs(out, base)
        except Exception as exc:
            results["compile"] = {"error": f"{type(exc).__name__}: {exc}"[:500]}
    if "compile_eager" in params.get("variants", []):
        # what TorchCompileModel does, with dynamo's "eager" backend: traces the UNet through the same
        # APPLY_MODEL wrapper in seconds (inductor's code generation takes many minutes on a small CPU)
        from comfy_api.torch_helpers import set_torch_compile_wrapper
        from comfy_extras.nodes_torch_compile import skip_torch_compile_dict

        m = patcher.clone()
        set_torch_compile_wrapper(model=m, backend="eager", options={"guard_filter_fn": skip_torch_compile_dict})
        out, results["compile_eager"] = sample_timed(pack, m, latent, pos, neg, steps)
        results["compile_eager"]["finite"] = bool(torch.isfinite(out).all())
        results["compile_eager"]["max_abs_diff_vs_plain"] = max_abs(out, base)
    results["torch"] = torch.__version__
    return results


def task_patches(pack, params):
    """ComfyUI's own patch APIs on our MODEL: they reach the UNet and change its output as they should."""
    import comfy.sample
    import torch

    frames = params.get("frames", 2)
    patcher = load_model(pack)
    cond, ref, pos, neg, latent = make_conditions(pack, frames)
    noise = comfy.sample.prepare_noise(latent["samples"], 2)

    def run(model):
        return comfy.sample.sample(model, noise, 2, 2.5, "euler", "simple", pos, neg, latent["samples"], denoise=1.0,
                                   seed=2, disable_pbar=True)

    base = run(patcher)
    out = {}
    # 1. attn1 replacement on every spatial block with plain attention: identical result, every block seen
    import comfy.ldm.modules.attention as A

    seen = set()

    def attn1_replace(q, k, v, extra):
        seen.add((extra["block"][0], extra["block"][1], extra["block_index"]))
        return A.attention_pytorch(q, k, v, extra["n_heads"])

    m = patcher.clone()
    spatial = [(name, i) for name, blocks in (("input", patcher.model.diffusion_model.input_blocks),
                                              ("output", patcher.model.diffusion_model.output_blocks))
               for i, blk in enumerate(blocks)
               if any(type(layer).__name__ == "SpatialTransformer" for layer in (blk if isinstance(blk, torch.nn.ModuleList) else [blk]))]
    for name, i in spatial:
        m.set_model_attn1_replace(attn1_replace, name, i)
    m.set_model_attn1_replace(attn1_replace, "middle", 0)
    out["attn1_replace_max_abs"] = max_abs(run(m), base)
    out["attn1_replace_blocks"] = sorted(map(list, seen))
    out["spatial_blocks"] = sorted([list(s) for s in spatial] + [["middle", 0]])
    # 2. an attn2 output patch that zeroes the cross-attention output changes the result
    m = patcher.clone()
    m.set_model_attn2_output_patch(lambda n, extra: n * 0)
    out["attn2_zero_changes"] = max_abs(run(m), base)
    # 3. the attention override (what SageAttention-style nodes use) is called for spatial and temporal attention
    calls = {"n": 0}

    def override(func, *args, **kwargs):
        calls["n"] += 1
        return func(*args, **kwargs)

    m = patcher.clone()
    m.model_options["transformer_options"]["optimized_attention_override"] = override
    out["override_max_abs"] = max_abs(run(m), base)
    out["override_calls"] = calls["n"]
    # 4. core nodes built on those APIs: PerturbedAttentionGuidance (attn1 replace on the middle block)
    from comfy_extras.nodes_pag import PerturbedAttentionGuidance

    pag = PerturbedAttentionGuidance.execute(model=patcher, scale=3.0)
    pag = pag.result[0] if hasattr(pag, "result") else pag[0]
    pag_out = run(pag)
    out["pag_finite"] = bool(torch.isfinite(pag_out).all())
    out["pag_changes"] = max_abs(pag_out, base)
    # 5. FreeU V2 (output_block_patch on the skips, per resolution via model_channels). It normalises by the
    # spatial max - min of the deepest features, which is 0 / 0 at 1 x 1 latent pixels: 128 px, not 64.
    from comfy_extras.nodes_freelunch import FreeU_V2

    cond, ref, pos, neg, latent = make_conditions(pack, frames, size=128)
    noise = comfy.sample.prepare_noise(latent["samples"], 2)
    base = run(patcher)
    fu = FreeU_V2.execute(model=patcher, b1=1.3, b2=1.4, s1=0.9, s2=0.2)
    fu = fu.result[0] if hasattr(fu, "result") else fu[0]
    fu_out = run(fu)
    out["freeu"] = {"finite": bool(torch.isfinite(fu_out).all()), "changes": max_abs(fu_out, base)}
    return out


def task_window_lists(pack, params):
    """ComfyUI's standard_static windows vs our sliding windows for many lengths and settings."""
    from comfy.context_windows import IndexListContextHandler, get_matching_context_schedule, get_matching_fuse_method

    diffusion = core("diffusion")
    mismatches, compared = [], 0
    for length, overlap in params.get("settings", [[32, 8], [16, 4], [8, 2], [2, 1], [5, 0]]):
        handler = IndexListContextHandler(get_matching_context_schedule("standard_static"),
                                          get_matching_fuse_method("flat"), length, overlap)
        ours = diffusion.SlidingWindowOptions(context_size=length, context_overlap=overlap)
        for frames in range(1, params.get("max_frames", 300)):
            compared += 1
            a = handler.context_schedule.func(frames, handler, {})
            b = ours.windows(frames)
            if [list(w) for w in a] != [list(w) for w in b]:
                mismatches.append({"length": length, "overlap": overlap, "frames": frames, "comfy": a, "ours": b})
    return {"compared": compared, "mismatches": mismatches[:5], "mismatch_count": len(mismatches)}


TASKS = {"window_lists": task_window_lists, "schedule": task_schedule, "parity": task_parity, "grid": task_grid, "windows": task_windows,
         "speed": task_speed, "patches": task_patches}


def main(argv):
    task = argv[1]
    params = json.loads(argv[2]) if len(argv) > 2 else {}
    pack = setup(params.get("attention", "pytorch"))
    result = TASKS[task](pack, params)
    print("RESULT" + json.dumps(result))


if __name__ == "__main__":
    main(sys.argv)
