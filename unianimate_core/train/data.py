"""Training data: a folder of videos -> fitted frames, poses, VAE moments and CLIP embeddings, cached.

Preparation happens once per video and is cached **content-addressed**: the key of every artifact
is a hash of what it depends on (the video's bytes, its sidecar files, the clip geometry, the pose
source and, for latents/embeddings, the encoder's weights), so a renamed video is not prepared again,
a changed one is, and a cache folder can be shared between runs and machines. Every artifact is
written under a temporary name and renamed when complete (``os.replace``): an interrupted
preparation leaves nothing half-written behind and simply continues where it stopped.

Cache layout (``<cache>/``)::

    digests.json                    file digests by (path, size, mtime) so unchanged files are not re-hashed
    videos/<vkey>/meta.json         written last; or skip.json with the reason a video cannot be used
    videos/<vkey>/frames.npy        (N, H, W, 3) uint8 fitted frames (every ``frame_stride``-th)
    videos/<vkey>/poses.npz         keypoints (N, 134, 2) normalised to the fitted canvas, scores, person flags
    videos/<vkey>/reference.npz     the fitted reference image and its pose (only with a ``<name>.ref.*``)
    latents/<lkey>.safetensors      VAE posterior moments (N [+1 reference], 8, h, w)
    clip/<ckey>.safetensors         CLIP image embeddings (N [+1 reference], 1024)

Bad inputs never stop a run: a video that cannot be decoded, has no person, is too short, or has a
broken sidecar is skipped with a named reason and counted in the :class:`DataReport`.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Optional, Sequence

import numpy as np
import torch
from PIL import Image

from ..errors import UniAnimateError
from ..pipeline.conditioning import clip_input, squash_resize_u8, vae_input
from ..pipeline.video import ANIMATED_IMAGE_EXTENSIONS, IMAGE_EXTENSIONS, VIDEO_EXTENSIONS, read_image, stream_clip
from ..pose.fitting import fit_frame, fit_geometry
from ..pose.keypoints import NUM_KEYPOINTS, Person, PoseFrame
from ..pose.pose_keypoint import from_pose_keypoint
from ..pose.selection import has_body, select_person
from .errors import DataError

log = logging.getLogger("unianimate")

#: Bump when the preparation changes in a way that invalidates cached entries.
PREP_VERSION = 1
REFERENCE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
POSE_CHUNK = 32

#: Named skip reasons (the report counts each).
SKIP_REASONS = {
    "undecodable": "the file could not be decoded (corrupt, unsupported codec, or no frames)",
    "too_short": "fewer frames than one clip needs (after the frame stride)",
    "no_person": "no frame shows a person",
    "no_clean_clip": "no run of clip-length frames with few enough frames lacking a person",
    "bad_pose_file": "the `<name>.json` pose sidecar is not a readable POSE_KEYPOINT list",
    "pose_count_mismatch": "the pose sidecar has fewer entries than the video has frames",
    "bad_reference": "the `<name>.ref.*` reference image (or its pose) cannot be used",
    "encode_failed": "the VAE or CLIP produced non-finite values for it",
    "no_pose_source": "no `<name>.json` pose sidecar and no pose extractor (DWPose files / MediaPipe) available",
    "duplicate": "the same content as another video of the folder",
}


# ------------------------------------------------------------------------------------------ hashing
def _sha256_file(path: Path, h: Optional[Any] = None) -> str:
    h = h or hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class DigestIndex:
    """sha256 of files, remembered by (absolute path, size, mtime) in ``<cache>/digests.json``."""

    def __init__(self, cache: Path) -> None:
        self.path = cache / "digests.json"
        try:
            self.entries: dict[str, Any] = json.loads(self.path.read_text()) if self.path.is_file() else {}
        except (OSError, ValueError):
            self.entries = {}
        self.dirty = False

    def digest(self, path: Path) -> str:
        path = Path(path)
        if path.is_dir():
            h = hashlib.sha256()
            for p in sorted(path.iterdir()):
                if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS:
                    h.update(p.name.encode())
                    h.update(self.digest(p).encode())
            return h.hexdigest()
        st = path.stat()
        key = str(path.resolve())
        entry = self.entries.get(key)
        if entry and entry[0] == st.st_size and entry[1] == st.st_mtime_ns:
            return entry[2]
        value = _sha256_file(path)
        self.entries[key] = [st.st_size, st.st_mtime_ns, value]
        self.dirty = True
        return value

    def save(self) -> None:
        if self.dirty:
            atomic_write_text(self.path, json.dumps(self.entries))
            self.dirty = False


def key_of(*parts: Any) -> str:
    """A short stable hash of JSON-serialisable parts."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def tensor_fingerprint(tensors: Iterable[tuple[str, torch.Tensor]]) -> str:
    h = hashlib.sha256()
    for name, t in tensors:
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu").contiguous().view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()[:32]


# ------------------------------------------------------------------------------------------ atomic files
def atomic_write_bytes(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


class AtomicDir:
    """``with AtomicDir(final) as tmp: write into tmp`` -> renamed to ``final`` only when the block succeeds."""

    def __init__(self, final: Path) -> None:
        self.final = Path(final)

    def __enter__(self) -> Path:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{self.final.name}-", dir=self.final.parent))
        return self.tmp

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if exc_type is not None:
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        for p in self.tmp.iterdir():
            if p.is_file():
                with open(p, "rb") as f:
                    os.fsync(f.fileno())
        if self.final.exists():  # another process finished the same content first
            shutil.rmtree(self.tmp, ignore_errors=True)
            return
        os.replace(self.tmp, self.final)


def clean_stale_temporaries(folder: Path) -> None:
    """Remove ``.tmp-*`` folders/files an interrupted run left behind (never complete entries)."""
    if not folder.is_dir():
        return
    for p in folder.rglob(".tmp-*"):
        shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)


# ------------------------------------------------------------------------------------------ geometry
def fit_image(image: np.ndarray, width: int, height: int, mode: str) -> np.ndarray:
    """uint8 ``(h, w, 3)`` -> ``(height, width, 3)`` with exactly the geometry of :func:`pose.fitting.fit_frame`.

    ``stretch`` is the official squash resize (PIL bilinear); ``crop`` resamples the exact source box
    that covers the target; ``pad`` resamples the source into the whole-pixel part of its exact
    target rectangle and leaves black borders (at most one pixel of image is lost at a fractional edge).
    """
    sh, sw = image.shape[:2]
    if (sw, sh) == (width, height):
        return np.ascontiguousarray(image)  # every mode is the identity: no resampling
    if mode == "stretch":
        return squash_resize_u8(image, (width, height))
    sx, sy, ox, oy = fit_geometry((sw, sh), (width, height), mode)  # type: ignore[arg-type]
    src = Image.fromarray(np.ascontiguousarray(image))
    if mode == "crop":
        box = (ox / sx, oy / sy, (ox + width) / sx, (oy + height) / sy)
        return np.asarray(src.resize((width, height), Image.BILINEAR, box=box), dtype=np.uint8)
    x0, y0 = int(np.ceil(-ox - 1e-9)), int(np.ceil(-oy - 1e-9))
    x1, y1 = int(np.floor(-ox + sw * sx + 1e-9)), int(np.floor(-oy + sh * sy + 1e-9))
    x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    out = np.zeros((height, width, 3), dtype=np.uint8)
    box = ((x0 + ox) / sx, (y0 + oy) / sy, (x1 + ox) / sx, (y1 + oy) / sy)
    out[y0:y1, x0:x1] = np.asarray(src.resize((x1 - x0, y1 - y0), Image.BILINEAR, box=box), dtype=np.uint8)
    return out


# ------------------------------------------------------------------------------------------ sources
@dataclass(frozen=True)
class VideoSource:
    """One training video and its optional sidecars."""

    name: str
    path: Path
    pose_file: Optional[Path] = None
    reference_image: Optional[Path] = None
    reference_pose_file: Optional[Path] = None


REFERENCE_TAGS = (".ref", "_ref")


def _sidecar(base: Path, suffixes: Sequence[str]) -> Optional[Path]:
    for tag in REFERENCE_TAGS:
        for s in suffixes:
            for candidate in (base.with_name(base.name + tag + s), base.with_name(base.name + tag + s.upper())):
                if candidate.is_file():
                    return candidate
    return None


def discover_videos(folder: Path) -> list[VideoSource]:
    """Every video file, animated image and image folder directly inside ``folder``, with sidecars.

    Sidecars of ``dance.mp4``: ``dance.json`` (poses), ``dance.ref.png|jpg|jpeg|webp`` or
    ``dance_ref.png|...`` (reference image) and ``dance.ref.json`` / ``dance_ref.json`` (its pose).
    Files that are sidecars are never videos themselves.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"data.videos {folder} is not a folder; put the training videos in one folder and give its path.")
    entries = sorted(folder.iterdir())
    candidates: list[tuple[Path, Path]] = []
    for p in entries:
        if p.name.startswith("."):
            continue
        suffix = p.suffix.lower()
        if p.is_dir():
            if not any(c.is_file() and c.suffix.lower() in IMAGE_EXTENSIONS for c in p.iterdir()):
                continue
            candidates.append((p, p.with_suffix("") if suffix else p))
        elif suffix in VIDEO_EXTENSIONS or suffix in (ANIMATED_IMAGE_EXTENSIONS - {".png"}):
            candidates.append((p, p.with_suffix("")))
    out = []
    sidecars: set[Path] = set()
    for p, base in candidates:
        pose = base.with_name(base.name + ".json")
        ref = _sidecar(base, REFERENCE_SUFFIXES)
        ref_pose = _sidecar(base, (".json",))
        sidecars |= {x for x in (ref, ref_pose) if x is not None}
        out.append(VideoSource(p.name, p, pose if pose.is_file() else None, ref, ref_pose))
    return [v for v in out if v.path not in sidecars]


# ------------------------------------------------------------------------------------------ poses
PoseFn = Callable[[list[np.ndarray]], list[PoseFrame]]


@dataclass
class PoseSource:
    """How poses are obtained for videos without a sidecar: ``detect(frames) -> PoseFrame per frame``."""

    name: str
    identity: str
    detect: Optional[PoseFn]


def resolve_pose_source(choice: str, search_dirs: Sequence[str], needed: bool) -> PoseSource:
    """The extractor for videos without sidecars (``needed`` False: none is required)."""
    if choice == "sidecar" or not needed:
        return PoseSource("sidecar", "sidecar", None)
    from ..pipeline.models import DWPOSE_NAMES, find_first, search_dirs as model_dirs
    from ..pipeline.poses import choose_extractor

    dirs = [Path(d) for d in search_dirs] + model_dirs()
    det, pose = (find_first((n,), dirs) for n in DWPOSE_NAMES)
    files = (det, pose) if det is not None and pose is not None else None
    backend = "auto" if choice == "auto" else choice
    try:
        name, extractor = choose_extractor(backend, files, has_keypoints=False)
    except UniAnimateError as exc:
        raise DataError(f"some videos have no `<name>.json` pose sidecar, and no pose extractor is available: {exc}") from exc
    if name == "dwpose" and files is not None:
        identity = "dwpose:" + key_of(_sha256_file(files[0]), _sha256_file(files[1]))
    else:
        import importlib.metadata

        try:
            identity = f"{name}:{importlib.metadata.version(name)}"
        except importlib.metadata.PackageNotFoundError:
            identity = name
    return PoseSource(name, identity, extractor.driving)  # type: ignore[union-attr]


def _one_person(frame: PoseFrame) -> Optional[Person]:
    person = select_person(frame)
    return person if has_body(person) else None


def _pose_arrays(frames: Sequence[PoseFrame], width: int, height: int, fit: str) -> dict[str, np.ndarray]:
    n = len(frames)
    kp = np.zeros((n, NUM_KEYPOINTS, 2), dtype=np.float32)
    scores = np.zeros((n, NUM_KEYPOINTS), dtype=np.float32)
    present = np.zeros(n, dtype=bool)
    for i, frame in enumerate(frames):
        person = _one_person(frame)
        if person is None:
            continue
        fitted = fit_frame(PoseFrame(frame.width, frame.height, [person]), width, height, fit)  # type: ignore[arg-type]
        kp[i] = fitted.people[0].keypoints
        scores[i] = fitted.people[0].scores
        present[i] = True
    return {"keypoints": kp, "scores": scores, "present": present}


def person_of(keypoints: np.ndarray, scores: np.ndarray) -> Person:
    return Person(keypoints.astype(np.float64), scores.astype(np.float64))


# ------------------------------------------------------------------------------------------ report
@dataclass
class DataReport:
    """What preparation made of the folder: usable videos, and every skipped one with its reason."""

    videos_found: int = 0
    used: list[str] = field(default_factory=list)
    validation: list[str] = field(default_factory=list)
    skipped: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    frames: int = 0
    prepared_now: int = 0

    def skip(self, name: str, reason: str, detail: str = "") -> None:
        self.skipped.append({"video": name, "reason": reason, "detail": detail})

    @property
    def counts(self) -> dict[str, int]:
        return dict(Counter(s["reason"] for s in self.skipped))

    def summary(self) -> str:
        lines = [f"data: {self.videos_found} videos found, {len(self.used)} used for training, "
                 f"{len(self.validation)} held out for validation, {len(self.skipped)} skipped "
                 f"({self.frames} frames; {self.prepared_now} prepared now, the rest from the cache)"]
        for reason, n in sorted(self.counts.items()):
            names = [s["video"] for s in self.skipped if s["reason"] == reason]
            shown = ", ".join(names[:3]) + (f" (+{len(names) - 3} more)" if len(names) > 3 else "")
            lines.append(f"  skipped {n} x {reason}: {SKIP_REASONS.get(reason, '')} [{shown}]")
        lines += [f"  note: {n}" for n in self.notes]
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"videos_found": self.videos_found, "used": self.used, "validation": self.validation,
                "skipped_counts": self.counts, "skipped": self.skipped, "notes": self.notes, "frames": self.frames}


# ------------------------------------------------------------------------------------------ prepared videos
@dataclass
class PreparedVideo:
    """A usable video: where its cached arrays are and what they hold."""

    name: str
    key: str
    folder: Path
    latents: Path
    clip: Path
    num_frames: int
    fps: float
    present: np.ndarray  # (N,) bool: a person was found in frame i
    has_reference_image: bool

    def frames(self) -> np.ndarray:
        return np.load(self.folder / "frames.npy", mmap_mode="r")

    def poses(self) -> dict[str, np.ndarray]:
        with np.load(self.folder / "poses.npz") as z:
            return {k: z[k] for k in z.files}

    def reference(self) -> Optional[dict[str, np.ndarray]]:
        if not self.has_reference_image:
            return None
        with np.load(self.folder / "reference.npz") as z:
            return {k: z[k] for k in z.files}


class SkipVideo(Exception):
    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class Geometry:
    width: int
    height: int
    fit: str
    frame_stride: int
    max_frames: int
    min_frames: int


def _read_sidecar_poses(path: Path, canvas: tuple[int, int]) -> list[PoseFrame]:
    try:
        text = path.read_text(encoding="utf-8")
        data = json.loads(text)
        if isinstance(data, dict) and data.get("format") == "unianimate-wholebody134":
            from ..pipeline.poses import load_keypoints_file

            return load_keypoints_file(path)[1]
        return from_pose_keypoint(data, canvas=canvas)
    except (OSError, ValueError, UniAnimateError) as exc:
        raise SkipVideo("bad_pose_file", f"{path.name}: {exc}") from exc


def _prepare_video(src: VideoSource, geo: Geometry, pose_source: PoseSource, out: Path) -> dict[str, Any]:
    """Decode, fit, pose one video into ``out`` (a temporary folder). Returns the meta dict."""
    try:
        stream = stream_clip(src.path, step=geo.frame_stride, limit=geo.max_frames or None)
    except UniAnimateError as exc:
        raise SkipVideo("undecodable", str(exc)) from exc
    fitted: list[np.ndarray] = []
    pose_frames: list[PoseFrame] = []
    sidecar: Optional[list[PoseFrame]] = None
    pending: list[np.ndarray] = []
    source_size: Optional[tuple[int, int]] = None

    def flush() -> None:
        if pending:
            assert pose_source.detect is not None
            pose_frames.extend(pose_source.detect(list(pending)))
            pending.clear()

    try:
        for i, frame in enumerate(stream.frames):
            if source_size is None:
                source_size = (frame.shape[1], frame.shape[0])
                if src.pose_file is not None:
                    sidecar = _read_sidecar_poses(src.pose_file, source_size)
            fitted.append(fit_image(frame, geo.width, geo.height, geo.fit))
            if sidecar is None:
                pending.append(frame)
                if len(pending) >= POSE_CHUNK:
                    flush()
        flush()
    except UniAnimateError as exc:
        raise SkipVideo("undecodable", str(exc)) from exc
    except (RuntimeError, OSError, ValueError) as exc:  # decoder failures that are not MediaError
        raise SkipVideo("undecodable", f"{type(exc).__name__}: {exc}") from exc
    if not fitted:
        raise SkipVideo("undecodable", "no frames")
    if sidecar is not None:
        wanted = [i * geo.frame_stride for i in range(len(fitted))]
        if len(sidecar) <= wanted[-1]:
            raise SkipVideo("pose_count_mismatch", f"{src.pose_file.name} has {len(sidecar)} entries, the video "  # type: ignore[union-attr]
                                                   f"has at least {wanted[-1] + 1} frames")
        pose_frames = [sidecar[i] for i in wanted]
    if len(fitted) < geo.min_frames:
        raise SkipVideo("too_short", f"{len(fitted)} frames after the stride of {geo.frame_stride}, "
                                     f"a clip needs {geo.min_frames}")
    poses = _pose_arrays(pose_frames, geo.width, geo.height, geo.fit)
    if not poses["present"].any():
        raise SkipVideo("no_person", f"none of {len(fitted)} frames")
    has_ref = False
    if src.reference_image is not None:
        has_ref = _prepare_reference(src, geo, pose_source, out)
    np.save(out / "frames.npy", np.stack(fitted))
    np.savez(out / "poses.npz", **poses)
    return {"name": src.name, "frames": len(fitted), "fps": float(stream.fps), "width": geo.width,
            "height": geo.height, "reference_image": has_ref, "present": poses["present"].tolist()}


def _prepare_reference(src: VideoSource, geo: Geometry, pose_source: PoseSource, out: Path) -> bool:
    try:
        image = read_image(src.reference_image)  # type: ignore[arg-type]
    except UniAnimateError as exc:
        raise SkipVideo("bad_reference", str(exc)) from exc
    canvas = (image.shape[1], image.shape[0])
    if src.reference_pose_file is not None:
        frames = _read_sidecar_poses(src.reference_pose_file, canvas)
        if not frames:
            raise SkipVideo("bad_reference", f"{src.reference_pose_file.name} holds no pose")
        frame = frames[0]
    elif pose_source.detect is not None:
        frame = pose_source.detect([image])[0]
    else:
        raise SkipVideo("bad_reference", f"{src.reference_image.name} has no pose: add "  # type: ignore[union-attr]
                                         f"{Path(src.name).stem}.ref.json (POSE_KEYPOINT) or a pose extractor")
    arrays = _pose_arrays([frame], geo.width, geo.height, geo.fit)
    if not arrays["present"][0]:
        raise SkipVideo("bad_reference", f"no person found in {src.reference_image.name}")  # type: ignore[union-attr]
    np.savez(out / "reference.npz", image=fit_image(image, geo.width, geo.height, geo.fit),
             keypoints=arrays["keypoints"][0], scores=arrays["scores"][0])
    return True


# ------------------------------------------------------------------------------------------ encoding
def _encode_all(images: Iterable[np.ndarray], batch: int, fn: Callable[[list[np.ndarray]], torch.Tensor]) -> torch.Tensor:
    out, chunk = [], []
    for image in images:
        chunk.append(image)
        if len(chunk) == batch:
            out.append(fn(chunk).float().cpu())
            chunk = []
    if chunk:
        out.append(fn(chunk).float().cpu())
    return torch.cat(out)


def _with_reference(video: PreparedVideo) -> Iterator[np.ndarray]:
    frames = video.frames()
    for i in range(frames.shape[0]):
        yield np.asarray(frames[i])
    ref = video.reference()
    if ref is not None:
        yield ref["image"]


def encode_latents(video: PreparedVideo, vae: Any, batch: int, dtype: torch.dtype, device: torch.device) -> None:
    from safetensors.torch import save_file

    def run(chunk: list[np.ndarray]) -> torch.Tensor:
        pixels = torch.from_numpy(np.stack(chunk)).permute(0, 3, 1, 2).float().div(255.0)
        with torch.no_grad():
            return vae.encode_moments(vae_input(pixels).to(device))

    moments = _encode_all(_with_reference(video), batch, run)
    if not torch.isfinite(moments).all():
        raise SkipVideo("encode_failed", "VAE moments contain NaN/inf")
    with AtomicDir(video.latents.parent) as tmp:
        save_file({"moments": moments.to(dtype).contiguous()}, str(tmp / "data.safetensors"))


def encode_clip(video: PreparedVideo, encoder: Any, batch: int, device: torch.device) -> None:
    from safetensors.torch import save_file

    def run(chunk: list[np.ndarray]) -> torch.Tensor:
        pixels = torch.cat([clip_input(im) for im in chunk])
        with torch.no_grad():
            return encoder.encode_image(pixels.to(device))

    embeds = _encode_all(_with_reference(video), batch, run)
    if not torch.isfinite(embeds).all():
        raise SkipVideo("encode_failed", "CLIP embeddings contain NaN/inf")
    with AtomicDir(video.clip.parent) as tmp:
        save_file({"embeds": embeds.float().contiguous()}, str(tmp / "data.safetensors"))


# ------------------------------------------------------------------------------------------ the stage
@dataclass
class PreparedData:
    train: list[PreparedVideo]
    validation: list[PreparedVideo]
    report: DataReport


def prepare_data(sources: Sequence[VideoSource], cache: Path, geo: Geometry, pose_choice: str,
                 pose_dirs: Sequence[str], encoders: Any, latent_dtype: str, encode_batch: int,
                 validation_videos: int, rank: int = 0, world: int = 1,
                 progress: Optional[Callable[[int, int, str], None]] = None) -> PreparedData:
    """Prepare (or find in the cache) every source; with ``world`` > 1 each rank prepares its share.

    ``encoders``: an object with ``vae``, ``clip`` (``LatentCodec`` / ``ImageEncoder``), ``vae_id``,
    ``clip_id`` (fingerprints) and ``device``. Returns the usable videos split into train/validation
    (content-hash order) and the report. Raises :class:`DataError` only when nothing is usable or
    the cache cannot be written (e.g. a full disk): those stop every video alike.
    """
    cache = Path(cache)
    try:
        (cache / "videos").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(f"cannot create the data cache {cache}: {exc}. Set data.cache_dir to a writable folder.") from exc
    clean_stale_temporaries(cache)
    digests = DigestIndex(cache)
    report = DataReport(videos_found=len(sources))
    if pose_choice == "sidecar":
        missing = [s.name for s in sources if s.pose_file is None]
        for name in missing:
            report.skip(name, "bad_pose_file", "data.poses is `sidecar` but there is no <name>.json")
        sources = [s for s in sources if s.pose_file is not None]
    def needs(s: VideoSource) -> bool:
        return s.pose_file is None or (s.reference_image is not None and s.reference_pose_file is None)

    try:
        pose_source = resolve_pose_source(pose_choice, pose_dirs, any(needs(s) for s in sources))
    except DataError as exc:
        # With data.poses = auto, videos with sidecars still train; the others are reported.
        if pose_choice != "auto" or all(needs(s) for s in sources):
            raise
        for s in sources:
            if needs(s):
                report.skip(s.name, "no_pose_source", str(exc).split(": ", 1)[-1])
        sources = [s for s in sources if not needs(s)]
        pose_source = PoseSource("sidecar", "sidecar", None)
    latent_torch_dtype = torch.float16 if latent_dtype == "fp16" else torch.float32
    seen: dict[str, str] = {}
    usable: list[PreparedVideo] = []
    for index, src in enumerate(sources):
        if progress is not None:
            progress(index, len(sources), src.name)
        try:
            video = _prepare_one(src, cache, geo, pose_source, digests, encoders, latent_dtype, latent_torch_dtype,
                                 encode_batch, report, mine=(index % world == rank), seen=seen)
        except SkipVideo as skip:
            report.skip(src.name, skip.reason, skip.detail)
            continue
        except OSError as exc:
            if exc.errno in (28, 122):  # ENOSPC, EDQUOT: every later video would fail the same way
                raise DataError(f"the disk of the data cache {cache} is full ({exc}); free space or set "
                                "data.cache_dir to a larger disk. Everything prepared so far is kept.") from exc
            report.skip(src.name, "undecodable", f"{type(exc).__name__}: {exc}")
            continue
        if video is not None:
            usable.append(video)
    if progress is not None:
        progress(len(sources), len(sources), "")
    try:
        digests.save()
    except OSError:
        pass
    usable.sort(key=lambda v: v.key)
    n_val = validation_videos if len(usable) > validation_videos else 0
    if validation_videos and not n_val and usable:
        report.notes.append(f"only {len(usable)} usable video(s): none held out for validation "
                            f"(data.validation_videos = {validation_videos})")
    validation, train = usable[:n_val], usable[n_val:]
    report.used = [v.name for v in train]
    report.validation = [v.name for v in validation]
    report.frames = sum(v.num_frames for v in usable)
    return PreparedData(train, validation, report)


def _prepare_one(src: VideoSource, cache: Path, geo: Geometry, pose_source: PoseSource, digests: DigestIndex,
                 encoders: Any, latent_dtype: str, latent_torch_dtype: torch.dtype, encode_batch: int,
                 report: DataReport, mine: bool, seen: dict[str, str]) -> Optional[PreparedVideo]:
    try:
        content = digests.digest(src.path)
    except OSError as exc:
        raise SkipVideo("undecodable", f"cannot read it: {exc}") from exc
    uses_sidecar = src.pose_file is not None
    parts = {
        "v": PREP_VERSION, "content": content, "geometry": geo.__dict__,
        "poses": ("sidecar:" + digests.digest(src.pose_file)) if uses_sidecar else pose_source.identity,  # type: ignore[arg-type]
        "ref": digests.digest(src.reference_image) if src.reference_image else None,
        "ref_pose": (digests.digest(src.reference_pose_file) if src.reference_pose_file
                     else (pose_source.identity if src.reference_image else None)),
    }
    vkey = key_of(parts)
    if vkey in seen:
        raise SkipVideo("duplicate", f"same content as {seen[vkey]}")
    seen[vkey] = src.name
    folder = cache / "videos" / vkey
    if (folder / "skip.json").is_file():
        verdict = json.loads((folder / "skip.json").read_text())
        raise SkipVideo(verdict["reason"], verdict.get("detail", ""))
    if not (folder / "meta.json").is_file():
        if not mine:
            return None  # another rank prepares it; everyone reads it after the barrier
        try:
            with AtomicDir(folder) as tmp:
                meta = _prepare_video(src, geo, pose_source, tmp)
                atomic_write_text(tmp / "meta.json", json.dumps(meta))
        except SkipVideo as skip:
            with AtomicDir(folder) as tmp:
                atomic_write_text(tmp / "skip.json", json.dumps({"reason": skip.reason, "detail": skip.detail}))
            raise
        report.prepared_now += 1
    meta = json.loads((folder / "meta.json").read_text())
    lkey = key_of(vkey, encoders.vae_id, latent_dtype)
    ckey = key_of(vkey, encoders.clip_id)
    video = PreparedVideo(src.name, vkey, folder, cache / "latents" / lkey / "data.safetensors",
                          cache / "clip" / ckey / "data.safetensors", int(meta["frames"]), float(meta["fps"]),
                          np.asarray(meta["present"], dtype=bool), bool(meta["reference_image"]))
    if not video.latents.is_file():
        if not mine:
            return None
        encode_latents(video, encoders.vae, encode_batch, latent_torch_dtype, encoders.device)
    if not video.clip.is_file():
        if not mine:
            return None
        encode_clip(video, encoders.clip, encode_batch, encoders.device)
    return video


def write_report(report: DataReport, path: Path) -> None:
    atomic_write_text(path, json.dumps(report.to_dict(), indent=1))
