"""Shared fixtures for the pose tests (golden data of the official UniAnimate code)."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import numpy as np
import pytest

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


def _read_png_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.array(im.convert("RGB"))


def _load_json(path: Path) -> object:
    # Python's json module reads the NaN literals of the dancer case (strict parsers do not).
    with open(path, encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture(scope="session")
def read_png() -> Callable[[Path], np.ndarray]:
    """Read a PNG as (H, W, 3) uint8 in file channel order (R, G, B)."""
    return _read_png_rgb


@pytest.fixture(scope="session")
def dwpose_dir() -> Path:
    return FIXTURES / "dwpose"


@pytest.fixture(scope="session")
def dwpose_meta(dwpose_dir: Path) -> dict:
    return _load_json(dwpose_dir / "dwpose_postproc.json")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def dwpose_tensors(dwpose_dir: Path) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(str(dwpose_dir / "dwpose_postproc.safetensors"))


@pytest.fixture(scope="session")
def render_cases() -> dict:
    return _load_json(FIXTURES / "pose_render" / "render_cases.json")  # type: ignore[return-value]


@pytest.fixture(scope="session")
def render_dir() -> Path:
    return FIXTURES / "pose_render"


@pytest.fixture(scope="session")
def align_dir() -> Path:
    return FIXTURES / "pose_align"


@pytest.fixture(scope="session")
def align_case(align_dir: Path) -> Callable[[str], dict]:
    """Load ``keypoints.json`` + ``mediapipe_coco133.json`` of one alignment case (cached)."""
    cache: dict[str, dict] = {}

    def load(name: str) -> dict:
        if name not in cache:
            case = align_dir / name
            cache[name] = {
                "dir": case,
                "keypoints": _load_json(case / "keypoints.json"),
                "mediapipe": _load_json(case / "mediapipe_coco133.json"),
            }
        return cache[name]

    return load
