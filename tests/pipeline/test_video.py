"""Video and image I/O: mp4 round trip, animated images, folders, preview composition."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from unianimate_core.pipeline.errors import MediaError
from unianimate_core.pipeline.preview import NOISE_BANNER, side_by_side
from unianimate_core.pipeline.video import probe_video, read_clip, read_image, write_video


def _frames(n=5, h=35, w=21):
    rng = np.random.default_rng(1)
    return [np.full((h, w, 3), 40 * i, dtype=np.uint8) + rng.integers(0, 20, (h, w, 3), dtype=np.uint8) for i in range(n)]


def test_mp4_round_trip_keeps_count_size_and_content(tmp_path):
    frames = _frames()
    path = write_video(tmp_path / "a.mp4", frames, fps=8)
    assert not (tmp_path / "a.mp4.part").exists()
    n, w, h = probe_video(path)
    assert (n, w, h) == (5, 22, 36)  # odd sizes padded to even for yuv420p
    clip = read_clip(path)
    assert clip.fps == pytest.approx(8.0)
    err = np.abs(clip.frames[3][:35, :21].astype(int) - frames[3].astype(int)).mean()
    assert err < 6


def test_animated_webp_and_folder(tmp_path):
    frames = _frames(4, 32, 32)
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(tmp_path / "a.webp", save_all=True, append_images=imgs[1:], duration=100, lossless=True)
    clip = read_clip(tmp_path / "a.webp")
    assert len(clip.frames) == 4 and clip.fps == pytest.approx(10.0)
    assert np.array_equal(clip.frames[2], frames[2])
    folder = tmp_path / "poses"
    folder.mkdir()
    for i, im in enumerate(imgs):
        im.save(folder / f"{i:04d}.png")
    im.save(folder / "ref_pose.png")
    clip = read_clip(folder, limit=3)
    assert len(clip.frames) == 3 and np.array_equal(clip.frames[1], frames[1])


def test_missing_or_broken_media_give_media_errors(tmp_path):
    with pytest.raises(MediaError, match="not found"):
        read_clip(tmp_path / "nope.mp4")
    (tmp_path / "bad.mp4").write_bytes(b"not a video")
    with pytest.raises(MediaError):
        read_clip(tmp_path / "bad.mp4")
    with pytest.raises(MediaError):
        read_image(tmp_path / "bad.mp4")
    with pytest.raises(MediaError, match="is a folder"):
        read_image(tmp_path)


def test_failed_write_leaves_no_part_file(tmp_path):
    frames = _frames(3)
    with pytest.raises(MediaError, match="one size"):
        write_video(tmp_path / "x.mp4", frames + [np.zeros((8, 8, 3), np.uint8)])
    assert list(tmp_path.iterdir()) == []


def test_side_by_side_panels_and_banner():
    ref = np.full((50, 40, 3), 200, dtype=np.uint8)
    poses = [np.full((64, 32, 3), 10, dtype=np.uint8)] * 2
    result = [np.full((64, 32, 3), 100, dtype=np.uint8)] * 2
    plain = side_by_side(ref, poses, result)
    assert len(plain) == 2 and plain[0].shape == (64, 96, 3)
    assert (plain[0][:, :32] == 200).all() and (plain[0][:, 32:64] == 10).all() and (plain[0][:, 64:] == 100).all()
    marked = side_by_side(ref, poses, result, banner=NOISE_BANNER)
    changed = np.any(marked[0] != plain[0], axis=(1, 2))
    assert changed[:5].all() and not changed[-10:].any()  # a bar across the top, the rest untouched


def test_step_keeps_every_nth_frame_and_scales_fps(tmp_path):
    frames = _frames(7, 32, 32)
    path = write_video(tmp_path / "s.mp4", frames, fps=12)
    clip = read_clip(path, step=3)
    assert len(clip.frames) == 3 and clip.fps == pytest.approx(4.0)  # frames 0, 3, 6
    full = read_clip(path)
    assert all(np.array_equal(a, b) for a, b in zip(clip.frames, full.frames[::3]))
    imgs = [Image.fromarray(f) for f in frames]
    imgs[0].save(tmp_path / "s.webp", save_all=True, append_images=imgs[1:], duration=50, lossless=True)
    clip = read_clip(tmp_path / "s.webp", step=2, limit=3)
    assert len(clip.frames) == 3 and np.array_equal(clip.frames[1], frames[2])
