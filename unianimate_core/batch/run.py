"""The driver side of a batch, shared by both back ends (Ray workers, ComfyUI servers).

:class:`BatchRun` owns everything that must not be lost or done twice: the manifest (input hashes,
options, attempts, reasons), the per-job logs (``<out-dir>/logs/<id>.log``), the continuation
segments kept for a resume (``<out-dir>/parts/<id>/``), the atomic writing of outputs, the retry
budget of a job whose worker died, the progress line (done / failed / running, ETA) and the closing
summary table. A back end only decides *where* a job runs and reports what happened through the
methods below (they are thread-safe).
"""
from __future__ import annotations

import dataclasses
import hashlib
import shutil
import sys
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, TextIO

import numpy as np

from ..paths import write_atomic
from ..pipeline.latent_file import LATENT_SUFFIX
from ..pipeline.progress import _fmt_seconds
from ..pipeline.runner import output_paths

from .errors import BatchError
from .jobs import Job
from .manifest import MANIFEST_NAME, BatchLock, Manifest, job_key, now, sha256_input

#: Exit codes of ``python -m unianimate_core batch``.
EXIT_OK, EXIT_FAILED_JOBS, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


def describe_job(job: Job, identity: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(inputs with their SHA-256, options, key) of a job that has no problem; reads every input once."""
    inputs = {k: {"path": str(getattr(job, k)), "sha256": sha256_input(getattr(job, k))}
              for k in ("reference", "driving", "keypoints") if getattr(job, k) is not None}
    options = {**dataclasses.asdict(job.options), "save_latent": job.save_latent}  # type: ignore[call-overload]
    return inputs, options, job_key({k: v["sha256"] for k, v in inputs.items()}, options, identity)


@dataclass
class RunSettings:
    """How a batch treats its jobs.

    out_dir: manifest, logs, kept segments and default outputs. max_attempts: tries per job when a
    worker dies under it (bad jobs are never retried). force: render finished jobs again.
    skip_failed: leave jobs that failed in an earlier run alone (default: try them again).
    is_random: outputs are random-weight noise (their names get the command line's suffix).
    identity: what else decides the result (model files and precision, or the ComfyUI workflow).
    """

    out_dir: Path
    max_attempts: int = 3
    force: bool = False
    skip_failed: bool = False
    is_random: bool = False
    identity: dict[str, Any] = field(default_factory=dict)
    stream: TextIO | None = None
    report_every: float = 30.0


class BatchRun:
    """State of one batch run over a manifest (see the module docstring)."""

    def __init__(self, jobs: Iterable[Job], settings: RunSettings) -> None:
        self.settings = settings
        self.out_dir = Path(settings.out_dir)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.lock = BatchLock(self.out_dir)
        self.lock.acquire()
        try:
            self.manifest = Manifest(self.out_dir / MANIFEST_NAME)
        except BaseException:
            self.lock.release()
            raise
        self.logs_dir = self.out_dir / "logs"
        self.parts_dir = self.out_dir / "parts"
        self.jobs: dict[str, Job] = {j.id: j for j in jobs}
        self.order = list(self.jobs)
        self.keys: dict[str, str] = {}
        self.state: dict[str, str] = {}
        self.tries: dict[str, int] = {}
        self.progress_of: dict[str, tuple[int, int]] = {}
        self.started_at: dict[str, float] = {}
        self.seconds: dict[str, float] = {}
        self.skipped: list[str] = []
        self.t0 = time.monotonic()
        self.first_start: float | None = None
        self.rendered = 0
        self.interrupted = False
        self._lock = threading.RLock()
        self._last_report = 0.0
        self.stream = settings.stream if settings.stream is not None else sys.stderr

    # ------------------------------------------------------------------ set-up
    def close(self) -> None:
        self.lock.release()

    def __enter__(self) -> "BatchRun":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def plan(self) -> list[Job]:
        """Hash inputs, skip finished jobs, fail bad ones; returns the jobs to render now (in order)."""
        todo: list[Job] = []
        for job in self.jobs.values():
            if job.problem:
                self.fail(job, job.problem, attempt=False)
                continue
            try:
                inputs, options, key = describe_job(job, self.settings.identity)
            except OSError as exc:
                self.fail(job, f"could not read an input: {exc}", attempt=False)
                continue
            self.keys[job.id] = key
            done, why = self.manifest.finished(job.id, key)
            record = self.manifest.get(job.id) or {}
            if done and not self.settings.force:
                self.state[job.id] = "done"
                self.skipped.append(job.id)
                continue
            if (self.settings.skip_failed and record.get("status") == "failed" and record.get("key") == key):
                self.state[job.id] = "failed"
                continue
            self.manifest.update(job.id, status="pending", key=key, inputs=inputs, options=options,
                                 source=job.source, reason=None, out=str(job.out))
            self.state[job.id] = "pending"
            self.log(job, f"queued ({job.source})" + (f"; rendering again: {why}" if why else "")
                     + ("; --force" if done else ""))
            todo.append(job)
        if self.skipped:
            self.event(f"{len(self.skipped)} job(s) finished in an earlier run are not rendered again "
                       f"(the manifest {self.manifest.path} has their outputs)")
        return todo

    # ------------------------------------------------------------------ logs, output
    def log(self, job: Job | str, *lines: str) -> None:
        job_id = job if isinstance(job, str) else job.id
        if not lines:
            return
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        stamp = now()
        with self._lock, open(self.logs_dir / f"{job_id}.log", "a", encoding="utf-8") as fh:
            for line in lines:
                for sub in str(line).splitlines() or [""]:
                    fh.write(f"{stamp} {sub}\n")

    def counts(self) -> dict[str, int]:
        out = {"done": 0, "failed": 0, "running": 0, "pending": 0, "interrupted": 0}
        for s in self.state.values():
            out[s] = out.get(s, 0) + 1
        return out

    def eta_seconds(self) -> float | None:
        """Remaining work / observed throughput of this run (jobs rendered per second since the first start)."""
        with self._lock:
            if not self.rendered or self.first_start is None:
                return None
            rate = self.rendered / max(time.monotonic() - self.first_start, 1e-6)
            left = sum(1 for s in self.state.values() if s == "pending")
            for job_id, s in self.state.items():
                if s == "running":
                    done, total = self.progress_of.get(job_id, (0, 1))
                    left += 1.0 - (done / total if total else 0.0)
            return left / rate

    def status_line(self) -> str:
        c = self.counts()
        eta = self.eta_seconds()
        total = len(self.jobs)
        parts = [f"done {c['done']}/{total}", f"failed {c['failed']}", f"running {c['running']}",
                 f"waiting {c['pending']}"]
        if c.get("interrupted"):
            parts.append(f"interrupted {c['interrupted']}")
        parts.append("ETA " + (_fmt_seconds(eta) if eta is not None else "--:--"))
        running = [f"{j} {d}/{t}" if t else j for j, s in self.state.items() if s == "running"
                   for d, t in [self.progress_of.get(j, (0, 0))]]
        return " | ".join(parts) + (f" | {', '.join(running)}" if running else "")

    def event(self, message: str) -> None:
        with self._lock:
            self.stream.write(f"[batch {self.status_line()}] {message}\n")
            self.stream.flush()
            self._last_report = time.monotonic()

    def tick(self) -> None:
        """A status line now and then while nothing else is printed."""
        if time.monotonic() - self._last_report >= self.settings.report_every:
            with self._lock:
                self.stream.write(f"[batch {self.status_line()}]\n")
                self.stream.flush()
                self._last_report = time.monotonic()

    def output_files(self, job: Job) -> dict[str, Path]:
        video, preview, still, _ = output_paths(job.out, self.settings.is_random)  # type: ignore[arg-type]
        return {"video": video, "preview": preview, "still": still, "latent": video.with_suffix(LATENT_SUFFIX),
                "image": video.with_suffix(".png")}

    # ------------------------------------------------------------------ job events
    def start(self, job: Job, worker: str, **extra: Any) -> int:
        """A try of ``job`` begins on ``worker``; returns the try number of this run."""
        with self._lock:
            n = self.tries.get(job.id, 0) + 1
            self.tries[job.id] = n
            self.state[job.id] = "running"
            self.progress_of[job.id] = (0, 0)
            self.started_at[job.id] = time.monotonic()
            if self.first_start is None:
                self.first_start = time.monotonic()
            self.manifest.add_attempt(job.id, worker=worker, **extra)
            self.manifest.update(job.id, status="running", worker=worker)
        self.log(job, f"attempt {n} on {worker}")
        self.event(f"{job.id}: started on {worker}" + (f" (attempt {n})" if n > 1 else ""))
        return n

    def progress(self, job: Job, done: int, total: int) -> None:
        with self._lock:
            before = self.progress_of.get(job.id, (0, 0))
            self.progress_of[job.id] = (int(done), int(total))
        if total and int(10 * done / total) != int(10 * before[0] / max(before[1], 1)):
            self.log(job, f"progress {done}/{total}")

    def save_part(self, job: Job, index: int, latent: np.ndarray, rng_state: np.ndarray) -> None:
        """Keep a finished continuation segment (latent + generator state) for a resume."""
        from safetensors.numpy import save

        data = save({"latent": np.ascontiguousarray(latent, dtype=np.float32),
                     "rng_state": np.ascontiguousarray(rng_state, dtype=np.uint8)},
                    metadata={"key": self.keys[job.id], "index": str(index)})
        write_atomic(self.parts_dir / job.id / f"segment_{index:03d}.safetensors", data)
        self.manifest.update(job.id, segments=index + 1)
        self.log(job, f"segment {index} finished and kept ({latent.shape[2]} frames)")

    def load_parts(self, job: Job) -> tuple[list[np.ndarray], np.ndarray | None]:
        """The kept segments 0..n-1 of this job (same key), and the generator state after the last one."""
        from safetensors import safe_open

        folder = self.parts_dir / job.id
        latents: list[np.ndarray] = []
        state = None
        index = 0
        while (f := folder / f"segment_{index:03d}.safetensors").is_file():
            try:
                with safe_open(str(f), framework="numpy") as fh:
                    if (fh.metadata() or {}).get("key") != self.keys[job.id]:
                        break
                    latents.append(fh.get_tensor("latent"))
                    state = fh.get_tensor("rng_state")
            except Exception:  # noqa: BLE001 - a damaged file ends the usable prefix
                break
            index += 1
        if not latents and folder.is_dir():
            shutil.rmtree(folder, ignore_errors=True)  # segments of other inputs/options: useless now
        return latents, state

    def complete(self, job: Job, files: dict[str, bytes], suffixes: dict[str, str] | None = None,
                 **facts: Any) -> None:
        """Write the job's files atomically, then record it done (in this order: a crash in between re-renders).

        files: ``{"video" | "preview" | "still" | "latent" | "image": bytes}``; suffixes: another file
        suffix for a kind (a ComfyUI workflow may save ``.webm``)."""
        targets = self.output_files(job)
        outputs = {}
        for name, data in files.items():
            path = targets[name]
            if suffixes and name in suffixes:
                path = path.with_suffix(suffixes[name])
            write_atomic(path, data)
            outputs[name] = {"path": str(path), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        with self._lock:
            seconds = time.monotonic() - self.started_at.get(job.id, time.monotonic())
            self.seconds[job.id] = seconds
            self.state[job.id] = "done"
            self.rendered += 1
            self.manifest.end_attempt(job.id, "done")
            self.manifest.update(job.id, status="done", outputs=outputs, seconds=round(seconds, 3), reason=None,
                                 finished=now(), **facts)
        shutil.rmtree(self.parts_dir / job.id, ignore_errors=True)
        self.log(job, "done: " + ", ".join(f"{k} {v['path']}" for k, v in outputs.items()))
        shown = (outputs.get("video") or outputs.get("image") or next(iter(outputs.values())))["path"]
        self.event(f"{job.id}: done in {seconds:.1f} s -> {shown}")

    def fail(self, job: Job, reason: str, detail: str | None = None, attempt: bool = True) -> None:
        """The job cannot be rendered (a bad input or option, an error in its run): record why; no retry."""
        with self._lock:
            self.state[job.id] = "failed"
            if attempt:
                self.manifest.end_attempt(job.id, "failed", reason)
            self.manifest.update(job.id, status="failed", reason=reason, source=job.source, out=str(job.out))
        self.log(job, f"FAILED: {reason}", *([detail] if detail else []))
        self.event(f"{job.id}: FAILED - {reason}")

    def lost(self, job: Job, reason: str) -> bool:
        """The worker running ``job`` died: retry it (True) unless it has had ``max_attempts`` tries."""
        with self._lock:
            n = self.tries.get(job.id, 0)
            self.manifest.end_attempt(job.id, "worker lost", reason)
            if n < self.settings.max_attempts:
                self.state[job.id] = "pending"
                self.manifest.update(job.id, status="pending", worker=None)
                retry = True
            else:
                retry = False
        if retry:
            self.log(job, f"worker lost ({reason}); retrying on another worker")
            self.event(f"{job.id}: worker lost ({reason}); retrying (attempt {n + 1} of at most "
                       f"{self.settings.max_attempts})")
            return True
        self.fail(job, f"{reason}; gave up after {n} attempts (each time its worker died - too little memory for "
                       "this size/length? see the worker logs)", attempt=False)
        return False

    def interrupt(self, job: Job, note: str = "stopped by Ctrl-C") -> None:
        with self._lock:
            self.state[job.id] = "interrupted"
            self.manifest.end_attempt(job.id, "interrupted", note)
            self.manifest.update(job.id, status="interrupted", worker=None)
        self.log(job, f"interrupted: {note}; the next run continues it")

    def error_detail(self, exc: BaseException) -> str:
        return "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))

    # ------------------------------------------------------------------ the end
    def summary(self) -> str:
        """The closing table: one row per job (status, tries, seconds, output or reason)."""
        rows = [("job", "status", "tries", "seconds", "output / reason")]
        for job_id in self.order:
            record = self.manifest.get(job_id) or {}
            status = self.state.get(job_id, record.get("status", "?"))
            if job_id in self.skipped:
                status = "done (earlier)"
            tries = str(self.tries.get(job_id, 0))
            secs = f"{self.seconds[job_id]:.1f}" if job_id in self.seconds else "-"
            if status.startswith("done"):
                outs = record.get("outputs") or {}
                what = (outs.get("video") or outs.get("image") or next(iter(outs.values()), {})).get("path", "")
            elif status == "failed":
                what = record.get("reason") or ""
            elif status == "interrupted":
                what = f"continues next run ({record.get('segments', 0)} segments kept)"
            else:
                what = "not started (continues next run)"
            rows.append((job_id, status, tries, secs, what))
        widths = [min(max(len(r[i]) for r in rows), 40) for i in range(4)]
        lines = []
        for r in rows:
            cells = [r[i][:40].ljust(widths[i]) for i in range(4)]
            lines.append("  ".join(cells + [r[4]]))
        lines.insert(1, "  ".join("-" * w for w in widths) + "  " + "-" * 15)
        c = self.counts()
        lines.append(f"{c['done']} done ({len(self.skipped)} from earlier runs), {c['failed']} failed, "
                     f"{c['pending'] + c['running'] + c.get('interrupted', 0)} left; "
                     f"{_fmt_seconds(time.monotonic() - self.t0)} wall time. Manifest: {self.manifest.path}; "
                     f"logs: {self.logs_dir}")
        return "\n".join(lines)

    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        c = self.counts()
        return EXIT_FAILED_JOBS if c["failed"] else EXIT_OK


__all__ = ["BatchError", "BatchRun", "describe_job", "EXIT_BAD_INPUT", "EXIT_FAILED_JOBS", "EXIT_INTERRUPTED", "EXIT_OK",
           "RunSettings"]
