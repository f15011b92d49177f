"""Optional, approximate pose backend: MediaPipe Holistic (no DWPose files needed).

``mediapipe==0.10.21`` is the last release whose wheel bundles its models and still has the
``solutions`` API, so it runs fully offline on the CPU. It is never a hard dependency: the
package is imported only when a :class:`MediaPipeEstimator` is created, and a missing install
raises an error that says what to install.

Its landmarks are mapped to the COCO-WholeBody-133 layout DWPose outputs, then through the same
neck insertion / OpenPose reordering as DWPose, so everything downstream (alignment, rendering,
POSE_KEYPOINT) is shared. The result is marked ``approximate``: MediaPipe's hips, eyes, ears,
face contour and brows follow other definitions than DWPose's, it has no small toe (the big toe
is reused), hand points have no per-point score, and it tracks a single person.
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np

from ._deps import import_mediapipe
from .errors import PoseInputError
from .image import to_rgb_uint8
from .keypoints import PoseFrame, person_from_coco133

logger = logging.getLogger("unianimate")

#: COCO-WholeBody body rows 0..16 <- MediaPipe Pose landmark index (score = visibility).
MP_BODY = (0, 2, 5, 7, 8, 11, 12, 13, 14, 15, 16, 23, 24, 25, 26, 27, 28)
#: COCO-WholeBody feet rows 17..22 (L big toe, L small toe, L heel, R big toe, R small toe,
#: R heel) <- MediaPipe Pose index; the small toes reuse the foot index (no counterpart).
MP_FEET = (31, 31, 29, 32, 32, 30)
#: COCO-WholeBody face rows 23..90 (iBUG-68 order) <- FaceMesh landmark index.
MP_FACE68 = (
    127, 234, 93, 132, 58, 136, 150, 176, 152, 400, 379, 365, 288, 361, 323, 454, 356,  # jaw
    70, 63, 105, 66, 107, 336, 296, 334, 293, 300,  # brows
    168, 197, 5, 4, 75, 97, 2, 326, 305,  # nose
    33, 160, 158, 133, 153, 144, 362, 385, 387, 263, 373, 380,  # eyes
    61, 39, 37, 0, 267, 269, 291, 405, 314, 17, 84, 181,  # outer lip
    78, 82, 13, 312, 308, 317, 14, 87,  # inner lip
)


def _landmark_array(landmarks: Any, columns: int) -> np.ndarray | None:
    """A MediaPipe landmark list (or an array-like) -> (K, columns) float64, None when absent."""
    if landmarks is None:
        return None
    if hasattr(landmarks, "landmark"):
        rows = []
        for lm in landmarks.landmark:
            rows.append([lm.x, lm.y, lm.z, getattr(lm, "visibility", 0.0)][:columns])
        return np.array(rows, dtype=np.float64)
    arr = np.asarray(landmarks, dtype=np.float64)
    return arr if arr.size else None


def mediapipe_to_coco133(
    pose: Any,
    face: Any,
    left_hand: Any,
    right_hand: Any,
    width: int,
    height: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Holistic landmarks -> COCO-WholeBody-133 pixel keypoints (133, 2) and scores (133,).

    ``pose`` (33, >=4) normalised ``x, y, z, visibility``; ``face`` (468 or 478, >=2);
    ``left_hand`` / ``right_hand`` (21, >=2) — or MediaPipe landmark lists, or None when that part
    was not detected (its points become (0, 0) with score 0). Pixel = (x * width, y * height).
    Body/feet scores are the visibilities; face and hand points score 1 when detected.
    """
    kps = np.zeros((133, 2))
    scores = np.zeros(133)
    scale = np.array([width, height], dtype=np.float64)
    pose_a = _landmark_array(pose, 4)
    if pose_a is not None:
        rows = list(MP_BODY) + list(MP_FEET)
        kps[:23] = pose_a[rows, :2] * scale
        scores[:23] = pose_a[rows, 3]
    face_a = _landmark_array(face, 3)
    if face_a is not None:
        kps[23:91] = face_a[list(MP_FACE68), :2] * scale
        scores[23:91] = 1.0
    for hand, start in ((left_hand, 91), (right_hand, 112)):
        hand_a = _landmark_array(hand, 3)
        if hand_a is not None:
            kps[start:start + 21] = hand_a[:21, :2] * scale
            scores[start:start + 21] = 1.0
    return kps, scores


class MediaPipeEstimator:
    """Approximate whole-body keypoints with MediaPipe Holistic; same ``detect`` as DWPose.

    ``video=False`` (default) processes every image independently (deterministic, like the
    fixtures); ``video=True`` uses MediaPipe's tracking between consecutive frames (faster and
    steadier on a clip, but the result depends on the previous frames). Only
    ``model_complexity=1`` ships in the wheel.
    """

    def __init__(self, video: bool = False, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5) -> None:
        mp = import_mediapipe()
        self.video = video
        self._holistic = mp.solutions.holistic.Holistic(
            static_image_mode=not video,
            model_complexity=1,
            refine_face_landmarks=False,
            enable_segmentation=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )
        self.provider = "mediapipe-cpu"
        logger.info("MediaPipe Holistic pose backend (approximate DWPose keypoints, CPU, %s mode).",
                    "tracking" if video else "per-image")

    def close(self) -> None:
        if self._holistic is not None:
            self._holistic.close()
            self._holistic = None

    def __enter__(self) -> "MediaPipeEstimator":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def coco133(self, image: Any) -> tuple[np.ndarray, np.ndarray, dict[str, bool]]:
        """(133, 2) pixels, (133,) scores and which parts were detected, for one RGB image."""
        if self._holistic is None:
            raise PoseInputError("this MediaPipeEstimator was closed; create a new one to detect more images.")
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        res = self._holistic.process(rgb)
        detected = {
            "pose": res.pose_landmarks is not None,
            "face": res.face_landmarks is not None,
            "left_hand": res.left_hand_landmarks is not None,
            "right_hand": res.right_hand_landmarks is not None,
        }
        kps, scores = mediapipe_to_coco133(
            res.pose_landmarks, res.face_landmarks, res.left_hand_landmarks, res.right_hand_landmarks, width, height
        )
        return kps, scores, detected

    def detect(self, image: Any, max_people: int | None = None) -> PoseFrame:
        """One image ((H, W, 3) RGB uint8 or float in [0, 1]) -> PoseFrame with 0 or 1 person."""
        rgb = to_rgb_uint8(image)
        height, width = rgb.shape[:2]
        kps, scores, detected = self.coco133(rgb)
        if not any(detected.values()) or max_people == 0:
            return PoseFrame(width, height, [])
        return PoseFrame(width, height, [person_from_coco133(kps, scores, width, height, approximate=True)])

