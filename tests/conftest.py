"""Shared pytest setup.

Tiny models on a 2-core CI machine run fastest on one thread (two OpenMP threads spin-wait for
each other when the machine is busy), so the whole suite pins torch to a single thread.
"""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

torch.set_num_threads(1)

FIXTURES = Path(__file__).parent / "fixtures"
CACHE = Path(__file__).parent / ".cache"


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE.mkdir(exist_ok=True)
    return CACHE
