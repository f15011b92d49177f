"""DWPose pre/post-processing parity with the official code, through real onnxruntime sessions.

The ONNX files in tests/fixtures/dwpose are stand-ins with the real models' input/output
signature whose outputs are constants (see the fixtures' documentation): every number below
was produced by the official UniAnimate code running on those same files.
"""
from __future__ import annotations

import hashlib
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
EXACT_OPENCV = cv2.__version__.startswith(("5.0", "4.11"))  # fixture made with 5.0 (4.11 identical for resize)


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
    _, bgr = _image(dwpose_dir, dwpose_meta, name)
    blob, ratio = letterbox(bgr)
    assert blob.shape == (1, 3, 640, 640) and blob.dtype == np.float32
    assert ratio == dwpose_tensors[f"{name}.det_ratio"][0]
    digest = hashlib.sha256(blob[0].tobytes()).hexdigest()
    assert digest == dwpose_meta["images"][name]["det_input_sha256_of_float32_chw"]
    png_bgr = cv2.imread(str(dwpose_dir / f"{name}.det_input.png"))  # RGB PNG read as BGR = the input
    np.testing.assert_array_equal(png_bgr.transpose(2, 0, 1).astype(np.float32), blob[0])


@pytest.mark.parametrize("name", ["astronaut", "grace_hopper"])
def test_detector_decode_and_nms_match_official(name, dwpose_dir, dwpose_meta, dwpose_tensors, estimators):
    est = estimators["astronaut"]
    _, bgr = _image(dwpose_dir, dwpose_meta, name)
    blob, ratio = letterbox(bgr)
    raw = est._det.run(None, {est._det_input: blob})[0][0]
    boxes, scores = decode_yolox(raw)
    rows = dwpose_tensors["det_raw.anchor_idx"]
    np.testing.assert_array_equal(boxes[rows] / ratio, dwpose_tensors[f"{name}.det_decoded_boxes_xyxy_rows"])
    np.testing.assert_array_equal(scores[rows], dwpose_tensors[f"{name}.det_scores_rows"])
    # All classes, as the official multiclass NMS: includes the non-person rows, drops the
    # duplicate of P1 and P4 (suppressed only thanks to the "+1 pixel" IoU convention).
    dets = multiclass_nms(boxes / ratio, scores, 0.45, 0.1)
    np.testing.assert_array_equal(dets, dwpose_tensors[f"{name}.nms_dets"])


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
    if meta["final_boxes_xyxy"]:
        np.testing.assert_array_equal(res.boxes[:, :4], np.array(meta["final_boxes_xyxy"]))
    else:  # no detection -> the whole image is the box (official fallback)
        np.testing.assert_array_equal(res.boxes[:, :4], [[0, 0, rgb.shape[1], rgb.shape[0]]])
    assert len(res.boxes) == meta["n_boxes"]
    for box, ref in zip(res.boxes, meta["boxes"]):
        geom = crop_geometry(box[:4], est.pose_input_wh)
        np.testing.assert_array_equal(geom.center, ref["center"])
        np.testing.assert_array_equal(geom.scale, ref["scale_after_aspect_fix"])
        np.testing.assert_allclose(geom.matrix, ref["warp_matrix"], rtol=0, atol=1e-12)
        crop = crop_person(bgr, geom, est.pose_input_wh)
        expected = read_png(dwpose_dir / ref["crop_png"])[..., ::-1]  # PNG is RGB of the BGR crop
        if cv2.__version__.startswith("5.0"):
            assert hashlib.sha256(crop.tobytes()).hexdigest() == ref["crop_bgr_u8_sha256"]
            np.testing.assert_array_equal(crop, expected)
        else:  # warpAffine rounding differs between OpenCV versions by up to 4 grey levels
            assert np.abs(crop.astype(int) - expected).max() <= 4
    np.testing.assert_allclose(res.keypoints133, dwpose_tensors[f"{tag}.pose_keypoints133"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.scores133, dwpose_tensors[f"{tag}.pose_scores133"].astype(np.float64))
    np.testing.assert_allclose(res.keypoints134, dwpose_tensors[f"{tag}.wholebody_keypoints134"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(res.scores134, dwpose_tensors[f"{tag}.wholebody_scores134"])


@pytest.mark.parametrize("tag", CASES)
def test_detect_gives_official_dwpose_dict_for_person_0(tag, dwpose_dir, dwpose_meta, estimators):
    rgb, _ = _image(dwpose_dir, dwpose_meta, tag)
    frame = _est(estimators, tag).detect(rgb)
    assert (frame.width, frame.height) == (rgb.shape[1], rgb.shape[0])
    ref = dwpose_meta["images"][tag]["dwpose_dict"]
    got = to_dwpose_dict(frame.people[0])
    np.testing.assert_allclose(got["bodies"]["candidate"], ref["bodies"]["candidate"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got["bodies"]["subset"], ref["bodies"]["subset"])
    np.testing.assert_allclose(got["hands"], ref["hands"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(got["faces"], ref["faces"], rtol=0, atol=1e-9)


def test_detect_people_are_in_score_order_with_boxes(dwpose_dir, dwpose_meta, estimators):
    rgb, _ = _image(dwpose_dir, dwpose_meta, "astronaut")
    frame = estimators["astronaut"].detect(rgb)
    scores = [p.det_score for p in frame.people]
    assert scores == sorted(scores, reverse=True) and len(scores) == 3
    first = np.array(dwpose_meta["images"]["astronaut"]["final_boxes_xyxy"][0]) / 512.0
    np.testing.assert_allclose(frame.people[0].box, first, rtol=0, atol=1e-12)
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
