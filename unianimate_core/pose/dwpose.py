"""DWPose whole-body estimator on ONNX Runtime (``yolox_l.onnx`` + ``dw-ll_ucoco_384.onnx``).

A :class:`DWPoseEstimator` owns its two ``InferenceSession`` objects: create it once and keep it
(the ComfyUI node caches it, see :class:`EstimatorCache`); nothing is cached in module globals.
The pose model of the public export has a fixed batch size of 1, so every person box is one
session call (see docs/pose.md, "Performance", for why nothing is batched).
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .detection import DetectorConfig, letterbox, person_boxes, yolox_grid
from .errors import PoseInputError
from .image import to_rgb_uint8
from .keypoints import DEFAULT_THRESHOLD, PoseFrame, person_from_wholebody, wholebody_from_coco133
from ..model_files import DOWNLOADS
from .models import DWPOSE_DETECTOR, DWPOSE_POSE_MODEL, find_model_file
from .runtime import CPU, create_session, resolve_providers, session_provider
from .simcc import crop_geometry, crop_person, decode_simcc, normalize_crop, to_image_coords

logger = logging.getLogger("unianimate")


@dataclass
class WholebodyResult:
    """Raw per-image output before conversion to :class:`PoseFrame` (useful for debugging).

    ``boxes`` (N, 5) pixel ``x1 y1 x2 y2 score`` (score NaN for the whole-image fallback box),
    ``keypoints133`` (N, 133, 2) pixels, ``scores133`` (N, 133), ``keypoints134`` / ``scores134``
    after neck insertion and OpenPose reordering.
    """

    width: int
    height: int
    boxes: np.ndarray
    keypoints133: np.ndarray
    scores133: np.ndarray
    keypoints134: np.ndarray = field(init=False)
    scores134: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        if len(self.keypoints133):
            self.keypoints134, self.scores134 = wholebody_from_coco133(self.keypoints133, self.scores133)
        else:
            self.keypoints134, self.scores134 = np.zeros((0, 134, 2)), np.zeros((0, 134))


class DWPoseEstimator:
    """YOLOX-L person detector + DWPose whole-body model, pre/post-processing as the official code.

    ``providers``: ``"auto"`` (CUDA/ROCm/DirectML when this onnxruntime build can use them, else
    CPU), ``"cpu"``, ``"cuda"``..., or a list of onnxruntime provider names. The provider actually
    used is logged and available as :attr:`provider`.
    ``whole_image_fallback``: when the detector finds nobody, run the pose model on the whole image
    like the official code (the resulting points usually score below the threshold).
    """

    def __init__(
        self,
        det_path: str | Path,
        pose_path: str | Path,
        providers: str | Sequence[str] = "auto",
        *,
        threads: int | None = None,
        detector: DetectorConfig = DetectorConfig(),
        whole_image_fallback: bool = True,
    ) -> None:
        self.det_path, self.pose_path = Path(det_path), Path(pose_path)
        self.detector_config = detector
        self.whole_image_fallback = whole_image_fallback
        requested = resolve_providers(providers)
        self._det = create_session(self.det_path, requested, threads)
        self._pose = create_session(self.pose_path, requested, threads)
        self._det_input = self._det.get_inputs()[0].name
        self._pose_input = self._pose.get_inputs()[0]
        shape = self._pose_input.shape
        n_out = len(self._pose.get_outputs())
        if len(shape) != 4 or not all(isinstance(s, int) for s in shape[2:]) or n_out != 2:
            raise PoseInputError(
                f"{self.pose_path.name} does not look like the DWPose model: input shape {shape}, "
                f"{n_out} outputs; expected input [1, 3, 384, 288] and two SimCC outputs. Use "
                f"{DOWNLOADS['dwpose_pose'].hint()}."
            )
        self.pose_input_wh = (int(shape[3]), int(shape[2]))
        det_shape = self._det.get_inputs()[0].shape
        if len(det_shape) == 4 and all(isinstance(s, int) for s in det_shape[2:]):
            self.detector_config = DetectorConfig(**{**detector.__dict__, "input_size": (det_shape[2], det_shape[3])})
        self._grid = yolox_grid(self.detector_config.input_size)
        self.provider = session_provider(self._pose)
        if self.provider == CPU:
            logger.info("DWPose: running on the CPU (onnxruntime provider %s); expect roughly 0.5-2 s per frame.", CPU)
        else:
            logger.info("DWPose: running on %s.", self.provider)

    @classmethod
    def from_search_dirs(
        cls,
        dirs: Sequence[str | Path],
        det_name: str = DWPOSE_DETECTOR,
        pose_name: str = DWPOSE_POSE_MODEL,
        providers: str | Sequence[str] = "auto",
        **kwargs: Any,
    ) -> "DWPoseEstimator":
        """Find both model files by name in ``dirs`` (see :func:`find_model_file`) and load them."""
        return cls(find_model_file(det_name, dirs), find_model_file(pose_name, dirs), providers, **kwargs)

    # -- stages -------------------------------------------------------------------------------
    def detect_boxes(self, image_bgr: np.ndarray) -> np.ndarray:
        """(H, W, 3) uint8 BGR -> person boxes (M, 5) ``x1 y1 x2 y2 score`` in pixels, best first."""
        blob, ratio = letterbox(image_bgr, self.detector_config.input_size, self.detector_config.pad_value)
        raw = self._det.run(None, {self._det_input: blob})[0]
        return person_boxes(raw[0], ratio, self.detector_config, self._grid)

    def estimate_keypoints(self, image_bgr: np.ndarray, boxes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Run the pose model on each box: -> (keypoints (N, 133, 2) pixels, scores (N, 133))."""
        kps, scs = [], []
        for box in boxes:
            geometry = crop_geometry(box[:4], self.pose_input_wh)
            crop = crop_person(image_bgr, geometry, self.pose_input_wh)
            simcc_x, simcc_y = self._pose.run(None, {self._pose_input.name: normalize_crop(crop)})[:2]
            locs, vals = decode_simcc(simcc_x, simcc_y)
            kps.append(to_image_coords(locs[0], self.pose_input_wh, geometry))
            scs.append(vals[0])
        if not kps:
            return np.zeros((0, 133, 2)), np.zeros((0, 133))
        return np.stack(kps), np.stack(scs).astype(np.float64)

    def wholebody(self, image: Any, max_people: int | None = None) -> WholebodyResult:
        """Detector + pose model on one image (RGB, see :func:`to_rgb_uint8`)."""
        rgb = to_rgb_uint8(image)
        # both official models were fed BGR (docs/official_behaviour.md#dwpose-bgr)
        bgr = np.ascontiguousarray(rgb[..., ::-1])
        height, width = bgr.shape[:2]
        boxes = self.detect_boxes(bgr)
        if max_people is not None:
            boxes = boxes[:max(0, int(max_people))]
        if len(boxes) == 0 and self.whole_image_fallback and (max_people is None or max_people > 0):
            boxes = np.array([[0.0, 0.0, float(width), float(height), np.nan]])
        kps, scs = self.estimate_keypoints(bgr, boxes)
        return WholebodyResult(width, height, boxes, kps, scs)

    def detect(self, image: Any, max_people: int | None = None) -> PoseFrame:
        """Every person in ``image`` ((H, W, 3) RGB uint8 or float in [0, 1]) as a :class:`PoseFrame`.

        People are in detector-score order (person 0 is the one the official code keeps).
        ``max_people`` limits how many boxes go through the pose model (the slow part).
        """
        res = self.wholebody(image, max_people)
        people = []
        for i in range(len(res.boxes)):
            score = float(res.boxes[i, 4])
            people.append(person_from_wholebody(
                res.keypoints134[i], res.scores134[i], res.width, res.height,
                box_px=res.boxes[i, :4], det_score=None if np.isnan(score) else score,
            ))
        return PoseFrame(res.width, res.height, people)


@dataclass
class EstimatorCache:
    """Keeps loaded estimators keyed by (detector path, pose path, providers) so sessions are
    created once and reused across runs; owned by the caller (e.g. a ComfyUI node), clearable."""

    _items: dict[tuple[str, ...], DWPoseEstimator] = field(default_factory=dict)

    def get(self, det_path: str | Path, pose_path: str | Path, providers: str | Sequence[str] = "auto", **kwargs: Any) -> DWPoseEstimator:
        key = (str(Path(det_path).resolve()), str(Path(pose_path).resolve()),
               providers if isinstance(providers, str) else ",".join(providers), repr(sorted(kwargs.items())))
        if key not in self._items:
            self._items[key] = DWPoseEstimator(det_path, pose_path, providers, **kwargs)
        return self._items[key]

    def clear(self) -> None:
        self._items.clear()

    def __len__(self) -> int:
        return len(self._items)


__all__ = ["DWPoseEstimator", "EstimatorCache", "WholebodyResult", "DEFAULT_THRESHOLD"]
