"""Batch tests: the command line and the renderers set torch's thread count for the tiny model (one thread,
as ``animate`` does); give the rest of the suite its own count back after each test."""
from __future__ import annotations

import pytest
import torch


@pytest.fixture(autouse=True)
def _keep_thread_count():
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)
