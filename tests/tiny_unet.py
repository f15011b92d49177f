"""The tiny UniAnimate UNet of the golden fixtures, regenerated from its seeded recipe.

The official code's fixtures were computed with ``unet_tiny.safetensors`` (25 MB); instead of
committing it, the weights are regenerated here from the recipe its generator documented. The key
order comes from the full model's manifest (the tiny config has the same keys minus one identity
skip), so the regeneration does not depend on our own model's registration order.

The fixture generator drew ``torch.randn`` (float32) on a seeded CPU generator and rounded to fp16.
CPU ``randn`` is not bit-stable across CPUs: the AVX2/AVX-512 kernel (the generator's) and the generic
one (``ATEN_CPU_CAPABILITY=default``, CPUs without AVX2, other architectures) evaluate Box-Muller with
different ``log``/``cos`` code, so draws differ by up to 2.4e-6 and 7502 of the 12.4 M fp16 weights
land on a neighbouring value, which moves the golden UNet outputs by up to 8.6e-4 (measured), more
than the parity tolerance. :func:`fixture_randn` therefore reproduces the generator's draws without
depending on the CPU: the same uniforms (``torch.rand`` on the same generator), the same float32
Box-Muller angle, ``log``/``cos``/``sin`` in float64; that lands within 6e-7 of the AVX2 draws, and
the 588 fp16 roundings this still changes are restored from
``tests/fixtures/unet_tiny_corrections.json``. The result is the fixture generator's bytes.

The regenerated (or cached) weights are checked against a committed per-tensor fingerprint
(``tests/fixtures/unet_tiny_fingerprint.json``: mean, root-mean-square, largest magnitude and a few
values at fixed positions, written from weights whose bytes had the recorded sha256) with the
tolerance :func:`value_tolerance` derives, not by a sha256: it proves these are the fixture weights
(a wrong seed or recipe moves every sampled value by about the tensor's scale, hundreds of times the
tolerance) while a last-bit difference of another platform's float64 ``log``/``cos`` stays within it.
The cached checkpoint is keyed on the recipe and re-verified when a process first uses it.

Both fixture files are written by ``python tests/tiny_unet.py --write-reference`` on a CPU whose
``torch.randn`` reproduces the recorded sha256 (x86-64 with AVX2).
"""
from __future__ import annotations

import hashlib
import json
import math
import sys
import zlib
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from safetensors.torch import load_file, save_file

FIXTURES = Path(__file__).parent / "fixtures"
CACHE = Path(__file__).parent / ".cache"
FINGERPRINT = FIXTURES / "unet_tiny_fingerprint.json"
CORRECTIONS = FIXTURES / "unet_tiny_corrections.json"
SAMPLES_PER_TENSOR = 4

# Tolerance of the fingerprint check, per value v of a tensor drawn with scale s (see value_tolerance):
FP16_REL_ULP = 2.0 ** -10  # one fp16 unit in the last place is at most 2^-10 of a normal fp16 value
FP16_SUBNORMAL_ULP = 2.0 ** -24  # spacing of fp16 subnormals (|v| < 2^-14)
RANDN_KERNEL_ABS = 1e-5
"""Bound on |z_a - z_b| for one float32 N(0, 1) draw computed by two Box-Muller implementations from
the same uniforms, ``z = sqrt(-2 ln u1) cos(2 pi u2)``: the angle may be formed in float32 or float64
(difference up to an ulp of 2 pi, 4.8e-7) and the radius is at most sqrt(-2 ln 2^-24) = 5.8, so the
angle alone moves z by up to 2.8e-6, and a few float32 ulps of log/cos/sqrt add about 5e-7 |z|
(|z| < 5.8). Measured: 2.4e-6 between the AVX2 and the generic torch kernel, 6e-7 between
fixture_randn and the AVX2 kernel. 1e-5 is 1.7 times the sum of those worst cases."""


def tiny_recipe() -> dict:
    return json.loads((FIXTURES / "unet_tiny_weights.json").read_text())


def tiny_keys_and_shapes() -> list[tuple[str, list[int]]]:
    """Official state-dict order of the tiny model with its shapes."""
    from unianimate_core.config import UNetConfig
    from unianimate_core.unet import UNetSD_UniAnimate

    recipe = tiny_recipe()
    full_order = [k for k, _ in json.loads((FIXTURES / "unet_full_manifest.json").read_text())["keys"]]
    dropped = set(recipe["keys_absent_from_full_manifest"])
    order = [k for k in full_order if k not in dropped]
    # shapes of the tiny config from a meta-device build (costs no memory)
    meta = UNetSD_UniAnimate(UNetConfig.tiny(), device="meta").state_dict()
    return [(k, list(meta[k].shape)) for k in order]


def draw_scales(keys: list[tuple[str, list[int]]]) -> dict[str, float]:
    """Per key, the factor the recipe multiplies its N(0, 1) draw by."""
    one_d_weights = {k for k, s in keys if k.endswith(".weight") and len(s) == 1}
    scales = {}
    for key, shape in keys:
        if key in one_d_weights:
            scales[key] = 0.1
        elif key.endswith(".bias"):
            scales[key] = 0.1 if key[: -len(".bias")] + ".weight" in one_d_weights else 0.05
        else:
            scales[key] = 1 / math.sqrt(math.prod(shape[1:]))
    return scales


def fixture_randn(shape: list[int], generator: torch.Generator) -> torch.Tensor:
    """``torch.randn(shape, generator=generator)`` (float32) as an x86-64 AVX2 CPU draws it, on any CPU
    (within 6e-7; the exact bytes of the fixture weights come from the corrections file).

    PyTorch's CPU normal sampler, for a contiguous float32 tensor of at least 16 elements: fill it with
    uniforms (one ``torch.rand`` draw per element, same generator stream), then per block of 16 use
    elements j and j + 8 (j < 8) as one Box-Muller pair, ``u1 = 1 - u[j]``, angle ``2 pi u[j + 8]``
    formed in float32, ``z[j] = sqrt(-2 ln u1) cos(angle)``, ``z[j + 8] = ... sin(angle)``; when the
    size is not a multiple of 16, 16 fresh uniforms redo the last 16 elements. Smaller tensors use a
    float64 sampler that is the same on every CPU, so they are drawn with ``torch.randn`` itself.
    """
    n = math.prod(shape)
    if n < 16:
        return torch.randn(shape, generator=generator, dtype=torch.float32)
    u = torch.rand(n, generator=generator, dtype=torch.float32).numpy()
    tail = torch.rand(16, generator=generator, dtype=torch.float32).numpy() if n % 16 else None

    def box_muller(block: np.ndarray) -> np.ndarray:  # (k, 16) uniforms -> (k, 16) normals, float64
        radius = np.sqrt(-2.0 * np.log((np.float32(1) - block[:, :8]).astype(np.float64)))
        angle = (np.float32(2 * math.pi) * block[:, 8:]).astype(np.float64)  # float32 product, as the kernel
        return np.concatenate([radius * np.cos(angle), radius * np.sin(angle)], axis=1)

    full = n // 16 * 16
    z = np.empty(n, dtype=np.float64)
    z[:full] = box_muller(u[:full].reshape(-1, 16)).reshape(-1)
    if tail is not None:
        z[n - 16:] = box_muller(tail.reshape(1, 16)).reshape(-1)
    return torch.from_numpy(z.astype(np.float32)).reshape(shape)


def regenerate_tiny_state_dict(seed: Optional[int] = None, randn=fixture_randn) -> dict[str, torch.Tensor]:
    """Apply the documented recipe, key by key in state-dict order (fp16 values). For the recorded seed
    the fp16 roundings listed in the corrections file are restored (``randn=fixture_randn`` only)."""
    recipe = tiny_recipe()
    seed = recipe["weight_seed"] if seed is None else seed
    keys = tiny_keys_and_shapes()
    one_d_weights = {k for k, s in keys if k.endswith(".weight") and len(s) == 1}
    out: dict[str, torch.Tensor] = {}
    for key, shape in keys:
        g = torch.Generator().manual_seed((seed * 1_000_003 + zlib.crc32(key.encode())) % (2**63 - 1))
        z = randn(shape, g)
        if key in one_d_weights:
            v = 1 + 0.1 * z
        elif key.endswith(".bias"):
            v = 0.1 * z if key[: -len(".bias")] + ".weight" in one_d_weights else 0.05 * z
        else:
            v = z / math.sqrt(math.prod(shape[1:]))
        out[key] = v.to(torch.float16)
    if seed == recipe["weight_seed"] and randn is fixture_randn and CORRECTIONS.exists():
        for key, fixes in json.loads(CORRECTIONS.read_text())["fp16_bits"].items():
            flat = out[key].view(-1).view(torch.int16)
            for index, bits in fixes:
                flat[index] = bits
    return out


def torch_randn(shape: list[int], generator: torch.Generator) -> torch.Tensor:
    """The fixture generator's own draw (bytes depend on the CPU's randn kernel)."""
    return torch.randn(shape, generator=generator, dtype=torch.float32)


def sample_positions(numel: int, k: int = SAMPLES_PER_TENSOR) -> list[int]:
    """Fixed flat indices spread over a tensor (first and last included)."""
    if numel <= k:
        return list(range(numel))
    return sorted({round(i * (numel - 1) / (k - 1)) for i in range(k)})


def tensor_fingerprint(t: torch.Tensor) -> list[float]:
    """[mean, root-mean-square, largest magnitude, values at sample_positions...] in float64."""
    flat = t.detach().reshape(-1).to(torch.float64)
    return [float(flat.mean()), float(flat.square().mean().sqrt()), float(flat.abs().max()),
            *(float(flat[i]) for i in sample_positions(flat.numel()))]


def layout_digest(sd: dict[str, torch.Tensor]) -> str:
    """sha256 of the (key, dtype, shape) list sorted by key: the layout part of the fingerprint (exact).
    Sorted, because a safetensors file does not keep the insertion order (values do not depend on it:
    each key has its own generator)."""
    items = [(k, str(sd[k].dtype).replace("torch.", ""), list(sd[k].shape)) for k in sorted(sd)]
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()


def value_tolerance(reference: float, scale: float) -> float:
    """Largest |difference| allowed for a fingerprint value of magnitude ``reference`` in a tensor drawn
    with ``scale``: another randn kernel moves the draw by at most scale * RANDN_KERNEL_ABS, and the fp16
    rounding of the two draws may then land one fp16 ulp apart (<= 2^-10 |v|, or 2^-24 if subnormal).
    The same bound holds for the mean (|mean dv| <= 2^-10 mean|v| <= 2^-10 rms), the rms (Minkowski)
    and the largest magnitude, each with its own reference magnitude. Fingerprint values are stored
    with 9 significant digits (relative error <= 5e-9, below the other terms)."""
    return FP16_REL_ULP * abs(reference) + scale * RANDN_KERNEL_ABS + FP16_SUBNORMAL_ULP


def fingerprint_mismatches(sd: dict[str, torch.Tensor], fingerprint: Optional[dict] = None) -> list[str]:
    """Every way ``sd`` differs from the committed fingerprint beyond value_tolerance (empty: they match)."""
    fingerprint = json.loads(FINGERPRINT.read_text()) if fingerprint is None else fingerprint
    if layout_digest(sd) != fingerprint["layout_sha256"]:
        return ["the key names, order, dtypes or shapes differ from the fixture weights"]
    scales = draw_scales([(k, list(v.shape)) for k, v in sd.items()])
    problems = []
    for key, want in zip(sorted(sd), fingerprint["tensors"]):
        tensor = sd[key]
        got = tensor_fingerprint(tensor)
        _, rms, absmax = want[:3]
        refs = [rms, rms, absmax, *map(abs, want[3:])]
        names = ["mean", "rms", "absmax", *(f"value at {i}" for i in sample_positions(tensor.numel()))]
        for name, g, w, ref in zip(names, got, want, refs):
            tol = value_tolerance(ref, scales[key])
            if not abs(g - w) <= tol:  # also catches NaN/inf
                problems.append(f"{key}: {name} {g:.6g} != {w:.6g} (tolerance {tol:.2g})")
    return problems


def recipe_key() -> str:
    """Short hash of everything that defines the weights: the recipe, the corrections, the key/shape list."""
    h = hashlib.sha256((FIXTURES / "unet_tiny_weights.json").read_bytes())
    h.update(CORRECTIONS.read_bytes())
    h.update(json.dumps(tiny_keys_and_shapes()).encode())
    return h.hexdigest()[:16]


def state_dict_sha256(sd: dict[str, torch.Tensor]) -> str:
    """The fixture generator's checksum: key, dtype string, shape string, raw bytes, in order. Only
    used to qualify the weights the reference files are written from."""
    h = hashlib.sha256()
    for key, t in sd.items():
        h.update(key.encode())
        h.update(str(t.dtype).encode())
        h.update(str(list(t.shape)).encode())
        h.update(t.contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def write_reference() -> None:
    """Write the corrections and fingerprint files from ``torch.randn`` weights whose bytes have the
    recorded sha256 (i.e. on a CPU whose randn kernel is the fixture generator's: x86-64 with AVX2)."""
    exact = regenerate_tiny_state_dict(randn=torch_randn)
    got, expected = state_dict_sha256(exact), tiny_recipe()["sha256"]
    if got != expected:
        raise SystemExit(f"torch.randn gives weights with sha256 {got}, not the recorded {expected}: this CPU's "
                         "randn kernel rounds differently; run this on an x86-64 CPU with AVX2.")
    if CORRECTIONS.exists():
        CORRECTIONS.unlink()
    emulated = regenerate_tiny_state_dict()
    fixes = {}
    for key, want in exact.items():
        bits = want.view(-1).view(torch.int16)
        diff = (emulated[key].view(-1).view(torch.int16) != bits).nonzero().view(-1).tolist()  # -0.0 != 0.0
        if diff:
            fixes[key] = [[i, int(bits[i])] for i in diff]
    count = sum(map(len, fixes.values()))
    rows = ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in fixes.items())
    CORRECTIONS.write_text(
        "{\n"
        f' "about": "The {count} fp16 weights (flat index, int16 bits) where tests/tiny_unet.py fixture_randn, '
        'rounded by the recipe, lands on a neighbouring fp16 value of the fixture generator\'s torch.randn weights.",\n'
        f' "fp16_bits": {{\n{rows}\n }}\n}}\n')
    regenerated = regenerate_tiny_state_dict()
    if state_dict_sha256(regenerated) != expected:
        raise SystemExit("fixture_randn plus the corrections does not reproduce the recorded sha256")
    sd = exact
    rows = ",\n".join("  [" + ", ".join(f"{x:.9g}" for x in tensor_fingerprint(sd[k])) + "]" for k in sorted(sd))
    FINGERPRINT.write_text(
        "{\n"
        ' "about": "Fingerprint of the tiny UNet weights (tests/tiny_unet.py), written from weights '
        f'whose bytes had the recorded sha256 {expected}. One row per tensor in key order (sorted): mean, rms, '
        f'absmax, values at sample_positions(numel, {SAMPLES_PER_TENSOR}).",\n'
        f' "layout_sha256": "{layout_digest(sd)}",\n'
        f' "tensors": [\n{rows}\n ]\n}}\n')
    print(f"wrote {CORRECTIONS.name} ({count} corrections) and {FINGERPRINT.name}")


_VERIFIED: set[tuple[Path, int, int]] = set()


def tiny_checkpoint_path() -> Path:
    """The tiny checkpoint under tests/.cache (file name keyed on the recipe), regenerated when missing or
    when it no longer matches the fingerprint; verified once per process and file version."""
    path = CACHE / f"unet_tiny-{recipe_key()}.safetensors"
    if path.exists():
        stat = path.stat()
        if (path, stat.st_mtime_ns, stat.st_size) in _VERIFIED:
            return path
        try:
            if not fingerprint_mismatches(load_file(str(path))):
                _VERIFIED.add((path, stat.st_mtime_ns, stat.st_size))
                return path
        except Exception:  # unreadable / truncated cache file: regenerate below
            pass
    sd = regenerate_tiny_state_dict()
    problems = fingerprint_mismatches(sd)
    if problems:
        raise AssertionError(f"the regenerated tiny UNet does not match {FINGERPRINT.name} ({len(problems)} "
                             f"differences, first: {problems[:3]}); the recipe in tiny_unet.py or the fixture "
                             "files changed.")
    CACHE.mkdir(exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(sd, str(tmp), metadata={"format": "unianimate-unet", "config": _tiny_config_json()})
    tmp.replace(path)
    stat = path.stat()
    _VERIFIED.add((path, stat.st_mtime_ns, stat.st_size))
    return path


def _tiny_config_json() -> str:
    from unianimate_core.config import UNetConfig

    return UNetConfig.tiny().to_json()


def tiny_zero_y() -> torch.Tensor:
    return load_file(str(FIXTURES / "unet_tiny_cases.safetensors"))["zero_y"]


def load_tiny_unet(dtype: torch.dtype = torch.float32):
    """The tiny fixture UNet in eval mode with the fixtures' stand-in ``zero_y``."""
    from unianimate_core.checkpoint import load_unet

    model = load_unet(tiny_checkpoint_path(), dtype=dtype)
    model.set_zero_y(tiny_zero_y())
    return model.eval()


if __name__ == "__main__":
    if sys.argv[1:] != ["--write-reference"]:
        raise SystemExit("usage: PYTHONPATH=. python tests/tiny_unet.py --write-reference")
    write_reference()
