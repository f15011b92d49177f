"""Draw the Templates-browser thumbnails of the shipped workflows (``workflows/<name>.jpg``).

ComfyUI's Templates browser shows ``<workflow name>.jpg`` next to each workflow of a pack. The
thumbnails are drawn from the demo media (``demo/``, MIT) and this pack's own pose renderer: the
reference photo, the aligned driving poses in the colours UniAnimate was trained on and what the
workflow makes of them. They show inputs only - no generated frame (none can be made here without
the real model), so nothing is passed off as a result.

    python tests/make_workflow_thumbnails.py        # rewrites workflows/*.jpg
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

REPO = Path(__file__).resolve().parents[1]
SIZE = 512
BACKGROUND = (30, 31, 36)
ACCENT = (110, 170, 255)
TEXT = (235, 235, 240)
MUTED = (160, 162, 170)

#: workflow name -> (title, subtitle, how many poses to show, layout)
CARDS = {
    "1 - Short clip": ("Short clip", "photo + driving video -> up to ~64 frames", 4, "row"),
    "2 - Long video, sliding windows": ("Long video", "overlapping windows, denoised together", 8, "windows"),
    "3 - Long video, continuation": ("Long video", "segment after segment, first-frame hand-over", 8, "segments"),
    "4 - Repose a single image": ("Repose", "photo + a pose -> one image", 1, "single"),
    "5 - Short clip, small downloads": ("Short clip", "no 5 GB SD 2.1 checkpoint: VAE + cached context", 4, "row"),
    "6 - Short clip, KSampler": ("Short clip", "ComfyUI's KSampler on the UniAnimate MODEL", 4, "row"),
    "7 - Long video, context windows": ("Long video", "ComfyUI's Context Windows + KSampler", 8, "windows"),
}


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


def demo_inputs(n: int) -> tuple[Image.Image, list[Image.Image]]:
    """The demo reference photo and ``n`` aligned driving poses, rendered at 128 x 256 (trained colours)."""
    sys.path.insert(0, str(REPO))
    from unianimate_core.pipeline.poses import prepare_poses
    from unianimate_core.pipeline.video import read_image

    reference = read_image(REPO / "demo" / "reference.png")
    indices = np.linspace(0, 15, n).round().astype(int).tolist() if n > 1 else [10]
    stage = prepare_poses(reference, [np.zeros((8, 8, 3), np.uint8)] * 16, indices, (128, 256), backend="keypoints",
                          keypoints_file=REPO / "demo" / "driving_keypoints.json")
    return Image.fromarray(reference), [Image.fromarray(p) for p in stage.poses]


def _framed(img: Image.Image, box: tuple[int, int, int, int], draw: ImageDraw.ImageDraw) -> None:
    x0, y0, x1, y1 = box
    canvas = draw._image  # type: ignore[attr-defined]
    canvas.paste(img.resize((x1 - x0, y1 - y0), Image.BILINEAR), (x0, y0))
    draw.rectangle(box, outline=(70, 72, 80), width=2)


def thumbnail(name: str) -> Image.Image:
    title, subtitle, n, layout = CARDS[name]
    reference, poses = demo_inputs(n)
    card = Image.new("RGB", (SIZE, SIZE), BACKGROUND)
    draw = ImageDraw.Draw(card)
    _framed(reference.crop((40, 0, 360, 400)), (24, 24, 200, 244), draw)  # the person
    draw.text((212, 120), "+", fill=ACCENT, font=_font(40))
    if layout == "single":
        _framed(poses[0], (250, 24, 360, 244), draw)
        draw.text((372, 120), "->", fill=ACCENT, font=_font(34))
        draw.rectangle((420, 24, 488, 244), outline=ACCENT, width=3)
        draw.text((454, 134), "1 frame", fill=ACCENT, font=_font(16), anchor="mm")
    else:
        per_row = 4
        w, h = 62, 124
        for i, pose in enumerate(poses):
            r, c = divmod(i, per_row)
            x, y = 250 + c * (w + 2), 24 + r * (h - 4 if n > per_row else h)
            _framed(pose, (x, y, x + w - 4, y + (h - 8 if n > per_row else 2 * h - 28)), draw)
        if layout == "windows":  # two overlapping windows under the pose grid
            draw.line((250, 258, 250 + 160, 258), fill=ACCENT, width=5)
            draw.line((250 + 96, 270, 250 + 252, 270), fill=(230, 150, 90), width=5)
        elif layout == "segments":
            for k in range(3):
                x = 250 + 86 * k
                draw.line((x, 262, x + 76, 262), fill=ACCENT if k % 2 == 0 else (230, 150, 90), width=5)
    draw.text((24, 300), title, fill=TEXT, font=_font(46))
    draw.text((24, 360), subtitle, fill=MUTED, font=_font(21))
    draw.text((24, 450), "UniAnimate", fill=ACCENT, font=_font(26))
    draw.text((SIZE - 24, 458), name.split(" - ")[0], fill=MUTED, font=_font(22), anchor="ra")
    return card


def main() -> None:
    for name in CARDS:
        out = REPO / "workflows" / f"{name}.jpg"
        thumbnail(name).save(out, "JPEG", quality=88, optimize=True)
        print(f"wrote {out.relative_to(REPO)} ({out.stat().st_size // 1024} KB)")


if __name__ == "__main__":
    main()
