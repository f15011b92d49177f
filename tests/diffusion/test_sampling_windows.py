"""Sliding-window lists against tests/fixtures/long_windows.json (the official scheduler's output)."""
from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from unianimate_core.diffusion import Conditions, SamplingError
from unianimate_core.diffusion.windows import SlidingWindowOptions, context_windows


def _options(case: dict) -> SlidingWindowOptions:
    return SlidingWindowOptions(context_size=case["context_size"], context_overlap=case["context_overlap"],
                                context_stride=case["context_stride"], context_batch_size=case["context_batch_size"])


def _sane_cases(long_windows: dict) -> list[dict]:
    cases = [c for c in long_windows["cases"] if "error" not in c and c["F"] >= c["context_size"]]
    assert len(cases) >= 8  # the comparisons below must not pass vacuously on a filtered-out fixture
    return cases


def test_windows_and_batches_match_official(long_windows: dict) -> None:
    for case in _sane_cases(long_windows):
        opts = _options(case)
        assert opts.windows(case["F"]) == case["windows"], case["F"]
        assert opts.groups(case["F"]) == case["batches"], case["F"]


def test_dwpose_frames_per_window_match_official(long_windows: dict) -> None:
    for case in _sane_cases(long_windows):
        f = case["F"]
        # dwpose whose pixel value encodes its frame index (0 = reference pose)
        dwpose = torch.arange(f + 1, dtype=torch.float32).view(1, 1, f + 1, 1, 1).expand(1, 3, f + 1, 8, 8)
        cond = Conditions(dwpose=dwpose)
        got = [cond.frames(w).dwpose[0, 0, :, 0, 0].long().tolist() for w in _options(case).windows(f)]
        assert got == case["dwpose_frames_per_window"], f


def test_short_sequences_get_one_window_of_real_frames(long_windows: dict) -> None:
    """Deviation: the official scheduler raises (F <= size/2) or builds a rotated window with duplicates."""
    short = [c for c in long_windows["cases"] if c["F"] < c["context_size"]]
    assert any("error" in c for c in short) and any("error" not in c for c in short)  # both official behaviours
    for case in short:
        if "error" not in case:
            official = case["windows"][0]
            assert len(official) == case["context_size"] and len(set(official)) < len(official)  # duplicates
        assert _options(case).windows(case["F"]) == [list(range(case["F"]))]


@settings(max_examples=200, deadline=None)
@given(f=st.integers(1, 400), size=st.integers(1, 48), overlap_frac=st.floats(0, 0.99),
       stride=st.integers(1, 4))
def test_windows_cover_every_frame_without_wrapping(f: int, size: int, overlap_frac: float, stride: int) -> None:
    overlap = min(int(size * overlap_frac), size - 1)
    wins = context_windows(f, size, stride, overlap)
    assert sorted({i for w in wins for i in w}) == list(range(f))
    for w in wins:
        assert len(w) == min(size, f) and w == sorted(w) and len(set(w)) == len(w)
        assert 0 <= w[0] and w[-1] < f
    contiguous = [w for w in wins if w == list(range(w[0], w[0] + len(w)))]
    starts = [w[0] for w in contiguous]
    assert starts == sorted(starts) and starts[0] == 0 and contiguous[-1][-1] == f - 1
    for a, b in zip(contiguous, contiguous[1:]):
        assert b[0] <= a[-1] + 1 and a[-1] - b[0] + 1 >= overlap  # no gap, overlap kept


@pytest.mark.parametrize("kwargs", [dict(context_size=0), dict(context_overlap=32), dict(context_overlap=-1),
                                    dict(context_stride=0), dict(context_batch_size=0), dict(context_size=2.5)])
def test_bad_window_options_are_rejected(kwargs: dict) -> None:
    with pytest.raises(SamplingError):
        SlidingWindowOptions(**kwargs)
