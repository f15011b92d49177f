"""Data preparation: discovery, exact crop/letterbox geometry, caching, and bad videos reported, not crashed."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from unianimate_core.pose.fitting import fit_frame
from unianimate_core.pose.keypoints import Person, PoseFrame
from unianimate_core.train.data import Geometry, discover_videos, fit_image, prepare_data
from unianimate_core.train.encoders import build_encoders
from unianimate_core.train.errors import DataError
from tests.train.synth import make_video

GEO = Geometry(64, 64, "crop", 1, 0, 4)


def _encoders(cache: Path, seed: int = 0):
    from unianimate_core.train.config import EncodersConfig

    return build_encoders(EncodersConfig(kind="tiny", seed=seed), torch.device("cpu"), cache)


@pytest.mark.parametrize("mode", ["crop", "pad", "stretch"])
@pytest.mark.parametrize("src", [(160, 90), (90, 160), (64, 64)])
def test_fit_image_puts_a_pixel_where_fit_frame_puts_its_keypoint(mode, src):
    """Independent source: the pose fitting of unianimate_core.pose (exact geometry). A bright 3x3 dot
    drawn at source pixel centres must land within half a pixel (+ resampling blur) of the fitted keypoint."""
    sw, sh = src
    for fx, fy in ((0.3, 0.4), (0.62, 0.55)):
        img = np.zeros((sh, sw, 3), np.uint8)
        cx, cy = int(fx * sw), int(fy * sh)
        img[cy - 1:cy + 2, cx - 1:cx + 2] = 255
        out = fit_image(img, 48, 64, mode)
        assert out.shape == (64, 48, 3)
        kp = np.zeros((134, 2))
        kp[0] = ((cx + 0.5) / sw, (cy + 0.5) / sh)
        sc = np.zeros(134)
        sc[0] = 1
        fitted = fit_frame(PoseFrame(sw, sh, [Person(kp, sc)]), 48, 64, mode).people[0].keypoints[0]
        expect = fitted * np.array([48, 64])
        weights = out[..., 0].astype(float)
        ys, xs = np.mgrid[0:64, 0:48]
        got = np.array([(weights * (xs + 0.5)).sum(), (weights * (ys + 0.5)).sum()]) / weights.sum()
        assert np.abs(got - expect).max() < 0.75, (mode, src, got, expect)


def test_letterbox_borders_are_black_and_crop_has_none():
    img = np.full((90, 160, 3), 200, np.uint8)
    pad = fit_image(img, 64, 64, "pad")
    assert pad[:10].max() == 0 and pad[-10:].max() == 0 and pad[32].min() > 150
    assert fit_image(img, 64, 64, "crop").min() > 150


def test_discovery_pairs_sidecars_and_skips_them_as_videos(tmp_path):
    make_video(tmp_path, "a", 5, kind="mp4")
    make_video(tmp_path, "b", 5, kind="frames", sidecar=False)
    (tmp_path / "a.ref.png").write_bytes(b"")
    (tmp_path / "a.ref.json").write_text("[]")
    (tmp_path / "notes.txt").write_text("hi")
    found = {s.name: s for s in discover_videos(tmp_path)}
    assert set(found) == {"a.mp4", "b"}
    assert found["a.mp4"].pose_file.name == "a.json" and found["a.mp4"].reference_image.name == "a.ref.png"
    assert found["a.mp4"].reference_pose_file.name == "a.ref.json"
    assert found["b"].pose_file is None and found["b"].reference_image is None
    with pytest.raises(DataError, match="is not a folder"):
        discover_videos(tmp_path / "nope")


def test_bad_videos_are_skipped_with_named_reasons(tmp_path):
    folder = tmp_path / "v"
    make_video(folder, "good", 8, seed=1)
    make_video(folder, "good_copy", 8, seed=1)  # same content, same sidecar -> duplicate
    make_video(folder, "short", 2, seed=2)
    make_video(folder, "nobody", 8, seed=3, person=False)
    make_video(folder, "truncated_poses", 8, seed=4)
    entries = json.loads((folder / "truncated_poses.json").read_text())
    (folder / "truncated_poses.json").write_text(json.dumps(entries[:3]))
    make_video(folder, "garbled_poses", 8, seed=5)
    (folder / "garbled_poses.json").write_text("{not json")
    (folder / "broken.mp4").write_bytes(b"\x00\x01 definitely not a video")
    (folder / "broken.json").write_text("[]")
    make_video(folder, "bad_ref", 8, seed=6)
    (folder / "bad_ref.ref.png").write_bytes(b"not a png")
    (folder / "bad_ref.ref.json").write_text("[]")
    sources = discover_videos(folder)
    prepared = prepare_data(sources, tmp_path / "cache", GEO, "auto", [], _encoders(tmp_path / "cache"), "fp32", 4, 0)
    reasons = {s["video"]: s["reason"] for s in prepared.report.skipped}
    assert reasons == {"good_copy": "duplicate", "short": "too_short", "nobody": "no_person",
                       "truncated_poses": "pose_count_mismatch", "garbled_poses": "bad_pose_file",
                       "broken.mp4": "undecodable", "bad_ref": "bad_reference"}
    assert [v.name for v in prepared.train] == ["good"]
    summary = prepared.report.summary()
    for reason in set(reasons.values()):
        assert reason in summary


def test_nothing_usable_is_one_clear_error_from_the_trainer(tmp_path):
    from unianimate_core.train.config import parse_config
    from unianimate_core.train.trainer import train
    from tests.train.conftest import base_config

    folder = tmp_path / "v"
    make_video(folder, "short", 2)
    cfg = parse_config(base_config(folder, tmp_path / "out"))
    with pytest.raises(DataError, match=r"(?s)no usable training clip.*too_short"):
        train(cfg, log=lambda m: None)
    report = json.loads((tmp_path / "out" / "data_report.json").read_text())
    assert report["skipped_counts"] == {"too_short": 1}


def test_cache_is_content_addressed_reused_and_keyed_by_the_encoder(tmp_path):
    folder = tmp_path / "v"
    make_video(folder, "a", 6, seed=1)
    cache = tmp_path / "cache"
    first = prepare_data(discover_videos(folder), cache, GEO, "auto", [], _encoders(cache), "fp32", 4, 0)
    assert first.report.prepared_now == 1
    (folder / "a").rename(folder / "renamed")
    (folder / "a.json").rename(folder / "renamed.json")
    again = prepare_data(discover_videos(folder), cache, GEO, "auto", [], _encoders(cache), "fp32", 4, 0)
    assert again.report.prepared_now == 0 and again.train[0].key == first.train[0].key
    assert again.train[0].latents == first.train[0].latents
    other_vae = prepare_data(discover_videos(folder), cache, GEO, "auto", [], _encoders(cache, seed=1), "fp32", 4, 0)
    assert other_vae.train[0].latents != first.train[0].latents and other_vae.train[0].key == first.train[0].key
    taller = prepare_data(discover_videos(folder), cache, Geometry(64, 128, "crop", 1, 0, 4), "auto", [],
                          _encoders(cache), "fp32", 4, 0)
    assert taller.train[0].key != first.train[0].key


def test_cached_arrays_match_a_direct_computation(tmp_path):
    """Frames are the fitted video frames; moments are the VAE of those frames; embeddings the CLIP of them."""
    from safetensors.torch import load_file

    from unianimate_core.pipeline.conditioning import clip_input, vae_input
    from unianimate_core.pipeline.video import read_clip

    folder = tmp_path / "v"
    make_video(folder, "a", 5, seed=2)
    enc = _encoders(tmp_path / "cache")
    video = prepare_data(discover_videos(folder), tmp_path / "cache", GEO, "auto", [], enc, "fp32", 2, 0).train[0]
    raw = read_clip(folder / "a").frames
    frames = np.asarray(video.frames())
    assert np.array_equal(frames[3], fit_image(raw[3], 64, 64, "crop"))
    pixels = torch.from_numpy(frames[3:4].copy()).permute(0, 3, 1, 2).float() / 255
    moments = load_file(str(video.latents))["moments"]
    assert torch.allclose(moments[3:4], enc.vae.encode_moments(vae_input(pixels)), atol=1e-5)
    embeds = load_file(str(video.clip))["embeds"]
    assert torch.allclose(embeds[3], enc.clip.encode_image(clip_input(frames[3]))[0], atol=1e-5)
    assert video.present.all()


def test_interrupted_preparation_leaves_no_partial_entry_and_resumes(tmp_path, monkeypatch):
    import unianimate_core.train.data as data

    folder = tmp_path / "v"
    make_video(folder, "a", 6, seed=1)
    make_video(folder, "b", 6, seed=2)
    cache = tmp_path / "cache"
    real = data.encode_clip
    calls = []

    def crash_on_second(video, *a, **k):
        calls.append(video.name)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(video, *a, **k)

    monkeypatch.setattr(data, "encode_clip", crash_on_second)
    with pytest.raises(KeyboardInterrupt):
        prepare_data(discover_videos(folder), cache, GEO, "auto", [], _encoders(cache), "fp32", 4, 0)
    leftovers = [p for p in cache.rglob("*") if p.name.startswith(".tmp-")]
    assert leftovers == []
    monkeypatch.setattr(data, "encode_clip", real)
    done = prepare_data(discover_videos(folder), cache, GEO, "auto", [], _encoders(cache), "fp32", 4, 0)
    assert sorted(v.name for v in done.train) == ["a", "b"] and done.report.prepared_now == 0


def test_dwpose_stand_in_models_pose_videos_without_sidecars(tmp_path, fixtures_dir):
    """The real-video path with the stand-in DWPose ONNX models of the fixtures (constant keypoints):
    poses are extracted once and cached, keyed by the pose models' weights (another detector file ->
    prepared again)."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("cv2")
    import shutil

    folder = tmp_path / "v"
    make_video(folder, "a", 6, seed=1, kind="mp4", sidecar=False)
    models = tmp_path / "dw"
    models.mkdir()
    shutil.copy(fixtures_dir / "dwpose" / "yolox_l.onnx", models)
    shutil.copy(fixtures_dir / "dwpose" / "dw-ll_ucoco_384.onnx", models)
    cache = tmp_path / "cache"
    got = prepare_data(discover_videos(folder), cache, GEO, "dwpose", [str(models)], _encoders(cache), "fp32", 4, 0)
    assert [v.name for v in got.train] == ["a.mp4"] and got.train[0].present.any()
    assert got.report.prepared_now == 1
    again = prepare_data(discover_videos(folder), cache, GEO, "dwpose", [str(models)], _encoders(cache), "fp32", 4, 0)
    assert again.report.prepared_now == 0
    shutil.copy(fixtures_dir / "dwpose" / "yolox_l_empty.onnx", models / "yolox_l.onnx")
    other = prepare_data(discover_videos(folder), cache, GEO, "dwpose", [str(models)], _encoders(cache), "fp32", 4, 0)
    assert other.report.prepared_now == 1 and other.train[0].key != got.train[0].key


def test_missing_extractor_is_fatal_only_when_nothing_has_sidecars(tmp_path, monkeypatch):
    import unianimate_core.train.data as data

    def no_extractor(*a, **k):
        raise DataError("some videos have no pose sidecar, and no pose extractor is available: install it")

    monkeypatch.setattr(data, "resolve_pose_source", no_extractor)
    folder = tmp_path / "v"
    make_video(folder, "with", 6, seed=1)
    make_video(folder, "without", 6, seed=2, sidecar=False)
    got = prepare_data(discover_videos(folder), tmp_path / "c", GEO, "auto", [], _encoders(tmp_path / "c"), "fp32", 4, 0)
    assert [v.name for v in got.train] == ["with"]
    assert got.report.counts == {"no_pose_source": 1}
    (folder / "with.json").unlink()
    with pytest.raises(DataError, match="no pose extractor"):
        prepare_data(discover_videos(folder), tmp_path / "c", GEO, "auto", [], _encoders(tmp_path / "c"), "fp32", 4, 0)


def test_underscore_reference_sidecars_are_found_and_never_videos(tmp_path):
    """The world exporter's layout: clip_00000.mp4, clip_00000.json, clip_00000_ref.png, clip_00000_ref.json."""
    make_video(tmp_path, "clip_00000", 5, kind="mp4")
    from PIL import Image

    Image.new("RGB", (8, 8)).save(tmp_path / "clip_00000_ref.webp")
    (tmp_path / "clip_00000_ref.json").write_text("[]")
    (tmp_path / "index.json").write_text("{}")
    found = discover_videos(tmp_path)
    assert [s.name for s in found] == ["clip_00000.mp4"]
    assert found[0].reference_image.name == "clip_00000_ref.webp"
    assert found[0].reference_pose_file.name == "clip_00000_ref.json"


def test_a_separate_validation_folder_holds_the_validation_videos(videos, shared_cache, tmp_path):
    from unianimate_core.train.config import parse_config
    from unianimate_core.train.trainer import train
    from tests.train.conftest import base_config

    val = tmp_path / "val"
    make_video(val, "held_out", 8, seed=42)
    make_video(val, "too_short", 2, seed=43)
    out = tmp_path / "out"
    cfg = parse_config(base_config(videos, out, shared_cache, data={"videos": str(videos), "width": 64, "height": 64,
                                                                    "frames": 4, "frame_stride": 1,
                                                                    "validation_dir": str(val)},
                                   train={"steps": 1, "threads": 1}, validation={"at_end": True, "samples": 1}))
    result = train(cfg, log=lambda m: None)
    report = json.loads((out / "data_report.json").read_text())
    assert report["validation"] == ["held_out"] and len(report["used"]) == 4
    assert report["skipped"] == [{"video": "validation/too_short", "reason": "too_short",
                                  "detail": "2 frames after the stride of 1, a clip needs 4"}]
    assert len(result.val_losses) == 1
