#!/usr/bin/env python3
"""Temporal attention layer vs temporal Mamba layer: time and peak memory over frame counts.

Compares the UNet's two temporal layers as they are swapped in the model:

* ``attention``: ``unianimate_core.unet.TemporalTransformer`` (GroupNorm, proj_in, two
  self-attentions over frames, GEGLU feed-forward, proj_out), heads = C / 64;
* ``mamba``: ``unianimate_core.mamba.TemporalMamba`` (GroupNorm, proj_in, LayerNorm + Mamba
  mixer, proj_out), pure-PyTorch scan on CPU, mamba-ssm's fused kernels on CUDA when installed;

plus, with ``--cores``, the bare operators (SDPA over frames vs the selective scan). Both layers
see (B, C, F, h, w) with the sequence over F at each of the h*w positions, at the real widths
320/640/1280. Time and memory are both linear in h*w, so a small spatial batch locates the
crossover in F; ``--spatial level`` uses the real 512x768 sizes (64x96, 32x48, 16x24).

``--train`` times forward + backward (autograd through the chunk-recomputing scan) instead of
an inference forward. ``--autograd-study`` compares the scan's backward strategies (memory of
the chunked recomputation vs plain autograd through a per-step loop vs torch.utils.checkpoint).

Peak memory: CUDA -> ``torch.cuda.max_memory_allocated`` above the inputs; CPU -> replay of the
profiler's allocation events (bytes allocated during the call and not freed at the peak).

Usage:
  python benchmarks/temporal.py                       # CPU grid, a few minutes
  python benchmarks/temporal.py --quick               # seconds
  python benchmarks/temporal.py --device cuda         # GPU grid up to 1024 frames, real sizes
  python benchmarks/temporal.py --autograd-study      # backward memory/time of the scan
  python benchmarks/temporal.py --json out.json       # also write raw rows
"""
from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from unianimate_core.mamba import MambaConfig, TemporalMamba, load_fused_kernels  # noqa: E402
from unianimate_core.mamba.scan import selective_scan  # noqa: E402
from unianimate_core.unet import TemporalTransformer  # noqa: E402

#: Latent h x w seen by each width at 512x768 output (latent 64x96, halved per level).
LEVEL_SPATIAL = {320: (64, 96), 640: (32, 48), 1280: (16, 24)}
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass
class Row:
    kind: str            # attention | mamba | sdpa_core | scan_core
    width: int
    frames: int
    positions: int
    seconds: Optional[float]
    peak_mib: Optional[float]
    note: str = ""


# ----------------------------------------------------------------------------- measurement
def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_call(fn: Callable[[], object], device: torch.device, repeats: int, timer: str) -> float:
    """Minimum over ``repeats`` calls after one warm-up call (seconds)."""
    clock = time.process_time if timer == "cpu" else time.perf_counter
    fn()
    _sync(device)
    best = math.inf
    for _ in range(repeats):
        start = clock()
        fn()
        _sync(device)
        best = min(best, clock() - start)
    return best


def peak_memory(fn: Callable[[], object], device: torch.device) -> float:
    """Peak bytes allocated during ``fn`` beyond what was allocated before it (MiB)."""
    if device.type == "cuda":
        _sync(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        fn()
        _sync(device)
        return (torch.cuda.max_memory_allocated(device) - base) / 2**20
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        fn()
    events = sorted((e.start_ns(), e.nbytes()) for e in prof.profiler.kineto_results.events()
                    if e.name() == "[memory]")
    current = peak = 0
    for _, nbytes in events:
        current += nbytes
        peak = max(peak, current)
    return peak / 2**20


def measure(kind: str, fn: Callable[[], object], width: int, frames: int, positions: int,
            args: argparse.Namespace, device: torch.device) -> Row:
    try:
        seconds = time_call(fn, device, args.repeats, args.timer)
        peak = peak_memory(fn, device)
        return Row(kind, width, frames, positions, seconds, peak)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        return Row(kind, width, frames, positions, None, None, "out of memory")
    except RuntimeError as exc:  # CPU allocation failures
        if "alloc" not in str(exc).lower():
            raise
        return Row(kind, width, frames, positions, None, None, "out of memory")


# ----------------------------------------------------------------------------- workloads
def build_layers(width: int, device: torch.device, dtype: torch.dtype, backend: str
                 ) -> dict[str, nn.Module]:
    torch.manual_seed(0)
    attention = TemporalTransformer(width, width // 64, 64, nn, device=device, dtype=dtype)
    mamba = TemporalMamba(width, MambaConfig(backend=backend), device=device, dtype=dtype)
    with torch.no_grad():  # non-zero output projection: nothing can be skipped
        mamba.proj_out.weight.normal_(0, 0.02)
    return {"attention": attention.eval(), "mamba": mamba.eval()}


def layer_fn(layer: nn.Module, x: torch.Tensor, train: bool) -> Callable[[], object]:
    if not train:
        def run() -> object:
            with torch.no_grad():
                return layer(x)
        return run
    layer.requires_grad_(True)

    def run_train() -> object:
        # gradient w.r.t. the input only: autograd then skips the weight gradients, so the peak
        # is the activation memory that grows with F (weight gradients are a fixed cost:
        # ~22*C^2 floats for the attention layer, ~8.3*C^2 for the Mamba layer)
        xg = x.detach().requires_grad_()
        loss = layer(xg).float().square().mean()
        return torch.autograd.grad(loss, xg)
    return run_train


def core_fns(width: int, frames: int, positions: int, device: torch.device, dtype: torch.dtype,
             use_fused: bool) -> dict[str, Callable[[], object]]:
    """Bare operators at the layer's shapes: SDPA (heads = C/64) and the selective scan
    (d_inner = 2C, d_state 16)."""
    g = torch.Generator(device=device).manual_seed(1)

    def randn(*shape: int, dt: torch.dtype = dtype) -> torch.Tensor:
        return torch.randn(*shape, generator=g, device=device, dtype=dt)

    heads = width // 64
    q, k, v = (randn(positions, heads, frames, 64) for _ in range(3))
    d, n = 2 * width, 16
    u = randn(positions, frames, d)
    delta = F.softplus(randn(positions, frames, d, dt=torch.float32) - 4)
    A = -torch.arange(1, n + 1, dtype=torch.float32, device=device).repeat(d, 1)
    B, C = randn(positions, frames, n), randn(positions, frames, n)

    def sdpa() -> object:
        with torch.no_grad():
            return F.scaled_dot_product_attention(q, k, v)

    kernels = load_fused_kernels() if use_fused and device.type == "cuda" else None
    if kernels is not None:
        ut, dt, Bt, Ct = (t.transpose(1, 2).contiguous() for t in (u, delta.to(dtype), B, C))

        def scan() -> object:
            with torch.no_grad():
                return kernels.selective_scan_fn(ut, dt, A, Bt, Ct)
    else:
        def scan() -> object:
            with torch.no_grad():
                return selective_scan(u, delta, A, B, C)
    return {"sdpa_core": sdpa, "scan_core": scan}


def run_grid(args: argparse.Namespace, device: torch.device, dtype: torch.dtype) -> list[Row]:
    rows: list[Row] = []
    for width in args.widths:
        layers = build_layers(width, device, dtype, args.backend)
        hh, ww = LEVEL_SPATIAL[width] if args.spatial == "level" else args.spatial
        for frames in args.frames:
            positions = hh * ww
            x = torch.randn(args.batch, width, frames, hh, ww, device=device, dtype=dtype,
                            generator=torch.Generator(device=device).manual_seed(2))
            for kind, layer in layers.items():
                rows.append(measure(kind, layer_fn(layer, x, args.train), width, frames,
                                    positions * args.batch, args, device))
                _print_row(rows[-1])
            if args.cores:
                use_fused = args.backend != "torch"
                for kind, fn in core_fns(width, frames, positions * args.batch, device,
                                         dtype, use_fused).items():
                    rows.append(measure(kind, fn, width, frames, positions * args.batch, args,
                                        device))
                    _print_row(rows[-1])
            del x
    return rows


# ----------------------------------------------------------------------------- autograd study
def _loop_scan(u, delta, A, B, C, h0=None):
    """Functional per-step scan: autograd stores every step's state (O(L) memory)."""
    b, L, d = u.shape
    h = u.new_zeros(b, d, A.shape[1]) if h0 is None else h0
    ys = []
    for t in range(L):
        h = torch.exp(delta[:, t, :, None] * A) * h + (delta[:, t] * u[:, t])[..., None] \
            * B[:, t, None, :]
        ys.append(torch.einsum("bdn,bn->bd", h, C[:, t]))
    return torch.stack(ys, 1), h


def _checkpointed_loop_scan(u, delta, A, B, C, chunk: int):
    """torch.utils.checkpoint around the functional scan, one checkpoint per chunk."""
    from torch.utils.checkpoint import checkpoint

    b, L, d = u.shape
    h = u.new_zeros(b, d, A.shape[1])
    ys = []
    for s in range(0, L, chunk):
        e = min(L, s + chunk)
        y, h = checkpoint(_loop_scan, u[:, s:e], delta[:, s:e], A, B[:, s:e], C[:, s:e], h,
                          use_reentrant=False)
        ys.append(y)
    return torch.cat(ys, 1)


def autograd_study(args: argparse.Namespace, device: torch.device) -> list[Row]:
    """Forward + backward of the bare scan: three ways to get gradients."""
    rows: list[Row] = []
    d, n, positions = args.study_d_inner, 16, args.study_positions
    for frames in args.frames:
        g = torch.Generator().manual_seed(3)
        leaves = [torch.randn(positions, frames, d, generator=g),
                  F.softplus(torch.randn(positions, frames, d, generator=g) - 4),
                  -torch.arange(1, n + 1, dtype=torch.float32).repeat(d, 1),
                  torch.randn(positions, frames, n, generator=g),
                  torch.randn(positions, frames, n, generator=g)]
        leaves = [t.to(device).requires_grad_() for t in leaves]
        chunk = math.isqrt(frames - 1) + 1
        variants = {
            "scan_recompute": lambda: selective_scan(*leaves),
            "loop_autograd": lambda: _loop_scan(*leaves)[0],
            "loop_checkpoint": lambda: _checkpointed_loop_scan(*leaves, chunk=chunk),
        }
        for kind, fwd in variants.items():
            def run(fwd=fwd) -> None:
                for t in leaves:
                    t.grad = None
                fwd().square().mean().backward()
            rows.append(measure(kind, run, d, frames, positions, args, device))
            _print_row(rows[-1])
    return rows


# ----------------------------------------------------------------------------- reporting
def _print_row(r: Row) -> None:
    sec = f"{r.seconds:9.4f} s" if r.seconds is not None else "        - "
    mem = f"{r.peak_mib:10.1f} MiB" if r.peak_mib is not None else "          - "
    print(f"  {r.kind:16s} C={r.width:5d} F={r.frames:5d} N={r.positions:6d} {sec} {mem}"
          f" {r.note}", flush=True)


def crossover(rows: list[Row], a_kind: str, m_kind: str, width: int) -> str:
    """Where Mamba becomes cheaper than attention: measured, and extrapolated from fits
    attention = a0 + a1*F + a2*F^2, Mamba = m0 + m1*F (least squares over the measured F)."""
    a = {r.frames: r.seconds for r in rows if r.kind == a_kind and r.width == width and r.seconds}
    m = {r.frames: r.seconds for r in rows if r.kind == m_kind and r.width == width and r.seconds}
    common = sorted(set(a) & set(m))
    if not common:
        return "n/a"
    cheaper = [m[f] < a[f] for f in common]
    if all(cheaper):
        measured = f"Mamba cheaper at every measured F ({common[0]}..{common[-1]})"
    elif not any(cheaper):
        measured = f"attention cheaper at every measured F ({common[0]}..{common[-1]})"
    else:
        first = next(i for i in range(len(common)) if all(cheaper[i:])) \
            if cheaper[-1] else None
        measured = (f"Mamba cheaper from F={common[first]} on" if first is not None
                    else "mixed (no stable crossover in the measured range)")
    if len(common) < 3 or all(cheaper):
        return measured
    Fs = torch.tensor(common, dtype=torch.float64)
    ta = torch.tensor([a[f] for f in common], dtype=torch.float64)
    tm = torch.tensor([m[f] for f in common], dtype=torch.float64)
    one = torch.ones_like(Fs)
    a0, a1, a2 = torch.linalg.lstsq(torch.stack([one, Fs, Fs**2], 1), ta[:, None]).solution[:, 0]
    m0, m1 = torch.linalg.lstsq(torch.stack([one, Fs], 1), tm[:, None]).solution[:, 0]
    # attention - mamba = a2 F^2 + (a1 - m1) F + (a0 - m0); crossover = its largest root
    qa, qb, qc = float(a2), float(a1 - m1), float(a0 - m0)
    disc = qb * qb - 4 * qa * qc
    if qa <= 0 or disc < 0:
        return measured + "; fit: no crossover"
    root = (-qb + math.sqrt(disc)) / (2 * qa)
    return measured + f"; fit: crossover ~{root:,.0f} frames"


def summarise(rows: list[Row], widths: list[int], cores: bool) -> None:
    pairs = [("attention", "mamba", "layer")] + ([("sdpa_core", "scan_core", "core")]
                                                 if cores else [])
    print("\nRatios Mamba / attention (time, peak memory) and crossover:")
    for width in widths:
        for a_kind, m_kind, label in pairs:
            a = {r.frames: r for r in rows if r.kind == a_kind and r.width == width}
            m = {r.frames: r for r in rows if r.kind == m_kind and r.width == width}
            parts = []
            for f in sorted(set(a) & set(m)):
                ra, rm = a[f], m[f]
                if ra.seconds and rm.seconds:
                    mem = (f"{rm.peak_mib / ra.peak_mib:.2f}"
                           if ra.peak_mib and rm.peak_mib else "-")
                    parts.append(f"F={f}: {rm.seconds / ra.seconds:.2f}x t {mem}x mem")
                elif ra.note or rm.note:
                    parts.append(f"F={f}: attention {ra.note or 'ok'}, Mamba {rm.note or 'ok'}")
            print(f"  C={width:5d} {label:5s}: " + "; ".join(parts))
            print(f"  {'':7s} {'':5s}  -> {crossover(rows, a_kind, m_kind, width)}")


def parse_args(argv: Optional[list[str]] = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    p.add_argument("--widths", default="320,640,1280")
    p.add_argument("--frames", default=None,
                   help="comma list; default 16..256 on CPU, 16..1024 on CUDA")
    p.add_argument("--spatial", default=None,
                   help="HxW positions per sample, or 'level' for the real 512x768 sizes; "
                        "default 4x6 on CPU, level on CUDA")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--dtype", default=None, choices=sorted(DTYPES),
                   help="default fp32 on CPU, fp16 on CUDA")
    p.add_argument("--backend", default="auto", choices=["auto", "torch", "mamba_ssm"])
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--timer", default=None, choices=["cpu", "wall"],
                   help="cpu = process time (robust on a shared CPU box); default cpu on CPU")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--train", action="store_true", help="forward + backward instead of forward")
    p.add_argument("--cores", action="store_true", help="also time SDPA vs the bare scan")
    p.add_argument("--autograd-study", action="store_true",
                   help="only compare backward strategies of the bare scan")
    p.add_argument("--study-d-inner", type=int, default=640)
    p.add_argument("--study-positions", type=int, default=16)
    p.add_argument("--quick", action="store_true", help="tiny grid (smoke test)")
    p.add_argument("--json", default=None, help="write raw rows to this file")
    args = p.parse_args(argv)
    cuda = args.device.startswith("cuda")
    if cuda and not torch.cuda.is_available():
        p.error("--device cuda requested but torch.cuda.is_available() is False; run on a GPU "
                "machine or use --device cpu.")
    args.widths = [int(w) for w in args.widths.split(",")]
    bad = [w for w in args.widths if w % 64]
    if bad:
        p.error(f"widths must be multiples of 64 (attention heads of 64), got {bad}")
    default_frames = "16,32,64,128,256,512,1024" if cuda else "16,32,64,128,256"
    if args.quick:
        args.widths, default_frames, args.repeats = args.widths[:1], "16,32", 1
    args.frames = [int(f) for f in (args.frames or default_frames).split(",")]
    spatial = args.spatial or ("level" if cuda else "4x6")
    if spatial != "level":
        try:
            hh, ww = (int(v) for v in spatial.lower().split("x"))
        except ValueError:
            p.error(f"--spatial must look like 4x6 or be 'level', got {spatial!r}")
        spatial = (hh, ww)
    elif any(w not in LEVEL_SPATIAL for w in args.widths):
        p.error(f"--spatial level knows widths {sorted(LEVEL_SPATIAL)} only")
    args.spatial = spatial
    args.dtype = args.dtype or ("fp16" if cuda else "fp32")
    args.timer = args.timer or ("wall" if cuda else "cpu")
    return args


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    dtype = DTYPES[args.dtype]
    kernels = load_fused_kernels() if device.type == "cuda" else None
    scan_backend = ("mamba-ssm fused kernels" if kernels is not None and args.backend != "torch"
                    else "pure-PyTorch scan")
    print(f"torch {torch.__version__}, {platform.machine()}, device {device}, dtype {args.dtype}, "
          f"threads {args.threads}, timer {args.timer}, Mamba backend: {scan_backend}, "
          f"{'forward+backward' if args.train else 'inference forward'}")
    if args.autograd_study:
        rows = autograd_study(args, device)
    else:
        rows = run_grid(args, device, dtype)
        summarise(rows, args.widths, args.cores)
    if args.json:
        Path(args.json).write_text(json.dumps(
            {"args": {k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(args).items()},
             "torch": torch.__version__, "backend": scan_backend,
             "rows": [asdict(r) for r in rows]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
