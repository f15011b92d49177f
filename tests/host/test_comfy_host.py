"""The pack inside a real ComfyUI server (CPU): registration, schemas, the shipped workflows end to end.

Skipped unless COMFYUI_PATH is set (see conftest.py). The shipped API-format workflows are queued
with tiny models: the tiny UniAnimate fixture checkpoint (its empty-prompt context cached next to
it, so the SD 2.1 checkpoint of the shipped workflows is replaced by a VAE loader with a random-weight
TAESD and its CLIP link dropped), a random sparse ViT-H CLIP vision file, the tiny DWPose ONNX models,
64 x 64 pixels and 2 DDIM steps.
"""
from __future__ import annotations

import asyncio
import copy
import inspect
import json
import re
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_fake import install_fake_comfy, load_pack, unload_pack
from comfy_fake.workflow_tools import strip_meta, ui_to_api, validate_api

REPO = Path(__file__).resolve().parents[2]
WORKFLOWS = REPO / "workflows"
STEMS = ["1 - Short clip", "2 - Long video, sliding windows", "3 - Long video, continuation",
         "4 - Repose a single image", "5 - Short clip, small downloads"]
OUR_NODES = {"LoadUniAnimateModel", "UniAnimateSampler", "UniAnimatePoseExtractor", "UniAnimatePoseAlign",
             "UniAnimateLongVideoLoop", "UniAnimateConditioning",
             "UniAnimateLoraLoader"}
SIZE, DRIVING_FRAMES = 64, 4


@pytest.fixture(scope="module")
def object_info(comfy_server):
    return comfy_server.get("/object_info", timeout=120)


@pytest.fixture(scope="module")
def fake_object_info():
    """What the fake ComfyUI's V3 schema produces for our nodes (compared with the real server's)."""
    fake = install_fake_comfy(Path(tempfile.mkdtemp()))
    try:
        pack = load_pack("unianimate_host_check_pack")
        ext = asyncio.run(pack.comfy_entrypoint())
        return {c.GET_SCHEMA().node_id: c.GET_NODE_INFO_V1() for c in asyncio.run(ext.get_node_list())}
    finally:
        unload_pack("unianimate_host_check_pack")
        fake.uninstall()


def test_pack_registers_its_nodes_without_import_errors(comfy_server, object_info):
    assert OUR_NODES <= set(object_info)
    log = comfy_server.log_text()
    assert "IMPORT FAILED" not in log, log[-4000:]
    assert all(object_info[n]["category"].startswith("UniAnimate") for n in OUR_NODES)


def test_real_schemas_match_the_fake(object_info, fake_object_info):
    for node in OUR_NODES:
        real, fake = object_info[node], fake_object_info[node]
        for key in ("input_order", "output", "output_name", "name", "display_name", "description", "category"):
            assert real[key] == fake[key], (node, key)
        for section, names in real["input_order"].items():
            for name in names:
                r, f = real["input"][section][name], fake["input"][section][name]
                assert r[0] == f[0], (node, name)
                if len(r) > 1:
                    ropts = {k: v for k, v in r[1].items() if k != "options" or not name.endswith(("_name", "_model"))}
                    fopts = {k: v for k, v in f[1].items() if k != "options" or not name.endswith(("_name", "_model"))}
                    assert ropts == fopts, (node, name)


def node_validated() -> dict[str, list[str]]:
    """Inputs our nodes' validate_inputs take (ComfyUI leaves their range/list checks to the node)."""
    fake = install_fake_comfy(Path(tempfile.mkdtemp()))
    try:
        pack = load_pack("unianimate_host_validate_pack")
        ext = asyncio.run(pack.comfy_entrypoint())
        return {c.GET_SCHEMA().node_id: list(inspect.signature(c.validate_inputs).parameters)
                for c in asyncio.run(ext.get_node_list()) if "validate_inputs" in c.__dict__}
    finally:
        unload_pack("unianimate_host_validate_pack")
        fake.uninstall()


def test_shipped_workflows_convert_and_validate_against_the_real_server(object_info):
    files = [(n, i) for n, i in (("LoadImage", "image"), ("LoadVideo", "file"), ("CheckpointLoaderSimple", "ckpt_name"),
                                 ("CLIPVisionLoader", "clip_name"), ("LoadUniAnimateModel", "model_name"),
                                 ("VAELoader", "vae_name"), ("CLIPLoader", "clip_name"),
                                 ("UniAnimatePoseExtractor", "detector_model"), ("UniAnimatePoseExtractor", "pose_model"))]
    for stem in STEMS:
        api = ui_to_api(json.loads((WORKFLOWS / f"{stem}.json").read_text()), object_info)
        assert strip_meta(api) == strip_meta(json.loads((WORKFLOWS / "api" / f"{stem}.json").read_text())), stem
        assert validate_api(api, object_info, files, node_validated()) == [], stem


SIGNATURE_PROBE = textwrap.dedent("""
    import inspect, json
    import folder_paths, latent_preview
    import comfy.model_management as mm, comfy.model_patcher, comfy.utils, comfy.ops, comfy.latent_formats, comfy.lora
    import comfy.ldm.modules.attention as attention
    from comfy_api.latest import io, ComfyExtension
    targets = {
        "mm.load_models_gpu": mm.load_models_gpu, "mm.unet_dtype": mm.unet_dtype,
        "mm.unet_manual_cast": mm.unet_manual_cast, "mm.supports_cast": mm.supports_cast,
        "mm.supports_fp8_compute": mm.supports_fp8_compute, "mm.should_use_fp16": mm.should_use_fp16,
        "mm.should_use_bf16": mm.should_use_bf16, "ops.cast_bias_weight": comfy.ops.cast_bias_weight,
        "ops.uncast_bias_weight": comfy.ops.uncast_bias_weight,
        "mm.throw_exception_if_processing_interrupted": mm.throw_exception_if_processing_interrupted,
        "mm.interrupt_current_processing": mm.interrupt_current_processing, "mm.soft_empty_cache": mm.soft_empty_cache,
        "mm.get_torch_device": mm.get_torch_device, "mm.unet_offload_device": mm.unet_offload_device,
        "mm.intermediate_device": mm.intermediate_device, "ModelPatcher": comfy.model_patcher.ModelPatcher.__init__,
        "ProgressBar": comfy.utils.ProgressBar.__init__, "ProgressBar.update_absolute": comfy.utils.ProgressBar.update_absolute,
        "set_progress_bar_global_hook": comfy.utils.set_progress_bar_global_hook,
        "load_torch_file": comfy.utils.load_torch_file, "pick_operations": comfy.ops.pick_operations,
        "SD15": comfy.latent_formats.SD15.__init__,
        "add_model_folder_path": folder_paths.add_model_folder_path, "get_folder_paths": folder_paths.get_folder_paths,
        "get_filename_list": folder_paths.get_filename_list, "get_full_path": folder_paths.get_full_path,
        "get_full_path_or_raise": folder_paths.get_full_path_or_raise, "get_previewer": latent_preview.get_previewer,
        "add_patches": comfy.model_patcher.ModelPatcher.add_patches, "load_lora": comfy.lora.load_lora,
        "get_save_image_path": folder_paths.get_save_image_path,
        "get_output_directory": folder_paths.get_output_directory,
        "decode_latent_to_preview_image": latent_preview.LatentPreviewer.decode_latent_to_preview_image,
        "io.Input": io.Input.__init__, "io.Output": io.Output.__init__, "io.Int.Input": io.Int.Input.__init__,
        "io.Float.Input": io.Float.Input.__init__, "io.Boolean.Input": io.Boolean.Input.__init__,
        "io.Combo.Input": io.Combo.Input.__init__, "io.String.Input": io.String.Input.__init__,
        "io.MultiType.Input": io.MultiType.Input.__init__, "io.NodeOutput": io.NodeOutput.__init__,
        "io.Schema": io.Schema.__init__,
    }
    def params(fn):
        return [[p.name, str(p.kind), None if p.default is p.empty else repr(p.default)]
                for p in inspect.signature(fn).parameters.values()]
    # the model objects the fake stands in for (comfy_fake.models) and the attention dispatcher (called
    # positionally as (q, k, v, heads); the real one's first names depend on the chosen kernel)
    targets.update({"VAE.encode": VAE.encode, "VAE.decode": VAE.decode, "CLIP.tokenize": CLIP.tokenize,
                    "CLIP.encode_from_tokens": CLIP.encode_from_tokens, "CLIP.clip_layer": CLIP.clip_layer,
                    "CLIP.clone": CLIP.clone, "ClipVision.encode_image": ClipVision.encode_image})
    out = {k: params(v) for k, v in targets.items()}
    out["optimized_attention"] = params(attention.optimized_attention)[3:]
    out["ComfyExtension.methods"] = sorted(m for m in dir(ComfyExtension) if not m.startswith("_"))
    out["mm.OOM_EXCEPTION"] = mm.OOM_EXCEPTION.__name__
    print("SIGNATURES" + json.dumps(out))
""")


def test_fake_matches_real_signatures(comfy_server):
    """Every ComfyUI function/constructor the fake imitates has the same parameters (names, kinds, defaults)."""
    real_run = subprocess.run([str(comfy_server.python), "-c", "import sys; sys.argv = ['probe', '--cpu']\n"
                               "import comfy.options; comfy.options.enable_args_parsing()\n"
                               "import comfy.sd, comfy.clip_vision\n"
                               "VAE, CLIP, ClipVision = comfy.sd.VAE, comfy.sd.CLIP, comfy.clip_vision.ClipVisionModel\n"
                               + SIGNATURE_PROBE], cwd=str(comfy_server.root), capture_output=True, text=True,
                              timeout=300)
    assert real_run.returncode == 0, real_run.stderr[-3000:]
    tests_dir = str(REPO / "tests")
    fake_run = subprocess.run([sys.executable, "-c", textwrap.dedent(f"""
        import sys, tempfile
        from pathlib import Path
        sys.path.insert(0, {tests_dir!r})
        from comfy_fake import install_fake_comfy
        from comfy_fake.models import FakeVAE as VAE, FakeCLIP as CLIP, FakeClipVision as ClipVision
        install_fake_comfy(Path(tempfile.mkdtemp()))
    """) + SIGNATURE_PROBE], capture_output=True, text=True, timeout=300)
    assert fake_run.returncode == 0, fake_run.stderr[-3000:]
    real = json.loads(real_run.stdout.split("SIGNATURES", 1)[1])
    fake = json.loads(fake_run.stdout.split("SIGNATURES", 1)[1])
    mismatched = {k: {"real": real[k], "fake": fake.get(k)} for k in real if real[k] != fake.get(k)}
    assert not mismatched, json.dumps(mismatched, indent=1)


# ----------------------------------------------------------------------------------------- runs
def make_inputs(server) -> None:
    """reference.png, target_pose.png and a 4-frame driving.mp4 (h264) in ComfyUI's input folder."""
    import av

    photo = Image.open(REPO / "tests" / "fixtures" / "dwpose" / "astronaut.png").convert("RGB").resize((128, 128))
    photo.save(server.input / "reference.png")
    photo.transpose(Image.FLIP_LEFT_RIGHT).save(server.input / "target_pose.png")
    with av.open(str(server.input / "driving.mp4"), "w") as out:
        stream = out.add_stream("libx264", rate=8)
        stream.width, stream.height, stream.pix_fmt = 128, 128, "yuv420p"
        for i in range(DRIVING_FRAMES):
            frame = np.roll(np.asarray(photo), 3 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)


def latent_prefix(stem: str) -> str:
    """File-name prefix of the SaveLatent the tests add ("1 - Short clip" -> "1_Short_clip")."""
    return re.sub(r"[^A-Za-z0-9]+", "_", stem).strip("_")


def for_test_host(api: dict, models: dict, stem: str) -> dict:
    """The shipped prompt with tiny models and sizes (see the module docstring)."""
    p = copy.deepcopy(api)
    ckpt = [k for k, v in p.items() if v["class_type"] == "CheckpointLoaderSimple"]
    for k in ckpt:
        p[k] = {"class_type": "VAELoader", "inputs": {"vae_name": models["vae"]}}
    for node in p.values():
        inp = node["inputs"]
        for name, value in list(inp.items()):
            if isinstance(value, list) and value[0] in ckpt:
                if value[1] == 2:
                    inp[name] = [value[0], 0]  # VAE
                else:
                    del inp[name]  # the CLIP: the empty-prompt context comes from the cached file
        ct = node["class_type"]
        if ct == "LoadUniAnimateModel":
            inp["model_name"] = models["unet"]
        elif ct == "VAELoader":
            inp["vae_name"] = models["vae"]
        elif ct == "CLIPVisionLoader":
            inp["clip_name"] = models["clip_vision"]
        elif ct == "UniAnimatePoseExtractor":
            inp["render_short_side"] = SIZE
        elif ct == "UniAnimatePoseAlign":
            inp.update(width=SIZE, height=SIZE)
        elif ct in ("UniAnimateSampler", "UniAnimateLongVideoLoop"):
            inp.update(width=SIZE, height=SIZE, steps=2, frame_interval=1)
            if ct == "UniAnimateSampler" and inp["max_frames"] > 1:
                inp["max_frames"] = 3
            if ct == "UniAnimateLongVideoLoop":
                inp.update(context_size=2, context_overlap=1)
            sampler = next(k for k, v in p.items() if v is node)
    p["900"] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler, 0],
                                                        "filename_prefix": f"latents/{latent_prefix(stem)}"}}
    return p


EXPECTED_FRAMES = {"1 - Short clip": 3, "2 - Long video, sliding windows": DRIVING_FRAMES,
                   "3 - Long video, continuation": DRIVING_FRAMES, "4 - Repose a single image": 1,
                   "5 - Short clip, small downloads": 3}


@pytest.fixture(scope="module")
def prepared(comfy_server, test_models):
    make_inputs(comfy_server)
    return test_models


@pytest.mark.slow
@pytest.mark.parametrize("stem", STEMS)
def test_shipped_workflow_runs_with_tiny_models(comfy_server, client, prepared, stem):
    api = json.loads((WORKFLOWS / "api" / f"{stem}.json").read_text())
    prompt = for_test_host(api, prepared, stem)
    result = client.run(prompt, timeout=900)
    frames = EXPECTED_FRAMES[stem]

    from safetensors.torch import load_file
    (latent_file,) = sorted((comfy_server.output / "latents").glob(f"{latent_prefix(stem)}_0*.latent"))[-1:]
    latent = load_file(str(latent_file))["latent_tensor"]
    assert latent.shape == (frames, 4, SIZE // 8, SIZE // 8) and bool(torch.isfinite(latent).all())

    outputs = [item for node in result.outputs.values() for items in node.values() if isinstance(items, list)
               for item in items if isinstance(item, dict) and "filename" in item]
    if stem == "4 - Repose a single image":
        (png,) = [comfy_server.output / o.get("subfolder", "") / o["filename"] for o in outputs if o["filename"].endswith(".png")]
        assert Image.open(png).size == (SIZE, SIZE)
    else:
        import av

        (mp4,) = [comfy_server.output / o.get("subfolder", "") / o["filename"] for o in outputs if o["filename"].endswith(".mp4")]
        with av.open(str(mp4)) as container:
            decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        assert len(decoded) == frames and decoded[0].shape == (SIZE, SIZE, 3)


LEGACY = REPO / "tests" / "nodes" / "data" / "legacy_workflows"


@pytest.mark.slow
def test_workflow_saved_with_old_combo_labels_runs(comfy_server, client, prepared):
    """The shipped 01 as it was saved before the combos got short keys (display labels in the sampler, the
    extractors and the aligner) passes the real server's validation and runs."""
    api = json.loads((LEGACY / "api" / "01_short_clip.json").read_text())
    assert "UniAnimate (trained colours)" in json.dumps(api)
    client.run(for_test_host(api, prepared, "legacy_01"), timeout=900)
    from safetensors.torch import load_file
    latent = load_file(str(sorted((comfy_server.output / "latents").glob("legacy_01*.latent"))[-1]))["latent_tensor"]
    assert latent.shape == (3, 4, SIZE // 8, SIZE // 8)


@pytest.mark.slow
def test_video_to_video_refines_an_encoded_video(comfy_server, client, prepared):
    """LATENT in on the real server: the driving video, scaled and encoded with VAE Encode (ComfyUI's
    frames-in-batch latent), refined by the sampler at denoise 0.5."""
    prompt = for_test_host(json.loads((WORKFLOWS / "api" / "1 - Short clip.json").read_text()), prepared, "v2v")
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "UniAnimateSampler")
    frames = next(k for k, v in prompt.items() if v["class_type"] == "GetVideoComponents")
    prompt["950"] = {"class_type": "ImageScale", "inputs": {"image": [frames, 0], "upscale_method": "bilinear",
                                                             "width": SIZE, "height": SIZE, "crop": "disabled"}}
    prompt["951"] = {"class_type": "ImageFromBatch", "inputs": {"image": ["950", 0], "batch_index": 0, "length": 3}}
    prompt["952"] = {"class_type": "VAEEncode", "inputs": {"pixels": ["951", 0], "vae": prompt[sampler]["inputs"]["vae"]}}
    prompt[sampler]["inputs"].update(latent=["952", 0], denoise=0.5)
    client.run(prompt, timeout=900)
    from safetensors.torch import load_file
    latent = load_file(str(sorted((comfy_server.output / "latents").glob("v2v*.latent"))[-1]))["latent_tensor"]
    assert latent.shape == (3, 4, SIZE // 8, SIZE // 8) and bool(torch.isfinite(latent).all())


def test_size_not_a_multiple_of_64_is_rejected_naming_the_input(client, prepared):
    api = json.loads((WORKFLOWS / "api" / "1 - Short clip.json").read_text())
    prompt = for_test_host(api, prepared, "bad_size")
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "UniAnimateSampler")
    prompt[sampler]["inputs"]["height"] = 100
    with pytest.raises(Exception) as err:
        client.run(prompt, timeout=120)
    errors = err.value.payload["node_errors"][sampler]["errors"]
    assert {e["extra_info"]["input_name"] for e in errors} == {"width", "height", "pose_colors"}
    assert all("height = 100 is not a multiple of 64" in e["details"] and "use 64 or 128" in e["details"]
               for e in errors), errors


def test_missing_model_is_rejected_with_the_fix(client, prepared):
    api = json.loads((WORKFLOWS / "api" / "1 - Short clip.json").read_text())
    prompt = for_test_host(api, {**prepared, "unet": "nope.pth"}, "missing_model")
    with pytest.raises(Exception) as err:
        client.run(prompt, timeout=120)
    text = str(err.value)
    assert "nope.pth" in text and "unianimate_16f_32f_non_ema_223000.pth" in text and "models/unianimate" in text
    loader = next(k for k, v in prompt.items() if v["class_type"] == "LoadUniAnimateModel")
    errors = err.value.payload["node_errors"][loader]["errors"]
    assert [e["extra_info"]["input_name"] for e in errors] == ["model_name"]  # shown once, under model_name


# -------------------------------------------------------------------- empty-prompt context, CLIP input
ZERO_Y_PROBE = textwrap.dedent("""
    import sys, importlib.util, json
    sys.argv = ["probe", "--cpu"]
    sys.path.insert(0, ".")
    import comfy.options; comfy.options.enable_args_parsing()
    import torch, comfy.sd, comfy.supported_models_base as smb, comfy.clip_model
    from comfy.text_encoders import sd2_clip
    import folder_paths, comfy.model_management, comfy_api.latest  # what ComfyUI has imported before it loads packs

    spec = importlib.util.spec_from_file_location("unianimate_probe_pack", {init!r}, submodule_search_locations=[{repo!r}])
    pack = importlib.util.module_from_spec(spec); sys.modules[spec.name] = pack; spec.loader.exec_module(pack)

    # ComfyUI's SD2 text encoder (OpenCLIP ViT-H-14 text tower) with seeded random weights
    clip = comfy.sd.CLIP(target=smb.ClipTarget(sd2_clip.SD2Tokenizer, sd2_clip.SD2ClipModel))
    g = torch.Generator().manual_seed(0)
    sd = {{}}
    for k, v in clip.cond_stage_model.state_dict().items():
        z = torch.randn(v.shape, generator=g)
        sd[k] = (1 + 0.1 * z if "norm" in k and k.endswith("weight") else 0.02 * z).to(v.dtype)
    clip.cond_stage_model.load_state_dict(sd, strict=True)
    zero_y = pack.nodes.text_context.zero_y_from_clip(clip)

    # independent reference, the official recipe: tokens [SOT, EOT, 0 x 75] -> embeddings -> the first 23 of
    # 24 pre-LN blocks with a causal mask (GELU MLP) -> final LayerNorm on every token
    p = "clip_h.transformer.text_model."
    w = {{k[len(p):]: v.float() for k, v in sd.items() if k.startswith(p)}}
    tokens = torch.tensor([49406, 49407] + [0] * 75)
    x = w["embeddings.token_embedding.weight"][tokens] + w["embeddings.position_embedding.weight"]
    ln = lambda t, n: torch.nn.functional.layer_norm(t, (1024,), w[n + ".weight"], w[n + ".bias"], 1e-5)
    lin = lambda t, n: t @ w[n + ".weight"].T + w[n + ".bias"]
    mask = torch.full((77, 77), float("-inf")).triu(1)
    for i in range(23):
        b = f"encoder.layers.{{i}}."
        h = ln(x, b + "layer_norm1")
        q, k, v = (lin(h, b + f"self_attn.{{n}}_proj").view(77, 16, 64).transpose(0, 1) for n in "qkv")
        a = torch.softmax(q @ k.transpose(1, 2) / 8 + mask, dim=-1) @ v
        x = x + lin(a.transpose(0, 1).reshape(77, 1024), b + "self_attn.out_proj")
        x = x + lin(torch.nn.functional.gelu(lin(ln(x, b + "layer_norm2"), b + "mlp.fc1")), b + "mlp.fc2")
    ref = ln(x, "final_layer_norm")[None]

    # CLIP vision preprocessing: a 224x224 input is only rounded to 8 bit and normalised (no resize)
    img = torch.randint(0, 256, (1, 224, 224, 3), generator=g).float() / 255
    pre = comfy.clip_model.clip_preprocess(img, size=224, crop=False)
    mean = torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)
    std = torch.tensor([0.26862954, 0.26130258, 0.27577711]).view(1, 3, 1, 1)
    official = (img.movedim(-1, 1) - mean) / std
    print("RESULT" + json.dumps({{"shape": list(zero_y.shape), "max_abs": float((zero_y - ref).abs().max()),
                                  "ref_scale": float(ref.abs().mean()),
                                  "clip_pre_max_abs": float((pre - official).abs().max())}}))
""")


def test_comfyui_sd2_clip_gives_the_official_empty_prompt_context(comfy_server):
    """The loader's CLIP call == penultimate block + final LayerNorm of the OpenCLIP-H text tower on ""
    (an independent plain-PyTorch implementation of the official recipe on the same random weights),
    and ComfyUI's CLIP-vision preprocessing of a 224 x 224 input is exactly the official normalisation."""
    script = ZERO_Y_PROBE.format(init=str(REPO / "__init__.py"), repo=str(REPO))
    res = subprocess.run([str(comfy_server.python), "-c", script], cwd=str(comfy_server.root), capture_output=True,
                         text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.split("RESULT", 1)[1])
    assert out["shape"] == [1, 77, 1024]
    assert out["max_abs"] < 1e-3 * max(1.0, out["ref_scale"]), out
    assert out["clip_pre_max_abs"] < 1e-6, out


# ------------------------------------------------------------------------------ previews, Cancel
@pytest.mark.slow
def test_new_seed_reruns_only_the_sampler_with_live_previews(comfy_server, client, prepared):
    """A second run that only changes the seed reuses the loaded UniAnimate model, the poses and the
    other loaders from ComfyUI's cache and reruns the sampler, here with previews on (the frontend's
    setting, sent per prompt), so the sampler feeds ComfyUI's latent->RGB previewer every step."""
    prompt = for_test_host(json.loads((WORKFLOWS / "api" / "4 - Repose a single image.json").read_text()), prepared,
                           "preview_check")
    sampler = next(k for k, v in prompt.items() if v["class_type"] == "UniAnimateSampler")
    loader = next(k for k, v in prompt.items() if v["class_type"] == "LoadUniAnimateModel")
    cached_nodes = []
    for seed in (1001, 1002):
        prompt[sampler]["inputs"]["seed"] = seed
        pid = client.submit(prompt, extra_data={"preview_method": "latent2rgb"})
        entry = client.wait(pid, timeout=600)
        assert entry["status"]["status_str"] == "success", entry["status"]
        cached_nodes = [n for event, data in entry["status"]["messages"] if event == "execution_cached"
                        for n in data["nodes"]]
    assert loader in cached_nodes and sampler not in cached_nodes, cached_nodes


@pytest.mark.slow
@pytest.mark.timeout(2400)  # two runs of 3 x 40 steps plus the CLIP-vision encode, on a shared CPU
def test_cancelled_continuation_is_a_cancel_that_saves_finished_segments(comfy_server, client, prepared):
    """Cancel (POST /interrupt) during the second segment: ComfyUI reports the job as interrupted (nothing
    downstream ran, nothing was cached), the finished first segment is in the output folder (latent in
    Save Latent's format + decoded mp4), and queueing the same prompt again computes it again."""
    import threading
    import urllib.request

    prompt = for_test_host(json.loads((WORKFLOWS / "api" / "3 - Long video, continuation.json").read_text()),
                           prepared, "cancel_check")
    loop_id = next(k for k, v in prompt.items() if v["class_type"] == "UniAnimateLongVideoLoop")
    prompt[loop_id]["inputs"]["steps"] = 40  # long enough segments to cancel inside the second one
    log_start = len(comfy_server.log_text())
    saved_dir = comfy_server.output / "UniAnimate"
    before = set(saved_dir.glob("cancelled_long_video_*")) if saved_dir.exists() else set()

    def cancel_after_first_segment():
        t0 = time.time()
        while time.time() - t0 < 600:
            if "segment 1/3 done" in comfy_server.log_text()[log_start:]:
                req = urllib.request.Request(comfy_server.url + "/interrupt", data=b"{}", method="POST",
                                             headers={"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=30).read()
                return
            time.sleep(0.2)

    watcher = threading.Thread(target=cancel_after_first_segment, daemon=True)
    watcher.start()
    entry = client.wait(client.submit(prompt), timeout=900)
    watcher.join(timeout=5)
    events = [event for event, _ in entry["status"]["messages"]]
    assert "execution_interrupted" in events and "execution_success" not in events, events
    assert entry["status"]["status_str"] != "success"
    log = comfy_server.log_text()[log_start:]
    assert "cancelled after 1 of 3 segments" in log, log[-3000:]
    assert not list((comfy_server.output / "latents").glob("cancel_check*.latent"))  # downstream never ran

    from safetensors.torch import load_file
    new = sorted(set(saved_dir.glob("cancelled_long_video_*")) - before)
    assert [p.suffix for p in new] == [".latent", ".mp4"], new
    partial = load_file(str(new[0]))["latent_tensor"]
    assert partial.shape == (2, 4, SIZE // 8, SIZE // 8)  # segment 0: frames 0 and 1
    import av
    with av.open(str(new[1])) as container:
        assert len([f for f in container.decode(video=0)]) == 2

    # the same prompt again: recomputed (not served from a cache of the truncated result), all 4 frames
    again = client.wait(client.submit(prompt), timeout=900)
    assert again["status"]["status_str"] == "success", again["status"]
    cached = [n for event, data in again["status"]["messages"] if event == "execution_cached" for n in data["nodes"]]
    assert loop_id not in cached
    full = load_file(str(sorted((comfy_server.output / "latents").glob("cancel_check*.latent"))[-1]))["latent_tensor"]
    assert full.shape == (DRIVING_FRAMES, 4, SIZE // 8, SIZE // 8)
    torch.testing.assert_close(full[:2], partial, rtol=1e-5, atol=1e-5)  # same seed: the same first segment


@pytest.mark.slow
@pytest.mark.parametrize("weight_dtype", ["fp16", "fp8_e4m3fn"])
def test_half_and_fp8_weights_run_in_the_real_comfyui(comfy_server, client, prepared, weight_dtype):
    """Load UniAnimate Model with fp16 / fp8 weights in the real ComfyUI (--cpu): its own unet_manual_cast
    picks fp32 compute, its own comfy.ops.manual_cast layers cast per call, and the repose workflow gives a
    finite latent. (GPU-like native fp16 compute is covered by the fake ComfyUI, whose ops and dtype rules
    tests/host/test_comfy_ops.py checks against these.)"""
    stem = f"dtype_{weight_dtype}"
    prompt = for_test_host(json.loads((WORKFLOWS / "api" / "4 - Repose a single image.json").read_text()), prepared, stem)
    loader = next(v for v in prompt.values() if v["class_type"] == "LoadUniAnimateModel")
    loader["inputs"]["weight_dtype"] = weight_dtype
    log_start = len(comfy_server.log_text())
    client.run(prompt, timeout=900)
    from safetensors.torch import load_file
    latent = load_file(str(sorted((comfy_server.output / "latents").glob(f"{stem}*.latent"))[-1]))["latent_tensor"]
    assert latent.shape == (1, 4, SIZE // 8, SIZE // 8) and bool(torch.isfinite(latent).all())
    stored = {"fp16": "torch.float16", "fp8_e4m3fn": "torch.float8_e4m3fn"}[weight_dtype]
    assert f"weights {stored}, compute torch.float32" in comfy_server.log_text()[log_start:]


# ------------------------------------------------------------------------------------------- LoRA
LORA_PROBE = textwrap.dedent("""
    import sys, importlib.util, json
    sys.argv = ["probe", "--cpu"]
    sys.path.insert(0, ".")
    import comfy.options; comfy.options.enable_args_parsing()
    import torch, comfy.model_management as mm
    import folder_paths, comfy_api.latest  # what ComfyUI has imported before it loads packs
    from safetensors.torch import load_file, save_file

    spec = importlib.util.spec_from_file_location("unianimate_probe_pack", {init!r}, submodule_search_locations=[{repo!r}])
    pack = importlib.util.module_from_spec(spec); sys.modules[spec.name] = pack; spec.loader.exec_module(pack)
    core = pack.unianimate_core
    zero_y = load_file({cases!r})["zero_y"]

    # a LoRA in the trainer's file layout on every attention projection of the tiny UNet
    base = core.checkpoint.load_unet({ckpt!r}, dtype="fp32")
    g = torch.Generator().manual_seed(0)
    lora = {{}}
    for name, module in base.named_modules():
        if name.endswith(("attn1.to_q", "attn1.to_v", "attn2.to_k", "attn2.to_out.0")):
            w = module.weight
            lora[f"diffusion_model.{{name}}.lora_A.weight"] = 0.3 * torch.randn(4, w.shape[1], generator=g)
            lora[f"diffusion_model.{{name}}.lora_B.weight"] = 0.3 * torch.randn(w.shape[0], 4, generator=g)
            lora[f"diffusion_model.{{name}}.alpha"] = torch.tensor(2.0)
    save_file(lora, "probe_lora.safetensors")

    patcher = pack.nodes.loader.build_patcher({ckpt!r}, "fp32")
    patcher.model.diffusion_model.set_zero_y(zero_y)
    patched = pack.nodes.lora.apply_lora_patches(patcher, lora, 0.8, "probe_lora.safetensors")
    mm.load_models_gpu([patched])
    x = torch.randn(1, 4, 2, 8, 8, generator=g)
    kw = dict(image=torch.randn(1, 1024, generator=g), dwpose=torch.rand(1, 3, 3, 64, 64, generator=g),
              randomref=torch.randn(1, 4, 1, 8, 8, generator=g))
    with torch.no_grad():
        comfy_out = patched.model.diffusion_model(x, torch.tensor([500]), **kw)
        merged = core.checkpoint.load_unet({ckpt!r}, dtype="fp32", zero_y=zero_y)
        layers = core.lora.apply_lora(merged, "probe_lora.safetensors", strength=0.8)
        ours = merged(x, torch.tensor([500]), **kw)
        plain = core.checkpoint.load_unet({ckpt!r}, dtype="fp32", zero_y=zero_y)(x, torch.tensor([500]), **kw)

    # the same file through ComfyUI's own LoraLoaderModelOnly path on the MODEL output (the generic
    # "diffusion_model.<module>" key mapping of comfy.lora.model_lora_keys_unet)
    import comfy.sd
    native, _ = comfy.sd.load_lora_for_models(patcher, None, lora, 0.8, 0)
    mm.load_models_gpu([native])
    with torch.no_grad():
        native_out = native.model.diffusion_model(x, torch.tensor([500]), **kw)
    print("RESULT" + json.dumps({{"layers": len(layers), "patched": len(patched.patches),
                                 "max_abs": float((comfy_out - ours).abs().max()),
                                 "native_patched": len(native.patches),
                                 "native_max_abs": float((native_out - ours).abs().max()),
                                 "lora_effect": float((ours - plain).abs().max())}}))
""")


def test_comfyui_applies_a_trained_lora_like_our_merge(comfy_server):
    """ComfyUI's own LoRA machinery (comfy.lora.load_lora + ModelPatcher patches applied on load) on the
    trainer's file layout gives the same UNet output as unianimate_core.lora.apply_lora's merge, both
    through Load UniAnimate LoRA's key map and through ComfyUI's LoraLoaderModelOnly path (MODEL output)."""
    fixtures = REPO / "tests" / "fixtures"
    sys.path.insert(0, str(REPO))
    from tests.tiny_unet import tiny_checkpoint_path

    script = LORA_PROBE.format(init=str(REPO / "__init__.py"), repo=str(REPO), ckpt=str(tiny_checkpoint_path()),
                               cases=str(fixtures / "unet_tiny_cases.safetensors"))
    res = subprocess.run([str(comfy_server.python), "-c", script], cwd=str(comfy_server.base), capture_output=True,
                         text=True, timeout=600, env={**__import__("os").environ, "PYTHONPATH": str(comfy_server.root)})
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.split("RESULT", 1)[1])
    assert out["layers"] == out["patched"] > 0
    assert out["lora_effect"] > 1e-2  # the LoRA changes the output...
    assert out["max_abs"] < 1e-4, out  # ...identically through ComfyUI's patcher and our merge (fp32 rounding)
    # ComfyUI's LoraLoaderModelOnly on the MODEL output maps the trainer's keys by itself, to the same result
    assert out["native_patched"] == out["layers"] and out["native_max_abs"] < 1e-4, out
