"""Small helpers shared by the benchmark scripts (peak memory, timing)."""
from __future__ import annotations

import os
import resource
import time
from contextlib import contextmanager
from typing import Iterator


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux: VmHWM; else ru_maxrss)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return r / 1024 if os.uname().sysname != "Darwin" else r / 2**20


def reset_peak_rss() -> None:
    """Reset VmHWM where the kernel allows it (writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass


@contextmanager
def timer() -> Iterator[dict]:
    out: dict = {}
    t0 = time.perf_counter()
    try:
        yield out
    finally:
        out["seconds"] = time.perf_counter() - t0
