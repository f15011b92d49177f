"""Batch rendering on Ray: a local Ray on this machine by default, or an existing cluster.

* One long-lived :class:`RenderActor` per GPU (or GPU fraction, or CPU slot) loads the models once
  and renders job after job (``Renderer`` of :mod:`.worker`).
* Each job's pose stage runs as a separate Ray task (:func:`run_pose_stage`), a few jobs ahead of
  the renderers, so pose extraction overlaps sampling.
* The driver (this process) is the only writer: outputs come back as bytes and are written
  atomically by :class:`~.run.BatchRun`, as are the continuation segments a resume needs. Inputs go
  to the workers as bytes too, so a cluster needs no shared disk.
* A renderer that dies (killed, out of memory, node lost) is replaced; its job goes back to the
  queue and runs on another renderer - from its last kept segment for a continuation job - until
  it has had ``max_attempts`` tries; then it is recorded as failed with the reason.
* Ctrl-C asks every renderer to stop at its next step, keeps what finished, records the running
  jobs as interrupted and leaves; a second Ctrl-C leaves at once. The next run continues.

Ray is an optional dependency (``pip install "comfyui-unianimate[batch]"``).
"""
from __future__ import annotations

import dataclasses
import logging
import os
import signal
import threading
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError, TaskCancelledError

from ..errors import UniAnimateError
from .errors import BatchError
from .jobs import Job
from .run import BatchRun
from .worker import (
    InputFile, ModelSpec, PoseRequest, RenderRequest, Renderer, Resume, read_input, run_pose_stage,
)

PACKAGE_DIR = Path(__file__).resolve().parents[1]


@ray.remote(concurrency_groups={"control": 1})
class RenderActor(Renderer):
    """A :class:`Renderer` as a Ray actor; ``progress`` and ``stop`` run beside the render (own thread)."""

    @ray.method(concurrency_group="control")
    def progress(self) -> dict[str, Any]:
        return Renderer.progress(self)

    @ray.method(concurrency_group="control")
    def stop(self) -> bool:
        return Renderer.stop(self)


pose_task = ray.remote(run_pose_stage)


@dataclass
class RayConfig:
    """Where and how the batch runs on Ray.

    address: ``ray://host:10001``, ``auto`` or ``host:port`` of a running cluster (None: $RAY_ADDRESS, else a
    local Ray started for this batch). workers: renderers (None: one per GPU / GPU fraction, or 1 on a
    machine without GPU). gpus_per_worker: GPU share of a renderer (0.5 puts two on a GPU; None: 1 when
    the cluster has GPUs, else 0). cpus_per_worker / pose_cpus: CPU share of a renderer / a pose task.
    num_cpus / object_store_mb: local Ray only. prefetch: pose stages run ahead of free renderers.
    """

    model: ModelSpec
    model_dirs: tuple[str, ...] = ()
    address: str | None = None
    workers: int | None = None
    gpus_per_worker: float | None = None
    cpus_per_worker: float = 1.0
    pose_cpus: float = 1.0
    pose_gpus: float = 0.0
    num_cpus: int | None = None
    object_store_mb: int | None = None
    prefetch: int | None = None
    ship_code: bool = True
    stop_grace: float = 60.0
    poll_every: float = 1.0


def connect(cfg: RayConfig) -> bool:
    """Start a local Ray or join the cluster; returns True when a cluster address was used."""
    address = cfg.address or os.environ.get("RAY_ADDRESS") or None
    common: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False, "ignore_reinit_error": True}
    try:
        if address:
            runtime_env = {"py_modules": [str(PACKAGE_DIR)]} if cfg.ship_code else None
            ray.init(address=address, runtime_env=runtime_env, **common)
            return True
        workers = cfg.workers or _local_gpu_workers(cfg)
        needed = workers * cfg.cpus_per_worker + cfg.pose_cpus
        num_cpus = cfg.num_cpus or max(os.cpu_count() or 1, int(needed + 0.999))
        # "local": always a new Ray of our own, never a cluster some other `ray start` left running here
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 object_store_memory=(cfg.object_store_mb * 2**20) if cfg.object_store_mb else None, **common)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray"
        raise BatchError(f"could not start/join {where}: {exc}. Check the address (HEAD:6379, or ray://HEAD:10001 "
                         "when the cluster runs the Ray Client server), that the cluster runs the same Ray and Python "
                         "versions, and - if it uses Ray's token authentication - that this shell has its token "
                         "(RAY_AUTH_TOKEN or RAY_AUTH_TOKEN_PATH).") from exc
    return False


def _local_gpu_workers(cfg: RayConfig) -> int:
    """Renderers a local Ray will plan for (before Ray runs: torch counts the GPUs)."""
    import torch

    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    share = cfg.gpus_per_worker if cfg.gpus_per_worker is not None else 1.0
    return max(1, int(gpus / share + 1e-6)) if gpus and share > 0 else 1


def plan_workers(cfg: RayConfig) -> tuple[int, float, float]:
    """(workers, gpus per worker, cpus per worker) for the cluster Ray sees."""
    resources = ray.cluster_resources()
    gpus = float(resources.get("GPU", 0.0))
    cpus = float(resources.get("CPU", 0.0))
    per_gpu = cfg.gpus_per_worker if cfg.gpus_per_worker is not None else (1.0 if gpus else 0.0)
    if per_gpu < 0 or (per_gpu > 0 and per_gpu > gpus):
        raise BatchError(f"--gpus-per-worker {per_gpu:g} but the cluster has {gpus:g} GPUs; use a share such as 0.5, "
                         "or 0 to render on CPUs.")
    if cfg.workers is not None and cfg.workers < 1:
        raise BatchError(f"--workers must be >= 1; got {cfg.workers}.")
    if cfg.workers is not None:
        workers = cfg.workers
    elif per_gpu > 0:
        workers = max(1, int(gpus / per_gpu + 1e-6))
    else:
        workers = 1
    if per_gpu > 0 and workers * per_gpu > gpus + 1e-6:
        raise BatchError(f"{workers} workers x {per_gpu:g} GPU need {workers * per_gpu:g} GPUs; the cluster has {gpus:g}. "
                         "Use fewer --workers or a smaller --gpus-per-worker.")
    if workers * cfg.cpus_per_worker + cfg.pose_cpus > cpus + 1e-6:
        raise BatchError(f"{workers} workers x {cfg.cpus_per_worker:g} CPU + {cfg.pose_cpus:g} CPU for pose tasks need "
                         f"more than the {cpus:g} CPUs Ray has; use fewer --workers, smaller --cpus-per-worker / "
                         "--pose-cpus, or (local Ray) a larger --num-cpus.")
    return workers, per_gpu, cfg.cpus_per_worker


@dataclass
class Slot:
    """One renderer: its actor, what it is doing and the call in flight."""

    number: int
    actor: Any
    state: str = "starting"  # starting, idle, busy, dead
    info: dict[str, Any] | None = None
    job: Job | None = None
    call: Any = None
    kind: str = ""
    progress_ref: Any = None
    strategy: str = ""
    stopping: bool = False

    @property
    def label(self) -> str:
        if not self.info:
            return f"worker {self.number}"
        return f"worker {self.number} (pid {self.info['pid']} on {self.info['host']}, {self.info['device']})"


class RayBatch:
    """The scheduling loop (see the module docstring)."""

    def __init__(self, run: BatchRun, jobs: list[Job], cfg: RayConfig) -> None:
        self.run, self.cfg = run, cfg
        self.queue: deque[Job] = deque(jobs)
        self.ready: deque[Job] = deque()
        self.payloads: dict[str, Any] = {}  # job id -> pose result ref (kept for retries)
        self.pose_calls: dict[Any, Job] = {}
        self.slots: list[Slot] = []
        self.calls: dict[Any, Slot] = {}
        self.replacements = 0
        self.stopping = False
        self.ctrl_c = False  # set by the SIGINT handler of run_on_ray
        self._last_poll = 0.0

    # ------------------------------------------------------------------ workers
    def start_workers(self) -> None:
        workers, gpus, cpus = plan_workers(self.cfg)
        self.per_gpu, self.per_cpu = gpus, cpus
        self.max_replacements = max(2 * workers, workers * self.run.settings.max_attempts)
        for _ in range(workers):
            self._new_slot()
        self.prefetch = self.cfg.prefetch if self.cfg.prefetch is not None else workers + 1
        self.run.event(f"{workers} worker(s) starting ({gpus:g} GPU + {cpus:g} CPU each; pose tasks "
                       f"{self.cfg.pose_cpus:g} CPU); Ray resources {dict(ray.cluster_resources())}")

    def _new_slot(self) -> Slot:
        model = self.cfg.model
        if self.per_gpu == 0 and model.device == "auto":
            model = dataclasses.replace(model, device="cpu")
        actor = RenderActor.options(num_cpus=self.per_cpu, num_gpus=self.per_gpu, max_restarts=0,
                                    max_task_retries=0).remote(model)
        slot = Slot(len(self.slots) + 1, actor)
        slot.call, slot.kind = actor.info.remote(), "info"
        self.calls[slot.call] = slot
        self.slots.append(slot)
        return slot

    def _replace(self, slot: Slot, why: str) -> None:
        slot.state = "dead"
        try:
            ray.kill(slot.actor)
        except Exception:  # noqa: BLE001 - it is already gone
            pass
        if self.stopping:
            return
        if self.replacements >= self.max_replacements:
            if not any(s.state != "dead" for s in self.slots):
                raise BatchError(f"workers keep dying ({self.replacements} replaced; last: {why}); the unfinished jobs "
                                 "stay in the manifest for the next run. Check memory and the Ray worker logs.")
            return
        self.replacements += 1
        new = self._new_slot()
        self.run.event(f"{slot.label} died ({why}); starting worker {new.number} in its place")

    # ------------------------------------------------------------------ jobs
    def _submit_pose(self, job: Job) -> None:
        try:
            request = PoseRequest(job.id, InputFile.read(job.reference), read_input(job.driving),  # type: ignore[arg-type]
                                  dataclasses.asdict(job.options),  # type: ignore[arg-type]
                                  InputFile.read(job.keypoints) if job.keypoints else None, self.cfg.model_dirs)
        except OSError as exc:
            self.run.fail(job, f"could not read an input: {exc}", attempt=False)
            return
        meta, payload = pose_task.options(num_cpus=self.cfg.pose_cpus, num_gpus=self.cfg.pose_gpus, num_returns=2,
                                          max_retries=2).remote(request)
        self.pose_calls[meta] = job
        self.payloads[job.id] = payload
        self.run.log(job, "pose extraction submitted")

    def _dispatch(self, slot: Slot, job: Job) -> None:
        latents, state = self.run.load_parts(job)
        resume = Resume(tuple(latents), state) if latents and state is not None else None
        request = RenderRequest(job.id, dataclasses.asdict(job.options), job.save_latent)  # type: ignore[arg-type]
        slot.state, slot.job, slot.stopping = "busy", job, False
        self._call(slot, "begin", slot.actor.begin.remote(request, self.payloads[job.id], resume))
        self.run.start(job, slot.label, resumed_segments=len(latents), pid=(slot.info or {}).get("pid"),
                       host=(slot.info or {}).get("host"))

    def _call(self, slot: Slot, kind: str, ref: Any) -> None:
        slot.call, slot.kind = ref, kind
        self.calls[ref] = slot

    def _free(self, slot: Slot) -> None:
        if slot.job is not None and self.run.state.get(slot.job.id) in ("done", "failed"):
            self.payloads.pop(slot.job.id, None)
        slot.state, slot.job, slot.call, slot.kind = "idle", None, None, ""

    # ------------------------------------------------------------------ results
    def _on_pose(self, ref: Any) -> None:
        job = self.pose_calls.pop(ref)
        try:
            meta = ray.get(ref)
        except (RayTaskError, TaskCancelledError) as exc:
            self.payloads.pop(job.id, None)
            if isinstance(exc, TaskCancelledError) or self.stopping:
                self.run.state[job.id] = "pending"
                return
            self.run.fail(job, f"pose extraction failed: {_cause(exc)}", self.run.error_detail(exc), attempt=False)
            return
        except RayError as exc:  # its worker process died more often than Ray retries
            self.payloads.pop(job.id, None)
            self.run.fail(job, f"pose extraction crashed its worker: {exc}", attempt=False)
            return
        self.run.log(job, *meta.get("log", []))
        if meta.get("error"):
            self.payloads.pop(job.id, None)
            self.run.fail(job, meta["error"], attempt=False)
            return
        self.run.log(job, f"poses ready: {meta['frames']} frames ({meta['backend']}) in {meta['seconds']:.1f} s "
                          f"on {meta['host']}")
        self.ready.append(job)

    def _on_call(self, ref: Any) -> None:
        slot = self.calls.pop(ref)
        if slot.progress_ref is ref:
            slot.progress_ref = None
            try:
                p = ray.get(ref)
            except RayError:
                return
            if slot.job is not None and p.get("job") == slot.job.id:
                self.run.progress(slot.job, p["done"], p["total"])
            return
        kind, job = slot.kind, slot.job
        try:
            result = ray.get(ref)
        except RayActorError as exc:
            self._lost(slot, f"{type(exc).__name__}: {_first_line(exc)}")
            return
        except RayTaskError as exc:
            cause = exc.cause if isinstance(getattr(exc, "cause", None), BaseException) else None
            if kind == "info":
                if isinstance(cause, UniAnimateError):
                    raise BatchError(f"the workers cannot load the models: {cause}") from None
                self._lost(slot, f"could not start: {_cause(exc)}")
                return
            assert job is not None
            reason = str(cause) if isinstance(cause, UniAnimateError) else f"internal error: {_cause(exc)}"
            self.run.fail(job, reason, self.run.error_detail(exc))
            self._free(slot)
            return
        if kind == "info":
            slot.info, slot.state = result, "idle"
            self.run.event(f"{slot.label} ready ({result['label']}, {result['threads']} threads)")
            return
        assert job is not None
        self.run.log(job, *(result or {}).get("log", []))
        if kind == "begin":
            slot.strategy = result["strategy"]
            self.run.progress(job, 0, result["total"])
            if self.stopping:  # Ctrl-C came before this job began sampling
                self.run.interrupt(job)
                self._free(slot)
            else:
                self._call(slot, "next_part", slot.actor.next_part.remote())
        elif kind == "next_part":
            if result is None:
                self._call(slot, "finish", slot.actor.finish.remote())
            elif result.get("cancelled"):
                self.run.interrupt(job)
                self._free(slot)
            else:
                if result["index"] is not None:
                    self.run.save_part(job, result["index"], result["latent"], result["rng_state"])
                if self.stopping and result["index"] is not None:
                    self.run.interrupt(job, "stopped by Ctrl-C after a finished segment")
                    self._free(slot)
                else:
                    self._call(slot, "next_part", slot.actor.next_part.remote())
        elif kind == "finish":
            self.run.complete(job, result["files"], frames=result["frames"], fps=result["fps"],
                              strategy=slot.strategy)
            self._free(slot)

    def _lost(self, slot: Slot, why: str) -> None:
        job = slot.job
        if slot.progress_ref is not None:
            self.calls.pop(slot.progress_ref, None)
            slot.progress_ref = None
        if job is not None:
            if self.stopping:
                self.run.interrupt(job, f"its worker ended while stopping ({why})")
            elif self.run.lost(job, f"{slot.label} died: {why}"):
                self.ready.appendleft(job)
            else:
                self.payloads.pop(job.id, None)
        slot.job = None
        self._replace(slot, why)

    def _poll_progress(self) -> None:
        if time.monotonic() - self._last_poll < self.cfg.poll_every:
            return
        self._last_poll = time.monotonic()
        for slot in self.slots:
            if slot.state == "busy" and slot.progress_ref is None:
                slot.progress_ref = slot.actor.progress.remote()
                self.calls[slot.progress_ref] = slot

    # ------------------------------------------------------------------ loop
    def _busy(self) -> bool:
        return any(s.state == "busy" for s in self.slots)

    def _step(self, timeout: float) -> None:
        refs = list(self.pose_calls) + list(self.calls)
        if not refs:
            time.sleep(min(timeout, 0.1))
            return
        ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        for ref in ready:
            if ref in self.pose_calls:
                self._on_pose(ref)
            elif ref in self.calls:
                self._on_call(ref)

    def run_all(self) -> None:
        while True:
            if not self.stopping:
                while self.queue and len(self.pose_calls) + len(self.ready) < self.prefetch:
                    self._submit_pose(self.queue.popleft())
                for slot in self.slots:
                    if slot.state == "idle" and self.ready:
                        self._dispatch(slot, self.ready.popleft())
            if not (self.queue or self.ready or self.pose_calls or self._busy()):
                return
            if self.stopping and not self._busy():
                return
            if self.ctrl_c and not self.stopping:
                raise KeyboardInterrupt
            if not any(s.state != "dead" for s in self.slots):
                raise BatchError("no worker is left (all died and none could be replaced); the unfinished jobs stay "
                                 "in the manifest for the next run.")
            self._poll_progress()
            self._step(0.5)
            self.run.tick()

    def stop(self) -> None:
        """First Ctrl-C: stop renderers at their next step, cancel pose tasks, wait (bounded) for what finishes."""
        self.stopping = True
        self.run.interrupted = True
        self.run.event("stopping (Ctrl-C): finishing the current step of each job; Ctrl-C again to leave at once")
        for ref, job in list(self.pose_calls.items()):
            try:
                ray.cancel(ref)
            except Exception:  # noqa: BLE001
                pass
            self.run.state[job.id] = "pending"
        self.pose_calls.clear()
        self.queue.clear()
        self.ready.clear()
        for slot in self.slots:
            if slot.state == "busy":
                slot.actor.stop.remote()
        deadline = time.monotonic() + self.cfg.stop_grace
        while self._busy() and time.monotonic() < deadline:
            self._step(0.5)
        self.abandon()

    def abandon(self) -> None:
        """Record every job still running as interrupted (the next run continues it)."""
        for slot in self.slots:
            if slot.state == "busy" and slot.job is not None and self.run.state.get(slot.job.id) == "running":
                self.run.interrupt(slot.job)
        for job_id, s in list(self.run.state.items()):
            if s == "running":
                self.run.interrupt(self.run.jobs[job_id])


def run_on_ray(run: BatchRun, jobs: list[Job], cfg: RayConfig) -> None:
    """Render ``jobs`` on Ray, recording everything in ``run``; returns when all are done or it was stopped.

    Ctrl-C (SIGINT) is taken by a handler of our own while the batch runs: the first one only sets a flag
    that the scheduling loop reads every half second (so it is never lost inside Ray's blocking calls,
    which may not raise KeyboardInterrupt), the second one raises at once.
    """
    connect(cfg)
    batch = RayBatch(run, jobs, cfg)
    previous = None
    if threading.current_thread() is threading.main_thread():
        def on_sigint(signum: int, frame: Any) -> None:
            if batch.ctrl_c:
                raise KeyboardInterrupt
            batch.ctrl_c = True

        previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        try:
            batch.start_workers()
            batch.run_all()
        except KeyboardInterrupt:
            try:
                batch.stop()
            except KeyboardInterrupt:
                batch.abandon()
                run.event("left at once; running jobs are recorded as interrupted")
    finally:
        if previous is not None:
            signal.signal(signal.SIGINT, previous)
        try:
            ray.shutdown()
        except Exception:  # noqa: BLE001
            pass


def _cause(exc: BaseException) -> str:
    cause = getattr(exc, "cause", None)
    if isinstance(cause, BaseException):
        return f"{type(cause).__name__}: {cause}"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


__all__ = ["RayConfig", "RenderActor", "connect", "plan_workers", "run_on_ray"]
