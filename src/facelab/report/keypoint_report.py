"""report.html of a keypoint run: curves, CED, best and worst validation predictions, first-layer filters."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..models.heatmap import HeatmapNet
from ..models.registry import conv_layers
from ..results import TrainSummary
from .figures import filter_grid, image_grid, map_grid, new_figure, save_figure, training_curves
from .html import Report

N_SHOWN = 8
CED_LIMIT = 0.08


@dataclass(frozen=True)
class CED:
    """The cumulative error distribution up to ``limit``: the share of images (``fraction``) whose error is at most
    each ``x``, its area normalised to 1 (``auc``) and the share over ``limit`` (``failure_rate``)."""

    x: np.ndarray
    fraction: np.ndarray
    limit: float
    auc: float
    failure_rate: float

    @classmethod
    def of(cls, errors: np.ndarray, limit: float = CED_LIMIT, steps: int = 200) -> CED:
        xs = np.linspace(0, limit, steps + 1)
        fraction = (errors[None, :] <= xs[:, None]).mean(1)
        return cls(xs, fraction, limit, float(np.trapezoid(fraction, xs) / limit), float((errors > limit).mean()))

    def summary(self) -> dict[str, float]:
        """What summary.json keeps of the curve, under keys that name its limit (``auc_0.08``, ``failure_rate_0.08``)."""
        return {f"auc_{self.limit}": self.auc, f"failure_rate_{self.limit}": self.failure_rate}


def ced_figure(curves: dict[str, CED], path):
    fig, ax = new_figure(figsize=(5, 3.6))
    for label, c in curves.items():
        ax.plot(c.x, c.fraction, label=f"{label} (AUC {c.auc:.3f})")
    ax.set_xlabel("NME (inter-ocular)")
    ax.set_ylabel("fraction of images")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, path)


PROTOCOL_COLUMNS = {
    "n": "faces",
    "nme": "NME (outer eye corners)",
    "nme_interpupil": "NME (pupils)",
    "auc_008": "AUC at 0.08",
    "failure_rate_008": "failure rate at 0.08",
    "baseline_nme": "mean-shape NME",
    "dlib_nme": "dlib NME (same faces)",
}
SHOWN_POINTS = {  # iBUG 68, as seen on the image
    0: "jaw, left end",
    8: "chin",
    16: "jaw, right end",
    19: "left brow",
    24: "right brow",
    30: "nose tip",
    36: "left eye, outer",
    45: "right eye, outer",
    48: "mouth, left",
    54: "mouth, right",
    57: "lower lip",
    62: "upper lip, inner",
}


def protocol_table(rows: dict[str, dict]) -> tuple[list[str], list[list]]:
    """(header, rows) of the 300-W protocol: one row per subset (common, challenging, full)."""
    keys = [k for k in PROTOCOL_COLUMNS if any(k in r for r in rows.values())]
    return ["subset"] + [PROTOCOL_COLUMNS[k] for k in keys], [[name] + [r.get(k, "-") for k in keys] for name, r in rows.items()]


def heatmap_figures(module, data, p, k: int, folder) -> None:
    """``heatmaps.png``: face ``k`` of the predictions, then the maps of some of its points."""
    x8 = data.batch(p.positions[[k]])[0]
    maps = module.model.point_maps(module.prepare(x8))[0].float().cpu().numpy()
    points = list(SHOWN_POINTS) if len(maps) == 68 else list(range(min(12, len(maps))))
    names = [f"{SHOWN_POINTS[i]} ({i})" if len(maps) == 68 else f"point {i}" for i in points]
    map_grid(maps[points], names, folder / "heatmaps.png", x8[0].cpu().numpy(), cols=7, colorbar_label="probability")


def write_keypoint_report(run, cfg, module, data, p, summary: TrainSummary) -> None:
    """``p``: the validation predictions (``train.keypoint_eval.SplitPredictions``); ``summary``: the run's summary.json."""
    rows = run.read_metrics()
    metrics = ("loss", "px_err", "nme") if data.task.has_nme else ("loss", "px_err")
    training_curves(rows, run.figures / "curves.png", metrics)
    score = p.nme if p.nme is not None else p.px_err
    order = np.argsort(score)
    shown = list(order[:N_SHOWN]) + list(order[::-1][:N_SHOWN])
    x8 = data.batch(p.positions[shown])[0].cpu()
    captions = [f"{'best' if k < N_SHOWN else 'worst'} {score[i]:.3f}" for k, i in enumerate(shown)]
    image_grid(
        [im.numpy() for im in x8],
        captions,
        run.figures / "best_worst.png",
        cols=N_SHOWN,
        points=[p.true[i] for i in shown],
        points_b=[p.pred[i] for i in shown],
    )
    _, first = conv_layers(module.model)[0]
    filter_grid(first.weight.detach().float().cpu(), run.figures / "filters.png")
    rep = Report(f"facelab run: keypoints ({cfg.data.points}) with {cfg.model.arch}")
    rep.paragraph(
        f"data {cfg.data.spec} | {len(data.split_positions('train'))} training and {len(p.positions)} validation images "
        f"at {cfg.data.size}px | {len(data.task.indices)} points | seed {cfg.seed}"
    )
    final, base = summary.final, summary.fields.get("baseline_mean_shape", {})
    rep.table(
        ["", "MSE (relative coords)", "mean px error", "NME"],
        [
            ["final", final["val_mse_norm"], final["val_px_err"], final["val_nme"] if final["val_nme"] is not None else "-"],
            ["mean-shape baseline", "", base.get("val_px_err", ""), base.get("val_nme") if base.get("val_nme") is not None else "-"],
        ],
    )
    figures = [
        ("figures/curves.png", "train and validation loss and errors per epoch"),
        ("figures/best_worst.png", "best and worst validation predictions: ground truth lime, prediction red"),
    ]
    if p.nme is not None:
        curve = CED.of(p.nme)
        base_nme = base.get("val_nme")
        ced_figure({"model": curve}, run.figures / "ced.png")
        figures.append(("figures/ced.png", f"cumulative error distribution up to NME {CED_LIMIT}"))
        rep.table(
            ["", "value"],
            [
                [f"AUC at {CED_LIMIT}", summary.fields["ced"][f"auc_{CED_LIMIT}"]],
                [f"failure rate at {CED_LIMIT}", summary.fields["ced"][f"failure_rate_{CED_LIMIT}"]],
                ["mean-shape baseline NME", base_nme],
            ],
        )
    if isinstance(module.model, HeatmapNet):
        heatmap_figures(module, data, p, int(order[len(order) // 2]), run.figures)
        figures.append(("figures/heatmaps.png", "per-point heatmaps of a typical validation face: sharp where a point is certain"))
    figures.append(("figures/filters.png", "first-layer filters"))
    for file, caption in figures:
        rep.heading(caption.split(":")[0]).figure(file, caption)
    if "protocol" in summary.fields:
        rep.heading("300-W protocol (validation split)")
        rep.table(*protocol_table(summary.fields["protocol"]))
    rep.heading("Settings")
    rep.table(["option", "value"], [[k, v] for k, v in cfg.settings().items()])
    rep.machine(summary.runtime)
    rep.write(run.path / "report.html")
