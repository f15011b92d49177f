"""Deep-feature reuse (DeepCache-style, ``SamplerOptions.deep_cache_interval``) with the real tiny UNet.

References: the official DDIM runs (tests/fixtures/ddim_short_tiny.*) for interval 1, and for a
reuse call the ordinary full forward of the same modules whose deep result is replaced, through a
forward pre-hook, by the one captured (by another hook) in the earlier full call.
"""
from __future__ import annotations

import gc
import weakref

import pytest
import torch

from tiny_unet import load_tiny_unet
from unianimate_core.diffusion import (
    Conditions, ContinuationOptions, SamplerOptions, SamplingError, iter_sample_long_continuation, iter_sample_video,
    sample_video,
)
from unianimate_core.diffusion.deep_cache import DeepCache, DeepCacheSlot
from unianimate_core.diffusion.sliding import sample_long_sliding
from unianimate_core.diffusion.windows import SlidingWindowOptions
from unianimate_core.errors import InputError

STEP_ATOL = 1e-4  # the tolerances of test_sampling_unet_e2e.py (our UNet + sampler against the official runs)
FINAL_ATOL = 5e-4
REUSE_ULPS = 64
"""A reuse call and its reference run the same float32 kernels on the same shapes in the same order, so
they agree exactly on one machine (measured: 0); 64 float32 ulps of the output's magnitude
(64 * 2^-23 = 7.6e-6 relative) only allows a different convolution algorithm for a differently
aligned buffer. The cached features stand in for different ones: that moves the output by 1.8e-2
(depth 12) to 0.31 (depth 1) of its magnitude (measured), and more than 1000x the tolerance is asserted."""


@pytest.fixture(scope="module")
def tiny_unet():
    return load_tiny_unet()


def _short_cond(g: dict, mode: str = "standard") -> Conditions:
    return Conditions.build(mode, image=g["short.in.image"], dwpose=g["short.in.dwpose_u8"],
                            ref_latent=g["short.in.ref_latent"], ref_pixels=g["short.in.ref_pixels_u8"])


class Spy:
    """Forwards to the UNet and records, per call, whether it reused features (and which) or stored them.

    Holds only weak references to the cached tensors, so it cannot keep them alive itself.
    """

    def __init__(self, unet, cond_mask: bool = True) -> None:
        self.unet, self.calls = unet, []
        self.supports_cond_mask = cond_mask
        self.supports_deep_cache = True
        self.input_blocks = unet.input_blocks

    def __call__(self, x, t, transformer_options=None, **kwargs):
        slot = (transformer_options or {}).get("deep_cache")
        out = self.unet(x, t, transformer_options=transformer_options, **kwargs)
        self.calls.append(dict(
            t=int(t[0]), rows=x.shape[0], frames=x.shape[2], uncond=kwargs.get("image") is None,
            used=None if slot is None or slot.features is None else id(slot.features),
            stored=None if slot is None or slot.stored is None else id(slot.stored),
            ref=None if slot is None or slot.stored is None else weakref.ref(slot.stored),
            reused=slot is not None and slot.stored is None))
        return out


# -------------------------------------------------------------------------------- interval 1 = official
@pytest.mark.parametrize("cfg_mode", ["sequential", "batched"])
def test_interval_one_is_the_official_sampler(tiny_unet, short_golden: dict, cfg_mode: str) -> None:
    g = short_golden
    spy = Spy(tiny_unet)
    options = SamplerOptions(steps=5, cfg_mode=cfg_mode, deep_cache_interval=1, deep_cache_depth=3)
    steps = list(iter_sample_video(spy, g["short.in.start"], _short_cond(g), options))
    run = "short.standard.gs2.5"
    for i, step in enumerate(steps):
        torch.testing.assert_close(step.x, g[f"{run}.x_t"][i], atol=STEP_ATOL, rtol=0)
    torch.testing.assert_close(steps[-1].x, g[f"{run}.final"], atol=FINAL_ATOL, rtol=0)
    assert spy.calls and all(c["used"] is None and c["stored"] is None and not c["reused"] for c in spy.calls)


# -------------------------------------------------------------------------------- one reuse call
def _capture_deep(unet, depth: int) -> tuple[dict, list]:
    """Hooks that capture the hidden state entering output block N - depth (the first input channels of its
    first layer, minus the channels of the skip it is concatenated with) and can replace it."""
    n = len(unet.output_blocks)
    state: dict = {"replace": None}

    def skip_hook(_module, _args, out):
        state["skip_channels"] = out.shape[1]

    def pre_hook(_module, args):
        x = args[0]
        c = x.shape[1] - state["skip_channels"]
        state["deep"] = x[:, :c].clone()
        if state["replace"] is not None:
            return (torch.cat([state["replace"], x[:, c:]], dim=1), *args[1:])
        return None

    last = unet.input_blocks[depth - 1]
    last = last[-1] if isinstance(last, torch.nn.ModuleList) else last  # its output is the skip
    handles = [last.register_forward_hook(skip_hook), unet.output_blocks[n - depth][0].register_forward_pre_hook(pre_hook)]
    return state, handles


@pytest.mark.parametrize("depth", [1, 2, 5, 12])
def test_a_reuse_call_equals_the_full_forward_with_the_cached_deep_result(tiny_unet, short_golden: dict,
                                                                          depth: int) -> None:
    g = short_golden
    x1 = g["short.in.start"]
    x2 = x1 * 0.9 + 0.1 * torch.randn(x1.shape, generator=torch.Generator().manual_seed(3))
    kwargs = _short_cond(g).model_kwargs(x1.shape[2], torch.device("cpu"), torch.float32)
    t1, t2 = torch.tensor([999]), torch.tensor([966])
    state, handles = _capture_deep(tiny_unet, depth)
    try:
        with torch.no_grad():
            full1 = tiny_unet(x1, t1, **kwargs)
            deep1 = state["deep"]
            full2 = tiny_unet(x2, t2, **kwargs)
            state["replace"] = deep1
            reference = tiny_unet(x2, t2, **kwargs)  # the ordinary forward with the deep result of step 1
            state["replace"] = None
    finally:
        for h in handles:
            h.remove()
    with torch.no_grad():
        slot = DeepCacheSlot(depth)
        again = tiny_unet(x1, t1, transformer_options={"deep_cache": slot}, **kwargs)
        assert slot.stored is not None
        torch.testing.assert_close(slot.stored, deep1, atol=0, rtol=0)  # stores what enters output block N - depth
        torch.testing.assert_close(again, full1, atol=0, rtol=0)  # a full call with a cache slot is the plain call
        reuse = DeepCacheSlot(depth, features=slot.stored)
        out = tiny_unet(x2, t2, transformer_options={"deep_cache": reuse}, **kwargs)
        assert reuse.stored is None  # it was a reuse call
        same_step = tiny_unet(x1, t1, transformer_options={"deep_cache": DeepCacheSlot(depth, slot.stored)}, **kwargs)
    torch.testing.assert_close(slot.stored, deep1, atol=0, rtol=0)  # reuse calls leave the cached tensor as it was
    tol = REUSE_ULPS * 2.0 ** -23 * float(reference.abs().max())
    torch.testing.assert_close(out, reference, atol=tol, rtol=0)
    torch.testing.assert_close(same_step, full1, atol=tol, rtol=0)  # reusing a step's own features: that step
    assert float((out - full2).abs().max()) > 1000 * tol  # and the cached features really stood in


def test_reuse_steps_skip_the_deep_blocks(tiny_unet, short_golden: dict) -> None:
    """Counted with hooks on every layer: on a reuse step only input blocks :depth and output blocks -depth: run."""
    g = short_golden
    depth, n = 3, len(tiny_unet.input_blocks)
    assert len(tiny_unet.output_blocks) == n
    counts: dict = {}
    handles = []
    for name, blocks in (("in", tiny_unet.input_blocks), ("mid", [tiny_unet.middle_block]), ("out", tiny_unet.output_blocks)):
        for i, block in enumerate(blocks):
            first = block[0] if isinstance(block, torch.nn.ModuleList) else block
            handles.append(first.register_forward_pre_hook(
                lambda *_a, key=(name, i): counts.__setitem__(key, counts.get(key, 0) + 1)))
    try:
        options = SamplerOptions(steps=5, cfg_mode="sequential", deep_cache_interval=3, deep_cache_depth=depth)
        steps = list(iter_sample_video(tiny_unet, g["short.in.start"], _short_cond(g), options))
    finally:
        for h in handles:
            h.remove()
    calls = 2 * len(steps)  # sequential guidance: cond + uncond per step
    full = 2 * sum(1 for s in steps if s.index % 3 == 0)
    assert len(steps) == 5 and full == 4  # full at steps 0 and 3
    for i in range(n):
        assert counts[("in", i)] == (calls if i < depth else full), i
        assert counts[("out", i)] == (calls if i >= n - depth else full), i
    assert counts[("mid", 0)] == full


# -------------------------------------------------------------------------------- which call uses which entry
def test_sequential_guidance_gives_cond_and_uncond_their_own_entries(tiny_unet, short_golden: dict) -> None:
    g = short_golden
    spy = Spy(tiny_unet, cond_mask=False)
    list(iter_sample_video(spy, g["short.in.start"], _short_cond(g),
                           SamplerOptions(steps=5, cfg_mode="sequential", deep_cache_interval=2)))
    by_step = [spy.calls[k:k + 2] for k in range(0, len(spy.calls), 2)]
    for i, (cond, uncond) in enumerate(by_step):
        assert not cond["uncond"] and uncond["uncond"]
        if i % 2 == 0:
            assert cond["stored"] and uncond["stored"] and cond["stored"] != uncond["stored"]
        else:
            assert cond["used"] == by_step[i - 1][0]["stored"] and uncond["used"] == by_step[i - 1][1]["stored"]


def test_sliding_windows_give_every_window_its_own_entry(tiny_unet, long_golden: dict) -> None:
    g = long_golden
    cond = Conditions.build("standard", image=g["long.in.image"], dwpose=g["long.in.dwpose_u8"],
                            ref_latent=g["long.in.ref_latent"])
    spy = Spy(tiny_unet, cond_mask=False)
    windows = SlidingWindowOptions(context_size=4, context_overlap=2, context_batch_size=1)
    groups = len(windows.groups(g["long.in.start"].shape[2]))
    assert groups >= 3
    sample_long_sliding(spy, g["long.in.start"], cond, SamplerOptions(steps=3, cfg_mode="sequential",
                                                                     deep_cache_interval=2), windows)
    per_step = 2 * groups
    steps = [spy.calls[k:k + per_step] for k in range(0, len(spy.calls), per_step)]
    assert len(steps) == 4
    stored = [c["stored"] for c in steps[0]]
    assert len(set(stored)) == per_step and None not in stored
    assert [c["used"] for c in steps[1]] == stored  # call k of the reuse step takes call k's entry
    assert all(c["stored"] for c in steps[2])


def test_a_call_that_does_not_match_its_entry_runs_in_full(tiny_unet, short_golden: dict) -> None:
    """Batched guidance (2B rows) on steps 0-1, conditional only (B rows) from step 2: step 2 is a reuse
    step (interval 3) but its entry holds 2B rows, so it runs in full and replaces the entry."""
    g = short_golden
    spy = Spy(tiny_unet, cond_mask=True)
    options = SamplerOptions(steps=5, cfg_mode="batched", guidance_interval=(0.0, 0.3), deep_cache_interval=3)
    list(iter_sample_video(spy, g["short.in.start"], _short_cond(g), options))
    rows = [c["rows"] for c in spy.calls]
    assert rows == [2, 2, 1, 1, 1]
    assert [c["reused"] for c in spy.calls] == [False, True, False, False, True]
    assert spy.calls[2]["used"] is None and spy.calls[4]["used"] == spy.calls[3]["stored"]


def test_the_unet_runs_in_full_when_the_cached_tensor_does_not_fit(tiny_unet, short_golden: dict) -> None:
    g = short_golden
    x = g["short.in.start"]
    kwargs = _short_cond(g).model_kwargs(x.shape[2], torch.device("cpu"), torch.float32)
    with torch.no_grad():
        plain = tiny_unet(x, torch.tensor([999]), **kwargs)
        first = DeepCacheSlot(2)
        tiny_unet(x, torch.tensor([999]), transformer_options={"deep_cache": first}, **kwargs)
        for wrong in (first.stored[:-1], first.stored[:, :, :-1], first.stored.double()):
            slot = DeepCacheSlot(2, features=wrong)
            out = tiny_unet(x, torch.tensor([999]), transformer_options={"deep_cache": slot}, **kwargs)
            assert slot.stored is not None  # ran in full
            torch.testing.assert_close(out, plain, atol=0, rtol=0)


# -------------------------------------------------------------------------------- runs and their caches
def test_continuation_segments_start_with_a_full_step_and_the_cache_dies_with_the_run(tiny_unet,
                                                                                       long_golden: dict) -> None:
    g = long_golden
    cond = Conditions.build("standard", image=g["long.in.image"], dwpose=g["long.in.dwpose_u8"][:, :, :7],
                            ref_latent=g["long.in.ref_latent"])
    spy = Spy(tiny_unet, cond_mask=False)
    segments = list(iter_sample_long_continuation(
        spy, cond, SamplerOptions(steps=3, cfg_mode="sequential", deep_cache_interval=2),
        ContinuationOptions(segment_length=4), decode_last_frame=lambda z: torch.rand(z.shape[0], 3, 128, 128),
        generator=torch.Generator().manual_seed(0)))
    assert len(segments) == 2
    per_segment = 2 * 4  # 3 requested steps run 4 (official list), 2 calls each
    assert len(spy.calls) == 2 * per_segment
    for s in range(2):
        calls = spy.calls[s * per_segment:(s + 1) * per_segment]
        assert [c["reused"] for c in calls] == [False, False, True, True] * 2
    gc.collect()
    assert all(c["ref"] is None or c["ref"]() is None for c in spy.calls)  # no cached tensor outlives its run


def test_a_run_stopped_early_drops_its_cache(tiny_unet, short_golden: dict) -> None:
    g = short_golden
    spy = Spy(tiny_unet)
    run = iter_sample_video(spy, g["short.in.start"], _short_cond(g), SamplerOptions(steps=5, deep_cache_interval=4))
    next(run)
    assert spy.calls[0]["ref"]() is not None  # alive while the run is
    run.close()
    gc.collect()
    assert spy.calls[0]["ref"]() is None


def test_deep_cache_changes_the_result_but_stays_close(tiny_unet, short_golden: dict) -> None:
    """Not a quality measure (that is the observatory's, benchmarks/solver_quality.py): the option is in
    effect (the result differs from the official) and the run stays finite."""
    g = short_golden
    official = sample_video(tiny_unet, g["short.in.start"], _short_cond(g), SamplerOptions(steps=5))
    cached = sample_video(tiny_unet, g["short.in.start"], _short_cond(g), SamplerOptions(steps=5, deep_cache_interval=2))
    assert bool(torch.isfinite(cached).all())
    assert float((cached - official).abs().max()) > 1e-3


# -------------------------------------------------------------------------------- bad values
@pytest.mark.parametrize("kwargs,words", [
    (dict(deep_cache_interval=0), "deep_cache_interval"),
    (dict(deep_cache_interval=1.5), "deep_cache_interval"),
    (dict(deep_cache_interval=True), "deep_cache_interval"),
    (dict(deep_cache_interval=2, deep_cache_depth=0), "deep_cache_depth"),
    (dict(deep_cache_depth="2"), "deep_cache_depth"),
])
def test_bad_options_are_refused(kwargs: dict, words: str) -> None:
    with pytest.raises(SamplingError, match=words):
        SamplerOptions(**kwargs)


def test_a_depth_beyond_the_model_is_refused_before_any_call(tiny_unet, short_golden: dict) -> None:
    g = short_golden
    spy = Spy(tiny_unet)
    with pytest.raises(SamplingError, match=r"deep_cache_depth 13 .* 12 input blocks; use 1\.\.12"):
        next(iter_sample_video(spy, g["short.in.start"], _short_cond(g),
                               SamplerOptions(steps=5, deep_cache_interval=2, deep_cache_depth=13)))
    assert spy.calls == []


def test_a_model_without_transformer_options_is_refused(short_golden: dict) -> None:
    g = short_golden

    def model(x, t, **kwargs):
        return torch.zeros_like(x)

    with pytest.raises(SamplingError, match="deep_cache_interval=2 needs a model whose forward takes transformer_options"):
        next(iter_sample_video(model, g["short.in.start"], _short_cond(g), SamplerOptions(deep_cache_interval=2)))
    assert DeepCache.for_run(model, SamplerOptions()) is None  # off: any model


def test_the_unet_refuses_a_bad_deep_cache_entry(tiny_unet, short_golden: dict) -> None:
    g = short_golden
    x = g["short.in.start"]
    with pytest.raises(InputError, match=r"depth must be a whole number of input blocks in 1\.\.12"):
        tiny_unet(x, torch.tensor([999]), transformer_options={"deep_cache": DeepCacheSlot(0)})
    with pytest.raises(InputError, match="'store\\(tensor\\)' method"):
        tiny_unet(x, torch.tensor([999]), transformer_options={"deep_cache": type("S", (), {"depth": 2})()})
