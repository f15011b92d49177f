"""UniAnimateLongVideoLoop on CPU with the tiny UNet: both strategies, whole-job progress, cancel."""
from __future__ import annotations

import pytest
import torch

from comfy_fake.models import FakeClipVision, FakeVAE
from node_helpers import images

W = H = 64



@pytest.fixture
def loop(host):
    return host.node_classes()["UniAnimateLongVideoLoop"]


@pytest.fixture
def inputs(model):
    return dict(model=model, vae=FakeVAE(), clip_vision=FakeClipVision(),
                reference_image=images(1, 72, 56, seed=1), poses=images(5, 72, 56, seed=2),
                reference_pose=images(1, 72, 56, seed=3), width=W, height=H, max_frames=0, frame_interval=1,
                steps=2, guidance=2.5, seed=3, noise_prior=939, condition_mode="standard",
                context_size=3, context_overlap=1, context_batch_size=1)


def record_progress(host):
    calls = []
    host.fake.utils.set_progress_bar_global_hook(lambda v, t, p, node_id=None: calls.append((v, t)))
    return calls


def test_sliding_windows_match_the_core_and_report_whole_job_progress(host, loop, inputs):
    calls = record_progress(host)
    samples = loop.execute(**inputs, strategy="sliding_windows")[0]["samples"]
    assert samples.shape == (5, 4, H // 8, W // 8) and torch.isfinite(samples).all()
    # windows of 3 with overlap 1 over 5 frames: [0,1,2], [2,3,4] -> 2 groups x 2 steps
    assert calls == [(1, 4), (2, 4), (3, 4), (4, 4)]

    core = host.pack.unianimate_core.diffusion
    prep = host.pack.nodes.conditioning.prepare(
        inputs["vae"], inputs["clip_vision"], inputs["reference_image"], inputs["poses"], inputs["reference_pose"],
        W, H, 64, "standard", "unianimate", 0, 1)
    g = torch.Generator().manual_seed(3)
    noise = core.prepare_noise(prep.latent_shape, g, core.NoiseOptions(0.1, 939, "prior_then_offset"),
                               prior_latent=prep.ref_latent)
    expected = core.sample_long_sliding(inputs["model"].unet, noise, prep.cond, core.SamplerOptions(steps=2),
                                        core.SlidingWindowOptions(3, 1), generator=g)
    torch.testing.assert_close(samples, expected[0].permute(1, 0, 2, 3) / 0.18215, rtol=1e-4, atol=1e-4)


def test_continuation_chains_segments_through_the_vae(host, loop, inputs):
    vae = FakeVAE()
    calls = record_progress(host)
    samples = loop.execute(**{**inputs, "vae": vae, "poses": images(7, 72, 56, seed=4)},
                           strategy="first_frame_continuation")[0]["samples"]
    # segments of 3: (0,1,2) (2,3,4) (4,5,6) -> 7 frames; two hand-overs decoded by ComfyUI's VAE
    assert samples.shape == (7, 4, H // 8, W // 8) and torch.isfinite(samples).all()
    assert vae.decode_calls == [(1, 4, H // 8, W // 8)] * 2
    assert calls[-1] == (6, 6) and [v for v, _ in calls] == list(range(1, 7))
    # the UNet is handed back to ComfyUI's memory manager after every VAE decode
    loads = host.fake.model_management.load_calls
    assert len(loads) == 3 and all(p == [inputs["model"].patcher] for p, _ in loads)


def cancel_at(host, value):
    mm = host.fake.model_management

    def hook(v, t, p, node_id=None):
        if v == value:
            mm.interrupt_current_processing(True)

    host.fake.utils.set_progress_bar_global_hook(hook)
    return mm


def test_cancelled_continuation_saves_finished_segments_and_stays_a_cancel(host, loop, inputs):
    """Cancel during segment 2: the interrupt reaches ComfyUI (the job is reported cancelled, nothing is
    cached, nothing downstream runs), and before that segment 1's frames are written to the output
    folder - their latent in Save Latent's format (exactly the uncancelled run's first frames) and
    their video decoded with the workflow's VAE."""
    from safetensors.torch import load_file

    from unianimate_core.pipeline.video import read_clip

    full = loop.execute(**inputs, strategy="first_frame_continuation")[0]["samples"]
    mm = cancel_at(host, 3)  # first step of the second segment
    with pytest.raises(mm.InterruptProcessingException):
        loop.execute(**inputs, strategy="first_frame_continuation")
    out = host.base / "output" / "UniAnimate"
    assert sorted(p.name for p in out.iterdir()) == ["cancelled_long_video_00001_.latent",
                                                     "cancelled_long_video_00001_.mp4"]
    saved = load_file(str(out / "cancelled_long_video_00001_.latent"))
    assert set(saved) == {"latent_tensor", "latent_format_version_0"}
    torch.testing.assert_close(saved["latent_tensor"], full[:3], rtol=0, atol=0)  # segment 0: frames 0-2
    clip = read_clip(out / "cancelled_long_video_00001_.mp4")
    assert len(clip.frames) == 3 and clip.frames[0].shape == (H, W, 3)
    # a second cancelled job gets the next number, never overwrites the first
    cancel_at(host, 3)
    with pytest.raises(mm.InterruptProcessingException):
        loop.execute(**inputs, strategy="first_frame_continuation")
    assert (out / "cancelled_long_video_00002_.latent").is_file()


def test_cancel_without_keeping(host, loop, inputs):
    mm = cancel_at(host, 3)
    with pytest.raises(mm.InterruptProcessingException):
        loop.execute(**inputs, strategy="first_frame_continuation", keep_finished_on_cancel=False)
    assert not (host.base / "output" / "UniAnimate").exists()


def test_cancelled_sliding_windows_is_a_plain_cancel(host, loop, inputs):
    mm = cancel_at(host, 1)
    with pytest.raises(mm.InterruptProcessingException):
        loop.execute(**inputs, strategy="sliding_windows")


def test_short_sequence_is_one_window(host, loop, inputs):
    samples = loop.execute(**{**inputs, "poses": images(2, 72, 56, seed=5), "context_size": 32},
                           strategy="sliding_windows")[0]["samples"]
    assert samples.shape[0] == 2


def test_validation(loop):
    assert loop.validate_inputs(context_size=32, context_overlap=8) is True
    assert loop.validate_inputs(context_size=8, context_overlap=8).startswith("context_overlap = 8 must be smaller")
    assert loop.validate_inputs(context_size=1).startswith("context_size = 1")
    assert loop.validate_inputs(width=96, context_size=1).startswith("width = 96 is not a multiple of 64")
    # a linked context_size is unknown at validation time: a large overlap is not rejected against a default
    assert loop.validate_inputs(context_overlap=40) is True
    with pytest.raises(ValueError, match="strategy"):
        loop.execute(model=None, vae=None, clip_vision=None, reference_image=None, poses=None, reference_pose=None,
                     strategy="zigzag")


@pytest.mark.parametrize("change, message", [
    ({"context_batch_size": 0, "strategy": "sliding_windows"}, "context_batch_size"),
    ({"colour_anchor": 2.0, "strategy": "first_frame_continuation"}, "colour_anchor"),
    ({"guidance": float("nan"), "strategy": "sliding_windows"}, "guide_scale"),
])
def test_bad_options_stop_before_the_encoders_run(loop, inputs, change, message):
    clip = FakeClipVision()
    with pytest.raises(ValueError, match=message):
        loop.execute(**{**inputs, "clip_vision": clip, **change})
    assert clip.seen_images == []  # CLIP vision costs ~20 s per image on a CPU: never wasted on a bad option


@pytest.mark.parametrize("strategy", ["sliding_windows", "first_frame_continuation"])
def test_long_video_refines_a_latent(loop, inputs, strategy):
    """Both strategies take a latent: low denoise keeps it, denoise 1 replaces it (see test_sampler)."""
    g = torch.Generator().manual_seed(1)
    given = torch.randn(5, 4, H // 8, W // 8, generator=g) * 4
    kept = loop.execute(**inputs, strategy=strategy, latent={"samples": given}, denoise=0.02)[0]["samples"]
    redone = loop.execute(**inputs, strategy=strategy, latent={"samples": given}, denoise=1.0)[0]["samples"]
    assert kept.shape == given.shape
    near = float((kept - given).abs().mean() / given.abs().mean())
    far = float((redone - given).abs().mean() / given.abs().mean())
    assert near < far / 4 and far > 0.5, (near, far)
    with pytest.raises(ValueError, match="latent has 4 frames but this run generates 5"):
        loop.execute(**inputs, strategy=strategy, latent={"samples": given[:4]})
