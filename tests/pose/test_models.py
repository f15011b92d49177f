"""Model-file discovery: search order, legacy locations, and the error a missing file gives."""
from __future__ import annotations

from pathlib import Path

import pytest

from unianimate_core.pose.errors import PoseModelNotFoundError, UniAnimateError
from unianimate_core.pose.models import default_search_dirs, find_model_file


def _rel(paths: list[Path], root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in paths]


def test_search_order_covers_our_folder_and_legacy_packs(tmp_path):
    models, nodes = tmp_path / "models", tmp_path / "custom_nodes"
    for pack in ("ComfyUI-UniAnimate-W", "ComfyUI-UniAnimate", "comfyui_controlnet_aux", "SomethingElse"):
        (nodes / pack).mkdir(parents=True)
    dirs = default_search_dirs(models, nodes, extra_dirs=[tmp_path / "mine"], environ={})
    assert _rel(dirs, tmp_path) == [
        "mine", "mine/dwpose", "mine/unianimate", "mine/checkpoints", "mine/clip_vision", "mine/vae",
        "models/dwpose", "models/unianimate", "models/checkpoints", "models/clip_vision", "models/vae",
        "custom_nodes/ComfyUI-UniAnimate/checkpoints",
        "custom_nodes/ComfyUI-UniAnimate/UniAnimate/checkpoints",
        "custom_nodes/ComfyUI-UniAnimate/checkpoints/iic/unianimate",
        "custom_nodes/ComfyUI-UniAnimate-W/checkpoints",
        "custom_nodes/ComfyUI-UniAnimate-W/UniAnimate/checkpoints",
        "custom_nodes/ComfyUI-UniAnimate-W/checkpoints/iic/unianimate",
        "custom_nodes/comfyui_controlnet_aux/ckpts/yzd-v/DWPose",
    ]


def test_it_is_the_command_lines_search(tmp_path):
    """One model-file search: the DWPose loader's folders are those of the command line, in its order."""
    from unianimate_core.pipeline.models import search_dirs

    root = tmp_path / "ComfyUI"
    (root / "custom_nodes" / "ComfyUI-UniAnimate-W").mkdir(parents=True)
    env = {"COMFYUI_PATH": str(root)}
    cli = search_dirs([tmp_path / "mine"], environ=env, cwd=tmp_path)
    pose = default_search_dirs(root / "models", root / "custom_nodes", extra_dirs=[tmp_path / "mine"], environ={})
    assert cli[:len(pose)] == pose


def test_lower_case_manager_install_and_aux_env_are_found(tmp_path):
    nodes = tmp_path / "custom_nodes"
    (nodes / "comfyui-unianimate-w" / "checkpoints").mkdir(parents=True)
    target = nodes / "comfyui-unianimate-w" / "checkpoints" / "yolox_l.onnx"
    target.write_bytes(b"x")
    aux = tmp_path / "aux_ckpts"
    dirs = default_search_dirs(None, nodes, environ={"AUX_ANNOTATOR_CKPTS_PATH": str(aux)})
    assert aux / "yzd-v" / "DWPose" in dirs
    assert find_model_file("yolox_l.onnx", dirs) == target


def test_first_match_wins(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()
    (b / "dw-ll_ucoco_384.onnx").write_bytes(b"b")
    assert find_model_file("dw-ll_ucoco_384.onnx", [a, b]) == b / "dw-ll_ucoco_384.onnx"
    (a / "dw-ll_ucoco_384.onnx").write_bytes(b"a")
    assert find_model_file("dw-ll_ucoco_384.onnx", [a, b]) == a / "dw-ll_ucoco_384.onnx"


def test_missing_file_lists_every_searched_path_and_download_url(tmp_path):
    dirs = default_search_dirs(tmp_path / "models", tmp_path / "custom_nodes", environ={})
    with pytest.raises(PoseModelNotFoundError) as info:
        find_model_file("dw-ll_ucoco_384.onnx", dirs)
    msg = str(info.value)
    for d in dirs:
        assert str(d / "dw-ll_ucoco_384.onnx") in msg
    assert "https://huggingface.co/yzd-v/DWPose/tree/main" in msg
    assert isinstance(info.value, UniAnimateError) and isinstance(info.value, FileNotFoundError)


def test_a_folder_named_like_the_model_is_not_a_match(tmp_path):
    (tmp_path / "yolox_l.onnx").mkdir()
    with pytest.raises(PoseModelNotFoundError):
        find_model_file("yolox_l.onnx", [tmp_path])
