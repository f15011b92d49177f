"""The batch manifest: what was asked, what was done, what failed and why - so nothing is done twice.

``<out-dir>/manifest.json`` holds one record per job id:

* ``key`` - SHA-256 over the job's input *contents* (reference, driving clip, keypoints), its resolved
  options and the model / workflow identity. A job whose record is ``done`` with the same key and
  whose outputs are all still on disk is never rendered again; change an input, an option or the
  model and the key changes, so it is rendered again.
* ``status`` - ``pending``, ``running``, ``done``, ``failed`` (with ``reason``) or ``interrupted``.
* ``inputs`` (path + hash), ``options``, ``outputs`` (path, bytes, hash), ``seconds``,
  ``segments`` (continuation segments kept for a resume) and ``attempts``: one entry per try with
  the worker, start/end times, outcome and reason (a killed worker shows up here as a retry).

The file is rewritten atomically after every change (temporary file + rename), so a crash or Ctrl-C
leaves either the previous or the next state, never a broken file. ``<out-dir>/.batch.lock`` keeps a
second batch from working in the same folder at the same time.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import threading
from pathlib import Path
from typing import Any, Iterable

from ..paths import write_atomic
from .errors import BatchError

MANIFEST_NAME = "manifest.json"
LOCK_NAME = ".batch.lock"
VERSION = 1
_CHUNK = 1 << 20


def now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="milliseconds")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def sha256_input(path: str | Path) -> str:
    """Hash of a file's bytes, or of a folder's files (relative names + contents, sorted by name)."""
    p = Path(path)
    if p.is_file():
        return sha256_file(p)
    h = hashlib.sha256()
    for f in sorted(q for q in p.rglob("*") if q.is_file()):
        h.update(str(f.relative_to(p).as_posix()).encode() + b"\0")
        h.update(bytes.fromhex(sha256_file(f)))
    return h.hexdigest()


def job_key(inputs: dict[str, str | None], options: dict[str, Any], identity: dict[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the input hashes, the options and the model/workflow identity."""
    text = json.dumps({"inputs": inputs, "options": options, "identity": identity}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class BatchLock:
    """``<out-dir>/.batch.lock`` with the owner's pid and host; a stale lock (dead pid) is taken over."""

    def __init__(self, folder: Path) -> None:
        self.path = Path(folder) / LOCK_NAME
        self.held = False

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        me = f"{os.getpid()} {socket.gethostname()}"
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
            except FileExistsError:
                owner = self.path.read_text(errors="replace").split()
                if owner and self._alive(owner):
                    raise BatchError(f"another batch (pid {owner[0]} on {owner[1] if len(owner) > 1 else '?'}) is "
                                     f"working in {self.path.parent}; wait for it, stop it, or use another --out-dir. "
                                     f"If no batch is running, delete {self.path}.") from None
                self.path.unlink(missing_ok=True)  # stale: its process is gone
                continue
            with os.fdopen(fd, "w") as fh:
                fh.write(me)
            self.held = True
            return
        raise BatchError(f"could not take the lock {self.path}; delete it if no batch is running.")

    @staticmethod
    def _alive(owner: list[str]) -> bool:
        if len(owner) > 1 and owner[1] != socket.gethostname():
            return True  # another machine's batch: cannot check, assume alive
        try:
            os.kill(int(owner[0]), 0)
        except (ValueError, ProcessLookupError):
            return False
        except PermissionError:
            return True
        return True

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


class Manifest:
    """The records of one output folder (thread-safe; every change is saved at once)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.RLock()
        self.data: dict[str, Any] = {"version": VERSION, "jobs": {}}
        if self.path.is_file():
            try:
                data = json.loads(self.path.read_text())
            except (OSError, ValueError) as exc:
                raise BatchError(f"the manifest {self.path} is unreadable ({exc}); move it away to start the batch "
                                 "afresh (finished outputs will then be rendered again).") from exc
            if not isinstance(data, dict) or not isinstance(data.get("jobs"), dict):
                raise BatchError(f"{self.path} is not a batch manifest; use another --out-dir.")
            self.data = data

    @property
    def jobs(self) -> dict[str, dict[str, Any]]:
        return self.data["jobs"]

    def get(self, job_id: str) -> dict[str, Any] | None:
        return self.jobs.get(job_id)

    def update(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Set ``fields`` on the job's record (created when new) and save."""
        with self._lock:
            record = self.jobs.setdefault(job_id, {"status": "pending", "attempts": []})
            record.update(fields)
            record["updated"] = now()
            self.save()
            return record

    def add_attempt(self, job_id: str, **fields: Any) -> dict[str, Any]:
        """Open a new attempt; one left open by a batch process that ended is closed as ``abandoned`` first."""
        with self._lock:
            record = self.jobs.setdefault(job_id, {"status": "pending", "attempts": []})
            attempts = record.setdefault("attempts", [])
            if attempts and "ended" not in attempts[-1]:
                attempts[-1].update(ended=now(), outcome="abandoned",
                                    reason="the batch process ended while the job ran (crash or kill)")
            attempt = {"started": now(), **fields}
            attempts.append(attempt)
            self.save()
            return attempt

    def end_attempt(self, job_id: str, outcome: str, reason: str | None = None, **extra: Any) -> None:
        with self._lock:
            attempts = self.jobs.get(job_id, {}).get("attempts") or []
            if attempts and "ended" not in attempts[-1]:
                attempts[-1].update(ended=now(), outcome=outcome, **({"reason": reason} if reason else {}), **extra)
                self.save()

    def save(self) -> None:
        with self._lock:
            write_atomic(self.path, (json.dumps(self.data, indent=1, sort_keys=True) + "\n").encode())

    def finished(self, job_id: str, key: str) -> tuple[bool, str | None]:
        """(True, None) when the job is done with this key and its outputs are intact; else (False, why it reruns)."""
        record = self.get(job_id)
        if record is None or record.get("status") != "done":
            return False, None
        if record.get("key") != key:
            return False, "its inputs, options or model changed since it was rendered"
        for name, out in (record.get("outputs") or {}).items():
            p = Path(out["path"])
            if not p.is_file() or p.stat().st_size != out.get("bytes"):
                return False, f"its {name} output {p} is missing or changed"
        return True, None

    def counts(self, ids: Iterable[str]) -> dict[str, int]:
        out: dict[str, int] = {}
        for i in ids:
            status = (self.get(i) or {}).get("status", "pending")
            out[status] = out.get(status, 0) + 1
        return out


__all__ = ["BatchLock", "LOCK_NAME", "MANIFEST_NAME", "Manifest", "job_key", "now", "sha256_file", "sha256_input"]
