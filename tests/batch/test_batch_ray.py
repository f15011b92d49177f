"""The batch proof on a local Ray (CPU, tiny random-weight model, 2 workers), as the user runs it
(``python -m unianimate_core batch``, a separate process):

* 6 jobs finish; every latent equals the single-process command line's for the same options and seed;
* a worker SIGKILLed in the middle of a continuation job: still 6 outputs, the retry is in the manifest and
  the retried job resumed from its kept segment (and still equals the command line's latent);
* running the batch again does no work (no Ray started, no file touched);
* a job with a missing reference is reported with the path, the other 5 finish.

Tolerance of the latent comparison: both sides run the same float32 code on this machine, with the same
CPU kernels and one torch thread (the command line's rule for the tiny model, which the renderers follow),
so the results are expected to be bit-identical (observed: 0.0). The bound, 1e-5 absolute on latents of
magnitude ~5 (about 20 float32 ulps there), leaves room only for a stray reordering between processes; it
is 12x below what the thread count alone changes (2 threads instead of 1, measured: 1.2e-4 on a 4-frame
short job, 0.39 on a 5-segment continuation job, whose hand-over through a decoded frame amplifies
rounding) and nearly 6 orders below another seed (6.5) - so the test also catches a renderer that does
not pin the command line's thread count or resumes from the wrong generator state.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch

pytest.importorskip("ray")

from unianimate_core.pipeline.cli import main  # noqa: E402
from unianimate_core.pipeline.latent_file import load_latent  # noqa: E402
from unianimate_core.pipeline.video import probe_video  # noqa: E402

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"
TOL = 1e-5
COMMON = {"width": 64, "height": 64, "steps": 4, "pose_backend": "keypoints", "preview": False,
          "keypoints": str(DEMO / "driving_keypoints.json"), "save_latent": True}
JOBS = [
    {"id": "short1", "frames": 4, "seed": 1, "preview": True},
    {"id": "short2", "frames": 4, "seed": 2, "mode": "first_frame"},
    {"id": "windows", "frames": 6, "seed": 3, "strategy": "windows", "context_size": 4, "context_overlap": 2},
    {"id": "cont_long", "frames": 13, "seed": 4, "strategy": "continuation", "segment_length": 3},
    {"id": "cont", "frames": 7, "seed": 5, "strategy": "continuation", "segment_length": 3},
    {"id": "short3", "frames": 3, "seed": 6, "mode": "both"},
]
RAY_ARGS = ["--random-weights", "--workers", "2", "--num-cpus", "3", "--object-store-mb", "100", "--quiet"]


def write_jobs(folder: Path, jobs: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    lines = [{"defaults": COMMON}] + [{"reference": str(DEMO / "reference.png"), "driving": str(DEMO / "driving.mp4"),
                                       **j} for j in jobs]
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(x) + "\n" for x in lines))
    return path


def batch(path: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "unianimate_core", "batch", str(path), *RAY_ARGS, *extra],
                            cwd=str(REPO), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def manifest(out: Path) -> dict:
    try:
        return json.loads((out / "manifest.json").read_text())["jobs"]
    except (OSError, ValueError):
        return {}


def cli_latent(tmp: Path, job: dict) -> torch.Tensor:
    o = {**COMMON, "strategy": "auto", "mode": "standard", "segment_length": 32, "context_size": 32,
         "context_overlap": 8, **job}
    out = tmp / f"cli_{job['id']}.mp4"
    assert main(["animate", "--ref", str(DEMO / "reference.png"), "--driving", str(DEMO / "driving.mp4"),
                 "--keypoints", o["keypoints"], "--pose-backend", "keypoints", "--random-weights", "--out", str(out),
                 "--width", "64", "--height", "64", "--steps", str(o["steps"]), "--frames", str(o["frames"]), "--seed",
                 str(o["seed"]), "--long", o["strategy"], "--segment-length", str(o["segment_length"]),
                 "--context-size", str(o["context_size"]), "--context-overlap", str(o["context_overlap"]),
                 "--mode", o["mode"], "--no-preview", "--save-latent", "--quiet"]) == 0
    return load_latent(out.with_name(out.stem + "_random-weights-noise.latent"))


def test_six_jobs_two_workers_a_killed_worker_and_a_rerun(tmp_path):
    path = write_jobs(tmp_path, JOBS)
    out = tmp_path / "jobs_out"
    proc = batch(path)
    killed = None
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        record = manifest(out).get("cont_long", {})
        if killed is None and record.get("status") == "running" and record.get("segments", 0) >= 1:
            killed = record["attempts"][-1]["pid"]
            os.kill(killed, signal.SIGKILL)  # the renderer process, in the middle of the job
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr[-4000:] + stdout[-2000:]
    assert killed is not None, "the continuation job finished before it could be killed"

    jobs = manifest(out)
    assert sorted(k for k, v in jobs.items() if v["status"] == "done") == sorted(j["id"] for j in JOBS)
    attempts = jobs["cont_long"]["attempts"]
    assert len(attempts) == 2 and attempts[0]["outcome"] == "worker lost" and attempts[0]["pid"] == killed
    assert f"pid {killed}" in attempts[0]["reason"] and "died" in attempts[0]["reason"]
    assert attempts[1]["resumed_segments"] >= 1 and attempts[1]["pid"] != killed
    assert all(len(jobs[j["id"]]["attempts"]) == 1 for j in JOBS if j["id"] != "cont_long")
    assert "worker lost" in (out / "logs" / "cont_long.log").read_text()

    for job in JOBS:
        outputs = jobs[job["id"]]["outputs"]
        video = Path(outputs["video"]["path"])
        assert video == out / f"{job['id']}_random-weights-noise.mp4"
        assert probe_video(video) == (job["frames"], 64, 64)
        latent = load_latent(outputs["latent"]["path"])
        expected = cli_latent(tmp_path, job)
        assert latent.shape == expected.shape == (1, 4, job["frames"], 8, 8)
        diff = float((latent - expected).abs().max())
        assert diff <= TOL, (job["id"], diff)
    assert set(jobs["short1"]["outputs"]) == {"video", "latent", "preview", "still"}
    assert "short1" in stdout and "done" in stdout  # the summary table

    # again: nothing to do, nothing touched, no Ray started
    stamps = {p: p.stat().st_mtime_ns for p in out.glob("*.*") if p.suffix in (".mp4", ".latent", ".png")}
    again = batch(path)
    stdout2, stderr2 = again.communicate(timeout=300)
    assert again.returncode == 0, stderr2[-3000:]
    assert "nothing to do: every job is done" in stderr2 and "worker(s) starting" not in stderr2
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert all(manifest(out)[k]["attempts"] == v["attempts"] for k, v in jobs.items())


def test_a_missing_reference_is_reported_and_the_other_five_finish(tmp_path):
    """...and so are a reference without a person (found by its pose task on a worker) and a bad option."""
    small = [{"id": f"j{i}", "frames": 3, "seed": 10 + i, "steps": 2} for i in range(5)]
    missing = tmp_path / "nowhere" / "missing.png"
    keypoints = json.loads((DEMO / "driving_keypoints.json").read_text())
    keypoints["reference"]["scores"] = [0.0] * len(keypoints["reference"]["scores"])
    (tmp_path / "nobody.json").write_text(json.dumps(keypoints))
    path = write_jobs(tmp_path, small + [{"id": "lost", "frames": 3, "reference": str(missing)},
                                         {"id": "nobody", "frames": 3, "keypoints": str(tmp_path / "nobody.json")},
                                         {"id": "typo", "frames": 3, "guidence": 3.0}])
    proc = batch(path)
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 1, stderr[-4000:]
    jobs = manifest(tmp_path / "jobs_out")
    assert sorted(k for k, v in jobs.items() if v["status"] == "done") == [f"j{i}" for i in range(5)]
    assert jobs["lost"]["status"] == "failed"
    assert jobs["lost"]["reason"] == f"reference image not found: {missing}"
    assert "lost" in stdout and f"reference image not found: {missing}" in stdout
    assert jobs["nobody"]["status"] == "failed" and "no person" in jobs["nobody"]["reason"]
    assert jobs["typo"]["status"] == "failed" and "unknown field 'guidence' (did you mean 'guidance'?" in \
        jobs["typo"]["reason"]
    assert "no person" in (tmp_path / "jobs_out" / "logs" / "nobody.log").read_text()

    # --dry-run says what a run would do, and changes nothing
    before = (tmp_path / "jobs_out" / "manifest.json").read_bytes()
    dry = subprocess.run([sys.executable, "-m", "unianimate_core", "batch", str(path), "--random-weights",
                          "--dry-run"], cwd=str(REPO), capture_output=True, text=True, timeout=300)
    assert dry.returncode == 0, dry.stderr
    lines = dict(line.split(": ", 1) for line in dry.stdout.splitlines())
    assert all(lines[f"j{i}"].startswith("done earlier, skipped") for i in range(5))
    assert lines["lost"].startswith("FAILS - reference image not found") and lines["nobody"].startswith("renders")
    assert (tmp_path / "jobs_out" / "manifest.json").read_bytes() == before


def test_ctrl_c_stops_cleanly_and_the_next_run_continues_from_the_kept_segments(tmp_path):
    job = {"id": "cont", "frames": 13, "seed": 7, "strategy": "continuation", "segment_length": 3, "steps": 6}
    path = write_jobs(tmp_path, [job, {"id": "later", "frames": 3, "seed": 8}])
    out = tmp_path / "jobs_out"
    proc = batch(path, "--workers", "1")
    deadline = time.monotonic() + 600
    while proc.poll() is None and time.monotonic() < deadline:
        if (out / "parts" / "cont" / "segment_001.safetensors").is_file():
            proc.send_signal(signal.SIGINT)  # Ctrl-C
            break
        time.sleep(0.05)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stderr[-4000:]
    jobs = manifest(out)
    assert jobs["cont"]["status"] == "interrupted" and jobs["cont"]["segments"] >= 2
    assert jobs["cont"]["attempts"][0]["outcome"] == "interrupted"
    assert not list(out.glob("cont*.mp4")) and not list(out.rglob("*.part"))  # nothing half-written
    assert "continues next run" in stdout

    again = batch(path, "--workers", "1")
    stdout, stderr = again.communicate(timeout=600)
    assert again.returncode == 0, stderr[-4000:]
    jobs = manifest(out)
    assert jobs["cont"]["status"] == jobs["later"]["status"] == "done"
    assert jobs["cont"]["attempts"][1]["resumed_segments"] >= 2
    latent = load_latent(jobs["cont"]["outputs"]["latent"]["path"])
    expected = cli_latent(tmp_path, {**job, "steps": 6})
    assert float((latent - expected).abs().max()) <= TOL


def test_an_existing_cluster_by_address(tmp_path):
    """`--address` joins a Ray started separately (`ray start --head`, here in the foreground and without token
    authentication, stopped at the end by a signal to that process only); the driver runs outside the
    repository, so the workers get the package the batch ships to the cluster."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled"}
    ray_tmp = tempfile.mkdtemp(prefix="uab")  # its own short temp dir (Unix socket paths are short), removed below
    head = subprocess.Popen([str(Path(sys.executable).with_name("ray")), "start", "--head", "--block", "--port",
                             str(port), "--num-cpus", "3", "--include-dashboard", "false", "--disable-usage-stats",
                             "--object-store-memory", "100000000", "--node-ip-address", "127.0.0.1",
                             "--temp-dir", ray_tmp],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and head.poll() is None, "the Ray head did not start"
                time.sleep(0.5)
        jobs = [{"id": "s", "frames": 4, "seed": 21}, {"id": "c", "frames": 7, "seed": 22, "strategy": "continuation",
                                                         "segment_length": 3}]
        path = write_jobs(tmp_path, jobs)
        proc = subprocess.run([sys.executable, "-m", "unianimate_core", "batch", str(path), "--random-weights",
                               "--workers", "2", "--address", f"127.0.0.1:{port}", "--quiet"],
                              cwd=str(tmp_path), env={**env, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                              timeout=600)
        assert proc.returncode == 0, proc.stderr[-4000:]
    finally:
        head.terminate()
        try:
            head.wait(timeout=90)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)
            head.wait()
        shutil.rmtree(ray_tmp, ignore_errors=True)
    records = manifest(tmp_path / "jobs_out")
    for job in jobs:
        assert records[job["id"]]["status"] == "done"
        latent = load_latent(records[job["id"]]["outputs"]["latent"]["path"])
        assert float((latent - cli_latent(tmp_path, job)).abs().max()) <= TOL
