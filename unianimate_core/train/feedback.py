"""What a user watches during a run: the JSON-lines log, the loss-curve PNG and validation clips.

``train_log.jsonl`` holds one line per logged step (``{"step", "loss", "lr", "grad_norm",
"samples", "seconds", ...}``) and one per validation (``{"step", "val_loss"}``). ``loss.png`` is
redrawn from it (raw loss, its moving average, validation points); it is drawn with Pillow, so it
needs no plotting library. Validation clips are written as ``samples/step_NNNNNNN.mp4`` and a PNG
contact sheet: rows ground truth | pose | generated, a few frames across.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from .data import atomic_write_bytes, atomic_write_text


class TrainLog:
    def __init__(self, path: Path) -> None:
        self.path = path

    def truncate_after(self, step: int) -> None:
        """Drop entries later than ``step`` (written by a run that died after its last checkpoint)."""
        if not self.path.is_file():
            return
        kept = [line for line in self.read_raw() if json.loads(line).get("step", 0) <= step]
        atomic_write_text(self.path, "".join(line + "\n" for line in kept))

    def read_raw(self) -> list[str]:
        lines = []
        for line in self.path.read_text().splitlines():
            line = line.strip()
            if not line:
                continue
            try:
                json.loads(line)
            except ValueError:  # a line cut by a kill: ignore it
                continue
            lines.append(line)
        return lines

    def entries(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.read_raw()] if self.path.is_file() else []

    def append(self, entry: dict[str, Any]) -> None:
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(entry) + "\n")
            f.flush()


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1.0
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), default=raw)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step) + 1)]


def plot_losses(entries: Sequence[dict[str, Any]], path: Path, title: str = "training loss",
                size: tuple[int, int] = (900, 500)) -> Optional[Path]:
    """Draw the loss curve (log-scale y when it spans more than 10x) to ``path`` (PNG); None if no data."""
    train = [(e["step"], e["loss"]) for e in entries if "loss" in e and math.isfinite(e["loss"])]
    val = [(e["step"], e["val_loss"]) for e in entries if "val_loss" in e and math.isfinite(e["val_loss"])]
    if not train and not val:
        return None
    w, h = size
    left, right, top, bottom = 80, 20, 40, 50
    img = Image.new("RGB", size, "white")
    d = ImageDraw.Draw(img)
    font = _font(14)
    steps = [s for s, _ in train + val]
    values = [v for _, v in train + val]
    x0, x1 = min(steps), max(max(steps), min(steps) + 1)
    positive = all(v > 0 for v in values)
    log_y = positive and max(values) / max(min(values), 1e-12) > 10
    f = (lambda v: math.log10(v)) if log_y else (lambda v: v)
    y0, y1 = f(min(values)), f(max(values))
    if y1 - y0 < 1e-12:
        y0, y1 = y0 - 0.5, y1 + 0.5
    pad = 0.05 * (y1 - y0)
    y0, y1 = y0 - pad, y1 + pad

    def px(step: float, value: float) -> tuple[float, float]:
        return (left + (step - x0) / (x1 - x0) * (w - left - right),
                top + (1 - (f(value) - y0) / (y1 - y0)) * (h - top - bottom))

    for tick in _nice_ticks(y0, y1):
        y = top + (1 - (tick - y0) / (y1 - y0)) * (h - top - bottom)
        d.line([(left, y), (w - right, y)], fill=(230, 230, 230))
        label = f"{10 ** tick:.3g}" if log_y else f"{tick:.3g}"
        d.text((5, y - 7), label, fill="black", font=font)
    for tick in _nice_ticks(x0, x1):
        x = left + (tick - x0) / (x1 - x0) * (w - left - right)
        d.line([(x, top), (x, h - bottom)], fill=(240, 240, 240))
        d.text((x - 10, h - bottom + 5), f"{int(tick)}", fill="black", font=font)
    d.rectangle([left, top, w - right, h - bottom], outline="black")
    if len(train) > 1:
        d.line([px(s, v) for s, v in train], fill=(170, 190, 230), width=1)
        k = max(1, round(len(train) / 10))
        smooth = np.convolve([v for _, v in train], np.ones(k) / k, mode="valid")
        d.line([px(train[i + k - 1][0], float(v)) for i, v in enumerate(smooth)], fill=(20, 60, 160), width=3)
    for s, v in val:
        x, y = px(s, v)
        d.ellipse([x - 4, y - 4, x + 4, y + 4], fill=(200, 40, 40))
    d.text((left, 10), f"{title}{'  (log scale)' if log_y else ''}   blue: train (moving average), red: validation",
           fill="black", font=font)
    d.text((w // 2 - 20, h - 22), "step", fill="black", font=font)
    import io

    buf = io.BytesIO()
    img.save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path


def contact_sheet(rows: Sequence[Sequence[np.ndarray]], labels: Sequence[str], columns: int = 4,
                  banner: Optional[str] = None) -> np.ndarray:
    """Rows of frames (same count, uint8 (H, W, 3)) -> one image with ``columns`` evenly spaced frames per row."""
    n = len(rows[0])
    picks = sorted({round(i * (n - 1) / max(columns - 1, 1)) for i in range(min(columns, n))})
    h, w = rows[0][0].shape[:2]
    label_w = 90
    sheet = Image.new("RGB", (label_w + w * len(picks), h * len(rows) + (24 if banner else 0)), "white")
    d = ImageDraw.Draw(sheet)
    font = _font(max(10, min(16, h // 8)))
    y_off = 24 if banner else 0
    if banner:
        d.rectangle([0, 0, sheet.width, 22], fill=(200, 0, 0))
        d.text((4, 4), banner, fill="white", font=font)
    for r, (row, label) in enumerate(zip(rows, labels)):
        d.text((4, y_off + r * h + h // 2 - 8), label, fill="black", font=font)
        for c, i in enumerate(picks):
            sheet.paste(Image.fromarray(np.ascontiguousarray(row[i])), (label_w + c * w, y_off + r * h))
    return np.asarray(sheet)


def write_png(path: Path, image: np.ndarray) -> Path:
    import io

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    atomic_write_bytes(path, buf.getvalue())
    return path
