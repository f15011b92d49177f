"""The fake ComfyUI's layer factory and dtype rules against the real ComfyUI's (no server needed).

Both probes run in the real ComfyUI's Python (same torch build), one importing the real ``comfy``
package, the other the fake one from tests/comfy_fake, so results can be compared bit for bit:

* ``comfy.ops``: every layer class the core uses (Linear, Conv1d/2d/3d, GroupNorm, LayerNorm) from
  ``disable_weight_init`` and ``manual_cast``, with weights stored in fp32/fp16/bf16/fp8_e4m3fn, inputs
  in fp32/fp16/bf16, with and without a weight/bias function (a LoRA / low-VRAM patch): the same
  output tensor, or the same exception type; and ``pick_operations``' choice;
* ``comfy.model_management``'s dtype decisions (``unet_dtype``, ``unet_manual_cast``,
  ``supports_cast``) for each fake device profile, with the real module's capability probes
  (``should_use_fp16/bf16``, ``supports_fp8_compute``, ``is_device_mps``) patched to the profile's
  answers, and unpatched for the CPU profile (ComfyUI started with --cpu).
"""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import importlib.util

import torch

REPO = Path(__file__).resolve().parents[2]


def _host_conftest():
    """tests/host/conftest.py by path (a bare ``import conftest`` may find another directory's)."""
    name = "unianimate_host_conftest"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, Path(__file__).with_name("conftest.py"))
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


comfy_path, comfy_python = _host_conftest().comfy_path, _host_conftest().comfy_python

OPS_PROBE = textwrap.dedent("""
    import sys, torch
    import comfy.ops as ops, comfy.model_management as mm
    out_path = sys.argv[1]
    LAYERS = {
        "Linear": (lambda f: f.Linear(8, 6), (3, 8)),
        "Conv1d": (lambda f: f.Conv1d(8, 6, 3, padding=1), (2, 8, 5)),
        "Conv2d": (lambda f: f.Conv2d(8, 6, 3, padding=1), (2, 8, 5, 4)),
        "Conv3d": (lambda f: f.Conv3d(8, 6, (3, 1, 1), padding=(1, 0, 0)), (1, 8, 3, 4, 4)),
        "GroupNorm": (lambda f: f.GroupNorm(2, 8, eps=1e-6), (2, 8, 3, 4)),
        "LayerNorm": (lambda f: f.LayerNorm(8), (3, 5, 8)),
    }
    DT = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "fp8": torch.float8_e4m3fn}
    results = {}
    for factory in ("disable_weight_init", "manual_cast"):
        for layer, (make, shape) in LAYERS.items():
            for wname, wdt in DT.items():
                for xname in ("fp32", "fp16", "bf16"):
                    for patch in ("none", "weight_function"):
                        g = torch.Generator().manual_seed(0)
                        m = make(getattr(ops, factory))
                        with torch.no_grad():
                            for p in m.parameters():
                                p.copy_(torch.randn(p.shape, generator=g) * 0.5 + (1.0 if p.ndim == 1 and p is m.weight else 0.0))
                        m = m.to(wdt)
                        if patch != "none":
                            m.weight_function = [lambda w: w * 1.5 + 0.25]
                            m.bias_function = [lambda b: b - 0.5]
                        x = torch.randn(shape, generator=g).to(DT[xname])
                        key = f"{factory}|{layer}|{wname}|{xname}|{patch}"
                        try:
                            results[key] = m(x)
                        except Exception as exc:
                            results[key] = type(exc).__name__
    for w in DT.values():
        for c in (None, torch.float32, torch.float16, torch.bfloat16):
            results[f"pick|{w}|{c}"] = ops.pick_operations(w, c).__name__
    torch.save(results, out_path)
""")

RULES_PROBE = textwrap.dedent("""
    import sys, json, torch
    import comfy.model_management as mm
    PROFILES = {"nvidia": dict(fp16=True, bf16=True, fp8=False, mps=False),
                "nvidia_pascal": dict(fp16=True, bf16=False, fp8=False, mps=False),
                "mps": dict(fp16=True, bf16=True, fp8=False, mps=True)}
    FAKE = sys.argv[1] == "fake"
    out = {}
    W = [None, torch.float32, torch.float16, torch.bfloat16]
    S = [torch.float32, torch.float16, torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2]
    def record(name, device):
        for w in W:
            out[f"{name}|unet_dtype|{w}"] = str(mm.unet_dtype(device, 10**9, weight_dtype=w))
        for w in S:
            out[f"{name}|manual_cast|{w}"] = str(mm.unet_manual_cast(w, device))
            out[f"{name}|supports_cast|{w}"] = mm.supports_cast(device, w)
    if FAKE:
        mm.set_fake_device("cpu")
    record("cpu", torch.device("cpu"))
    for name, p in PROFILES.items():
        if FAKE:
            mm.set_fake_device(name)
        else:
            mm.should_use_fp16 = lambda *a, _v=p["fp16"], **k: _v
            mm.should_use_bf16 = lambda *a, _v=p["bf16"], **k: _v
            mm.supports_fp8_compute = lambda *a, _v=p["fp8"], **k: _v
            mm.is_device_mps = lambda *a, _v=p["mps"], **k: _v
        record(name, None)
    print("RULES" + json.dumps(out))
""")

REAL_PRELUDE = ("import sys; probe_args = sys.argv[1:]; sys.argv = ['probe', '--cpu']\n"
                "import comfy.options; comfy.options.enable_args_parsing(); import comfy.cli_args\n"
                "sys.argv = ['probe'] + probe_args\n")
FAKE_PRELUDE = textwrap.dedent(f"""
    import sys, tempfile
    from pathlib import Path
    sys.path.insert(0, {str(REPO / 'tests')!r})
    from comfy_fake import install_fake_comfy
    install_fake_comfy(Path(tempfile.mkdtemp()))
""")


def run_probe(script: str, real: bool, *args: str) -> subprocess.CompletedProcess:
    root = comfy_path()
    code = (REAL_PRELUDE if real else FAKE_PRELUDE) + script
    res = subprocess.run([str(comfy_python(root)), "-c", code, *args], cwd=str(root if real else REPO),
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res


def test_fake_ops_compute_like_the_real_ones(tmp_path):
    real_file, fake_file = tmp_path / "real.pt", tmp_path / "fake.pt"
    run_probe(OPS_PROBE, True, str(real_file))
    run_probe(OPS_PROBE, False, str(fake_file))
    real, fake = torch.load(real_file), torch.load(fake_file)
    assert real.keys() == fake.keys()
    differ = []
    for key, r in real.items():
        f = fake[key]
        same = (isinstance(r, torch.Tensor) and isinstance(f, torch.Tensor) and r.dtype == f.dtype
                and torch.equal(r, f)) or (isinstance(r, str) and r == f)
        if not same:
            differ.append((key, r if isinstance(r, str) else r.dtype, f if isinstance(f, str) else f.dtype))
    assert not differ, differ[:20]
    # the combinations the core relies on really compute (and the one the old run_norm fed does not)
    assert isinstance(real["disable_weight_init|GroupNorm|fp16|fp16|none"], torch.Tensor)
    assert isinstance(real["manual_cast|LayerNorm|fp8|bf16|none"], torch.Tensor)
    assert real["disable_weight_init|GroupNorm|fp16|fp32|none"] == "RuntimeError"


def test_fake_dtype_rules_match_the_real_ones():
    import json

    real = json.loads(run_probe(RULES_PROBE, True, "real").stdout.split("RULES", 1)[1])
    fake = json.loads(run_probe(RULES_PROBE, False, "fake").stdout.split("RULES", 1)[1])
    mismatched = {k: (real[k], fake.get(k)) for k in real if real[k] != fake.get(k)}
    assert not mismatched, mismatched
    assert real["nvidia|manual_cast|torch.float16"] == "None"  # a GPU computes fp16 weights natively
    assert real["cpu|manual_cast|torch.float16"] == "torch.float32"


def test_gpu_check_comfy_ops_section_runs_the_real_comfy_ops(tmp_path):
    """benchmarks/gpu_check.py's comfy_ops section, in its CPU mode, on the real ComfyUI source tree with
    ComfyUI's Python: ComfyUI's own layers (disable_weight_init fp16/bf16, manual_cast fp8 -> fp16 and
    fp16 -> fp32, a weight function) within the derived tolerance of fp32."""
    import json

    out = tmp_path / "gpu_check.json"
    res = subprocess.run([str(comfy_python(comfy_path())), str(REPO / "benchmarks" / "gpu_check.py"), "--device", "cpu",
                          "--tiny", "--only", "comfy_ops", "--comfyui", str(comfy_path()), "--json", str(out)],
                         capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    section = json.loads(out.read_text())["sections"]["comfy_ops"]
    assert section["status"] == "ok", section
    rows = section["rows"]
    assert len(rows) == 5 and all(r["passed"] for r in rows), rows
