"""A small autoencoder for the synthetic world: the SD VAE's stand-in (8x reduction, 4 latent channels).

It implements the pipeline's :class:`~unianimate_core.pipeline.encoders.LatentCodec` protocol, so it
plugs in wherever the VAE does (pipeline, sampler decode, trainer caches):

* ``encode_moments(pixels)``: ``(B, 3, H, W)`` in [-1, 1] -> ``(B, 8, H/8, W/8)`` = (mean, log-variance);
* ``decode(latents)``: ``(B, 4, h, w)`` *unscaled* latents -> ``(B, 3, 8h, 8w)`` in about [-1, 1].

Scale convention (the same as SD): the UNet works on ``latent * 0.18215``. The encoder's raw output
is normalised per channel with the mean/std measured on training-split frames after training
(buffers ``latent_mean``/``latent_std``) and divided by 0.18215, so on the world's frames
``0.18215 * mean`` has about zero mean and unit standard deviation per channel - what the UNet's
noise schedule assumes. The posterior is nearly deterministic: a fixed log-variance whose standard
deviation is :data:`POSTERIOR_STD` (0.02) in the UNet's scale; the decoder was trained with that
noise and more (:data:`TRAIN_NOISE`), so it tolerates imperfect latents.

The weights (about 1.3 MB, float32 safetensors) ship with the package (``weights/toy_codec.safetensors``)
and are regenerated, deterministically for a given machine, by::

    python -m unianimate_core.toyworld train-codec [--out PATH] [--steps N] [--seed S]

(about ten minutes on two CPU cores; see docs/observatory.md for the measured reconstruction PSNR).
"""
from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor, nn

from ..pipeline.conditioning import LATENT_SCALE
from .errors import ToyWorldError

WEIGHTS_PATH = Path(__file__).resolve().parent / "weights" / "toy_codec.safetensors"
LATENT_CHANNELS = 4
FACTOR = 8
#: Posterior standard deviation in the UNet's (x 0.18215) scale.
POSTERIOR_STD = 0.02
#: Largest latent noise (UNet scale) the decoder sees in training (uniform in [0, TRAIN_NOISE] per sample).
TRAIN_NOISE = 0.1
WIDTH = 64
REFINE = 16


class ToyAutoencoder(nn.Module):
    """Patch autoencoder, factor 8, ``LATENT_CHANNELS`` channels (about 160 k parameters).

    Almost all work happens at latent resolution, so it trains in minutes on a CPU: the encoder
    embeds each 8x8 patch (an 8x8 stride-8 convolution), mixes neighbouring patches with a 3x3
    convolution and projects to 4 channels; the decoder mixes a 5x5 neighbourhood of latents (two
    3x3 convolutions after the input one), predicts each 8x8 patch with a 1x1 convolution +
    pixel shuffle, and a small full-resolution residual refinement (two 3x3 convolutions) smooths
    the patch seams. ``encode_raw``/``decode_raw`` work on the raw latent; :class:`ToyCodec` adds
    the normalisation.
    """

    def __init__(self, width: int = WIDTH, refine: int = REFINE) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(3, width, FACTOR, stride=FACTOR), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, LATENT_CHANNELS, 3, padding=1),
        )
        self.decoder = nn.Sequential(
            nn.Conv2d(LATENT_CHANNELS, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, width, 3, padding=1), nn.SiLU(),
            nn.Conv2d(width, 3 * FACTOR * FACTOR, 1), nn.PixelShuffle(FACTOR),
        )
        self.refine = nn.Sequential(nn.Conv2d(3, refine, 3, padding=1), nn.SiLU(), nn.Conv2d(refine, 3, 3, padding=1))
        self.register_buffer("latent_mean", torch.zeros(LATENT_CHANNELS))
        self.register_buffer("latent_std", torch.ones(LATENT_CHANNELS))

    def encode_raw(self, x: Tensor) -> Tensor:
        return self.encoder(x)

    def decode_raw(self, z: Tensor) -> Tensor:
        coarse = self.decoder(z)
        return coarse + self.refine(coarse)

    # raw <-> unscaled (SD convention: the UNet sees unscaled * 0.18215 ~ N(0, 1))
    def to_unscaled(self, z: Tensor) -> Tensor:
        m, s = self.latent_mean.view(1, -1, 1, 1), self.latent_std.view(1, -1, 1, 1)
        return (z - m) / s / LATENT_SCALE

    def from_unscaled(self, latents: Tensor) -> Tensor:
        m, s = self.latent_mean.view(1, -1, 1, 1), self.latent_std.view(1, -1, 1, 1)
        return latents * LATENT_SCALE * s + m


def _check_pixels(pixels: Tensor, what: str) -> None:
    if not isinstance(pixels, Tensor) or pixels.ndim != 4 or pixels.shape[1] != 3:
        raise ToyWorldError(f"{what} takes images (B, 3, H, W) in [-1, 1]; got "
                            f"{tuple(pixels.shape) if isinstance(pixels, Tensor) else type(pixels).__name__}.")
    h, w = pixels.shape[-2:]
    if h % FACTOR or w % FACTOR:
        raise ToyWorldError(f"{what}: image size {w}x{h} must be a multiple of {FACTOR}; resize or crop first.")


class ToyCodec(nn.Module):
    """The :class:`LatentCodec` of the synthetic world (see the module docstring). Not random weights."""

    is_random = False

    def __init__(self, model: ToyAutoencoder | None = None) -> None:
        super().__init__()
        self.model = model or ToyAutoencoder()

    @property
    def dtype(self) -> torch.dtype:
        return self.model.latent_mean.dtype

    @torch.no_grad()
    def encode_moments(self, pixels: Tensor) -> Tensor:
        _check_pixels(pixels, "ToyCodec.encode_moments")
        p = next(self.model.parameters())
        mean = self.model.to_unscaled(self.model.encode_raw(pixels.to(p.device, p.dtype))).float()
        logvar = torch.full_like(mean, 2.0 * math.log(POSTERIOR_STD / LATENT_SCALE))
        return torch.cat([mean, logvar], dim=1)

    @torch.no_grad()
    def encode(self, pixels: Tensor) -> Tensor:
        """Posterior means ``(B, 4, h, w)`` (unscaled), the deterministic encoding."""
        return self.encode_moments(pixels)[:, :LATENT_CHANNELS]

    @torch.no_grad()
    def decode(self, latents: Tensor) -> Tensor:
        if not isinstance(latents, Tensor) or latents.ndim != 4 or latents.shape[1] != LATENT_CHANNELS:
            raise ToyWorldError(f"ToyCodec.decode takes unscaled latents (B, {LATENT_CHANNELS}, h, w); got "
                                f"{tuple(latents.shape) if isinstance(latents, Tensor) else type(latents).__name__}.")
        p = next(self.model.parameters())
        return self.model.decode_raw(self.model.from_unscaled(latents.to(p.device, p.dtype))).float()


def load_toy_codec(path: str | Path | None = None, device: str | torch.device = "cpu") -> ToyCodec:
    """The trained world codec (the shipped weights unless ``path`` names other ones), eval mode, no grads."""
    from safetensors.torch import load_file

    path = Path(path) if path is not None else WEIGHTS_PATH
    if not path.is_file():
        raise ToyWorldError(f"toy codec weights not found at {path}; regenerate them with "
                            "`python -m unianimate_core.toyworld train-codec` (about ten minutes on a CPU).")
    model = ToyAutoencoder()
    try:
        model.load_state_dict(load_file(str(path)))
    except Exception as exc:  # safetensors/torch raise several types for a corrupt or foreign file
        raise ToyWorldError(f"{path} is not a toy codec weights file ({exc}); regenerate it with "
                            "`python -m unianimate_core.toyworld train-codec`.") from exc
    codec = ToyCodec(model).to(device).eval()
    codec.requires_grad_(False)
    return codec


# ------------------------------------------------------------------------------------------------
# Training (regenerates the shipped weights)
# ------------------------------------------------------------------------------------------------

def training_frames(count: int, sizes: Sequence[tuple[int, int]] = ((128, 128), (256, 256)), seed: int = 0,
                    split: str = "train", frames_per_clip: int = 4, with_body: bool = False) -> list:
    """World frames for codec training/measurement: ``count`` frames as float (3, H, W) in [-1, 1]
    (with ``with_body``: pairs (frame, (K, 2) int pixel positions y, x on the character))."""
    import numpy as np

    from .skeleton import OCCLUDER
    from .world import World, WorldConfig

    out: list = []
    k = 0
    worlds = [World(WorldConfig(width=w, height=h, frames=frames_per_clip, fps=2.0, seed=seed)) for w, h in sizes]
    while len(out) < count:
        world = worlds[k % len(worlds)]
        clip = world.clip(split, k)
        body = list(clip.body_mask()) + [(clip.reference_labels > 0) & (clip.reference_labels != OCCLUDER)]
        for im, m in zip(list(clip.frames) + [clip.reference], body):
            x = torch.from_numpy(im).permute(2, 0, 1).float() / 127.5 - 1.0
            out.append((x, torch.from_numpy(np.argwhere(m)[::7].copy())) if with_body else x)
        k += 1
    return out[:count]


def _crops(frames: list, batch: int, size: int, gen: torch.Generator, body_share: float = 0.75) -> Tensor:
    """Random ``size`` crops on the latent grid; ``body_share`` of them centred on a character pixel."""
    idx = torch.randint(len(frames), (batch,), generator=gen)
    out = []
    for i in idx.tolist():
        f, body = frames[i]
        h, w = f.shape[-2:]
        if len(body) and float(torch.rand(1, generator=gen)) < body_share:
            cy, cx = body[int(torch.randint(len(body), (1,), generator=gen))].tolist()
            y = min(max(0, (cy - size // 2) // FACTOR * FACTOR), h - size)
            x = min(max(0, (cx - size // 2) // FACTOR * FACTOR), w - size)
        else:
            y = int(torch.randint((h - size) // FACTOR + 1, (1,), generator=gen)) * FACTOR
            x = int(torch.randint((w - size) // FACTOR + 1, (1,), generator=gen)) * FACTOR
        out.append(f[:, y:y + size, x:x + size])
    return torch.stack(out)


def psnr(a: Tensor, b: Tensor, data_range: float = 2.0) -> float:
    """PSNR in dB of two tensors with values spanning ``data_range``."""
    mse = float(((a.float() - b.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(data_range ** 2 / mse)


@torch.no_grad()
def measure(codec: ToyCodec, frames: list[Tensor]) -> dict[str, float]:
    """Reconstruction PSNR (8-bit frames, dB) and the UNet-scale latent statistics on ``frames``."""
    mses, lat = [], []
    for f in frames:
        z = codec.encode(f[None])
        rec = codec.decode(z)
        a = ((f + 1) * 127.5).round().clamp(0, 255)
        b = ((rec[0].clamp(-1, 1) + 1) * 127.5).round()
        mses.append(float(((a - b) ** 2).mean()))
        lat.append((z[0] * LATENT_SCALE).flatten(1))
    lat_all = torch.cat(lat, dim=1)
    mean_mse = sum(mses) / len(mses)
    return {
        "psnr_db": 10 * math.log10(255.0 ** 2 / mean_mse),
        "psnr_db_worst_frame": min(10 * math.log10(255.0 ** 2 / max(m, 1e-12)) for m in mses),
        "latent_mean": [round(float(v), 4) for v in lat_all.mean(1)],
        "latent_std": [round(float(v), 4) for v in lat_all.std(1)],
        "frames": len(frames),
    }


def _save(model: ToyAutoencoder, data: list, out: Path, seed: int, steps: int) -> None:
    """Measure the raw latent statistics on (uncropped) training frames, store them, write atomically."""
    from safetensors.torch import save_file

    model.eval()
    with torch.no_grad():
        zs = torch.cat([model.encode_raw(f[None]).flatten(2)[0] for f, _ in data[:400]], dim=1)
        model.latent_mean.copy_(zs.mean(1))
        model.latent_std.copy_(zs.std(1))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_suffix(".tmp")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(tmp),
              metadata={"format": "unianimate-toy-codec", "version": "1", "seed": str(seed), "steps": str(steps)})
    tmp.replace(out)


def train(out: Path = WEIGHTS_PATH, steps: int = 1500, seed: int = 0, batch: int = 16, crop: int = 64,
          lr: float = 3e-3, frames: int = 800, threads: int | None = None, save_every: int = 100, log=print) -> dict:
    """Train the codec on training-split frames, normalise its latent, save, and return the measurements."""
    if threads:
        torch.set_num_threads(threads)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    t0 = time.time()
    data = training_frames(frames, sizes=((128, 128),), seed=0, with_body=True)
    probe = training_frames(16, sizes=((128, 128),), split="val", seed=0)
    log(f"rendered {len(data)} training frames in {time.time() - t0:.0f} s")
    model = ToyAutoencoder()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.05)
    model.train()
    t0 = time.time()
    for step in range(steps):
        x = _crops(data, batch, crop, gen)
        z = model.encode_raw(x)
        # keep the raw latent near unit scale so the fixed training noise means the same everywhere
        scale_loss = (z.pow(2).mean() - 1.0).pow(2) + z.mean().pow(2)
        sigma = torch.rand(batch, 1, 1, 1, generator=gen) * TRAIN_NOISE
        sigma = torch.where(torch.rand(batch, 1, 1, 1, generator=gen) < 0.5, sigma, torch.full_like(sigma, POSTERIOR_STD))
        zn = z + sigma * torch.randn(z.shape, generator=gen)
        rec = model.decode_raw(zn)
        loss = (rec - x).abs().mean() + (rec - x).pow(2).mean() + 0.01 * scale_loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        if step % 50 == 0 or step == steps - 1:
            log(f"step {step:5d}  loss {float(loss.detach()):.4f}  ({time.time() - t0:.0f} s)")
        if (step + 1) % save_every == 0 or step == steps - 1:
            _save(model, data, Path(out), seed, step + 1)
            log(f"saved at step {step + 1}: validation probe {json.dumps(measure(ToyCodec(model).eval(), probe))}")
            model.train()
    model.eval()
    codec = ToyCodec(model).eval()
    val = measure(codec, training_frames(100, sizes=((128, 128),), split="val", seed=0))
    val["train_seconds"] = round(time.time() - t0, 1)
    log(json.dumps(val))
    return val
