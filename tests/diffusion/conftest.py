"""Golden-fixture loaders for the sampling tests (tests/fixtures/schedule.*, ddim_*_tiny.*, long_windows.json)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from safetensors.torch import load_file


@pytest.fixture(scope="session")
def schedule_golden(fixtures_dir: Path) -> dict:
    return load_file(fixtures_dir / "schedule.safetensors")


@pytest.fixture(scope="session")
def schedule_meta(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "schedule.json").read_text())


@pytest.fixture(scope="session")
def short_golden(fixtures_dir: Path) -> dict:
    return load_file(fixtures_dir / "ddim_short_tiny.safetensors")


@pytest.fixture(scope="session")
def short_meta(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "ddim_short_tiny.json").read_text())


@pytest.fixture(scope="session")
def long_golden(fixtures_dir: Path) -> dict:
    return load_file(fixtures_dir / "ddim_long_tiny.safetensors")


@pytest.fixture(scope="session")
def long_meta(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "ddim_long_tiny.json").read_text())


@pytest.fixture(scope="session")
def long_windows(fixtures_dir: Path) -> dict:
    return json.loads((fixtures_dir / "long_windows.json").read_text())
