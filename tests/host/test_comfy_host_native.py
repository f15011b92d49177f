"""UniAnimate's MODEL in a real ComfyUI v0.8.0: core samplers, schedulers, context windows, caches, patches.

Skipped unless COMFYUI_PATH is set (see conftest.py). The numeric checks run `native_probe.py` inside
ComfyUI's own Python (the pack imported like a custom-node directory, the tiny fixture UNet, CPU, one
thread, SDPA attention); the two shipped native workflows are queued on the test server.

Tolerances (see docs/native.md for the measured numbers):
* sampling parity: ComfyUI's k-diffusion Euler step in sigma space ("ddim") is algebraically the DDIM
  (eta = 0) update, so the two samplers differ only in float32 rounding (sigmas stored in float32,
  states in k-diffusion units x / sqrt(alpha_bar), guidance applied to x0 instead of v). How far
  rounding alone moves a trajectory is measured in the same run, on our own sampler: (a) the network
  in float64 instead of float32, (b) the start latent moved by one float32 ulp. The random-weight test
  UNet amplifies such changes strongly (one ulp at the start moves the final x0 by ~1e-4 of ~5), so the
  envelope is the larger of (a) and (b) over the run; ComfyUI's trajectory is one more rounding
  variant, allowed twice that envelope.
* the start: ComfyUI's noise_scaling multiplies by sqrt(1 + sigma^2) (277 at t = 991) and the
  comparison divides again: 8 float32 ulps of the largest start value.
"""
from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path

import pytest
import torch

from comfy_fake.workflow_tools import strip_meta, ui_to_api, validate_api
from test_comfy_host import DRIVING_FRAMES, SIZE, latent_prefix, prepared  # noqa: F401 - `prepared` is a fixture

REPO = Path(__file__).resolve().parents[2]
PROBE = Path(__file__).with_name("native_probe.py")
WORKFLOWS = REPO / "workflows"
NATIVE_STEMS = ["6 - Short clip, KSampler", "7 - Long video, context windows"]
EPS32 = 2.0 ** -23


def probe(server, task: str, timeout: int = 1800, **params) -> dict:
    res = subprocess.run([str(server.python), str(PROBE), task, json.dumps(params)], cwd=str(server.root),
                         capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    return json.loads(res.stdout.split("RESULT", 1)[1])


# ---------------------------------------------------------------------------------- registration
def test_conditioning_node_and_model_output_registered(comfy_server):
    info = comfy_server.get("/object_info", timeout=120)
    cond = info["UniAnimateConditioning"]
    assert cond["output"] == ["CONDITIONING", "CONDITIONING", "LATENT"]
    assert cond["output_name"] == ["positive", "negative", "latent"]
    loader = info["LoadUniAnimateModel"]
    assert loader["output"] == ["UNIANIMATE_MODEL", "MODEL"]  # the old output first: saved links stay valid


def test_native_workflows_convert_and_validate_against_the_real_server(comfy_server):
    object_info = comfy_server.get("/object_info", timeout=120)
    files = [("LoadImage", "image"), ("LoadVideo", "file"), ("CheckpointLoaderSimple", "ckpt_name"),
             ("CLIPVisionLoader", "clip_name"), ("LoadUniAnimateModel", "model_name"),
             ("UniAnimatePoseExtractor", "detector_model"), ("UniAnimatePoseExtractor", "pose_model")]
    for stem in NATIVE_STEMS:
        api = ui_to_api(json.loads((WORKFLOWS / f"{stem}.json").read_text()), object_info)
        assert strip_meta(api) == strip_meta(json.loads((WORKFLOWS / "api" / f"{stem}.json").read_text())), stem
        assert validate_api(api, object_info, files) == [], stem


# ---------------------------------------------------------------------------------- schedule
def test_model_sampling_is_unianimates_schedule_and_the_fake_matches(comfy_server):
    r = probe(comfy_server, "schedule")
    assert r["discrete"] and r["v_prediction"]
    # t = 0..998: UniAnimate's float64 sigmas rounded to float32 (half an ulp)
    assert r["max_rel_sigma_0_998"] <= 2.0 ** -24 * 1.01, r
    # t = 999: ComfyUI's zero-terminal-SNR clamp keeps sigma finite (UniAnimate: alpha_bar = 0, sigma = inf)
    assert 4500 < r["sigma_999_comfy"] < 4550
    for name, diff in r["fake_vs_real"].items():
        assert diff <= 1e-6, (name, diff)


# ---------------------------------------------------------------------------------- parity
def envelope(r: dict, key: str) -> float:
    """Largest rounding-only change of our own trajectory (float64 network, one-ulp start) for x0 or x."""
    return max(max(r["fp64"][key]), max(r["ulp"][key]))


def _check_run(run: dict, r: dict, start_scale: float, label: str):
    tol_x0 = 2 * envelope(r, "x0")
    tol_x = 2 * envelope(r, "x")
    assert max(run["x0"]) <= tol_x0, (label, max(run["x0"]), tol_x0)
    assert max(run["x"]) <= tol_x, (label, max(run["x"]), tol_x)
    assert run["start"] <= 8 * EPS32 * start_scale, (label, run["start"])
    # the final latent is the clean x0 of the last model call (sigma 0) ...
    assert run["final_vs_last_x0"] <= tol_x0, (label, run["final_vs_last_x0"])
    return tol_x0


@pytest.mark.slow
def test_ksampler_and_sampler_custom_advanced_follow_our_ddim_step_by_step(comfy_server):
    r = probe(comfy_server, "parity", frames=2, steps=30, guide=2.5, seed=7)
    assert r["timesteps"] == r["our_timesteps"]  # KSampler ddim_uniform 30 = the official 31 timesteps 991..1
    assert r["our_timesteps"][0] == 991 and r["our_timesteps"][-1] == 1 and len(r["our_timesteps"]) == 31
    assert min(max(r["fp64"]["x0"]), max(r["ulp"]["x0"])) > 0  # real measurements, not degenerate zeros
    tol = _check_run(r["ksampler"], r, r["scale"]["start"], "ksampler")
    _check_run(r["ksampler_fp64_network"], r, r["scale"]["start"], "ksampler, float64 network on both sides")
    # ... where the official sampler's last step lands on alpha_bar[0] (3 % noise left): rebuilt from
    # ComfyUI's own last x0 and state, it is our final latent; the two finals differ by that noise
    assert r["ksampler"]["official_final_rebuilt"] <= tol
    assert r["ksampler"]["final_vs_final_state"] > 10 * tol
    # SamplerCustomAdvanced: BasicScheduler(ddim_uniform, 30) drops t = 991; our sampler on the same list
    assert r["advanced"]["timesteps"][0] == 958 and len(r["advanced"]["timesteps"]) == 30
    _check_run(r["advanced"], r, r["scale"]["start"], "advanced")


@pytest.mark.slow
@pytest.mark.timeout(3600)  # 396 sampling runs (~6-10 min on a busy 2-core CPU; dpm_adaptive alone ~100 s)
def test_every_sampler_and_scheduler_gives_finite_output(comfy_server):
    r = probe(comfy_server, "grid", frames=2, steps=2, timeout=3000)
    assert len(r["samplers"]) >= 44 and len(r["schedulers"]) >= 9
    assert len(r["rows"]) == len(r["samplers"]) * len(r["schedulers"])
    bad = [row for row in r["rows"] if not row["finite"] or row["shape"] != [2, 4, 8, 8]]
    assert bad == [], bad


# ---------------------------------------------------------------------------------- long videos
def test_standard_static_windows_are_our_sliding_windows(comfy_server):
    """For 1..299 frames and five (length, overlap) settings the two window lists are identical."""
    r = probe(comfy_server, "window_lists")
    assert r["compared"] == 5 * 299 and r["mismatch_count"] == 0, r["mismatches"]


@pytest.mark.slow
def test_context_windows_over_64_frames_match_our_sliding_windows(comfy_server):
    r = probe(comfy_server, "windows", frames=64, steps=2, length=8, overlap=2, compare=True)
    assert r["finite"] and r["shape"] == [64, 4, 8, 8]
    assert r["comfy_windows"] == r["our_windows"]  # standard_static == the official window list
    assert r["max_call_frames"] == 8 and r["max_call_batch"] == 2  # one window, cond + uncond
    assert all(shape[0] <= 16 for shape in r["memory_required_shapes"])  # ComfyUI budgets one window
    _check_run(r["parity"], r, r["start_scale"], "windows")
    _check_run(r["parity_fp64_network"], r, r["start_scale"], "windows, float64 network on both sides")


@pytest.mark.slow
def test_context_window_memory_is_flat_in_frame_count(comfy_server):
    """64 vs 128 frames: same model calls per window; host memory growth does not follow the length.

    Without windows the activations of a call grow with its frame count (2x the frames, ~2x the
    memory); with them the growth at 128 frames stays below 2x the 64-frame growth.
    """
    a = probe(comfy_server, "windows", frames=64, steps=2)
    b = probe(comfy_server, "windows", frames=128, steps=2)
    assert a["max_call_frames"] == b["max_call_frames"] == 8
    assert a["memory_required_shapes"][0] == b["memory_required_shapes"][0] == [16, 4, 8, 8]
    assert b["rss_growth_mb"] < 2 * a["rss_growth_mb"], (a["rss_growth_mb"], b["rss_growth_mb"])


# ---------------------------------------------------------------------------------- caches, compile, patches
@pytest.mark.slow
def test_easycache_lazycache_and_torch_compile_accept_the_model(comfy_server):
    r = probe(comfy_server, "speed", frames=2, steps=20, variants=["easycache", "lazycache", "compile_eager"])
    for name in ("easycache", "lazycache"):
        assert r[name]["finite"], name
        assert r[name]["log"] and "skipped" in r[name]["log"][0], r[name]
    # dynamo traces the UNet through ComfyUI's compile wrapper; the eager backend computes the same numbers
    assert r["compile_eager"]["finite"] and r["compile_eager"]["max_abs_diff_vs_plain"] <= 1e-5


def test_comfy_attention_and_block_patches_reach_the_unet(comfy_server):
    r = probe(comfy_server, "patches", frames=2)
    assert r["attn1_replace_blocks"] == [b + [0] for b in r["spatial_blocks"]]
    assert r["attn1_replace_max_abs"] <= 1e-5  # a plain-attention replacement changes nothing
    assert r["attn2_zero_changes"] > 1e-2
    assert r["override_calls"] > 0 and r["override_max_abs"] <= 1e-5
    assert r["pag_finite"] and r["pag_changes"] > 0
    assert r["freeu"]["finite"] and r["freeu"]["changes"] > 0


# ---------------------------------------------------------------------------------- shipped workflows
def for_native_test_host(api: dict, models: dict, stem: str, size: int, frames: int) -> dict:
    """A native workflow with tiny models: VAE loader instead of SD 2.1, 2 steps, small sizes."""
    p = copy.deepcopy(api)
    ckpt = [k for k, v in p.items() if v["class_type"] == "CheckpointLoaderSimple"]
    for k in ckpt:
        p[k] = {"class_type": "VAELoader", "inputs": {"vae_name": models["vae"]}}
    for node in p.values():
        inp = node["inputs"]
        for name, value in list(inp.items()):
            if isinstance(value, list) and value[0] in ckpt:
                if value[1] == 2:
                    inp[name] = [value[0], 0]
                else:
                    del inp[name]
        ct = node["class_type"]
        if ct == "LoadUniAnimateModel":
            inp["model_name"] = models["unet"]
        elif ct == "CLIPVisionLoader":
            inp["clip_name"] = models["clip_vision"]
        elif ct == "UniAnimatePoseExtractor":
            inp["render_short_side"] = size
        elif ct == "UniAnimatePoseAlign":
            inp.update(width=size, height=size)
        elif ct == "UniAnimateConditioning":
            inp.update(width=size, height=size, frame_interval=1, max_frames=frames)
        elif ct == "KSampler":
            inp.update(steps=2)
        elif ct == "ContextWindowsManual":
            inp.update(context_length=2, context_overlap=1)
    ks = next(k for k, v in p.items() if v["class_type"] == "KSampler")
    p["900"] = {"class_type": "SaveLatent", "inputs": {"samples": [ks, 0],
                                                        "filename_prefix": f"latents/{latent_prefix(stem)}"}}
    return p


@pytest.mark.slow
@pytest.mark.parametrize("stem", NATIVE_STEMS)
def test_native_workflow_runs_with_tiny_models(comfy_server, client, prepared, stem):
    frames = 3 if stem.startswith("6 - ") else 0  # 0 = every pose of the 4-frame driving video
    api = json.loads((WORKFLOWS / "api" / f"{stem}.json").read_text())
    result = client.run(for_native_test_host(api, prepared, stem, SIZE, frames), timeout=1200)
    from safetensors.torch import load_file

    (latent_file,) = sorted((comfy_server.output / "latents").glob(f"{latent_prefix(stem)}_0*.latent"))[-1:]
    latent = load_file(str(latent_file))["latent_tensor"]
    expected = 3 if frames else DRIVING_FRAMES
    assert latent.shape == (expected, 4, SIZE // 8, SIZE // 8) and bool(torch.isfinite(latent).all())
    outputs = [item for node in result.outputs.values() for items in node.values() if isinstance(items, list)
               for item in items if isinstance(item, dict) and "filename" in item]
    assert any(o["filename"].endswith(".mp4") for o in outputs)
    if stem.startswith("7 - "):
        assert "Using context windows 2 with overlap 1 for 4 frames" in comfy_server.log_text()


# ---------------------------------------------------------------------------------- the fake vs the real
NATIVE_SIGNATURES = """
import inspect, json, enum
import comfy.conds as conds, comfy.model_base as mb, comfy.model_sampling as ms, comfy.patcher_extension as pe
import comfy.supported_models_base as smb, comfy.model_patcher as mp, comfy.model_management as mm, comfy.utils as cu
from comfy_api.latest import io
targets = {}
for cls in (conds.CONDRegular, conds.CONDCrossAttn, conds.CONDConstant):
    for m in ("__init__", "_copy_with", "process_cond", "can_concat", "concat", "size"):
        targets[f"{cls.__name__}.{m}"] = getattr(cls, m)
for m in ("__init__", "apply_model", "_apply_model", "extra_conds", "extra_conds_shapes", "memory_required",
          "get_dtype", "process_latent_in", "process_latent_out"):
    targets[f"BaseModel.{m}"] = getattr(mb.BaseModel, m)
targets["model_base.convert_tensor"] = mb.convert_tensor
targets["model_base.model_sampling"] = mb.model_sampling
for m in ("__init__", "set_sigmas", "timestep", "sigma", "percent_to_sigma"):
    targets[f"ModelSamplingDiscrete.{m}"] = getattr(ms.ModelSamplingDiscrete, m)
for m in ("calculate_input", "calculate_denoised", "noise_scaling", "inverse_noise_scaling"):
    targets[f"EPS.{m}"] = getattr(ms.EPS, m)
targets["V_PREDICTION.calculate_denoised"] = ms.V_PREDICTION.calculate_denoised
targets["rescale_zero_terminal_snr_sigmas"] = ms.rescale_zero_terminal_snr_sigmas
for f in ("add_wrapper_with_key", "get_all_wrappers", "copy_nested_dicts"):
    targets[f"patcher_extension.{f}"] = getattr(pe, f)
for m in ("__init__", "__call__", "execute", "new_executor", "new_class_executor"):
    targets[f"WrapperExecutor.{m}"] = getattr(pe.WrapperExecutor, m)
targets["BASE.__init__"] = smb.BASE.__init__
targets["BASE.set_inference_dtype"] = smb.BASE.set_inference_dtype
for m in ("add_wrapper_with_key", "remove_wrappers_with_key", "clone"):
    targets[f"ModelPatcher.{m}"] = getattr(mp.ModelPatcher, m)
targets["mm.cast_to_device"] = mm.cast_to_device
targets["utils.repeat_to_batch_size"] = cu.repeat_to_batch_size
def params(fn):
    out = []
    for p in inspect.signature(fn).parameters.values():
        d = None if p.default is p.empty else (type(p.default).__name__ if isinstance(p.default, (type, enum.Enum)) else repr(p.default))
        out.append([p.name, str(p.kind), d])
    return out
res = {k: params(v) for k, v in targets.items()}
res["WrappersMP"] = sorted((k, v) for k, v in vars(pe.WrappersMP).items() if k.isupper())
res["ModelType"] = {k: mb.ModelType[k].value for k in ("EPS", "V_PREDICTION")}
res["io.Conditioning"] = io.Conditioning.io_type
res["BASE.attrs"] = {k: repr(getattr(smb.BASE, k)) for k in ("unet_config", "sampling_settings", "memory_usage_factor",
                                                               "manual_cast_dtype", "custom_operations", "optimizations")}
print("SIGNATURES" + json.dumps(res))
"""


def test_fake_native_modules_match_the_real_signatures(comfy_server):
    """The fake's model_base / model_sampling / conds / patcher_extension stand-ins have the real parameters."""
    import sys
    import textwrap

    real = subprocess.run([str(comfy_server.python), "-c", "import sys; sys.argv = ['probe', '--cpu']\n"
                           "import comfy.options; comfy.options.enable_args_parsing()\n" + NATIVE_SIGNATURES],
                          cwd=str(comfy_server.root), capture_output=True, text=True, timeout=300)
    assert real.returncode == 0, real.stderr[-3000:]
    fake = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys, tempfile
        from pathlib import Path
        sys.path.insert(0, {str(REPO / 'tests')!r})
        from comfy_fake import install_fake_comfy
        install_fake_comfy(Path(tempfile.mkdtemp()))
    """) + NATIVE_SIGNATURES], capture_output=True, text=True, timeout=300)
    assert fake.returncode == 0, fake.stderr[-3000:]
    r = json.loads(real.stdout.split("SIGNATURES", 1)[1])
    f = json.loads(fake.stdout.split("SIGNATURES", 1)[1])
    mismatched = {k: {"real": r[k], "fake": f.get(k)} for k in r if r[k] != f.get(k)}
    assert not mismatched, json.dumps(mismatched, indent=1)
