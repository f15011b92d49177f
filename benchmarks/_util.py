"""Small helpers shared by the benchmark scripts (peak memory, timing)."""
from __future__ import annotations

import os
import resource
import time
from contextlib import contextmanager
from typing import Iterator


def proc_status_mib(key: str) -> float:
    """A memory line of /proc/self/status (``VmRSS``, ``VmHWM``, ...) in MiB; NaN where there is none."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def peak_rss_mib() -> float:
    """Peak resident set size of this process so far (Linux: VmHWM; else ru_maxrss)."""
    peak = proc_status_mib("VmHWM")
    if peak == peak:  # not NaN
        return peak
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


def live_tensor_peak():
    """A ``TorchDispatchMode`` recording the peak bytes of tensor storages created while active (any device, ``meta`` too).

    Every storage an aten op returns is counted from its creation until its last reference dies, so the
    peak is what a caching allocator would have to hold for the tensors themselves (no kernel workspaces,
    no block rounding). Tensors that existed before entering (weights, inputs) are not counted. On the
    ``meta`` device nothing is computed or allocated, so full-size configurations cost seconds.
    Use as ``with live_tensor_peak() as mode: ...``; then ``mode.peak``.
    """
    import weakref

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode
    from torch.utils._pytree import tree_flatten

    class LiveTensorPeak(TorchDispatchMode):
        def __init__(self) -> None:
            super().__init__()
            self.live: dict[int, int] = {}
            self.refs: dict[int, object] = {}
            self.current = 0
            self.peak = 0

        def _free(self, key: int) -> None:
            self.current -= self.live.pop(key, 0)
            self.refs.pop(key, None)

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            # storages of the inputs: an output sharing one (a view, an in-place op) allocates nothing, even
            # when that storage existed before the mode was entered (a weight seen first through a view)
            inputs = {t.untyped_storage()._cdata for t in tree_flatten((args, kwargs))[0] if isinstance(t, torch.Tensor)}
            for t in tree_flatten(out)[0]:
                if isinstance(t, torch.Tensor):
                    st = t.untyped_storage()
                    key = id(st)
                    if key not in self.live and st._cdata not in inputs:
                        self.live[key] = st.nbytes()
                        self.current += self.live[key]
                        self.refs[key] = weakref.ref(st, lambda _r, k=key: self._free(k))
            self.peak = max(self.peak, self.current)
            return out

    return LiveTensorPeak()


def profiled_peak_bytes(fn) -> int:
    """Peak bytes allocated while ``fn()`` runs, from torch's memory profiler (CPU allocator events)."""
    from torch.profiler import ProfilerActivity, profile
    from torch.profiler._memory_profiler import Action

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True, with_stack=True) as prof:
        fn()
    current = peak = 0
    for _, action, _, size in prof._memory_profile().timeline:
        if action == Action.CREATE:
            current += size
        elif action == Action.DESTROY:
            current -= size
        peak = max(peak, current)
    return peak
