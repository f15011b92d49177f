"""benchmarks/gpu_check.py in its CPU mode (--device cpu --tiny): the script the GPU machine will run.

Checks what the script promises: one command, a table on stdout, JSON with every section, sections it
cannot run here skipped with a reason (never failed), and in the sections that run, finite numbers
and the precision rows inside their derived tolerance.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu_check.py"


@pytest.mark.slow
def test_cpu_mode_runs_every_section_or_says_why_not(tmp_path):
    out = tmp_path / "gpu_check.json"
    res = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--tiny", "--threads", "1", "--json", str(out)],
                         capture_output=True, text=True, timeout=900, cwd=str(tmp_path))
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    report = json.loads(out.read_text())
    sections = report["sections"]
    assert list(sections) == ["precision", "sampling", "mamba", "dwpose", "comfy_ops"]
    assert report["environment"]["device"] == "cpu" and report["environment"]["tiny"] is True
    for name, sec in sections.items():
        assert sec["status"] in ("ok", "skipped"), (name, sec)
        assert sec["status"] == "ok" or sec["reason"], name
        assert name in res.stdout
    precision = [r for r in sections["precision"]["rows"] if "vs fp32" in r["what"]]
    assert len(precision) == 4 and all(r["passed"] and r["value"] <= r["tolerance"] for r in precision)
    sampling = {r["what"]: r for r in sections["sampling"]["rows"]}
    assert any(w.startswith("2/2 model steps") for w in sampling) and sampling["seconds per step (median)"]["value"] > 0
    assert "CUDA" in sections["mamba"]["reason"]
    assert "--comfyui" in sections["comfy_ops"]["reason"]
    assert "section      status" in res.stdout


def test_asking_for_cuda_without_cuda_is_a_clear_error(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    res = subprocess.run([sys.executable, str(SCRIPT), "--json", str(tmp_path / "x.json")], capture_output=True,
                         text=True, timeout=300)
    assert res.returncode == 2 and "--device cpu --tiny" in res.stderr
