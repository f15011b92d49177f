"""Fixtures of the headless-pipeline tests: demo media and full-size random-weight VAE/CLIP files.

The random-weight files are never committed (167 MB VAE, 84 MB sparse CLIP-H). Tests that need them
find them through environment variables and are skipped otherwise:

* ``UNIANIMATE_TEST_MODELS``: a ComfyUI-style ``models`` folder that already holds
  ``vae/test_sd_vae_kl.safetensors`` and ``clip_vision/test_clip_vision_h.safetensors``;
* ``UNIANIMATE_MAKE_TEST_MODELS``: the path of the generator script that writes them (numpy only);
  they are then generated once into ``tests/.cache/test_models`` (deterministic, ~4 s).
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VAE_FILE = Path("vae") / "test_sd_vae_kl.safetensors"
CLIP_FILE = Path("clip_vision") / "test_clip_vision_h.safetensors"


@pytest.fixture(scope="session")
def random_model_dir(cache_dir: Path) -> Path:
    """A models folder with the full-size random-weight SD VAE and sparse ViT-H CLIP vision files."""
    given = os.environ.get("UNIANIMATE_TEST_MODELS")
    if given:
        folder = Path(given)
        if not (folder / VAE_FILE).is_file() or not (folder / CLIP_FILE).is_file():
            pytest.fail(f"UNIANIMATE_TEST_MODELS={given} lacks {VAE_FILE} or {CLIP_FILE}")
        return folder
    script = os.environ.get("UNIANIMATE_MAKE_TEST_MODELS")
    if not script:
        pytest.skip("set UNIANIMATE_TEST_MODELS (folder) or UNIANIMATE_MAKE_TEST_MODELS (generator script) "
                    "to run the tests on full-size random-weight VAE/CLIP files")
    folder = cache_dir / "test_models"
    subprocess.run([sys.executable, script, str(folder), "--only", "vae,clip_vision"], check=True,
                   stdout=subprocess.DEVNULL)
    return folder
