"""animate(): long-video strategies, Ctrl-C keeping finished segments, determinism (tiny model)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unianimate_core.pipeline.providers import TinyModels
from unianimate_core.pipeline.runner import AnimateOptions, animate
from unianimate_core.pipeline.video import probe_video, read_clip, read_image

DEMO = Path(__file__).resolve().parents[2] / "demo"
SMALL = dict(width=64, height=64, steps=2, pose_backend="keypoints", preview=False)


@pytest.fixture(scope="module")
def demo_media():
    return read_image(DEMO / "reference.png"), read_clip(DEMO / "driving.mp4")


def _run(tmp_path, demo_media, models=None, name="out.mp4", **opts):
    ref, clip = demo_media
    return animate(models or TinyModels(), ref, clip, AnimateOptions(**{**SMALL, **opts}), tmp_path / name,
                   keypoints_file=DEMO / "driving_keypoints.json", log=lambda _msg: None, show_progress=False)


class CountingModels(TinyModels):
    """Tiny models whose UNet counts calls and raises KeyboardInterrupt (Ctrl-C) at call ``stop_at``."""

    def __init__(self, stop_at: int | None = None) -> None:
        super().__init__()
        self.calls, self.stop_at = 0, stop_at

    def unet(self, zero_y):
        model = super().unet(zero_y)

        def counted(*args, **kwargs):
            self.calls += 1
            if self.stop_at is not None and self.calls >= self.stop_at:
                raise KeyboardInterrupt
            return model(*args, **kwargs)

        return counted


def test_continuation_writes_segments_and_ctrl_c_keeps_the_finished_ones(tmp_path, demo_media):
    full_models = CountingModels()
    full = _run(tmp_path, demo_media, full_models, "full.mp4", frames=7, strategy="continuation", segment_length=4)
    assert not full.interrupted and full.frames == 7
    assert probe_video(full.video)[:1] == (7,)
    assert sorted(p.name for p in full.segments_dir.iterdir()) == ["segment_000.mp4", "segment_001.mp4"]

    # Ctrl-C during the last model call: segment 0 (frames 0-3) is finished and must survive.
    cut = _run(tmp_path, demo_media, CountingModels(stop_at=full_models.calls), "cut.mp4", frames=7,
               strategy="continuation", segment_length=4)
    assert cut.interrupted and cut.frames == 4 and cut.planned_frames == 7
    assert probe_video(cut.video)[:1] == (4,)
    assert [p.name for p in cut.segments_dir.iterdir()] == ["segment_000.mp4"]
    # the kept frames are the same as in the uninterrupted run (same seed)
    a, b = read_clip(cut.video).frames, read_clip(full.video).frames[:4]
    assert np.mean([np.abs(x.astype(int) - y.astype(int)).mean() for x, y in zip(a, b)]) < 3


def test_interrupt_before_anything_finished_writes_nothing(tmp_path, demo_media):
    res = _run(tmp_path, demo_media, CountingModels(stop_at=1), "none.mp4", frames=4)
    assert res.interrupted and res.video is None and res.frames == 0
    assert not (tmp_path / "none_random-weights-noise.mp4").exists()


def test_sliding_windows_and_seed_determinism(tmp_path, demo_media):
    win = _run(tmp_path, demo_media, name="win.mp4", frames=6, strategy="windows", context_size=4, context_overlap=2)
    assert probe_video(win.video) == (6, 64, 64)
    a = _run(tmp_path, demo_media, name="a.mp4", frames=3, seed=1)
    b = _run(tmp_path, demo_media, name="b.mp4", frames=3, seed=1)
    c = _run(tmp_path, demo_media, name="c.mp4", frames=3, seed=2)
    fa, fb, fc = (read_clip(r.video).frames for r in (a, b, c))
    assert all(np.array_equal(x, y) for x, y in zip(fa, fb))
    assert not all(np.array_equal(x, y) for x, y in zip(fa, fc))


@pytest.mark.parametrize("mode", ["first_frame", "both"])
def test_continuation_in_every_condition_mode(tmp_path, demo_media, mode):
    """The noise prior comes from the reference latent even when the conditions carry no randomref
    (first_frame mode), as in the short and sliding-window strategies."""
    res = _run(tmp_path, demo_media, name=f"{mode}.mp4", frames=5, steps=1, strategy="continuation",
               segment_length=3, mode=mode)
    assert res.frames == 5 and probe_video(res.video) == (5, 64, 64)


class DeepCacheSpyModels(TinyModels):
    """Tiny models whose UNet records, per call, whether it got a deep-cache slot and reused it."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list = []

    def unet(self, zero_y):
        model = super().unet(zero_y)

        def spying(x, t, transformer_options=None, **kwargs):
            slot = (transformer_options or {}).get("deep_cache")
            out = model(x, t, transformer_options=transformer_options, **kwargs)
            self.calls.append(None if slot is None else (slot.depth, slot.stored is None))
            return out

        return spying


def test_deep_cache_options_reach_the_sampler(tmp_path, demo_media):
    models = DeepCacheSpyModels()
    _run(tmp_path, demo_media, models, "dc.mp4", frames=3, steps=3, deep_cache_interval=2, deep_cache_depth=4)
    # 3 requested steps run the official list of 4; guidance as two calls (the spy hides cond_mask)
    assert models.calls == [(4, False), (4, False), (4, True), (4, True)] * 2
    off = DeepCacheSpyModels()
    _run(tmp_path, demo_media, off, "off.mp4", frames=3, steps=3)
    assert off.calls == [None] * 8  # default: the official sampler
    with pytest.raises(ValueError, match="deep_cache_interval"):
        _run(tmp_path, demo_media, DeepCacheSpyModels(), "bad.mp4", frames=3, deep_cache_interval=0)


def test_deep_cache_command_line_flags():
    from unianimate_core.pipeline.cli import _options, build_parser

    base = ["animate", "--ref", "r.png", "--driving", "d.mp4", "--out", "o.mp4"]
    args = build_parser().parse_args(base + ["--deep-cache-interval", "3", "--deep-cache-depth", "4"])
    opts = _options(args)
    assert (opts.deep_cache_interval, opts.deep_cache_depth) == (3, 4)
    default = _options(build_parser().parse_args(base))
    assert (default.deep_cache_interval, default.deep_cache_depth) == (1, 2)
