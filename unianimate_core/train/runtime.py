"""Process-level plumbing of a run: devices and torch.distributed, Ctrl-C/SIGTERM, output preflight.

Multi-GPU / multi-machine training uses PyTorch's own data parallelism: launch with
``torchrun --nproc_per_node N -m unianimate_core train CONFIG``; every process reads RANK,
WORLD_SIZE and LOCAL_RANK from the environment torchrun sets, joins the process group (NCCL on
CUDA, gloo on CPU) and wraps the loss module in ``DistributedDataParallel``, which averages the
gradients. Nothing here exchanges gradients by hand.
"""
from __future__ import annotations

import datetime
import os
import shutil
import signal
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any, Optional

import torch
import torch.distributed as dist

from .errors import TrainError

#: Seconds a process waits for the others at a barrier (data preparation can take long).
PROCESS_GROUP_TIMEOUT = 4 * 3600


@dataclass
class Distributed:
    rank: int
    world: int
    local_rank: int
    device: torch.device

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def sum(self, values: list[float]) -> list[float]:
        """Sum of float values over processes (a no-op for one process)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t)
        return t.tolist()

    def any(self, flag: bool) -> bool:
        return self.sum([1.0 if flag else 0.0])[0] > 0

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")

    def close(self) -> None:
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()


def resolve_device(choice: str, local_rank: int) -> torch.device:
    if choice == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda", local_rank)
        return torch.device("cpu")
    try:
        device = torch.device(choice)
    except RuntimeError as exc:
        raise TrainError(f"train.device {choice!r} is not a device ({exc}); use auto, cpu, cuda or cuda:N.") from exc
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise TrainError(f"train.device is {choice!r} but this PyTorch has no CUDA device; use cpu or auto.")
        if int(os.environ.get("WORLD_SIZE", "1")) > 1:
            device = torch.device("cuda", local_rank)
    return device


def setup_distributed(device_choice: str) -> Distributed:
    """Join the torchrun process group when WORLD_SIZE > 1; pick this process's device."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_choice, local_rank)
    if world > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend, timeout=datetime.timedelta(seconds=PROCESS_GROUP_TIMEOUT))
    return Distributed(rank, world, local_rank, device)


class StopRequest:
    """Turns the first Ctrl-C / SIGTERM into "checkpoint and stop after this step"; a second Ctrl-C aborts."""

    def __init__(self) -> None:
        self.signal: Optional[int] = None
        self._previous: dict[int, Any] = {}

    def _handler(self, signum: int, frame: Optional[FrameType]) -> None:
        if self.signal is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal = signum

    def __enter__(self) -> "StopRequest":
        try:
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handler)
        except ValueError:  # not the main thread: no handlers, the run just ends normally
            self._previous.clear()
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)

    @property
    def requested(self) -> bool:
        return self.signal is not None

    @property
    def exit_code(self) -> int:
        return 128 + int(self.signal or signal.SIGINT)


def check_writable(folder: Path, what: str) -> None:
    """Create ``folder`` and prove a file can be written, synced and removed there."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-test-{os.getpid()}"
        with open(probe, "wb") as f:
            f.write(b"0" * 4096)
            f.flush()
            os.fsync(f.fileno())
        probe.unlink()
    except OSError as exc:
        raise TrainError(f"cannot write to the {what} {folder} ({exc.strerror or exc}); choose a writable folder "
                         "(config key output_dir / data.cache_dir).") from exc


def check_free_space(folder: Path, needed: int, what: str) -> None:
    """Refuse to start when the disk of ``folder`` has less than ``needed`` bytes free."""
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise TrainError(f"not enough free disk space for {what}: {needed / 1e9:.2f} GB needed in {folder}, "
                         f"{free / 1e9:.2f} GB free. Free space, lower checkpoint.keep, or choose another output_dir.")
