"""Model-file search: --models folders (flat or ComfyUI layout), legacy packs, explicit paths."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from unianimate_core.pipeline.errors import PipelineError
from unianimate_core.pipeline.models import find_models, search_dirs


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


def test_flat_models_folder_is_complete(tmp_path):
    unet = _touch(tmp_path / "m" / "unianimate_16f_32f_non_ema_223000.pth")
    clip = _touch(tmp_path / "m" / "open_clip_pytorch_model.bin")
    vae = _touch(tmp_path / "m" / "v2-1_512-ema-pruned.ckpt")
    files = find_models([tmp_path / "m"], environ={})
    assert (files.unet, files.clip_vision, files.clip_text, files.vae) == (unet, clip, clip, vae)
    assert files.complete and files.dwpose is None


def test_comfyui_layout_with_clip_vision_and_sd21_text_tower(tmp_path):
    models = tmp_path / "ComfyUI" / "models"
    unet = _touch(models / "unianimate" / "unianimate_converted_fp16.safetensors")
    cv = _touch(models / "clip_vision" / "clip_vision_h.safetensors")
    sd = _touch(models / "checkpoints" / "v2-1_512-ema-pruned.safetensors")
    det = _touch(models / "dwpose" / "yolox_l.onnx")
    pose = _touch(models / "dwpose" / "dw-ll_ucoco_384.onnx")
    files = find_models([], environ={"COMFYUI_PATH": str(tmp_path / "ComfyUI")})
    assert files.unet == unet and files.clip_vision == cv and files.clip_text == sd and files.vae == sd
    assert files.dwpose == (det, pose) and files.complete


def test_legacy_pack_checkpoints_and_cached_zero_y(tmp_path):
    legacy = tmp_path / "ComfyUI" / "custom_nodes" / "ComfyUI-UniAnimate-W" / "checkpoints"
    unet = _touch(legacy / "unianimate_16f_32f_non_ema_223000.pth")
    cv = _touch(tmp_path / "ComfyUI" / "models" / "clip_vision" / "clip_vision_h.safetensors")
    _touch(legacy / "v2-1_512-ema-pruned.ckpt")
    np.save(legacy / "zero_y_openclip_vit_h14.npy", np.zeros((1, 77, 1024), np.float32))
    files = find_models([], environ={"COMFYUI_PATH": str(tmp_path / "ComfyUI")})
    assert files.unet == unet and files.clip_vision == cv
    assert files.zero_y == legacy / "zero_y_openclip_vit_h14.npy" and files.complete


def test_missing_files_are_named_with_the_searched_folders(tmp_path):
    files = find_models([tmp_path / "empty"], environ={})
    assert not files.complete and set(files.missing) >= {"unet", "clip", "vae"}
    text = files.describe_missing()
    assert "unianimate_16f_32f_non_ema_223000.pth" in text and str(tmp_path / "empty") in text
    assert "--models" in text


def test_explicit_paths_win_and_search_order_starts_with_models(tmp_path):
    first = tmp_path / "a"
    dirs = search_dirs([first, tmp_path / "b"], environ={"UNIANIMATE_MODELS": str(tmp_path / "c")})
    assert dirs[0] == first and dirs.index(tmp_path / "b") < dirs.index(tmp_path / "c")
    _touch(first / "unianimate_16f_32f_non_ema_223000.pth")
    explicit = _touch(tmp_path / "x.safetensors")
    files = find_models([first], unet=str(explicit), environ={})
    assert files.unet == explicit


def test_explicit_path_that_does_not_exist_is_named_at_once(tmp_path):
    with pytest.raises(PipelineError, match=r"--vae .*nope.ckpt: no such file"):
        find_models([], vae=str(tmp_path / "nope.ckpt"), environ={})
