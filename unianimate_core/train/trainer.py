"""The training loop: one process or many (torchrun), resumable, with feedback and exports.

Order of a run: config checks -> output folder writable -> resume point found -> encoders built ->
data prepared (cached; each process prepares its share) -> model built -> disk-space check ->
train (checkpoint every N steps and on Ctrl-C/SIGTERM) -> export -> final validation.
"""
from __future__ import annotations

import contextlib
import json
import math
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Optional, TextIO

import torch
from torch import Tensor, nn

from ..diffusion import Conditions, NoiseOptions, SamplerOptions, prepare_noise, sample_video
from ..diffusion.schedule import NoiseSchedule
from ..pipeline.preview import burn_banner
from ..pipeline.progress import ProgressBar
from ..pipeline.runner import decode_latents
from ..pipeline.video import to_uint8
from .checkpoints import Checkpoints, save_export, set_rng_state
from .config import TrainConfig
from .data import Geometry, discover_videos, prepare_data, write_report
from .dataset import ClipDataset, SampleIndexBatches, SampleSettings, make_loader
from .encoders import TrainEncoders, build_encoders
from .errors import DataError, TrainError
from .feedback import TrainLog, contact_sheet, plot_losses, write_png
from .modes import DTYPES, TrainModel, build_train_model, finalize
from .runtime import Distributed, StopRequest, check_free_space, check_writable, setup_distributed

RUN_FINGERPRINT_KEYS = ("seed", "mode", "model", "objective")
DATA_FINGERPRINT_KEYS = ("width", "height", "frames", "frame_stride", "fit", "reference", "reference_image",
                         "max_missing_poses", "validation_videos", "validation_dir", "poses")
VALIDATION_STREAM = 7919  # seed offset of the fixed validation samples


@dataclass
class TrainResult:
    step: int
    steps: int
    interrupted: bool
    exit_code: int
    exports: list[Path] = field(default_factory=list)
    losses: list[float] = field(default_factory=list)
    val_losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    steps_per_second: float = 0.0


def run_fingerprint(cfg: TrainConfig) -> dict[str, Any]:
    d = cfg.to_dict()
    out = {k: d[k] for k in RUN_FINGERPRINT_KEYS}
    out["data"] = {k: d["data"][k] for k in DATA_FINGERPRINT_KEYS}
    out["optimizer"] = d["optim"]["optimizer"]
    return out


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += _diff(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [f"{prefix[:-1]}: {json.dumps(b)} in the checkpoint, {json.dumps(a)} now"]


# ------------------------------------------------------------------------------------------ optimizer
def build_optimizer(cfg: TrainConfig, params: list[tuple[str, nn.Parameter]], device: torch.device) -> torch.optim.Optimizer:
    decay = [p for n, p in params if p.ndim >= 2]
    no_decay = [p for n, p in params if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.optim.weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    kwargs = dict(lr=cfg.learning_rate(), betas=tuple(cfg.optim.betas), eps=cfg.optim.eps)
    if cfg.optim.optimizer == "adamw8bit":
        import bitsandbytes as bnb  # checked at config time

        return bnb.optim.AdamW8bit(groups, **kwargs)
    # foreach: one kernel per group instead of a Python loop over ~1500 tensors (torch's default on
    # CUDA; on the CPU it halves the time of a tiny-model step).
    return torch.optim.AdamW(groups, foreach=True, **kwargs)


def lr_factor(cfg: TrainConfig) -> Callable[[int], float]:
    warm, total, floor = cfg.optim.warmup_steps, cfg.train.steps, cfg.optim.min_lr_ratio

    def factor(step: int) -> float:
        if warm and step < warm:
            return (step + 1) / warm
        if cfg.optim.schedule == "cosine":
            progress = min(1.0, (step - warm) / max(1, total - warm))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        return 1.0

    return factor


class EMA:
    """Exponential moving average of the trainable weights (torch's ``get_ema_multi_avg_fn``)."""

    def __init__(self, params: list[tuple[str, nn.Parameter]], decay: float, start_step: int) -> None:
        from torch.optim.swa_utils import get_ema_multi_avg_fn

        self.names = [n for n, _ in params]
        self.params = [p for _, p in params]
        self.shadow = [p.detach().float().clone() for p in self.params]
        self.start_step = start_step
        self.update_fn = get_ema_multi_avg_fn(decay)

    @torch.no_grad()
    def update(self, step: int) -> None:
        current = [p.detach().float() for p in self.params]
        if step <= self.start_step:
            for s, c in zip(self.shadow, current):
                s.copy_(c)
        else:
            self.update_fn(self.shadow, current, step)

    def state(self) -> dict[str, Tensor]:
        return dict(zip(self.names, self.shadow))

    def load(self, state: dict[str, Tensor]) -> None:
        for name, s in zip(self.names, self.shadow):
            s.copy_(state[name])

    @contextlib.contextmanager
    def swapped(self):  # noqa: ANN201
        """The EMA weights in the model for the duration of the block (export, sampling)."""
        backup = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            for p, s in zip(self.params, self.shadow):
                p.copy_(s.to(p.dtype))
        try:
            yield
        finally:
            with torch.no_grad():
                for p, b in zip(self.params, backup):
                    p.copy_(b)


# ------------------------------------------------------------------------------------------ the trainer
class Trainer:
    def __init__(self, cfg: TrainConfig, log: Callable[[str], None] = print, stream: Optional[TextIO] = None) -> None:
        self.cfg = cfg
        self.stream = stream if stream is not None else sys.stderr
        self._log = log
        self.dist: Distributed = setup_distributed(cfg.train.device)
        self.device = self.dist.device
        if cfg.train.threads:
            torch.set_num_threads(cfg.train.threads)
        self.out = cfg.out
        self.schedule = NoiseSchedule.unianimate()
        self.ckpts = Checkpoints(self.out, cfg.checkpoint.keep)
        self.train_log = TrainLog(self.out / "train_log.jsonl")

    def log(self, message: str) -> None:
        if self.dist.main:
            self._log(message)

    # ------------------------------------------------------------------ setup
    def _preflight(self) -> Optional[Path]:
        cfg = self.cfg
        if self.dist.main:
            check_writable(self.out, "output folder")
            check_writable(cfg.cache, "data cache folder")
            self.ckpts.clean()
        self.dist.barrier()
        latest = self.ckpts.latest()
        if latest is not None and cfg.checkpoint.resume == "never":
            raise TrainError(f"{self.out} already holds a checkpoint ({latest.name}) and checkpoint.resume is "
                             "`never`; choose a new output_dir or set checkpoint.resume to `auto` to continue it.")
        if latest is not None:
            saved = json.loads((latest / "state.json").read_text()).get("fingerprint")
            diffs = _diff(run_fingerprint(cfg), saved or {})
            if diffs:
                raise TrainError(f"{self.out} holds a checkpoint of a different run ({latest.name}); changed: "
                                 + "; ".join(diffs[:6]) + ". Use a new output_dir, or restore those settings to resume.")
        return latest

    def _data(self, encoders: TrainEncoders) -> tuple[ClipDataset, ClipDataset]:
        cfg, d = self.cfg, self.cfg.data
        geo = Geometry(d.width, d.height, d.fit, d.frame_stride, d.max_frames_per_video, d.frames)
        sources = discover_videos(Path(d.videos))
        if not sources:
            raise DataError(f"no videos found in {d.videos} (looked for {', '.join(sorted(_video_suffixes()))} files "
                            "and folders of images).")
        bar = ProgressBar(len(sources), "preparing data", self.stream) if self.dist.main and cfg.logging.progress else None

        def progress(done: int, total: int, name: str) -> None:
            if bar is not None:
                bar.update(done - bar.done, name[:40])

        held_out = 0 if d.validation_dir else d.validation_videos
        args = (sources, cfg.cache, geo, d.poses, d.pose_models, encoders, d.latent_dtype, d.encode_batch, held_out)
        prepared = prepare_data(*args, rank=self.dist.rank, world=self.dist.world, progress=progress)
        extra = None
        if d.validation_dir:
            val_args = (discover_videos(Path(d.validation_dir)),) + args[1:-1] + (0,)
            extra = prepare_data(*val_args, rank=self.dist.rank, world=self.dist.world)
        if bar is not None:
            bar.close()
        if self.dist.enabled:  # everyone reads what the others prepared
            self.dist.barrier()
            prepared = prepare_data(*args, rank=self.dist.rank, world=self.dist.world)
            if d.validation_dir:
                extra = prepare_data(*val_args, rank=self.dist.rank, world=self.dist.world)
        if extra is not None:
            prepared.validation = extra.train
            prepared.report.videos_found += extra.report.videos_found
            prepared.report.skipped += [{**s, "video": f"validation/{s['video']}"} for s in extra.report.skipped]
        settings = SampleSettings.from_config(d, cfg.objective)
        train = ClipDataset(prepared.train, settings, cfg.seed)
        val = ClipDataset(prepared.validation, settings, cfg.seed + VALIDATION_STREAM, with_frames=True)
        for name in train.dropped + val.dropped:
            prepared.report.skip(name, "no_clean_clip", f"no {d.frames} consecutive frames with at most "
                                                        f"{d.max_missing_poses} lacking a person")
        prepared.report.used = [v.name for v in train.videos]
        prepared.report.validation = [v.name for v in val.videos]
        if self.dist.main:
            write_report(prepared.report, self.out / "data_report.json")
            self.log(prepared.report.summary())
        if not len(train):
            raise DataError("no usable training clip: " + prepared.report.summary()
                            + f"\nSee {self.out / 'data_report.json'} for every video and its reason.")
        return train, val

    def _check_size(self, unet: nn.Module) -> None:
        m = unet.config.pixel_multiple
        d = self.cfg.data
        if d.width % m or d.height % m:
            raise TrainError(f"data.width x data.height = {d.width}x{d.height} must be multiples of {m} for this UNet "
                             f"(VAE factor 8 x one halving per level); use e.g. {max(m, round(d.width / m) * m)}x"
                             f"{max(m, round(d.height / m) * m)}.")

    def _disk_needed(self, model: TrainModel) -> int:
        trainable = sum(p.numel() for _, p in model.trainable())
        total = sum(p.numel() for p in model.unet.parameters())
        per_ckpt = trainable * (4 + 8 + (4 if self.cfg.ema.enabled else 0)) + (1 << 20)
        export = (trainable if model.kind == "lora" else total) * DTYPES[self.cfg.checkpoint.save_dtype].itemsize
        return per_ckpt * (self.cfg.checkpoint.keep + 1) + export * (2 if self.cfg.ema.enabled else 1)

    # ------------------------------------------------------------------ run
    def run(self) -> TrainResult:
        cfg = self.cfg
        start_time = time.monotonic()
        latest = self._preflight()
        encoders = build_encoders(cfg.encoders, self.device, cfg.cache)
        self.log(f"encoders: {encoders.label}")
        model = build_train_model(cfg, encoders.zero_y, self.schedule)
        self._check_size(model.unet)
        train_set, val_set = self._data(encoders)
        encoders.release_clip()
        model = finalize(model, cfg, self.device)
        trainable = model.trainable()
        if not trainable:
            raise TrainError("the chosen mode leaves no trainable parameter.")
        if self.dist.main:
            check_free_space(self.out, self._disk_needed(model), "checkpoints and exports")
        n_train = sum(p.numel() for _, p in trainable)
        n_total = sum(p.numel() for p in model.loss.parameters())
        self.log(f"model: mode {model.kind}, {n_train:,} trainable of {n_total:,} parameters, device {self.device}, "
                 f"precision {cfg.train.precision}, {self.dist.world} process(es), global batch "
                 f"{self.dist.world * cfg.train.batch_size * cfg.train.grad_accum}")
        optimizer = build_optimizer(cfg, trainable, self.device)
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg))
        scaler = torch.amp.GradScaler(self.device.type, enabled=cfg.train.precision == "fp16")
        ema = EMA(trainable, cfg.ema.decay, cfg.ema.start_step) if cfg.ema.enabled else None
        step, samples = 0, 0
        if latest is not None:
            step, samples = self._resume(latest, trainable, optimizer, scheduler, scaler, ema)
            self.log(f"resumed from {latest} (step {step}, {samples} samples seen)")
        elif self.dist.main:
            self.train_log.path.unlink(missing_ok=True)
            (self.out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=1))
        self.dist.barrier()
        wrapped = self._wrap(model.loss)
        result = TrainResult(step, cfg.train.steps, False, 0)
        if step >= cfg.train.steps:
            self.log(f"already trained {step} steps (train.steps = {cfg.train.steps}); exporting.")
        else:
            with StopRequest() as stop:
                step, samples = self._loop(model, wrapped, train_set, val_set, encoders, optimizer, scheduler, scaler,
                                           ema, step, samples, stop, result)
                if stop.requested:
                    result.interrupted, result.exit_code = True, stop.exit_code
        result.step = step
        if not result.interrupted:
            result.exports = self._export(model, ema)
            if cfg.validation.at_end:
                self._validate(model, val_set or train_set, train_set, encoders, ema, step, result)
        self._plot()
        result.seconds = time.monotonic() - start_time
        self.dist.barrier()
        self.dist.close()
        return result

    def _wrap(self, loss: nn.Module) -> nn.Module:
        if not self.dist.enabled:
            return loss
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DDP(loss, device_ids=ids, find_unused_parameters=False)

    def _resume(self, path: Path, trainable: list[tuple[str, nn.Parameter]], optimizer: torch.optim.Optimizer,
                scheduler: Any, scaler: Any, ema: Optional[EMA]) -> tuple[int, int]:
        data = Checkpoints.load(path)
        weights = data["trainable"]
        names = [n for n, _ in trainable]
        if set(weights) != set(names):
            raise TrainError(f"the checkpoint {path} holds other trainable weights than this run "
                             f"({len(weights)} vs {len(names)}); use a new output_dir.")
        with torch.no_grad():
            for n, p in trainable:
                p.copy_(weights[n].to(p.dtype))
        optimizer.load_state_dict(data["optimizer"]["optimizer"])
        scheduler.load_state_dict(data["optimizer"]["scheduler"])
        if data["optimizer"].get("scaler"):
            scaler.load_state_dict(data["optimizer"]["scaler"])
        if ema is not None:
            if data["ema"] is None:
                raise TrainError(f"ema.enabled is true but the checkpoint {path} has no EMA weights; disable ema or "
                                 "start a new output_dir.")
            ema.load(data["ema"])
        set_rng_state(data["rng"])
        state = data["state"]
        if self.dist.main:
            self.train_log.truncate_after(int(state["step"]))
        return int(state["step"]), int(state["samples"])

    def _checkpoint(self, model: TrainModel, optimizer: Any, scheduler: Any, scaler: Any, ema: Optional[EMA],
                    step: int, samples: int) -> None:
        if self.dist.main:
            self.ckpts.save(step, {"samples": samples, "fingerprint": run_fingerprint(self.cfg),
                                   "world": self.dist.world},
                            dict(model.trainable()), ema.state() if ema else None,
                            {"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                             "scaler": scaler.state_dict() if scaler.is_enabled() else None})
        self.dist.barrier()

    def _autocast(self) -> Any:
        p = self.cfg.train.precision
        if p == "fp32":
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=DTYPES[p])

    def _loop(self, model: TrainModel, wrapped: nn.Module, train_set: ClipDataset, val_set: ClipDataset,
              encoders: TrainEncoders, optimizer: torch.optim.Optimizer, scheduler: Any, scaler: Any,
              ema: Optional[EMA], step: int, samples: int, stop: StopRequest, result: TrainResult) -> tuple[int, int]:
        cfg, dist = self.cfg, self.dist
        accum, b = cfg.train.grad_accum, cfg.train.batch_size
        batches = SampleIndexBatches(step, cfg.train.steps, samples, b, accum, dist.world, dist.rank)
        loader = iter(make_loader(train_set, batches, cfg.data.num_workers))
        if cfg.validation.at_start and step == 0:
            self._validate(model, val_set, train_set, encoders, ema, step, result)
            model.loss.train()
        params = [p for _, p in model.trainable()]
        bar = ProgressBar(cfg.train.steps, "training", self.stream, initial=step) \
            if dist.main and cfg.logging.progress else None
        smoothed: Optional[float] = None
        loop_start, first_step = time.monotonic(), step
        model.loss.train()
        try:
            while step < cfg.train.steps:
                loss_sum, count = 0.0, 0
                for micro in range(accum):
                    batch = {k: v.to(self.device, non_blocking=True) for k, v in next(loader).items()}
                    sync = micro == accum - 1 or not dist.enabled
                    ctx = contextlib.nullcontext() if sync else wrapped.no_sync()  # type: ignore[operator]
                    with ctx:
                        with self._autocast():
                            losses = wrapped(batch)
                        loss = losses.float().mean() / accum
                        scaler.scale(loss).backward()
                    loss_sum += float(losses.detach().float().sum())
                    count += losses.shape[0]
                scaler.unscale_(optimizer)
                grad_norm = float(torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip if cfg.optim.grad_clip
                                                                  else float("inf")))
                scaler.step(optimizer)
                scaler.update()
                optimizer.zero_grad(set_to_none=True)
                scheduler.step()
                step += 1
                samples += batches.global_batch
                if ema is not None:
                    ema.update(step)
                total, n = dist.sum([loss_sum, float(count)])
                mean_loss = total / n
                if not math.isfinite(mean_loss):
                    raise TrainError(f"the loss became {mean_loss} at step {step}; lower optim.lr, use "
                                     "train.precision bf16 instead of fp16, or resume from the last checkpoint.")
                result.losses.append(mean_loss)
                smoothed = mean_loss if smoothed is None else 0.9 * smoothed + 0.1 * mean_loss
                elapsed = time.monotonic() - loop_start
                rate = (step - first_step) / elapsed if elapsed > 0 else 0.0
                if bar is not None:
                    bar.update(1, f"loss {smoothed:.4f} lr {scheduler.get_last_lr()[0]:.2e}")
                if dist.main and (step % cfg.logging.every == 0 or step == cfg.train.steps):
                    self.train_log.append({"step": step, "loss": mean_loss, "lr": scheduler.get_last_lr()[0],
                                           "grad_norm": grad_norm, "samples": samples, "it_s": rate,
                                           "seconds": elapsed})
                if dist.main and step % cfg.logging.plot_every == 0:
                    self._plot()
                stopping = dist.any(stop.requested)
                if stopping and not stop.requested:
                    stop.signal = 15
                if step % cfg.checkpoint.every == 0 or stopping or step == cfg.train.steps:
                    self._checkpoint(model, optimizer, scheduler, scaler, ema, step, samples)
                if stopping:
                    self.log(f"\nstopped at step {step}: checkpoint saved; run the same command again to continue.")
                    break
                if cfg.validation.every and step % cfg.validation.every == 0 and step != cfg.train.steps:
                    self._validate(model, val_set, train_set, encoders, ema, step, result)
                    model.loss.train()
        finally:
            if bar is not None:
                bar.close()
        elapsed = time.monotonic() - loop_start
        result.steps_per_second = (step - first_step) / elapsed if elapsed > 0 else 0.0
        return step, samples

    # ------------------------------------------------------------------ outputs
    def _export(self, model: TrainModel, ema: Optional[EMA]) -> list[Path]:
        if not self.dist.main:
            return []
        name = "lora" if model.kind == "lora" else "model"
        dtype = DTYPES[self.cfg.checkpoint.save_dtype]
        tensors, meta = model.export()
        paths = [save_export(self.out / f"{name}.safetensors", tensors, meta, dtype)]
        if ema is not None:
            with ema.swapped():  # saved inside: the exported tensors share storage with the model's weights
                tensors, meta = model.export()
                paths.append(save_export(self.out / f"{name}_ema.safetensors", tensors, {**meta, "ema": "true"}, dtype))
        for p in paths:
            self.log(f"exported {p}")
        return paths

    def _plot(self) -> None:
        if self.dist.main:
            plot_losses(self.train_log.entries(), self.out / "loss.png",
                        f"{self.cfg.mode.kind} training loss")

    @torch.no_grad()
    def _validate(self, model: TrainModel, val_set: ClipDataset, train_set: ClipDataset, encoders: TrainEncoders,
                  ema: Optional[EMA], step: int, result: TrainResult) -> None:
        if self.dist.main:
            with (ema.swapped() if ema is not None else contextlib.nullcontext()):
                model.loss.eval()
                try:
                    self._validate_main(model, val_set if len(val_set) else train_set, encoders, step, result,
                                        held_out=bool(len(val_set)))
                finally:
                    model.loss.train()
        self.dist.barrier()

    def _validate_main(self, model: TrainModel, dataset: ClipDataset, encoders: TrainEncoders, step: int,
                       result: TrainResult, held_out: bool) -> None:
        cfg = self.cfg.validation
        entry: dict[str, Any] = {"step": step}
        if cfg.samples:
            losses = []
            for i in range(cfg.samples):
                sample = {k: v[None].to(self.device) for k, v in dataset[i].items() if k not in ("frames", "reference_pixels")}
                with self._autocast():
                    losses.append(float(model.loss(sample).float().mean()))
            entry["val_loss"] = sum(losses) / len(losses)
            entry["val_held_out"] = held_out
            result.val_losses.append(entry["val_loss"])
            self.log(f"\nvalidation at step {step}: loss {entry['val_loss']:.4f} "
                     f"({'held-out' if held_out else 'training'} clips)")
        if cfg.render:
            entry["sample"] = str(self._render(model, dataset, encoders, step))
        self.train_log.append(entry)

    def _render(self, model: TrainModel, dataset: ClipDataset, encoders: TrainEncoders, step: int) -> Path:
        import numpy as np

        cfg = self.cfg.validation
        sample = dataset[0]
        f = sample["x0"].shape[1]
        cond = Conditions.build("standard", image=sample["image"][None, None], dwpose=sample["dwpose"][None],
                                ref_latent=sample["randomref"][None])
        gen = torch.Generator().manual_seed(self.cfg.seed)
        noise = prepare_noise((1, *sample["x0"].shape), gen, NoiseOptions.short(),
                              prior_latent=sample["randomref"][None])
        options = SamplerOptions(steps=cfg.steps, guide_scale=cfg.guidance, device=self.device)
        unet = model.sampling_model()
        with self._autocast():
            latents = sample_video(unet, noise.to(self.device), cond, options, generator=gen)
        frames = to_uint8(decode_latents(encoders.vae, latents.float()))
        gt = sample["frames"].numpy()
        poses = sample["dwpose"][:, 1:].permute(1, 2, 3, 0).numpy()
        banner = "random VAE stand-in: the generated row is not an image" if encoders.is_random else None
        sheet = contact_sheet([list(gt), list(poses), list(frames)], ["ground truth", "pose", f"step {step}"],
                              columns=min(4, f), banner=banner)
        path = write_png(self.out / "samples" / f"step_{step:07d}.png", sheet)
        try:
            from ..pipeline.video import write_video

            panels = [np.concatenate([gt[i], poses[i], frames[i]], axis=1) for i in range(f)]
            if banner:
                panels = [burn_banner(p, banner) for p in panels]
            write_video(self.out / "samples" / f"step_{step:07d}.mp4", panels, fps=8.0)
        except Exception as exc:  # noqa: BLE001 - PyAV missing or no encoder: the PNG is enough
            self.log(f"(no validation video: {exc})")
        return path


def _video_suffixes() -> set[str]:
    from ..pipeline.video import VIDEO_EXTENSIONS

    return VIDEO_EXTENSIONS | {".gif", ".webp"}


def train(cfg: TrainConfig, log: Callable[[str], None] = print, stream: Optional[TextIO] = None) -> TrainResult:
    """Run the training of ``cfg``; see :class:`Trainer`."""
    return Trainer(cfg, log, stream).run()


__all__ = ["TrainResult", "Trainer", "train", "run_fingerprint"]
