"""What runs on the workers: the pose stage of a job, and a renderer that keeps its models loaded.

Plain Python, no Ray: :mod:`.ray_backend` wraps :func:`run_pose_stage` as a Ray task and
:class:`Renderer` as a Ray actor; tests call them directly.

* :func:`run_pose_stage` - read the job's inputs (shipped as bytes, so workers need no shared
  disk), select the frames, extract and align the poses (``runner.plan_poses``, the command line's
  pose stage). Returns ``(meta, PoseResult)``; a bad job returns ``meta["error"]`` instead of raising.
* :class:`Renderer` - loads the UNet, CLIP and VAE once, then renders job after job through the one
  preparation and sampling path (``pipeline.prepare``: ``prepare_clip`` + ``sample_clip``, as the
  ComfyUI nodes and the command line). A job is driven in calls - ``begin`` (prepare the clip),
  ``next_part`` (sample until the next finished part: the whole clip, or one continuation segment,
  handed back with the generator state so the driver can keep it), ``finish`` (decode, encode the
  video, preview and latent; the bytes go back to the driver, which writes them). ``progress`` and
  ``stop`` may be called while a part is being sampled (Ray runs them on a second thread).

Same seed, same options, same thread count -> the same latent as ``python -m unianimate_core
animate`` (the batch test checks it).
"""
from __future__ import annotations

import dataclasses
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..diffusion import SamplerOptions, SamplingCancelled
from ..errors import UniAnimateError
from ..pipeline.conditioning import clip_normalize, posterior_mean, vae_input
from ..pipeline.latent_file import latent_bytes
from ..pipeline.poses import PoseStage
from ..pipeline.prepare import noise_options, prepare_clip, sample_clip, work_units
from ..pipeline.preview import NOISE_BANNER
from ..pipeline.runner import AnimateOptions, decode_latents, output_paths, plan_poses, write_outputs
from ..pipeline.video import to_uint8

from .errors import JobError


# --------------------------------------------------------------------------------------------
# inputs shipped with a job
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class InputFile:
    """A file's name and bytes (so the job carries its inputs to any machine)."""

    name: str
    data: bytes

    @classmethod
    def read(cls, path: str | Path) -> "InputFile":
        p = Path(path)
        return cls(p.name, p.read_bytes())

    def materialize(self, folder: str | Path) -> Path:
        out = Path(folder) / self.name
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_bytes(self.data)
        return out


@dataclass(frozen=True)
class InputFolder:
    """A folder of files (an image-sequence driving clip)."""

    name: str
    files: tuple[InputFile, ...]

    @classmethod
    def read(cls, path: str | Path) -> "InputFolder":
        p = Path(path)
        files = tuple(InputFile(f.relative_to(p).as_posix(), f.read_bytes())
                      for f in sorted(q for q in p.rglob("*") if q.is_file()))
        return cls(p.name, files)

    def materialize(self, folder: str | Path) -> Path:
        root = Path(folder) / self.name
        root.mkdir(parents=True, exist_ok=True)
        for f in self.files:
            f.materialize(root)
        return root


def read_input(path: str | Path) -> InputFile | InputFolder:
    return InputFolder.read(path) if Path(path).is_dir() else InputFile.read(path)


# --------------------------------------------------------------------------------------------
# pose stage
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PoseRequest:
    """A job's pose stage: its inputs, its options (``AnimateOptions`` fields) and where DWPose files are searched."""

    job_id: str
    reference: InputFile
    driving: InputFile | InputFolder
    options: dict[str, Any]
    keypoints: InputFile | None = None
    model_dirs: tuple[str, ...] = ()


@dataclass
class PoseResult:
    """The pose stage's output: reference (H, W, 3) uint8, reference_pose (H', W', 3) uint8 at the output
    size, poses (F, H', W', 3) uint8 (aligned renders of the selected frames), the output fps."""

    reference: np.ndarray
    reference_pose: np.ndarray
    poses: np.ndarray
    fps: float
    backend: str
    notes: list[str] = field(default_factory=list)


def run_pose_stage(request: PoseRequest) -> tuple[dict[str, Any], PoseResult | None]:
    """Decode the inputs, extract and align the poses. Returns (meta, result); a bad job gives
    ``meta["error"]`` (the reason) and no result. ``meta``: error, frames, backend, notes, log, seconds, host."""
    from ..pipeline.cli import read_driving
    from ..pipeline.models import find_models
    from ..pipeline.video import read_image

    start = time.monotonic()
    lines: list[str] = []
    meta: dict[str, Any] = {"error": None, "log": lines, "host": socket.gethostname(), "pid": os.getpid()}
    try:
        options = AnimateOptions(**request.options)
        with tempfile.TemporaryDirectory(prefix="unianimate_batch_") as tmp:
            ref_path = request.reference.materialize(Path(tmp) / "reference")
            drv_path = request.driving.materialize(Path(tmp) / "driving")
            kp_path = request.keypoints.materialize(Path(tmp) / "keypoints") if request.keypoints else None
            reference = read_image(ref_path)
            clip, interval = read_driving(str(drv_path), options.frames, options.frame_interval, thin=kp_path is None)
            options = dataclasses.replace(options, frame_interval=interval)
            dwpose = find_models(request.model_dirs).dwpose if options.pose_backend in ("auto", "dwpose") else None
            plan = plan_poses(reference, clip, options, keypoints_file=kp_path, dwpose_files=dwpose, log=lines.append)
        result = PoseResult(reference, plan.poses.reference_pose, np.stack(plan.poses.poses), plan.fps,
                            plan.poses.backend, list(plan.notes))
    except UniAnimateError as exc:
        meta.update(error=str(exc), seconds=time.monotonic() - start)
        return meta, None
    meta.update(frames=int(result.poses.shape[0]), backend=result.backend, notes=result.notes,
                seconds=time.monotonic() - start)
    return meta, result


# --------------------------------------------------------------------------------------------
# renderer
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ModelSpec:
    """Which models a renderer loads (the ``animate`` model options).

    random_weights: the tiny random-weight model (installation checks, tests). threads: torch CPU
    threads (None: 1 for the tiny model on a CPU, as the command line does, else torch's default).
    """

    random_weights: bool = False
    models: tuple[str, ...] = ()
    unet: str | None = None
    clip: str | None = None
    vae: str | None = None
    device: str = "auto"
    dtype: str = "auto"
    threads: int | None = None


def make_provider(spec: ModelSpec):
    """The command line's model provider for ``spec`` (sets the CPU thread count first)."""
    from ..pipeline.models import find_models
    from ..pipeline.providers import RealModels, TinyModels, resolve_device, resolve_dtype

    device = resolve_device(spec.device)
    if spec.threads:
        torch.set_num_threads(int(spec.threads))
    elif spec.random_weights and device.type == "cpu":
        torch.set_num_threads(1)  # what the command line does for the tiny model (see cli._providers)
    if spec.random_weights:
        return TinyModels(seed=0, device=device)
    files = find_models(list(spec.models), unet=spec.unet, clip=spec.clip, vae=spec.vae)
    return RealModels(files, device, resolve_dtype(spec.dtype, device))


@dataclass(frozen=True)
class RenderRequest:
    """One job for a renderer: its id, ``AnimateOptions`` fields and whether the latent is wanted."""

    job_id: str
    options: dict[str, Any]
    save_latent: bool = False


@dataclass(frozen=True)
class Resume:
    """Finished continuation segments of an earlier attempt: their latents (1, 4, n, h, w) float32 and
    the generator state (uint8) recorded when the last of them was finished."""

    latents: tuple[np.ndarray, ...]
    rng_state: np.ndarray


class Renderer:
    """Loads the models once; renders jobs one after another (see the module docstring)."""

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec
        self.provider = make_provider(spec)
        encoder = self.provider.image_encoder()
        self.encoder = encoder
        self.zero_y = self.provider.zero_y(encoder)
        self.vae = self.provider.vae()
        self.unet = self.provider.unet(self.zero_y)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._job: dict[str, Any] | None = None
        self._done = 0
        self._total = 0
        self._log: list[str] = []

    # ------------------------------------------------------------------ status (any thread)
    def info(self) -> dict[str, Any]:
        p = self.provider
        return {"pid": os.getpid(), "host": socket.gethostname(), "device": str(p.device), "label": p.label,
                "is_random": bool(p.is_random), "pixel_multiple": int(p.pixel_multiple),
                "threads": torch.get_num_threads()}

    def progress(self) -> dict[str, Any]:
        job = self._job
        return {"job": job["request"].job_id if job else None, "done": self._done, "total": self._total}

    def stop(self) -> bool:
        """Ask the running job to stop at its next step (its finished parts stay finished)."""
        self._stop.set()
        return True

    # ------------------------------------------------------------------ a job
    def _drain_log(self) -> list[str]:
        out, self._log = self._log, []
        return out

    def begin(self, request: RenderRequest, poses: PoseResult, resume: Resume | None = None) -> dict[str, Any]:
        """Prepare the job's clip (encode the reference, stack the poses) and its sampler."""
        self._stop.clear()
        self._job = None
        options = AnimateOptions(**request.options)
        p = self.provider
        sampler = SamplerOptions(steps=options.steps, guide_scale=float(options.guidance), device=p.device,
                                 model_dtype=p.dtype)
        windows, continuation = options.long_video_options()
        encoder, vae = self.encoder, self.vae
        prep = prepare_clip(
            poses.reference, poses.poses, poses.reference_pose, width=options.width, height=options.height,
            mode=options.mode, pixel_multiple=p.pixel_multiple,
            encode_image=lambda px: encoder.encode_image(clip_normalize(px.permute(0, 3, 1, 2))),
            encode_latent=lambda px: posterior_mean(vae.encode_moments(vae_input(px))))
        strategy = options.resolved_strategy(prep.frames)
        generator = torch.Generator().manual_seed(int(options.seed))
        resumed: list[torch.Tensor] = []
        if resume is not None and resume.latents:
            if strategy != "continuation":
                raise JobError(f"kept segments can only resume a continuation job; this job runs {strategy!r}")
            generator.set_state(torch.from_numpy(np.ascontiguousarray(resume.rng_state)))
            resumed = [torch.from_numpy(np.ascontiguousarray(x)) for x in resume.latents]

        def decode_last(latent: torch.Tensor) -> torch.Tensor:
            from ..pipeline.conditioning import LATENT_SCALE, frames_from_decoded

            return frames_from_decoded(vae.decode(latent / LATENT_SCALE))

        steps = len(sampler.schedule_timesteps())
        self._total = work_units(prep.frames, strategy, sampler, windows, continuation)
        self._done = len(resumed) * steps

        def on_progress(done: int, total: int, _preview: Any = None) -> None:
            self._done, self._total = done, total

        iterator = sample_clip(self.unet, prep, strategy, sampler, generator=generator, noise=noise_options(strategy),
                               windows=windows, continuation=continuation, decode_last_frame=decode_last,
                               progress=on_progress, should_cancel=self._stop.is_set, resume=resumed)
        self._job = {"request": request, "options": options, "poses": poses, "generator": generator,
                     "iterator": iterator, "parts": list(resumed), "strategy": strategy}
        self._log.append(f"sampling: {prep.frames} frames, strategy {strategy}, {options.steps} steps, guidance "
                         f"{options.guidance}, seed {options.seed}, {p.label}"
                         + (f"; resumed after {len(resumed)} finished segments" if resumed else ""))
        return {"frames": prep.frames, "strategy": strategy, "total": self._total, "resumed": len(resumed),
                "log": self._drain_log()}

    def next_part(self) -> dict[str, Any] | None:
        """Sample until the next part is finished: {index, frames, latent, rng_state, log}; {cancelled} when
        stopped; None when the clip is complete."""
        job = self._require_job()
        try:
            part = next(job["iterator"])
        except StopIteration:
            return None
        except SamplingCancelled as exc:
            return {"cancelled": True, "log": self._drain_log() + [str(exc)]}
        job["parts"].append(part.latent)
        return {"index": part.index, "frames": len(part.frames), "latent": part.latent.numpy(),
                "rng_state": job["generator"].get_state().numpy(), "log": self._drain_log()}

    def finish(self) -> dict[str, Any]:
        """Decode every part, encode the video (+ preview, latent); returns the files' bytes and facts."""
        job = self._require_job()
        options: AnimateOptions = job["options"]
        poses: PoseResult = job["poses"]
        frames: list[np.ndarray] = []
        for latent in job["parts"]:  # part by part, as the command line decodes
            frames += list(to_uint8(decode_latents(self.vae, latent, options.decode_chunk), options.uint8))
        latent = torch.cat(job["parts"], dim=2)
        banner = NOISE_BANNER if self.provider.is_random else None
        files: dict[str, bytes] = {}
        with tempfile.TemporaryDirectory(prefix="unianimate_batch_out_") as tmp:
            paths = output_paths(Path(tmp) / "out.mp4", self.provider.is_random)
            stage = PoseStage(poses.reference_pose, list(poses.poses), poses.backend, poses.notes)
            video, preview, still = write_outputs(frames, poses.fps, banner, poses.reference, stage, paths,
                                                  options.preview)
            for name, path in (("video", video), ("preview", preview), ("still", still)):
                if path is not None:
                    files[name] = Path(path).read_bytes()
        if job["request"].save_latent:
            files["latent"] = latent_bytes(latent)
        self._job = None
        return {"files": files, "frames": len(frames), "fps": poses.fps, "log": self._drain_log()}

    def _require_job(self) -> dict[str, Any]:
        if self._job is None:
            raise JobError("no job in progress on this worker (begin() was not called or the job already finished)")
        return self._job


__all__ = ["InputFile", "InputFolder", "ModelSpec", "PoseRequest", "PoseResult", "RenderRequest", "Renderer",
           "Resume", "make_provider", "read_input", "run_pose_stage"]
