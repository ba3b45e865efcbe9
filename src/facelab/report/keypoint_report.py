"""report.html of a keypoint run: curves, CED, best and worst validation predictions, first-layer filters."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np

from ..models.registry import conv_layers
from .figures import filter_grid, image_grid, save_figure, training_curves
from .html import Report

N_SHOWN = 8
CED_LIMIT = 0.08


def ced(errors: np.ndarray, limit: float = CED_LIMIT, steps: int = 200) -> dict:
    """Cumulative error distribution up to ``limit``: the curve, its area (normalised to 1) and the failure rate."""
    xs = np.linspace(0, limit, steps + 1)
    fraction = (errors[None, :] <= xs[:, None]).mean(1)
    auc = float(np.trapezoid(fraction, xs) / limit)
    return {"x": xs.tolist(), "fraction": fraction.tolist(), f"auc_{limit}": auc, f"failure_rate_{limit}": float((errors > limit).mean())}


def ced_summary(errors: np.ndarray, limit: float = CED_LIMIT) -> dict:
    """The CED's area and failure rate (what summary.json keeps of the curve)."""
    return {k: v for k, v in ced(errors, limit).items() if k not in ("x", "fraction")}


def ced_figure(curves: dict[str, dict], path) -> None:
    fig, ax = plt.subplots(figsize=(5, 3.6))
    for label, c in curves.items():
        ax.plot(c["x"], c["fraction"], label=f"{label} (AUC {c[f'auc_{CED_LIMIT}']:.3f})")
    ax.set_xlabel("NME (inter-ocular)")
    ax.set_ylabel("fraction of images")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def write_keypoint_report(run, cfg, module, data, p, summary: dict) -> None:
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
    rep = Report(f"facelab run: keypoints ({cfg.points}) with {cfg.arch}")
    rep.paragraph(
        f"data {cfg.spec} | {len(data.split_positions('train'))} training and {len(p.positions)} validation images "
        f"at {cfg.size}px | {len(data.task.indices)} points | seed {cfg.seed}"
    )
    final, base = summary["final"], summary.get("baseline_mean_shape", {})
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
        curve = ced(p.nme)
        base_nme = base.get("val_nme")
        ced_figure({"model": curve}, run.figures / "ced.png")
        figures.append(("figures/ced.png", f"cumulative error distribution up to NME {CED_LIMIT}"))
        rep.table(
            ["", "value"],
            [
                [f"AUC at {CED_LIMIT}", summary["ced"][f"auc_{CED_LIMIT}"]],
                [f"failure rate at {CED_LIMIT}", summary["ced"][f"failure_rate_{CED_LIMIT}"]],
                ["mean-shape baseline NME", base_nme],
            ],
        )
    figures.append(("figures/filters.png", "first-layer filters"))
    for file, caption in figures:
        rep.heading(caption.split(":")[0]).figure(file, caption)
    rep.heading("Settings")
    rep.table(["option", "value"], [[k, v] for k, v in cfg.settings().items()])
    rep.machine(summary.get("runtime"))
    rep.write(run.path / "report.html")
