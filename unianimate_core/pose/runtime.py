"""ONNX Runtime sessions: execution-provider choice, CPU fallback and logging.

Why this exists: the most reported DWPose problem in existing ports is that it silently runs on
the CPU (CUDA provider hard-coded while the CPU wheel is installed, or cuDNN missing, in which case
onnxruntime quietly drops to CPU). Here the provider list is chosen at run time from what the
installed onnxruntime offers, the provider a session *actually* got is checked, and the outcome is
always logged (logger ``unianimate``) together with the fix when it is the slow path.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Sequence

from ..model_files import DWPOSE_PAGE
from ._deps import import_onnxruntime
from .errors import PoseError, PoseInputError

logger = logging.getLogger("unianimate")

#: Accelerated providers tried by ``providers="auto"``, best first. TensorRT is left out (it
#: builds engines for minutes on first use); CoreML is left out (partial op coverage and fp16
#: rounding on these models) but can be requested explicitly.
AUTO_PROVIDERS: tuple[str, ...] = ("CUDAExecutionProvider", "ROCMExecutionProvider", "DmlExecutionProvider")
CPU = "CPUExecutionProvider"

_ALIASES = {
    "cpu": CPU,
    "cuda": "CUDAExecutionProvider",
    "rocm": "ROCMExecutionProvider",
    "directml": "DmlExecutionProvider",
    "dml": "DmlExecutionProvider",
    "coreml": "CoreMLExecutionProvider",
    "tensorrt": "TensorrtExecutionProvider",
}

_CUDA_FIX = (
    "To use the GPU: install `onnxruntime-gpu` built for your CUDA major version (and only that "
    "onnxruntime package), and make sure the CUDA and cuDNN libraries it needs are loadable "
    "(on Linux e.g. the nvidia-cudnn-cu12 wheel that PyTorch uses, or add the cuDNN folder to "
    "LD_LIBRARY_PATH / PATH)."
)


def resolve_providers(providers: str | Sequence[str] = "auto") -> list[str]:
    """Provider names to request, best first, always ending with the CPU provider.

    ``"auto"``: the accelerated providers from :data:`AUTO_PROVIDERS` that this onnxruntime build
    offers, then CPU. ``"cpu"``/``"cuda"``/... or a list of full provider names: exactly those
    (unavailable ones are dropped with a warning) plus the CPU fallback.
    """
    ort = import_onnxruntime()
    available = list(ort.get_available_providers())
    if isinstance(providers, str):
        key = providers.strip().lower()
        if key == "auto":
            wanted = [p for p in AUTO_PROVIDERS if p in available]
            return wanted + [CPU]
        requested = [_ALIASES.get(key, providers)]
    else:
        requested = [_ALIASES.get(str(p).lower(), str(p)) for p in providers]
    chosen = []
    for name in requested:
        if name in available:
            if name not in chosen:
                chosen.append(name)
        else:
            logger.warning(
                "DWPose: onnxruntime provider %s was requested but this onnxruntime build only offers %s. %s",
                name, ", ".join(available), _CUDA_FIX if name == "CUDAExecutionProvider" else "",
            )
    if CPU not in chosen:
        chosen.append(CPU)
    return chosen


def create_session(path: str | Path, providers: Sequence[str], threads: int | None = None) -> Any:
    """Create an ``InferenceSession`` on the best provider that really works, with logging.

    If creating it with an accelerated provider raises (missing CUDA/cuDNN libraries, wrong
    driver...), it is created again on the CPU and a warning says why and how to fix it. If
    onnxruntime silently dropped the accelerator (it only logs to stderr in that case), the same
    warning is emitted.
    """
    ort = import_onnxruntime()
    path = Path(path)
    if not path.is_file():
        raise PoseInputError(f"ONNX model file not found: {path}")
    options = ort.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = int(threads)
    options.log_severity_level = 3  # onnxruntime's own warnings go to stderr; ours go to logging
    if "DmlExecutionProvider" in providers:  # DirectML supports neither memory patterns nor parallel runs
        options.enable_mem_pattern = False
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    wanted = list(providers)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=wanted)
    except Exception as exc:  # onnxruntime raises its own exception types (Fail, InvalidGraph, ...)
        accelerated = [p for p in wanted if p != CPU]
        if not accelerated:
            raise PoseError(
                f"onnxruntime could not load {path.name} ({exc}). The file may be incomplete or not "
                f"an ONNX model: download it again from {DWPOSE_PAGE}"
            ) from exc
        logger.warning(
            "DWPose: creating the %s session for %s failed (%s); falling back to the CPU, which is much "
            "slower. %s", accelerated[0], path.name, exc, _CUDA_FIX,
        )
        return create_session(path, [CPU], threads)
    got = session.get_providers()
    first_wanted = wanted[0]
    if first_wanted != CPU and first_wanted not in got:
        logger.warning(
            "DWPose: onnxruntime could not use %s for %s and runs it on %s instead (much slower). %s",
            first_wanted, path.name, got[0] if got else "?", _CUDA_FIX,
        )
    return session


def session_provider(session: Any) -> str:
    """The provider a session runs its nodes on first (e.g. ``CUDAExecutionProvider``)."""
    got = session.get_providers()
    return got[0] if got else CPU
