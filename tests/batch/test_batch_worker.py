"""The worker side of a batch without Ray: the pose stage and the renderer (tiny random-weight model).

The independent source is the command line: ``python -m unianimate_core animate`` in this process gives the
latent the renderer must reproduce (same code path, same thread count: expected bit for bit)."""
from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

from unianimate_core.batch.worker import (
    InputFile, ModelSpec, PoseRequest, RenderRequest, Renderer, Resume, read_input, run_pose_stage,
)
from unianimate_core.errors import UniAnimateError
from unianimate_core.pipeline.cli import main
from unianimate_core.pipeline.latent_file import load_latent
from unianimate_core.pipeline.runner import AnimateOptions
from unianimate_core.pipeline.video import probe_video, read_clip

DEMO = Path(__file__).resolve().parents[2] / "demo"
SMALL = dict(width=64, height=64, steps=3, pose_backend="keypoints", preview=False)


@pytest.fixture(scope="module")
def renderer():
    return Renderer(ModelSpec(random_weights=True))


def poses_for(options: AnimateOptions, keypoints: Path = DEMO / "driving_keypoints.json", reference=None):
    meta, result = run_pose_stage(PoseRequest("t", InputFile.read(reference or DEMO / "reference.png"),
                                              read_input(DEMO / "driving.mp4"), dataclasses.asdict(options),
                                              InputFile.read(keypoints)))
    return meta, result


def render(renderer: Renderer, options: AnimateOptions, resume=None, save_latent=True, stop_after=None):
    _, poses = poses_for(options)
    info = renderer.begin(RenderRequest("t", dataclasses.asdict(options), save_latent), poses, resume)
    parts = []
    while (part := renderer.next_part()) is not None:
        parts.append(part)
        if stop_after is not None and len(parts) == stop_after:
            return info, parts, None
    return info, parts, renderer.finish()


def cli_latent(tmp_path: Path, options: AnimateOptions) -> torch.Tensor:
    args = ["animate", "--ref", str(DEMO / "reference.png"), "--driving", str(DEMO / "driving.mp4"),
            "--keypoints", str(DEMO / "driving_keypoints.json"), "--pose-backend", "keypoints", "--random-weights",
            "--out", str(tmp_path / "cli.mp4"), "--width", str(options.width), "--height", str(options.height),
            "--frames", str(options.frames), "--steps", str(options.steps), "--seed", str(options.seed),
            "--long", options.strategy, "--segment-length", str(options.segment_length),
            "--context-size", str(options.context_size), "--context-overlap", str(options.context_overlap),
            "--mode", options.mode, "--no-preview", "--save-latent", "--quiet"]
    assert main(args) == 0
    return load_latent(tmp_path / "cli_random-weights-noise.latent")


@pytest.mark.parametrize("opts", [
    dict(frames=4, seed=5, strategy="short"),
    dict(frames=6, seed=6, strategy="windows", context_size=4, context_overlap=2, mode="both"),
    dict(frames=7, seed=7, strategy="continuation", segment_length=3),
])
def test_renderer_latent_equals_the_command_line(tmp_path, renderer, opts):
    options = AnimateOptions(**{**SMALL, **opts})
    info, parts, out = render(renderer, options)
    assert info["strategy"] == opts["strategy"] and info["frames"] == opts["frames"]
    latent = load_latent_bytes(tmp_path, out["files"]["latent"])
    expected = cli_latent(tmp_path, options)
    assert latent.shape == expected.shape == (1, 4, opts["frames"], 8, 8)
    # same code, same process, one thread: identical (see docs/batch.md for the cross-process tolerance)
    assert torch.equal(latent, expected)
    video = tmp_path / "batch.mp4"
    video.write_bytes(out["files"]["video"])
    assert probe_video(video) == (opts["frames"], 64, 64)
    assert set(out["files"]) == {"video", "latent"}  # preview off


def load_latent_bytes(tmp_path: Path, data: bytes) -> torch.Tensor:
    f = tmp_path / "batch.latent"
    f.write_bytes(data)
    return load_latent(f)


def test_continuation_resumes_from_kept_segments(tmp_path, renderer):
    """Kept segments + the generator state of the first attempt -> a second renderer ("another worker")
    samples only the remaining segments, and the video's latent equals the uninterrupted one."""
    options = AnimateOptions(**SMALL, frames=9, seed=3, strategy="continuation", segment_length=3)
    _, full_parts, full = render(renderer, options)
    assert [p["index"] for p in full_parts] == [0, 1, 2, 3]
    _, kept, _ = render(renderer, options, stop_after=2)  # the worker "dies" after two segments
    other = Renderer(ModelSpec(random_weights=True))
    resume = Resume(tuple(p["latent"] for p in kept), kept[-1]["rng_state"])
    info, rest, out = render(other, options, resume=resume)
    assert info["resumed"] == 2 and [p["index"] for p in rest] == [2, 3]
    for a, b in zip(rest, full_parts[2:]):
        assert np.array_equal(a["latent"], b["latent"])
    assert out["files"]["latent"] == full["files"]["latent"]
    # the video: same frames (H.264 bytes are not stable across encoder runs, so compare decoded frames)
    (tmp_path / "a.mp4").write_bytes(out["files"]["video"])
    (tmp_path / "b.mp4").write_bytes(full["files"]["video"])
    a, b = read_clip(tmp_path / "a.mp4").frames, read_clip(tmp_path / "b.mp4").frames
    assert len(a) == len(b) == 9
    assert max(np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b)) < 1.0


def test_stop_ends_the_part_at_the_next_step(renderer):
    options = AnimateOptions(**{**SMALL, "steps": 6}, frames=4, strategy="short")
    _, poses = poses_for(options)
    calls = []
    unet = renderer.unet

    def slow(*args, **kwargs):  # stop arrives from the other thread during the first model call
        calls.append(1)
        if len(calls) == 1:
            threading.Thread(target=renderer.stop).start()
            threading.Event().wait(0.2)
        return unet(*args, **kwargs)

    renderer.unet = slow
    try:
        renderer.begin(RenderRequest("t", dataclasses.asdict(options)), poses)
        out = renderer.next_part()
    finally:
        renderer.unet = unet
    assert out["cancelled"] and "cancelled after 1 of 7" in out["log"][-1]
    assert renderer.progress()["done"] == 1


def test_a_resume_for_a_one_part_strategy_is_refused(renderer):
    options = AnimateOptions(**SMALL, frames=4, strategy="short")
    _, poses = poses_for(options)
    with pytest.raises(UniAnimateError, match="only resume a continuation job"):
        renderer.begin(RenderRequest("t", dataclasses.asdict(options)), poses,
                       Resume((np.zeros((1, 4, 4, 8, 8), np.float32),), torch.Generator().get_state().numpy()))


def test_bad_size_for_the_model_is_named(renderer):
    options = AnimateOptions(**{**SMALL, "width": 60}, frames=4)
    meta, poses = poses_for(AnimateOptions(**SMALL, frames=4))
    with pytest.raises(UniAnimateError, match="width"):
        renderer.begin(RenderRequest("t", dataclasses.asdict(options)), poses)


def test_pose_stage_names_what_is_wrong(tmp_path):
    data = json.loads((DEMO / "driving_keypoints.json").read_text())
    data["reference"]["scores"] = [0.0] * len(data["reference"]["scores"])
    nobody = tmp_path / "nobody.json"
    nobody.write_text(json.dumps(data))
    meta, result = poses_for(AnimateOptions(**SMALL, frames=4), keypoints=nobody)
    assert result is None and "no person" in meta["error"] and "reference" in meta["error"]

    short = dict(data, driving=data["driving"][:2])
    short["reference"] = json.loads((DEMO / "driving_keypoints.json").read_text())["reference"]
    few = tmp_path / "few.json"
    few.write_text(json.dumps(short))
    meta, result = poses_for(AnimateOptions(**SMALL, frames=4), keypoints=few)
    assert result is None and "has keypoints for 2 frames" in meta["error"]

    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    meta, result = poses_for(AnimateOptions(**SMALL, frames=4), reference=broken)
    assert result is None and "could not read the image" in meta["error"]

    meta, result = poses_for(AnimateOptions(**SMALL, frames=4))
    assert meta["error"] is None and result.poses.shape == (4, 64, 64, 3) and result.poses.dtype == np.uint8
    assert meta["backend"] == "keypoints" and result.fps > 0
