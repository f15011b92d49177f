"""Model evaluations against measured quality: the sampler's speed options on the observatory model.

    python benchmarks/solver_quality.py --model .cache/observatory/run/model.safetensors
                                        [--clips 8] [--size 64] [--frames 8] [--split test] [--json solver_quality.json]

The observatory model (a small UniAnimate trained on the synthetic world, docs/observatory.md) is a
proxy for the released model: its clips have exact ground truth, so quality is measured, not guessed.
For every world clip each sampler configuration below generates the clip from the same seed (the
pipeline's own preparation and sampling, ``toyworld.generate``), and the evaluation suite scores it
against the clip's ground truth (``evaluation.evaluate_toy_clip``: PSNR, pose following PCK@0.2,
limb overlap, identity, temporal metrics). Printed per configuration: UNet evaluations (a guided step
counts 2), the mean of each metric, its paired difference to the official sampler (DDIM, official
30-step list, guidance 2.5 on every step: 62 evaluations) with the standard error over clips, and the
PSNR of the frames against the official sampler's frames (how close the faster run stays to it).

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

#: name -> (steps, solver, timestep spacing, guidance_end)
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


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * math.log10(255.0 ** 2 / mse)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="the observatory model (.safetensors), e.g. from `make observatory`")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--split", default="test")
    p.add_argument("--guidance", type=float, default=2.5)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--only", nargs="+", choices=sorted(CONFIGS), default=None)
    p.add_argument("--json", default="solver_quality.json")
    a = p.parse_args()
    if not Path(a.model).is_file():
        raise SystemExit(f"{a.model} does not exist: train the observatory model first (make observatory).")
    import torch

    torch.set_num_threads(1)
    from unianimate_core.diffusion import SamplerOptions
    from unianimate_core.evaluation.evaluate import evaluate_toy_clip
    from unianimate_core.toyworld import ToyImageEncoder, World, WorldConfig
    from unianimate_core.toyworld.generate import GenerateOptions, generate

    model = load_model(a.model)
    world = World(WorldConfig(width=a.size, height=a.size, frames=a.frames))
    encoder = ToyImageEncoder()
    names = a.only or list(CONFIGS)
    if "official ddim 30" not in names:
        names = ["official ddim 30"] + names
    scores: dict[str, list[dict]] = {n: [] for n in names}
    seconds = {n: 0.0 for n in names}
    for i in range(a.clips):
        clip = world.clip(a.split, i)
        official = None
        for name in names:
            steps, solver, spacing, g_end = CONFIGS[name]
            opts = GenerateOptions(steps=steps, guidance=a.guidance, seed=a.seed, solver=solver,
                                   timestep_spacing=spacing, guidance_end=g_end)
            t0 = time.perf_counter()
            frames = generate(model, clip, opts, encoder=encoder)
            seconds[name] += time.perf_counter() - t0
            m = evaluate_toy_clip(frames, clip, encoder=encoder, warp=False)
            row = {k: float(m.summary[k]) for k in METRICS if k in m.summary}
            if official is None:
                official = frames
            row["psnr_vs_official"] = psnr(frames, official)
            scores[name].append(row)
        print(f"clip {i + 1}/{a.clips} done", flush=True)

    report: dict = {}
    base = scores["official ddim 30"]
    print(f"\n{'configuration':42s} {'evals':>5s} {'x official':>10s} " + " ".join(f"{k:>24s}" for k in METRICS)
          + f" {'PSNR vs official':>16s} {'s/clip':>7s}")
    for name in names:
        steps, solver, spacing, g_end = CONFIGS[name]
        sampler = SamplerOptions(steps=steps, guide_scale=a.guidance, solver=solver, timestep_mode=spacing,
                                 guidance_interval=(0.0, g_end))
        evals = sampler.model_evaluations()
        entry: dict = dict(evaluations=evals, ratio=evals / SamplerOptions().model_evaluations(),
                           seconds_per_clip=seconds[name] / a.clips)
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
        print(f"{name:42s} {evals:5d} {entry['ratio']:10.2f} " + " ".join(f"{c:>24s}" for c in cells)
              + f" {shown:>16s} {entry['seconds_per_clip']:7.1f}" + ("" if equal else "  (worse)"))
    Path(a.json).write_text(json.dumps(dict(args=vars(a), configs=report, per_clip=scores), indent=1))
    print(f"wrote {a.json}")


if __name__ == "__main__":
    main()
