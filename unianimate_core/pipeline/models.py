"""Finding the model files for headless runs, in the same places the ComfyUI nodes look.

Search order (first hit wins), for every file:

1. the folders given with ``--models DIR`` (each may be a ComfyUI ``models`` folder or a flat folder):
   ``DIR`` itself and ``DIR/{unianimate, checkpoints, clip_vision, vae, dwpose}``;
2. ``$UNIANIMATE_MODELS`` (same layout, ``os.pathsep``-separated);
3. the ComfyUI installation this pack sits in (``ComfyUI/custom_nodes/<pack>``) or the one named by
   ``$COMFYUI_PATH``: its ``models/`` sub-folders as above, the ``checkpoints/`` of older UniAnimate
   packs (``custom_nodes/ComfyUI-UniAnimate*/checkpoints``, ``UniAnimate/checkpoints``,
   ``checkpoints/iic/unianimate``) and comfyui_controlnet_aux's DWPose cache (``ckpts/yzd-v/DWPose``);
4. ``./checkpoints`` (the official repository layout).

Nothing is downloaded: a missing file is reported with every searched path and where to get it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..checkpoint import OFFICIAL_FILENAME
from ..paths import unique_paths

from .errors import PipelineError

MODEL_SUBDIRS = ("unianimate", "checkpoints", "clip_vision", "vae", "dwpose")
LEGACY_PACK_PREFIX = "comfyui-unianimate"
LEGACY_SUBDIRS = ("checkpoints", "UniAnimate/checkpoints", "checkpoints/iic/unianimate")
AUX_DWPOSE = "ckpts/yzd-v/DWPose"

#: Candidate file names per role, most specific first.
UNET_NAMES = (OFFICIAL_FILENAME, "unianimate_16f_32f_non_ema_223000.safetensors",
              "unianimate_16f_32f_non_ema_223000_fp16.safetensors")
OPENCLIP_NAMES = ("open_clip_pytorch_model.bin", "open_clip_pytorch_model.safetensors")
CLIP_VISION_NAMES = ("clip_vision_h.safetensors", "CLIP-ViT-H-14-laion2B-s32B-b79K.safetensors",
                     "model.safetensors")
SD21_NAMES = ("v2-1_512-ema-pruned.ckpt", "v2-1_512-ema-pruned.safetensors",
              "v2-1_768-ema-pruned.ckpt", "v2-1_768-ema-pruned.safetensors")
ZERO_Y_NAME = "zero_y_openclip_vit_h14.npy"
DWPOSE_NAMES = ("yolox_l.onnx", "dw-ll_ucoco_384.onnx")

DOWNLOADS = {
    "unet": "https://huggingface.co/camenduru/unianimate/tree/main (unianimate_16f_32f_non_ema_223000.pth)",
    "clip": "https://huggingface.co/camenduru/unianimate/tree/main (open_clip_pytorch_model.bin)",
    "vae": "https://huggingface.co/stabilityai/stable-diffusion-2-1-base (v2-1_512-ema-pruned.ckpt)",
    "dwpose": "https://huggingface.co/yzd-v/DWPose/tree/main (yolox_l.onnx, dw-ll_ucoco_384.onnx)",
}


def _pack_root() -> Path:
    return Path(__file__).resolve().parents[2]


def comfyui_roots(environ: Mapping[str, str] | None = None) -> list[Path]:
    """ComfyUI installations to search: ``$COMFYUI_PATH`` and the one this pack is installed in."""
    env = os.environ if environ is None else environ
    roots: list[Path] = []
    if env.get("COMFYUI_PATH"):
        roots.append(Path(env["COMFYUI_PATH"]))
    pack = _pack_root()
    if pack.parent.name.lower() == "custom_nodes":
        roots.append(pack.parent.parent)
    return roots


def _model_dirs(base: Path) -> list[Path]:
    return [base] + [base / sub for sub in MODEL_SUBDIRS]


def legacy_pack_dirs(custom_nodes: Path) -> list[Path]:
    """Where installed older UniAnimate packs (``custom_nodes/ComfyUI-UniAnimate*``) keep model files.

    Shared with the ComfyUI nodes (``nodes/folders.py``), so both find the same files.
    """
    return [pack / sub for pack in _packs(custom_nodes) if pack.name.lower().startswith(LEGACY_PACK_PREFIX)
            for sub in LEGACY_SUBDIRS]


def controlnet_aux_dirs(custom_nodes: Path, environ: Mapping[str, str] | None = None) -> list[Path]:
    """comfyui_controlnet_aux's DWPose download cache (``$AUX_ANNOTATOR_CKPTS_PATH`` first)."""
    env = os.environ if environ is None else environ
    dirs = [Path(env["AUX_ANNOTATOR_CKPTS_PATH"]) / "yzd-v" / "DWPose"] if env.get("AUX_ANNOTATOR_CKPTS_PATH") else []
    return dirs + [pack / AUX_DWPOSE for pack in _packs(custom_nodes) if "controlnet_aux" in pack.name.lower()]


def _packs(custom_nodes: Path) -> list[Path]:
    try:
        return sorted(p for p in custom_nodes.iterdir() if p.is_dir())
    except OSError:  # no such folder (yet)
        return []


def search_dirs(models: Iterable[str | os.PathLike] = (), environ: Mapping[str, str] | None = None,
                cwd: Path | None = None) -> list[Path]:
    """Every folder searched for model files, in order (existing or not; duplicates removed)."""
    env = os.environ if environ is None else environ
    dirs: list[Path] = []
    for d in models:
        dirs += _model_dirs(Path(d))
    for d in filter(None, env.get("UNIANIMATE_MODELS", "").split(os.pathsep)):
        dirs += _model_dirs(Path(d))
    for root in comfyui_roots(env):
        dirs += [root / "models" / sub for sub in MODEL_SUBDIRS]
        dirs += legacy_pack_dirs(root / "custom_nodes")
        dirs += controlnet_aux_dirs(root / "custom_nodes", {})
    if env.get("AUX_ANNOTATOR_CKPTS_PATH"):
        dirs.append(Path(env["AUX_ANNOTATOR_CKPTS_PATH"]) / "yzd-v" / "DWPose")
    dirs.append((cwd or Path.cwd()) / "checkpoints")
    return unique_paths(dirs)


def find_first(names: Sequence[str], dirs: Sequence[Path]) -> Path | None:
    """The first ``dir/name`` that is a file, trying every name in every folder (folder order first)."""
    for d in dirs:
        for name in names:
            p = d / name
            if p.is_file():
                return p
    return None


@dataclass
class ModelFiles:
    """The files found for a real run (None = not found) and the folders that were searched."""

    unet: Path | None = None
    clip_vision: Path | None = None
    clip_text: Path | None = None
    zero_y: Path | None = None
    vae: Path | None = None
    dwpose: tuple[Path, Path] | None = None
    searched: list[Path] = field(default_factory=list)

    @property
    def missing(self) -> list[str]:
        """Roles still missing for a real video (the DWPose files are optional: there are fallbacks)."""
        out = []
        if self.unet is None:
            out.append("unet")
        if self.clip_vision is None:
            out.append("clip")
        if self.zero_y is None and self.clip_text is None:
            out.append("clip text tower (or a cached zero_y)")
        if self.vae is None:
            out.append("vae")
        return out

    @property
    def complete(self) -> bool:
        return not self.missing

    def describe_missing(self) -> str:
        """One paragraph naming each missing file, where it was looked for and where to get it."""
        names = {
            "unet": f"UniAnimate UNet ({UNET_NAMES[0]}) - {DOWNLOADS['unet']}",
            "clip": f"OpenCLIP ViT-H-14 ({OPENCLIP_NAMES[0]}, or a clip_vision_h .safetensors) - {DOWNLOADS['clip']}",
            "clip text tower (or a cached zero_y)": (
                f"the OpenCLIP-H text tower for the empty-prompt context: {OPENCLIP_NAMES[0]} or the SD 2.1 "
                f"checkpoint ({SD21_NAMES[0]}), or a cached {ZERO_Y_NAME}"),
            "vae": f"SD 2.1 VAE ({SD21_NAMES[0]}) - {DOWNLOADS['vae']}",
        }
        lines = [f"  - {names[m]}" for m in self.missing]
        shown = [str(d) for d in self.searched[:12]]
        more = f" (+{len(self.searched) - 12} more)" if len(self.searched) > 12 else ""
        return ("missing model files:\n" + "\n".join(lines) + "\nsearched: " + ", ".join(shown) + more
                + "\nput them in one folder and pass --models FOLDER (or ComfyUI/models/unianimate).")


def find_models(models: Iterable[str | os.PathLike] = (), unet: str | None = None, clip: str | None = None,
                vae: str | None = None, environ: Mapping[str, str] | None = None) -> ModelFiles:
    """Locate every file of a real run; explicit ``unet``/``clip``/``vae`` paths win over the search.

    An explicit path that is not a file is an error at once (not a failure after minutes of loading).
    """
    for flag, value in (("--unet", unet), ("--clip", clip), ("--vae", vae)):
        if value and not Path(value).is_file():
            raise PipelineError(f"{flag} {value}: no such file. Give the path of an existing file, or leave "
                                f"{flag} out to search the model folders (--models DIR).")
    dirs = search_dirs(models, environ)
    found = ModelFiles(searched=dirs)
    found.unet = Path(unet) if unet else find_first(UNET_NAMES, dirs) or _any_unianimate_file(dirs)
    openclip = Path(clip) if clip else find_first(OPENCLIP_NAMES, dirs)
    sd21 = Path(vae) if vae and Path(vae).name in SD21_NAMES else find_first(SD21_NAMES, dirs)
    found.clip_vision = openclip or find_first(CLIP_VISION_NAMES, [d for d in dirs if d.name == "clip_vision"])
    if openclip is not None and openclip.name.endswith(".bin"):
        found.clip_text = openclip  # the official OpenCLIP file holds both towers
    elif sd21 is not None:
        found.clip_text = sd21
    found.zero_y = find_first((ZERO_Y_NAME,), dirs if found.unet is None else [found.unet.parent, *dirs])
    found.vae = Path(vae) if vae else sd21
    det, pose = (find_first((n,), dirs) for n in DWPOSE_NAMES)
    found.dwpose = (det, pose) if det is not None and pose is not None else None
    return found


def _any_unianimate_file(dirs: Sequence[Path]) -> Path | None:
    """Any ``unianimate*`` checkpoint in a ``unianimate`` folder (e.g. a converted/renamed file)."""
    suffixes = {".pth", ".pt", ".ckpt", ".safetensors"}
    for d in dirs:
        if d.name != "unianimate" or not d.is_dir():
            continue
        for p in sorted(d.iterdir()):
            if p.is_file() and p.suffix.lower() in suffixes and p.name.lower().startswith("unianimate"):
                return p
    return None
