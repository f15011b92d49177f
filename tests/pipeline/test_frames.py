"""Official frame selection (docs/official_behaviour.md#frame-selection), checked against its worked examples."""
from __future__ import annotations

import pytest

from unianimate_core.pipeline.errors import PipelineError
from unianimate_core.pipeline.frames import select_frames


def test_default_demo_selection_matches_the_official_example():
    # official example: 150 poses, interval 2, 32 frames -> 0, 2, ..., 62
    sel = select_frames(150, 32, 2)
    assert sel.indices == tuple(range(0, 63, 2))
    assert sel.num_frames == 32 and sel.official_padding == 0 and sel.stride == 2 and sel.note == ""


def test_long_mode_takes_the_whole_clip():
    # official example: long mode, 150 poses, interval 2 -> 75 frames, 0..148
    sel = select_frames(150, None, 2)
    assert sel.indices == tuple(range(0, 149, 2)) and sel.num_frames == 75


@pytest.mark.parametrize("total, frames, interval, indices", [
    # cover = 4 * 15 + 1 = 61 > 40 -> stride (40 - 1) // 15 = 2 -> 0, 2, ..., 30
    (40, 16, 4, tuple(range(0, 31, 2))),
    # cover = 3 * 9 + 1 = 28 > 27 -> stride 26 // 9 = 2 -> 0, 2, ..., 18
    (27, 10, 3, tuple(range(0, 19, 2))),
    # cover = 2 * 4 + 1 = 9 > 8 -> stride 7 // 4 = 1 -> 0..4 (a stride of 1, not the interval)
    (8, 5, 2, (0, 1, 2, 3, 4)),
])
def test_short_clip_shrinks_the_stride_like_the_official_code(total, frames, interval, indices):
    sel = select_frames(total, frames, interval)
    stride = indices[1] - indices[0]
    assert sel.indices == indices and sel.num_frames == frames and sel.stride == stride
    assert sel.official_padding == 0
    cover = interval * (frames - 1) + 1
    assert sel.note == (f"the driving clip has {total} frames, fewer than the {cover} needed for {frames} frames "
                        f"at interval {interval}: using every {stride}. frame.")


def test_a_clip_long_enough_gives_no_note():
    sel = select_frames(61, 16, 4)  # exactly the 61 frames 16 frames at interval 4 need
    assert sel.indices == tuple(range(0, 61, 4)) and sel.stride == 4 and sel.note == ""


def test_very_short_clip_is_not_padded_with_black_poses():
    # 20 poses, 32 frames, interval 2: stride max(19 // 31, 1) = 1 -> 20 real frames; official pads 12
    sel = select_frames(20, 32, 2)
    assert sel.indices == tuple(range(20))
    assert sel.num_frames == 20 and sel.official_padding == 12
    assert "20 frames" in sel.note


@pytest.mark.parametrize("args", [(0, 16, 1), (10, 1, 1), (10, 16, 0)])
def test_bad_arguments_raise_actionable_errors(args):
    with pytest.raises(PipelineError):
        select_frames(*args)
