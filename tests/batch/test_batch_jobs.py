"""Job lists: every format gives the same jobs, defaults layer correctly, and each bad job is named alone."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from unianimate_core.batch.errors import BatchError
from unianimate_core.batch.jobs import JobDefaults, convert_option, jobs_from_file, product_jobs
from unianimate_core.pipeline.runner import AnimateOptions


@pytest.fixture
def media(tmp_path):
    (tmp_path / "refs").mkdir()
    (tmp_path / "clips" / "seq").mkdir(parents=True)
    for name in ("anna.png", "bob.jpg"):
        (tmp_path / "refs" / name).write_bytes(b"img")
    (tmp_path / "refs" / "notes.txt").write_text("not an image")
    (tmp_path / "clips" / "walk.mp4").write_bytes(b"vid")
    (tmp_path / "clips" / "seq" / "0001.png").write_bytes(b"img")
    return tmp_path


def defaults(tmp_path, **kw) -> JobDefaults:
    return JobDefaults(AnimateOptions(**kw), tmp_path / "out")


def test_jsonl_csv_toml_give_the_same_jobs(media):
    d = defaults(media, steps=20)
    (media / "jobs.jsonl").write_text(
        "# a comment\n"
        '{"defaults": {"width": 256, "Frame-Interval": 2}}\n'
        '{"id": "a", "ref": "refs/anna.png", "driving": "clips/walk.mp4", "seed": 3, "frames": "all"}\n'
        '{"reference": "refs/bob.jpg", "driving": "clips/seq", "long": "continuation", "align": "false"}\n')
    (media / "jobs.csv").write_text(
        "id,reference,driving,seed,frames,width,frame_interval,strategy,align\n"
        "a,refs/anna.png,clips/walk.mp4,3,all,256,2,,\n"
        ",refs/bob.jpg,clips/seq,,,256,2,continuation,no\n")
    toml = ('[defaults]\nwidth = 256\nframe_interval = 2\n\n'
            '[[job]]\nid = "a"\nreference = "refs/anna.png"\ndriving = "clips/walk.mp4"\nseed = 3\nframes = "all"\n\n'
            '[[job]]\nreference = "refs/bob.jpg"\ndriving = "clips/seq"\nstrategy = "continuation"\nalign = false\n')
    (media / "jobs.toml").write_text(toml)
    names = ["jobs.jsonl", "jobs.csv"] + (["jobs.toml"] if sys.version_info >= (3, 11) else [])
    results = []
    for name in names:
        jobs = jobs_from_file(media / name, d)
        assert [j.problem for j in jobs] == [None, None], name
        results.append([(j.id, j.reference, j.driving, j.out, j.options) for j in jobs])
    assert all(r == results[0] for r in results)
    (a, b) = jobs_from_file(media / "jobs.jsonl", d)
    assert a.id == "a" and a.reference == media / "refs" / "anna.png" and a.out == media / "out" / "a.mp4"
    assert a.options == AnimateOptions(steps=20, width=256, frame_interval=2, seed=3, frames=None)
    assert b.id == "bob__seq" and b.driving == media / "clips" / "seq"
    assert b.options.strategy == "continuation" and b.options.align is False and b.options.steps == 20


def test_each_bad_job_fails_alone_with_a_named_reason(media):
    lines = [
        {"id": "ok", "reference": "refs/anna.png", "driving": "clips/walk.mp4"},
        {"id": "typo", "reference": "refs/anna.png", "driving": "clips/walk.mp4", "stepz": 3},
        {"id": "badval", "reference": "refs/anna.png", "driving": "clips/walk.mp4", "steps": "many"},
        {"id": "badsize", "reference": "refs/anna.png", "driving": "clips/walk.mp4", "width": 500},
        {"id": "badmode", "reference": "refs/anna.png", "driving": "clips/walk.mp4", "mode": "fancy"},
        {"id": "noref", "reference": "refs/gone.png", "driving": "clips/walk.mp4"},
        {"id": "nodrive", "reference": "refs/anna.png"},
        {"id": "ok", "reference": "refs/bob.jpg", "driving": "clips/walk.mp4"},
        {"id": "sameout", "reference": "refs/bob.jpg", "driving": "clips/walk.mp4", "out": "out/ok.mp4"},
    ]
    text = "".join(json.dumps(x) + "\n" for x in lines) + "{not json\n"
    (media / "jobs.jsonl").write_text(text)
    jobs = {j.id: j for j in jobs_from_file(media / "jobs.jsonl", defaults(media))}
    problems = {k: j.problem for k, j in jobs.items()}
    assert problems["ok"] is None
    assert "unknown field 'stepz' (did you mean 'steps'?" in problems["typo"]
    assert "steps = 'many' is not a whole number" in problems["badval"]
    assert "width = 500 is not a multiple of 64" in problems["badsize"]
    assert "unknown condition mode 'fancy'" in problems["badmode"]
    assert problems["noref"] == f"reference image not found: {media / 'refs' / 'gone.png'}"
    assert problems["nodrive"] == "no driving given (add a 'driving' field)"
    dup = [j for k, j in jobs.items() if k.startswith("ok__")]
    assert len(dup) == 1 and "duplicate id 'ok' (also jobs.jsonl line 1)" in dup[0].problem
    assert "also the output of jobs.jsonl line 1" in problems["sameout"]
    bad_json = [j for j in jobs.values() if j.source == "jobs.jsonl line 10"]
    assert bad_json and "not a JSON object" in bad_json[0].problem


def test_csv_without_the_needed_columns_is_refused(media):
    (media / "jobs.csv").write_text("ref_image,clip\nrefs/anna.png,clips/walk.mp4\n")
    with pytest.raises(BatchError, match="must name the 'reference' and 'driving' columns"):
        jobs_from_file(media / "jobs.csv", defaults(media))
    with pytest.raises(BatchError, match="unknown job-list format '.yaml'"):
        (media / "jobs.yaml").write_text("x")
        jobs_from_file(media / "jobs.yaml", defaults(media))


def test_product_of_folders(media):
    jobs = product_jobs([media / "refs"], [media / "clips"], defaults(media, seed=4))
    assert [j.id for j in jobs] == ["anna__seq", "anna__walk", "bob__seq", "bob__walk"]
    assert all(j.problem is None and j.options.seed == 4 for j in jobs)
    with pytest.raises(BatchError, match="driving not found"):
        product_jobs([media / "refs"], [media / "nope"], defaults(media))


@pytest.mark.parametrize("name,value,expected", [
    ("frames", "all", None), ("frames", 0, None), ("frames", "16", 16), ("frames", 16.0, 16),
    ("align", "Yes", True), ("align", 0, False), ("fps", "", None), ("fps", "12.5", 12.5), ("guidance", 3, 3.0),
])
def test_conversions(name, value, expected):
    assert convert_option(name, value) == expected


@pytest.mark.parametrize("name,value", [("steps", 2.5), ("steps", True), ("align", "maybe"), ("guidance", "x"),
                                        ("mode", 3)])
def test_bad_conversions_name_the_option(name, value):
    with pytest.raises(Exception, match=name):
        convert_option(name, value)
