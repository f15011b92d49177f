"""Shared pytest setup.

Torch thread count: ``UNIANIMATE_TEST_THREADS`` (default 1). Tiny models on a 2-core CI machine run
fastest on one thread (two OpenMP threads spin-wait for each other when the machine is busy), so CI
uses 1; ``make test-variants`` also runs the suite with 2 threads (docs/testing.md), because kernels
partition their work, and so round, differently with another thread count.

Hypothesis: the ``derandomized`` profile (default) draws every example from a seed derived from the
test itself, so a run is repeatable and a failure is replayed by rerunning the test; the failing
example and a ``@reproduce_failure`` blob are printed. ``HYPOTHESIS_PROFILE=explore`` draws fresh
random examples and stores failing ones in ``.hypothesis/`` (replayed first on the next run).
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
CACHE = Path(__file__).parent / ".cache"


def _test_threads() -> int:
    value = os.environ.get("UNIANIMATE_TEST_THREADS", "1")
    if not value.isdigit() or int(value) < 1:
        raise pytest.UsageError(f"UNIANIMATE_TEST_THREADS must be a positive integer, got {value!r}")
    return int(value)


TEST_THREADS = _test_threads()
torch.set_num_threads(TEST_THREADS)

try:
    from hypothesis import settings
    from hypothesis.database import DirectoryBasedExampleDatabase
except ImportError:  # the MediaPipe venv runs only tests without hypothesis
    pass
else:
    settings.register_profile("derandomized", derandomize=True, database=None, print_blob=True)
    settings.register_profile("explore", derandomize=False, print_blob=True,
                              database=DirectoryBasedExampleDatabase(str(Path(__file__).parents[1] / ".hypothesis")))
    settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "derandomized"))


#: Free space the suite needs in its temporary folder: the training tests' files peak at about 0.65 GB
#: (measured on the full suite) and each training run refuses to start without 0.47 GB free for its checkpoints.
TEMP_SPACE_NEEDED = 1.2e9


def _temp_space_lines(config) -> list[str]:
    import shutil
    import tempfile

    folder = Path(config.option.basetemp or tempfile.gettempdir())
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    lines = [f"unianimate: {free / 1e9:.1f} GB free in the temporary folder {folder}"]
    if free < TEMP_SPACE_NEEDED:
        lines.append(f"unianimate: WARNING: the training tests need about {TEMP_SPACE_NEEDED / 1e9:.1f} GB there and "
                     f"will fail with 'not enough free disk space'. Free some space, or point TMPDIR (or "
                     f"--basetemp) at a larger disk.")
    return lines


def pytest_report_header(config) -> list[str]:
    import platform

    capability = torch.backends.cpu.get_cpu_capability()
    return [f"unianimate: torch {torch.__version__}, {TEST_THREADS} torch thread(s), CPU kernels {capability}, "
            f"{platform.machine()}, hypothesis profile {os.environ.get('HYPOTHESIS_PROFILE', 'derandomized')}",
            *_temp_space_lines(config)]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(scope="session")
def cache_dir() -> Path:
    CACHE.mkdir(exist_ok=True)
    return CACHE
