"""Finding the DWPose model files where users already keep them.

The search is the package's one model-file search (:mod:`unianimate_core.model_files`): the same
folders, in the same order, as the command line and the ComfyUI nodes use. The core never imports
ComfyUI: the node passes its models folder and custom_nodes folder. A missing file is explained
with every searched path and its download page instead of being downloaded.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Mapping, Sequence

from .. import model_files
from .errors import PoseModelNotFoundError

DWPOSE_DETECTOR = model_files.DOWNLOADS["dwpose_detector"].name
DWPOSE_POSE_MODEL = model_files.DOWNLOADS["dwpose_pose"].name

#: Where each DWPose file can be downloaded (a view of ``model_files.DOWNLOADS``).
DOWNLOAD_URLS: dict[str, str] = {
    DWPOSE_DETECTOR: model_files.DOWNLOADS["dwpose_detector"].url,
    DWPOSE_POSE_MODEL: model_files.DOWNLOADS["dwpose_pose"].url,
}


def default_search_dirs(
    models_dir: str | Path | None = None,
    custom_nodes_dir: str | Path | None = None,
    extra_dirs: Iterable[str | Path] = (),
    environ: Mapping[str, str] | None = None,
) -> list[Path]:
    """Candidate folders for the DWPose ``.onnx`` files, in search order (existing or not).

    :func:`unianimate_core.model_files.search_dirs` with ``extra_dirs`` as the user's folders and one
    ComfyUI installation (``models_dir``, ``custom_nodes_dir``): the user's folders (each with the
    model sub-folders), ``$UNIANIMATE_MODELS``, ``<models_dir>/{dwpose, unianimate, checkpoints,
    clip_vision, vae}``, older UniAnimate packs' ``checkpoints`` folders, comfyui_controlnet_aux's
    ``ckpts/yzd-v/DWPose`` (``$AUX_ANNOTATOR_CKPTS_PATH`` first).
    """
    if isinstance(extra_dirs, (str, Path)):  # one folder, not an iterable of its characters
        extra_dirs = [extra_dirs]
    return model_files.search_dirs(extra_dirs, environ, models_dir=models_dir, custom_nodes_dir=custom_nodes_dir,
                                   installed=False, official_layout=False)


def find_model_file(name: str, dirs: Sequence[str | Path]) -> Path:
    """Return the first ``<dir>/<name>`` that is a file, else raise with every searched path and the
    download page (:func:`unianimate_core.model_files.find_model_file`)."""
    return model_files.find_model_file(name, dirs, PoseModelNotFoundError)
