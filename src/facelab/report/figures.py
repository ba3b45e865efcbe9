"""Figures written as PNG files: training curves and image grids with captions."""
from __future__ import annotations

import os
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
    os.replace(tmp, path)
    return path


def training_curves(rows: list[dict], path: Path, metrics: tuple[str, ...] = ("loss", "acc")) -> Path:
    """One panel per metric, train and valid per epoch."""
    fig, axes = plt.subplots(1, len(metrics), figsize=(5 * len(metrics), 3.4))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        for split, style in (("train", "-o"), ("valid", "-s")):
            pts = [(r["epoch"], r[metric]) for r in rows if r["split"] == split and r.get(metric) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts), style, label=split, ms=4)
        ax.set_xlabel("epoch")
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return _save(fig, path)


def image_grid(images: list[np.ndarray], captions: list[str], path: Path, cols: int = 8, colours: list[str] | None = None,
               points: list[np.ndarray | None] | None = None) -> Path:  # fmt: skip
    """Images (HxWx3 uint8) in a grid with a caption under each, optional landmark dots."""
    rows = max(1, (len(images) + cols - 1) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(cols * 1.6, rows * 1.85))
    for k, ax in enumerate(np.atleast_1d(axes).ravel()):
        ax.axis("off")
        if k >= len(images):
            continue
        ax.imshow(images[k], cmap="gray" if images[k].ndim == 2 else None)
        if points is not None and points[k] is not None:
            ax.scatter(points[k][:, 0], points[k][:, 1], s=3, c="lime")
        ax.set_title(captions[k], fontsize=7, color=(colours[k] if colours else "black"))
    return _save(fig, path)


def inversion_curves(runs: list[dict], path: Path) -> Path:
    """Upright vs inverted accuracy per epoch for each run (one colour per optimiser/control),
    95% bootstrap bands, the chance line and the emergence epoch."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, run in enumerate(runs):
        c = colours[k % len(colours)]
        label = run["opt"] + (" (inverted-trained)" if run["control"] else "")
        epochs = [r["epoch"] for r in run["per_epoch"]]
        for view, style in (("upright", "-o"), ("inverted", "--s")):
            lo = [r[f"{view}_lo"] for r in run["per_epoch"]]
            hi = [r[f"{view}_hi"] for r in run["per_epoch"]]
            ax.plot(epochs, run[f"{view}_acc"], style, color=c, ms=3, label=f"{label}: {view}")
            ax.fill_between(epochs, lo, hi, color=c, alpha=0.12)
        if run["emergence_epoch"] is not None:
            ax.axvline(run["emergence_epoch"], color=c, lw=1, alpha=0.6)
    ax.axhline(runs[0]["chance"], color="grey", ls=":", label="chance")
    ax.set_xlabel("epoch")
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return _save(fig, path)
