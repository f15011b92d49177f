"""The observatory end to end, at CI size: export the world -> train with the project's trainer (the
observatory recipe, benchmarks/observatory/observatory.json, shortened) -> generate test clips through
the pipeline's sampler -> score them with ``python -m unianimate_core eval --toy --model``.

What a minute of training can show reliably (docs/evaluation.md, "In CI"): not the full model's margin
over copy-the-reference (that needs the full run: ``make eval``), and not even a better picture than the
untrained model (measured after 40 steps: PSNR 12.06 dB trained vs 12.18 dB untrained - the sampled clips
are still noise). What it does show reliably is that the recipe learns: the held-out diffusion loss,
computed on fixed samples (same clips, noise and timesteps before and after), falls - measured
1.014 -> 0.837 (-17 %) at seed 0; the test asks for -8 %, half that drop. The rest checks the plumbing
end to end: every run of the table is there with finite fidelity and pose numbers, and the margin notes.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "benchmarks" / "observatory" / "observatory.json"
WIDTH, HEIGHT, FRAMES = 64, 128, 8
TRAIN_CLIPS, STEPS = 160, 40
#: Required relative drop of the held-out loss after STEPS steps (measured 17 %; see the module docstring).
MIN_VAL_DROP = 0.08


def _run(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-m", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, f"{' '.join(args[:3])} failed:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res.stdout


@pytest.mark.slow
def test_observatory_trains_and_evaluates_end_to_end(tmp_path):
    world = tmp_path / "world"
    for split, clips in (("train", TRAIN_CLIPS), ("val", 2)):
        _run(["unianimate_core.toyworld", "export", "--out", str(world / split), "--split", split, "--clips",
              str(clips), "--width", str(WIDTH), "--height", str(HEIGHT), "--frames", str(FRAMES), "--format", "png"],
             tmp_path)
    run = tmp_path / "run"
    _run(["unianimate_core", "train", str(CONFIG), "--set", f"output_dir={run}", "--set", f"data.videos={world / 'train'}",
          "--set", f"data.validation_dir={world / 'val'}", "--set", f"data.cache_dir={tmp_path / 'cache'}",
          "--set", f"train.steps={STEPS}", "--set", "train.batch_size=2", "--set", "train.threads=1",
          "--set", "optim.warmup_steps=5", "--set", "ema.enabled=false",
          "--set", "validation.render=false", "--set", "checkpoint.every=1000", "--set", "logging.progress=false"],
         tmp_path)
    model = run / "model.safetensors"
    assert model.is_file()
    log = [json.loads(line) for line in (run / "train_log.jsonl").read_text().splitlines()]
    val = [r["val_loss"] for r in log if "val_loss" in r]
    assert len(val) == 2 and val[1] <= (1 - MIN_VAL_DROP) * val[0], f"held-out loss did not fall enough: {val}"

    out = tmp_path / "eval"
    text = _run(["unianimate_core", "eval", "--toy", "--model", str(model), "--untrained", "--clips", "4",
                 "--width", str(WIDTH), "--height", str(HEIGHT), "--frames", str(FRAMES), "--steps", "10",
                 "--no-warp", "--no-plots", "--out", str(out)], tmp_path)
    assert "| trained |" in text and "| copy_reference |" in text  # the table is printed
    report = json.loads((out / "report.json").read_text())
    runs = {r["name"]: r["summary"] for r in report["runs"]}
    assert set(runs) == {"ground_truth", "trained", "untrained", "copy_reference", "pose_images"}
    for name in ("trained", "untrained"):
        for key in ("psnr_clip", "ssim", "pck_0.2", "limb_overlap", "tde"):
            assert runs[name][key] is not None and runs[name][key] == runs[name][key], (name, key)
    # the baselines are the world's (independent of the model): copying the reference is far from the truth
    assert runs["ground_truth"]["psnr_clip"] == 100.0 and runs["copy_reference"]["psnr_clip"] < 30
    assert any("trained - copy_reference, psnr_clip" in n for n in report["notes"])
    # each run keeps its clips' own summaries, so the paired margin of the notes can be recomputed from the JSON
    per_clip = {r["name"]: r["info"]["per_clip"] for r in report["runs"]}
    assert all(len(c) == 4 for c in per_clip.values())
    diffs = [a["psnr_clip"] - b["psnr_clip"] for a, b in zip(per_clip["trained"], per_clip["copy_reference"])]
    note = next(n for n in report["notes"] if n.startswith("trained - copy_reference, psnr_clip"))
    assert note.split(": ")[1].startswith(f"{sum(diffs) / len(diffs):+.4g} dB"), (note, diffs)
    # --start: a later clip alone scores as it did inside the longer run (each clip has its own seeded sampler);
    # same machine, threads and shapes, so only a different computation could move it beyond rounding
    part = tmp_path / "eval_part"
    _run(["unianimate_core", "eval", "--toy", "--model", str(model), "--start", "2", "--clips", "1",
          "--width", str(WIDTH), "--height", str(HEIGHT), "--frames", str(FRAMES), "--steps", "10",
          "--no-warp", "--no-plots", "--out", str(part)], tmp_path)
    alone = {r["name"]: r["info"]["per_clip"] for r in json.loads((part / "report.json").read_text())["runs"]}
    for name in ("trained", "copy_reference"):
        for key in ("psnr_clip", "pck_0.2"):
            a, b = alone[name][0][key], per_clip[name][2][key]  # None: not defined on this clip (no person)
            assert (a is None and b is None) or a == pytest.approx(b, rel=1e-6, abs=1e-9), (name, key, a, b)


def test_second_stage_recipe_continues_the_first():
    """observatory_stage2.json must start from the first recipe's output and train on the same world with
    the same encoders and objective; only the optimiser, seed, steps and output folder may differ."""
    from unianimate_core.train.config import load_config

    first = load_config(CONFIG)
    second = load_config(CONFIG.with_name("observatory_stage2.json"))
    assert Path(second.model.init) == Path(first.output_dir) / "model.safetensors"
    assert Path(second.output_dir) != Path(first.output_dir)
    assert second.data == first.data and second.encoders == first.encoders
    assert second.objective == first.objective and second.mode == first.mode
    assert second.train.batch_size == first.train.batch_size and second.seed != first.seed


def test_third_stage_recipe_continues_the_second_on_a_larger_world():
    """observatory_stage3.json must start from the second stage's output and differ from it only in the training
    videos (another folder of the same world and geometry), the seed and the output folder."""
    import dataclasses

    from unianimate_core.train.config import load_config

    second = load_config(CONFIG.with_name("observatory_stage2.json"))
    third = load_config(CONFIG.with_name("observatory_stage3.json"))
    assert Path(third.model.init) == Path(second.output_dir) / "model.safetensors"
    assert Path(third.output_dir) not in (Path(second.output_dir), Path(load_config(CONFIG).output_dir))
    assert Path(third.data.videos) != Path(second.data.videos)
    assert Path(third.data.videos).parent == Path(second.data.videos).parent  # the same exported world
    assert dataclasses.replace(third.data, videos=second.data.videos) == second.data
    assert third.encoders == second.encoders and third.objective == second.objective and third.mode == second.mode
    assert third.optim == second.optim and third.train == second.train and third.ema == second.ema
    assert third.seed not in (second.seed, load_config(CONFIG).seed)


def test_fourth_stage_recipe_continues_the_third_on_its_world():
    """observatory_stage4.json must start from the third stage's output, train on the third stage's world
    with its encoders, objective, optimiser, batch and EMA, and differ only in the steps, seed and output."""
    import dataclasses

    from unianimate_core.train.config import load_config

    stages = [load_config(CONFIG)] + [load_config(CONFIG.with_name(f"observatory_stage{i}.json")) for i in (2, 3)]
    third, fourth = stages[-1], load_config(CONFIG.with_name("observatory_stage4.json"))
    assert Path(fourth.model.init) == Path(third.output_dir) / "model.safetensors"
    assert Path(fourth.output_dir) not in {Path(s.output_dir) for s in stages}
    assert fourth.data == third.data and fourth.encoders == third.encoders
    assert fourth.objective == third.objective and fourth.mode == third.mode
    assert fourth.optim == third.optim and fourth.ema == third.ema
    assert dataclasses.replace(fourth.train, steps=third.train.steps) == third.train
    assert fourth.seed not in {s.seed for s in stages}
