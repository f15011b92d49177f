"""Resumable checkpoints, written atomically, and the exported model files.

A checkpoint is a folder ``<output_dir>/checkpoints/step_NNNNNNN/``:

| file | content |
|---|---|
| ``trainable.safetensors`` | the trainable weights (fp32 master copy) by parameter name |
| ``ema.safetensors`` | the EMA weights (when enabled) |
| ``optimizer.pt`` | optimizer, learning-rate schedule and gradient-scaler states |
| ``rng.pt`` | torch (CPU + CUDA), numpy and Python RNG states |
| ``state.json`` | step, samples seen (the data position), the run fingerprint, time |

It is written into a ``.tmp-*`` folder and renamed when complete, so a crash (even SIGKILL) leaves
either the whole checkpoint or none; leftovers are removed at the next start. Frozen weights are
not stored: they are rebuilt deterministically from the config (``model.init`` or the seed).
"""
from __future__ import annotations

import json
import random
import re
import shutil
import time
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch
from torch import Tensor

from .data import AtomicDir, atomic_write_bytes, clean_stale_temporaries
from .errors import TrainError

STEP_DIR = re.compile(r"^step_(\d{7,})$")


def rng_state() -> dict[str, Any]:
    np_state = np.random.get_state()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(np.asarray(np_state[1], dtype=np.int64)), "pos": int(np_state[2]),
                  "has_gauss": int(np_state[3]), "gauss": float(np_state[4])},
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    random.setstate(_tuplify(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _tuplify(value: Any) -> Any:
    return tuple(_tuplify(v) for v in value) if isinstance(value, (list, tuple)) else value


class Checkpoints:
    def __init__(self, output_dir: Path, keep: int) -> None:
        self.folder = Path(output_dir) / "checkpoints"
        self.keep = keep

    def all(self) -> list[tuple[int, Path]]:
        if not self.folder.is_dir():
            return []
        found = []
        for p in self.folder.iterdir():
            m = STEP_DIR.match(p.name)
            if m and (p / "state.json").is_file():
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest(self) -> Optional[Path]:
        found = self.all()
        return found[-1][1] if found else None

    def clean(self) -> None:
        clean_stale_temporaries(self.folder)

    def save(self, step: int, state: dict[str, Any], trainable: dict[str, Tensor], ema: Optional[dict[str, Tensor]],
             optimizer: dict[str, Any]) -> Path:
        from safetensors.torch import save_file

        final = self.folder / f"step_{step:07d}"
        if final.exists():
            shutil.rmtree(final)
        with AtomicDir(final) as tmp:
            save_file({k: v.detach().float().cpu().contiguous() for k, v in trainable.items()},
                      str(tmp / "trainable.safetensors"))
            if ema is not None:
                save_file({k: v.detach().float().cpu().contiguous() for k, v in ema.items()}, str(tmp / "ema.safetensors"))
            torch.save(optimizer, tmp / "optimizer.pt")
            torch.save(rng_state(), tmp / "rng.pt")
            (tmp / "state.json").write_text(json.dumps({**state, "step": step, "time": time.time()}, indent=1))
        self._prune()
        return final

    def _prune(self) -> None:
        found = self.all()
        for _, path in found[:-self.keep]:
            shutil.rmtree(path, ignore_errors=True)

    @staticmethod
    def load(path: Path) -> dict[str, Any]:
        from safetensors.torch import load_file

        try:
            state = json.loads((path / "state.json").read_text())
            out: dict[str, Any] = {
                "state": state,
                "trainable": load_file(str(path / "trainable.safetensors")),
                "ema": load_file(str(path / "ema.safetensors")) if (path / "ema.safetensors").is_file() else None,
                "optimizer": torch.load(path / "optimizer.pt", map_location="cpu", weights_only=True),
                "rng": torch.load(path / "rng.pt", map_location="cpu", weights_only=True),
            }
        except (OSError, ValueError, RuntimeError) as exc:
            raise TrainError(f"the checkpoint {path} cannot be read ({exc}); delete that folder to resume from the "
                             "previous one.") from exc
        return out


def save_export(path: Path, tensors: dict[str, Tensor], metadata: dict[str, str], dtype: torch.dtype) -> Path:
    """Write an exported model/LoRA as safetensors, atomically; state-space and scalar tensors stay fp32."""
    from safetensors.torch import save

    def cast(k: str, v: Tensor) -> Tensor:
        v = v.detach().cpu()
        if not v.is_floating_point() or k.endswith("A_log") or k.endswith(".D") or k.endswith(".alpha"):
            return v.float().contiguous() if v.is_floating_point() else v.contiguous()
        return v.to(dtype).contiguous()

    data = save({k: cast(k, v) for k, v in tensors.items()}, metadata=metadata)
    atomic_write_bytes(path, data)
    return path
