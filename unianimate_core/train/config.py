"""The training config: a JSON file, every key typed, range-checked and documented.

JSON because it needs no dependency on any supported Python (3.10 has no ``tomllib``) and every
editor highlights it. Comments: any key that starts with ``//`` is ignored at every level
(``"//": "why this lr"``). Relative paths are resolved against the folder of the config file.

Every section is a frozen dataclass whose fields carry their documentation (``field(metadata=
{"doc": ...})``); :func:`config_reference` renders them as the Markdown table in docs/training.md,
and a test checks that the documentation lists every key. Parsing is strict: an unknown key (with
the closest valid spelling), a wrong type, a value out of range or a missing required key raises
:class:`TrainConfigError` naming the full key path (``optim.lr``) and what is accepted.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import math
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, Optional, Sequence, Union

from .errors import TrainConfigError

COMMENT_PREFIX = "//"


def _doc(text: str, **extra: Any) -> dict[str, Any]:
    return {"doc": text, **extra}


def opt(default: Any, doc: str, **checks: Any) -> Any:
    """A config field with a default, its documentation and optional checks (``min``, ``max``, ``gt``)."""
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda d=default: json.loads(json.dumps(d)), metadata=_doc(doc, **checks))
    return field(default=default, metadata=_doc(doc, **checks))


def required(doc: str, **checks: Any) -> Any:
    return field(default=None, metadata=_doc(doc, required=True, **checks))


# ------------------------------------------------------------------------------------------ sections
@dataclass(frozen=True)
class DataConfig:
    videos: str = required("Folder of training videos (mp4/webm/mov/..., animated webp/gif, or sub-folders of "
                           "frame images). Sidecar files next to a video: `<name>.json` (poses, ComfyUI "
                           "POSE_KEYPOINT list, one entry per video frame) and `<name>.ref.png|jpg|webp` "
                           "(a reference image; its pose from `<name>.ref.json` or the pose extractor).")
    cache_dir: Optional[str] = opt(None, "Where prepared clips, poses, VAE latents and CLIP embeddings are cached "
                                         "(content-addressed: share one folder between runs). Default "
                                         "`<output_dir>/cache`.")
    width: int = opt(512, "Clip width in pixels (a multiple of the model's pixel multiple, 64 for the released "
                          "model).", min=64)
    height: int = opt(768, "Clip height in pixels (same rule as width).", min=64)
    frames: int = opt(16, "Frames per training clip (the released model was trained with 16 and 32).", min=1)
    frame_stride: int = opt(2, "Use every n-th video frame (2 = the official inference default frame interval).",
                            min=1)
    fit: Literal["crop", "pad", "stretch"] = opt(
        "crop", "How a video of another aspect ratio is brought to width x height: `crop` (scale to cover, "
                "centre crop), `pad` (letterbox: scale to fit, black borders) or `stretch` (the official squash "
                "resize). Poses follow the same geometry exactly.")
    poses: Literal["auto", "sidecar", "dwpose", "mediapipe"] = opt(
        "auto", "Where poses come from: `sidecar` (the `<name>.json` next to each video), `dwpose`/`mediapipe` "
                "(extracted once and cached), `auto` (sidecar when present, else DWPose, else MediaPipe).")
    pose_models: list[str] = opt([], "Folders searched for the DWPose files yolox_l.onnx and dw-ll_ucoco_384.onnx "
                                     "(besides the usual model folders).")
    reference: Literal["random", "random_outside_clip", "first"] = opt(
        "random", "Reference frame per clip when the video has no reference image: `random` (any frame of the "
                  "video with a person, drawn per sample), `random_outside_clip` (same, but not one of the "
                  "clip's frames when the video is long enough), `first` (the clip's first frame).")
    reference_image: Literal["prefer", "ignore"] = opt(
        "prefer", "`prefer`: use `<name>.ref.*` as the reference when it exists; `ignore`: always use a frame.")
    max_frames_per_video: int = opt(0, "Read at most this many frames (after the stride) per video; 0 = all.", min=0)
    max_missing_poses: int = opt(2, "A clip may contain at most this many frames without a detected person "
                                    "(their pose image is black); clips with more are never drawn.", min=0)
    validation_videos: int = opt(1, "Videos held out for validation (the first ones in content-hash order, so the "
                                    "choice does not depend on file names); 0 = none. Ignored with "
                                    "`validation_dir`.", min=0)
    validation_dir: Optional[str] = opt(None, "A separate folder of validation videos (same layout as `videos`); "
                                              "then every video of `videos` trains.")
    latent_dtype: Literal["fp32", "fp16"] = opt("fp32", "Storage of the cached VAE posterior moments (fp16 halves "
                                                        "the disk use; ~1e-3 relative rounding).")
    encode_batch: int = opt(8, "Frames per VAE/CLIP call while preparing.", min=1)
    num_workers: int = opt(0, "DataLoader worker processes (0 = load in the training process).", min=0)


@dataclass(frozen=True)
class ModelConfig:
    init: Optional[str] = opt(None, "UNet checkpoint to start from (the official .pth, a converted or trained "
                                    ".safetensors). null = a fresh random UNet of `architecture`.")
    architecture: Union[str, dict] = opt(
        "tiny", "Only without `init`: `full` (the released architecture), `tiny` (the 12 M-parameter test "
                "config) or a dict of UNetConfig fields.")
    zero_init: bool = opt(True, "Fresh UNets only: zero the last layer of every residual branch and the output "
                                "conv (the usual diffusion UNet initialisation), so training starts from the identity.")


@dataclass(frozen=True)
class EncodersConfig:
    kind: Literal["standalone", "toyworld", "tiny"] = opt(
        "standalone", "`standalone`: OpenCLIP ViT-H-14 + the SD 2.1 VAE from model files (the real pipeline, extra "
                      "`standalone`); `toyworld`: the synthetic world's exact block codec and CLIP stand-in "
                      "(docs/observatory.md); `tiny`: seeded random stand-ins (tests and plumbing checks only).")
    models: list[str] = opt([], "Folders searched for open_clip_pytorch_model.bin and v2-1_512-ema-pruned.ckpt.")
    clip: Optional[str] = opt(None, "Explicit OpenCLIP file (overrides the search).")
    vae: Optional[str] = opt(None, "Explicit SD 2.1 checkpoint / VAE file (overrides the search).")
    seed: int = opt(0, "Seed of the `tiny` stand-ins.", min=0)


@dataclass(frozen=True)
class LoraConfig:
    rank: int = opt(16, "LoRA rank r.", min=1)
    alpha: float = opt(16.0, "LoRA alpha (the update is scaled by alpha / rank).", gt=0)
    dropout: float = opt(0.0, "Dropout on the LoRA input.", min=0, max=0.99)
    targets: list[str] = opt(["attention"], "Layers that get adapters: any of `attention` (q/k/v/out of every "
                                            "spatial and temporal attention), `spatial_attention`, "
                                            "`temporal_attention`, `cross_attention`, `feedforward`, or "
                                            "`regex:<pattern>` matched against full module names.")


@dataclass(frozen=True)
class MambaModeConfig:
    source: Literal["scratch", "distill"] = opt(
        "distill", "`scratch`: fresh Mamba layers trained with the diffusion loss; `distill`: fresh Mamba layers "
                   "trained to reproduce the attention model (teacher) — needs `model.init` with attention layers.")
    distill: Literal["layers", "output"] = opt(
        "layers", "Distillation target: `layers` (each Mamba layer matches its attention layer's output on the "
                  "teacher's activations; cheap, no second UNet pass with gradients) or `output` (the student "
                  "UNet's v-prediction matches the teacher's).")
    diffusion_weight: float = opt(0.0, "With `distill`: weight of the ordinary diffusion loss added to the "
                                       "distillation loss (0 = pure distillation).", min=0)
    train: Literal["mamba", "all"] = opt("mamba", "Train only the Mamba layers, or the whole UNet.")
    config: dict = opt({}, "MambaConfig fields (d_state, d_conv, expand, dt_rank, ...); defaults are mamba-ssm's.")


@dataclass(frozen=True)
class ModeConfig:
    kind: Literal["full", "temporal", "mamba", "lora"] = opt(
        "full", "`full`: every UNet weight; `temporal`: only the temporal layers (spatial frozen); `mamba`: convert "
                "the temporal layers to Mamba and train them; `lora`: low-rank adapters (peft).")
    temporal_convs: bool = opt(True, "`temporal` mode: also train the temporal convolutions inside the ResBlocks.")
    lora: LoraConfig = opt(None, "LoRA settings (mode `lora`).")
    mamba: MambaModeConfig = opt(None, "Mamba settings (mode `mamba`).")


@dataclass(frozen=True)
class ObjectiveConfig:
    offset_noise: float = opt(0.1, "Offset-noise strength (one N(0,1) value per channel and frame).", min=0)
    first_frame_prob: float = opt(0.5, "Share of samples in the first-frame-conditioned noise mode (the clip's "
                                       "first frame given as `local_image`); the rest use plain noise.", min=0, max=1)
    drop_image: float = opt(0.5, "Per-sample drop probability of the CLIP image tokens.", min=0, max=1)
    drop_pose: float = opt(0.5, "Per-sample drop probability of the driving-pose features.", min=0, max=1)
    drop_first_frame: float = opt(0.5, "Per-sample drop probability of the first-frame features.", min=0, max=1)
    drop_all: float = opt(0.1, "Share of samples with every condition dropped (the unconditional branch of "
                               "classifier-free guidance).", min=0, max=1)
    keep_all: float = opt(0.1, "Share of samples that keep every condition.", min=0, max=1)
    drop_all_includes_reference: bool = opt(
        True, "Whether `drop_all` also empties the reference slot, as the unconditional pass at inference does.")
    t_min: int = opt(0, "Smallest training timestep.", min=0, max=999)
    t_max: int = opt(999, "Largest training timestep.", min=0, max=999)
    model_dropout: float = opt(0.0, "Dropout inside the UNet's ResBlocks and temporal convs (the official "
                                    "training used 0.1; 0 keeps runs reproducible across process counts).",
                               min=0, max=0.99)


@dataclass(frozen=True)
class OptimConfig:
    optimizer: Literal["adamw", "adamw8bit"] = opt("adamw", "`adamw` (torch) or `adamw8bit` (bitsandbytes, CUDA).")
    lr: Optional[float] = opt(None, "Learning rate; null = the mode's default (full 2e-5, temporal 5e-5, "
                                    "mamba 1e-4, lora 1e-4).", gt=0)
    betas: list[float] = opt([0.9, 0.999], "Adam betas.")
    weight_decay: float = opt(0.01, "Decoupled weight decay.", min=0)
    eps: float = opt(1e-8, "Adam epsilon.", gt=0)
    warmup_steps: int = opt(0, "Linear warm-up from 0 over this many optimizer steps.", min=0)
    schedule: Literal["constant", "cosine"] = opt("constant", "Learning-rate schedule after warm-up.")
    min_lr_ratio: float = opt(0.0, "`cosine`: final lr as a share of lr.", min=0, max=1)
    grad_clip: float = opt(1.0, "Clip the global gradient norm to this value; 0 = off.", min=0)


@dataclass(frozen=True)
class RunConfig:
    steps: int = opt(1000, "Optimizer steps to train.", min=1)
    batch_size: int = opt(1, "Clips per process per micro-step.", min=1)
    grad_accum: int = opt(1, "Micro-steps per optimizer step (global batch = processes x batch_size x grad_accum).",
                          min=1)
    precision: Literal["fp32", "bf16", "fp16"] = opt(
        "fp32", "Autocast dtype; trainable weights and optimizer state stay fp32 (master copy). fp16 adds a "
                "gradient scaler.")
    frozen_dtype: Literal["fp32", "bf16", "fp16", "precision"] = opt(
        "precision", "Storage dtype of frozen weights (temporal/mamba/lora modes); `precision` = the autocast dtype.")
    gradient_checkpointing: bool = opt(False, "Recompute each UNet block in the backward pass (less memory, "
                                              "about 30 % slower).")
    device: str = opt("auto", "`auto` (CUDA if present, else CPU), `cpu`, `cuda`, `cuda:1`. Under torchrun every "
                              "process uses cuda:LOCAL_RANK.")
    threads: int = opt(0, "CPU threads for torch (0 = torch's default).", min=0)


@dataclass(frozen=True)
class EMAConfig:
    enabled: bool = opt(False, "Keep an exponential moving average of the trainable weights (exported as "
                               "`*_ema.safetensors`).")
    decay: float = opt(0.9999, "EMA decay per optimizer step.", min=0, max=1)
    start_step: int = opt(0, "Steps before the EMA starts tracking (copied at that step).", min=0)


@dataclass(frozen=True)
class CheckpointConfig:
    every: int = opt(500, "Save a resumable checkpoint every N optimizer steps (also on Ctrl-C/SIGTERM and at "
                          "the end).", min=1)
    keep: int = opt(2, "Resumable checkpoints kept (older ones are deleted after a newer one is complete).", min=1)
    save_dtype: Literal["fp16", "bf16", "fp32"] = opt("fp16", "dtype of the exported model/LoRA files.")
    resume: Literal["auto", "never"] = opt("auto", "`auto`: continue from the newest complete checkpoint in "
                                                   "`output_dir`; `never`: refuse to start when one exists.")


@dataclass(frozen=True)
class ValidationConfig:
    every: int = opt(0, "Validate every N optimizer steps (0 = only at the end when `at_end`).", min=0)
    at_start: bool = opt(False, "Validate before the first step (the untrained baseline of the curve).")
    at_end: bool = opt(True, "Validate after the last step.")
    samples: int = opt(4, "Fixed samples of the held-out videos whose loss is reported.", min=0)
    render: bool = opt(True, "Render a clip with the sampler: ground truth | poses | generated, side by side.")
    steps: int = opt(20, "DDIM steps of the rendered clip.", min=1, max=1000)
    guidance: float = opt(2.5, "Guidance scale of the rendered clip.")


@dataclass(frozen=True)
class LoggingConfig:
    every: int = opt(10, "Write a line to train_log.jsonl every N steps (the progress bar updates every step).",
                     min=1)
    plot_every: int = opt(50, "Redraw loss.png every N steps.", min=1)
    progress: bool = opt(True, "Show the progress bar (loss, it/s, ETA) on stderr.")


@dataclass(frozen=True)
class TrainConfig:
    output_dir: str = required("Folder for checkpoints, exported weights, logs, plots and validation clips.")
    seed: int = opt(0, "Seed of everything random (data order, noise, timesteps, drops, fresh weights).", min=0)
    data: DataConfig = required("Training data (see `data.*`).")
    model: ModelConfig = opt(None, "Starting UNet.")
    encoders: EncodersConfig = opt(None, "VAE and CLIP used to prepare the data and decode validation clips.")
    mode: ModeConfig = opt(None, "What is trained.")
    objective: ObjectiveConfig = opt(None, "Diffusion objective and condition dropping.")
    optim: OptimConfig = opt(None, "Optimizer and learning-rate schedule.")
    train: RunConfig = opt(None, "Steps, batch, precision, memory savers, device.")
    ema: EMAConfig = opt(None, "Exponential moving average.")
    checkpoint: CheckpointConfig = opt(None, "Checkpoints and exports.")
    validation: ValidationConfig = opt(None, "Validation loss and rendered clips.")
    logging: LoggingConfig = opt(None, "Logs, plots and the progress bar.")
    config_dir: str = field(default=".", metadata={"internal": True})

    # ---------------------------------------------------------------- convenience
    @property
    def out(self) -> Path:
        return Path(self.output_dir)

    @property
    def cache(self) -> Path:
        return Path(self.data.cache_dir) if self.data.cache_dir else self.out / "cache"

    def learning_rate(self) -> float:
        if self.optim.lr is not None:
            return float(self.optim.lr)
        return DEFAULT_LR[self.mode.kind]

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.pop("config_dir", None)
        return d


DEFAULT_LR = {"full": 2e-5, "temporal": 5e-5, "mamba": 1e-4, "lora": 1e-4}
LORA_TARGET_PRESETS = ("attention", "spatial_attention", "temporal_attention", "cross_attention", "feedforward")

PATH_KEYS = ("output_dir", "data.videos", "data.validation_dir", "data.cache_dir", "model.init", "encoders.clip", "encoders.vae")
PATH_LIST_KEYS = ("data.pose_models", "encoders.models")


# ------------------------------------------------------------------------------------------ parsing
def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " | ".join(json.dumps(a) for a in typing.get_args(tp))
    if origin is Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin in (list, Sequence):
        return f"list of {_type_name(typing.get_args(tp)[0])}"
    if tp is type(None):
        return "null"
    if dataclasses.is_dataclass(tp):
        return "object"
    return {int: "integer", float: "number", bool: "true/false", str: "string", dict: "object"}.get(tp, str(tp))


def _fail(path: str, message: str) -> TrainConfigError:
    return TrainConfigError(f"config key `{path}`: {message}")


def _coerce(value: Any, tp: Any, path: str) -> Any:
    origin = typing.get_origin(tp)
    if origin is Union:
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        errors = []
        for a in args:
            if a is type(None):
                continue
            try:
                return _coerce(value, a, path)
            except TrainConfigError as exc:
                errors.append(str(exc))
        raise _fail(path, f"expected {_type_name(tp)}, got {json.dumps(value)[:60]}.")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            close = difflib.get_close_matches(str(value), [str(c) for c in choices], n=1)
            hint = f" Did you mean {json.dumps(close[0])}?" if close else ""
            raise _fail(path, f"{json.dumps(value)} is not one of {', '.join(json.dumps(c) for c in choices)}.{hint}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise _fail(path, f"expected a list, got {json.dumps(value)[:60]}.")
        (inner,) = typing.get_args(tp)
        return [_coerce(v, inner, f"{path}[{i}]") for i, v in enumerate(value)]
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise _fail(path, f"expected an object {{...}}, got {json.dumps(value)[:60]}.")
        return _parse_section(tp, value, path)
    if tp is bool:
        if not isinstance(value, bool):
            raise _fail(path, f"expected true or false, got {json.dumps(value)[:60]}.")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            if isinstance(value, float) and value.is_integer():
                return int(value)
            raise _fail(path, f"expected an integer, got {json.dumps(value)[:60]}.")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(float(value)):
            raise _fail(path, f"expected a finite number, got {json.dumps(value)[:60]}.")
        return float(value)
    if tp is str:
        if not isinstance(value, str) or not value.strip():
            raise _fail(path, f"expected a non-empty string, got {json.dumps(value)[:60]}.")
        return value
    if tp is dict:
        if not isinstance(value, Mapping):
            raise _fail(path, f"expected an object {{...}}, got {json.dumps(value)[:60]}.")
        return {k: v for k, v in value.items() if not str(k).startswith(COMMENT_PREFIX)}
    raise _fail(path, f"unsupported type {tp!r}")  # pragma: no cover - a programming error


def _check_range(value: Any, meta: Mapping[str, Any], path: str) -> None:
    if value is None or isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if "min" in meta and value < meta["min"]:
        raise _fail(path, f"must be >= {meta['min']}, got {value}.")
    if "max" in meta and value > meta["max"]:
        raise _fail(path, f"must be <= {meta['max']}, got {value}.")
    if "gt" in meta and not value > meta["gt"]:
        raise _fail(path, f"must be > {meta['gt']}, got {value}.")


def _public_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if not f.metadata.get("internal")]


def _parse_section(cls: type, data: Mapping[str, Any], prefix: str) -> Any:
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in _public_fields(cls)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if not isinstance(key, str):
            raise _fail(prefix or "<top>", f"keys must be strings, got {key!r}.")
        if key.startswith(COMMENT_PREFIX):
            continue
        path = f"{prefix}.{key}" if prefix else key
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" Did you mean `{(prefix + '.') if prefix else ''}{close[0]}`?" if close else ""
            raise TrainConfigError(
                f"unknown config key `{path}`.{hint} Valid keys{(' of `' + prefix + '`') if prefix else ''}: "
                f"{', '.join(sorted(fields))}.")
        values[key] = _coerce(value, hints[key], path)
        _check_range(values[key], fields[key].metadata, path)
    for name, f in fields.items():
        path = f"{prefix}.{name}" if prefix else name
        if name not in values:
            if f.metadata.get("required"):
                raise _fail(path, f"is required: {f.metadata['doc']}")
            if dataclasses.is_dataclass(hints[name]):  # an omitted section = all defaults
                values[name] = _parse_section(hints[name], {}, path)
    return cls(**values)


def _resolve_paths(data: dict[str, Any], base: Path) -> None:
    def get_parent(path: str) -> tuple[Optional[dict], str]:
        parts = path.split(".")
        node: Any = data
        for p in parts[:-1]:
            node = node.get(p) if isinstance(node, dict) else None
            if node is None:
                return None, parts[-1]
        return (node if isinstance(node, dict) else None), parts[-1]

    def fix(value: Any) -> Any:
        if isinstance(value, str) and value.strip():
            p = Path(os.path.expanduser(value))
            return str(p if p.is_absolute() else (base / p))
        return value

    for key in PATH_KEYS:
        parent, leaf = get_parent(key)
        if parent is not None and leaf in parent:
            parent[leaf] = fix(parent[leaf])
    for key in PATH_LIST_KEYS:
        parent, leaf = get_parent(key)
        if parent is not None and isinstance(parent.get(leaf), list):
            parent[leaf] = [fix(v) for v in parent[leaf]]


def parse_config(data: Mapping[str, Any], base_dir: Union[str, Path] = ".") -> TrainConfig:
    """Validate a config dict (as read from JSON) and return the typed :class:`TrainConfig`."""
    if not isinstance(data, Mapping):
        raise TrainConfigError(f"the training config must be a JSON object {{...}}, got {type(data).__name__}.")
    data = json.loads(json.dumps(data))  # a deep copy of plain JSON values
    _resolve_paths(data, Path(base_dir))
    cfg = _parse_section(TrainConfig, data, "")
    cfg = dataclasses.replace(cfg, config_dir=str(base_dir))
    _cross_checks(cfg)
    return cfg


def apply_overrides(data: dict[str, Any], overrides: Sequence[str]) -> dict[str, Any]:
    """``["optim.lr=1e-4", "train.steps=10"]`` -> data with those keys set (values parsed as JSON, else strings)."""
    for item in overrides:
        if "=" not in item:
            raise TrainConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set optim.lr=1e-4.")
        key, raw = item.split("=", 1)
        try:
            value = json.loads(raw)
        except ValueError:
            value = raw
        node = data
        parts = key.strip().split(".")
        for p in parts[:-1]:
            child = node.get(p)
            if child is None:
                child = node[p] = {}
            if not isinstance(child, dict):
                raise TrainConfigError(f"--set {item!r}: `{p}` is not a section.")
            node = child
        node[parts[-1]] = value
    return data


def load_config(path: Union[str, Path], overrides: Sequence[str] = ()) -> TrainConfig:
    """Read, override and validate a JSON config file."""
    p = Path(path)
    if not p.is_file():
        raise TrainConfigError(f"config file not found: {p}. Start from an example in "
                               "unianimate_core/train/examples/ (see docs/training.md).")
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise TrainConfigError(f"{p} is not valid JSON: {exc}. (Comments are written as \"//\" keys.)") from exc
    if not isinstance(data, dict):
        raise TrainConfigError(f"{p}: the config must be a JSON object {{...}}.")
    return parse_config(apply_overrides(data, overrides), p.resolve().parent)


def _cross_checks(cfg: TrainConfig) -> None:
    o = cfg.objective
    if o.t_min > o.t_max:
        raise _fail("objective.t_min", f"must be <= objective.t_max ({o.t_max}), got {o.t_min}.")
    if o.drop_all + o.keep_all > 1:
        raise _fail("objective.drop_all", f"drop_all + keep_all must be <= 1, got {o.drop_all} + {o.keep_all}.")
    b = cfg.optim.betas
    if len(b) != 2 or not all(0 <= x < 1 for x in b):
        raise _fail("optim.betas", f"expected two numbers in [0, 1), got {b}.")
    if cfg.mode.kind == "lora":
        for i, t in enumerate(cfg.mode.lora.targets):
            if t not in LORA_TARGET_PRESETS and not t.startswith("regex:"):
                close = difflib.get_close_matches(t, LORA_TARGET_PRESETS, n=1)
                hint = f" Did you mean {json.dumps(close[0])}?" if close else ""
                raise _fail(f"mode.lora.targets[{i}]", f"{json.dumps(t)} is not one of "
                            f"{', '.join(LORA_TARGET_PRESETS)} or `regex:<pattern>`.{hint}")
        if not cfg.mode.lora.targets:
            raise _fail("mode.lora.targets", "needs at least one entry.")
    if cfg.mode.kind == "mamba":
        m = cfg.mode.mamba
        if m.source == "distill" and not cfg.model.init:
            raise _fail("mode.mamba.source", "`distill` needs a teacher: set `model.init` to an attention checkpoint "
                                             "(e.g. the official unianimate_16f_32f_non_ema_223000.pth), or use "
                                             "`scratch`.")
        try:
            from ..mamba.config import MambaConfig

            MambaConfig(**m.config)
        except TypeError as exc:
            raise _fail("mode.mamba.config", f"{exc}; valid fields: "
                        f"{', '.join(f.name for f in dataclasses.fields(MambaConfig))}.") from None
        except ValueError as exc:
            raise _fail("mode.mamba.config", str(exc)) from None
    if isinstance(cfg.model.architecture, str) and cfg.model.architecture not in ("full", "tiny"):
        raise _fail("model.architecture", f"expected \"full\", \"tiny\" or an object of UNetConfig fields, got "
                                          f"{json.dumps(cfg.model.architecture)}.")
    if isinstance(cfg.model.architecture, dict) and not cfg.model.init:
        from ..config import UNetConfig

        try:
            UNetConfig.from_dict(cfg.model.architecture)
        except (TypeError, ValueError) as exc:
            raise _fail("model.architecture", str(exc)) from None
    if cfg.optim.optimizer == "adamw8bit":
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None:
            raise _fail("optim.optimizer", "`adamw8bit` needs bitsandbytes (`pip install bitsandbytes`, CUDA only); "
                                           "or use `adamw`.")
    if cfg.train.frozen_dtype in ("bf16", "fp16") and cfg.train.precision == "fp32":
        raise _fail("train.frozen_dtype", f"{cfg.train.frozen_dtype} weights need autocast: set train.precision to "
                                          "bf16 or fp16 as well, or frozen_dtype to fp32.")
    if cfg.validation.every and cfg.data.validation_videos == 0 and not cfg.data.validation_dir:
        raise _fail("validation.every", "validation needs held-out videos: set data.validation_videos >= 1, or "
                                        "validation.every = 0.")


# ------------------------------------------------------------------------------------------ docs
def config_reference() -> list[tuple[str, str, str, str]]:
    """(key path, type, default, documentation) for every key, in declaration order."""
    rows: list[tuple[str, str, str, str]] = []

    def walk(cls: type, prefix: str) -> None:
        hints = typing.get_type_hints(cls)
        for f in _public_fields(cls):
            path = f"{prefix}{f.name}"
            tp = hints[f.name]
            if dataclasses.is_dataclass(tp):
                walk(tp, path + ".")
                continue
            if f.metadata.get("required"):
                default = "required"
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = json.dumps(f.default_factory())  # type: ignore[misc]
            else:
                default = json.dumps(f.default)
            rows.append((path, _type_name(tp), default, f.metadata["doc"]))

    walk(TrainConfig, "")
    return rows


def config_reference_markdown() -> str:
    lines = ["| key | type | default | meaning |", "|---|---|---|---|"]
    for path, tp, default, doc in config_reference():
        lines.append(f"| `{path}` | {tp.replace('|', '&#124;')} | `{default}` | {doc.replace('|', '&#124;')} |")
    return "\n".join(lines)
