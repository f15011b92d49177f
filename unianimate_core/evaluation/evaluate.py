"""One call per generated video: every metric that its inputs allow, per frame and summarised.

    from unianimate_core.evaluation import evaluate_video, evaluate_toy_clip
    m = evaluate_video(generated, ground_truth=gt, reference=ref, gt_poses=driving, pose_fn=extract)
    m.per_frame["psnr"]        # (F,) numpy, NaN where undefined
    m.summary["pck_0.2"]       # floats

What is computed depends on what is given:

=========================== ===============================================================
given                       metrics (per-frame name)
=========================== ===============================================================
ground_truth                ``l1``, ``psnr``, ``ssim``, ``tde`` (temporal difference error),
                            ``warp`` (warping error with the ground truth's flow; ``warp_gt`` is
                            the ground truth's own, the floor)
(always)                    ``flicker``
gt_poses + pred_poses or    ``pck_<alpha>`` (per alpha), ``kp_error`` (torso lengths, a missed
pose_fn                     joint counts 1), ``kp_error_px`` (pixels, detected joints only)
pred_masks + gt_masks       ``limb_iou``
pred/gt_limb_maps           ``limb_overlap`` (weighted Jaccard of soft part maps)
reference                   ``id_colour`` (Hellinger distance of character colours; only on
                            ``identity_frames`` when given: frames that show the character)
reference + encoder         ``id_embedding`` (cosine similarity of image embeddings)
=========================== ===============================================================

Summary: the mean over frames of each (NaN frames ignored), ``psnr_clip`` (PSNR of the clip's mean
squared error), ``drift_<metric>`` (last quarter minus first quarter) and ``drift_<metric>_slope``
(per 100 frames) for clips of 8+ frames, and with ``seams``: ``seam_<metric>`` (the mean of every
per-frame metric at the seam frames) and ``seam_ratio`` (the temporal difference error - or the
flicker without ground truth - at the seams divided by elsewhere; 1 = invisible seams).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np
import torch

from ..pose.keypoints import PoseFrame
from . import identity, image_metrics, long_video, pose_metrics, temporal
from .errors import EvaluationError
from .frames import as_video, same_shape

PCK_ALPHAS: tuple[float, ...] = (0.1, 0.2, 0.5)
DRIFT_METRICS: tuple[str, ...] = ("psnr", "ssim", "l1", "pck_0.2", "kp_error", "limb_iou", "limb_overlap", "id_colour",
                                  "id_embedding", "tde")


@dataclass
class VideoMetrics:
    """``per_frame`` name -> ``(F,)`` float array; ``summary`` name -> float; ``info`` extra facts."""

    per_frame: dict[str, np.ndarray] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return next(iter(self.per_frame.values())).shape[0] if self.per_frame else 0


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy().astype(np.float64) if isinstance(x, torch.Tensor) else np.asarray(x, np.float64)


def _nanmean(v: np.ndarray) -> float:
    v = v[np.isfinite(v)]
    return float(v.mean()) if v.size else float("nan")


def evaluate_video(generated, *, ground_truth=None, reference=None,
                   gt_poses: Sequence[PoseFrame] | None = None, pred_poses: Sequence[PoseFrame] | None = None,
                   pose_fn: Callable[[np.ndarray], Sequence[PoseFrame]] | None = None,
                   pose_rows: Sequence[int] = pose_metrics.BODY_ROWS, reference_length: Sequence[float] | None = None,
                   pred_masks: np.ndarray | None = None, gt_masks: np.ndarray | None = None,
                   pred_limb_maps: np.ndarray | None = None, gt_limb_maps: np.ndarray | None = None,
                   encoder=None, background=None, reference_mask=None, exclude_chroma: float | None = None,
                   exclude_mask: np.ndarray | None = None, identity_frames: np.ndarray | None = None,
                   seams: Sequence[int] | None = None, warp: bool = True,
                   pck_alphas: Sequence[float] = PCK_ALPHAS) -> VideoMetrics:
    """Evaluate one generated video (see the module docstring for what each argument enables)."""
    gen = as_video(generated, "generated")
    out = VideoMetrics()
    pf = out.per_frame
    f = gen.shape[0]
    if ground_truth is not None:
        gt = as_video(ground_truth, "ground_truth")
        same_shape(gen, gt, "evaluate_video")
        pf["l1"] = _np(image_metrics.l1(gen, gt))
        mse = _np(image_metrics.mse(gen, gt))
        pf["psnr"] = _np(image_metrics.psnr(gen, gt))
        pf["ssim"] = _np(image_metrics.ssim(gen, gt))
        pf["tde"] = _np(temporal.temporal_difference_error(gen, gt))
        out.summary["psnr_clip"] = image_metrics.psnr_from_mse(float(mse.mean()))
        if warp and f > 1:
            w, used = temporal.warp_error(gen, gt)
            wg, _ = temporal.warp_error(gt, gt)
            pf["warp"], pf["warp_gt"] = _np(w), _np(wg)
            out.info["warp_pixels_used"] = _nanmean(_np(used))
    pf["flicker"] = _np(temporal.flicker(gen))

    if gt_poses is not None and (pred_poses is not None or pose_fn is not None):
        if len(gt_poses) != f:
            raise EvaluationError(f"{len(gt_poses)} ground-truth poses for {f} generated frames; give one per frame.")
        if pred_poses is None:
            from .frames import to_uint8_hwc

            pred_poses = list(pose_fn(to_uint8_hwc(gen)))
        err, ref = pose_metrics.keypoint_errors(pred_poses, gt_poses, rows=pose_rows, reference_length=reference_length)
        for a in pck_alphas:
            pf[f"pck_{a:g}"] = pose_metrics.pck(err, ref, a)
        pf["kp_error"] = pose_metrics.mean_error(err, ref)
        finite = np.where(np.isfinite(err), err, np.nan)
        pf["kp_error_px"] = np.array([_nanmean(r) for r in finite])
        out.info["pose_joints_scored"] = int((~np.isnan(err)).sum())
        out.info["pose_joints_missed"] = int(np.isinf(err).sum())
    if pred_masks is not None and gt_masks is not None:
        pf["limb_iou"] = pose_metrics.mask_iou(np.asarray(pred_masks, bool), np.asarray(gt_masks, bool))
    if pred_limb_maps is not None and gt_limb_maps is not None:
        pf["limb_overlap"] = pose_metrics.soft_iou(np.asarray(pred_limb_maps), np.asarray(gt_limb_maps))

    if reference is not None:
        ref_img = as_video(reference, "reference")[:1]
        bg = as_video(background, "background")[:1] if background is not None else None
        rmask = torch.as_tensor(np.asarray(reference_mask, bool)) if reference_mask is not None else None
        if ref_img.shape[1:] == gen.shape[1:]:
            excl = torch.as_tensor(np.asarray(exclude_mask, bool)) if exclude_mask is not None else None
            try:
                pf["id_colour"] = _np(identity.colour_distance(gen, ref_img, reference_mask=rmask, background=bg,
                                                               exclude_chroma=exclude_chroma, exclude=excl))
            except EvaluationError as exc:  # e.g. nobody in the reference: say so, keep the other metrics
                out.info["id_colour_skipped"] = str(exc)
            if identity_frames is not None and "id_colour" in pf:
                pf["id_colour"] = np.where(np.asarray(identity_frames, bool), pf["id_colour"], np.nan)
        if encoder is not None:
            pf["id_embedding"] = _np(identity.embedding_similarity(gen, ref_img, encoder))

    for k, v in pf.items():
        out.summary[k] = _nanmean(v)
    if f >= 8:
        for k in DRIFT_METRICS:
            if k in pf:
                d = long_video.drift(pf[k])
                out.summary[f"drift_{k}"] = d["last_minus_first_quarter"]
                out.summary[f"drift_{k}_slope"] = d["slope_per_100"]
    if seams:
        for k in list(pf):
            out.summary[f"seam_{k}"] = long_video.seam_contrast(pf[k], seams)["at_seams"]
        key = "tde" if "tde" in pf else "flicker"
        out.summary["seam_ratio"] = long_video.seam_contrast(pf[key], seams)["ratio"]
        out.info["seams"] = list(int(s) for s in seams)
    out.info["frames"] = f
    out.info["size"] = [int(gen.shape[3]), int(gen.shape[2])]
    return out


#: Frames in which the character covers less of the image than this are not scored for identity
#: (it walked out of the frame: there is nothing to compare).
MIN_BODY_SHARE = 0.01


def evaluate_toy_clip(generated, clip, *, encoder=None, seams: Sequence[int] | None = None, warp: bool = True,
                      gt_ceiling: bool = False) -> VideoMetrics:
    """Evaluate frames generated for a world clip against its exact ground truth.

    Pose following uses the world's limb detector on the generated frames, scored on the 13 joints
    it detects against the ground-truth keypoints (PCK unit: the exact torso length), by limb-mask
    IoU against the exact masks, and by ``limb_overlap``: the weighted Jaccard index of the soft limb
    coverage maps (``toyworld.detector.limb_weights``) of the generated and the ground-truth frame -
    1.0 for the ground truth itself, and finer than hard masks on block frames. Identity: character colours against the reference's character
    (exact mask), with the known background, without the identity sleeves (the same on everyone) and
    without the pixels where the ground truth has the occluder.
    ``gt_ceiling``: also run the detector on the ground-truth frames (``info['gt_ceiling']``: what a
    perfect generator would score).
    """
    from ..toyworld.clip import SLEEVE_CHROMA
    from ..toyworld.detector import DETECTED_ROWS, detect_frames, limb_weights
    from ..toyworld.skeleton import OCCLUDER
    from .frames import to_uint8_hwc

    gen = as_video(generated, "generated")
    gen_u8 = to_uint8_hwc(gen)
    dets = detect_frames(gen_u8)
    ref_mask = (clip.reference_labels > 0) & (clip.reference_labels != OCCLUDER)
    common = dict(gt_poses=clip.pose_frames(), pose_rows=DETECTED_ROWS, reference_length=clip.torso_px,
                  gt_masks=clip.limb_masks(), encoder=encoder, background=clip.background,
                  reference_mask=ref_mask, exclude_chroma=SLEEVE_CHROMA, exclude_mask=clip.labels == OCCLUDER,
                  identity_frames=clip.body_mask().mean(axis=(1, 2)) >= MIN_BODY_SHARE,
                  seams=seams, warp=warp)
    m = evaluate_video(gen, ground_truth=clip.frames, reference=clip.reference,
                       pred_poses=[d.pose_frame() for d in dets], pred_masks=np.stack([d.masks for d in dets]),
                       pred_limb_maps=np.stack([limb_weights(f) for f in gen_u8]),
                       gt_limb_maps=np.stack([limb_weights(f) for f in clip.frames]), **common)
    if gt_ceiling:
        gdets = detect_frames(clip.frames)
        c = evaluate_video(clip.frames, pred_poses=[d.pose_frame() for d in gdets],
                           pred_masks=np.stack([d.masks for d in gdets]), warp=False,
                           **{k: v for k, v in common.items() if k not in ("seams", "warp", "encoder")})
        m.info["gt_ceiling"] = {k: v for k, v in c.summary.items() if k.startswith(("pck", "kp_", "limb_iou"))}
    m.info["clip"] = {"split": clip.split, "index": clip.index, "character_id": clip.character.character_id,
                      "motion_id": clip.motion_id}
    return m


def toy_baselines(clip) -> dict[str, np.ndarray]:
    """Trivial generators every model must beat: ``copy_reference`` (the reference image in every frame)
    and ``pose_images`` (the driving pose renders themselves)."""
    return {"copy_reference": np.repeat(clip.reference[None], len(clip), axis=0), "pose_images": clip.pose_images()}
