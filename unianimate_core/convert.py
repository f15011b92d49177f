"""Convert a UniAnimate UNet checkpoint to ``.safetensors``.

    python -m unianimate_core.convert IN.pth OUT.safetensors [--dtype fp16|bf16|fp32]

Why: safetensors loads without unpickling (no code execution), memory-maps, and is what ComfyUI users
expect; fp16 halves the 5.7 GB fp32 file. The file is validated against the architecture before
anything is written, and the inferred config is stored in the metadata.
"""
from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import torch

from .checkpoint import (
    OFFICIAL_FILENAME,
    _foreign_file_error,
    _keeps_fp32,
    check_state_dict,
    identify,
    infer_config,
    read_metadata,
    read_state_dict,
    resolve_dtype,
)
from .errors import UniAnimateError

log = logging.getLogger("unianimate")


def convert(
    src: Path,
    dst: Path,
    dtype: Optional[str] = None,
    allow_pickle_code: bool = False,
    overwrite: bool = False,
) -> dict:
    """Validate ``src`` and write it to ``dst`` as safetensors; returns a small summary dict."""
    from safetensors.torch import save_file

    from .unet import UNetSD_UniAnimate

    src, dst = Path(src), Path(dst)
    if dst.suffix.lower() != ".safetensors":
        raise UniAnimateError(f"output must end in .safetensors; got {dst.name}.")
    if dst.exists() and not overwrite:
        raise UniAnimateError(f"{dst} already exists; pass --overwrite to replace it.")
    if src.resolve() == dst.resolve():
        raise UniAnimateError("input and output are the same file.")
    sd = read_state_dict(src, allow_pickle_code=allow_pickle_code)
    kind = identify(sd)
    if kind != "unianimate":
        raise _foreign_file_error(src, kind)
    config = infer_config(sd, read_metadata(src))
    check_state_dict(sd, UNetSD_UniAnimate(config, device="meta").state_dict(), src.name)
    target = resolve_dtype(dtype, sd)
    out = {
        k: v.to(torch.float32 if _keeps_fp32(k) else target).contiguous() if v.is_floating_point() else v.contiguous()
        for k, v in sd.items()
    }
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    save_file(out, str(tmp), metadata={"format": "unianimate-unet", "config": config.to_json(),
                                        "source": src.name, "dtype": str(target).replace("torch.", "")})
    tmp.replace(dst)  # never leave a half-written file under the final name
    n = sum(v.numel() for v in out.values())
    return {"keys": len(out), "parameters": n, "dtype": str(target), "bytes": dst.stat().st_size}


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m unianimate_core.convert",
        description=f"Convert a UniAnimate UNet checkpoint (e.g. {OFFICIAL_FILENAME}) to .safetensors.",
    )
    p.add_argument("src", type=Path, help="input checkpoint (.pth/.ckpt/.pt/.bin/.safetensors)")
    p.add_argument("dst", type=Path, help="output .safetensors file")
    p.add_argument("--dtype", choices=["auto", "fp32", "fp16", "bf16"], default="auto",
                   help="weight dtype of the output (auto keeps the input's)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    p.add_argument("--unsafe-allow-pickle", action="store_true",
                   help="allow pickles that execute code while loading (only for files you trust)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        info = convert(args.src, args.dst, args.dtype, args.unsafe_allow_pickle, args.overwrite)
    except UniAnimateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {args.dst}: {info['keys']} tensors, {info['parameters']:,} parameters, "
          f"{info['dtype']}, {info['bytes'] / 2**20:.1f} MiB")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
