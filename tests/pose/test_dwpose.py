"""DWPose pre/post-processing parity with the official code, through real onnxruntime sessions.

The ONNX files in tests/fixtures/dwpose are stand-ins with the real models' input/output
signature whose outputs are constants (see the fixtures' documentation): every number below
was produced by the official UniAnimate code running on those same files.
"""
from __future__ import annotations

import logging
import sys

import numpy as np
import pytest

cv2 = pytest.importorskip("cv2")
pytest.importorskip("onnxruntime")

from unianimate_core.pose.detection import decode_yolox, letterbox, multiclass_nms, nms  # noqa: E402
from unianimate_core.pose.dwpose import DWPoseEstimator, EstimatorCache  # noqa: E402
from unianimate_core.pose.errors import PoseDependencyError, PoseInputError, UniAnimateError  # noqa: E402
from unianimate_core.pose.keypoints import to_dwpose_dict  # noqa: E402
from unianimate_core.pose.simcc import crop_geometry, crop_person, decode_simcc  # noqa: E402

CASES = ["astronaut", "astronaut.nodet", "grace_hopper", "grace_hopper.nodet"]
POSE_INPUT_WH = (288, 384)

# --- Tolerances (docs/testing.md) ------------------------------------------------------------------------
# The fixtures were computed with numpy 2.4 and OpenCV 5.0 on another machine. Integer image operations
# (letterbox resize, drawing) are exact on every supported OpenCV (tests/pose/test_render.py); these
# floating-point steps are not:

EXP_RTOL = 7.2e-7
"""Relative difference two environments may give for a YOLOX box size ``exp(p) * stride`` (float32):
``np.exp`` on float32 is not correctly rounded (numpy's implementation is within 2.52 ulp, 2.45 measured
on 2 M samples; a C library ``expf`` within 1 ulp), so two environments differ by up to 2 x 2.52 ulp,
plus one ulp for the product with the stride: 6.04 x 2^-23 = 7.2e-7."""


def box_tolerance(boxes) -> np.ndarray:
    """Per coordinate of (..., 4) xyxy boxes in original pixels, ``(c -+ size / 2) / ratio``: the size term
    off by EXP_RTOL, plus one float32 ulp for each of the two roundings after it (subtraction, division)."""
    b = np.asarray(boxes, dtype=np.float64)
    size = np.concatenate([b[..., 2:] - b[..., :2]] * 2, axis=-1)
    return EXP_RTOL * size / 2 + 2 * np.spacing(np.abs(b).astype(np.float32)).astype(np.float64)


def geometry_tolerance(box) -> dict[str, np.ndarray]:
    """Propagate box_tolerance through the official crop geometry (docs/official_behaviour.md#dwpose-pose-model):
    center = box centre; scale = 1.25 x box size, the short side grown to w / h = 0.75; the affine map is a
    uniform scale m = 288 / scale_w (= 384 / scale_h) and a translation input_centre - m * center, built by
    getAffineTransform from float32 point pairs (one float32 rounding of each source point, 1e-12 for the
    float64 solve); keypoints = loc / (288, 384) * scale + center - scale / 2 with |loc / size - 1/2| <= 1."""
    b = np.asarray(box, dtype=np.float64)
    t = box_tolerance(b)
    d_center = (t[:2] + t[2:]) / 2
    d_raw = 1.25 * (t[:2] + t[2:])
    aspect = POSE_INPUT_WH[0] / POSE_INPUT_WH[1]
    d_scale = np.array([max(d_raw[0], aspect * d_raw[1]), max(d_raw[1], d_raw[0] / aspect)])
    center = (b[:2] + b[2:]) / 2
    size = (b[2:] - b[:2]) * 1.25
    scale = np.array([size[0], size[0] / aspect]) if size[0] > size[1] * aspect else np.array([size[1] * aspect, size[1]])
    d_center32 = d_center + np.spacing(np.float32(np.abs(center).max() + scale.max()))  # float32 source points
    m = POSE_INPUT_WH[0] / scale[0]
    d_m = m * max(d_scale[0] / scale[0], d_scale[1] / scale[1]) + m * float(d_center32.max()) / scale[0]
    d_translation = np.abs(center) * d_m + m * d_center32
    matrix = np.array([[d_m, d_m, d_translation[0]], [d_m, d_m, d_translation[1]]]) + 1e-12
    return {"center": d_center, "scale": d_scale, "matrix": matrix,
            "keypoints": np.full(2, float(d_scale.max() + d_center.max()))}


def warp_tolerance(expected: np.ndarray) -> np.ndarray:
    """Per pixel of a cv2.warpAffine INTER_LINEAR uint8 result: OpenCV quantises source positions to 1/32
    pixel (INTER_BITS = 5) and versions place them differently (4.x and 5.x differ); one 1/32 step in x
    and in y moves a bilinear sample by at most 2/32 of the local intensity range (bounded by the 5 x 5
    neighbourhood of the expected crop), plus 1 for the final rounding."""
    e = np.pad(expected.astype(np.int32), ((2, 2), (2, 2), (0, 0)), mode="edge")
    windows = np.lib.stride_tricks.sliding_window_view(e, (5, 5), axis=(0, 1))
    local_range = windows.max(axis=(-2, -1)) - windows.min(axis=(-2, -1))
    return local_range / 16 + 1


def assert_within(got, want, tol, what: str) -> None:
    got, want = np.asarray(got, dtype=np.float64), np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (what, got.shape, want.shape)
    excess = np.abs(got - want) / tol
    assert bool(np.all(excess <= 1)), f"{what}: |difference| up to {float(np.nanmax(excess)):.3g} x its tolerance"


def _image(dwpose_dir, meta, tag):
    bgr = cv2.imread(str(dwpose_dir / meta["images"][tag]["image"]))  # the official reads BGR
    return bgr[..., ::-1].copy(), bgr  # our API takes RGB


def _estimator(dwpose_dir, tag) -> DWPoseEstimator:
    det = "yolox_l_empty.onnx" if tag.endswith(".nodet") else "yolox_l.onnx"
    return DWPoseEstimator(dwpose_dir / det, dwpose_dir / "dw-ll_ucoco_384.onnx", providers="cpu", threads=1)


@pytest.fixture(scope="module")
def estimators(dwpose_dir):
    return {tag: _estimator(dwpose_dir, tag) for tag in ("astronaut", "astronaut.nodet")}


def _est(estimators, tag):
    return estimators["astronaut.nodet" if tag.endswith(".nodet") else "astronaut"]


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_letterbox_matches_official_detector_input(name, dwpose_dir, dwpose_meta, dwpose_tensors):
    """Exact: cv2.resize INTER_LINEAR on uint8 is fixed-point arithmetic (identical on OpenCV 4.10-5.1)."""
    _, bgr = _image(dwpose_dir, dwpose_meta, name)
    blob, ratio = letterbox(bgr)
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32
    assert ratio == dwpose_tensors[f"{name}.det_ratio"][0]
    png_bgr = cv2.imread(str(dwpose_dir / f"{name}.det_input.png"))  # RGB PNG read as BGR = the input
    np.testing.assert_array_equal(png_bgr.transpose(2, 0, 1).astype(np.float32), blob[0],
                                  err_msg=f"OpenCV {cv2.__version__}: see docs/testing.md for the verified versions")


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_detector_decode_and_nms_match_official(name, dwpose_dir, dwpose_meta, dwpose_tensors, estimators):
    est = estimators["astronaut"]
    _, bgr = _image(dwpose_dir, dwpose_meta, name)
    blob, ratio = letterbox(bgr)
    raw = est._det.run(None, {est._det_input: blob})[0][0]
    boxes, scores = decode_yolox(raw)
    rows = dwpose_tensors["det_raw.anchor_idx"]
    want = dwpose_tensors[f"{name}.det_decoded_boxes_xyxy_rows"]
    assert_within(boxes[rows] / ratio, want, box_tolerance(want), "decoded boxes")
    # objectness x class probability: one IEEE float32 product of the model's outputs, identical everywhere
    np.testing.assert_array_equal(scores[rows], dwpose_tensors[f"{name}.det_scores_rows"])
    # All classes, as the official multiclass NMS: includes the non-person rows, drops the
    # duplicate of P1 and P4 (suppressed only thanks to the "+1 pixel" IoU convention).
    dets = multiclass_nms(boxes / ratio, scores, 0.45, 0.1)
    want = dwpose_tensors[f"{name}.nms_dets"]
    assert dets.shape == want.shape
    assert_within(dets[:, :4], want[:, :4], box_tolerance(want[:, :4]), "NMS boxes")
    np.testing.assert_array_equal(dets[:, 4:], want[:, 4:])  # scores and classes


def test_nms_plus_one_convention_decides_borderline_overlap():
    """Two boxes whose IoU is 0.449 without and 0.453 with the +1 convention (threshold 0.45)."""
    boxes = np.array([[0.0, 0.0, 100.0, 100.0], [38.0, 0.0, 138.0, 100.0]], dtype=np.float32)
    w = 100 - 38 + 1
    iou_plus1 = w * 101 / (2 * 101 * 101 - w * 101)
    iou_plain = (100 - 38) * 100 / (2 * 100 * 100 - (100 - 38) * 100)
    assert iou_plain < 0.45 < iou_plus1
    assert nms(boxes, np.array([0.9, 0.8], dtype=np.float32), 0.45) == [0]


@pytest.mark.parametrize("tag", CASES)
def test_boxes_crops_and_keypoints_match_official(tag, dwpose_dir, dwpose_meta, dwpose_tensors, estimators, read_png):
    est = _est(estimators, tag)
    meta = dwpose_meta["images"][tag]
    rgb, bgr = _image(dwpose_dir, dwpose_meta, tag)
    res = est.wholebody(rgb)
    # no detection -> the whole image is the box (official fallback)
    want_boxes = np.array(meta["final_boxes_xyxy"] or [[0, 0, rgb.shape[1], rgb.shape[0]]], dtype=np.float64)
    assert len(res.boxes) == meta["n_boxes"] == len(want_boxes)
    assert_within(res.boxes[:, :4], want_boxes, box_tolerance(want_boxes), "final boxes")
    keypoint_tol = np.zeros((len(want_boxes), 1, 2))
    for i, (box, want_box, ref) in enumerate(zip(res.boxes, want_boxes, meta["boxes"])):
        tol = geometry_tolerance(want_box)
        keypoint_tol[i] = tol["keypoints"]
        geom = crop_geometry(box[:4], est.pose_input_wh)
        assert_within(geom.center, ref["center"], tol["center"], "crop centre")
        assert_within(geom.scale, ref["scale_after_aspect_fix"], tol["scale"], "crop scale")
        assert_within(geom.matrix, ref["warp_matrix"], tol["matrix"], "warp matrix")
        crop = crop_person(bgr, geom, est.pose_input_wh)
        expected = read_png(dwpose_dir / ref["crop_png"])[..., ::-1]  # PNG is RGB of the BGR crop
        assert_within(crop, expected, warp_tolerance(expected), f"crop (OpenCV {cv2.__version__})")
    assert_within(res.keypoints133, dwpose_tensors[f"{tag}.pose_keypoints133"], keypoint_tol, "keypoints")
    np.testing.assert_array_equal(res.scores133, dwpose_tensors[f"{tag}.pose_scores133"].astype(np.float64))
    assert_within(res.keypoints134, dwpose_tensors[f"{tag}.wholebody_keypoints134"], keypoint_tol, "keypoints134")
    np.testing.assert_array_equal(res.scores134, dwpose_tensors[f"{tag}.wholebody_scores134"])


@pytest.mark.parametrize("tag", CASES)
def test_detect_gives_official_dwpose_dict_for_person_0(tag, dwpose_dir, dwpose_meta, estimators):
    rgb, _ = _image(dwpose_dir, dwpose_meta, tag)
    frame = _est(estimators, tag).detect(rgb)
    assert (frame.width, frame.height) == (rgb.shape[1], rgb.shape[0])
    meta = dwpose_meta["images"][tag]
    ref = meta["dwpose_dict"]
    box = (meta["final_boxes_xyxy"] or [[0, 0, rgb.shape[1], rgb.shape[0]]])[0]
    tol = geometry_tolerance(box)["keypoints"] / [rgb.shape[1], rgb.shape[0]]  # normalised coordinates
    got = to_dwpose_dict(frame.people[0])
    visible = np.asarray(ref["bodies"]["candidate"]) != -1  # hidden points are exactly -1 on both sides
    np.testing.assert_array_equal(np.asarray(got["bodies"]["candidate"]) != -1, visible)
    assert_within(got["bodies"]["candidate"], ref["bodies"]["candidate"], tol, "body")
    np.testing.assert_array_equal(got["bodies"]["subset"], ref["bodies"]["subset"])
    assert_within(got["hands"], ref["hands"], tol, "hands")
    assert_within(got["faces"], ref["faces"], tol, "faces")


def test_detect_people_are_in_score_order_with_boxes(dwpose_dir, dwpose_meta, estimators):
    rgb, _ = _image(dwpose_dir, dwpose_meta, "astronaut")
    frame = estimators["astronaut"].detect(rgb)
    scores = [p.det_score for p in frame.people]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    first = np.array(dwpose_meta["images"]["astronaut"]["final_boxes_xyxy"][0])
    assert_within(frame.people[0].box, first / 512.0, box_tolerance(first) / 512.0, "box")
    only_one = estimators["astronaut"].detect(rgb, max_people=1)
    assert len(only_one.people) == 1
    np.testing.assert_array_equal(only_one.people[0].keypoints, frame.people[0].keypoints)


def test_detect_accepts_float_images_like_comfyui(dwpose_dir, dwpose_meta, estimators):
    rgb, _ = _image(dwpose_dir, dwpose_meta, "grace_hopper")
    a = estimators["astronaut"].detect(rgb)
    b = estimators["astronaut"].detect(rgb.astype(np.float32) / 255.0)
    np.testing.assert_array_equal(a.people[0].keypoints, b.people[0].keypoints)
    torch = pytest.importorskip("torch")
    c = estimators["astronaut"].detect(torch.from_numpy(rgb).to(torch.bfloat16) / 255.0)  # lossy dtype, still runs
    assert len(c.people) == len(a.people)
    d = estimators["astronaut"].detect(torch.from_numpy(rgb.astype(np.float32) / 255.0))
    np.testing.assert_array_equal(d.people[0].keypoints, a.people[0].keypoints)
    with pytest.raises(PoseInputError, match="one image"):
        estimators["astronaut"].detect(np.zeros((2, 8, 8, 3), np.uint8))


def test_simcc_decoding_rules():
    x = np.full((1, 3, 10), -0.05, np.float32)
    y = np.full((1, 3, 12), -0.05, np.float32)
    x[0, 0, 4], y[0, 0, 6] = 0.9, 0.5  # normal peak -> score min = 0.5
    x[0, 1, 2] = x[0, 1, 7] = 0.8  # plateau: first maximum wins
    y[0, 1, 3] = 0.8
    # row 2 stays <= 0 everywhere -> location -1 before the split-ratio division
    locs, vals = decode_simcc(x, y, 2.0)
    np.testing.assert_array_equal(locs[0], [[2.0, 3.0], [1.0, 1.5], [-0.5, -0.5]])
    np.testing.assert_array_equal(vals[0], np.array([0.5, 0.8, -0.05], np.float32))


def test_estimator_cache_reuses_sessions(dwpose_dir):
    cache = EstimatorCache()
    a = cache.get(dwpose_dir / "yolox_l.onnx", dwpose_dir / "dw-ll_ucoco_384.onnx", "cpu", threads=1)
    b = cache.get(dwpose_dir / "yolox_l.onnx", dwpose_dir / "dw-ll_ucoco_384.onnx", "cpu", threads=1)
    assert a is b and len(cache) == 1
    cache.clear()
    assert len(cache) == 0


def test_provider_is_logged_and_unavailable_cuda_falls_back(dwpose_dir, caplog):
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this onnxruntime has CUDA; the fallback path is not reachable")
    with caplog.at_level(logging.INFO, logger="unianimate"):
        est = DWPoseEstimator(dwpose_dir / "yolox_l.onnx", dwpose_dir / "dw-ll_ucoco_384.onnx", providers="cuda")
    assert est.provider == "CPUExecutionProvider"
    text = caplog.text
    assert "CUDAExecutionProvider was requested" in text and "onnxruntime-gpu" in text
    assert "running on the CPU" in text


def test_failing_accelerated_session_retries_on_cpu(dwpose_dir, caplog, monkeypatch):
    import onnxruntime as ort

    from unianimate_core.pose import runtime

    real = ort.InferenceSession

    def fake(path, sess_options=None, providers=None):
        if providers and providers[0] != "CPUExecutionProvider":
            raise RuntimeError("libcudnn.so.9: cannot open shared object file")
        return real(path, sess_options=sess_options, providers=providers)

    monkeypatch.setattr(ort, "InferenceSession", fake)
    with caplog.at_level(logging.WARNING, logger="unianimate"):
        sess = runtime.create_session(dwpose_dir / "yolox_l.onnx", ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert runtime.session_provider(sess) == "CPUExecutionProvider"
    assert "libcudnn.so.9" in caplog.text and "falling back to the CPU" in caplog.text


def test_not_an_onnx_file_gives_actionable_error(tmp_path, dwpose_dir):
    bad = tmp_path / "dw-ll_ucoco_384.onnx"
    bad.write_bytes(b"this is an HTML error page, not a model")
    with pytest.raises(UniAnimateError, match="download it again"):
        DWPoseEstimator(dwpose_dir / "yolox_l.onnx", bad, providers="cpu")


def test_wrong_pose_model_is_rejected(dwpose_dir):
    with pytest.raises(PoseInputError, match="does not look like the DWPose model"):
        DWPoseEstimator(dwpose_dir / "yolox_l.onnx", dwpose_dir / "yolox_l.onnx", providers="cpu")


@pytest.mark.parametrize("module, hint", [("onnxruntime", "pip install onnxruntime"), ("cv2", "pip install opencv-python-headless")])
def test_missing_runtime_package_says_what_to_install(module, hint, monkeypatch):
    from unianimate_core.pose import _deps

    monkeypatch.setitem(sys.modules, module, None)  # makes `import module` raise ImportError
    func = _deps.import_onnxruntime if module == "onnxruntime" else _deps.import_cv2
    with pytest.raises(PoseDependencyError, match=hint):
        func()
