"""Weights {fp32, fp16, bf16, fp8_e4m3fn} x layer factory {torch.nn, disable_weight_init, manual_cast}
x compute {fp32, fp16, bf16}, wherever ComfyUI (or a headless run) can choose that combination, on
the tiny UNet forward, the short sampler, the continuation and the Mamba UNet. Every result must be
finite and within the derived tolerance of the float32 run (matrix_helpers.py, docs/precision.md).

Which combinations exist: ``torch.nn`` (headless) and ``disable_weight_init`` (ComfyUI when the
device computes the weight dtype natively: fp32 anywhere, fp16/bf16 on GPUs) compute in the weight
dtype; ``manual_cast`` pairs any stored dtype with another compute dtype (CPU: fp32; GPUs without
bf16: fp16; fp8 storage: fp16/bf16 on GPUs, fp32 on CPU). ``+lora``: a weight function on every
layer (a LoRA / low-VRAM patch), which makes ComfyUI's layers cast and patch per call.
"""
from __future__ import annotations

import pytest
import torch

import matrix_helpers as mh
from matrix_helpers import BF16, FP8, FP16, FP32

COMBOS = [  # (factory, storage, compute, lora)
    ("torch.nn", FP32, FP32, False), ("torch.nn", FP16, FP16, False), ("torch.nn", BF16, BF16, False),
    ("disable_weight_init", FP32, FP32, False), ("disable_weight_init", FP16, FP16, False),
    ("disable_weight_init", BF16, BF16, False), ("disable_weight_init", FP16, FP16, True),
    ("manual_cast", FP16, FP32, False), ("manual_cast", BF16, FP32, False), ("manual_cast", BF16, FP16, False),
    ("manual_cast", FP16, BF16, False), ("manual_cast", FP8, FP32, False), ("manual_cast", FP8, FP16, False),
    ("manual_cast", FP8, BF16, False),
]
NAMES = {FP32: "fp32", FP16: "fp16", BF16: "bf16", FP8: "fp8"}
IDS = [f"{f}-{NAMES[s]}-{NAMES[c]}{'+lora' if lora else ''}" for f, s, c, lora in COMBOS]


class Reference:
    """float32 results and weight-rounding errors E_w per (weights, scenario), computed once per module."""

    def __init__(self) -> None:
        self.weights = {"attention": mh.attention_weights(), "mamba": mh.mamba_weights()}
        self.weights["attention+lora"] = mh.patched(self.weights["attention"])
        self.cache: dict = {}

    def get(self, weights: str, scenario: str):
        key = (weights, scenario)
        if key not in self.cache:
            run = mh.SCENARIOS[scenario]
            sd = self.weights[weights]
            ref = run(mh.build(sd, FP32, FP32))
            e_w = {d: mh.max_abs(run(mh.build(mh.round_to(sd, d), FP32, FP32)), ref) for d in (FP16, BF16, FP8)}
            self.cache[key] = (ref, e_w)
        return self.cache[key]


@pytest.fixture(scope="module")
def reference():
    return Reference()


@pytest.fixture(scope="module")
def ops(fake_comfy):
    o = fake_comfy["comfy.ops"]
    return {"torch.nn": None, "disable_weight_init": o.disable_weight_init, "manual_cast": o.manual_cast}


def run_combo(reference, ops, weights, scenario, factory, storage, compute, lora):
    base = reference.weights[weights.replace("+lora", "")]
    model = mh.build(base, storage, compute, ops[factory])
    if lora:
        assert mh.attach_lora(model, base) > 100
    out = mh.SCENARIOS[scenario](model)
    ref, e_w = reference.get(weights + ("+lora" if lora else ""), scenario)
    return out, ref, mh.tolerance(ref, e_w, storage, compute, lora)


@pytest.mark.parametrize("scenario", ["forward", "short_sampler", "continuation"])
@pytest.mark.parametrize("factory, storage, compute, lora", COMBOS, ids=IDS)
def test_attention_unet(reference, ops, scenario, factory, storage, compute, lora):
    out, ref, tol = run_combo(reference, ops, "attention", scenario, factory, storage, compute, lora)
    assert mh.finite(out)
    err = mh.max_abs(out, ref)
    assert err <= tol, f"max |delta| {err:.3g} > tolerance {tol:.3g} (output scale {float(ref.abs().max()):.3g})"


@pytest.mark.parametrize("factory, storage, compute, lora", [c for c in COMBOS if not c[3]],
                         ids=[i for i, c in zip(IDS, COMBOS) if not c[3]])
def test_mamba_unet(reference, ops, factory, storage, compute, lora):
    out, ref, tol = run_combo(reference, ops, "mamba", "forward", factory, storage, compute, lora)
    assert mh.finite(out)
    err = mh.max_abs(out, ref)
    assert err <= tol, f"max |delta| {err:.3g} > tolerance {tol:.3g} (output scale {float(ref.abs().max()):.3g})"


def test_the_tolerance_is_tight_enough_to_see_a_dropped_patch(reference, ops):
    """The LoRA rows would pass without the patch only if the tolerance were too loose to mean anything."""
    out, ref, tol = run_combo(reference, ops, "attention", "forward", "disable_weight_init", FP16, FP16, False)
    ref_lora, _ = reference.get("attention+lora", "forward")
    assert mh.max_abs(out, ref_lora) > 3 * tol


def test_state_space_parameters_stay_fp32_in_every_storage_dtype(reference, ops):
    for storage in (FP16, BF16, FP8):
        model = mh.build(reference.weights["mamba"], storage, FP16 if storage == FP8 else storage,
                         ops["manual_cast"] if storage == FP8 else None)
        kinds = {n.rsplit(".", 1)[-1]: p.dtype for n, p in model.named_parameters() if n.endswith(("A_log", ".D"))}
        assert kinds == {"A_log": FP32, "D": FP32}


# ------------------------------------------------------------------------------- node loader -> sampler
#: (fake device profile, Load UniAnimate Model's weight_dtype) -> (storage, compute, layer factory) that
#: ComfyUI's rules pick there (CPU: cast to fp32; Ampere+: fp16/bf16 natively; no bf16: cast to fp16).
NODE_CASES = {
    ("cpu", "fp32"): (FP32, FP32, "disable_weight_init"), ("cpu", "fp16"): (FP16, FP32, "manual_cast"),
    ("cpu", "bf16"): (BF16, FP32, "manual_cast"), ("cpu", "fp8_e4m3fn"): (FP8, FP32, "manual_cast"),
    ("nvidia", "auto"): (FP16, FP16, "disable_weight_init"), ("nvidia", "bf16"): (BF16, BF16, "disable_weight_init"),
    ("nvidia", "fp32"): (FP32, FP32, "disable_weight_init"), ("nvidia", "fp8_e4m3fn"): (FP8, FP16, "manual_cast"),
    ("nvidia_pascal", "bf16"): (BF16, FP16, "manual_cast"),
}


class NodeReference:
    """The node path's float32 result and its E_w per storage dtype (CPU profile, fp32 weights)."""

    def __init__(self, pack, fake, weights) -> None:
        self.pack, self.fake, self.weights = pack, fake, weights
        self.ref = self.run("cpu", "fp32", "ref.safetensors", weights)
        self.e_w = {d: mh.max_abs(self.run("cpu", "fp32", f"round_{NAMES[d]}.safetensors", mh.round_to(weights, d)),
                                  self.ref) for d in (FP16, BF16, FP8)}

    def run(self, profile, choice, name, sd=None, check=None):
        self.fake.model_management.set_fake_device(profile)
        self.pack.nodes.loader._loaded.clear()
        if sd is not None:
            mh.put_model(self.fake, sd, mh.UNetConfig.tiny(), name)
        classes = mh.node_classes(self.pack)
        model = classes["LoadUniAnimateModel"].execute(model_name=name, weight_dtype=choice)[0]
        if check is not None:
            check(model)
        return classes["UniAnimateSampler"].execute(**mh.sampler_inputs(model))[0]["samples"]


@pytest.fixture(scope="module")
def node_reference(comfy_pack, fake_comfy, tmp_path_factory, reference):
    fake_comfy.reset(tmp_path_factory.mktemp("node_matrix"))
    comfy_pack.nodes.folders.register_model_folders()
    yield NodeReference(comfy_pack, fake_comfy, reference.weights["attention"])
    fake_comfy.model_management.set_fake_device("cpu")


@pytest.mark.parametrize("profile, choice", list(NODE_CASES), ids=[f"{p}-{c}" for p, c in NODE_CASES])
def test_node_loader_to_sampler(node_reference, fake_comfy, profile, choice):
    storage, compute, factory = NODE_CASES[(profile, choice)]
    ops = fake_comfy["comfy.ops"]

    def check(model):
        unet = model.unet
        assert model.compute_dtype == compute and unet.dtype == compute
        assert unet.time_embed[0].weight.dtype == storage
        layer_cls = getattr(ops, factory).Linear
        assert type(unet.time_embed[0]) is layer_cls, (type(unet.time_embed[0]), factory)
        assert unet.manual_cast_dtype == (None if factory == "disable_weight_init" else compute)

    out = node_reference.run(profile, choice, "ref.safetensors", check=check)
    assert mh.finite(out)
    ref = node_reference.ref
    tol = mh.tolerance(ref, node_reference.e_w, storage, compute)
    err = mh.max_abs(out, ref)
    assert err <= tol, f"max |delta| {err:.3g} > tolerance {tol:.3g} (output scale {float(ref.abs().max()):.3g})"


def test_fp8_weights_on_a_device_without_fp8_are_refused(node_reference, comfy_pack):
    with pytest.raises(comfy_pack.unianimate_core.errors.PrecisionError, match="fp8_e4m3fn.*Choose fp16"):
        node_reference.run("mps", "fp8_e4m3fn", "ref.safetensors")
