"""Model evaluations against measured quality: the sampler's speed options on the observatory model.

    python benchmarks/solver_quality.py --model .cache/observatory/run/model.safetensors
                                        [--clips 8] [--width 64 --height 128] [--frames 8] [--split test] [--json solver_quality.json]
    python benchmarks/solver_quality.py --random-weights --clips 1   # plumbing check: untrained tiny UNet

The observatory model (a small UniAnimate trained on the synthetic world, docs/observatory.md) is a
proxy for the released model: its clips have exact ground truth, so quality is measured, not guessed.
For every world clip each sampler configuration below generates the clip from the same seed (the
pipeline's own preparation and sampling, ``toyworld.generate``), and the evaluation suite scores it
against the clip's ground truth (``evaluation.evaluate_toy_clip``: PSNR, pose following PCK@0.2,
limb overlap, identity, temporal metrics). Printed per configuration: UNet evaluations (a guided step
counts 2), the mean of each metric, its paired difference to the official sampler (DDIM, official
30-step list, guidance 2.5 on every step: 62 evaluations) with the standard error over clips, and the
PSNR of the frames against the official sampler's frames (how close the faster run stays to it).

Deep-feature reuse (``deep_cache_interval`` N: the whole UNet every N-th step, only its outer
``depth`` blocks at each end in between) keeps the number of UNet calls but makes most of them cheap,
so the cost is printed twice: UNet evaluations (counted as the model is called: every call, full or
reuse, a batched guidance call counting 2) and relative compute = (full evaluations + r x reuse
evaluations) / the official's evaluations, where r is the cost of a reuse call relative to a full one.
r is measured before the clips run, for each depth used: the process CPU time of one full and one
reuse forward of the loaded model at the clips' size (batched guidance, one thread, median of 5
interleaved repeats), and, machine-independent, their FLOP ratio (torch's FLOP counter) for this
model and for the full-size UNet at 32 frames of 768 x 512 (on the meta device, no memory). The
relative compute uses the measured time ratio.

"Equal quality" here means: every metric's paired difference to the official sampler within 2
standard errors (or better). Speed options stay off by default until this holds on the observatory.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

#: name -> (steps, solver, timestep spacing, guidance_end[, deep_cache_interval, deep_cache_depth])
CONFIGS = {
    "official ddim 30": (30, "ddim", "official", 1.0),
    "ddim 30, guidance first half": (30, "ddim", "official", 0.5),
    "ddim 15": (15, "ddim", "official", 1.0),
    "ddim trailing 12": (12, "ddim", "trailing", 1.0),
    "dpmpp_2m logsnr 8": (8, "dpmpp_2m", "logsnr", 1.0),
    "dpmpp_2m logsnr 10": (10, "dpmpp_2m", "logsnr", 1.0),
    "dpmpp_2m logsnr 12": (12, "dpmpp_2m", "logsnr", 1.0),
    "dpmpp_2m logsnr 15": (15, "dpmpp_2m", "logsnr", 1.0),
    "dpmpp_2m logsnr 15, guidance first half": (15, "dpmpp_2m", "logsnr", 0.5),
    "ddim 30, deep cache every 2": (30, "ddim", "official", 1.0, 2, 2),
    "ddim 30, deep cache every 3": (30, "ddim", "official", 1.0, 3, 2),
    "ddim 30, deep cache every 3, depth 1": (30, "ddim", "official", 1.0, 3, 1),
    "ddim 30, deep cache every 3, depth 3": (30, "ddim", "official", 1.0, 3, 3),
    "ddim trailing 12, deep cache every 2": (12, "ddim", "trailing", 1.0, 2, 2),
    "ddim trailing 15, deep cache every 2": (15, "ddim", "trailing", 1.0, 2, 2),
}
METRICS = ("psnr_clip", "pck_0.2", "limb_overlap")


def load_model(path: str):
    """The observatory checkpoint with the world's CLIP stand-in's empty-prompt context."""
    try:  # the evaluation command's own loader, where this tree has it
        from unianimate_core.evaluation.cli import load_toy_model  # type: ignore[attr-defined]

        return load_toy_model(path)
    except ImportError:
        from unianimate_core.checkpoint import load_unet
        from unianimate_core.toyworld import ToyImageEncoder

        return load_unet(path, zero_y=ToyImageEncoder().empty_context())


def settings(name: str) -> dict:
    """The GenerateOptions speed settings of a configuration."""
    steps, solver, spacing, g_end, *deep = CONFIGS[name]
    interval, depth = deep or (1, 2)
    return dict(steps=steps, solver=solver, timestep_spacing=spacing, guidance_end=g_end,
                deep_cache_interval=interval, deep_cache_depth=depth)


class CallCounter:
    """Forwards to the UNet, counting evaluations (rows per clip: a batched guidance call is 2) that ran the
    whole UNet and those that reused deep features."""

    def __init__(self, model) -> None:
        self.model, self.full, self.reuse = model, 0, 0
        self.supports_cond_mask = self.supports_deep_cache = True
        self.input_blocks = model.input_blocks

    def __call__(self, x, t, transformer_options=None, **kwargs):
        slot = (transformer_options or {}).get("deep_cache")
        out = self.model(x, t, transformer_options=transformer_options, **kwargs)
        if slot is not None and slot.stored is None:
            self.reuse += x.shape[0]
        else:
            self.full += x.shape[0]
        return out


def _forward_inputs(config, frames: int, h: int, w: int, device: str = "cpu") -> tuple:
    """Batched-guidance inputs (2 rows) for one forward: x, t and the condition keywords."""
    import torch

    g = torch.Generator().manual_seed(0)

    def randn(*shape: int) -> "torch.Tensor":
        return torch.randn(shape, generator=g).to(device) if device != "meta" else torch.empty(shape, device=device)

    kw = dict(image=randn(2, config.context_dim), dwpose=randn(2, 3, frames + 1, 8 * h, 8 * w).sigmoid(),
              randomref=randn(2, 4, 1, h, w), cond_mask=torch.tensor([True, False], device=device))
    return randn(2, 4, frames, h, w), torch.full((2,), 500, dtype=torch.int64, device=device), kw


def _full_and_reuse(model, x, t, kw, depth: int):
    """Two callables: one full forward, one reuse forward (its cache filled by a full forward first)."""
    from unianimate_core.diffusion.deep_cache import DeepCacheSlot

    first = DeepCacheSlot(depth)
    model(x, t, transformer_options={"deep_cache": first}, **kw)
    return (lambda: model(x, t, **kw),
            lambda: model(x, t, transformer_options={"deep_cache": DeepCacheSlot(depth, first.stored)}, **kw))


def _flops(fn) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def reuse_costs(model, depths: list[int], frames: int, width: int, height: int, repeats: int = 5) -> dict[int, dict]:
    """Per depth: process CPU time of a full and a reuse forward of ``model`` (median of ``repeats``, interleaved),
    their ratio, and the FLOP ratio for this model and for the full-size UNet (32 frames, 768 x 512, meta)."""
    import torch

    from unianimate_core.config import UNetConfig
    from unianimate_core.unet.model import UNetSD_UniAnimate

    h, w = height // 8, width // 8
    out: dict[int, dict] = {}
    big = UNetSD_UniAnimate(UNetConfig.full(), device="meta").eval()
    big.set_zero_y(torch.zeros(1, 77, UNetConfig.full().context_dim, device="meta"))
    bx, bt, bkw = _forward_inputs(big.config, 32, 96, 64, device="meta")
    with torch.no_grad():
        x, t, kw = _forward_inputs(model.config, frames, h, w)
        for depth in depths:
            full, reuse = _full_and_reuse(model, x, t, kw, depth)
            full(), reuse()  # warm-up
            times: dict[str, list[float]] = {"full": [], "reuse": []}
            for _ in range(repeats):
                for name, fn in (("full", full), ("reuse", reuse)):
                    t0 = time.process_time()
                    fn()
                    times[name].append(time.process_time() - t0)
            tf, tr = float(np.median(times["full"])), float(np.median(times["reuse"]))
            big_full, big_reuse = _full_and_reuse(big, bx, bt, bkw, depth)
            out[depth] = dict(full_ms=1000 * tf, reuse_ms=1000 * tr, time_ratio=tr / tf,
                              flop_ratio=_flops(reuse) / _flops(full),
                              flop_ratio_full_size=_flops(big_reuse) / _flops(big_full))
    return out


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=None, help="the observatory model (.safetensors), e.g. from `make observatory`")
    p.add_argument("--random-weights", action="store_true",
                   help="an untrained tiny UNet instead of --model (checks the script runs; its quality means nothing)")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--width", type=int, default=64, help="clip width (the observatory model: 64 x 128)")
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--split", default="test")
    p.add_argument("--guidance", type=float, default=2.5)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--only", nargs="+", choices=sorted(CONFIGS), default=None)
    p.add_argument("--json", default="solver_quality.json")
    a = p.parse_args()
    if not a.random_weights and (a.model is None or not Path(a.model).is_file()):
        raise SystemExit(f"--model {a.model} does not exist: train the observatory model first (make observatory), "
                         "or pass --random-weights for a plumbing check.")
    import torch

    torch.set_num_threads(1)
    from unianimate_core.diffusion import SamplerOptions
    from unianimate_core.evaluation.evaluate import evaluate_toy_clip
    from unianimate_core.toyworld import ToyImageEncoder, World, WorldConfig
    from unianimate_core.toyworld.generate import GenerateOptions, generate

    if a.random_weights:
        from unianimate_core.config import UNetConfig
        from unianimate_core.unet.model import UNetSD_UniAnimate

        torch.manual_seed(0)
        model = UNetSD_UniAnimate(UNetConfig.tiny()).eval().requires_grad_(False)
        model.set_zero_y(ToyImageEncoder().empty_context())
    else:
        model = load_model(a.model)
    world = World(WorldConfig(width=a.width, height=a.height, frames=a.frames))
    encoder = ToyImageEncoder()
    names = a.only or list(CONFIGS)
    if "official ddim 30" not in names:
        names = ["official ddim 30"] + names
    depths = sorted({settings(n)["deep_cache_depth"] for n in names if settings(n)["deep_cache_interval"] > 1})
    costs = reuse_costs(model, depths, a.frames, a.width, a.height) if depths else {}
    if costs:
        print(f"cost of a reuse call relative to a full one ({a.frames} frames, {a.width} x {a.height}, batched guidance, "
              "1 thread, process CPU time, median of 5):")
        print(f"{'depth':>5s} {'full ms':>8s} {'reuse ms':>8s} {'time ratio':>10s} {'FLOP ratio':>10s} "
              f"{'FLOP ratio, full-size 32x768x512':>32s}")
        for depth, c in costs.items():
            print(f"{depth:5d} {c['full_ms']:8.1f} {c['reuse_ms']:8.1f} {c['time_ratio']:10.3f} {c['flop_ratio']:10.3f} "
                  f"{c['flop_ratio_full_size']:32.3f}")
    counter = CallCounter(model)
    counts = {n: [0, 0] for n in names}  # full, reuse evaluations over all clips
    scores: dict[str, list[dict]] = {n: [] for n in names}
    seconds = {n: 0.0 for n in names}
    for i in range(a.clips):
        clip = world.clip(a.split, i)
        official = None
        for name in names:
            opts = GenerateOptions(guidance=a.guidance, seed=a.seed, **settings(name))
            counter.full = counter.reuse = 0
            t0 = time.perf_counter()
            frames = generate(counter, clip, opts, encoder=encoder)
            seconds[name] += time.perf_counter() - t0
            counts[name][0] += counter.full
            counts[name][1] += counter.reuse
            m = evaluate_toy_clip(frames, clip, encoder=encoder, warp=False)
            row = {k: float(m.summary[k]) for k in METRICS if k in m.summary}
            if official is None:
                official = frames
            row["psnr_vs_official"] = psnr(frames, official)
            scores[name].append(row)
        print(f"clip {i + 1}/{a.clips} done", flush=True)

    report: dict = {}
    base = scores["official ddim 30"]
    official_evals = SamplerOptions(guide_scale=a.guidance).model_evaluations()
    print(f"\n{'configuration':42s} {'evals':>5s} {'x official':>10s} {'reuse':>5s} {'compute':>7s} "
          + " ".join(f"{k:>24s}" for k in METRICS) + f" {'PSNR vs official':>16s} {'s/clip':>7s}")
    for name in names:
        st = settings(name)
        full, reuse = (c / a.clips for c in counts[name])
        evals = full + reuse
        ratio = costs[st["deep_cache_depth"]]["time_ratio"] if reuse else 0.0
        sampler = SamplerOptions(steps=st["steps"], guide_scale=a.guidance, solver=st["solver"],
                                 timestep_mode=st["timestep_spacing"], guidance_interval=(0.0, st["guidance_end"]))
        assert evals == sampler.model_evaluations(), (name, evals)  # the counter sees every call
        compute = (full + ratio * reuse) / official_evals
        entry: dict = dict(evaluations=evals, ratio=evals / official_evals, reuse_evaluations=reuse,
                           relative_compute=compute, seconds_per_clip=seconds[name] / a.clips, settings=st)
        cells = []
        equal = True
        for k in METRICS:
            vals = np.array([r[k] for r in scores[name]])
            diff = vals - np.array([r[k] for r in base])
            se = float(diff.std(ddof=1) / math.sqrt(len(diff))) if len(diff) > 1 else float("nan")
            entry[k] = dict(mean=float(np.nanmean(vals)), diff=float(np.nanmean(diff)), se=se)
            if name != "official ddim 30" and np.nanmean(diff) < -2 * se:
                equal = False
            cells.append(f"{np.nanmean(vals):8.4g} ({np.nanmean(diff):+.3g}±{se:.2g})")
        close = [r["psnr_vs_official"] for r in scores[name]]
        entry["psnr_vs_official_db"] = float(np.mean([c for c in close if math.isfinite(c)])) if name != names[0] else None
        entry["equal_quality"] = equal
        report[name] = entry
        shown = "-" if entry["psnr_vs_official_db"] is None else f"{entry['psnr_vs_official_db']:.1f} dB"
        print(f"{name:42s} {evals:5.0f} {entry['ratio']:10.2f} {reuse:5.0f} {compute:7.2f} " + " ".join(f"{c:>24s}" for c in cells)
              + f" {shown:>16s} {entry['seconds_per_clip']:7.1f}" + ("" if equal else "  (worse)"))
    Path(a.json).write_text(json.dumps(dict(args=vars(a), reuse_costs={str(d): c for d, c in costs.items()},
                                            configs=report, per_clip=scores), indent=1))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
