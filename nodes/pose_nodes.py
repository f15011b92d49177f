"""PoseExtractor and PoseAlign: the pose pipeline as nodes (IMAGE in, POSE_KEYPOINT + IMAGE out).

POSE_KEYPOINT is comfyui_controlnet_aux's format (pixel coordinates, binary confidences), plus
extra keys other readers ignore (feet, raw scores), so poses flow to and from other packs' nodes
and pose editors. Rendered IMAGE outputs use the colours UniAnimate was trained on (R/B swapped
against OpenPose; ``colors`` switches to the standard OpenPose look, e.g. for a ControlNet).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Optional

import comfy.model_management as mm
import comfy.utils
import numpy as np
import torch
from comfy_api.latest import io

from ..unianimate_core.errors import PoseError
from ..unianimate_core.pose.align import AlignConfig, align_poses
from ..unianimate_core.pose.dwpose import EstimatorCache
from ..unianimate_core.pose.keypoints import PoseFrame
from ..unianimate_core.model_files import DOWNLOADS
from ..unianimate_core.pose.models import DWPOSE_DETECTOR, DWPOSE_POSE_MODEL, find_model_file
from ..unianimate_core.pose.pose_keypoint import from_pose_keypoint, to_pose_keypoint
from ..unianimate_core.pose.render import render_pose
from ..unianimate_core.pose.selection import SELECT_MODES
from . import choices, folders
from .conditioning import image_batch
from .types import PoseKeypoint

log = logging.getLogger("UniAnimate")

CATEGORY = "UniAnimate/pose"
COLORS = choices.COLOR_KEYS
DEVICES = ("auto", "cpu")
#: ONNX Runtime sessions survive between runs (creating them costs seconds); keyed by file + device.
_estimators = EstimatorCache()


# ------------------------------------------------------------------------------------ helpers
def model_options(default: str) -> list[str]:
    """Files for a model combo; the official name is always offered (validation explains a missing one)."""
    names = [os.path.basename(n) for n in folders.pose_files()]
    return sorted(set(names) | {default}, key=lambda n: (n != default, n))


def find_pose_model(name: str) -> Path:
    """A DWPose file by name in the ``dwpose`` folders (see folders.py); the error lists them all."""
    return find_model_file(name, folders.searched_folders(folders.POSE_FOLDER))


def rgb_to_image(frames: np.ndarray) -> torch.Tensor:
    """(N, H, W, 3) uint8 -> ComfyUI IMAGE float32 in [0, 1] on the intermediate device."""
    return (torch.from_numpy(np.ascontiguousarray(frames)).float() / 255.0).to(mm.intermediate_device())


def render_frames(frames: list[PoseFrame], width: int, height: int, colors: str, draw_hands: bool = True,
                  draw_face: bool = False) -> torch.Tensor:
    """Render pose frames as an IMAGE batch (N, height, width, 3)."""
    out = np.stack([render_pose(f, width, height, colors=colors, draw_hands=draw_hands, draw_face=draw_face)
                    for f in frames]) if frames else np.zeros((0, height, width, 3), np.uint8)
    return rgb_to_image(out)


def render_size(width: int, height: int, short_side: int) -> tuple[int, int]:
    """Keep the aspect ratio of a (width, height) canvas with the given short side (even numbers)."""
    scale = short_side / min(width, height)
    return max(2, round(width * scale / 2) * 2), max(2, round(height * scale / 2) * 2)


def has_person(frame: PoseFrame) -> bool:
    return any((p.scores[:18] > 0.3).any() for p in frame.people)


def check_keypoints(data: Any, name: str) -> list[PoseFrame]:
    if not isinstance(data, (list, tuple, dict, str)):
        raise PoseError(f"{name} must be POSE_KEYPOINT (from UniAnimate Pose Extractor, controlnet_aux's DWPose "
                        f"Estimator or a pose editor); got {type(data).__name__}.")
    frames = from_pose_keypoint(data)
    if not frames:
        raise PoseError(f"{name} contains no frames; connect the keypoints output of UniAnimate Pose Extractor "
                        "run on at least one image.")
    return frames


# ---------------------------------------------------------------------------------- extractor
class PoseExtractor(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="UniAnimatePoseExtractor",
            display_name="UniAnimate Pose Extractor",
            category=CATEGORY,
            description=(
                "Detects whole-body poses with DWPose (YOLOX-L + dw-ll_ucoco_384, ONNX Runtime; GPU when "
                "onnxruntime-gpu is installed) in every image, e.g. the reference photo or the frames of a driving "
                "video. Outputs POSE_KEYPOINT and the poses drawn the way UniAnimate was trained."
            ),
            inputs=[
                io.Image.Input("images", tooltip="One image or a batch of video frames."),
                io.Combo.Input("detector_model", options=model_options(DWPOSE_DETECTOR), default=DWPOSE_DETECTOR,
                               tooltip=f"Person detector: {DOWNLOADS['dwpose_detector'].hint()} (also found in "
                                       "models/unianimate and controlnet_aux's cache)."),
                io.Combo.Input("pose_model", options=model_options(DWPOSE_POSE_MODEL), default=DWPOSE_POSE_MODEL,
                               tooltip=f"Whole-body pose model: {DOWNLOADS['dwpose_pose'].hint()}."),
                io.Int.Input("max_people", default=1, min=0, max=64,
                             tooltip="People per image to estimate, best detections first (1 = the official choice; "
                                     "0 = everyone; each person costs one pose-model run)."),
                io.Combo.Input("device", options=list(DEVICES), default="auto",
                               tooltip="auto: the GPU when this onnxruntime build can use it (onnxruntime-gpu), else "
                                       "the CPU (about 0.5-2 s per frame). cpu: always the CPU."),
                io.Int.Input("render_short_side", default=512, min=64, max=4096, step=8,
                             tooltip="Size of the rendered pose images: short side in pixels, aspect ratio of the "
                                     "input kept (512 = the canvas the model was trained on)."),
                io.Combo.Input("colors", options=list(COLORS), default="unianimate",
                               tooltip="Colours of the rendered poses. unianimate: the colours UniAnimate was trained "
                                       "on (R/B swapped), for its sampler. openpose: standard OpenPose colours, for "
                                       "other models (e.g. a ControlNet)."),
            ],
            outputs=[
                PoseKeypoint.Output(display_name="keypoints",
                                    tooltip="POSE_KEYPOINT: one dict per image (controlnet_aux format, pixels)."),
                io.Image.Output(display_name="pose_images", tooltip="The detected poses drawn (body, feet, hands)."),
            ],
        )

    @classmethod
    def validate_inputs(cls, detector_model: Optional[str] = None, pose_model: Optional[str] = None,
                        colors: Any = None) -> bool | str:
        """The model files must exist (every searched folder and the download page); old colour labels are
        accepted (choices.py). Each message names its input."""
        problems: list[Optional[str]] = []
        for input_name, name in (("detector_model", detector_model), ("pose_model", pose_model)):
            if name is None:
                continue
            try:
                find_pose_model(name)
            except (ValueError, OSError) as exc:  # PoseModelNotFoundError (a UniAnimateError, a FileNotFoundError)
                problems.append(f"{input_name}: {exc}")
        problems.append(choices.color_problem("colors", colors))
        return choices.verdict(problems)

    @classmethod
    def execute(cls, images: torch.Tensor, detector_model: str = DWPOSE_DETECTOR,
                pose_model: str = DWPOSE_POSE_MODEL, max_people: int = 1, device: str = "auto",
                render_short_side: int = 512, colors: str = "unianimate") -> io.NodeOutput:
        colors = choices.color_key("colors", colors)
        images = image_batch(images, "images")
        if device not in DEVICES:
            raise PoseError(f"device must be one of {DEVICES}; got {device!r}.")
        estimator = _estimators.get(find_pose_model(detector_model), find_pose_model(pose_model), device)
        bar = comfy.utils.ProgressBar(images.shape[0])
        frames: list[PoseFrame] = []
        for i in range(images.shape[0]):
            mm.throw_exception_if_processing_interrupted()
            frames.append(estimator.detect(images[i].cpu(), max_people=max_people or None))
            bar.update_absolute(i + 1, images.shape[0])
        missing = [i for i, f in enumerate(frames) if not has_person(f)]
        if len(missing) == len(frames):
            raise PoseError(
                f"No person detected in {'the image' if len(frames) == 1 else f'any of the {len(frames)} frames'}. "
                "Use an image where the whole person is visible and not too small, check that the right image is "
                "connected, and that the detector file is yolox_l.onnx."
            )
        if missing:
            log.warning("UniAnimate: no person in %d of %d frames (%s%s); those poses stay empty.", len(missing),
                        len(frames), ", ".join(map(str, missing[:10])), "..." if len(missing) > 10 else "")
        w, h = render_size(frames[0].width, frames[0].height, render_short_side)
        return io.NodeOutput(to_pose_keypoint(frames), render_frames(frames, w, h, colors))


# -------------------------------------------------------------------------------------- align
class PoseAlign(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="UniAnimatePoseAlign",
            display_name="UniAnimate Pose Align",
            category=CATEGORY,
            description=(
                "Retargets the driving poses to the body of the person in the reference image (UniAnimate's pose "
                "alignment: global scale, then every bone length, then the neck position), with guards for missing "
                "keypoints. Outputs the aligned POSE_KEYPOINT, the aligned poses drawn at the sampler's size, and "
                "the reference pose."
            ),
            inputs=[
                PoseKeypoint.Input("reference_keypoints",
                                   tooltip="Pose of the reference image (Pose Extractor on the reference photo)."),
                PoseKeypoint.Input("driving_keypoints",
                                   tooltip="Poses of the driving video (Pose Extractor on its frames)."),
                io.Int.Input("width", default=512, min=64, max=4096, step=64,
                             tooltip="Width of the rendered pose images: use the sampler's width."),
                io.Int.Input("height", default=768, min=64, max=4096, step=64,
                             tooltip="Height of the rendered pose images: use the sampler's height."),
                io.Boolean.Input("align", default=True,
                                 tooltip="Retarget the poses to the reference body (off: draw the driving poses as "
                                         "they are, e.g. when they come from the same person)."),
                io.Int.Input("calibration_frame", default=-1, min=-1, max=100000,
                             tooltip="Driving frame the body proportions are measured on (-1 = automatic: the most "
                                     "complete skeleton among the first frames; the official code uses frame 0)."),
                io.Float.Input("smoothing", default=0.0, min=0.0, max=10.0, step=0.1,
                               tooltip="Temporal smoothing of the aligned keypoints (Gaussian sigma in frames; 0 = "
                                       "off, official). 1-2 removes jitter."),
                io.Combo.Input("person", options=list(SELECT_MODES), default="score",
                               tooltip="Which person to follow when a frame has several: score (best detection, "
                                       "official), largest, or index (person_index)."),
                io.Int.Input("person_index", default=0, min=0, max=64,
                             tooltip="With person = index: which detected person (0 = first)."),
                io.Combo.Input("colors", options=list(COLORS), default="unianimate",
                               tooltip="Colours of the rendered poses. unianimate: the colours UniAnimate was trained "
                                       "on (R/B swapped), for its sampler. openpose: standard OpenPose colours."),
            ],
            outputs=[
                PoseKeypoint.Output(display_name="aligned_keypoints",
                                    tooltip="The driving poses on the reference canvas (POSE_KEYPOINT)."),
                io.Image.Output(display_name="pose_images", tooltip="The aligned poses drawn at width x height: "
                                                                      "connect to the sampler's poses input."),
                io.Image.Output(display_name="reference_pose",
                                tooltip="The reference pose drawn at width x height: connect to the sampler's "
                                        "reference_pose input."),
            ],
        )

    @classmethod
    def validate_inputs(cls, colors: Any = None) -> bool | str:
        """Old colour labels are accepted (choices.py)."""
        return choices.verdict([choices.color_problem("colors", colors)])

    @classmethod
    def execute(cls, reference_keypoints: Any, driving_keypoints: Any, width: int = 512, height: int = 768,
                align: bool = True, calibration_frame: int = -1, smoothing: float = 0.0, person: str = "score",
                person_index: int = 0, colors: str = "unianimate") -> io.NodeOutput:
        colors = choices.color_key("colors", colors)
        ref_frames = check_keypoints(reference_keypoints, "reference_keypoints")
        if len(ref_frames) != 1:
            raise PoseError(
                f"reference_keypoints has {len(ref_frames)} frames; it must be the pose of the single reference "
                "image. Did you swap reference_keypoints and driving_keypoints?"
            )
        driving = check_keypoints(driving_keypoints, "driving_keypoints")
        reference = ref_frames[0]
        if not has_person(reference):
            raise PoseError("No person in the reference pose: use a reference photo that shows the person (ideally "
                            "the full body) and check the Pose Extractor on it.")
        if not any(has_person(f) for f in driving):
            raise PoseError(f"No person in any of the {len(driving)} driving frames; check the driving video and "
                            "its Pose Extractor.")
        if align:
            config = AlignConfig(calibration="auto" if calibration_frame < 0 else int(calibration_frame),
                                 smoothing=float(smoothing), person=person, person_index=int(person_index))
            if isinstance(config.calibration, int) and config.calibration >= len(driving):
                raise PoseError(f"calibration_frame {calibration_frame} is past the last driving frame "
                                f"({len(driving) - 1}); use -1 (automatic) or a smaller index.")
            aligned = align_poses(reference, driving, config)
        else:
            aligned = driving
        poses = render_frames(aligned, width, height, colors)
        ref_image = render_frames([reference], width, height, colors)
        return io.NodeOutput(to_pose_keypoint(aligned), poses, ref_image)
