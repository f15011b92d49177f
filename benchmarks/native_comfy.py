"""UniAnimate's MODEL inside a real ComfyUI: step time with caches / compile, context-window memory.

Needs a ComfyUI work tree (the numbers are ComfyUI's samplers on our model):

    COMFYUI_PATH=/path/to/ComfyUI [COMFYUI_PYTHON=/path/to/its/python] python benchmarks/native_comfy.py
        [--frames 2] [--steps 20] [--window-frames 64,128,256] [--inductor]

Tiny UNet (random weights), 64 x 64 px, CPU, one thread, PyTorch SDPA attention; each case runs in a
fresh ComfyUI process (tests/host/native_probe.py). Prints numbers, asserts nothing:

* step time: KSampler ddim / ddim_uniform on the plain MODEL, with EasyCache and LazyCache (defaults:
  threshold 0.2, 15-95 %), and through TorchCompileModel's wrapper with the eager backend (tracing
  cost only) or, with --inductor, the real TorchCompileModel node (inductor; compiling takes minutes);
* context windows (length 8, overlap 2, standard_static, flat): model calls, largest call, ComfyUI's
  memory budget shape and the host-memory growth for each video length.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = ROOT / "tests" / "host" / "native_probe.py"


def comfy() -> tuple[Path, Path]:
    root = os.environ.get("COMFYUI_PATH")
    if not root or not (Path(root) / "main.py").is_file():
        sys.exit("Set COMFYUI_PATH to a ComfyUI work tree (and COMFYUI_PYTHON to its Python if it is not "
                 "COMFYUI_PATH/venv, COMFYUI_PATH/.venv or ../venv).")
    py = os.environ.get("COMFYUI_PYTHON")
    if not py:
        for cand in (Path(root) / "venv", Path(root) / ".venv", Path(root).parent / "venv"):
            if (cand / "bin" / "python").is_file():
                py = str(cand / "bin" / "python")
                break
    if not py:
        sys.exit("Set COMFYUI_PYTHON to the Python that runs ComfyUI.")
    return Path(root), Path(py)


def probe(task: str, **params) -> dict:
    root, py = comfy()
    res = subprocess.run([str(py), str(PROBE), task, json.dumps(params)], cwd=str(root), capture_output=True,
                         text=True)
    if res.returncode:
        sys.exit(res.stderr[-4000:])
    return json.loads(res.stdout.split("RESULT", 1)[1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--window-frames", default="64,128,256")
    ap.add_argument("--inductor", action="store_true", help="also run TorchCompileModel with inductor (slow)")
    args = ap.parse_args()

    variants = ["easycache", "lazycache", "compile_eager"] + (["compile"] if args.inductor else [])
    r = probe("speed", frames=args.frames, steps=args.steps, variants=variants)
    print(f"KSampler ddim/ddim_uniform, {args.steps} steps ({args.steps + 1} model steps), {args.frames} frames, "
          f"64x64, CPU 1 thread, torch {r.pop('torch')}")
    print(f"{'model':<15}{'total s':>9}{'1st step s':>11}{'median step s':>15}{'vs plain':>9}  max|diff| / skipped")
    plain = r["plain"]["total_s"]
    for name, row in r.items():
        if "error" in row:
            print(f"{name:<15} error: {row['error']}")
            continue
        extra = f"{row.get('max_abs_diff_vs_plain', 0.0):.3g}" + (f"  {row['log'][0]}" if row.get("log") else "")
        print(f"{name:<15}{row['total_s']:>9.2f}{row['first_step_s']:>11.2f}{row['median_step_s']:>15.3f}"
              f"{row['total_s'] / plain:>9.2f}  {extra}")

    print("\nContext Windows (Manual) 8 / overlap 2, standard_static, flat; KSampler ddim, 2 steps")
    print(f"{'frames':>7}{'calls':>7}{'max frames/call':>16}{'max batch':>10}{'budget shape':>18}{'RSS growth MB':>15}{'s':>8}")
    for frames in (int(f) for f in args.window_frames.split(",")):
        w = probe("windows", frames=frames, steps=2)
        print(f"{frames:>7}{w['calls']:>7}{w['max_call_frames']:>16}{w['max_call_batch']:>10}"
              f"{str(w['memory_required_shapes'][0]):>18}{w['rss_growth_mb']:>15.1f}{w['seconds']:>8.1f}")


if __name__ == "__main__":
    main()
