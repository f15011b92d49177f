"""The JSON training config: strict validation with the key path and the fix, docs list every key."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from unianimate_core.train.config import (
    DEFAULT_LR, apply_overrides, config_reference, load_config, parse_config,
)
from unianimate_core.train.errors import TrainConfigError

ROOT = Path(__file__).resolve().parents[2]
MINIMAL = {"output_dir": "out", "data": {"videos": "videos"}}


def _with(**sections):
    cfg = json.loads(json.dumps(MINIMAL))
    for key, value in sections.items():
        cfg[key] = {**cfg.get(key, {}), **value} if isinstance(value, dict) else value
    return cfg


def test_minimal_config_gets_documented_defaults_and_resolves_paths(tmp_path):
    cfg = parse_config(MINIMAL, tmp_path)
    assert cfg.output_dir == str(tmp_path / "out") and cfg.data.videos == str(tmp_path / "videos")
    assert cfg.cache == tmp_path / "out" / "cache"
    assert (cfg.data.width, cfg.data.height, cfg.data.frames) == (512, 768, 16)
    o = cfg.objective
    assert (o.offset_noise, o.drop_image, o.drop_pose, o.drop_first_frame, o.drop_all, o.keep_all) == \
        (0.1, 0.5, 0.5, 0.5, 0.1, 0.1)
    assert cfg.learning_rate() == DEFAULT_LR["full"]


@pytest.mark.parametrize("data, message", [
    (_with(data={"widht": 64}), r"unknown config key `data.widht`. Did you mean `data.width`\?"),
    (_with(optimm={}), r"unknown config key `optimm`. Did you mean `optim`\?"),
    (_with(optim={"lr": "fast"}), r"`optim.lr`: expected number or null"),
    (_with(data={"frames": 0}), r"`data.frames`: must be >= 1, got 0"),
    (_with(data={"frames": 2.5}), r"`data.frames`: expected an integer"),
    (_with(train={"gradient_checkpointing": 1}), r"`train.gradient_checkpointing`: expected true or false"),
    (_with(mode={"kind": "lroa"}), r"`mode.kind`: \"lroa\" is not one of .* Did you mean \"lora\"\?"),
    ({"output_dir": "o"}, r"`data`: is required"),
    ({"data": {"videos": "v"}}, r"`output_dir`: is required"),
    (_with(objective={"drop_all": 0.6, "keep_all": 0.6}), r"drop_all \+ keep_all must be <= 1"),
    (_with(objective={"t_min": 900, "t_max": 10}), r"`objective.t_min`: must be <= objective.t_max"),
    (_with(mode={"kind": "mamba"}), r"`mode.mamba.source`: `distill` needs a teacher"),
    (_with(mode={"kind": "mamba", "mamba": {"source": "scratch", "config": {"d_stat": 8}}}),
     r"`mode.mamba.config`: .*d_stat"),
    (_with(mode={"kind": "lora", "lora": {"targets": ["atention"]}}), r"Did you mean \"attention\"\?"),
    (_with(model={"architecture": "huge"}), r"`model.architecture`: expected \"full\", \"tiny\""),
    (_with(model={"architecture": {"dim": 33}}), r"`model.architecture`: .*multiple of 32"),
    (_with(train={"frozen_dtype": "bf16"}), r"`train.frozen_dtype`: bf16 weights need autocast"),
    (_with(validation={"every": 10}, data={"videos": "v", "validation_videos": 0}), r"validation needs held-out"),
    (_with(optim={"betas": [0.9]}), r"`optim.betas`: expected two numbers"),
])
def test_bad_configs_name_the_key_and_the_fix(data, message, tmp_path):
    with pytest.raises(TrainConfigError, match=message):
        parse_config(data, tmp_path)


def test_adamw8bit_without_bitsandbytes_fails_before_training(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "bitsandbytes" else real(name, *a))
    with pytest.raises(TrainConfigError, match="bitsandbytes"):
        parse_config(_with(optim={"optimizer": "adamw8bit"}), tmp_path)


def test_comment_keys_are_ignored_and_overrides_apply(tmp_path):
    path = tmp_path / "c.json"
    path.write_text(json.dumps({"//": "a note", **_with(optim={"//why": "small data", "lr": 3e-5})}))
    cfg = load_config(path, ["optim.lr=1e-4", "train.steps=7", "mode.kind=lora", "data.reference=\"first\""])
    assert (cfg.optim.lr, cfg.train.steps, cfg.mode.kind, cfg.data.reference) == (1e-4, 7, "lora", "first")
    with pytest.raises(TrainConfigError, match="expected KEY=VALUE"):
        apply_overrides({}, ["optim.lr"])


def test_unreadable_config_files_are_explained(tmp_path):
    with pytest.raises(TrainConfigError, match="config file not found"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{'single': 'quotes'}")
    with pytest.raises(TrainConfigError, match="not valid JSON"):
        load_config(bad)


def test_every_key_is_documented_in_docs_training_md():
    doc = (ROOT / "docs" / "training.md").read_text()
    missing = [path for path, *_ in config_reference() if f"`{path}`" not in doc]
    assert missing == []


def test_shipped_examples_are_valid(tmp_path):
    examples = sorted((ROOT / "unianimate_core" / "train" / "examples").glob("*.json"))
    assert len(examples) >= 5
    for path in examples:
        cfg = load_config(path)
        assert cfg.data.width % 64 == 0 and cfg.data.height % 64 == 0, path.name
