"""UniAnimateSampler on CPU with the tiny UNet, a fake VAE and a fake CLIP vision model."""
from __future__ import annotations

import logging

import numpy as np
import pytest
import torch
from PIL import Image

from comfy_fake.models import FakeClipVision, FakeVAE
from node_helpers import images

W = H = 64



@pytest.fixture
def sampler(host):
    return host.node_classes()["UniAnimateSampler"]


@pytest.fixture
def inputs(model):
    return dict(model=model, vae=FakeVAE(), clip_vision=FakeClipVision(),
                reference_image=images(1, 80, 60, seed=1), poses=images(3, 70, 50, seed=2),
                reference_pose=images(1, 70, 50, seed=3), width=W, height=H, max_frames=0, frame_interval=1,
                steps=2, guidance=2.5, seed=5, noise_prior=949, condition_mode="standard")


def pil_resize(img: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """Independent reference for the official squash resize: PIL bilinear on the 8-bit image."""
    arr = (img.numpy() * 255).round().astype(np.uint8)
    return np.array(Image.fromarray(arr).resize(size, Image.BILINEAR))


@pytest.mark.parametrize("mode", ["standard", "first_frame", "both"])
def test_output_is_comfy_latent_and_matches_the_core_run(host, sampler, inputs, mode):
    out = sampler.execute(**{**inputs, "condition_mode": mode})
    samples = out[0]["samples"]
    assert samples.shape == (3, 4, H // 8, W // 8) and samples.dtype == torch.float32
    assert samples.device == torch.device("cpu") and torch.isfinite(samples).all()

    # the same run composed by hand from the core API, with the pose stack / CLIP input built by PIL
    core = host.pack.unianimate_core
    d = core.diffusion
    poses = np.stack([pil_resize(inputs["reference_pose"][0], (W, H))]
                     + [pil_resize(p, (W, H)) for p in inputs["poses"]])
    dwpose = torch.from_numpy(poses).permute(3, 0, 1, 2)[None].float() / 255.0
    ref = torch.from_numpy(pil_resize(inputs["reference_image"][0], (W, H))).float().div(255).permute(2, 0, 1)[None]
    vae, clip = FakeVAE(), FakeClipVision()
    embed = clip.encode_image(torch.from_numpy(pil_resize(inputs["reference_image"][0], (224, 224)))[None].float() / 255,
                              crop=False)["image_embeds"]
    ref_latent = vae.encode(ref.permute(0, 2, 3, 1)) * 0.18215
    cond = d.Conditions.build(mode, image=embed[:, None], dwpose=dwpose, ref_latent=ref_latent, ref_pixels=ref)
    g = torch.Generator().manual_seed(5)
    noise = d.prepare_noise((1, 4, 3, H // 8, W // 8), g, d.NoiseOptions(0.1, 949, "offset_then_prior"),
                            prior_latent=ref_latent)
    expected = d.sample_video(inputs["model"].unet, noise, cond, d.SamplerOptions(steps=2, guide_scale=2.5), generator=g)
    expected = expected[0].permute(1, 0, 2, 3) / 0.18215
    torch.testing.assert_close(samples, expected, rtol=1e-4, atol=1e-4)


def test_clip_vision_gets_the_official_224_squash_resize(host, sampler, inputs):
    clip = FakeClipVision()
    sampler.execute(**{**inputs, "clip_vision": clip})
    (seen,) = clip.seen_images
    assert seen.shape == (1, 224, 224, 3)
    expected = torch.from_numpy(pil_resize(inputs["reference_image"][0], (224, 224))).float() / 255
    torch.testing.assert_close(seen[0], expected, rtol=0, atol=0)
    # at 224x224 ComfyUI's own preprocessing is then only the 8-bit rounding (a no-op) + mean/std
    mean = torch.tensor(clip.image_mean).view(3, 1, 1)
    std = torch.tensor(clip.image_std).view(3, 1, 1)
    torch.testing.assert_close(clip.pixel_values[0][0], (expected.permute(2, 0, 1) - mean) / std)


def test_model_goes_through_comfys_memory_manager(host, sampler, inputs):
    sampler.execute(**inputs)
    (patchers, memory), = host.fake.model_management.load_calls
    assert patchers == [inputs["model"].patcher] and memory > 0


def test_progress_and_previews(host, sampler, inputs):
    calls = []
    host.fake.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: calls.append((value, total, preview)))
    host.fake.latent_preview.preview_enabled = True
    sampler.execute(**inputs)
    steps = 2  # DDIM timesteps for 2 requested steps
    assert [(v, t) for v, t, _ in calls] == [(i + 1, steps) for i in range(steps)]
    assert all(p is not None and p[0] == "JPEG" for _, _, p in calls)
    # frames in the batch dimension, frame 0 only, in model (x 0.18215) space
    assert [tuple(x.shape) for x in host.fake.latent_preview.previewed] == [(1, 4, H // 8, W // 8)] * steps


def test_interrupt_stops_sampling_with_comfys_exception(host, sampler, inputs):
    mm = host.fake.model_management
    seen = []

    def hook(value, total, preview, node_id=None):
        seen.append(value)
        mm.interrupt_current_processing(True)  # the user presses Cancel during step 1

    host.fake.utils.set_progress_bar_global_hook(hook)
    with pytest.raises(mm.InterruptProcessingException):
        sampler.execute(**{**inputs, "steps": 3})
    assert seen == [1]


def test_same_seed_same_video_other_seed_other_video(sampler, inputs):
    a = sampler.execute(**inputs)[0]["samples"]
    b = sampler.execute(**inputs)[0]["samples"]
    c = sampler.execute(**{**inputs, "seed": 6})[0]["samples"]
    assert torch.equal(a, b) and not torch.allclose(a, c)


def test_frame_selection(sampler, inputs):
    five = images(5, 70, 50, seed=9)
    picked = sampler.execute(**{**inputs, "poses": five, "max_frames": 3, "frame_interval": 2})[0]["samples"]
    direct = sampler.execute(**{**inputs, "poses": five[[0, 2, 4]], "max_frames": 0, "frame_interval": 1})[0]["samples"]
    assert picked.shape[0] == 3
    torch.testing.assert_close(picked, direct, rtol=0, atol=0)


def test_single_pose_repose(sampler, inputs):
    """max_frames 1 = one frame from the first selected pose, whatever follows in the batch."""
    out = sampler.execute(**{**inputs, "max_frames": 1})[0]["samples"]
    first_only = sampler.execute(**{**inputs, "poses": inputs["poses"][:1], "max_frames": 0})[0]["samples"]
    assert out.shape == (1, 4, H // 8, W // 8)
    torch.testing.assert_close(out, first_only, rtol=0, atol=0)


def test_openpose_colours_are_converted(sampler, inputs):
    swapped = {**inputs, "poses": inputs["poses"][..., [2, 1, 0]], "reference_pose": inputs["reference_pose"][..., [2, 1, 0]]}
    a = sampler.execute(**inputs)[0]["samples"]
    b = sampler.execute(**swapped, pose_colors="openpose")[0]["samples"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_grey_and_rgba_images_are_read_as_rgb(sampler, inputs):
    rgb = sampler.execute(**inputs)[0]["samples"]
    alpha = torch.rand(1, 80, 60, 1)
    rgba = sampler.execute(**{**inputs, "reference_image": torch.cat([inputs["reference_image"], alpha], -1)})
    torch.testing.assert_close(rgba[0]["samples"], rgb, rtol=0, atol=0)  # alpha dropped, like LoadImage
    grey = inputs["poses"][..., :1]
    a = sampler.execute(**{**inputs, "poses": grey})[0]["samples"]
    b = sampler.execute(**{**inputs, "poses": grey.expand(-1, -1, -1, 3)})[0]["samples"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_noise_prior_input_is_used(sampler, inputs):
    a = sampler.execute(**{**inputs, "noise_prior": 0})[0]["samples"]
    b = sampler.execute(**inputs)[0]["samples"]
    assert a.shape == b.shape and torch.isfinite(a).all() and not torch.allclose(a, b)


def test_size_not_a_multiple_of_64_is_refused_naming_the_input(sampler, inputs):
    """A linked size (not seen by validate_inputs) is checked before anything runs; nothing is rounded silently."""
    clip = FakeClipVision()
    with pytest.raises(ValueError, match=r"^width = 100 is not a multiple of 64 .*use 64 or 128\. "
                                         r"height = 200 is not a multiple of 64 .*use 192 or 256\.$"):
        sampler.execute(**{**inputs, "clip_vision": clip, "width": 100, "height": 200})
    assert clip.seen_images == []


def test_landscape_and_portrait(sampler, inputs):
    assert sampler.execute(**{**inputs, "width": 128, "height": 64})[0]["samples"].shape[-2:] == (8, 16)
    assert sampler.execute(**{**inputs, "width": 64, "height": 128})[0]["samples"].shape[-2:] == (16, 8)


def test_validate_inputs(sampler):
    assert sampler.validate_inputs(width=512, height=768, pose_colors="openpose") is True
    assert sampler.validate_inputs(width=None, height=None, pose_colors=None) is True  # linked
    assert sampler.validate_inputs() is True  # linked inputs are left out altogether
    # every message starts with the input it is about (ComfyUI shows it under each input validate_inputs takes)
    assert sampler.validate_inputs(width=32).startswith("width = 32 is too small")
    assert sampler.validate_inputs(height=700).startswith("height = 700 is not a multiple of 64")
    assert sampler.validate_inputs(width=8192).startswith("width = 8192 is above the maximum")
    assert sampler.validate_inputs(pose_colors="rainbow") == "pose_colors = 'rainbow' is not one of unianimate, openpose."
    # the inputs ComfyUI range-checks itself (steps, max_frames, ...) are not taken: their errors show only there
    import inspect
    assert list(inspect.signature(sampler.validate_inputs).parameters) == ["width", "height", "pose_colors"]


def test_old_colour_labels_of_saved_workflows_still_work(sampler, inputs):
    """Workflows saved before the combos had short keys store the display labels; they validate and run."""
    old = "OpenPose (other packs, e.g. controlnet_aux)"
    assert sampler.validate_inputs(width=64, height=64, pose_colors=old) is True
    a = sampler.execute(**{**inputs, "pose_colors": "openpose"})[0]["samples"]
    b = sampler.execute(**{**inputs, "pose_colors": old})[0]["samples"]
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("change, message", [
    ({"vae": FakeVAE(latent_channels=16)}, "not a Stable Diffusion 1.x/2.x image VAE"),
    ({"vae": FakeVAE(latent_dim=3)}, "not a Stable Diffusion 1.x/2.x image VAE"),
    ({"clip_vision": FakeClipVision(projection_dim=768)}, "ViT-L"),
    ({"reference_image": images(2, 64, 64, seed=1)}, "reference_image has 2 images"),
    ({"reference_pose": images(3, 64, 64, seed=1)}, "reference_pose has 3 images"),
    ({"poses": images(0, 64, 64, seed=1)}, "poses is an empty IMAGE batch"),
    ({"poses": []}, "pose sequence is empty"),
    ({"reference_image": torch.rand(1, 64, 64)}, "reference_image got .* MASK.*Convert Mask to Image"),
    ({"poses": torch.rand(3, 64, 64)}, "poses got .* MASK"),
    ({"reference_image": images(1, 64, 64, seed=1)[..., :2]}, r"shape \(1, 64, 64, 2\)"),
    ({"condition_mode": "everything"}, "condition_mode"),
    ({"pose_colors": "rainbow"}, "pose_colors must be one of unianimate, openpose"),
    ({"max_frames": -1}, "max_frames must be 0"),
    ({"model": "not a model"}, "Load UniAnimate Model"),
])
def test_wrong_inputs_get_actionable_errors(sampler, inputs, change, message):
    with pytest.raises(ValueError, match=message):
        sampler.execute(**{**inputs, **change})


def test_bad_sampling_options_stop_before_the_encoders_run(sampler, inputs):
    clip, vae = FakeClipVision(), FakeVAE()
    with pytest.raises(ValueError, match="guide_scale"):
        sampler.execute(**{**inputs, "clip_vision": clip, "vae": vae, "guidance": float("nan")})
    assert clip.seen_images == [] and vae.encode_calls == []


def test_out_of_memory_becomes_comfys_oom_with_advice(host, sampler, inputs, monkeypatch):
    unet = inputs["model"].unet

    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(unet, "forward", boom)
    with pytest.raises(host.fake.model_management.OOM_EXCEPTION, match="max_frames.*context_size"):
        sampler.execute(**inputs)


def test_guidance_passes_run_one_after_the_other_when_memory_is_short(host, sampler, inputs, monkeypatch, caplog):
    batched = sampler.execute(**inputs)[0]["samples"]
    calls = []
    unet = inputs["model"].unet
    original = unet.forward

    def counting(x, t, **kw):
        calls.append(x.shape[0])
        return original(x, t, **kw)

    monkeypatch.setattr(unet, "forward", counting)
    monkeypatch.setattr(host.pack.nodes.comfy_bridge, "room_for", lambda device, memory: False)
    with caplog.at_level(logging.INFO, logger="UniAnimate"):
        sequential = sampler.execute(**inputs)[0]["samples"]
    assert set(calls) == {1} and len(calls) == 2 * 2  # two passes of batch 1 per step, 2 steps
    assert "one after the other" in caplog.text
    torch.testing.assert_close(sequential, batched, rtol=1e-4, atol=1e-4)


# ---------------------------------------------------------------------------------- LATENT in
def record_timesteps(monkeypatch, unet):
    seen = []
    original = unet.forward

    def recording(x, t, **kw):
        seen.append(int(t.reshape(-1)[0]))
        return original(x, t, **kw)

    monkeypatch.setattr(unet, "forward", recording)
    return seen


def test_refining_a_latent_runs_the_lower_part_of_the_schedule(sampler, inputs, monkeypatch):
    """denoise 0.5 with 2 steps: ComfyUI's convention is the last 2 timesteps of a 4-step schedule; the
    official 4-step list is 1 + (0, 250, 500, 750) -> its last two are 251 and 1."""
    first = sampler.execute(**inputs)[0]["samples"]
    seen = record_timesteps(monkeypatch, inputs["model"].unet)
    refined = sampler.execute(**inputs, latent={"samples": first}, denoise=0.5)[0]["samples"]
    assert sorted(set(seen), reverse=True) == [251, 1]
    assert refined.shape == first.shape and torch.isfinite(refined).all()


def test_low_denoise_keeps_the_latent_high_denoise_replaces_it(sampler, inputs):
    """At t = 11 (denoise 0.02) the noised latent is mostly signal (noise std ~0.1 against a signal of
    ~0.7 in model space here), so the result stays near the input; at denoise 1.0 the start is almost
    pure noise and the result is far from it (measured: 0.19 vs 1.6 mean relative distance)."""
    g = torch.Generator().manual_seed(0)
    given = torch.randn(3, 4, H // 8, W // 8, generator=g) * 4
    kept = sampler.execute(**inputs, latent={"samples": given}, denoise=0.02)[0]["samples"]
    redone = sampler.execute(**inputs, latent={"samples": given}, denoise=1.0)[0]["samples"]
    near = float((kept - given).abs().mean() / given.abs().mean())
    far = float((redone - given).abs().mean() / given.abs().mean())
    assert near < far / 4 and far > 0.5, (near, far)


def test_refining_is_seeded_and_differs_from_a_fresh_run(sampler, inputs):
    first = sampler.execute(**inputs)[0]["samples"]
    a = sampler.execute(**inputs, latent={"samples": first}, denoise=0.6)[0]["samples"]
    b = sampler.execute(**inputs, latent={"samples": first}, denoise=0.6)[0]["samples"]
    assert torch.equal(a, b) and not torch.allclose(a, first)


@pytest.mark.parametrize("latent, denoise, message", [
    ({"samples": torch.zeros(2, 4, 8, 8)}, 1.0, "latent has 2 frames but this run generates 3"),
    ({"samples": torch.zeros(3, 4, 8, 16)}, 1.0, r"latent is 16x8 latent pixels \(128x64 pixels\) but width x height is 64x64"),
    ({"samples": torch.zeros(1, 16, 3, 8, 8)}, 1.0, "video latents .* VAE Encode"),
    ({"samples": torch.zeros(3, 16, 8, 8)}, 1.0, r"\(frames, 4, height/8, width/8\)"),
    ({"samples": torch.zeros(3, 4, 8, 8), "noise_mask": torch.ones(3, 1, 64, 64)}, 1.0, "noise mask"),
    ({"samples": torch.full((3, 4, 8, 8), float("nan"))}, 1.0, "NaN"),
    ("not a latent", 1.0, "must be a ComfyUI LATENT"),
    (None, 0.5, "denoise 0.5 needs a latent"),
    ({"samples": torch.zeros(3, 4, 8, 8)}, 0.0, "denoise must be in 0.01..1.0"),
])
def test_a_latent_that_does_not_fit_is_refused_before_the_encoders_run(sampler, inputs, latent, denoise, message):
    clip = FakeClipVision()
    with pytest.raises(ValueError, match=message):
        sampler.execute(**{**inputs, "clip_vision": clip}, latent=latent, denoise=denoise)
    assert clip.seen_images == []


def test_speed_options_node_drives_the_core_solver(host, sampler, inputs):
    speed = host.node_classes()["UniAnimateSpeedOptions"]
    opts = speed.execute(solver="dpmpp_2m", timestep_spacing="logsnr", guidance_end=0.5)[0]
    calls = []
    unet = inputs["model"].unet
    original = unet.forward

    def counting(x, t, **kw):
        calls.append((int(t[0]), x.shape[0]))
        return original(x, t, **kw)

    unet.forward = counting
    try:
        out = sampler.execute(**{**inputs, "steps": 4, "speed_options": opts})[0]["samples"]
    finally:
        del unet.forward
    # logsnr, 4 steps from 999; guidance on steps 0 and 1 only (i / 4 < 0.5): cond + uncond there (the
    # counting wrapper hides cond_mask, so guidance runs as two calls), the conditional call alone after
    ts = [c[0] for c in calls]
    assert ts[0] == 999 and len(calls) == 6 and ts[0] == ts[1] and ts[2] == ts[3] and len(set(ts)) == 4
    # the same run through the core API with the same settings (independent of the node's plumbing
    # only in the options; the rest is covered by test_output_is_comfy_latent_and_matches_the_core_run)
    default = sampler.execute(**{**inputs, "steps": 4})[0]["samples"]
    unconnected = sampler.execute(**{**inputs, "steps": 4, "speed_options": None})[0]["samples"]
    assert torch.equal(default, unconnected) and not torch.allclose(out, default)
    assert torch.isfinite(out).all()


def test_speed_options_node_defaults_are_the_official_sampler(host, sampler, inputs):
    speed = host.node_classes()["UniAnimateSpeedOptions"]
    opts = speed.execute()[0]
    a = sampler.execute(**{**inputs, "speed_options": opts})[0]["samples"]
    b = sampler.execute(**inputs)[0]["samples"]
    assert torch.equal(a, b)
    with pytest.raises(ValueError, match="eta = 0|Unknown solver"):
        speed.execute(solver="nope")
    with pytest.raises(ValueError, match="Speed Options"):
        sampler.execute(**{**inputs, "speed_options": {"steps": 3}})


def test_speed_options_node_deep_cache_inputs_come_last_optional_and_off(host):
    speed = host.node_classes()["UniAnimateSpeedOptions"]
    schema = speed.GET_SCHEMA()
    ids = [inp.id for inp in schema.inputs]
    assert ids == ["solver", "timestep_spacing", "guidance_end", "deep_cache_interval", "deep_cache_depth"]
    new = {inp.id: inp for inp in schema.inputs[3:]}
    assert all(inp.optional for inp in new.values())  # a saved workflow without them still loads
    assert new["deep_cache_interval"].default == 1 and new["deep_cache_depth"].default == 2
    assert "docs/performance.md" in new["deep_cache_interval"].tooltip
    # an older workflow (three values) and an API prompt that leaves the optional inputs out
    assert speed.execute("ddim", "official", 1.0)[0] == speed.execute()[0] == \
        speed.execute(deep_cache_interval=None, deep_cache_depth=None)[0]
    assert speed.execute()[0]["deep_cache_interval"] == 1


def test_speed_options_node_deep_cache_reuses_deep_features_in_the_sampler(host, sampler, inputs):
    speed = host.node_classes()["UniAnimateSpeedOptions"]
    opts = speed.execute(deep_cache_interval=2, deep_cache_depth=3)[0]
    unet = inputs["model"].unet
    original = unet.forward
    calls = []

    def spying(x, t, transformer_options=None, **kw):
        slot = (transformer_options or {}).get("deep_cache")
        out = original(x, t, transformer_options=transformer_options, **kw)
        calls.append(None if slot is None else (slot.depth, slot.stored is None))
        return out

    unet.forward = spying
    try:
        out = sampler.execute(**{**inputs, "steps": 4, "speed_options": opts})[0]["samples"]
        plain = sampler.execute(**{**inputs, "steps": 4})[0]["samples"]
    finally:
        del unet.forward
    # 4 requested steps run the official list of 4 timesteps; the spy hides cond_mask, so guidance runs as
    # two calls per step: full, full, reuse, reuse, ...
    assert calls[:8] == [(3, False), (3, False), (3, True), (3, True)] * 2
    assert calls[8:] == [None] * 8  # unconnected: the official sampler, no cache handed to the model
    assert torch.isfinite(out).all() and not torch.allclose(out, plain)


@pytest.mark.parametrize("kwargs, message", [
    (dict(deep_cache_interval=0), "deep_cache_interval"),
    (dict(deep_cache_interval=2, deep_cache_depth=0), "deep_cache_depth"),
])
def test_speed_options_node_refuses_bad_deep_cache_values(host, kwargs, message):
    speed = host.node_classes()["UniAnimateSpeedOptions"]
    with pytest.raises(ValueError, match=message):
        speed.execute(**kwargs)


def test_a_deep_cache_depth_beyond_the_model_is_refused_by_the_sampler(host, sampler, inputs):
    opts = {"deep_cache_interval": 2, "deep_cache_depth": 13}  # as a hand-edited API prompt could pass it
    with pytest.raises(ValueError, match=r"deep_cache_depth 13 is more than this model's 12 input blocks"):
        sampler.execute(**{**inputs, "speed_options": opts})
