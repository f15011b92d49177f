"""Nothing lost: SIGKILL mid-run + resume continues the same loss curve, SIGTERM checkpoints and stops,
and an unwritable or full output folder fails before training starts."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unianimate_core.train.config import parse_config
from unianimate_core.train.errors import TrainError
from unianimate_core.train.trainer import train
from tests.train.conftest import base_config, read_log, world_config, write_config

ROOT = Path(__file__).resolve().parents[2]
#: Resumed losses must equal the uninterrupted ones to 1e-6 relative (~8 float32 ulps). Both runs use the
#: same code path on the same machine with one thread, the data stream is a pure function of (seed, sample
#: index), and every RNG state is restored, so nothing but float rounding order could differ — and it does
#: not: measured differences are exactly 0.
RESUME_RTOL = 1e-6


def _spawn(config: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "unianimate_core", "train", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _wait_for_step(proc: subprocess.Popen, log: Path, step: int, timeout: float = 240) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.poll() is not None:
            raise AssertionError(f"training ended early ({proc.returncode}):\n{proc.stdout.read()}")
        if log.is_file() and any(json.loads(l).get("step", 0) >= step for l in log.read_text().splitlines() if l.strip().endswith("}")):
            return
        time.sleep(0.05)
    proc.kill()
    raise AssertionError("training did not reach the step in time")


def _losses(out: Path) -> dict[int, float]:
    return {e["step"]: e["loss"] for e in read_log(out) if "loss" in e}


@pytest.mark.slow
def test_sigkill_mid_run_and_resume_reproduces_the_uninterrupted_curve(world_videos, shared_cache, tmp_path):
    sections = dict(train={"steps": 10, "threads": 1}, checkpoint={"every": 4})
    ref_cfg = write_config(world_config(world_videos, tmp_path / "ref", shared_cache, **sections), tmp_path / "ref.json")
    cut_cfg = write_config(world_config(world_videos, tmp_path / "cut", shared_cache, **sections), tmp_path / "cut.json")
    ref = _spawn(ref_cfg)
    assert ref.wait(timeout=600) == 0, ref.stdout.read()

    proc = _spawn(cut_cfg)
    _wait_for_step(proc, tmp_path / "cut" / "train_log.jsonl", 6)  # checkpoint at 4; killed during step 7
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)
    assert sorted(p.name for p in (tmp_path / "cut" / "checkpoints").iterdir()) == ["step_0000004"]
    resumed = _spawn(cut_cfg)
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0, output
    assert "resumed from" in output and "step 4" in output

    a, b = _losses(tmp_path / "ref"), _losses(tmp_path / "cut")
    assert sorted(a) == sorted(b) == list(range(1, 11))
    for step in a:
        assert abs(a[step] - b[step]) <= RESUME_RTOL * abs(a[step]), (step, a[step], b[step])
    wa, wb = load_file(str(tmp_path / "ref" / "model.safetensors")), load_file(str(tmp_path / "cut" / "model.safetensors"))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


@pytest.mark.slow
def test_sigterm_saves_a_checkpoint_and_exits_143(videos, shared_cache, tmp_path):
    cfg = write_config(base_config(videos, tmp_path / "run", shared_cache, train={"steps": 40, "threads": 1},
                                   checkpoint={"every": 100}), tmp_path / "c.json")
    proc = _spawn(cfg)
    _wait_for_step(proc, tmp_path / "run" / "train_log.jsonl", 2)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "checkpoint saved" in output
    last = max(_losses(tmp_path / "run"))
    saved = [p.name for p in (tmp_path / "run" / "checkpoints").iterdir()]
    assert saved == [f"step_{last:07d}"]
    assert not (tmp_path / "run" / "model.safetensors").exists()  # no export of an unfinished run


def test_unwritable_output_dir_fails_before_anything(videos, tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cfg = parse_config(base_config(videos, blocker / "out"))
    with pytest.raises(TrainError, match="cannot write to the output folder"):
        train(cfg, log=lambda m: None)


def test_full_disk_fails_before_the_first_step(videos, shared_cache, tmp_path, monkeypatch):
    import shutil

    import unianimate_core.train.runtime as runtime

    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(runtime.shutil, "disk_usage", lambda p: usage._replace(free=10 << 20))
    cfg = parse_config(base_config(videos, tmp_path / "out", shared_cache))
    with pytest.raises(TrainError, match=r"not enough free disk space .* GB needed"):
        train(cfg, log=lambda m: None)
    assert not (tmp_path / "out" / "train_log.jsonl").exists()
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_a_checkpoint_of_another_run_is_not_resumed(videos, shared_cache, tmp_path):
    out = tmp_path / "out"
    train(parse_config(base_config(videos, out, shared_cache, train={"steps": 3, "threads": 1})), log=lambda m: None)
    changed = parse_config(base_config(videos, out, shared_cache, mode={"kind": "temporal"}))
    with pytest.raises(TrainError, match=r"checkpoint of a different run .*mode.kind"):
        train(changed, log=lambda m: None)
    never = parse_config(base_config(videos, out, shared_cache, checkpoint={"resume": "never"}))
    with pytest.raises(TrainError, match="already holds a checkpoint"):
        train(never, log=lambda m: None)
    longer = train(parse_config(base_config(videos, out, shared_cache, train={"steps": 5, "threads": 1})),
                   log=lambda m: None)
    assert longer.step == 5 and sorted(_losses(out)) == [1, 2, 3, 4, 5]


def test_a_size_the_model_cannot_take_fails_before_data_preparation(videos, tmp_path):
    cfg = parse_config(base_config(videos, tmp_path / "out", data={"videos": str(videos), "width": 96, "height": 64,
                                                                    "frames": 4}))
    with pytest.raises(TrainError, match=r"96x64 must be multiples of 64.*e\.g\. 128x64"):
        train(cfg, log=lambda m: None)
    assert not (tmp_path / "out" / "cache" / "videos").exists()
