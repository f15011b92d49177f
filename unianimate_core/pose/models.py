"""Finding the DWPose model files where users already keep them.

The core never imports ComfyUI: the node passes its models folder and custom_nodes folder, this
module turns them into the ordered list of candidate folders (ours first, then the folders other
packs download into), and :func:`find_model_file` explains every searched path when a file is
missing instead of downloading anything.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .errors import PoseModelNotFoundError
from ..paths import unique_paths

DWPOSE_DETECTOR = "yolox_l.onnx"
DWPOSE_POSE_MODEL = "dw-ll_ucoco_384.onnx"

#: Where each known file can be downloaded.
DOWNLOAD_URLS: dict[str, str] = {
    DWPOSE_DETECTOR: "https://huggingface.co/yzd-v/DWPose/tree/main",
    DWPOSE_POSE_MODEL: "https://huggingface.co/yzd-v/DWPose/tree/main",
}

# Folders under the ComfyUI models folder, in search order.
_MODEL_SUBDIRS = ("unianimate", "dwpose", "checkpoints")
# custom_nodes packs that keep UniAnimate files in a checkpoints folder (names matched
# case-insensitively: ComfyUI-Manager installs some of them lower-case).
_UNIANIMATE_PACKS = ("ComfyUI-UniAnimate-W", "ComfyUI-UniAnimate")
_UNIANIMATE_SUBDIRS = ("checkpoints", "UniAnimate/checkpoints", "checkpoints/iic/unianimate")
_CONTROLNET_AUX = "comfyui_controlnet_aux"
_AUX_DWPOSE = "ckpts/yzd-v/DWPose"


def _child(parent: Path, name: str) -> Path:
    """``parent / name``, using the existing entry's real spelling when only the case differs."""
    exact = parent / name
    if exact.exists() or not parent.is_dir():
        return exact
    lower = name.lower()
    try:
        for entry in parent.iterdir():
            if entry.name.lower() == lower:
                return entry
    except OSError:
        pass
    return exact


def _join(parent: Path, relative: str) -> Path:
    path = parent
    for part in relative.split("/"):
        path = _child(path, part)
    return path


def default_search_dirs(
    models_dir: str | Path | None = None,
    custom_nodes_dir: str | Path | None = None,
    extra_dirs: Iterable[str | Path] = (),
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Candidate folders for the DWPose ``.onnx`` files, in search order (existing or not).

    1. ``extra_dirs`` (folders the user configured);
    2. ``<models_dir>/unianimate``, ``/dwpose``, ``/checkpoints``;
    3. ``<custom_nodes_dir>/ComfyUI-UniAnimate-W`` and ``ComfyUI-UniAnimate``: ``checkpoints/``,
       ``UniAnimate/checkpoints/``, ``checkpoints/iic/unianimate/`` (earlier UniAnimate ports);
    4. controlnet_aux's download folder ``$AUX_ANNOTATOR_CKPTS_PATH/yzd-v/DWPose`` (when that
       variable is set in ``environ``, default ``os.environ``) and
       ``<custom_nodes_dir>/comfyui_controlnet_aux/ckpts/yzd-v/DWPose``.
    """
    env = os.environ if environ is None else environ
    if isinstance(extra_dirs, (str, Path)):  # one folder, not an iterable of its characters
        extra_dirs = [extra_dirs]
    dirs: list[Path] = [Path(d) for d in extra_dirs]
    if models_dir is not None:
        base = Path(models_dir)
        dirs += [_child(base, sub) for sub in _MODEL_SUBDIRS]
    if custom_nodes_dir is not None:
        nodes = Path(custom_nodes_dir)
        for pack in _UNIANIMATE_PACKS:
            root = _child(nodes, pack)
            dirs += [_join(root, sub) for sub in _UNIANIMATE_SUBDIRS]
    aux_root = env.get("AUX_ANNOTATOR_CKPTS_PATH")
    if aux_root:
        dirs.append(_join(Path(aux_root), "yzd-v/DWPose"))
    if custom_nodes_dir is not None:
        dirs.append(_join(_child(Path(custom_nodes_dir), _CONTROLNET_AUX), _AUX_DWPOSE))
    return unique_paths(dirs)


def find_model_file(name: str, dirs: Sequence[str | Path]) -> Path:
    """Return the first ``<dir>/<name>`` that is a file, else raise with every searched path.

    The error names the download page for the known DWPose files and the first folder to put the
    file in.
    """
    searched = [Path(d) / name for d in dirs]
    for path in searched:
        if path.is_file():
            return path
    listing = "\n".join(f"  - {p}" for p in searched) or "  (no folders were given)"
    url = DOWNLOAD_URLS.get(name)
    where = f"Download it from {url} " if url else "Put it "
    target = f"into {Path(dirs[0])}" if dirs else "into your models/unianimate folder"
    raise PoseModelNotFoundError(
        f"model file '{name}' was not found. Searched:\n{listing}\n{where}{target} (any folder above works)."
    )
