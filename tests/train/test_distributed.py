"""Data parallelism through torchrun + DistributedDataParallel: two gloo processes with batch 1 make
the same updates as one process with the same global batch of 2 (batch 1, 2 accumulation steps)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from tests.tiny_unet import tiny_checkpoint_path
from tests.train.conftest import read_log, world_config, write_config

ROOT = Path(__file__).resolve().parents[2]
LR = 1e-4
STEPS = 3
#: The single-process reference computes every sample's gradient with the same batch-1 kernels and
#: accumulates g0/2 + g1/2; DDP all-reduces the same per-sample gradients and divides by 2. Halving is
#: exact in float32 and a two-term sum does not depend on its order, so the gradients - and therefore
#: the AdamW updates - are bit-identical (measured: identical). The tolerances only absorb a future
#: change of summation inside DDP; a run that did not average the gradients, or gave both processes the
#: same samples, is off by ~lr = 1e-4 in the weights and by percents in the losses of steps 2 and 3.
WEIGHT_ATOL = 1e-9
LOSS_RTOL = 1e-7
# (A single process with batch 2 is the same global batch too, but batch-2 kernels round differently
# and AdamW's first step, lr * g / |g|, turns the sign of tiny gradients into +-lr: it drifts by ~1e-3
# within three steps. That is float arithmetic, not data parallelism, so it is not the reference here.)


def _run(cmd: list[str], cfg: Path) -> str:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd + ["-m", "unianimate_core", "train", str(cfg)], cwd=ROOT, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=600)
    assert proc.returncode == 0, proc.stdout
    return proc.stdout


@pytest.mark.slow
def test_two_gloo_processes_equal_one_process_with_the_same_global_batch(world_videos, shared_cache, tmp_path):
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent)) or shutil.which("torchrun")
    if torchrun is None:
        pytest.skip("torchrun is not installed next to this Python")
    common = dict(optim={"lr": LR}, checkpoint={"every": STEPS})
    one = write_config(world_config(world_videos, tmp_path / "one", shared_cache,
                                   train={"steps": STEPS, "batch_size": 1, "grad_accum": 2, "threads": 1},
                                   **common), tmp_path / "one.json")
    two = write_config(world_config(world_videos, tmp_path / "two", shared_cache, train={"steps": STEPS, "batch_size": 1, "threads": 1},
                                   **common), tmp_path / "two.json")
    (tmp_path / "one.out").write_text(_run([sys.executable], one))
    out = _run([torchrun, "--standalone", "--nproc_per_node", "2"], two)
    assert "2 process(es), global batch 2" in out
    assert "1 process(es), global batch 2" in (tmp_path / "one.out").read_text()

    la, lb = [e["loss"] for e in read_log(tmp_path / "one")], [e["loss"] for e in read_log(tmp_path / "two")]
    assert len(la) == len(lb) == STEPS
    assert all(abs(a - b) <= LOSS_RTOL * abs(a) for a, b in zip(la, lb)), (la, lb)
    ckpt = f"checkpoints/step_{STEPS:07d}/trainable.safetensors"
    wa, wb = load_file(str(tmp_path / "one" / ckpt)), load_file(str(tmp_path / "two" / ckpt))
    init = load_file(str(tiny_checkpoint_path()))
    assert set(wa) == set(wb)
    moved = max(float((wa[k] - init[k.removeprefix("unet.")].float()).abs().max()) for k in wa)
    assert moved > 1e-5  # the weights did move: the comparison is not trivially true
    diff = max(float((wa[k] - wb[k]).abs().max()) for k in wa)
    assert diff <= WEIGHT_ATOL, diff
