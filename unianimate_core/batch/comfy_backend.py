"""The same job list on running ComfyUI servers: each job becomes our shipped API workflow with the job's inputs.

For every job a server slot (``jobs_per_server`` per server) uploads the reference and the driving
clip (``/upload/image``, into ``input/unianimate_batch/``), fills the workflow - the shipped one for
the job's strategy (``workflows/api``: short clip, sliding windows, continuation, or repose for a
single driving image), or the user's ``--workflow`` - queues it under a prompt id recorded in the
manifest, follows ``/history`` and downloads the files the workflow saved (video, and the latent
when the job asks for it) into the job's output path, atomically.

Bookkeeping is :class:`~.run.BatchRun`'s, as on Ray: a server that stops answering loses its job to
another server (bounded tries, then failed with the reason); a prompt the server refuses or a node
error fails the job alone with ComfyUI's message; a finished job is never queued again; after a
crash of this process the next run first collects prompts that finished (or waits for those still
queued) on their server instead of queueing them again. Ctrl-C removes our queued prompts and
interrupts our running ones (only ours), and the next run continues.

Not available here (the job fails, naming the option, if it sets one): pre-extracted keypoints and
pose backends other than DWPose, image-folder driving clips, ``uint8``, ``preview`` and
``decode_chunk`` - the server's workflow decides those. Use Ray for them.
"""
from __future__ import annotations

import copy
import hashlib
import json
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..pipeline.latent_file import LATENT_SUFFIX
from ..pipeline.prepare import DEFAULT_NOISE_PRIOR

from .comfy_client import (
    ComfyAPIError, ComfyClient, PromptRejected, ServerUnavailable, execution_error, output_files,
)
from .errors import BatchError, JobError
from .jobs import Job

WORKFLOW_DIR = Path(__file__).resolve().parents[2] / "workflows" / "api"
SHIPPED = {"short": "1 - Short clip.json", "windows": "2 - Long video, sliding windows.json",
           "continuation": "3 - Long video, continuation.json", "repose": "4 - Repose a single image.json"}
SAMPLERS = ("UniAnimateSampler", "UniAnimateLongVideoLoop")
LOOP_STRATEGY = {"windows": "sliding_windows", "continuation": "first_frame_continuation"}
UPLOAD_FOLDER = "unianimate_batch"
OUTPUT_PREFIX = "unianimate_batch"
#: Options the server's workflow decides; a job that sets one of these must run on Ray.
NOT_HERE = {"pose_backend": ("auto", "dwpose"), "uint8": None, "preview": None, "decode_chunk": None}
VIDEO_SUFFIXES = (".mp4", ".webm", ".mov", ".mkv", ".gif", ".webp")


def load_workflows(path: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The API workflows a batch queues: ``{"custom": ...}`` for ``--workflow``, else the shipped ones by strategy."""
    if path:
        p = Path(path).expanduser()
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            raise BatchError(f"could not read the workflow {p}: {exc}.") from exc
        if isinstance(data, dict) and "prompt" in data and isinstance(data["prompt"], dict):
            data = data["prompt"]
        if not isinstance(data, dict) or "nodes" in data or not all(isinstance(v, dict) and "class_type" in v
                                                                    for v in data.values()):
            raise BatchError(f"{p} is not an API-format workflow; in ComfyUI use Workflow > Export (API) and pass "
                             "that file.")
        if not any(v["class_type"] in SAMPLERS for v in data.values()):
            raise BatchError(f"{p} has no UniAnimate Sampler or Long Video Loop node to fill in.")
        return {"custom": data}
    out = {}
    for key, name in SHIPPED.items():
        f = WORKFLOW_DIR / name
        if not f.is_file():
            raise BatchError(f"the shipped workflow {f} is missing (run from a checkout of the pack), or pass "
                             "--workflow FILE (an API-format export).")
        out[key] = json.loads(f.read_text())
    return out


def _single_image(path: Path) -> bool:
    """A still image (one frame) as the driving input: the repose workflow."""
    from ..pipeline.video import IMAGE_EXTENSIONS

    if not path.is_file() or path.suffix.lower() not in IMAGE_EXTENSIONS:
        return False
    try:
        from PIL import Image

        with Image.open(path) as im:
            return int(getattr(im, "n_frames", 1)) == 1
    except OSError:
        return False


def check_job(job: Job) -> None:
    """Refuse what a ComfyUI workflow cannot do for this job (JobError naming the option)."""
    if job.keypoints is not None:
        raise JobError("keypoints files are not available with --comfy (the server extracts the poses with DWPose); "
                       "render this job on Ray, or drop 'keypoints'")
    if job.driving is not None and job.driving.is_dir():
        raise JobError("an image-folder driving clip cannot be uploaded to ComfyUI's Load Video; make it a video "
                       "file, or render this job on Ray")
    for name, allowed in NOT_HERE.items():
        if name in job.overrides and (allowed is None or job.overrides[name] not in allowed):
            raise JobError(f"option {name} = {job.overrides[name]!r} is not available with --comfy (the server's "
                           "workflow decides it); drop it, or render this job on Ray")


def choose_workflow(workflows: dict[str, dict[str, Any]], job: Job) -> tuple[str | None, dict[str, Any]]:
    """(strategy, workflow) of a job: the shipped workflow for its strategy (``auto``: short up to
    ``segment_length`` frames, else continuation; one still driving image: repose), or ``--workflow``,
    whose sampler decides when the job leaves the strategy at ``auto`` (strategy None)."""
    assert job.options is not None and job.driving is not None
    o = job.options
    custom = "custom" in workflows
    if _single_image(job.driving) and not custom:
        return "repose", workflows["repose"]
    if o.strategy != "auto":
        strategy: str | None = o.strategy
    elif custom:
        strategy = None
    else:
        strategy = "short" if o.frames is not None and o.frames <= o.segment_length else "continuation"
    return strategy, workflows["custom" if custom else strategy]  # type: ignore[index]


def _link_source(prompt: dict[str, Any], value: Any) -> str | None:
    return str(value[0]) if isinstance(value, list) and len(value) == 2 and str(value[0]) in prompt else None


def build_prompt(workflow: dict[str, Any], job: Job, uploads: dict[str, str], strategy: str | None,
                 prefix: str) -> dict[str, Any]:
    """The workflow with this job's uploaded inputs, options and output prefix (a new dict).

    uploads: ``{"reference": value, "driving": value}`` (what the loader nodes take). strategy:
    ``short``, ``windows``, ``continuation``, ``repose``, or None (keep the workflow's).
    """
    assert job.options is not None
    o = job.options
    p = copy.deepcopy(workflow)
    samplers = [k for k, v in p.items() if v["class_type"] in SAMPLERS]
    if len(samplers) != 1:
        raise JobError(f"the workflow must hold exactly one UniAnimate Sampler or Long Video Loop; it has {len(samplers)}")
    sampler_id = samplers[0]
    sampler = p[sampler_id]
    ref_id = _link_source(p, sampler["inputs"].get("reference_image"))
    if ref_id is None or p[ref_id]["class_type"] != "LoadImage":
        raise JobError("the workflow's sampler must take reference_image from a Load Image node")
    p[ref_id]["inputs"]["image"] = uploads["reference"]
    drivers = [k for k, v in p.items() if v["class_type"] == "LoadVideo"]
    if strategy == "repose" or not drivers:
        drivers = [k for k, v in p.items() if v["class_type"] == "LoadImage" and k != ref_id]
        field = "image"
    else:
        field = "file"
    if len(drivers) != 1:
        raise JobError("the workflow must hold one Load Video (or, to repose, a second Load Image) for the driving "
                       f"clip; it has {len(drivers)}")
    p[drivers[0]]["inputs"][field] = uploads["driving"]

    inputs = sampler["inputs"]
    values: dict[str, Any] = {"width": o.width, "height": o.height, "steps": o.steps, "guidance": float(o.guidance),
                              "seed": int(o.seed), "condition_mode": o.mode}
    if strategy != "repose":
        values.update(max_frames=0 if o.frames is None else o.frames, frame_interval=o.frame_interval)
    if sampler["class_type"] == "UniAnimateLongVideoLoop":
        if strategy == "short":
            raise JobError("strategy 'short' needs a workflow with a UniAnimate Sampler; this one has a Long Video "
                           "Loop (drop --workflow to use the shipped ones, or set strategy windows/continuation)")
        loop = strategy if strategy in LOOP_STRATEGY else ("continuation" if inputs.get("strategy") ==
                                                           LOOP_STRATEGY["continuation"] else "windows")
        values["strategy"] = LOOP_STRATEGY[loop]
        if loop == "windows":
            values.update(context_size=o.context_size, context_overlap=o.context_overlap)
        else:
            values["context_size"] = o.segment_length
        values["noise_prior"] = DEFAULT_NOISE_PRIOR[loop]
    else:
        if strategy in LOOP_STRATEGY:
            raise JobError(f"strategy {strategy!r} needs a workflow with a UniAnimate Long Video Loop; this one renders "
                           "in one pass (drop --workflow to use the shipped ones, or set strategy short)")
        values["noise_prior"] = DEFAULT_NOISE_PRIOR["short"]
    for name, value in values.items():
        if name in inputs and not isinstance(inputs[name], list):  # a linked input stays linked
            inputs[name] = value
    for node in p.values():
        ct, ins = node["class_type"], node["inputs"]
        if ct == "UniAnimatePoseAlign":
            ins.update({k: v for k, v in (("width", o.width), ("height", o.height), ("align", o.align))
                        if k in ins and not isinstance(ins[k], list)})
        elif ct == "CreateVideo" and o.fps is not None and not isinstance(ins.get("fps"), list):
            ins["fps"] = float(o.fps)
        elif ct in ("SaveVideo", "SaveImage", "SaveAnimatedWEBP", "SaveWEBM", "SaveLatent"):
            ins["filename_prefix"] = prefix
    if job.save_latent and not any(v["class_type"] == "SaveLatent" for v in p.values()):
        p[_new_id(p)] = {"class_type": "SaveLatent", "inputs": {"samples": [sampler_id, 0], "filename_prefix": prefix},
                         "_meta": {"title": "Save Latent (batch)"}}
    return p


def _new_id(prompt: dict[str, Any]) -> str:
    numbers = [int(k) for k in prompt if str(k).isdigit()]
    return str(max(numbers, default=0) + 1000)


# --------------------------------------------------------------------------------------------
# running
# --------------------------------------------------------------------------------------------

@dataclass
class ComfyConfig:
    """servers: ComfyUI base URLs. workflow: ``--workflow`` file (None: the shipped ones). jobs_per_server:
    jobs queued on a server at a time. job_timeout: seconds one job may take. poll: history polling period."""

    servers: tuple[str, ...]
    workflow: str | None = None
    jobs_per_server: int = 2
    job_timeout: float = 6 * 3600
    poll: float = 1.0
    retry_down_after: float = 30.0
    give_up_after: float = 300.0
    stop_grace: float = 30.0


class _Server:
    def __init__(self, url: str) -> None:
        self.client = ComfyClient(url)
        self.url = self.client.url
        self.down_until = 0.0
        self.suspect = False

    @property
    def up(self) -> bool:
        return time.monotonic() >= self.down_until


class _Stopped(Exception):
    pass


class ComfyBatch:
    """Server slots pulling jobs from one queue (see the module docstring)."""

    def __init__(self, run: Any, jobs: list[Job], cfg: ComfyConfig) -> None:
        if not cfg.servers:
            raise BatchError("--comfy needs at least one server URL.")
        if cfg.jobs_per_server < 1:
            raise BatchError(f"--jobs-per-server must be >= 1; got {cfg.jobs_per_server}.")
        self.run, self.cfg = run, cfg
        self.workflows = load_workflows(cfg.workflow)
        self.servers = [_Server(u) for u in cfg.servers]
        self.queue: deque[Job] = deque()
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.active = 0
        self.all_down_since: float | None = None
        self.fatal: BaseException | None = None
        for job in jobs:
            try:
                check_job(job)
            except JobError as exc:
                run.fail(job, str(exc).rstrip("."), attempt=False)
                continue
            self.queue.append(job)

    # ------------------------------------------------------------------ servers
    def probe(self) -> None:
        """Each server answers and has the UniAnimate nodes; at least one must."""
        problems = []
        for server in self.servers:
            try:
                server.client.system_stats()
                info = server.client.object_info("UniAnimateSampler")
                if "UniAnimateSampler" not in (info or {}):
                    raise ComfyAPIError("the UniAnimate nodes are not installed there (custom_nodes/ComfyUI-UniAnimate)")
            except ComfyAPIError as exc:
                server.down_until, server.suspect = time.monotonic() + self.cfg.retry_down_after, True
                problems.append(f"{server.url}: {exc}")
        if len(problems) == len(self.servers):
            raise BatchError("no ComfyUI server can take the jobs: " + "; ".join(problems))
        for p in problems:
            self.run.event(f"server skipped for now: {p}")

    # ------------------------------------------------------------------ slots
    def _take(self) -> Job | None:
        with self.lock:
            if self.stop.is_set() or not self.queue:
                return None
            self.active += 1
            return self.queue.popleft()

    def slot(self, server: _Server) -> None:
        """One job at a time on ``server`` until the queue is empty (or the batch stops)."""
        while not self.stop.is_set():
            with self.lock:
                if not self.queue and self.active == 0:
                    return
            if server.suspect:
                if not server.up:
                    self.stop.wait(0.5)
                    continue
                try:
                    server.client.system_stats()
                except ComfyAPIError:
                    server.down_until = time.monotonic() + self.cfg.retry_down_after
                    self._check_all_down()
                    continue
                server.suspect = False
                self.run.event(f"{server.url} answers again")
            job = self._take()
            if job is None:
                self.stop.wait(0.5)
                continue
            try:
                self.process(job, server)
            except _Stopped:
                pass
            except BaseException as exc:  # noqa: BLE001 - a bug must not hang the batch
                self.run.fail(job, f"internal error: {type(exc).__name__}: {exc}", self.run.error_detail(exc))
            finally:
                with self.lock:
                    self.active -= 1

    def _check_all_down(self) -> None:
        """Stop the batch when every server has been unreachable for ``give_up_after`` seconds."""
        with self.lock:
            if not all(s.suspect for s in self.servers):
                self.all_down_since = None
                return
            self.all_down_since = self.all_down_since or time.monotonic()
            if time.monotonic() - self.all_down_since > self.cfg.give_up_after:
                self.fatal = BatchError(f"no ComfyUI server has answered for {self.cfg.give_up_after:g} s; the "
                                        "unfinished jobs stay in the manifest for the next run.")
                self.stop.set()

    # ------------------------------------------------------------------ one job
    def process(self, job: Job, server: _Server) -> None:
        record = self.run.manifest.get(job.id) or {}
        previous = (record.get("attempts") or [{}])[-1]
        key = self.run.keys[job.id]
        if (previous.get("prompt_id") and "ended" not in previous and previous.get("server") == server.url
                and previous.get("key") == key):
            prompt_id = previous["prompt_id"]  # a prompt queued by an earlier run: collect it if it is still there
            try:
                adopted = self._find(server, prompt_id)
            except ServerUnavailable as exc:
                self._server_lost(job, server, str(exc))
                return
            if adopted:
                self.run.start(job, f"ComfyUI {server.url}", server=server.url, prompt_id=prompt_id, key=key,
                               adopted=True)
                self._follow(job, server, prompt_id)
                return
        strategy, workflow = choose_workflow(self.workflows, job)
        prompt_id = uuid.uuid4().hex
        self.run.start(job, f"ComfyUI {server.url}", server=server.url, prompt_id=prompt_id, key=key,
                       workflow="custom" if self.cfg.workflow else strategy)
        try:
            uploads = {"reference": self._upload(server, job.reference), "driving": self._upload(server, job.driving)}
            prefix = f"{OUTPUT_PREFIX}/{job.id}_{key[:8]}"
            prompt = build_prompt(workflow, job, uploads, strategy, prefix)
            server.client.queue_prompt(prompt, prompt_id)
        except ServerUnavailable as exc:
            self._server_lost(job, server, str(exc))
            return
        except (PromptRejected, JobError) as exc:
            self.run.fail(job, f"ComfyUI refused the job: {exc}".rstrip(".") if isinstance(exc, PromptRejected)
                          else str(exc).rstrip("."))
            return
        except ComfyAPIError as exc:
            self.run.fail(job, str(exc).rstrip("."))
            return
        except OSError as exc:
            self.run.fail(job, f"could not read an input: {exc}")
            return
        self.run.log(job, f"queued on {server.url} as prompt {prompt_id} (workflow "
                          f"{self.cfg.workflow or strategy}, strategy {strategy or 'as in the workflow'})")
        self._follow(job, server, prompt_id)

    def _upload(self, server: _Server, path: Path | None) -> str:
        assert path is not None
        data = path.read_bytes()
        name = f"ua_{hashlib.sha256(data).hexdigest()[:16]}{path.suffix.lower()}"
        return server.client.upload(name, data, subfolder=UPLOAD_FOLDER)

    def _find(self, server: _Server, prompt_id: str) -> bool:
        if server.client.history(prompt_id) is not None:
            return True
        running, pending = server.client.queue()
        return prompt_id in running or prompt_id in pending

    def _follow(self, job: Job, server: _Server, prompt_id: str) -> None:
        start = time.monotonic()
        last_seen = time.monotonic()
        while True:
            if self.stop.is_set():
                self._cancel(server, prompt_id)
                self.run.interrupt(job)
                raise _Stopped
            try:
                entry = server.client.history(prompt_id)
                if entry is None and time.monotonic() - last_seen > 10 * self.cfg.poll:
                    running, pending = server.client.queue()
                    if prompt_id not in running and prompt_id not in pending:
                        entry = server.client.history(prompt_id)
                        if entry is None:
                            self._server_lost(job, server, "the server no longer knows the prompt (restarted?)",
                                              down=False)
                            return
                    state = "running" if prompt_id in running else f"waiting ({len(pending)} queued)"
                    self.run.progress(job, 1 if prompt_id in running else 0, 2)
                    self.run.log(job, f"on {server.url}: {state}")
                    last_seen = time.monotonic()
            except ServerUnavailable as exc:
                self._server_lost(job, server, str(exc))
                return
            if entry is not None:
                break
            if time.monotonic() - start > self.cfg.job_timeout:
                self._cancel(server, prompt_id)
                self.run.fail(job, f"took longer than --comfy-timeout {self.cfg.job_timeout:g} s on {server.url}")
                return
            if self.stop.wait(self.cfg.poll):
                continue
        problem = execution_error(entry)
        if problem == "interrupted on the server":
            if self.stop.is_set():
                self.run.interrupt(job)
                raise _Stopped
            if self.run.lost(job, f"{server.url}: the prompt was interrupted on the server"):
                self._requeue(job)
            return
        if problem:
            self.run.fail(job, f"ComfyUI {problem}".rstrip("."))
            return
        try:
            files, suffixes = self._download(server, entry)
        except ServerUnavailable as exc:
            self._server_lost(job, server, str(exc))
            return
        if "video" not in files and "image" not in files:
            self.run.fail(job, "the workflow saved no video or image (add a Save Video node to it)")
            return
        self.run.complete(job, files, suffixes, server=server.url, prompt_id=prompt_id)

    def _download(self, server: _Server, entry: dict[str, Any]) -> tuple[dict[str, bytes], dict[str, str]]:
        files: dict[str, bytes] = {}
        suffixes: dict[str, str] = {}
        for item in output_files(entry):
            if item.get("type", "output") != "output":
                continue
            name = item["filename"]
            suffix = Path(name).suffix.lower()
            kind = ("latent" if suffix == LATENT_SUFFIX else "video" if suffix in VIDEO_SUFFIXES
                    else "image" if suffix in (".png", ".jpg", ".jpeg") else None)
            if kind is None or kind in files:
                continue
            files[kind] = server.client.view(name, item.get("subfolder", ""), "output")
            suffixes[kind] = suffix
        return files, suffixes

    def _cancel(self, server: _Server, prompt_id: str) -> None:
        try:
            server.client.cancel(prompt_id)
        except ComfyAPIError:
            pass

    def _requeue(self, job: Job) -> None:
        with self.lock:
            self.queue.appendleft(job)

    def _server_lost(self, job: Job, server: _Server, why: str, down: bool = True) -> None:
        if down:
            server.down_until, server.suspect = time.monotonic() + self.cfg.retry_down_after, True
        if self.stop.is_set():
            self.run.interrupt(job, f"stopped while {server.url} did not answer")
            return
        if self.run.lost(job, f"{server.url}: {why}"):
            self._requeue(job)

    # ------------------------------------------------------------------ all
    def run_all(self) -> None:
        self.probe()
        self.run.event(f"{len(self.servers)} ComfyUI server(s), {self.cfg.jobs_per_server} job(s) each at a time")
        threads = [threading.Thread(target=self.slot, args=(s,), name=f"comfy-{i}-{k}", daemon=True)
                   for i, s in enumerate(self.servers) for k in range(self.cfg.jobs_per_server)]
        for t in threads:
            t.start()
        try:
            while any(t.is_alive() for t in threads):
                for t in threads:
                    t.join(timeout=0.5)
                self.run.tick()
        except KeyboardInterrupt:
            self.run.interrupted = True
            self.stop.set()
            self.run.event("stopping (Ctrl-C): removing our prompts from the servers; Ctrl-C again to leave at once")
            deadline = time.monotonic() + self.cfg.stop_grace
            try:
                for t in threads:
                    t.join(timeout=max(0.0, deadline - time.monotonic()))
            except KeyboardInterrupt:
                pass
            for job_id, state in list(self.run.state.items()):
                if state == "running":
                    self.run.interrupt(self.run.jobs[job_id])
        if self.fatal is not None:
            raise self.fatal


def run_on_comfy(run: Any, jobs: list[Job], cfg: ComfyConfig) -> None:
    """Render ``jobs`` on the ComfyUI servers of ``cfg``, recording everything in ``run``."""
    ComfyBatch(run, jobs, cfg).run_all()


__all__ = ["ComfyConfig", "build_prompt", "check_job", "choose_workflow", "load_workflows", "run_on_comfy"]
