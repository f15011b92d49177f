"""Fitting poses to another canvas consistently with the image fit."""
from __future__ import annotations

import numpy as np
import pytest

from unianimate_core.pose.errors import PoseInputError
from unianimate_core.pose.fitting import fit_frame, fit_geometry
from unianimate_core.pose.keypoints import NUM_KEYPOINTS, Person, PoseFrame


def _frame_with_points(px: np.ndarray, w: int, h: int) -> PoseFrame:
    kps = np.zeros((NUM_KEYPOINTS, 2))
    kps[: len(px)] = px / [w, h]
    return PoseFrame(w, h, [Person(kps, np.ones(NUM_KEYPOINTS), box=np.array([0.0, 0.0, 1.0, 1.0]))])


def test_crop_and_pad_follow_the_image_geometry():
    # 400x300 source: its centre and its corners, fitted to 300x300
    px = np.array([[200.0, 150.0], [0.0, 0.0], [400.0, 300.0]])
    frame = _frame_with_points(px, 400, 300)
    crop = fit_frame(frame, 300, 300, "crop").people[0]  # scale 1, crop 50 px left/right
    np.testing.assert_allclose(crop.keypoints[:3] * 300, [[150, 150], [-50, 0], [350, 300]], atol=1e-9)
    pad = fit_frame(frame, 300, 300, "pad").people[0]  # scale 0.75, 37.5 px bars top/bottom
    np.testing.assert_allclose(pad.keypoints[:3] * 300, [[150, 150], [0, 37.5], [300, 262.5]], atol=1e-9)
    np.testing.assert_allclose(pad.box * 300, [0, 37.5, 300, 262.5], atol=1e-9)
    stretch = fit_frame(frame, 300, 300, "stretch").people[0]
    np.testing.assert_allclose(stretch.keypoints, frame.people[0].keypoints, atol=1e-15)
    assert fit_frame(frame, 300, 300).size == (300, 300)


def test_fit_geometry_errors():
    with pytest.raises(PoseInputError):
        fit_geometry((0, 10), (10, 10), "crop")
    with pytest.raises(PoseInputError, match="fit mode"):
        fit_geometry((10, 10), (10, 10), "zoom")  # type: ignore[arg-type]
