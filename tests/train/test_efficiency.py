"""Memory savers and averaging: bf16/fp16 autocast with fp32 master weights, frozen weights in half
precision, gradient checkpointing (same numbers), EMA (the documented recursion), and the CLI."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from unianimate_core.train.config import parse_config
from unianimate_core.train.modes import build_train_model, finalize
from unianimate_core.train.trainer import train
from tests.tiny_unet import tiny_checkpoint_path, tiny_zero_y
from tests.train.conftest import base_config, read_log

ROOT = Path(__file__).resolve().parents[2]


def _losses(out):
    return [e["loss"] for e in read_log(out) if "loss" in e]


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_half_precision_autocast_keeps_fp32_master_weights(precision, videos, shared_cache, tmp_path):
    cfg = parse_config(base_config(videos, tmp_path / precision, shared_cache, mode={"kind": "temporal"},
                                   train={"steps": 3, "threads": 1, "precision": precision}))
    built = finalize(build_train_model(cfg, tiny_zero_y()), cfg, torch.device("cpu"))
    half = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    assert {p.dtype for _, p in built.trainable()} == {torch.float32}
    frozen = {p.dtype for p in built.loss.parameters() if not p.requires_grad}
    assert frozen == {half}
    result = train(cfg, log=lambda m: None)
    assert len(result.losses) == 3 and all(0 < v < 10 for v in result.losses)
    sd = load_file(str(tmp_path / precision / "checkpoints" / "step_0000003" / "trainable.safetensors"))
    assert {v.dtype for v in sd.values()} == {torch.float32}


def test_gradient_checkpointing_changes_memory_not_numbers(videos, shared_cache, tmp_path):
    runs = {}
    for ckpt in (False, True):
        out = tmp_path / f"ckpt_{ckpt}"
        train(parse_config(base_config(videos, out, shared_cache, train={"steps": 3, "threads": 1,
                                                                          "gradient_checkpointing": ckpt})),
              log=lambda m: None)
        runs[ckpt] = _losses(out)
    # recomputation repeats the same float operations in the same order: equal up to rounding noise
    assert all(abs(a - b) <= 1e-6 * abs(a) for a, b in zip(runs[False], runs[True])), runs


def test_ema_follows_the_documented_recursion(videos, shared_cache, tmp_path):
    decay = 0.5
    out = tmp_path / "ema"
    train(parse_config(base_config(videos, out, shared_cache, train={"steps": 2, "threads": 1},
                                   checkpoint={"every": 1, "keep": 5, "save_dtype": "fp32"},
                                   ema={"enabled": True, "decay": decay})),
          log=lambda m: None)
    w0 = {f"unet.{k}": v.float() for k, v in load_file(str(tiny_checkpoint_path())).items()}
    w1 = load_file(str(out / "checkpoints" / "step_0000001" / "trainable.safetensors"))
    w2 = load_file(str(out / "checkpoints" / "step_0000002" / "trainable.safetensors"))
    ema = load_file(str(out / "checkpoints" / "step_0000002" / "ema.safetensors"))
    for k in ("unet.out.2.weight", "unet.input_blocks.1.0.in_layers.2.weight"):
        s1 = decay * w0[k] + (1 - decay) * w1[k]
        s2 = decay * s1 + (1 - decay) * w2[k]
        assert torch.allclose(ema[k], s2, atol=1e-6)
    # the exported EMA file holds the EMA weights (fp32 export: exactly), not the live ones it lags behind
    exported = load_file(str(out / "model_ema.safetensors"))
    live = load_file(str(out / "model.safetensors"))
    for k in ("out.2.weight", "input_blocks.1.0.in_layers.2.weight"):
        assert torch.equal(exported[k], ema[f"unet.{k}"])
        assert torch.equal(live[k], w2[f"unet.{k}"])
        assert not torch.equal(exported[k], live[k])


def _cli(*args, cwd=ROOT):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "unianimate_core", "train", *args], cwd=cwd, env=env, text=True,
                          capture_output=True, timeout=300)


def test_cli_keys_check_and_a_bad_key_is_one_line(tmp_path):
    keys = _cli("--keys")
    assert keys.returncode == 0 and "| `optim.lr` |" in keys.stdout
    cfg = tmp_path / "c.json"
    cfg.write_text(json.dumps({"output_dir": "o", "data": {"videos": "v"}, "train": {"stpes": 3}}))
    bad = _cli(str(cfg))
    assert bad.returncode == 2
    assert bad.stderr.strip().splitlines() == [
        "error: unknown config key `train.stpes`. Did you mean `train.steps`? Valid keys of `train`: batch_size, "
        "device, frozen_dtype, grad_accum, gradient_checkpointing, precision, steps, threads."]
    cfg.write_text(json.dumps({"output_dir": "o", "data": {"videos": "v"}}))
    check = _cli(str(cfg), "--check", "--set", "optim.lr=3e-5")
    assert check.returncode == 0 and json.loads(check.stdout)["optim"]["lr"] == 3e-5


def test_dataloader_workers_give_the_same_samples(videos, shared_cache, tmp_path):
    """Samples are a function of (seed, index): loading them in worker processes changes nothing."""
    losses = {}
    for workers in (0, 2):
        out = tmp_path / f"w{workers}"
        train(parse_config(base_config(videos, out, shared_cache, train={"steps": 2, "threads": 1},
                                       data={"videos": str(videos), "width": 64, "height": 64, "frames": 4,
                                             "frame_stride": 1, "validation_videos": 1, "num_workers": workers})),
              log=lambda m: None)
        losses[workers] = _losses(out)
    assert losses[0] == losses[2]
