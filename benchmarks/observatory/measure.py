"""The observatory's measurements (docs/evaluation.md): one report per experiment, on the world's test split.

    python benchmarks/observatory/measure.py --model .cache/observatory/run/model.safetensors \
        [--experiments baselines,steps,guidance,prior,mode,long,anchor] [--clips 16] [--out .cache/observatory/measure]
    python benchmarks/observatory/measure.py --model A.safetensors --compare B.safetensors --experiments compare

Experiments (each writes ``<out>/<name>/report.md|json`` + plots and prints its table):

* ``baselines`` - trained vs untrained (the trainer's step 0) vs copy-the-reference vs paste-the-pose;
* ``steps``     - DDIM 50 / 30 / 20 / 10 steps (guidance 2.5);
* ``guidance``  - guidance 1 / 2.5 / 4 (30 steps);
* ``prior``     - the reference noise prior on / off;
* ``mode``      - condition mode standard / first_frame / both;
* ``long``      - ``--long-frames`` frames: sliding windows vs first-frame continuation (drift, seams);
* ``anchor``    - continuation with the colour anchor 0 / 0.5 / 1;
* ``compare``   - ``--model`` vs ``--compare`` (e.g. temporal attention vs temporal Mamba, same budget):
  quality, seconds per clip, peak memory of the process;
* ``still``     - ``--still PNG``: the first ``--still-clips`` test clips, poses / generated / ground truth;
* ``denoise``   - one-step x0 prediction PSNR at t = 200 / 500 / 800 / 950 (trained, untrained, ``--compare``):
  what the model has learned per noise level, without the sampler.

Numbers depend only on the model file, the world and the seeds; times depend on the machine's load.
"""
from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from unianimate_core.evaluation import evaluate_toy_clip, merge, seam_frames, toy_baselines  # noqa: E402
from unianimate_core.evaluation.cli import load_toy_model, paired_margin, untrained_like  # noqa: E402
from unianimate_core.evaluation.report import Report  # noqa: E402
from unianimate_core.toyworld import ToyImageEncoder, World, WorldConfig  # noqa: E402
from unianimate_core.toyworld.generate import GenerateOptions, generate  # noqa: E402

EXPERIMENTS = ("baselines", "steps", "guidance", "prior", "mode", "long", "anchor", "compare", "still", "denoise")


def denoise_table(models: dict, clips: list, timesteps=(200, 500, 800, 950), seed: int = 0) -> list[str]:
    """One-step x0 prediction: noise each clip's exact latent to t, predict v with all conditions
    (standard mode), decode x0 = sqrt(ab) x_t - sqrt(1 - ab) v and take its PSNR against the ground truth.
    Shows what the model has learned at each noise level, independent of the sampler; copy-the-reference
    is the line to beat at high t (where x0 must come from the conditions)."""
    import math

    import torch

    from unianimate_core.diffusion import NoiseSchedule
    from unianimate_core.toyworld import decode_latents, encode_frames, load_toy_codec
    from unianimate_core.toyworld.conditioning import prepare_toy_clip

    codec, encoder = load_toy_codec(), ToyImageEncoder()
    ab = NoiseSchedule.unianimate().alphas_cumprod
    gen = torch.Generator().manual_seed(seed)
    sums: dict = {}
    for clip in clips:
        x0 = encode_frames(codec, clip.frames)
        truth = decode_latents(codec, x0)
        kw = prepare_toy_clip(clip, codec, encoder, "standard").cond.model_kwargs(len(clip))
        copy = torch.from_numpy(clip.reference).permute(2, 0, 1).float()[None] / 255
        sums.setdefault("copy_reference", []).append(float(((copy - truth) ** 2).mean()))
        for t in timesteps:
            eps = torch.randn(x0.shape, generator=gen)
            a = float(ab[t])
            xt = math.sqrt(a) * x0 + math.sqrt(1 - a) * eps
            for name, model in models.items():
                with torch.no_grad():
                    v = model(xt, torch.tensor([t]), **kw)
                x0p = math.sqrt(a) * xt - math.sqrt(1 - a) * v
                sums.setdefault((name, t), []).append(float(((decode_latents(codec, x0p) - truth) ** 2).mean()))

    def psnr(v: list) -> str:
        return f"{10 * math.log10(1 / (sum(v) / len(v))):.2f}"

    lines = ["| model | " + " | ".join(f"t = {t}" for t in timesteps) + " |", "|---|" + "---|" * len(timesteps)]
    for name in models:
        lines.append(f"| {name} | " + " | ".join(psnr(sums[(name, t)]) for t in timesteps) + " |")
    lines.append(f"| copy the reference (any t) | " + " | ".join(psnr(sums["copy_reference"]) for _ in timesteps) + " |")
    return lines


def still(model, clips: list, options: GenerateOptions, encoder, path: Path, scale: int = 2) -> Path:
    """A PNG: per clip three rows - driving poses, generated frames, ground truth - after the reference
    (first column: the reference image over its pose); pixels enlarged ``scale`` x (nearest)."""
    import numpy as np
    from PIL import Image

    rows = []
    for clip in clips:
        gen = generate(model, clip, options, encoder=encoder)
        blank = np.zeros_like(clip.reference)
        rows += [np.concatenate([clip.reference_pose_image(), *clip.pose_images()], 1),
                 np.concatenate([clip.reference, *gen], 1),
                 np.concatenate([blank, *clip.frames], 1),
                 np.full((4, clip.width * (len(clip) + 1), 3), 255, np.uint8)]
    img = np.concatenate(rows[:-1], 0).repeat(scale, 0).repeat(scale, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, optimize=True)
    return path


def _csv(cast, what: str, example: str):
    """An argparse type for a comma-separated list, so a malformed value is a usage error, not a traceback."""
    def parse(text: str) -> list:
        try:
            values = [cast(v) for v in text.split(",") if v.strip()]
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected comma-separated {what}, e.g. {example}; got {text!r}") from None
        if not values:
            raise argparse.ArgumentTypeError(f"expected at least one value, e.g. {example}; got {text!r}")
        return values
    return parse


def _clip_index(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _score(report: Report, name: str, runs: list, params: dict) -> None:
    report.add(name, merge(runs), params)


def run_settings(title: str, models: dict, settings: list[tuple[str, str, GenerateOptions, dict]], clips: list,
                 encoder, baselines: bool = False, seams: dict | None = None) -> tuple[Report, dict]:
    """settings: (run name, model key, options, params). Returns the report and the per-clip metrics."""
    per_run: dict[str, list] = {}
    seconds: dict[str, float] = {}
    for k, clip in enumerate(clips):
        for name, key, opts, _ in settings:
            t0 = time.perf_counter()
            frames = generate(models[key], clip, opts, encoder=encoder)
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - t0
            per_run.setdefault(name, []).append(evaluate_toy_clip(frames, clip, encoder=encoder, warp=False,
                                                                  seams=(seams or {}).get(name)))
        if baselines:
            per_run.setdefault("ground_truth", []).append(evaluate_toy_clip(clip.frames, clip, encoder=encoder,
                                                                            warp=False))
            for name, frames in toy_baselines(clip).items():
                per_run.setdefault(name, []).append(evaluate_toy_clip(frames, clip, encoder=encoder, warp=False))
        print(f"  {title}: clip {k + 1}/{len(clips)}", flush=True)
    report = Report(title)
    for name, _, _, params in settings:
        _score(report, name, per_run[name], {**params, "s_per_clip": round(seconds[name] / len(clips), 2)})
    if baselines:
        for name in ("ground_truth", "copy_reference", "pose_images"):
            _score(report, name, per_run[name], {})
    return report, per_run


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True)
    p.add_argument("--compare", help="a second model (experiment 'compare')")
    p.add_argument("--experiments", default="baselines,steps,guidance,prior,mode")
    p.add_argument("--clips", type=int, default=16)
    p.add_argument("--width", type=int, default=64)
    p.add_argument("--height", type=int, default=128)
    p.add_argument("--frames", type=int, default=8)
    p.add_argument("--long-frames", type=int, default=64)
    p.add_argument("--long-clips", type=int, default=4)
    p.add_argument("--window", type=int, default=8, help="long videos: window / segment length (the training length)")
    p.add_argument("--overlap", type=int, default=4)
    p.add_argument("--anchors", type=_csv(float, "numbers", "0,0.5,1"), default=[0.0, 0.5, 1.0],
                   help="experiment 'anchor': colour-anchor strengths to compare")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--guidance", type=float, default=2.5)
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--out", default=".cache/observatory/measure")
    p.add_argument("--still", default=None, help="experiment 'still': the PNG to write (default <out>/still.png)")
    p.add_argument("--still-clips", type=_csv(_clip_index, "test clip indices (whole numbers >= 0)", "0,1"), default=[0, 1],
                   help="experiment 'still': test clip indices")
    args = p.parse_args()
    import torch

    torch.set_num_threads(1)
    wanted = [e.strip() for e in args.experiments.split(",") if e.strip()]
    anchors = args.anchors
    unknown = [e for e in wanted if e not in EXPERIMENTS]
    if unknown:
        p.error(f"unknown experiments {unknown}; choose from {', '.join(EXPERIMENTS)}")
    encoder = ToyImageEncoder()
    models = {"trained": load_toy_model(args.model)}
    world = World(WorldConfig(width=args.width, height=args.height, frames=args.frames))
    clips = [world.clip("test", i) for i in range(args.clips)]
    base = GenerateOptions(steps=args.steps, guidance=args.guidance, seed=args.seed)

    def opts(**kw) -> GenerateOptions:
        return GenerateOptions(**{**base.__dict__, **kw})

    out = Path(args.out)
    for exp in wanted:
        t0 = time.perf_counter()
        if exp == "denoise":
            models.setdefault("untrained", untrained_like(models["trained"], 0))
            if args.compare:
                models.setdefault("compare", load_toy_model(args.compare))
            lines = denoise_table(models, clips)
            (out / "denoise.md").parent.mkdir(parents=True, exist_ok=True)
            (out / "denoise.md").write_text("\n".join(lines) + "\n")
            print("one-step x0 prediction, PSNR (dB) of the decoded prediction vs the ground truth, "
                  f"{len(clips)} test clips:\n" + "\n".join(lines), flush=True)
            continue
        if exp == "still":
            picks = [world.clip("test", i) for i in args.still_clips]
            print(f"wrote {still(models['trained'], picks, base, encoder, Path(args.still or out / 'still.png'))}")
            continue
        seams = None
        use_clips = clips
        if exp == "baselines":
            models["untrained"] = untrained_like(models["trained"], 0)
            settings = [("trained", "trained", base, {}), ("untrained", "untrained", base, {})]
        elif exp == "steps":
            settings = [(f"ddim{s}", "trained", opts(steps=s), {"steps": s}) for s in (50, 30, 20, 10)]
        elif exp == "guidance":
            settings = [(f"guidance{g}", "trained", opts(guidance=g), {"guidance": g}) for g in (1.0, 2.5, 4.0)]
        elif exp == "prior":
            settings = [("prior_on", "trained", base, {"prior": 1}), ("prior_off", "trained", opts(noise_prior=False),
                                                                     {"prior": 0})]
        elif exp == "mode":
            settings = [(m, "trained", opts(mode=m), {}) for m in ("standard", "first_frame", "both")]
        elif exp in ("long", "anchor"):
            long_world = World(WorldConfig(width=args.width, height=args.height, frames=args.long_frames))
            use_clips = [long_world.clip("test", i) for i in range(args.long_clips)]
            n = args.long_frames
            win = dict(context_size=args.window, context_overlap=args.overlap, segment_length=args.window)
            if exp == "long":
                settings = [("windows", "trained", opts(strategy="windows", **win), {}),
                            ("continuation", "trained", opts(strategy="continuation", **win), {})]
                seams = {"windows": seam_frames("windows", n, context_size=args.window,
                                                context_overlap=args.overlap),
                         "continuation": seam_frames("continuation", n, segment_length=args.window)}
            else:
                settings = [(f"anchor{a}", "trained", opts(strategy="continuation", colour_anchor=a, **win),
                             {"colour_anchor": a}) for a in anchors]
                seams = {name: seam_frames("continuation", n, segment_length=args.window) for name, *_ in settings}
        else:  # compare
            if not args.compare:
                p.error("experiment 'compare' needs --compare MODEL")
            models["compare"] = load_toy_model(args.compare)
            settings = [("model", "trained", base, {}), ("compare", "compare", base, {})]
        title = f"{exp} ({len(use_clips)} test clips, {args.width}x{args.height}, {len(use_clips[0])} frames)"
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        report, per_run = run_settings(title, models, settings, use_clips, encoder, baselines=exp == "baselines",
                                       seams=seams)
        report.notes.append(f"{args.steps} DDIM steps, guidance {args.guidance}, seed {args.seed} unless the row says "
                            f"otherwise; model {args.model}; {time.perf_counter() - t0:.0f} s for the experiment")
        if exp == "baselines":
            for key in ("psnr_clip", "pck_0.2", "pck_0.5", "kp_error", "limb_overlap"):
                mean, se, wins, k = paired_margin(per_run["trained"], per_run["copy_reference"], key)
                report.notes.append(f"trained - copy_reference, {key}: {mean:+.4g} (standard error {se:.2g}; "
                                    f"trained higher on {wins} of {k} clips)")
        if exp == "compare":
            report.notes.append(f"peak resident memory of this process {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB "
                                f"(before the experiment {rss0 / 1024:.0f} MiB)")
        report.write(out / exp)
        print(report.markdown(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
