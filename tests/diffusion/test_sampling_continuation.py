"""Iterative first-frame continuation: there is no official golden, so these tests prove the
mechanism — conditions handed over, pose indices continuous, no duplicate frames, determinism,
flat memory (bounded model inputs), incremental results and clean cancellation."""
from __future__ import annotations

import pytest
import torch

from unianimate_core.diffusion import Conditions, NoiseOptions, SamplerOptions, SamplingCancelled, SamplingError
from unianimate_core.diffusion.continuation import (
    ContinuationOptions, anchor_colours, iter_sample_long_continuation, plan_segments, sample_long_continuation,
)

B, H, W = 1, 16, 16  # latent 2x2


def encoded_conditions(num_frames: int) -> Conditions:
    """dwpose frame j has every pixel = j (uint8), so the model can read back which poses it got."""
    dwpose = torch.arange(num_frames + 1, dtype=torch.uint8).view(1, 1, -1, 1, 1).expand(B, 3, -1, H, W).contiguous()
    ref_latent = torch.full((B, 4, 1, H // 8, W // 8), 0.3)
    return Conditions(image=torch.ones(B, 1, 1024), dwpose=dwpose, randomref=ref_latent)


class RecordingModel:
    """Fake UNet: v depends on x and on the conditions; records what every call received."""

    def __init__(self) -> None:
        self.calls: list[dict] = []

    def __call__(self, x, t, image=None, local_image=None, dwpose=None, randomref=None):
        self.calls.append(dict(frames=x.shape[2], batch=x.shape[0], t=int(t[0]), cond=dwpose is not None,
                               poses=None if dwpose is None else (dwpose[0, 0, :, 0, 0] * 255).round().long().tolist(),
                               local_image=None if local_image is None else local_image.clone(),
                               randomref=None if randomref is None else randomref.clone(),
                               image=image))
        bias = 0.0 if local_image is None else local_image.mean()
        return 0.3 * x + (0.1 if dwpose is not None else -0.1) + 0.05 * bias


def decode_stub(latent: torch.Tensor) -> torch.Tensor:
    """A 'VAE': sigmoid of the first 3 latent channels, upsampled 8x -> (B, 3, H, W)."""
    return torch.sigmoid(latent[:, :3]).repeat_interleave(8, dim=2).repeat_interleave(8, dim=3)


@pytest.mark.parametrize("f,length,expected", [
    (10, 4, [(0, 1, 2, 3), (3, 4, 5, 6), (6, 7, 8, 9)]),
    (4, 4, [(0, 1, 2, 3)]),
    (5, 4, [(0, 1, 2, 3), (3, 4)]),
    (1, 8, [(0,)]),
])
def test_plan_segments(f: int, length: int, expected: list) -> None:
    assert plan_segments(f, length) == expected


@pytest.mark.parametrize("f", [1, 2, 7, 31, 32, 33, 64, 100])
@pytest.mark.parametrize("length", [2, 3, 16, 32])
def test_segments_cover_frames_once_and_chain(f: int, length: int) -> None:
    plan = plan_segments(f, length)
    new = list(plan[0]) + [i for seg in plan[1:] for i in seg[1:]]
    assert new == list(range(f))  # every frame exactly once, in order
    for a, b in zip(plan, plan[1:]):
        assert b[0] == a[-1] and len(b) >= 2  # next segment starts at the previous last frame
    assert all(len(seg) <= length for seg in plan)


def test_conditions_are_handed_over_and_poses_continue() -> None:
    f, length, steps = 10, 4, 3
    cond = encoded_conditions(f)
    model = RecordingModel()
    decoded_from: list[torch.Tensor] = []

    def decode(latent):
        decoded_from.append(latent.clone())
        return decode_stub(latent)

    segments = list(iter_sample_long_continuation(
        model, cond, SamplerOptions(steps=steps, cfg_mode="sequential"), ContinuationOptions(segment_length=length),
        decode_last_frame=decode, generator=torch.Generator().manual_seed(0)))

    assert [s.pose_frames for s in segments] == plan_segments(f, length)
    out_frames = [i for s in segments for i in s.new_frames]
    assert out_frames == list(range(f))  # no duplicate, nothing missing
    assert sum(s.latent.shape[2] for s in segments) == f
    cond_calls = [c for c in model.calls if c["cond"]]
    assert len(cond_calls) == len(segments) * 4  # official 3 -> 4 timesteps per segment
    for k, seg in enumerate(segments):
        calls = cond_calls[4 * k:4 * (k + 1)]
        for call in calls:
            # reference pose first, then the segment's own poses (1-based into dwpose)
            assert call["poses"] == [0] + [i + 1 for i in seg.pose_frames]
            assert torch.equal(call["randomref"], cond.randomref) and call["image"] is cond.image
            if k == 0:
                assert call["local_image"] is None
            else:
                # the previous segment's last frame, decoded, repeated over this segment's frames
                want = decode_stub(decoded_from[k - 1]).unsqueeze(2).expand(-1, -1, len(seg.pose_frames), -1, -1)
                assert torch.equal(call["local_image"], want)
                assert torch.equal(seg.first_frame, decode_stub(decoded_from[k - 1]))
        if k > 0:
            # what was decoded is exactly the last generated frame of the previous segment
            assert torch.equal(decoded_from[k - 1], segments[k - 1].latent[:, :, -1])
    uncond = [c for c in model.calls if not c["cond"]]
    assert all(c["local_image"] is None and c["randomref"] is None for c in uncond)
    assert len(decoded_from) == len(segments) - 1  # nothing decoded after the last segment
    assert max(c["frames"] for c in model.calls) == length  # memory: never more than one segment


def test_only_one_segment_reaches_the_model_for_long_runs() -> None:
    f, length = 300, 8
    model = RecordingModel()
    options = SamplerOptions(steps=2, guide_scale=2.5, cfg_mode="sequential")
    out = sample_long_continuation(model, encoded_conditions(f), options, ContinuationOptions(segment_length=length),
                                   decode_last_frame=decode_stub, noise=NoiseOptions.pure(),
                                   generator=torch.Generator().manual_seed(1))
    assert out.shape == (B, 4, f, 2, 2)
    assert max(c["frames"] for c in model.calls) == length and max(c["batch"] for c in model.calls) == B
    assert len(model.calls) == len(plan_segments(f, length)) * len(options.schedule_timesteps()) * 2


def test_same_seed_same_video_and_seed_matters() -> None:
    def run(seed: int) -> torch.Tensor:
        return sample_long_continuation(RecordingModel(), encoded_conditions(9), SamplerOptions(steps=3),
                                        ContinuationOptions(segment_length=4), decode_last_frame=decode_stub,
                                        generator=torch.Generator().manual_seed(seed))

    a, b, c = run(5), run(5), run(6)
    assert torch.equal(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("source", ["reference", "last_frame"])
def test_noise_prior_source_per_segment(source: str) -> None:
    priors: list = []

    def make_noise(index, shape, prior):
        priors.append((index, None if prior is None else prior.clone()))
        return torch.randn(shape, generator=torch.Generator().manual_seed(index))

    cond = encoded_conditions(10)
    segments = list(iter_sample_long_continuation(
        RecordingModel(), cond, SamplerOptions(steps=2), ContinuationOptions(4, prior_source=source),
        decode_last_frame=decode_stub, make_noise=make_noise))
    assert [p[0] for p in priors] == [0, 1, 2]
    assert torch.equal(priors[0][1], cond.randomref)
    for k in (1, 2):
        want = cond.randomref if source == "reference" else segments[k - 1].latent[:, :, -1:]
        assert torch.equal(priors[k][1], want)


def test_colour_anchor_matches_statistics() -> None:
    gen = torch.Generator().manual_seed(0)
    pixels = torch.rand(2, 3, 16, 16, generator=gen) * 0.5
    anchor = torch.rand(2, 3, 16, 16, generator=gen) * 0.3 + 0.6
    assert torch.equal(anchor_colours(pixels, anchor, 0.0), pixels)
    full = anchor_colours(pixels, anchor, 1.0)
    torch.testing.assert_close(full.mean(dim=(2, 3)), anchor.mean(dim=(2, 3)), atol=1e-2, rtol=0)
    torch.testing.assert_close(full.std(dim=(2, 3)), anchor.std(dim=(2, 3)), atol=1e-2, rtol=0)
    half = anchor_colours(pixels, anchor, 0.5)
    assert bool((half.mean(dim=(2, 3)) > pixels.mean(dim=(2, 3))).all())


def test_colour_anchor_is_applied_to_the_handed_over_frame() -> None:
    anchor = torch.full((B, 3, H, W), 0.9)
    anchor[:, :, :8] = 0.7
    segments = list(iter_sample_long_continuation(
        RecordingModel(), encoded_conditions(7), SamplerOptions(steps=2), ContinuationOptions(4, colour_anchor=1.0),
        decode_last_frame=decode_stub, anchor_pixels=anchor, generator=torch.Generator().manual_seed(0)))
    handed = segments[1].first_frame
    torch.testing.assert_close(handed.mean(dim=(2, 3)), anchor.mean(dim=(2, 3)), atol=1e-3, rtol=0)


def test_cancel_keeps_finished_segments_and_leaves_inputs_untouched() -> None:
    cond = encoded_conditions(10)
    before = {k: getattr(cond, k).clone() for k in ("image", "dwpose", "randomref")}
    model = RecordingModel()
    finished = []
    polls = []

    def should_cancel() -> bool:
        polls.append(1)
        return len(model.calls) >= 2 * 4 + 2  # first segment (4 steps x 2 calls) done, one more step

    with pytest.raises(SamplingCancelled):
        sample_long_continuation(model, cond, SamplerOptions(steps=3), ContinuationOptions(4),
                                 decode_last_frame=decode_stub, on_segment=finished.append,
                                 generator=torch.Generator().manual_seed(0), should_cancel=should_cancel)
    assert [s.index for s in finished] == [0] and finished[0].latent.shape[2] == 4
    assert len(model.calls) == 10  # stopped before the next model call
    for k, v in before.items():
        assert torch.equal(getattr(cond, k), v)
    # the same run uninterrupted reproduces the finished segment bit for bit
    again = next(iter_sample_long_continuation(RecordingModel(), cond, SamplerOptions(steps=3), ContinuationOptions(4),
                                               decode_last_frame=decode_stub,
                                               generator=torch.Generator().manual_seed(0)))
    assert torch.equal(again.latent, finished[0].latent)


def test_progress_counts_steps_over_all_segments() -> None:
    seen = []
    sample_long_continuation(RecordingModel(), encoded_conditions(10), SamplerOptions(steps=3),
                             ContinuationOptions(4), decode_last_frame=decode_stub,
                             generator=torch.Generator().manual_seed(0),
                             progress=lambda done, total, preview: seen.append((done, total, preview is not None)))
    assert seen == [(i, 12, True) for i in range(1, 13)]


@pytest.mark.parametrize("bad", [
    dict(decode_last_frame=lambda z: torch.zeros(1, 3, 8, 8)),
    dict(decode_last_frame=lambda z: torch.full((1, 3, 16, 16), float("nan"))),
    dict(decode_last_frame=lambda z: torch.full((1, 3, 16, 16), -1.0)),  # a [-1, 1] VAE output
    dict(decode_last_frame=lambda z: torch.full((1, 3, 16, 16), 200.0)),  # 0..255 floats
    dict(decode_last_frame=None),
])
def test_bad_decoder_output_is_reported(bad: dict) -> None:
    with pytest.raises(SamplingError, match="decode_last_frame"):
        sample_long_continuation(RecordingModel(), encoded_conditions(6), SamplerOptions(steps=2),
                                 ContinuationOptions(4), generator=torch.Generator().manual_seed(0), **bad)


def test_decoder_overshoot_is_clamped_not_refused() -> None:
    """VAE decodes overshoot [0, 1] slightly; that is clamped (only a wrong range is refused)."""
    segments = list(iter_sample_long_continuation(
        RecordingModel(), encoded_conditions(6), SamplerOptions(steps=2), ContinuationOptions(4),
        decode_last_frame=lambda z: torch.full((1, 3, 16, 16), 1.05), generator=torch.Generator().manual_seed(0)))
    assert torch.equal(segments[1].first_frame, torch.ones(1, 3, 16, 16))


@pytest.mark.parametrize("bad,match", [
    (dict(make_noise=lambda i, shape, prior: torch.randn(1, 4, 2, 2, 2)), "make_noise must return"),
    (dict(cond=Conditions(dwpose=torch.zeros(1, 3, 16, 16))), r"dwpose, \(B, 3, F \+ 1, H, W\)"),
    (dict(options=ContinuationOptions(4)), "options must be a SamplerOptions"),  # options in the wrong slot
    (dict(prior_latent=torch.zeros(4, 2, 2)), "prior_latent"),
    (dict(anchor_pixels=torch.rand(3, 3, 16, 16), continuation=ContinuationOptions(4, colour_anchor=0.5)),
     "anchor_pixels"),
])
def test_bad_continuation_inputs_are_reported(bad: dict, match: str) -> None:
    args = dict(cond=encoded_conditions(6), options=SamplerOptions(steps=2), continuation=ContinuationOptions(4))
    args.update(bad)
    cond, options, continuation = args.pop("cond"), args.pop("options"), args.pop("continuation")
    with pytest.raises(SamplingError, match=match):
        sample_long_continuation(RecordingModel(), cond, options, continuation, decode_last_frame=decode_stub,
                                 generator=torch.Generator().manual_seed(0), **args)


def test_one_pixel_or_flat_colour_anchor_gives_no_nan() -> None:
    pixels = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    for anchor in (torch.full((1, 3, 1, 1), 0.4), torch.full((1, 3, 16, 16), 0.4)):
        out = anchor_colours(pixels, anchor, 1.0)
        torch.testing.assert_close(out, torch.full_like(pixels, 0.4))  # flat anchor: flat result at its mean


def test_prior_without_reference_latent_is_reported() -> None:
    cond = encoded_conditions(6).replace(randomref=None)
    with pytest.raises(SamplingError, match="reference latent"):
        sample_long_continuation(RecordingModel(), cond, SamplerOptions(steps=2), ContinuationOptions(4),
                                 decode_last_frame=decode_stub)


@pytest.mark.parametrize("kwargs", [dict(segment_length=1), dict(segment_length=8.0), dict(prior_source="x"),
                                    dict(colour_anchor=2.0), dict(colour_anchor=None)])
def test_bad_continuation_options(kwargs: dict) -> None:
    with pytest.raises(SamplingError, match=next(iter(kwargs))):
        ContinuationOptions(**kwargs)


@pytest.mark.parametrize("finished", [1, 2])
def test_resume_from_finished_segments_equals_the_uninterrupted_run(finished: int) -> None:
    """A run stopped after ``finished`` segments and resumed (their latents + the generator state
    recorded when the last one was handed out) yields exactly the remaining segments of the full run."""
    cond = encoded_conditions(10)  # segments (0-3), (3-6), (6-9)
    noise = NoiseOptions(0.1, 949, "offset_then_prior")  # draws from the generator for every segment
    kwargs = dict(decode_last_frame=decode_stub, noise=noise)
    full = list(iter_sample_long_continuation(RecordingModel(), cond, SamplerOptions(steps=3), ContinuationOptions(4),
                                              generator=torch.Generator().manual_seed(3), **kwargs))
    gen = torch.Generator().manual_seed(3)
    first = iter_sample_long_continuation(RecordingModel(), cond, SamplerOptions(steps=3), ContinuationOptions(4),
                                          generator=gen, **kwargs)
    kept = [next(first).latent for _ in range(finished)]
    state = gen.get_state()
    first.close()  # the process "dies"
    gen2 = torch.Generator().manual_seed(999)
    gen2.set_state(state)
    model = RecordingModel()
    progress: list = []
    rest = list(iter_sample_long_continuation(model, cond, SamplerOptions(steps=3), ContinuationOptions(4),
                                              generator=gen2, resume=kept, progress=lambda d, t, _p: progress.append(d),
                                              **kwargs))
    assert [s.index for s in rest] == list(range(finished, 3))
    for got, want in zip(rest, full[finished:]):
        assert torch.equal(got.latent, want.latent) and got.new_frames == want.new_frames
        assert torch.equal(got.first_frame, want.first_frame)
    assert len(model.calls) == (3 - finished) * 4 * 2  # no finished segment reaches the model again
    assert progress[0] == finished * 4 + 1 and progress[-1] == 12


def test_resume_of_another_clip_is_refused() -> None:
    cond = encoded_conditions(10)
    wrong = [torch.zeros(1, 4, 3, 2, 2)]  # segment 0 has 4 frames
    with pytest.raises(SamplingError, match="resumed segment 0 must be shaped"):
        list(iter_sample_long_continuation(RecordingModel(), cond, SamplerOptions(steps=2), ContinuationOptions(4),
                                           decode_last_frame=decode_stub, resume=wrong))
    with pytest.raises(SamplingError, match="belongs to another clip"):
        list(iter_sample_long_continuation(RecordingModel(), cond, SamplerOptions(steps=2), ContinuationOptions(4),
                                           decode_last_frame=decode_stub, resume=[torch.zeros(1, 4, 4, 2, 2)] * 4))
