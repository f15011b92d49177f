"""Results of several runs as a table (Markdown + JSON) and plots (PNG).

    rep = Report("DDIM steps on the test split")
    rep.add("ddim50", metrics, params={"steps": 50, "guidance": 2.5})
    rep.write("outputs/eval")   # report.md, report.json, per_frame_<metric>.png, vs_<param>_<metric>.png

Several clips of one setting: :func:`merge` averages their per-frame curves (frame by frame, over
the clips that have that frame) and their summaries into one :class:`VideoMetrics`.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import EvaluationError, import_pyplot
from .evaluate import VideoMetrics

#: Column order of the Markdown table (metrics absent from every run are left out), with the
#: direction that is better.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("psnr_clip", "up"), ("psnr", "up"), ("ssim", "up"), ("l1", "down"), ("pck_0.1", "up"), ("pck_0.2", "up"),
    ("pck_0.5", "up"), ("kp_error", "down"), ("limb_iou", "up"), ("limb_overlap", "up"), ("id_embedding", "up"), ("id_colour", "down"),
    ("tde", "down"), ("warp", "down"), ("flicker", "down"), ("seam_ratio", "down"), ("drift_psnr", "up"),
    ("drift_pck_0.2", "up"), ("drift_id_colour", "down"),
)
PLOT_METRICS: tuple[str, ...] = ("psnr", "ssim", "l1", "pck_0.2", "kp_error", "limb_iou", "limb_overlap", "id_colour",
                                 "id_embedding",
                                 "tde", "warp", "flicker")


def merge(metrics: Sequence[VideoMetrics]) -> VideoMetrics:
    """Average several clips' metrics of one setting (per frame index and per summary key).

    ``info["per_clip"]`` keeps each clip's own summary, in input order, so paired per-clip comparisons
    between runs (mean difference, standard error, wins) can be recomputed from ``report.json``.
    """
    if not metrics:
        raise EvaluationError("nothing to merge: no clip metrics given.")
    out = VideoMetrics()
    keys = sorted({k for m in metrics for k in m.per_frame})
    for k in keys:
        curves = [m.per_frame[k] for m in metrics if k in m.per_frame]
        n = max(len(c) for c in curves)
        stack = np.full((len(curves), n), np.nan)
        for i, c in enumerate(curves):
            stack[i, :len(c)] = c
        with np.errstate(all="ignore"):
            cnt = np.isfinite(stack).sum(0)
            out.per_frame[k] = np.where(cnt > 0, np.nansum(np.where(np.isfinite(stack), stack, 0), 0) / np.maximum(cnt, 1), np.nan)
    for k in sorted({k for m in metrics for k in m.summary}):
        vals = np.array([m.summary[k] for m in metrics if k in m.summary], dtype=np.float64)
        vals = vals[np.isfinite(vals)]
        out.summary[k] = float(vals.mean()) if vals.size else float("nan")
    out.info["clips"] = len(metrics)
    out.info["per_clip"] = [dict(m.summary) for m in metrics]  # in input order: paired statistics need them
    return out


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, np.ndarray):
        return [_clean(float(x)) for x in v]
    if isinstance(v, (np.floating, np.integer)):
        return _clean(v.item())
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    return v


def _fmt(v: float) -> str:
    if v is None or not math.isfinite(v):
        return "-"
    return f"{v:.2f}" if abs(v) >= 10 else f"{v:.4f}" if abs(v) < 1 else f"{v:.3f}"


@dataclass
class Report:
    """A named collection of runs (see the module docstring)."""

    title: str = "UniAnimate evaluation"
    runs: list[tuple[str, VideoMetrics, dict[str, Any]]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # lines printed under the table (and kept in the JSON)

    def add(self, name: str, metrics: VideoMetrics, params: dict[str, Any] | None = None) -> None:
        if any(n == name for n, _, _ in self.runs):
            raise EvaluationError(f"a run named {name!r} is already in the report; give each run its own name.")
        self.runs.append((name, metrics, dict(params or {})))

    # ------------------------------------------------------------------ outputs
    def columns(self) -> list[tuple[str, str]]:
        present = {k for _, m, _ in self.runs for k in m.summary}
        return [(k, d) for k, d in COLUMNS if k in present]

    def markdown(self) -> str:
        cols = self.columns()
        params = sorted({k for _, _, p in self.runs for k in p})
        head = ["run", *params, *[f"{k} {'↑' if d == 'up' else '↓'}" for k, d in cols]]
        lines = [f"# {self.title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
        for name, m, p in self.runs:
            row = [name, *[str(p.get(k, "")) for k in params], *[_fmt(m.summary.get(k, float("nan"))) for k, _ in cols]]
            lines.append("| " + " | ".join(row) + " |")
        lines += ["", "↑ higher is better, ↓ lower is better; '-' = not measured. Definitions: docs/evaluation-suite.md."]
        lines += [f"\n{n}" if i == 0 else n for i, n in enumerate(f"- {n}" for n in self.notes)]
        return "\n".join(lines) + "\n"

    def to_json(self) -> dict[str, Any]:
        return _clean({"title": self.title, "notes": list(self.notes), "runs": [
            {"name": n, "params": p, "summary": m.summary, "info": m.info, "per_frame": m.per_frame}
            for n, m, p in self.runs]})

    def write(self, out_dir: str | Path, plots: bool = True) -> list[Path]:
        """Write report.md, report.json and (``plots``) the PNGs; returns the written paths."""
        if not self.runs:
            raise EvaluationError("the report has no runs; add at least one with Report.add.")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        written = [out / "report.md", out / "report.json"]
        written[0].write_text(self.markdown())
        written[1].write_text(json.dumps(self.to_json(), indent=1))
        if plots:
            written += self.plot(out)
        return written

    def plot(self, out: Path) -> list[Path]:
        plt = import_pyplot()
        paths = []
        for metric in PLOT_METRICS:
            runs = [(n, m.per_frame[metric]) for n, m, _ in self.runs if metric in m.per_frame]
            if not runs:
                continue
            fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
            for name, curve in runs:
                ax.plot(np.arange(len(curve)), curve, label=name, linewidth=1.2)
            ax.set_xlabel("frame index")
            ax.set_ylabel(metric)
            ax.grid(alpha=0.3)
            if len(runs) <= 12:
                ax.legend(fontsize=7)
            fig.tight_layout()
            p = out / f"per_frame_{metric.replace('.', '_')}.png"
            fig.savefig(p)
            plt.close(fig)
            paths.append(p)
        params = sorted({k for _, _, p in self.runs for k in p})
        for param in params:
            vals = [p.get(param) for _, _, p in self.runs]
            numeric = [v for v in vals if isinstance(v, (int, float)) and not isinstance(v, bool)]
            if len(set(numeric)) < 2:
                continue
            for metric, _ in self.columns():
                groups: dict[str, list[tuple[float, float]]] = {}
                for name, m, p in self.runs:
                    v = p.get(param)
                    if not isinstance(v, (int, float)) or isinstance(v, bool) or metric not in m.summary:
                        continue
                    label = ", ".join(f"{k}={p[k]}" for k in params if k != param and k in p) or "runs"
                    groups.setdefault(label, []).append((float(v), m.summary[metric]))
                if not any(len(g) >= 2 for g in groups.values()):
                    continue
                fig, ax = plt.subplots(figsize=(5, 3.5), dpi=100)
                for label, pts in groups.items():
                    pts.sort()
                    ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", label=label)
                ax.set_xlabel(param)
                ax.set_ylabel(metric)
                ax.grid(alpha=0.3)
                if len(groups) <= 10:
                    ax.legend(fontsize=7)
                fig.tight_layout()
                p = out / f"vs_{param}_{metric.replace('.', '_')}.png"
                fig.savefig(p)
                plt.close(fig)
                paths.append(p)
        return paths
