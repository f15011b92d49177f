"""Runtime behaviour of the samplers: bounded model inputs for long clips, cancellation, progress,
determinism, guidance modes, mixed precision and input errors."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unianimate_core.diffusion import (
    Conditions, NoiseOptions, SamplerOptions, SamplingCancelled, SamplingError, iter_sample_video, prepare_noise,
    sample_video,
)
from unianimate_core.diffusion.sliding import count_work_units, sample_long_sliding
from unianimate_core.diffusion.windows import SlidingWindowOptions


def conditions(f: int, b: int = 1) -> Conditions:
    dwpose = torch.arange(f + 1, dtype=torch.uint8).view(1, 1, -1, 1, 1).expand(b, 3, -1, 16, 16).contiguous()
    return Conditions(image=torch.ones(b, 1, 1024), dwpose=dwpose, randomref=torch.full((b, 4, 1, 2, 2), 0.2))


class FakeUNet:
    """Honours ``cond_mask`` like UNetSD_UniAnimate: rows with False give the unconditional result."""

    def __init__(self, batched: bool = True, out_dtype: torch.dtype | None = None) -> None:
        self.supports_cond_mask = batched
        self.out_dtype = out_dtype
        self.calls = 0
        self.max_batch = 0
        self.max_frames = 0
        self.max_pose_frames = 0

    def __call__(self, x, t, image=None, local_image=None, dwpose=None, randomref=None, cond_mask=None):
        self.calls += 1
        self.max_batch = max(self.max_batch, x.shape[0])
        self.max_frames = max(self.max_frames, x.shape[2])
        cond_term = torch.zeros_like(x)
        if dwpose is not None:
            self.max_pose_frames = max(self.max_pose_frames, dwpose.shape[2])
            assert dwpose.shape[2] == x.shape[2] + 1
            pose = dwpose[:, :1, 1:, :2, :2].float().expand(-1, 4, -1, -1, -1)  # (B, 4, F, 2, 2)
            cond_term = 0.01 * pose + randomref[:, :, :1]
            if cond_mask is not None:
                cond_term = cond_term * cond_mask.view(-1, 1, 1, 1, 1)
        out = 0.4 * x + cond_term + t.view(-1, 1, 1, 1, 1).float() * 1e-4
        return out.to(self.out_dtype) if self.out_dtype is not None else out


def test_long_run_only_ever_gives_one_window_group_to_the_model() -> None:
    f, size, cbs = 200, 8, 2
    windows = SlidingWindowOptions(context_size=size, context_overlap=2, context_batch_size=cbs)
    options = SamplerOptions(steps=3, cfg_mode="batched")
    model = FakeUNet()
    out = sample_long_sliding(model, torch.randn(1, 4, f, 2, 2), conditions(f), options, windows)
    assert out.shape == (1, 4, f, 2, 2) and bool(torch.isfinite(out).all())
    assert model.max_frames == size and model.max_pose_frames == size + 1
    assert model.max_batch == 2 * cbs  # cond + uncond of one window group
    assert model.calls == count_work_units(f, options, windows)

    seq = FakeUNet(batched=False)
    out_seq = sample_long_sliding(seq, torch.randn(1, 4, f, 2, 2, generator=torch.Generator().manual_seed(0)),
                                  conditions(f), SamplerOptions(steps=3, cfg_mode="sequential"), windows)
    assert seq.max_batch == cbs and seq.calls == 2 * count_work_units(f, options, windows)
    assert bool(torch.isfinite(out_seq).all())


def test_batched_and_sequential_guidance_agree() -> None:
    """Batched CFG (cond and uncond rows in one call, cond_mask) against the official sequential pattern
    (pinned to the official runs by the replay tests). FakeUNet is element-wise per row, so the two can only
    differ by float32 rounding of the 4-step chain (|x| < 4, ~10 operations per step: < 4 x 10 x 4 x 2^-24
    = 1e-5); guidance itself moves the result by far more (checked against guide_scale 1)."""
    noise = torch.randn(2, 4, 12, 2, 2, generator=torch.Generator().manual_seed(3))
    cond = conditions(12, b=2)
    windows = SlidingWindowOptions(5, 2, context_batch_size=2)
    runs = {}
    for mode in ("sequential", "batched"):
        for name, run in (("long", lambda m, o: sample_long_sliding(m, noise, cond, o, windows)),
                          ("short", lambda m, o: sample_video(m, noise, cond, o))):
            model = FakeUNet(batched=mode == "batched")
            runs[name, mode] = (run(model, SamplerOptions(steps=4, cfg_mode=mode)), model)
    for name in ("long", "short"):
        (seq, seq_model), (bat, bat_model) = runs[name, "sequential"], runs[name, "batched"]
        assert seq_model.calls == 2 * bat_model.calls and bat_model.max_batch == 2 * seq_model.max_batch
        assert float(seq.abs().max()) < 4
        torch.testing.assert_close(bat, seq, atol=1e-5, rtol=0)
    unguided = sample_video(FakeUNet(batched=False), noise, cond, SamplerOptions(steps=4, guide_scale=1.0))
    assert (runs["short", "sequential"][0] - unguided).abs().max() > 1e-2


def test_guide_scale_one_skips_the_unconditional_call() -> None:
    model = FakeUNet(batched=False)
    sample_video(model, torch.randn(1, 4, 3, 2, 2), conditions(3), SamplerOptions(steps=5, guide_scale=1.0))
    assert model.calls == 5


def test_auto_mode_batches_only_when_supported() -> None:
    a, b = FakeUNet(batched=True), FakeUNet(batched=False)
    for m in (a, b):
        sample_video(m, torch.randn(1, 4, 3, 2, 2), conditions(3), SamplerOptions(steps=5))
    assert (a.calls, a.max_batch) == (5, 2) and (b.calls, b.max_batch) == (10, 1)
    with pytest.raises(SamplingError, match="cond_mask"):
        sample_video(b, torch.randn(1, 4, 3, 2, 2), conditions(3), SamplerOptions(steps=5, cfg_mode="batched"))


class Stop(Exception):
    pass


@pytest.mark.parametrize("how", ["should_cancel", "raising_progress"])
@pytest.mark.parametrize("mode", ["short", "sliding"])
def test_cancellation_stops_cleanly(how: str, mode: str) -> None:
    f = 20
    noise = torch.randn(1, 4, f, 2, 2, generator=torch.Generator().manual_seed(0))
    noise_before, cond = noise.clone(), conditions(f)
    dwpose_before = cond.dwpose.clone()
    windows = SlidingWindowOptions(context_size=8, context_overlap=2)

    def run(model, **hooks):
        options = SamplerOptions(steps=5, cfg_mode="sequential")
        if mode == "short":
            return sample_video(model, noise, cond, options, **hooks)
        return sample_long_sliding(model, noise, cond, options, windows, **hooks)

    uninterrupted = run(FakeUNet(batched=False))
    model = FakeUNet(batched=False)
    if how == "should_cancel":
        hooks = dict(should_cancel=lambda: model.calls >= 4)
        expected = SamplingCancelled
    else:
        def progress(done, total, preview):
            if done == 2:
                raise Stop()
        hooks = dict(progress=progress)
        expected = Stop
    with pytest.raises(expected):
        run(model, **hooks)
    assert model.calls == 4  # stopped between model calls, never mid-call
    assert torch.equal(noise, noise_before) and torch.equal(cond.dwpose, dwpose_before)
    # no hidden state: the same run after the interruption equals the one made before it
    assert torch.equal(run(FakeUNet(batched=False)), uninterrupted)


def test_progress_reports_every_window_group_and_previews_at_step_ends() -> None:
    f = 20
    windows = SlidingWindowOptions(context_size=8, context_overlap=2)
    options = SamplerOptions(steps=5)
    seen = []
    sample_long_sliding(FakeUNet(), torch.randn(1, 4, f, 2, 2), conditions(f), options, windows,
                        progress=lambda d, t, p: seen.append((d, t, None if p is None else tuple(p.shape))))
    total = count_work_units(f, options, windows)
    groups = len(windows.groups(f))
    assert [s[0] for s in seen] == list(range(1, total + 1)) and {s[1] for s in seen} == {total}
    previews = [s for s in seen if s[2] is not None]
    assert [s[0] for s in previews] == [groups * (i + 1) for i in range(total // groups)]
    assert previews[0][2] == (1, 4, f, 2, 2)


def test_same_seed_same_latent_bitwise_on_cpu() -> None:
    def run(seed: int, eta: float) -> torch.Tensor:
        gen = torch.Generator().manual_seed(seed)
        cond = conditions(4)
        noise = prepare_noise((1, 4, 4, 2, 2), gen, NoiseOptions.short(), prior_latent=cond.randomref)
        return sample_video(FakeUNet(), noise, cond, SamplerOptions(steps=6, eta=eta), generator=gen)

    for eta in (0.0, 0.7):
        assert torch.equal(run(11, eta), run(11, eta))
        assert not torch.allclose(run(11, eta), run(12, eta))
    assert not torch.allclose(run(11, 0.0), run(11, 0.7))


class RecordingHalfUNet(FakeUNet):
    """Records the dtypes it is given; computes in fp32 and returns fp16 (like an fp16 UNet's output)."""

    def __init__(self, cast_input: bool) -> None:
        super().__init__(batched=False, out_dtype=torch.float16)
        self.cast_input = cast_input
        self.dtypes: set[tuple[torch.dtype, ...]] = set()

    def __call__(self, x, t, image=None, local_image=None, dwpose=None, randomref=None, cond_mask=None):
        self.dtypes.add(tuple(v.dtype for v in (x, image, dwpose, randomref) if v is not None))
        if self.cast_input:  # what the sampler hands over with model_dtype=float16
            x = x.half()
            image, dwpose, randomref = (None if v is None else v.half() for v in (image, dwpose, randomref))
        return super().__call__(x.float(), t, image, local_image, dwpose, randomref)


def test_half_precision_model_gets_half_inputs_and_the_update_stays_fp32() -> None:
    """With model_dtype=float16 the model sees fp16 x and conditions, and the DDIM update runs in fp32:
    the result is bit-identical to an fp32 run whose model rounds its inputs and output through fp16
    the same way (an fp16 update would differ). guide_scale 1 keeps guidance out of the comparison."""
    noise = torch.randn(1, 4, 3, 2, 2, generator=torch.Generator().manual_seed(0))
    half_model = RecordingHalfUNet(cast_input=False)
    half_steps = list(iter_sample_video(half_model, noise, conditions(3),
                                        SamplerOptions(steps=5, guide_scale=1.0, model_dtype=torch.float16)))
    assert half_model.dtypes == {(torch.float16,) * 4}
    assert all(s.x.dtype == torch.float32 and s.x0.dtype == torch.float32 for s in half_steps)
    emulated = RecordingHalfUNet(cast_input=True)
    ref = sample_video(emulated, noise, conditions(3), SamplerOptions(steps=5, guide_scale=1.0))
    assert emulated.dtypes == {(torch.float32,) * 4}
    assert torch.equal(half_steps[-1].x, ref)
    # with guidance the combination runs in the model's output dtype (official); the result stays close
    guided = sample_video(FakeUNet(out_dtype=torch.float16), noise, conditions(3),
                          SamplerOptions(steps=5, model_dtype=torch.float16))
    full = sample_video(FakeUNet(), noise, conditions(3), SamplerOptions(steps=5))
    assert guided.dtype == torch.float32
    torch.testing.assert_close(guided, full, atol=2e-2, rtol=0)


@pytest.mark.parametrize("bad,match", [
    (dict(noise=torch.randn(1, 3, 4, 2, 2)), "starting latent"),
    (dict(noise=torch.full((1, 4, 4, 2, 2), float("nan"))), "NaN"),
    (dict(cond=conditions(5)), "dwpose"),
    (dict(cond=conditions(4).replace(image=torch.ones(1, 768))), "image"),
    (dict(cond=conditions(4).replace(randomref=torch.ones(1, 4, 1, 3, 3))), "randomref"),
    (dict(model=lambda x, t, **k: x[:, :, 1:]), "v-prediction"),
    (dict(model=lambda x, t, **k: x * float("nan")), "NaN"),
    (dict(noise=torch.randn(1, 4, 0, 2, 2), cond=conditions(0)), "empty"),  # 0 poses: no silent empty video
    (dict(noise=torch.randn(1, 4, 2, 0, 2), cond=Conditions()), "empty"),
    (dict(noise=None), "starting latent"),
    (dict(cond=None), "cond must be a Conditions"),
    (dict(cond=Conditions(image=np.zeros((1, 1, 1024)))), "torch.Tensor"),
    (dict(model="unet"), "callable"),
    (dict(options=SlidingWindowOptions()), "options must be a SamplerOptions"),
])
def test_bad_inputs_raise_clear_errors(bad: dict, match: str) -> None:
    args = dict(model=FakeUNet(), noise=torch.randn(1, 4, 4, 2, 2), cond=conditions(4), options=SamplerOptions(steps=3))
    args.update(bad)
    with pytest.raises(SamplingError, match=match):
        sample_video(args["model"], args["noise"], args["cond"], args["options"])


@pytest.mark.parametrize("bad,match", [
    (dict(windows=None), "windows must be a SlidingWindowOptions"),
    (dict(options=SlidingWindowOptions()), "options must be a SamplerOptions"),  # options in the wrong slot
    (dict(noise=torch.randn(1, 4, 0, 2, 2), cond=conditions(0)), "empty"),
])
def test_bad_sliding_inputs_raise_clear_errors(bad: dict, match: str) -> None:
    args = dict(noise=torch.randn(1, 4, 6, 2, 2), cond=conditions(6), options=SamplerOptions(steps=2),
                windows=SlidingWindowOptions(4, 1))
    args.update(bad)
    with pytest.raises(SamplingError, match=match):
        sample_long_sliding(FakeUNet(), args["noise"], args["cond"], args["options"], args["windows"])


@pytest.mark.parametrize("kwargs,match", [
    (dict(steps=0), "steps"), (dict(steps=True), "steps"), (dict(steps=30.0), "steps"),
    (dict(eta=-0.1), "eta"), (dict(eta=1.5), "eta"), (dict(eta=None), "eta"),
    (dict(cfg_mode="fast"), "cfg_mode"), (dict(timestep_mode="linear"), "timestep_mode"),
    (dict(guide_scale=float("nan")), "guide_scale"), (dict(guide_scale=None), "guide_scale"),
    (dict(guide_scale="2.5"), "guide_scale"), (dict(model_dtype=torch.int8), "model_dtype"),
    (dict(model_dtype="fp16"), "model_dtype"), (dict(device="gpu"), "not a torch device"),
    (dict(timesteps=(999.5, 500)), "integers"), (dict(timesteps=(1000, 3)), "0..999"),
])
def test_bad_sampler_options(kwargs: dict, match: str) -> None:
    with pytest.raises(SamplingError, match=match):
        SamplerOptions(**kwargs)


def test_numpy_integer_steps_are_accepted() -> None:
    assert torch.equal(SamplerOptions(steps=np.int64(25)).schedule_timesteps(),
                       SamplerOptions(steps=25).schedule_timesteps())


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a PyTorch without CUDA")
def test_unavailable_cuda_device_is_reported() -> None:
    with pytest.raises(SamplingError, match="no usable CUDA"):
        sample_video(FakeUNet(), torch.randn(1, 4, 2, 2, 2), conditions(2), SamplerOptions(steps=2, device="cuda"))


def test_explicit_timesteps_are_validated_and_used() -> None:
    ts = []
    sample_video(lambda x, t, **k: (ts.append(int(t[0])), 0.1 * x)[1], torch.randn(1, 4, 2, 2, 2), Conditions(),
                 SamplerOptions(timesteps=(999, 500, 3), guide_scale=1.0))
    assert ts == [999, 500, 3]
    with pytest.raises(SamplingError, match="decreasing"):
        SamplerOptions(timesteps=(10, 20))


@pytest.mark.parametrize("make,match", [
    (lambda: NoiseOptions(offset_strength=float("inf")), "offset_strength"),
    (lambda: NoiseOptions(prior_t=949.5), "prior_t"),
    (lambda: NoiseOptions(prior_t=1000), "prior_t"),
    (lambda: prepare_noise((1, 4, -2, 2, 2), None, NoiseOptions.pure()), "positive"),
    (lambda: prepare_noise((1, 4, 2, 2, 2), None, NoiseOptions.short(), prior_latent=torch.full((1, 4, 2, 2), float("nan"))),
     "NaN"),
    (lambda: prepare_noise((1, 4, 2, 2, 2), None, NoiseOptions.short(), prior_latent=np.zeros((1, 4, 2, 2))), "tensor"),
])
def test_bad_noise_inputs_raise_clear_errors(make, match: str) -> None:
    with pytest.raises(SamplingError, match=match):
        make()
