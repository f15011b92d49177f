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
    assert record["attempts"][0]["outcome"] == "abandoned"  # the killed run's attempt, closed by the next one
    assert report(Path(record["outputs"]["video"]["path"]))["prompt_id"] == record["attempts"][0]["prompt_id"]


def test_jobs_fill_the_shipped_workflows(tmp_path):
    """Which shipped workflow a job gets and which node inputs it sets (read from the workflow files)."""
    from unianimate_core.batch.comfy_backend import build_prompt, choose_workflow, load_workflows
    from unianimate_core.batch.errors import JobError
    from unianimate_core.batch.jobs import JobDefaults, jobs_from_file
    from unianimate_core.pipeline.runner import AnimateOptions

    still = tmp_path / "pose.png"
    still.write_bytes((DEMO / "reference.png").read_bytes())
    path = write_jobs(tmp_path, [job(0, frames=16), job(1, frames="all"), job(2, strategy="windows", frames=40,
                                                                              context_size=16, context_overlap=4),
                                 {**job(3), "driving": str(still)}, job(4, save_latent=True, fps=12)])
    jobs = jobs_from_file(path, JobDefaults(AnimateOptions(), tmp_path / "out"))
    shipped = load_workflows()
    uploads = {"reference": "unianimate_batch/r.png", "driving": "unianimate_batch/d.mp4"}
    got = {}
    for j in jobs:
        strategy, workflow = choose_workflow(shipped, j)
        got[j.id] = (strategy, build_prompt(workflow, j, uploads, strategy, f"unianimate_batch/{j.id}"))
    strategy, p = got["job0"]
    assert strategy == "short" and p["10"]["class_type"] == "UniAnimateSampler"
    assert p["4"]["inputs"]["image"] == uploads["reference"] and p["5"]["inputs"]["file"] == uploads["driving"]
    assert {k: p["10"]["inputs"][k] for k in ("width", "height", "max_frames", "seed", "steps", "noise_prior")} == \
        {"width": 64, "height": 128, "max_frames": 16, "seed": 100, "steps": 30, "noise_prior": 949}
    assert p["9"]["inputs"]["width"] == 64 and p["13"]["inputs"]["filename_prefix"] == "unianimate_batch/job0"
    assert p["10"]["inputs"]["model"] == ["2", 0]  # links untouched
    strategy, p = got["job1"]
    assert strategy == "continuation" and p["10"]["inputs"]["strategy"] == "first_frame_continuation"
    assert p["10"]["inputs"]["max_frames"] == 0 and p["10"]["inputs"]["context_size"] == 32
    assert p["10"]["inputs"]["noise_prior"] == 949
    strategy, p = got["job2"]
    assert strategy == "windows" and p["10"]["inputs"]["strategy"] == "sliding_windows"
    assert (p["10"]["inputs"]["context_size"], p["10"]["inputs"]["context_overlap"]) == (16, 4)
    assert p["10"]["inputs"]["noise_prior"] == 939
    strategy, p = got["job3"]
    assert strategy == "repose" and p["5"]["class_type"] == "LoadImage" and p["5"]["inputs"]["image"] == uploads["driving"]
    assert p["10"]["inputs"]["max_frames"] == 1
    strategy, p = got["job4"]
    latent_node = [v for v in p.values() if v["class_type"] == "SaveLatent"]
    assert latent_node == [{"class_type": "SaveLatent", "inputs": {"samples": ["10", 0],
                                                                     "filename_prefix": "unianimate_batch/job4"},
                            "_meta": {"title": "Save Latent (batch)"}}]
    assert p["12"]["inputs"]["fps"] == 12.0
    # a one-pass workflow cannot run a long-video strategy, and says which workflow to use
    custom = {"custom": shipped["short"]}
    with pytest.raises(JobError, match="strategy 'windows' needs a workflow with a UniAnimate Long Video Loop"):
        build_prompt(shipped["short"], jobs[2], uploads, *choose_workflow(custom, jobs[2])[:1], "x")
    assert choose_workflow(custom, jobs[1])[0] is None  # auto: the workflow's sampler decides
