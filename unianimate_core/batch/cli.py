"""``python -m unianimate_core batch``: many renders, on Ray (local or a cluster) or on ComfyUI servers.

See docs/batch.md. Exit codes: 0 every job done, 1 some jobs failed (the others are done; the
manifest and the summary say why), 2 the batch could not start (bad job list, options or models),
130 stopped with Ctrl-C (the next run continues).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
from pathlib import Path
from typing import Any

from ..pipeline.runner import AnimateOptions

from .errors import BatchError
from .jobs import JobDefaults, jobs_from_file, product_jobs
from .run import EXIT_BAD_INPUT, BatchRun, RunSettings

DESCRIPTION = """\
Render a list of jobs - or every reference image x every driving clip - with checkpoints you can
rely on: a manifest in the output folder records each job's input hashes, options, tries and result,
so a finished job is never rendered twice, a killed worker's job is retried elsewhere, continuation
jobs resume from their last finished segment, and Ctrl-C stops cleanly (run the same command again
to continue). Without --comfy the jobs run on Ray: a local Ray on this machine, or the cluster named
by --address / $RAY_ADDRESS. With --comfy URL the same jobs are queued on running ComfyUI servers.
"""

EPILOG = """\
job list (one job per line/row/table; relative paths are relative to the job file):
  jobs.jsonl  {"id": "anna_walk", "reference": "refs/anna.png", "driving": "clips/walk.mp4", "seed": 3}
  jobs.csv    id,reference,driving,frames,strategy
              anna_walk,refs/anna.png,clips/walk.mp4,64,continuation
  jobs.toml   [defaults]  steps = 25        [[job]]  reference = "refs/anna.png"  driving = "clips/walk.mp4"
fields: id, reference, driving, keypoints, out, save_latent and every generation option below
(width, height, frames, frame_interval, steps, guidance, seed, strategy, segment_length, context_size,
context_overlap, mode, pose_backend, align, uint8, fps, preview); the command line's values are the
defaults. Without 'out' a job writes <out-dir>/<id>.mp4. See docs/batch.md.
"""


def add_parser(sub: Any) -> argparse.ArgumentParser:
    from ..pipeline.cli import _add_model_args, _add_run_args

    p = sub.add_parser("batch", help="render many jobs on Ray (local or a cluster) or on ComfyUI servers",
                       description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("jobs", nargs="?", help="job list (.jsonl, .json, .csv or .toml); or use --references/--driving")
    p.add_argument("--references", nargs="+", metavar="PATH",
                   help="reference images or folders of them (with --driving: every reference x every clip)")
    p.add_argument("--driving", nargs="+", metavar="PATH",
                   help="driving clips or folders of them (videos, animated images, image-sequence sub-folders)")
    p.add_argument("--out-dir", help="outputs, manifest.json, logs/ (default: <job file>_out next to the job file, "
                                     "or ./batch_out)")
    p.add_argument("--force", action="store_true", help="render finished jobs again")
    p.add_argument("--skip-failed", action="store_true",
                   help="leave jobs that failed in an earlier run alone (default: try them again)")
    p.add_argument("--max-attempts", type=int, default=3,
                   help="tries per job when its worker dies (bad jobs are not retried) (default %(default)s)")
    p.add_argument("--dry-run", action="store_true", help="list the jobs and what would be done, render nothing")
    p.add_argument("--random-weights", action="store_true",
                   help="tiny random-weight model instead of the real files (installation check; output is noise)")

    r = p.add_argument_group("Ray")
    r.add_argument("--address", help="Ray cluster to use (ray://HEAD:10001, auto, HOST:PORT; default $RAY_ADDRESS, "
                                     "else a local Ray for this batch)")
    r.add_argument("--workers", type=int, help="renderers, each loading the models once (default: one per GPU / "
                                               "GPU share, 1 without GPUs)")
    r.add_argument("--gpus-per-worker", type=float,
                   help="GPU share of a renderer; 0.5 puts two on one GPU (default 1 with GPUs, else 0)")
    r.add_argument("--cpus-per-worker", type=float, default=1.0, help="CPU share of a renderer (default %(default)s)")
    r.add_argument("--pose-cpus", type=float, default=1.0, help="CPU share of a pose-extraction task (default %(default)s)")
    r.add_argument("--pose-gpus", type=float, default=0.0,
                   help="GPU share of a pose-extraction task (DWPose on onnxruntime-gpu) (default %(default)s)")
    r.add_argument("--threads", type=int, help="torch CPU threads per renderer (default: 1 for the tiny model on a "
                                               "CPU, as `animate`; else torch's default)")
    r.add_argument("--num-cpus", type=int, help="local Ray only: CPUs it may schedule (default: all)")
    r.add_argument("--object-store-mb", type=int, help="local Ray only: shared-memory object store size")
    r.add_argument("--no-ship-code", action="store_true",
                   help="cluster only: the workers already have this package installed (do not upload it)")

    c = p.add_argument_group("ComfyUI servers (instead of Ray)")
    c.add_argument("--comfy", action="append", default=[], metavar="URL",
                   help="a running ComfyUI server with this pack (repeat for several); jobs are queued there")
    c.add_argument("--workflow", help="API-format workflow to queue (default: the shipped one for the job's strategy)")
    c.add_argument("--jobs-per-server", type=int, default=2,
                   help="jobs queued on one server at a time (default %(default)s: the next uploads while one runs)")
    c.add_argument("--comfy-timeout", type=float, default=6 * 3600,
                   help="seconds one job may take on a server (default %(default)s)")

    _add_run_args(p, AnimateOptions())
    _add_model_args(p)
    return p


def _out_dir(args: argparse.Namespace) -> Path:
    if args.out_dir:
        return Path(args.out_dir).expanduser().resolve()
    if args.jobs:
        jobs = Path(args.jobs).resolve()
        return jobs.parent / f"{jobs.stem}_out"
    return (Path.cwd() / "batch_out").resolve()


def _identity(args: argparse.Namespace) -> dict[str, Any]:
    """What decides the result besides inputs and options: the models and precision, or the workflow."""
    if args.comfy:
        from .comfy_backend import load_workflows

        text = json.dumps(load_workflows(args.workflow), sort_keys=True)
        return {"backend": "comfyui", "workflow": hashlib.sha256(text.encode()).hexdigest()}
    if args.random_weights:
        return {"backend": "unianimate", "model": "tiny-random-weights", "seed": 0}
    from ..pipeline.models import find_models

    files = find_models(args.models, unet=args.unet, clip=args.clip, vae=args.vae)
    out: dict[str, Any] = {"backend": "unianimate", "dtype": args.dtype}
    for role in ("unet", "clip_vision", "vae"):
        f = getattr(files, role)
        out[role] = None if f is None else f"{Path(str(f)).name}:{Path(str(f)).stat().st_size}"
    return out


def _dry_run(jobs: list, out_dir: Path, identity: dict[str, Any]) -> str:
    """What a run would do with each job (reads the manifest, writes nothing)."""
    from .manifest import MANIFEST_NAME, Manifest
    from .run import describe_job

    manifest = Manifest(out_dir / MANIFEST_NAME)
    lines = []
    for job in jobs:
        if job.problem:
            lines.append(f"{job.id}: FAILS - {job.problem} ({job.source})")
            continue
        try:
            key = describe_job(job, identity)[2]
        except OSError as exc:
            lines.append(f"{job.id}: FAILS - could not read an input: {exc}")
            continue
        done, why = manifest.finished(job.id, key)
        record = manifest.get(job.id) or {}
        state = ("done earlier, skipped" if done else
                 f"renders again ({why})" if why else
                 f"resumes after {record.get('segments')} kept segments" if record.get("segments") else "renders")
        lines.append(f"{job.id}: {state}: {job.reference} + {job.driving} -> {job.out}")
    return "\n".join(lines)


def cmd_batch(args: argparse.Namespace) -> int:
    from ..config import UNetConfig
    from ..pipeline.cli import _options

    if bool(args.jobs) == bool(args.references or args.driving):
        raise BatchError("give either a job list (python -m unianimate_core batch jobs.jsonl) or --references and "
                         "--driving (every reference x every clip), not both / neither.")
    if not args.jobs and not (args.references and args.driving):
        raise BatchError("--references and --driving go together (every reference image x every driving clip).")
    if args.workflow and not args.comfy:
        raise BatchError("--workflow is for ComfyUI servers (--comfy URL); on Ray the jobs run the core directly.")
    if args.max_attempts < 1:
        raise BatchError(f"--max-attempts must be >= 1; got {args.max_attempts}.")
    options = _options(args)  # the command line's values: validated once, the defaults of every job
    multiple = UNetConfig.tiny().pixel_multiple if args.random_weights else 64
    out_dir = _out_dir(args)
    defaults = JobDefaults(options, out_dir, save_latent=args.save_latent, pixel_multiple=multiple)
    jobs = jobs_from_file(args.jobs, defaults) if args.jobs else product_jobs(args.references, args.driving, defaults)
    if args.keypoints:
        keypoints = Path(args.keypoints).expanduser().resolve()
        if not keypoints.is_file():
            raise BatchError(f"--keypoints file not found: {keypoints}.")
        for job in jobs:
            job.keypoints = job.keypoints or keypoints
    if not jobs:
        raise BatchError("the job list holds no jobs.")
    if args.dry_run:
        print(_dry_run(jobs, out_dir, _identity(args)))
        return 0
    local = not (args.address or os.environ.get("RAY_ADDRESS")) and not args.comfy
    if local and not args.random_weights:
        from ..pipeline.models import find_models

        files = find_models(args.models, unet=args.unet, clip=args.clip, vae=args.vae)
        if not files.complete:
            raise BatchError(files.describe_missing() + "\n(or add --random-weights for an installation check that "
                                                        "produces labelled noise)")
    settings = RunSettings(out_dir, max_attempts=args.max_attempts, force=args.force, skip_failed=args.skip_failed,
                           is_random=bool(args.random_weights) and not args.comfy, identity=_identity(args),
                           report_every=math.inf if args.quiet else 30.0)
    with BatchRun(jobs, settings) as run:
        todo = run.plan()
        if todo:
            if args.comfy:
                from .comfy_backend import ComfyConfig, run_on_comfy

                run_on_comfy(run, todo, ComfyConfig(servers=tuple(args.comfy), workflow=args.workflow,
                                                    jobs_per_server=args.jobs_per_server,
                                                    job_timeout=args.comfy_timeout))
            else:
                _run_ray(run, todo, args)
        else:
            failed = run.counts()["failed"]
            run.event("nothing to do: " + (f"{failed} job(s) cannot run (see below), the others are done" if failed
                                           else "every job is done"))
        print(run.summary())
        return run.exit_code()


def _run_ray(run: BatchRun, todo: list, args: argparse.Namespace) -> None:
    try:
        from .ray_backend import RayConfig, run_on_ray
    except ImportError as exc:
        raise BatchError(f"batch rendering on Ray needs the ray package ({exc}); install it with "
                         "`pip install \"comfyui-unianimate[batch]\"` (or `pip install ray`), or queue the jobs on "
                         "ComfyUI servers with --comfy URL.") from exc
    from .worker import ModelSpec

    spec = ModelSpec(random_weights=bool(args.random_weights), models=tuple(args.models), unet=args.unet,
                     clip=args.clip, vae=args.vae, device=args.device, dtype=args.dtype, threads=args.threads)
    run_on_ray(run, todo, RayConfig(
        model=spec, model_dirs=tuple(args.models), address=args.address, workers=args.workers,
        gpus_per_worker=args.gpus_per_worker, cpus_per_worker=args.cpus_per_worker, pose_cpus=args.pose_cpus,
        pose_gpus=args.pose_gpus, num_cpus=args.num_cpus, object_store_mb=args.object_store_mb,
        ship_code=not args.no_ship_code))


__all__ = ["add_parser", "cmd_batch"]
