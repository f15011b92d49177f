"""Shared fixtures of the trainer tests: small generated videos, a prepared cache, config builders.

Everything runs on the CPU with the tiny UNet (initialised from the golden-fixture weights, so every
layer gets gradients from the first step) and the tiny random VAE/CLIP stand-ins at 64 x 64 pixels,
4 frames per clip.
"""
from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.tiny_unet import tiny_checkpoint_path
from tests.train.synth import make_video


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> Path:
    """Four good clips (PNG folders + one mp4), each with an exact POSE_KEYPOINT sidecar."""
    folder = tmp_path_factory.mktemp("videos")
    for i in range(3):
        make_video(folder, f"clip{i}", 10, 96, 80, seed=i, kind="frames")
    make_video(folder, "dance", 10, 96, 80, seed=9, kind="mp4")
    return folder


@pytest.fixture(scope="session")
def world_videos(tmp_path_factory) -> tuple[Path, Path]:
    """Synthetic-world clips exported by the world's own exporter: 8 training clips and 2 clips of the
    validation split (other characters and motions), 64 x 64, 8 frames, with POSE_KEYPOINT and reference sidecars."""
    import subprocess
    import sys

    root = tmp_path_factory.mktemp("world")
    for split, count in (("train", 8), ("val", 2)):
        subprocess.run([sys.executable, "-m", "unianimate_core.toyworld", "export", "--out", str(root / split),
                        "--split", split, "--clips", str(count), "--width", "64", "--height", "64", "--frames", "8"],
                       check=True, capture_output=True, cwd=Path(__file__).resolve().parents[2])
    return root / "train", root / "val"


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory) -> Path:
    """One data cache for every test of the session (content-addressed, so sharing is safe)."""
    return tmp_path_factory.mktemp("cache")


def base_config(videos: Path, out: Path, cache: Path | None = None, **sections: Any) -> dict[str, Any]:
    cfg: dict[str, Any] = {
        "output_dir": str(out),
        "seed": 0,
        "data": {"videos": str(videos), "width": 64, "height": 64, "frames": 4, "frame_stride": 1,
                 "validation_videos": 1},
        "model": {"init": str(tiny_checkpoint_path())},
        "encoders": {"kind": "tiny"},
        "mode": {"kind": "full"},
        "optim": {"lr": 1e-3},
        "train": {"steps": 6, "threads": 1},
        "checkpoint": {"every": 3},
        "validation": {"every": 0, "at_end": False, "render": False, "samples": 4},
        "logging": {"every": 1, "plot_every": 1000, "progress": False},
    }
    if cache is not None:
        cfg["data"]["cache_dir"] = str(cache)
    for key, value in sections.items():
        if isinstance(value, dict) and isinstance(cfg.get(key), dict):
            cfg[key] = {**cfg[key], **copy.deepcopy(value)}
        else:
            cfg[key] = copy.deepcopy(value)
    return cfg


def world_config(world_videos: tuple[Path, Path], out: Path, cache: Path | None = None, **sections: Any) -> dict[str, Any]:
    """base_config on the synthetic world's clips with its codec and CLIP stand-in."""
    train_dir, val_dir = world_videos
    data = {"videos": str(train_dir), "validation_dir": str(val_dir), "width": 64, "height": 64, "frames": 4,
            "frame_stride": 1, **sections.pop("data", {})}
    return base_config(train_dir, out, cache, encoders={"kind": "toyworld"}, data=data, **sections)


def write_config(cfg: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(cfg, indent=1))
    return path


def read_log(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if line.strip()]


def copy_tree(src: Path, dst: Path) -> None:
    shutil.copytree(src, dst, dirs_exist_ok=True)
