"""Reading UniAnimate UNet checkpoints safely and building the model from them.

Accepted: the official ``.pth`` (a pickle of tensors, loaded with ``weights_only=True`` — never
arbitrary code), ``.ckpt``/``.pt``/``.bin`` likewise, and ``.safetensors`` (what
``python -m unianimate_core.convert`` writes, with the config in its metadata). A top-level
``state_dict`` wrapper is unwrapped and a ``step`` counter ignored
(docs/official_behaviour.md#checkpoint-layout). Anything else — a
Stable Diffusion checkpoint, a VAE or CLIP file, a truncated download, a pickle that needs code
execution — fails with a message that names the file, what it is, and what to do.
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Mapping, Optional, Union

import torch

from .config import UNetConfig
from .errors import CheckpointError, ModelFileNotFoundError, PrecisionError
from .model_files import DOWNLOADS
from .precision import FP8_DTYPES, check_weight_dtype, dtype_name

log = logging.getLogger("unianimate")

PathLike = Union[str, Path]
STATE_DICT = dict[str, torch.Tensor]

#: The released weights (temporal-attention model, non-EMA); name and page from the one download table.
OFFICIAL_FILENAME = DOWNLOADS["unet"].name
OFFICIAL_URL = DOWNLOADS["unet"].url
PICKLE_SUFFIXES = {".pth", ".pt", ".ckpt", ".bin"}
SUFFIXES = PICKLE_SUFFIXES | {".safetensors"}

#: A key every UniAnimate UNet has, used to recognise the file type.
SIGNATURE_KEYS = ("randomref_embedding2.0.weight", "dwpose_embedding.0.weight", "input_blocks.0.0.weight")

DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16,
          "float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16,
          "fp8_e4m3fn": torch.float8_e4m3fn, "fp8_e5m2": torch.float8_e5m2}


# ------------------------------------------------------------------------------------------ reading
def read_state_dict(path: PathLike, allow_pickle_code: bool = False) -> STATE_DICT:
    """Read a checkpoint file into a flat ``{key: tensor}`` dict on the CPU (no model needed).

    ``allow_pickle_code`` lifts the ``weights_only`` safety restriction for pickles — only for files
    from a source you trust (the converter exposes it as ``--unsafe-allow-pickle``).
    """
    path = Path(path)
    if not path.exists():
        raise ModelFileNotFoundError(f"model file not found: {path}")
    if path.is_dir():
        raise CheckpointError(f"{path} is a folder; give the path of the checkpoint file inside it.")
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise CheckpointError(
            f"{path.name}: unsupported file type {suffix!r}; expected one of {sorted(SUFFIXES)} "
            f"(the official UNet is {OFFICIAL_FILENAME})."
        )
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path} is empty (0 bytes): the download did not complete; download it again.")
    raw = _read_safetensors(path) if suffix == ".safetensors" else _read_pickle(path, allow_pickle_code)
    return _unwrap(raw, path)


def read_metadata(path: PathLike) -> dict[str, str]:
    """The ``__metadata__`` of a safetensors file ({} for other formats)."""
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        return {}
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:  # noqa: BLE001 - any parse failure means a broken file
        raise CheckpointError(f"{path}: not a readable safetensors file ({exc}); download or convert it again.") from exc


def _read_safetensors(path: Path) -> Mapping[str, Any]:
    from safetensors.torch import load_file

    try:
        return load_file(str(path), device="cpu")
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise CheckpointError(
            f"{path}: cannot read it as safetensors ({type(exc).__name__}: {exc}). The file is truncated or "
            "not a safetensors file; download it again, or convert the official .pth with "
            "`python -m unianimate_core.convert IN.pth OUT.safetensors`."
        ) from exc


def _read_pickle(path: Path, allow_code: bool) -> Mapping[str, Any]:
    import pickle

    try:
        try:
            obj = torch.load(str(path), map_location="cpu", weights_only=not allow_code, mmap=True)
        except RuntimeError as exc:
            if "mmap" not in str(exc).lower():
                raise
            obj = torch.load(str(path), map_location="cpu", weights_only=not allow_code)  # legacy format
    except pickle.UnpicklingError as exc:
        raise CheckpointError(
            f"{path}: refusing to load — this pickle needs to run Python code to load "
            f"({str(exc).splitlines()[0] if str(exc) else 'weights_only load failed'}). Real UniAnimate "
            "checkpoints only contain tensors. If you trust the file's source, convert it once with "
            "`python -m unianimate_core.convert --unsafe-allow-pickle IN OUT.safetensors` and use the .safetensors."
        ) from exc
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{path}: cannot read the file ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}). "
            "It is truncated or corrupt (an interrupted download?); download it again."
        ) from exc
    if not isinstance(obj, Mapping):
        raise CheckpointError(f"{path}: expected a dict of tensors, found a {type(obj).__name__}; this is not a UniAnimate checkpoint.")
    return obj


def _unwrap(raw: Mapping[str, Any], path: Path) -> STATE_DICT:
    """Unwrap ``state_dict``/``model``/``module.`` wrappers; keep tensors only (drops ``step`` etc.)."""
    obj: Mapping[str, Any] = raw
    for wrapper in ("state_dict", "model", "module"):
        inner = obj.get(wrapper) if isinstance(obj, Mapping) else None
        if isinstance(inner, Mapping) and any(isinstance(v, torch.Tensor) for v in inner.values()):
            obj = inner
            break
    sd = {k: v for k, v in obj.items() if isinstance(k, str) and isinstance(v, torch.Tensor)}
    ignored = sorted(k for k in obj if k not in sd)
    if ignored:
        log.debug("%s: ignoring non-tensor entries %s", path.name, ignored[:5])
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module."):]: v for k, v in sd.items()}
    if not sd:
        raise CheckpointError(f"{path}: contains no tensors; this is not a model checkpoint.")
    return sd


# ------------------------------------------------------------------------------------ recognition
def identify(sd: Mapping[str, torch.Tensor]) -> str:
    """Name the kind of model a state dict belongs to ("unianimate" or a foreign kind)."""
    keys = sd.keys()
    if all(k in keys for k in SIGNATURE_KEYS):
        return "unianimate"

    def has(prefix: str) -> bool:
        return any(k.startswith(prefix) for k in keys)

    if has("model.diffusion_model.") or (has("first_stage_model.") and has("cond_stage_model.")):
        return "stable-diffusion checkpoint"
    if has("down_blocks.") and has("conv_in."):
        return "diffusers UNet"
    if has("encoder.down.") or has("decoder.up.") or has("first_stage_model."):
        return "VAE"
    if has("visual.") or has("vision_model.") or has("text_model.") or has("transformer.resblocks."):
        return "CLIP"
    if has("taesd_decoder.") or has("decoder.layers."):
        return "TAESD VAE"
    if has("motion_modules.") or has("down_blocks.0.motion_modules"):
        return "AnimateDiff motion module"
    return "unknown"


def _foreign_file_error(path: Optional[Path], kind: str) -> CheckpointError:
    name = path.name if path else "the given state dict"
    hint = {
        "stable-diffusion checkpoint": "Load it with ComfyUI's 'Load Checkpoint' (its VAE and CLIP are used by the sampler).",
        "VAE": "Load it with ComfyUI's 'Load VAE' and connect it to the sampler's vae input.",
        "CLIP": "Load it with 'Load CLIP Vision' (image encoder) or as the text encoder.",
    }.get(kind, "")
    return CheckpointError(
        f"{name} is a {kind}, not a UniAnimate UNet. {hint} The UniAnimate model file is "
        f"{OFFICIAL_FILENAME} ({OFFICIAL_URL}) or a .safetensors converted from it."
    )


_INPUT_RES = re.compile(r"^input_blocks\.(\d+)\.0\.in_layers\.2\.weight$")
_INPUT_DOWN = re.compile(r"^input_blocks\.(\d+)\.op\.weight$")


def infer_config(sd: Mapping[str, torch.Tensor], metadata: Optional[Mapping[str, str]] = None) -> UNetConfig:
    """Recover the architecture from tensor shapes (or the safetensors metadata when present).

    Shapes determine everything except the attention head width; it is 64 for the released model
    (``dim`` 320) and assumed 32 for widths that are not multiples of 64 — configs outside that rule
    should be saved by the converter, which records the config in the metadata.
    """
    if metadata and "config" in metadata:
        try:
            return UNetConfig.from_dict(json.loads(metadata["config"]))
        except (ValueError, TypeError) as exc:
            raise CheckpointError(f"the file's metadata has an invalid UniAnimate config: {exc}") from exc
    dim = sd["time_embed.0.weight"].shape[1]
    head_dim = 64 if dim % 64 == 0 else 32
    res_blocks = sorted(int(m.group(1)) for k in sd if (m := _INPUT_RES.match(k)))
    downs = sorted(int(m.group(1)) for k in sd if (m := _INPUT_DOWN.match(k)))
    levels = len(downs) + 1
    num_res_blocks = len([i for i in res_blocks if not downs or i < downs[0]])
    dim_mult, attn_scales = [], []
    for level in range(levels):
        first = 1 + level * (num_res_blocks + 1)
        width = sd[f"input_blocks.{first}.0.in_layers.2.weight"].shape[0]
        dim_mult.append(width // dim)
        if f"input_blocks.{first}.1.norm.weight" in sd:
            attn_scales.append(1.0 / 2**level)
    cat = sd["dwpose_embedding.5.weight"].shape[0]
    context_dim = sd["pre_image_condition.0.weight"].shape[1]
    init_inner = _init_temporal_inner(sd)
    temporal = "mamba" if any(k.endswith("A_log") for k in sd) else "attention"
    mamba = None
    if temporal == "mamba":
        from .mamba import mamba_config_from_state_dict

        mamba = mamba_config_from_state_dict(sd)
    return UNetConfig(
        in_dim=sd["input_blocks.0.0.weight"].shape[1] - cat,
        dim=dim,
        context_dim=context_dim,
        out_dim=sd["out.2.weight"].shape[0],
        dim_mult=tuple(dim_mult),
        num_heads=max(1, init_inner // head_dim) if init_inner else 8,
        head_dim=head_dim,
        num_res_blocks=num_res_blocks,
        attn_scales=tuple(attn_scales),
        concat_dim=cat,
        num_tokens=sd["pre_image_condition.2.weight"].shape[0] // context_dim,
        temporal=temporal,
        mamba=mamba,
    )


def _init_temporal_inner(sd: Mapping[str, torch.Tensor]) -> int:
    w = sd.get("input_blocks.0.1.proj_in.weight")
    return int(w.shape[0]) if w is not None else 0


# ---------------------------------------------------------------------------------------- loading
def check_state_dict(sd: Mapping[str, torch.Tensor], expected: Mapping[str, torch.Tensor], name: str) -> None:
    """Strict key/shape comparison with a readable report (the official loader is strict too)."""
    missing = [k for k in expected if k not in sd]
    unexpected = [k for k in sd if k not in expected]
    wrong = [(k, tuple(sd[k].shape), tuple(expected[k].shape)) for k in expected if k in sd and sd[k].shape != expected[k].shape]
    if not (missing or unexpected or wrong):
        return
    lines = [f"{name} does not match the UniAnimate UNet architecture:"]
    if missing:
        lines.append(f"  {len(missing)} missing keys, e.g. {missing[:5]}")
    if unexpected:
        lines.append(f"  {len(unexpected)} unexpected keys, e.g. {unexpected[:5]}")
    if wrong:
        lines.append(f"  {len(wrong)} shape mismatches, e.g. " + "; ".join(f"{k}: file {a} vs model {b}" for k, a, b in wrong[:3]))
    if any(k.startswith("input_blocks.10.1.") for k in unexpected):
        lines.append(
            "  The file has transformers at the 1/8 level: it was built with the class-default attn_scales "
            "[1/2, 1/4, 1/8], not the released model's [1, 1/2, 1/4]."
        )
    lines.append(f"  Use the released {OFFICIAL_FILENAME} ({OFFICIAL_URL}) or a file converted from it; a partial "
                 "or modified file cannot be loaded.")
    raise CheckpointError("\n".join(lines))


def resolve_dtype(dtype: Union[str, torch.dtype, None], sd: Optional[Mapping[str, torch.Tensor]] = None) -> torch.dtype:
    """``None``/"auto" keeps the file's floating dtype (fp32 if mixed)."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype in (None, "auto", "default"):
        if sd:
            kinds = {v.dtype for v in sd.values() if v.is_floating_point()}
            if len(kinds) == 1:
                return kinds.pop()
        return torch.float32
    try:
        return DTYPES[str(dtype).lower()]
    except KeyError:
        raise CheckpointError(f"unknown weight dtype {dtype!r}; use one of auto, fp32, fp16, bf16 "
                              "(fp8_e4m3fn / fp8_e5m2 with a casting layer factory).") from None


def load_unet(
    source: Union[PathLike, Mapping[str, torch.Tensor]],
    config: Optional[UNetConfig] = None,
    dtype: Union[str, torch.dtype, None] = None,
    device: Union[str, torch.device] = "cpu",
    operations: Any = None,
    attention_fn: Any = None,
    zero_y: Optional[torch.Tensor] = None,
):
    """Build ``UNetSD_UniAnimate`` from a checkpoint file (or state dict) and load its weights.

    The model is built on the ``meta`` device and the file's tensors are assigned, so peak memory is
    about one copy of the weights. Returns the model in eval mode.

    fp8 weights (``float8_e4m3fn`` / ``float8_e5m2``) are storage only: they need ``operations`` whose
    layers cast weights to the compute dtype per call (ComfyUI's ``manual_cast``), and
    ``model.compute_dtype`` set to fp16/bf16/fp32.
    """
    from .unet import UNetSD_UniAnimate

    path = None if isinstance(source, Mapping) else Path(source)
    sd = dict(source) if path is None else read_state_dict(path)
    name = path.name if path else "the state dict"
    kind = identify(sd)
    if kind != "unianimate":
        raise _foreign_file_error(path, kind)
    if config is None:
        config = infer_config(sd, read_metadata(path) if path else None)
    target = resolve_dtype(dtype, sd)
    check_weight_dtype(target, device)
    if target in FP8_DTYPES and operations is None:
        raise PrecisionError(
            f"{dtype_name(target)} weights cannot be computed with plain torch.nn layers: fp8 is a storage format that "
            "needs a layer factory casting weights per call (ComfyUI's comfy.ops.manual_cast). Load with fp16 or bf16 "
            "for standalone use.")
    model = UNetSD_UniAnimate(config, operations=operations, attention_fn=attention_fn, device="meta")
    expected = model.state_dict()
    check_state_dict(sd, expected, name)
    keep_fp32 = {k for k, v in expected.items() if v.dtype == torch.float32 and _keeps_fp32(k)}
    sd = {k: v.to(device=device, dtype=(torch.float32 if k in keep_fp32 else target)) for k, v in sd.items()}
    model.load_state_dict(sd, strict=True, assign=True)
    if zero_y is not None:
        model.set_zero_y(zero_y)
    return model.eval().requires_grad_(False)


def _keeps_fp32(key: str) -> bool:
    """State-space parameters stay fp32 whatever the weight dtype (as mamba-ssm keeps them)."""
    return key.endswith("A_log") or key.endswith(".D")
