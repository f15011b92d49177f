"""Reading driving clips and writing result videos without ffmpeg on the PATH.

Reading accepts what users actually have: an mp4/webm/mkv/mov/avi (PyAV), an animated WebP/GIF/PNG
(Pillow, as ComfyUI's template media are animated WebP), a single still image, or a folder of
images (sorted by name, e.g. a pose folder of the official layout). Writing uses PyAV's H.264
encoder (``yuv420p`` so every player opens it).

Float frames become 8-bit either by rounding (the default here: unbiased, at most 0.5/255 off) or
by truncation (``astype(uint8)``, what the official code (docs/official_behaviour.md#uint8-truncation) and
ComfyUI's savers do; about
0.5/255 darker on average). Choose with ``to_uint8(..., mode=)`` / ``--uint8``.
"""
from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Literal, Sequence

import numpy as np
import torch
from PIL import Image, ImageSequence

from .errors import DependencyError, MediaError

VIDEO_EXTENSIONS = {".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg"}
ANIMATED_IMAGE_EXTENSIONS = {".gif", ".webp", ".png", ".apng"}
IMAGE_EXTENSIONS = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif"}

Rounding = Literal["round", "truncate"]


@dataclass
class Clip:
    """Decoded frames: ``frames`` uint8 ``(H, W, 3)`` RGB images, ``fps`` frames per second."""

    frames: list[np.ndarray]
    fps: float

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the first frame."""
        h, w = self.frames[0].shape[:2]
        return w, h


def _import_av():
    try:
        import av
    except ImportError as exc:
        raise DependencyError(
            f"reading and writing mp4/webm needs PyAV ({exc}); install it with `pip install av`, or "
            "pass the driving clip as an animated WebP/GIF or a folder of images."
        ) from exc
    return av


def _rgb(image: Image.Image) -> np.ndarray:
    return np.asarray(image.convert("RGB"), dtype=np.uint8).copy()


def _image_files(folder: Path) -> list[Path]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    # The official pose folders keep the reference pose next to the frames; it is not a frame.
    files = [p for p in files if p.stem != "ref_pose"]
    if not files:
        raise MediaError(f"the folder {folder} contains no images ({', '.join(sorted(IMAGE_EXTENSIONS))}).")
    return files


def _iter_folder(folder: Path, step: int) -> Iterator[np.ndarray]:
    size = None
    for p in _image_files(folder)[::step]:
        try:
            with Image.open(p) as im:
                frame = _rgb(im)
        except OSError as exc:
            raise MediaError(f"could not read the image {p}: {exc}.") from exc
        if size is not None and frame.shape[:2] != size:
            raise MediaError(f"the images in {folder} have different sizes ({size} and {frame.shape[:2]} at "
                             f"{p.name}); resize them to one size first.")
        size = frame.shape[:2]
        yield frame


def _iter_animated(path: Path, step: int, durations: list[float]) -> Iterator[np.ndarray]:
    try:
        with Image.open(path) as im:
            for i, frame in enumerate(ImageSequence.Iterator(im)):
                if i % step:
                    continue
                rgb = _rgb(frame)  # decoding the frame also fills its info (duration)
                durations.append(frame.info.get("duration", 0) or 0)
                yield rgb
    except OSError as exc:
        raise MediaError(f"could not read {path}: {exc}.") from exc


@contextlib.contextmanager
def _video_stream(path: Path) -> Iterator[Any]:
    """The first video stream of ``path`` (PyAV); decoding errors become a MediaError naming the fix."""
    av = _import_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise MediaError(f"{path} has no video stream.")
            yield container.streams.video[0]
    except av.error.FFmpegError as exc:  # type: ignore[attr-defined]
        raise MediaError(f"could not decode {path}: {exc}. Re-encode it as H.264 mp4 or pass a folder of images.") from exc


def _video_rate(path: Path) -> float:
    with _video_stream(path) as stream:
        return float(stream.average_rate or stream.guessed_rate or 8)


def _iter_video(path: Path, step: int) -> Iterator[np.ndarray]:
    with _video_stream(path) as stream:
        for i, frame in enumerate(stream.container.decode(stream)):
            if i % step == 0:
                yield frame.to_ndarray(format="rgb24")


def _limited(frames: Iterator[np.ndarray], limit: int | None) -> Iterator[np.ndarray]:
    for i, frame in enumerate(frames):
        if limit is not None and i >= limit:
            return
        yield frame


@dataclass
class FrameStream:
    """Frames decoded one at a time (a long clip never sits in memory in full).

    ``frames``: iterator of uint8 ``(H, W, 3)`` RGB frames (every ``step``-th, at most ``limit``);
    ``fps``: frame rate of the kept frames (for animated images, from the frame durations seen so far:
    exact once the iterator is exhausted). Decoding errors surface as :class:`MediaError` while iterating.
    """

    frames: Iterator[np.ndarray]
    _fps: Callable[[], float]

    @property
    def fps(self) -> float:
        return self._fps()


def stream_clip(path: str | os.PathLike, step: int = 1, limit: int | None = None) -> FrameStream:
    """Open a driving clip (video file, animated image, still image or folder of images) for streaming."""
    if step < 1:
        raise MediaError(f"frame step must be >= 1; got {step}.")
    p = Path(path)
    if not p.exists():
        raise MediaError(f"driving clip not found: {p}. Pass an existing video file, animated image or image folder.")
    if p.is_dir():
        _image_files(p)  # an empty folder is an error at once
        return FrameStream(_limited(_iter_folder(p, step), limit), lambda: 8.0)
    if p.suffix.lower() in IMAGE_EXTENSIONS | ANIMATED_IMAGE_EXTENSIONS and p.suffix.lower() not in VIDEO_EXTENSIONS:
        durations: list[float] = []

        def animated_fps() -> float:
            mean_ms = float(np.mean(durations)) if durations and np.mean(durations) > 0 else 125.0
            return 1000.0 / mean_ms / step

        return FrameStream(_limited(_iter_animated(p, step, durations), limit), animated_fps)
    rate = _video_rate(p) / step  # unknown containers: let FFmpeg try
    return FrameStream(_limited(_iter_video(p, step), limit), lambda: rate)


def read_clip(path: str | os.PathLike, limit: int | None = None, step: int = 1) -> Clip:
    """Read a driving clip (video file, animated image, still image or folder of images).

    ``limit`` stops after that many kept frames and ``step`` keeps every n-th frame (the fps is
    divided accordingly), so long clips need not be held in memory in full.
    """
    stream = stream_clip(path, step, limit)
    clip = Clip(list(stream.frames), stream.fps)
    if not clip.frames:
        raise MediaError(f"{Path(path)} contains no frames.")
    return clip


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read one RGB image as uint8 ``(H, W, 3)``, applying its EXIF orientation (as ``cv2.imread`` does)."""
    p = Path(path)
    if p.is_dir():
        raise MediaError(f"{p} is a folder; the reference must be one image file (png, jpg, webp ...).")
    if not p.is_file():
        raise MediaError(f"reference image not found: {p}.")
    try:
        from PIL import ImageOps

        with Image.open(p) as im:
            return _rgb(ImageOps.exif_transpose(im))
    except OSError as exc:
        raise MediaError(f"could not read the image {p}: {exc}.") from exc


def to_uint8(frames: torch.Tensor | np.ndarray, mode: Rounding = "round") -> np.ndarray:
    """Float frames in [0, 1] (``(N, H, W, 3)`` or ``(N, 3, H, W)`` tensor) -> uint8 ``(N, H, W, 3)``.

    ``mode="round"``: nearest 8-bit level. ``mode="truncate"``: ``astype(uint8)`` of ``x * 255``
    (official, docs/official_behaviour.md#uint8-truncation, and ComfyUI's savers).
    """
    if isinstance(frames, torch.Tensor):
        x = frames.detach().to("cpu", torch.float32)
        if x.ndim == 4 and x.shape[1] == 3 and x.shape[-1] != 3:
            x = x.permute(0, 2, 3, 1)
        arr = x.numpy()
    else:
        arr = np.asarray(frames, dtype=np.float32)
    if arr.ndim != 4 or arr.shape[-1] != 3:
        raise MediaError(f"expected frames (N, H, W, 3); got {arr.shape}.")
    if not np.isfinite(arr).all():
        raise MediaError("the frames contain NaN or infinite values; the model or VAE produced invalid output.")
    scaled = np.clip(arr, 0.0, 1.0) * 255.0
    if mode == "round":
        return np.rint(scaled).astype(np.uint8)
    if mode == "truncate":
        return scaled.astype(np.uint8)
    raise MediaError(f"uint8 conversion must be 'round' or 'truncate'; got {mode!r}.")


def _even(frame: np.ndarray) -> np.ndarray:
    """Pad odd sizes by repeating the last row/column: H.264 in yuv420p needs even sizes."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge") if (h % 2 or w % 2) else frame


def write_video(path: str | os.PathLike, frames: Iterable[np.ndarray] | Sequence[np.ndarray], fps: float = 8.0,
                crf: int = 18) -> Path:
    """Write uint8 ``(H, W, 3)`` frames as an H.264 mp4 (yuv420p, odd sizes padded by one pixel).

    The file is written to ``<path>.part`` and renamed at the end, so a crash or Ctrl-C never leaves
    a truncated file under the final name.
    """
    av = _import_av()
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".part")
    it = iter(frames)
    try:
        first = _even(np.asarray(next(it), dtype=np.uint8))
    except StopIteration:
        raise MediaError("no frames to write.") from None
    h, w = first.shape[:2]
    from fractions import Fraction

    rate = Fraction(fps).limit_denominator(1001)
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream("libx264", rate=rate)
            stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
            stream.options = {"crf": str(crf), "preset": "medium"}
            for frame in _chain(first, it):
                frame = _even(np.asarray(frame, dtype=np.uint8))
                if frame.shape[:2] != (h, w):
                    raise MediaError(f"all frames must have one size; got {frame.shape[:2]} after {(h, w)}.")
                for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
    except BaseException:  # an error or Ctrl-C: leave no half-written .part behind
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, out)
    return out


def _chain(first: np.ndarray, rest: Iterable[np.ndarray]) -> Iterable[np.ndarray]:
    yield first
    yield from rest


def probe_video(path: str | os.PathLike) -> tuple[int, int, int]:
    """(frames, width, height) of a video file, counted by decoding it (proves it is decodable)."""
    clip = read_clip(path)
    w, h = clip.size
    return len(clip.frames), w, h
