"""The MODEL output (UniAnimate as a ComfyUI BaseModel) and 'UniAnimate Conditioning', in the fake ComfyUI.

What ComfyUI's sampler does around a model call (extra_conds, per-call cond processing, batching the
conditional and unconditional passes, context-window slicing) is emulated here with the fake's
`comfy.conds`; every result is checked against the core UNet called directly on (B, 4, F, h, w)
videos with UniAnimate's own schedule - an independent route to the same numbers. The real ComfyUI
runs the same paths in tests/host/test_comfy_host_native.py.
"""
from __future__ import annotations

import math

import pytest
import torch

from comfy_fake.models import FakeClipVision, FakeVAE
from node_helpers import images
from test_sampler import pil_resize

F, W, H = 3, 64, 64
h, w = H // 8, W // 8


@pytest.fixture
def native(host, model):
    """(ModelPatcher of the MODEL output, the BaseModel, the UNet)."""
    return model.patcher, model.patcher.model, model.unet


def conditions(host, frames=F, mode="standard", seed=0):
    d = host.pack.unianimate_core.diffusion
    g = torch.Generator().manual_seed(seed)
    dwpose = (torch.rand(1, 3, frames + 1, H, W, generator=g) * 255).to(torch.uint8)
    ref = torch.randn(1, 4, h, w, generator=g) * 0.5
    cond = d.Conditions.build(mode, image=torch.randn(1, 1, 1024, generator=g), dwpose=dwpose, ref_latent=ref,
                              ref_pixels=torch.rand(1, 3, H, W, generator=g))
    pos, neg, latent = host.pack.nodes.native_nodes.build_conditioning(cond, ref, W, H, 949, 0.1)
    return cond, ref, pos, neg, latent


def model_conds(base, entry, frames, noise_frames=None):
    """ComfyUI's encode_model_conds for one CONDITIONING entry: extra_conds(**its dict, noise=...)."""
    noise = torch.zeros(noise_frames or frames, 4, h, w)
    return base.extra_conds(**entry[1], noise=noise, device=torch.device("cpu"))


def batch(conds_list, rows):
    """calc_cond_batch: process_cond(batch_size=rows) per pass, then concat along the batch."""
    processed = [{k: c.process_cond(batch_size=rows, area=None) for k, c in conds.items()} for conds in conds_list]
    out = {}
    for key in processed[0]:
        first, *others = [p[key] for p in processed]
        out[key] = first.concat(others)
    return out


def schedule(host):
    return host.pack.unianimate_core.diffusion.NoiseSchedule.unianimate()


def expected_x0(host, unet, x_vp, t, kwargs):
    """The core UNet on a video + UniAnimate's own x0 = sqrt(ab) x - sqrt(1 - ab) v (float64 schedule)."""
    ab = schedule(host).alphas_cumprod[t]
    with torch.no_grad():
        v = unet(x_vp, torch.tensor([t]), **kwargs)
    return math.sqrt(ab) * x_vp - math.sqrt(1 - ab) * v


def frames_in_batch(video):
    return video[0].permute(1, 0, 2, 3)


def test_model_output_is_a_v_prediction_zsnr_base_model(host, native):
    patcher, base, unet = native
    ms = base.model_sampling
    assert isinstance(ms, host.fake["comfy.model_sampling"].V_PREDICTION)
    # the sigmas are UniAnimate's schedule (float32), except ComfyUI's finite terminal value
    ab = schedule(host).alphas_cumprod
    ours = ((1 - ab[:-1]) / ab[:-1]).sqrt()
    torch.testing.assert_close(ms.sigmas[:-1].double(), ours, rtol=2 ** -23, atol=0)
    assert 4000 < float(ms.sigmas[-1]) < 5000 and base.latent_format.scale_factor == 0.18215
    assert base.get_dtype() == torch.float32 and base.diffusion_model is unet
    wrappers = patcher.wrappers["sampler_sample"]["unianimate_noise_prior"]
    assert len(wrappers) == 1 and patcher.clone().wrappers["sampler_sample"]["unianimate_noise_prior"] == wrappers


@pytest.mark.parametrize("mode", ["standard", "first_frame", "both"])
@pytest.mark.parametrize("order", [[0, 1], [1, 0]])
def test_cond_and_uncond_passes_in_one_batch_are_regrouped_into_videos(host, native, mode, order):
    patcher, base, unet = native
    cond, ref, pos, neg, latent = conditions(host, mode=mode)
    entries = {0: pos[0], 1: neg[0]}
    c = batch([model_conds(base, entries[o], F) for o in order], F)
    t = 700
    sigma = float(base.model_sampling.sigmas[t])
    g = torch.Generator().manual_seed(1)
    videos = [torch.randn(1, 4, F, h, w, generator=g) for _ in order]  # variance-preserving x_t per pass
    x = torch.cat([frames_in_batch(v) * math.sqrt(1 + sigma ** 2) for v in videos])  # k-diffusion units
    with torch.no_grad():
        out = base.apply_model(x, torch.full((2 * F,), sigma), transformer_options={"cond_or_uncond": list(order)}, **c)
    for i, o in enumerate(order):
        kwargs = cond.model_kwargs(F) if o == 0 else {}
        exp = expected_x0(host, unet, videos[i], t, kwargs)
        torch.testing.assert_close(out[i * F:(i + 1) * F], frames_in_batch(exp), rtol=1e-5, atol=1e-5)


def test_context_window_slices_the_poses_with_the_latent(host, native):
    """A window of frames [2, 3, 4] of a 6-frame video: the window's poses after the reference pose."""
    patcher, base, unet = native
    cond, ref, pos, neg, latent = conditions(host, frames=6)
    c = model_conds(base, pos[0], 6)
    window = [2, 3, 4]
    c = {k: (v._copy_with(v.cond[window]) if hasattr(v, "cond") and torch.is_tensor(v.cond) and v.cond.shape[0] == 6
             else v) for k, v in c.items()}  # what comfy.context_windows does to per-frame conds
    c = batch([c], len(window))
    t = 400
    sigma = float(base.model_sampling.sigmas[t])
    video = torch.randn(1, 4, 3, h, w, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        out = base.apply_model(frames_in_batch(video) * math.sqrt(1 + sigma ** 2), torch.full((3,), sigma),
                               transformer_options={"cond_or_uncond": [0]}, **c)
    dwpose = torch.cat([cond.dwpose[:, :, :1], cond.dwpose[:, :, 1:][:, :, window]], dim=2)
    sub = cond.replace(dwpose=dwpose)
    exp = expected_x0(host, unet, video, t, sub.model_kwargs(3))
    torch.testing.assert_close(out, frames_in_batch(exp), rtol=1e-5, atol=1e-5)


def test_diffusion_model_wrappers_and_transformer_options_reach_the_unet(host, native):
    patcher, base, unet = native
    cond, ref, pos, neg, latent = conditions(host)
    c = batch([model_conds(base, pos[0], F), model_conds(base, neg[0], F)], F)
    seen = {}

    def wrapper(executor, x, t, context, transformer_options, **kwargs):
        seen["x"] = tuple(x.shape)
        return executor(x, t, context, transformer_options, **kwargs)

    calls = []
    to = {"cond_or_uncond": [0, 1], "wrappers": {"diffusion_model": {"test": [wrapper]}},
          "patches": {"input_block_patch": [lambda x, opts: calls.append(opts["block"]) or x]}}
    sigma = float(base.model_sampling.sigmas[500])
    with torch.no_grad():
        base.apply_model(torch.randn(2 * F, 4, h, w), torch.full((2 * F,), sigma), transformer_options=to, **c)
    assert seen["x"] == (2 * F, 4, h, w)  # the DIFFUSION_MODEL wrapper sees ComfyUI's frames-in-batch layout
    assert calls == [("input", i) for i in range(len(unet.input_blocks))]
    assert to["original_shape"] == [2 * (F + 1), 4 + unet.config.concat_dim, h, w]


def test_mismatched_latent_and_bad_conditioning_get_clear_errors(host, native):
    patcher, base, unet = native
    InputError = host.pack.unianimate_core.errors.InputError
    cond, ref, pos, neg, latent = conditions(host)
    with pytest.raises(InputError, match="LATENT has 5 frames but UniAnimate Conditioning prepared 3 poses"):
        model_conds(base, pos[0], F, noise_frames=5)
    with pytest.raises(InputError, match=r"LATENT is 128x64 pixels but UniAnimate Conditioning prepared 64x64"):
        base.extra_conds(**pos[0][1], noise=torch.zeros(F, 4, 8, 16))
    with pytest.raises(InputError, match="cannot be limited to an area"):
        model_conds(base, pos[0], F)["ua_poses"].process_cond(batch_size=F, area=[4, 4, 0, 0])
    text_only = base.extra_conds(noise=torch.zeros(F, 4, h, w))  # e.g. a CLIP Text Encode output as positive
    c = batch([text_only], F)
    with pytest.raises(InputError, match="positive conditioning has no UniAnimate conditions"):
        base.apply_model(torch.randn(F, 4, h, w), torch.full((F,), 10.0),
                         transformer_options={"cond_or_uncond": [0]}, **c)
    with pytest.raises(InputError, match="ControlNet"):
        base.apply_model(torch.randn(F, 4, h, w), torch.full((F,), 10.0), control=object(),
                         transformer_options={"cond_or_uncond": [0]}, **c)
    with pytest.raises(InputError, match="whole videos"):
        base.apply_model(torch.randn(F, 4, h, w), torch.full((F,), 10.0),
                         transformer_options={"cond_or_uncond": [0, 1]}, **batch([model_conds(base, pos[0], F)], F))


def test_a_text_only_negative_is_the_unconditional_pass(host, native):
    patcher, base, unet = native
    c = batch([base.extra_conds(noise=torch.zeros(F, 4, h, w))], F)
    t = 300
    sigma = float(base.model_sampling.sigmas[t])
    video = torch.randn(1, 4, F, h, w, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = base.apply_model(frames_in_batch(video) * math.sqrt(1 + sigma ** 2), torch.full((F,), sigma),
                               transformer_options={"cond_or_uncond": [1]}, **c)
    torch.testing.assert_close(out, frames_in_batch(expected_x0(host, unet, video, t, {})), rtol=1e-5, atol=1e-5)


class Guider:
    """What the SAMPLER_SAMPLE wrapper reads from ComfyUI's CFGGuider: processed conds and the inner model."""

    def __init__(self, base, pos, neg):
        self.inner_model = base
        self.conds = {"positive": [dict(pos[0][1])], "negative": [dict(neg[0][1])]}


@pytest.mark.parametrize("first_t", [999, 991])
def test_noise_prior_wrapper_gives_the_official_start(host, native, first_t):
    """After ComfyUI's noise_scaling the sampler starts exactly at UniAnimate's x_t (offset, then prior at 949)."""
    patcher, base, unet = native
    nm = host.pack.nodes.native_model
    d = host.pack.unianimate_core.diffusion
    cond, ref, pos, neg, latent = conditions(host)
    ms = base.model_sampling
    sigmas = torch.stack([ms.sigmas[first_t], ms.sigmas[500], torch.tensor(0.0)])
    noise = torch.randn(F, 4, h, w, generator=torch.Generator().manual_seed(4))
    got = {}

    def sampler(guider, sigmas_, extra_args, callback, noise_, latent_image, denoise_mask, disable_pbar):
        got["noise"] = noise_
        return noise_

    wrappers = patcher.wrappers["sampler_sample"]["unianimate_noise_prior"]
    executor = host.fake["comfy.patcher_extension"].WrapperExecutor.new_class_executor(sampler, None, wrappers)
    executor.execute(Guider(base, pos, neg), sigmas, {"seed": 9}, None, noise, torch.zeros_like(noise), None, True)
    max_denoise = first_t == 999
    start = ms.noise_scaling(sigmas[:1], got["noise"], torch.zeros_like(noise), max_denoise)
    x_vp = start / math.sqrt(1 + float(sigmas[0]) ** 2)
    # independent: the core's noise functions on the same main noise and the seeded offset noise
    offset = torch.randn((1, 4, F, 1, 1), generator=torch.Generator().manual_seed(9 + nm.OFFSET_SEED_SALT))
    main = noise.permute(1, 0, 2, 3)[None]
    ab = schedule(host).alphas_cumprod[949]
    expected = math.sqrt(ab) * ref[:, :, None] + math.sqrt(1 - ab) * (main + 0.1 * offset)
    torch.testing.assert_close(x_vp, frames_in_batch(expected), rtol=1e-5, atol=1e-5)
    assert d.NoiseOptions.short() == pos[0][1]["unianimate"].video.noise


def test_noise_prior_wrapper_leaves_refines_and_ready_starts_alone(host, native):
    patcher, base, unet = native
    cond, ref, pos, neg, latent = conditions(host)
    sigmas = torch.stack([base.model_sampling.sigmas[991], torch.tensor(0.0)])
    wrappers = patcher.wrappers["sampler_sample"]["unianimate_noise_prior"]
    executor_cls = host.fake["comfy.patcher_extension"].WrapperExecutor
    noise = torch.randn(F, 4, h, w)
    for latent_image, n in ((torch.ones(F, 4, h, w), noise), (torch.zeros(F, 4, h, w), torch.zeros_like(noise))):
        got = executor_cls.new_class_executor(lambda *a: a[4], None, wrappers).execute(
            Guider(base, pos, neg), sigmas, {"seed": 1}, None, n, latent_image, None, True)
        assert got is n


def test_conditioning_node_outputs(host, model):
    node = host.node_classes()["UniAnimateConditioning"]
    poses, ref_pose = images(4, 70, 50, seed=2), images(1, 70, 50, seed=3)
    out = node.execute(vae=FakeVAE(), clip_vision=FakeClipVision(), reference_image=images(1, 80, 60, seed=1),
                       poses=poses, reference_pose=ref_pose, width=W, height=H,
                       max_frames=0, frame_interval=2, condition_mode="first_frame", noise_prior=0, offset_noise=0.0)
    positive, negative, latent = out
    assert torch.equal(latent["samples"], torch.zeros(2, 4, h, w))  # poses 0 and 2
    p, n = positive[0][1]["unianimate"], negative[0][1]["unianimate"]
    assert positive[0][0] is None and p.conditional and not n.conditional and p.video is n.video
    assert p.poses.shape == (2, 3, H, W) and p.poses.dtype == torch.uint8 and p.poses is n.poses
    assert p.video.randomref is None and p.video.local_image.shape == (1, 3, 1, H, W)
    assert p.video.noise.prior_t is None and p.video.noise.offset_strength == 0.0
    # the selected poses (0 and 2), squash-resized as the official loader does (PIL bilinear, 8 bit)
    for i, src in enumerate((0, 2)):
        expected = torch.from_numpy(pil_resize(poses[src], (W, H))).permute(2, 0, 1)
        assert torch.equal(p.poses[i], expected)
    assert torch.equal(p.video.ref_pose[0, :, 0], torch.from_numpy(pil_resize(ref_pose[0], (W, H))).permute(2, 0, 1))
    assert node.validate_inputs(width=32, height=64) is not True
