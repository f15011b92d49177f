"""The evaluation suite: fidelity, pose following, identity, temporal quality, long-video drift and
seams, learned-feature metrics with user-supplied networks; Markdown/JSON tables and PNG plots.

Works on real videos (poses re-extracted with the pose pipeline) and, with exact ground truth, on
the synthetic world (``unianimate_core.toyworld``). See docs/evaluation-suite.md. Command line:
``python -m unianimate_core eval ...``.
"""
from .errors import EvaluationDependencyError, EvaluationError
from .evaluate import PCK_ALPHAS, VideoMetrics, evaluate_toy_clip, evaluate_video, toy_baselines
from .features import LPIPS, fid, frechet_distance, fvd, gaussian_stats
from .long_video import drift, seam_contrast, seam_frames
from .report import Report, merge

__all__ = [
    "EvaluationDependencyError", "EvaluationError", "LPIPS", "PCK_ALPHAS", "Report", "VideoMetrics", "drift",
    "evaluate_toy_clip", "evaluate_video", "fid", "frechet_distance", "fvd", "gaussian_stats", "merge",
    "seam_contrast", "seam_frames", "toy_baselines",
]
