"""The batch's ComfyUI fan-out against a real ComfyUI server (skipped unless COMFYUI_PATH is set).

The batch uploads its own inputs (into input/unianimate_batch/, loaded from that subfolder by Load Image and
Load Video), fills the shipped short-clip workflow (made tiny as in test_comfy_host.py and passed as
--workflow, since the server has the tiny test models under other names), queues it under its own prompt
ids, downloads the saved video and latent, fails a bad job alone, and does no work on a second run.
Also checks the fake server of tests/batch against this one where the client relies on them agreeing.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

from test_comfy_host import WORKFLOWS, for_test_host, make_inputs
from unianimate_core.batch.comfy_client import ComfyClient, PromptRejected
from unianimate_core.pipeline.cli import main
from unianimate_core.pipeline.latent_file import load_latent


@pytest.fixture(scope="module")
def batch_inputs(comfy_server, test_models, tmp_path_factory):
    make_inputs(comfy_server)
    folder = tmp_path_factory.mktemp("batch_inputs")
    shutil.copyfile(comfy_server.input / "reference.png", folder / "reference.png")
    shutil.copyfile(comfy_server.input / "driving.mp4", folder / "driving.mp4")
    api = json.loads((WORKFLOWS / "api" / "1 - Short clip.json").read_text())
    (folder / "workflow.json").write_text(json.dumps(for_test_host(api, test_models, "batch")))
    return folder


@pytest.mark.slow
def test_batch_on_a_real_comfyui(comfy_server, batch_inputs, tmp_path):
    common = {"reference": str(batch_inputs / "reference.png"), "driving": str(batch_inputs / "driving.mp4"),
              "width": 64, "height": 64, "steps": 2, "frames": 3, "frame_interval": 1, "save_latent": True}
    jobs = [{"id": "one", "seed": 1, **common}, {"id": "two", "seed": 2, **common},
            {**common, "id": "lost", "reference": str(tmp_path / "missing.png")}]
    path = tmp_path / "jobs.jsonl"
    path.write_text("".join(json.dumps(j) + "\n" for j in jobs))
    args = ["batch", str(path), "--comfy", comfy_server.url, "--workflow", str(batch_inputs / "workflow.json"),
            "--quiet"]
    assert main(args) == 1
    manifest = json.loads((tmp_path / "jobs_out" / "manifest.json").read_text())["jobs"]
    assert manifest["lost"]["status"] == "failed" and "reference image not found" in manifest["lost"]["reason"]
    import av

    latents = {}
    for job_id in ("one", "two"):
        record = manifest[job_id]
        assert record["status"] == "done", record
        video = Path(record["outputs"]["video"]["path"])
        assert video == tmp_path / "jobs_out" / f"{job_id}.mp4"
        with av.open(str(video)) as container:
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(frames) == 3 and frames[0].shape == (64, 64, 3)
        latents[job_id] = load_latent(record["outputs"]["latent"]["path"])
        assert latents[job_id].shape == (1, 4, 3, 8, 8) and bool(torch.isfinite(latents[job_id]).all())
        prompt_id = record["attempts"][-1]["prompt_id"]
        entry = comfy_server.get(f"/history/{prompt_id}")[prompt_id]
        sampler = next(n for n in entry["prompt"][2].values() if n["class_type"] == "UniAnimateSampler")
        assert sampler["inputs"]["seed"] == record["options"]["seed"] and sampler["inputs"]["max_frames"] == 3
    assert not torch.equal(latents["one"], latents["two"])  # the seeds reached the server
    assert sorted(p.name for p in (comfy_server.input / "unianimate_batch").iterdir())  # our uploads, in a subfolder

    history = len(comfy_server.get("/history"))
    assert main(args + ["--skip-failed"]) == 1  # nothing queued again
    assert len(comfy_server.get("/history")) == history


def test_the_fake_server_answers_like_the_real_one(comfy_server, batch_inputs):
    """What the batch client relies on: upload answers (reuse of identical bytes, renaming of different ones),
    a refused prompt's node_errors, and the /queue layout - the fake in tests/batch behaves the same."""
    client = ComfyClient(comfy_server.url)
    data = (batch_inputs / "reference.png").read_bytes()
    first = client.upload("fake_check.png", data, subfolder="unianimate_batch_check")
    assert first == "unianimate_batch_check/fake_check.png"
    assert client.upload("fake_check.png", data, subfolder="unianimate_batch_check") == first
    assert client.upload("fake_check.png", data + b"x", subfolder="unianimate_batch_check") == \
        "unianimate_batch_check/fake_check (1).png"
    prompt = json.loads((batch_inputs / "workflow.json").read_text())
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "UniAnimateSampler")
    prompt[sampler]["inputs"]["width"] = 100
    with pytest.raises(PromptRejected, match=rf"UniAnimateSampler \(node {sampler}\) input width: .*width = 100 is "
                                             r"not a multiple of 64"):
        client.queue_prompt(prompt)
    running, pending = client.queue()
    assert isinstance(running, list) and isinstance(pending, list)
