"""Samples and the objective: determinism by index, the process split, drop statistics, the v target,
and the condition drop-path checked against the UNet's own unconditional / missing-condition paths."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from unianimate_core.diffusion.ddim import predict_x0
from unianimate_core.diffusion.schedule import NoiseSchedule
from unianimate_core.train.config import parse_config
from unianimate_core.train.data import Geometry, discover_videos, prepare_data
from unianimate_core.train.dataset import ClipDataset, SampleIndexBatches, SampleSettings, valid_starts
from unianimate_core.train.encoders import build_encoders
from unianimate_core.train.objective import ConditionDrop, DiffusionLoss, model_inputs, v_target
from tests.tiny_unet import load_tiny_unet
from tests.train.conftest import base_config


@pytest.fixture(scope="module")
def prepared(videos, shared_cache):
    cfg = parse_config(base_config(videos, shared_cache / "unused", shared_cache))
    enc = build_encoders(cfg.encoders, torch.device("cpu"), shared_cache)
    geo = Geometry(64, 64, "crop", 1, 0, 4)
    return cfg, prepare_data(discover_videos(videos), shared_cache, geo, "auto", [], enc, "fp32", 4, 1)


def _dataset(cfg, videos, seed=0, **objective):
    o = cfg.objective.__class__(**{**cfg.objective.__dict__, **objective})
    return ClipDataset(videos, SampleSettings.from_config(cfg.data, o), seed)


def test_a_sample_is_a_pure_function_of_seed_and_index(prepared):
    cfg, data = prepared
    a, b = _dataset(cfg, data.train), _dataset(cfg, data.train)
    for s in (0, 5, 123):
        x, y = a[s], b[s]
        assert all(torch.equal(x[k], y[k]) for k in x)
    assert not torch.equal(a[0]["noise"], a[1]["noise"])
    assert not torch.equal(a[0]["noise"], _dataset(cfg, data.train, seed=1)[0]["noise"])


def test_shapes_and_ranges_of_a_sample(prepared):
    cfg, data = prepared
    s = _dataset(cfg, data.train)[3]
    assert s["x0"].shape == (4, 4, 8, 8) and s["noise"].shape == (4, 4, 8, 8)
    assert s["dwpose"].shape == (3, 5, 64, 64) and s["dwpose"].dtype == torch.uint8
    assert s["randomref"].shape == (4, 1, 8, 8) and s["image"].shape == (1024,)
    assert s["local_image"].shape == (3, 1, 64, 64) and s["keep"].dtype == torch.bool
    assert 0 <= int(s["t"]) <= 999


def test_each_epoch_visits_every_video_once(prepared):
    cfg, data = prepared
    ds = _dataset(cfg, data.train)
    n = len(ds)
    for epoch in range(3):
        assert sorted(ds.video_for(epoch * n + i) for i in range(n)) == list(range(n))


def test_processes_split_a_global_batch_exactly():
    """2 processes x batch 1 x accum 2 see the same sample indices as 1 process x batch 2 x accum 2."""
    single = list(SampleIndexBatches(0, 3, 0, batch=2, accum=2, world=1, rank=0))
    r0 = list(SampleIndexBatches(0, 3, 0, batch=1, accum=2, world=2, rank=0))
    r1 = list(SampleIndexBatches(0, 3, 0, batch=1, accum=2, world=2, rank=1))
    assert sorted(sum(single, [])) == sorted(sum(r0 + r1, [])) == list(range(12))
    for step in range(3):  # same samples per optimizer step
        assert sorted(sum(single[2 * step:2 * step + 2], [])) == sorted(sum(r0[2 * step:2 * step + 2] + r1[2 * step:2 * step + 2], []))
    resumed = list(SampleIndexBatches(1, 3, 4, batch=2, accum=2, world=1, rank=0))
    assert resumed == single[2:]


def test_valid_starts_respect_missing_poses():
    present = np.array([1, 1, 0, 1, 1, 1, 0, 0, 1], dtype=bool)
    assert valid_starts(present, 3, 0).tolist() == [3]
    assert valid_starts(present, 3, 1).tolist() == [0, 1, 2, 3, 4]  # 5: frames 5-7 miss two
    assert valid_starts(present[:2], 3, 2).tolist() == []


def test_drop_frequencies_match_the_recipe(prepared):
    """Binomial check on 4000 samples: each rate within 4.5 standard deviations (flake chance < 1e-5)."""
    cfg, data = prepared
    ds = _dataset(cfg, data.train)
    n = 4000
    keep = torch.stack([ds.decisions(s).keep for s in range(n)]).float()
    for s in (0, 1, 2):  # the decisions are those of the real samples
        assert torch.equal(ds[s]["keep"], ds.decisions(s).keep)
    cond, image, pose, first = keep.T
    o = cfg.objective
    all_dropped = 1 - cond.mean()  # drop_all_includes_reference: cond False exactly when all are dropped
    expected = {
        "drop_all": (all_dropped, o.drop_all),
        "image kept": (image.mean(), o.keep_all + (1 - o.drop_all - o.keep_all) * (1 - o.drop_image)),
        "pose kept": (pose.mean(), o.keep_all + (1 - o.drop_all - o.keep_all) * (1 - o.drop_pose)),
        "first frame kept": (first.mean(), o.first_frame_prob * (o.keep_all + (1 - o.drop_all - o.keep_all)
                                                                 * (1 - o.drop_first_frame))),
    }
    for name, (got, p) in expected.items():
        assert abs(float(got) - p) < 4.5 * (p * (1 - p) / n) ** 0.5, (name, float(got), p)
    assert bool((image[cond == 0] == 0).all() and (pose[cond == 0] == 0).all())


def test_v_target_recovers_x0_through_the_sampler_parametrisation():
    """Independent source: predict_x0 of the DDIM sampler (parity-tested against the official code)."""
    sched = NoiseSchedule.unianimate()
    g = torch.Generator().manual_seed(0)
    x0, noise = torch.randn(3, 4, 2, 8, 8, generator=g), torch.randn(3, 4, 2, 8, 8, generator=g)
    t = torch.tensor([0, 500, 999])
    v = v_target(sched, x0, noise, t)
    x_t = sched.q_sample(x0, t, noise)
    assert torch.allclose(predict_x0(sched, x_t, t, v=v), x0, atol=1e-5)
    assert torch.allclose(v[2], -x0[2])  # zero terminal SNR: at t = 999 the target is -x0


def test_condition_drop_matches_the_unets_missing_condition_paths():
    """Dropping the image tokens == image=None; dropping the first frame == local_image=None;
    cond False == the unconditional call (every condition None)."""
    unet = load_tiny_unet()
    drop = ConditionDrop(unet)
    g = torch.Generator().manual_seed(1)
    b, f = 3, 2
    x = torch.randn(b, 4, f, 8, 8, generator=g)
    kw = dict(image=torch.randn(b, 1024, generator=g), dwpose=torch.rand(b, 3, f + 1, 64, 64, generator=g),
              randomref=torch.randn(b, 4, 1, 8, 8, generator=g), local_image=torch.rand(b, 3, f, 64, 64, generator=g))
    t = torch.tensor([10, 500, 900])
    with torch.no_grad():
        drop.masks = torch.tensor([[False, True, True]] * b)
        no_image = unet(x, t, **kw)
        drop.masks = torch.tensor([[True, True, False]] * b)
        no_first = unet(x, t, **kw)
        drop.masks = torch.tensor([[False, False, False]] * b)
        uncond = unet(x, t, **kw, cond_mask=torch.zeros(b, dtype=torch.bool))
        drop.masks = None
        ref_image = unet(x, t, **{**kw, "image": None})
        ref_first = unet(x, t, **{**kw, "local_image": None})
        ref_uncond = unet(x, t)
        drop.masks = torch.tensor([[True, False, True], [True, True, True], [False, True, True]])
        mixed = unet(x, t, **kw)
        drop.masks = None
        full = unet(x, t, **kw)
    assert torch.allclose(no_image, ref_image, atol=1e-5)
    assert torch.allclose(no_first, ref_first, atol=1e-5)
    assert torch.allclose(uncond, ref_uncond, atol=1e-5)
    assert torch.allclose(mixed[1], full[1], atol=1e-5) and torch.allclose(mixed[2], ref_image[2], atol=1e-5)
    assert not torch.allclose(mixed[0], full[0], atol=1e-3)  # the pose drop changes row 0
    drop.remove()


def test_diffusion_loss_is_the_mse_to_the_v_target(prepared):
    cfg, data = prepared
    ds = _dataset(cfg, data.train)
    batch = {k: torch.stack([ds[i][k] for i in range(2)]) for k in ds[0]}
    unet = load_tiny_unet()
    loss = DiffusionLoss(unet, NoiseSchedule.unianimate())
    with torch.no_grad():
        got = loss(batch)
        x_t, t, kw = model_inputs(batch, loss.schedule, 4)
        loss.drop.masks = batch["keep"][:, 1:]
        pred = unet(x_t, t, **kw)
        loss.drop.masks = None
    target = v_target(loss.schedule, batch["x0"], batch["noise"], batch["t"])
    assert torch.allclose(got, ((pred - target) ** 2).flatten(1).mean(1), rtol=1e-5)
