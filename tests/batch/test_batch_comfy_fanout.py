"""The ComfyUI fan-out against the fake server (tests/batch/fake_comfy.py): jobs reach the servers with their
own inputs and options, a server that dies loses its job to another, node errors and refused prompts fail the
job alone with ComfyUI's message, and a second run does no work."""
from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fake_comfy import FakeComfy
from unianimate_core.batch.comfy_client import ComfyClient, PromptRejected, ServerUnavailable
from unianimate_core.pipeline.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "demo"


@pytest.fixture
def servers():
    made: list[FakeComfy] = []

    def make(**kw) -> FakeComfy:
        made.append(FakeComfy(**kw))
        return made[-1]

    yield make
    for s in made:
        if s.alive:
            s.kill()


def write_jobs(folder: Path, jobs: list[dict]) -> Path:
    path = folder / "jobs.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    return path


def job(i: int, **extra) -> dict:
    return {"id": f"job{i}", "reference": str(DEMO / "reference.png"), "driving": str(DEMO / "driving.mp4"),
            "seed": 100 + i, "width": 64 * (1 + i % 2), "height": 128, "frames": 4, **extra}


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def report(path: Path) -> dict:
    text = path.read_bytes()
    return json.loads(text[:text.rindex(b"}") + 1])


def test_client_upload_queue_history_view_and_errors(servers):
    fake = servers(delay=0.05)
    client = ComfyClient(fake.url)
    assert "UniAnimateSampler" in client.object_info("UniAnimateSampler")
    name = client.upload("ref.png", b"abc", subfolder="sub")
    assert name == "sub/ref.png" and client.upload("ref.png", b"abc", subfolder="sub") == "sub/ref.png"
    assert client.upload("ref.png", b"xyz", subfolder="sub") == "sub/ref (1).png"  # ComfyUI's rename rule
    prompt = {"4": {"class_type": "LoadImage", "inputs": {"image": name}},
              "10": {"class_type": "UniAnimateSampler", "inputs": {"reference_image": ["4", 0], "width": 100, "seed": 1}}}
    with pytest.raises(PromptRejected, match=r"UniAnimateSampler \(node 10\) input width: width = 100 is not a multiple"):
        client.queue_prompt(prompt)
    prompt["10"]["inputs"]["width"] = 64
    prompt["13"] = {"class_type": "SaveVideo", "inputs": {"video": ["10", 0], "filename_prefix": "a/b"}}
    pid = client.queue_prompt(prompt, "my-id")
    assert pid == "my-id"
    for _ in range(200):
        if (entry := client.history(pid)) is not None:
            break
        time.sleep(0.02)
    files = entry["outputs"]["13"]["images"]
    assert json.loads(client.view(files[0]["filename"], files[0]["subfolder"])[:-len(b"SaveVideo")])["sampler"]["seed"] == 1
    fake.kill()
    with pytest.raises(ServerUnavailable, match="cannot reach"):
        client.history(pid)


def test_fanout_over_two_servers_with_a_dying_server_and_bad_jobs(tmp_path, servers, capsys):
    a, b = servers(delay=1.0), servers(delay=0.2)
    jobs = [job(i) for i in range(5)]
    jobs.append(job(5, seed=666))                      # a node error on the server
    jobs.append(job(6, width=100))                     # refused by the server's validation
    jobs.append(job(7, pose_backend="keypoints"))      # not available on ComfyUI: fails before any upload
    jobs.append(job(8, reference=str(tmp_path / "gone.png")))
    jobs.append(job(9, save_latent=True))
    path = write_jobs(tmp_path, jobs)

    killer = threading.Thread(target=lambda: (a.started.wait(30), time.sleep(0.2), a.kill()), daemon=True)
    killer.start()
    rc = main(["batch", str(path), "--comfy", a.url, "--comfy", b.url, "--jobs-per-server", "1", "--quiet"])
    killer.join()
    out = capsys.readouterr()
    assert rc == 1, out.err[-3000:]
    manifest = json.loads((tmp_path / "jobs_out" / "manifest.json").read_text())["jobs"]
    done = sorted(k for k, v in manifest.items() if v["status"] == "done")
    assert done == ["job0", "job1", "job2", "job3", "job4", "job9"]
    ref_sha, drv_sha = sha(DEMO / "reference.png"), sha(DEMO / "driving.mp4")
    for job_id in done:
        i = int(job_id[3:])
        video = Path(manifest[job_id]["outputs"]["video"]["path"])
        assert video == tmp_path / "jobs_out" / f"{job_id}.mp4" and video.is_file()
        got = report(video)
        assert got["sampler"]["seed"] == 100 + i and got["sampler"]["width"] == 64 * (1 + i % 2)
        assert got["sampler"]["max_frames"] == 4 and got["sampler"]["noise_prior"] == 949
        assert sorted(got["loaded"].values()) == sorted([ref_sha, drv_sha])
        assert manifest[job_id]["attempts"][-1]["prompt_id"] == got["prompt_id"]
    assert report(Path(manifest["job9"]["outputs"]["latent"]["path"]))["sampler"]["seed"] == 109
    # the job running on the killed server was retried on the other one, and the manifest says so
    retried = [k for k, v in manifest.items() if len(v["attempts"]) > 1]
    assert retried, manifest
    first = manifest[retried[0]]["attempts"][0]
    assert first["outcome"] == "worker lost" and a.url in first["reason"] and first["server"] == a.url
    assert manifest[retried[0]]["attempts"][-1]["server"] == b.url
    reasons = {k: manifest[k]["reason"] for k in ("job5", "job6", "job7", "job8")}
    assert "UniAnimateSampler (node 10) failed: boom: the fake refuses seed 666" in reasons["job5"]
    assert "width = 100 is not a multiple of 64" in reasons["job6"]
    assert "pose_backend = 'keypoints' is not available with --comfy" in reasons["job7"]
    assert "reference image not found" in reasons["job8"] and "gone.png" in reasons["job8"]
    assert "job5" in out.out and "boom" in out.out  # the summary table names the reason

    # a second run renders nothing: the finished jobs are skipped, the failed ones fail again at once or on b
    executed = len(b.executed)
    rc = main(["batch", str(path), "--comfy", b.url, "--quiet", "--skip-failed"])
    assert rc == 1 and len(b.executed) == executed
    again = json.loads((tmp_path / "jobs_out" / "manifest.json").read_text())["jobs"]
    assert all(again[k]["attempts"] == manifest[k]["attempts"] for k in done)


def test_a_prompt_queued_before_a_crash_is_collected_not_queued_again(tmp_path, servers):
    """The driver is killed (SIGKILL) after queueing; the next run finds the prompt on the server (still running,
    then in its history) and takes its files instead of queueing it again."""
    fake = servers(delay=3.0)
    path = write_jobs(tmp_path, [job(0)])
    proc = subprocess.Popen([sys.executable, "-m", "unianimate_core", "batch", str(path), "--comfy", fake.url,
                             "--quiet"], cwd=str(REPO), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert fake.started.wait(120), "the driver never queued the job"
    finally:
        proc.kill()
        proc.wait()
    record = json.loads((tmp_path / "jobs_out" / "manifest.json").read_text())["jobs"]["job0"]
    assert record["status"] == "running" and record["attempts"][-1]["prompt_id"] in fake.prompts
    assert main(["batch", str(path), "--comfy", fake.url, "--quiet"]) == 0  # takes over the stale lock, too
    assert len(fake.prompts) == 1 and len(fake.executed) == 1  # collected, not queued again
    record = json.loads((tmp_path / "jobs_out" / "manifest.json").read_text())["jobs"]["job0"]
    assert record["status"] == "done" and record["attempts"][-1].get("adopted") is True
    assert report(Path(record["outputs"]["video"]["path"]))["prompt_id"] == record["attempts"][0]["prompt_id"]
