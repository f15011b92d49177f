"""BatchRun's bookkeeping (shared by the Ray and ComfyUI back ends), driven directly: never redo a finished
job, redo when an input, option or output changed, bounded retries, kept segments, the folder lock."""
from __future__ import annotations

import hashlib
import io
import json
import subprocess
import sys

import numpy as np
import pytest

from unianimate_core.batch.errors import BatchError
from unianimate_core.batch.jobs import JobDefaults, jobs_from_file
from unianimate_core.batch.manifest import LOCK_NAME, sha256_input
from unianimate_core.batch.run import EXIT_FAILED_JOBS, EXIT_OK, BatchRun, RunSettings
from unianimate_core.pipeline.runner import AnimateOptions


@pytest.fixture
def setup(tmp_path):
    (tmp_path / "a.png").write_bytes(b"ref-a")
    (tmp_path / "clip").mkdir()
    (tmp_path / "clip" / "0.png").write_bytes(b"frame")
    (tmp_path / "jobs.jsonl").write_text(
        '{"id": "j1", "reference": "a.png", "driving": "clip"}\n'
        '{"id": "j2", "reference": "a.png", "driving": "clip", "seed": 2}\n'
        '{"id": "bad", "reference": "gone.png", "driving": "clip"}\n')
    return tmp_path


def open_run(folder, **kw) -> BatchRun:
    d = JobDefaults(AnimateOptions(), folder / "out")
    jobs = jobs_from_file(folder / "jobs.jsonl", d)
    return BatchRun(jobs, RunSettings(folder / "out", stream=io.StringIO(), **kw))


def finish_all(run: BatchRun, todo) -> None:
    for job in todo:
        run.start(job, "test worker")
        run.complete(job, {"video": f"video of {job.id}".encode(), "latent": b"L" + job.id.encode()})


def test_finished_jobs_are_never_redone_and_changes_are_noticed(setup):
    with open_run(setup) as run:
        todo = run.plan()
        assert [j.id for j in todo] == ["j1", "j2"] and run.state["bad"] == "failed"
        finish_all(run, todo)
        assert run.exit_code() == EXIT_FAILED_JOBS
        record = run.manifest.get("j1")
        video = setup / "out" / "j1.mp4"
        assert record["outputs"]["video"] == {"path": str(video), "bytes": len(b"video of j1"),
                                              "sha256": hashlib.sha256(b"video of j1").hexdigest()}
        assert video.read_bytes() == b"video of j1" and (setup / "out" / "j1.latent").read_bytes() == b"Lj1"
        assert record["inputs"]["reference"]["sha256"] == hashlib.sha256(b"ref-a").hexdigest()
        assert record["inputs"]["driving"]["sha256"] == sha256_input(setup / "clip")
        assert "reference image not found" in run.manifest.get("bad")["reason"]
        assert "bad" in run.summary() and "reference image not found" in run.summary()
    with open_run(setup) as run:
        assert run.plan() == [] and run.skipped == ["j1", "j2"]
    (setup / "out" / "j2.mp4").unlink()  # an output went missing -> only that job again
    (setup / "clip" / "0.png").write_bytes(b"other frame")  # and the driving content changed -> both
    with open_run(setup) as run:
        assert [j.id for j in run.plan()] == ["j1", "j2"]
        assert "inputs, options or model changed" in (setup / "out" / "logs" / "j1.log").read_text()
    with open_run(setup, force=True) as run:
        assert [j.id for j in run.plan()] == ["j1", "j2"]


def test_other_options_or_model_identity_change_the_key(setup):
    with open_run(setup) as run:
        finish_all(run, run.plan())
    with open_run(setup, identity={"model": "another"}) as run:
        assert [j.id for j in run.plan()] == ["j1", "j2"]


def test_a_lost_worker_retries_up_to_max_attempts_then_fails_with_the_reason(setup):
    with open_run(setup, max_attempts=2) as run:
        j1 = run.plan()[0]
        run.start(j1, "worker 1 (pid 10)")
        assert run.lost(j1, "worker 1 (pid 10) died: killed") is True and run.state["j1"] == "pending"
        run.start(j1, "worker 2 (pid 11)")
        assert run.lost(j1, "worker 2 (pid 11) died: killed") is False
        record = run.manifest.get("j1")
        assert record["status"] == "failed" and "gave up after 2 attempts" in record["reason"]
        assert [a["outcome"] for a in record["attempts"]] == ["worker lost", "worker lost"]
        assert [a["worker"] for a in record["attempts"]] == ["worker 1 (pid 10)", "worker 2 (pid 11)"]
    with open_run(setup, skip_failed=True) as run:
        assert "j1" not in [j.id for j in run.plan()]
    with open_run(setup) as run:  # by default the next run tries it again (memory may be free now)
        assert "j1" in [j.id for j in run.plan()]


def test_kept_segments_survive_for_the_same_key_only(setup):
    rng = np.arange(16, dtype=np.uint8)
    with open_run(setup) as run:
        j1 = run.plan()[0]
        run.start(j1, "w")
        for i in range(2):
            run.save_part(j1, i, np.full((1, 4, 3, 2, 2), i, np.float32), rng + i)
        run.interrupt(j1)
        assert run.manifest.get("j1")["status"] == "interrupted" and run.manifest.get("j1")["segments"] == 2
    with open_run(setup) as run:
        j1 = run.plan()[0]
        latents, state = run.load_parts(j1)
        assert [int(x[0, 0, 0, 0, 0]) for x in latents] == [0, 1] and np.array_equal(state, rng + 1)
    lines = (setup / "jobs.jsonl").read_text().replace('"id": "j1",', '"id": "j1", "seed": 9,')
    (setup / "jobs.jsonl").write_text(lines)
    with open_run(setup) as run:
        j1 = run.plan()[0]
        assert run.load_parts(j1) == ([], None)  # another seed: those segments are useless, and removed
        assert not (setup / "out" / "parts" / "j1").exists()


def test_the_output_folder_is_locked_while_a_batch_runs(setup):
    with open_run(setup):
        with pytest.raises(BatchError, match="another batch .* is working in"):
            open_run(setup)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    (setup / "out" / LOCK_NAME).write_text(f"{dead.stdout.strip()} {socket.gethostname()}")
    with open_run(setup) as run:  # a stale lock (its process is gone) is taken over
        assert run.exit_code() == EXIT_OK


def test_random_weight_outputs_carry_the_noise_suffix(setup):
    with open_run(setup, is_random=True) as run:
        j1 = run.plan()[0]
        run.start(j1, "w")
        run.complete(j1, {"video": b"v"})
        assert json.loads(run.manifest.path.read_text())["jobs"]["j1"]["outputs"]["video"]["path"].endswith(
            "j1_random-weights-noise.mp4")
