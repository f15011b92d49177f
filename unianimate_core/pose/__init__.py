"""The pose pipeline: DWPose extraction, MediaPipe fallback, rendering, alignment, POSE_KEYPOINT.

Pure numpy; OpenCV, onnxruntime and mediapipe are imported only inside the functions that need
them (a missing package raises an error naming the ``pip install`` to run). Never imports ComfyUI.

    from unianimate_core.pose import DWPoseEstimator, extract_poses, align_poses, render_poses
    est = DWPoseEstimator.from_search_dirs(default_search_dirs(models_dir, custom_nodes_dir))
    ref = est.detect(reference_rgb)                    # PoseFrame (all people)
    poses = extract_poses(est, video_frames_rgb)      # list[PoseFrame], one person each
    aligned = align_poses(ref, poses)                  # on the reference canvas
    images = render_poses(aligned, 512, 768)           # (N, 768, 512, 3) uint8, trained colours

See docs/pose.md for the full API, the formats and the deviations from the official code.
"""
from .align import BONES, AlignConfig, Alignment, align_poses, choose_calibration, plan_alignment
from .dwpose import DWPoseEstimator, EstimatorCache, WholebodyResult
from .errors import PoseAlignmentError, PoseDependencyError, PoseError, PoseInputError, PoseModelNotFoundError
from .extract import extract_poses
from .fitting import fit_frame, fit_geometry
from .image import swap_red_blue, to_rgb_uint8
from .keypoints import (
    DEFAULT_THRESHOLD,
    NUM_KEYPOINTS,
    Person,
    PoseFrame,
    from_dwpose_dict,
    person_from_coco133,
    person_from_wholebody,
    to_dwpose_dict,
)
from .mediapipe_backend import MediaPipeEstimator, mediapipe_to_coco133
from .models import DOWNLOAD_URLS, DWPOSE_DETECTOR, DWPOSE_POSE_MODEL, default_search_dirs, find_model_file
from .pose_keypoint import from_pose_keypoint, to_pose_keypoint
from .render import canvas_size, draw_dwpose_dict, render_pose, render_poses
from .runtime import resolve_providers
from .selection import select_person
from .smoothing import smooth_sequence

__all__ = [
    "AlignConfig", "Alignment", "BONES", "DEFAULT_THRESHOLD", "DOWNLOAD_URLS", "DWPOSE_DETECTOR",
    "DWPOSE_POSE_MODEL", "DWPoseEstimator", "EstimatorCache", "MediaPipeEstimator", "NUM_KEYPOINTS",
    "Person", "PoseAlignmentError", "PoseDependencyError", "PoseError", "PoseFrame", "PoseInputError",
    "PoseModelNotFoundError", "WholebodyResult", "align_poses", "canvas_size", "choose_calibration",
    "default_search_dirs", "draw_dwpose_dict", "extract_poses", "find_model_file", "fit_frame", "fit_geometry", "from_dwpose_dict",
    "from_pose_keypoint", "mediapipe_to_coco133", "person_from_coco133", "person_from_wholebody",
    "plan_alignment", "render_pose", "render_poses", "resolve_providers", "select_person",
    "smooth_sequence", "swap_red_blue", "to_dwpose_dict", "to_pose_keypoint", "to_rgb_uint8",
]
