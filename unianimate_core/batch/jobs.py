"""Job lists: what a batch renders.

A job is one ``animate`` run: a reference image, a driving clip (video, animated image or image
folder), optionally a keypoints file, an output path and any ``animate`` option. Job lists come as

* JSON Lines (``.jsonl``; one object per line, ``#`` lines skipped) or a JSON list (``.json``);
* CSV (``.csv``; a header row names the columns, empty cells take the default);
* TOML (``.toml``; ``[[job]]`` tables, Python 3.11+ or the ``tomli`` package);
* the product of a reference folder and a driving folder (:func:`product_jobs`).

JSON Lines and TOML may also carry a ``defaults`` object (a JSONL line ``{"defaults": {...}}``, a TOML
``[defaults]`` table) that applies to every job after it; options given on the command line are the
defaults below those.

Field names are those of :class:`~unianimate_core.pipeline.runner.AnimateOptions` (``width``,
``frames``, ``strategy``, ``seed`` ...; ``-`` and ``_`` are the same) plus ``id``, ``reference``
(``ref``), ``driving``, ``keypoints``, ``out`` (``output``) and ``save_latent``. Relative paths are
relative to the job file's folder; without ``out`` a job writes ``<out-dir>/<id>.mp4``.

A job that cannot run - a missing input, an unknown field, a bad value - is kept with its
``problem`` set (naming the job's line and the fix): it fails alone, the rest of the batch goes on.
"""
from __future__ import annotations

import csv
import dataclasses
import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Sequence

from ..errors import UniAnimateError
from ..pipeline.runner import AnimateOptions
from ..pipeline.video import ANIMATED_IMAGE_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS

from .errors import BatchError, JobError

#: Kind of every option a job may set (the fields of AnimateOptions, plus the batch's own).
OPTION_KINDS: dict[str, str] = {
    "width": "int", "height": "int", "frames": "frames", "frame_interval": "int", "steps": "int",
    "guidance": "float", "seed": "int", "strategy": "str", "segment_length": "int", "context_size": "int",
    "context_overlap": "int", "mode": "str", "pose_backend": "str", "align": "bool", "uint8": "str",
    "fps": "float?", "decode_chunk": "int", "preview": "bool", "save_latent": "bool",
}
PATH_FIELDS: tuple[str, ...] = ("reference", "driving", "keypoints", "out")
ALIASES = {"ref": "reference", "output": "out", "name": "id", "long": "strategy", "job": "id"}
KNOWN_FIELDS = ("id",) + PATH_FIELDS + tuple(OPTION_KINDS)
JOB_SUFFIXES = (".jsonl", ".ndjson", ".json", ".csv", ".toml")
DRIVING_SUFFIXES = VIDEO_EXTENSIONS | ANIMATED_IMAGE_EXTENSIONS
_TRUE, _FALSE = {"1", "true", "yes", "on", "y"}, {"0", "false", "no", "off", "n", ""}


@dataclass
class Job:
    """One render of a batch.

    id: stable name (the manifest's key, the log's and by default the output's file name). source:
    where the job was written (``jobs.csv line 4``). options: the resolved run options (None when the
    job has a problem). overrides: the options the job itself set (the rest are defaults).
    problem: why the job cannot run (None when it can).
    """

    id: str
    source: str
    reference: Path | None = None
    driving: Path | None = None
    keypoints: Path | None = None
    out: Path | None = None
    overrides: dict[str, Any] = field(default_factory=dict)
    options: AnimateOptions | None = None
    save_latent: bool = False
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None


# --------------------------------------------------------------------------------------------
# values
# --------------------------------------------------------------------------------------------

def canonical_field(name: Any) -> str:
    """``"Frame-Interval"`` -> ``"frame_interval"``; aliases (``ref``, ``output``, ``long`` ...) resolved."""
    key = str(name).strip().lower().replace("-", "_").replace(" ", "_")
    return ALIASES.get(key, key)


def unknown_field_message(name: str) -> str:
    close = difflib.get_close_matches(name, KNOWN_FIELDS, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown field {name!r} ({hint}known fields: {', '.join(KNOWN_FIELDS)})"


def convert_option(name: str, value: Any) -> Any:
    """A job's value for option ``name`` as its type (CSV gives strings); raises JobError naming the option."""
    kind = OPTION_KINDS[name]
    text = value.strip() if isinstance(value, str) else value
    try:
        if kind == "bool":
            if isinstance(text, bool):
                return text
            if isinstance(text, (int, float)) and text in (0, 1):
                return bool(text)
            if isinstance(text, str) and text.lower() in _TRUE | _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if kind == "frames":
            if text is None or (isinstance(text, str) and text.lower() in ("all", "none", "0")) or text == 0:
                return None
            return _as_int(text)
        if kind == "int":
            return _as_int(text)
        if kind in ("float", "float?"):
            if kind == "float?" and (text is None or text == "" or (isinstance(text, str) and text.lower() == "none")):
                return None
            if isinstance(text, bool):
                raise ValueError
            return float(text)
        if not isinstance(text, str):
            raise ValueError
        return text
    except (TypeError, ValueError):
        expected = {"bool": "true or false", "frames": "a number of frames or 'all'", "int": "a whole number",
                    "float": "a number", "float?": "a number", "str": "a text value"}[kind]
        raise JobError(f"{name} = {value!r} is not {expected}") from None


def _as_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError
        return int(value)
    return int(str(value).strip())


def safe_name(text: str) -> str:
    """A file-name-safe id: letters, digits, ``.``, ``_`` and ``-``; everything else becomes ``_``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return name[:120] or "job"


# --------------------------------------------------------------------------------------------
# reading job files
# --------------------------------------------------------------------------------------------

RawJob = tuple[str, dict[str, Any], dict[str, Any]]  # (source, fields, defaults in force)


def _read_jsonl(path: Path) -> list[RawJob]:
    out: list[RawJob] = []
    defaults: dict[str, Any] = {}
    text = path.read_text(encoding="utf-8-sig")
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" and stripped.startswith("["):
        try:
            items = json.loads(text)
        except json.JSONDecodeError as exc:
            raise BatchError(f"{path} is not valid JSON ({exc}); write a list of job objects or one object per line "
                             "(JSON Lines).") from exc
        lines = [(f"{path.name} job {i + 1}", item) for i, item in enumerate(items)]
    else:
        lines = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            try:
                item: Any = json.loads(line)
            except json.JSONDecodeError as exc:
                item = JobError(f"not a JSON object ({exc.msg} at column {exc.colno})")
            lines.append((f"{path.name} line {number}", item))
    for source, item in lines:
        if isinstance(item, dict) and set(item) == {"defaults"} and isinstance(item["defaults"], dict):
            defaults = {**defaults, **item["defaults"]}
            continue
        if not isinstance(item, dict):
            problem = str(item) if isinstance(item, JobError) else f"expected a JSON object, got {type(item).__name__}"
            out.append((source, {"__problem__": problem}, defaults))
            continue
        out.append((source, item, defaults))
    return out


def _read_csv(path: Path) -> list[RawJob]:
    with open(path, newline="", encoding="utf-8-sig") as fh:
        rows = list(csv.reader(fh))
    rows = [r for r in rows if r and any(c.strip() for c in r)]
    if not rows:
        raise BatchError(f"{path} is empty; write a header row (reference,driving,...) and one row per job.")
    header = [canonical_field(c) for c in rows[0]]
    if "reference" not in header or "driving" not in header:
        raise BatchError(f"{path}: the header row must name the 'reference' and 'driving' columns; got "
                         f"{', '.join(rows[0])}.")
    out: list[RawJob] = []
    with open(path, newline="", encoding="utf-8-sig") as fh:  # line numbers as an editor shows them
        numbered = [(n, r) for n, r in enumerate(csv.reader(fh), 1) if r and any(c.strip() for c in r)]
    for number, row in numbered[1:]:
        if row[0].lstrip().startswith("#"):
            continue
        source = f"{path.name} line {number}"
        if len(row) > len(header):
            out.append((source, {"__problem__": f"{len(row)} cells but the header has {len(header)} columns"}, {}))
            continue
        out.append((source, {k: v for k, v in zip(header, row) if v.strip() != ""}, {}))
    return out


def _read_toml(path: Path) -> list[RawJob]:
    try:
        import tomllib  # type: ignore[import-not-found]
    except ImportError:  # Python 3.10
        try:
            import tomli as tomllib  # type: ignore[no-redef]
        except ImportError:
            raise BatchError(f"reading {path.name} needs Python 3.11+ or `pip install tomli`; or write the jobs as "
                             "JSON Lines or CSV.") from None
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:
        raise BatchError(f"{path} is not valid TOML: {exc}.") from exc
    jobs = data.get("job", data.get("jobs"))
    if not isinstance(jobs, list):
        raise BatchError(f"{path} has no [[job]] tables; write one [[job]] table per job (reference, driving, ...).")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise BatchError(f"{path}: [defaults] must be a table of options.")
    return [(f"{path.name} job {i + 1}", dict(item) if isinstance(item, dict) else {"__problem__": "not a table"},
             defaults) for i, item in enumerate(jobs)]


def read_job_file(path: str | Path) -> list[RawJob]:
    """The raw jobs of a JSONL/JSON/CSV/TOML file (values not yet checked)."""
    p = Path(path)
    if not p.is_file():
        raise BatchError(f"job list not found: {p}. Pass a .jsonl, .csv or .toml file (see docs/batch.md).")
    suffix = p.suffix.lower()
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            return _read_jsonl(p)
        if suffix == ".csv":
            return _read_csv(p)
        if suffix == ".toml":
            return _read_toml(p)
    except UnicodeDecodeError as exc:
        raise BatchError(f"{p} is not UTF-8 text ({exc}).") from exc
    raise BatchError(f"{p}: unknown job-list format {suffix!r}; use {', '.join(JOB_SUFFIXES)}.")


# --------------------------------------------------------------------------------------------
# jobs from raw fields
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobDefaults:
    """What jobs inherit: the command line's options, the output folder, the model's size multiple."""

    options: AnimateOptions
    out_dir: Path
    save_latent: bool = False
    pixel_multiple: int = 64


def _path(value: Any, base: Path) -> Path:
    p = Path(str(value).strip()).expanduser()
    return p if p.is_absolute() else base / p


def build_job(source: str, fields: dict[str, Any], file_defaults: dict[str, Any], base: Path,
              defaults: JobDefaults) -> Job:
    """One :class:`Job` from its raw fields; problems are recorded on the job, never raised."""
    job = Job(id="", source=source)
    merged: dict[str, Any] = {}
    for name, value in fields.items():  # the id first, so even a job with a problem keeps its name
        if canonical_field(name) == "id" and value not in (None, ""):
            job.id = safe_name(str(value))
    try:
        if "__problem__" in fields:
            raise JobError(fields["__problem__"])
        for raw in (file_defaults, fields):
            for name, value in raw.items():
                key = canonical_field(name)
                if key not in KNOWN_FIELDS:
                    raise JobError(unknown_field_message(str(name)))
                merged[key] = value
        for key in PATH_FIELDS:
            if merged.get(key) not in (None, ""):
                setattr(job, key, _path(merged[key], base))
        for key in ("reference", "driving"):
            if getattr(job, key) is None:
                raise JobError(f"no {key} given (add a '{key}' field)")
        overrides = {k: convert_option(k, v) for k, v in merged.items() if k in OPTION_KINDS}
        job.save_latent = bool(overrides.pop("save_latent", defaults.save_latent))
        job.overrides = overrides
        job.options = resolve_options(defaults.options, overrides, defaults.pixel_multiple)
        check_inputs(job)
    except UniAnimateError as exc:
        job.problem = str(exc).rstrip(".")
        job.options = None
    return job


def resolve_options(base: AnimateOptions, overrides: dict[str, Any], pixel_multiple: int = 64) -> AnimateOptions:
    """``base`` with the job's ``overrides``, validated (raises the option's own error)."""
    from ..pipeline.conditioning import check_size

    options = dataclasses.replace(base, **overrides)
    options.long_video_options()
    check_size(options.width, options.height, pixel_multiple)
    if options.steps < 1:
        raise JobError(f"steps must be >= 1; got {options.steps}")
    return options


def check_inputs(job: Job) -> None:
    """Each input exists (reference: a file; driving: a file or a folder; keypoints: a file)."""
    if job.reference is not None and not job.reference.is_file():
        what = "is a folder, not an image" if job.reference.is_dir() else "not found"
        raise JobError(f"reference image {what}: {job.reference}")
    if job.driving is not None and not job.driving.exists():
        raise JobError(f"driving clip not found: {job.driving}")
    if job.keypoints is not None and not job.keypoints.is_file():
        raise JobError(f"keypoints file not found: {job.keypoints}")


def _default_id(job: Job) -> str:
    if job.out is not None:
        return safe_name(job.out.stem)
    if job.reference is not None and job.driving is not None:
        return safe_name(f"{job.reference.stem}__{job.driving.stem}")
    return safe_name(job.source)


def finalize(jobs: list[Job], defaults: JobDefaults) -> list[Job]:
    """Give every job a unique id and output path; later duplicates of an explicit id or output get a problem."""
    seen: dict[str, str] = {}
    outputs: dict[Path, str] = {}
    for job in jobs:
        explicit = bool(job.id)
        base = job.id or _default_id(job)
        name, n = base, 1
        while name in seen:
            if explicit:
                job.problem = job.problem or f"duplicate id {name!r} (also {seen[name]}); give every job its own id"
                break
            n += 1
            name = f"{base}__{n}"
        if name in seen:  # a problem was recorded; keep the job under a distinct id for the manifest
            name = f"{base}__{job.source}"
            name = safe_name(name)
        job.id = name
        seen[name] = job.source
        if job.out is None:
            job.out = defaults.out_dir / f"{job.id}.mp4"
        key = job.out.resolve()
        if key in outputs and job.problem is None:
            job.problem = f"the output {job.out} is also the output of {outputs[key]}; give each job its own 'out'"
            job.options = None
        outputs.setdefault(key, job.source)
    return jobs


def jobs_from_file(path: str | Path, defaults: JobDefaults) -> list[Job]:
    """Read, check and name the jobs of a job file."""
    p = Path(path)
    base = p.resolve().parent
    return finalize([build_job(src, fields, file_defaults, base, defaults)
                     for src, fields, file_defaults in read_job_file(p)], defaults)


def _clips_in(folder: Path) -> list[Path]:
    """Driving clips in ``folder``: video files, animated/still images, and sub-folders of images."""
    items = []
    for p in sorted(folder.iterdir()):
        if p.name.startswith("."):
            continue
        if p.is_dir() and any(q.suffix.lower() in IMAGE_EXTENSIONS for q in p.iterdir()):
            items.append(p)
        elif p.is_file() and p.suffix.lower() in DRIVING_SUFFIXES:
            items.append(p)
    return items


def _listed(paths: Sequence[str | Path], what: str, pick: Any) -> list[Path]:
    out: list[Path] = []
    for given in paths:
        p = Path(given).expanduser()
        if p.is_dir():
            found = pick(p)
            if not found:
                raise BatchError(f"the {what} folder {p} holds no usable files.")
            out += found
        elif p.exists():
            out.append(p)
        else:
            raise BatchError(f"{what} not found: {p}.")
    return out


def product_jobs(references: Sequence[str | Path], drivings: Sequence[str | Path], defaults: JobDefaults) -> list[Job]:
    """Every reference image x every driving clip (folders are expanded), ids ``<reference>__<driving>``."""
    refs = _listed(references, "reference", lambda d: [p for p in sorted(d.iterdir())
                                                         if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS])
    clips = _listed(drivings, "driving", _clips_in)
    jobs = []
    for ref in refs:
        for clip in clips:
            jobs.append(build_job(f"{ref.name} x {clip.name}", {"reference": str(ref.resolve()),
                                                                 "driving": str(clip.resolve())},
                                  {}, Path.cwd(), defaults))
    return finalize(jobs, defaults)


__all__ = ["Job", "JobDefaults", "OPTION_KINDS", "build_job", "canonical_field", "convert_option",
           "finalize", "jobs_from_file", "product_jobs", "read_job_file", "resolve_options", "safe_name"]
