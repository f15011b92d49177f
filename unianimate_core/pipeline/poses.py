"""The pose stage of a headless run: keypoints -> alignment to the reference -> pose images.

Backends, tried in this order by ``backend="auto"``:

1. ``dwpose``   - DWPose ONNX (``yolox_l.onnx`` + ``dw-ll_ucoco_384.onnx``) when both files are found
                  and onnxruntime + OpenCV are installed (the official pose model);
2. ``mediapipe``- the optional MediaPipe 0.10.21 backend of ``unianimate_core.pose`` (approximate,
                  fully offline);
3. ``keypoints``- keypoints pre-extracted and shipped with the clip (the demo's
                  ``driving_keypoints.json``), so the demo runs on a machine with neither.

The extraction, alignment and drawing are ``unianimate_core.pose``'s; this module only chooses the
backend, reads the keypoints file format and returns the rendered condition images.
"""
from __future__ import annotations

import importlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Literal, Sequence, TextIO

import numpy as np

from ..model_files import DWPOSE_PAGE
from ..pose.keypoints import PoseFrame, person_from_wholebody
from ..pose.render import render_pose
from ..pose.selection import select_person

from .errors import PipelineError
from .progress import ProgressBar

log = logging.getLogger("unianimate")

PoseBackend = Literal["auto", "dwpose", "mediapipe", "keypoints"]
POSE_BACKENDS: tuple[str, ...] = ("auto", "dwpose", "mediapipe", "keypoints")
KEYPOINTS_FORMAT = "unianimate-wholebody134"


@dataclass
class PoseStage:
    """Result of :func:`prepare_poses`.

    ``reference_pose``: uint8 ``(H, W, 3)`` render of the (unaligned) reference pose, the model's
    dwpose frame 0. ``poses``: one uint8 ``(H, W, 3)`` render per selected driving frame (aligned
    unless alignment was switched off). ``backend``: the backend that produced the keypoints.
    """

    reference_pose: np.ndarray
    poses: list[np.ndarray]
    backend: str
    notes: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------------------------
# keypoints file
# --------------------------------------------------------------------------------------------

def _frame_from_entry(entry: dict[str, Any], where: str) -> PoseFrame:
    try:
        width, height = int(entry["width"]), int(entry["height"])
        kps = np.asarray(entry["keypoints_px"], dtype=np.float64)
        scores = np.asarray(entry["scores"], dtype=np.float64)
    except (KeyError, TypeError, ValueError) as exc:
        raise PipelineError(f"{where}: malformed keypoints entry ({exc}); expected width, height, keypoints_px, scores.") from exc
    if kps.shape != (134, 2) or scores.shape != (134,):
        raise PipelineError(f"{where}: expected 134 keypoints and scores, got {kps.shape} and {scores.shape}.")
    return PoseFrame(width, height, [person_from_wholebody(kps, scores, width, height)])


def load_keypoints_file(path: str | Path) -> tuple[PoseFrame | None, list[PoseFrame]]:
    """Read a ``unianimate-wholebody134`` keypoints file: (reference pose or None, driving poses)."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise PipelineError(f"could not read the keypoints file {p}: {exc}.") from exc
    if not isinstance(data, dict) or data.get("format") != KEYPOINTS_FORMAT:
        raise PipelineError(f"{p} is not a '{KEYPOINTS_FORMAT}' keypoints file (see demo/README.md for the format).")
    driving = [_frame_from_entry(e, f"{p.name} driving[{i}]") for i, e in enumerate(data.get("driving", []))]
    ref = data.get("reference")
    return (_frame_from_entry(ref, f"{p.name} reference") if ref else None), driving


# --------------------------------------------------------------------------------------------
# backends
# --------------------------------------------------------------------------------------------

@dataclass
class Extractor:
    """A pose backend: ``reference(image) -> PoseFrame`` and ``driving(frames, callback) -> [PoseFrame]``."""

    reference: Callable[[np.ndarray], PoseFrame]
    driving: Callable[..., list[PoseFrame]]


def _dwpose_extractor(files: tuple[Path, Path] | None) -> Extractor | None:
    if files is None:
        return None
    try:
        importlib.import_module("onnxruntime")
        importlib.import_module("cv2")
    except ImportError:
        return None
    from ..pose.dwpose import DWPoseEstimator
    from ..pose.extract import extract_poses

    estimator = DWPoseEstimator(files[0], files[1], "auto")
    return Extractor(estimator.detect, lambda frames, callback=None: extract_poses(estimator, frames, callback=callback))


def _mediapipe_extractor() -> Extractor | None:
    """The pose package's MediaPipe backend (static mode for the photo, tracking for the clip)."""
    try:
        module = importlib.import_module("..pose.mediapipe_backend", __package__)
        importlib.import_module("mediapipe")
    except ImportError:
        return None
    from ..pose.extract import extract_poses

    factory = module.MediaPipeEstimator

    def reference(image: np.ndarray) -> PoseFrame:
        with factory() as est:
            return est.detect(image)

    def driving(frames: Sequence[np.ndarray], callback: Any = None) -> list[PoseFrame]:
        with factory(video=True) as est:
            return extract_poses(est, frames, callback=callback)

    return Extractor(reference, driving)


def choose_extractor(backend: str, dwpose_files: tuple[Path, Path] | None,
                     has_keypoints: bool) -> tuple[str, Extractor | None]:
    """Resolve ``backend`` to (name, extractor); the ``keypoints`` backend has no extractor."""
    if backend not in POSE_BACKENDS:
        raise PipelineError(f"unknown pose backend {backend!r}; use one of {', '.join(POSE_BACKENDS)}.")
    if backend in ("auto", "dwpose"):
        ext = _dwpose_extractor(dwpose_files)
        if ext is not None:
            return "dwpose", ext
        if backend == "dwpose":
            raise PipelineError(
                f"pose backend 'dwpose' needs yolox_l.onnx and dw-ll_ucoco_384.onnx (from {DWPOSE_PAGE}) in a "
                "searched folder (e.g. --models DIR or ComfyUI/models/dwpose) plus `pip install onnxruntime "
                "opencv-python-headless`."
            )
    if backend in ("auto", "mediapipe"):
        ext = _mediapipe_extractor()
        if ext is not None:
            return "mediapipe", ext
        if backend == "mediapipe":
            raise PipelineError("pose backend 'mediapipe' needs `pip install mediapipe==0.10.21` (Python <= 3.12, numpy < 2).")
    if has_keypoints:
        return "keypoints", None
    raise PipelineError(
        "no pose backend is available: put yolox_l.onnx and dw-ll_ucoco_384.onnx into a searched folder "
        "(--models DIR) and install onnxruntime + opencv-python-headless, or install mediapipe==0.10.21, "
        "or pass pre-extracted keypoints with --keypoints FILE."
    )


# --------------------------------------------------------------------------------------------
# the stage
# --------------------------------------------------------------------------------------------

def _align(reference: PoseFrame, driving: Sequence[PoseFrame | None]) -> list[PoseFrame]:
    from ..pose.align import align_poses

    return align_poses(reference, list(driving))


def prepare_poses(reference_image: np.ndarray, driving_frames: Sequence[np.ndarray], indices: Sequence[int],
                  size: tuple[int, int], *, backend: str = "auto", dwpose_files: tuple[Path, Path] | None = None,
                  keypoints_file: str | Path | None = None, align: bool = True,
                  progress_stream: TextIO | None = None) -> PoseStage:
    """Keypoints of the reference and of the driving frames ``indices`` -> aligned renders at ``size = (W, H)``.

    ``driving_frames`` are the decoded clip frames (only ``indices`` are processed). With the
    ``keypoints`` backend the file's entry ``i`` belongs to clip frame ``i``.
    """
    name, extractor = choose_extractor(backend, dwpose_files, keypoints_file is not None)
    notes: list[str] = []
    if extractor is None:
        ref_frame, kp_frames = load_keypoints_file(keypoints_file)  # type: ignore[arg-type]
        if ref_frame is None:
            raise PipelineError(f"{keypoints_file} has no reference entry; it cannot be used with this reference image.")
        missing = [i for i in indices if i >= len(kp_frames)]
        if missing:
            raise PipelineError(f"{keypoints_file} has keypoints for {len(kp_frames)} frames, but frame {missing[0]} was selected.")
        driving = [kp_frames[i] for i in indices]
        notes.append("poses from pre-extracted keypoints (no DWPose files or MediaPipe found)")
    else:
        ref_frame = extractor.reference(reference_image)
        bar = ProgressBar(len(indices), f"poses ({name})", progress_stream) if progress_stream is not None else None
        driving = extractor.driving([driving_frames[i] for i in indices],
                                    callback=(lambda i, total: bar.update()) if bar is not None else None)
        if bar is not None:
            bar.close()
    ref_person = select_person(ref_frame)
    if ref_person is None:
        raise PipelineError("no person was found in the reference image; use a photo showing one person, ideally full body.")
    if align:
        aligned = _align(ref_frame, driving)
    else:  # one person per frame, as alignment would pick it
        aligned = [PoseFrame(f.width, f.height, [p] if (p := select_person(f)) is not None else []) for f in driving]
    width, height = size
    reference_pose = render_pose(ref_person, width, height)  # the official ref pose is the unaligned one
    poses = [render_pose(f, width, height) for f in aligned]
    empty = sum(1 for f in aligned if not f.people)
    if empty:
        notes.append(f"{empty} of {len(aligned)} driving frames have no detected person (black pose)")
    return PoseStage(reference_pose, poses, name, notes)
