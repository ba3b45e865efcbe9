"""Figures: training curves, image grids with captions, bars with intervals. Each function writes a PNG when given a
path and returns the ``matplotlib.figure.Figure`` itself when the path is None (a notebook shows it). Figures are made
without pyplot, so importing facelab never changes the notebook's matplotlib backend."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib
import numpy as np
from matplotlib.cm import ScalarMappable
from matplotlib.colors import Normalize
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

if TYPE_CHECKING:
    import torch


def new_figure(rows: int = 1, cols: int = 1, figsize: tuple[float, float] = (6, 4)):
    """(figure, axes) like ``pyplot.subplots``, but a plain Figure no backend knows of."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(rows, cols)


def save_figure(fig: Figure, path: Path | None) -> Path | Figure:
    """Write ``fig`` as a PNG at ``path`` (atomically) and return the path; with no path, return the figure."""
    if path is None:
        return fig
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110, bbox_inches="tight")
    os.replace(tmp, path)
    return path


def epoch_axis(ax) -> None:
    """An x axis of whole epochs: integer ticks only."""
    from matplotlib.ticker import MaxNLocator

    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))


def training_curves(rows: list[dict], path: Path | None, metrics: tuple[str, ...] = ("loss", "acc")) -> Path | Figure:
    """One panel per metric, train and valid per epoch."""
    fig, axes = new_figure(1, len(metrics), figsize=(5 * len(metrics), 3.4))
    axes = np.atleast_1d(axes)
    for ax, metric in zip(axes, metrics):
        for split, style in (("train", "-o"), ("valid", "-s")):
            pts = [(r["epoch"], r[metric]) for r in rows if r["split"] == split and r.get(metric) not in (None, "")]
            if pts:
                ax.plot(*zip(*pts), style, label=split, ms=4)
        epoch_axis(ax)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
        ax.legend()
    return save_figure(fig, path)


def image_grid(
    images: list[np.ndarray],
    captions: list[str],
    path: Path | None,
    cols: int = 8,
    colours: list[str] | None = None,
    points: list[np.ndarray | None] | None = None,
    points_b: list[np.ndarray | None] | None = None,
    colorbar: tuple[str, str] | None = None,
) -> Path | Figure:
    """Images (HxWx3 uint8) in a grid with a caption over each, optional landmark dots (``points`` lime,
    ``points_b`` red, e.g. ground truth and prediction) and a legend for them; ``colorbar`` = (colour map, label)
    adds the 0-1 scale of heat-map overlays."""
    fig, ax, placed = _mosaic(images, captions, cols, 1.6, colours=colours)
    for pts, colour in ((points, "lime"), (points_b, "red")):
        for k, (x0, y0, scale) in enumerate(placed):
            if pts is not None and pts[k] is not None:
                ax.scatter(x0 + pts[k][:, 0] * scale, y0 + pts[k][:, 1] * scale, s=3, c=colour)
    if points is not None and points_b is not None:
        fig.legend(
            handles=[
                Line2D([], [], ls="", marker="o", color="lime", label="ground truth"),
                Line2D([], [], ls="", marker="o", color="red", label="prediction"),
            ],
            loc="lower center",
            ncol=2,
            fontsize=7,
            frameon=False,
        )
    if colorbar is not None:
        _add_colorbar(fig, ax, colorbar[0], colorbar[1], 0.0, 1.0)
    return save_figure(fig, path)


def _as_rgb(image: np.ndarray) -> np.ndarray:
    """An image as HxWx3 uint8: RGB uint8 kept, 0-1 floats scaled, a single channel stretched to its range as grey."""
    a = np.asarray(image)
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[..., 0]
    if a.ndim == 2:
        if a.dtype != np.uint8:
            lo, hi = float(a.min()), float(a.max())
            a = ((a - lo) / (hi - lo if hi > lo else 1.0) * 255).astype(np.uint8)
        return np.repeat(a[..., None], 3, axis=2)
    if a.dtype != np.uint8:
        unit = float(a.max(initial=0)) <= 1.0  # floats 0-1, else values already on 0-255
        a = np.clip(a * 255 if unit else a, 0, 255).round().astype(np.uint8)
    return a[..., :3]


def _mosaic(images: list[np.ndarray], captions: list[str], cols: int, side_in: float, colours: list[str] | None = None):
    """(figure, axes, placements): every tile in one picture on one axes, each enlarged (nearest neighbour) to the
    largest tile's side with its captions above it, ``side_in`` inches a tile. One axes for the whole grid instead of
    one per tile: matplotlib builds ticks and measures titles per axes, which made a 65-tile activation grid take
    about a second on a 2-core laptop CPU. ``placements``: (x, y, scale) of each tile, to put points on it."""
    from PIL import Image

    tiles = [_as_rgb(im) for im in images]
    cols = max(1, min(cols, len(tiles))) if tiles else max(1, cols)
    rows = max(1, (len(tiles) + cols - 1) // cols)
    side = max([max(t.shape[:2]) for t in tiles] + [32])
    side = side * max(1, 96 // side)  # small maps (2x2 to 16x16) enlarged to whole-pixel blocks of at least 96 px
    lines = max((c.count("\n") + 1 for c in captions), default=1)
    gap, caption = max(2, side // 20), int(side * 0.13 * lines)
    cell_w, cell_h = side + gap, side + gap + caption
    canvas = np.full((rows * cell_h, cols * cell_w - gap, 3), 255, np.uint8)
    placed = []
    for k, tile in enumerate(tiles):
        h, w = tile.shape[:2]
        scale = side / max(h, w)
        th, tw = max(1, round(h * scale)), max(1, round(w * scale))
        if (th, tw) != (h, w):
            tile = np.asarray(Image.fromarray(tile).resize((tw, th), Image.NEAREST))
        x0 = (k % cols) * cell_w + (side - tw) // 2
        y0 = (k // cols) * cell_h + caption + (side - th) // 2
        canvas[y0 : y0 + th, x0 : x0 + tw] = tile
        placed.append((x0 - 0.5 + 0.5 * scale, y0 - 0.5 + 0.5 * scale, scale))  # pixel centres, as imshow draws them
    fig = Figure(figsize=(cols * side_in, rows * side_in * cell_h / cell_w))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(canvas, interpolation="nearest")
    ax.axis("off")
    for k, text in enumerate(captions[: len(tiles)]):
        x = (k % cols) * cell_w + side / 2
        y = (k // cols) * cell_h + caption - 1
        ax.text(x, y, text, ha="center", va="bottom", fontsize=7, color=(colours[k] if colours else "black"))
    return fig, ax, placed


def _add_colorbar(fig, axes, cmap: str, label: str, lo: float, hi: float) -> None:
    mappable = ScalarMappable(norm=Normalize(lo, hi), cmap=cmap)
    bar = fig.colorbar(mappable, ax=axes, fraction=0.025, pad=0.02)
    bar.set_label(label, fontsize=7)
    bar.ax.tick_params(labelsize=6)


def inversion_curves(runs: list, path: Path | None) -> Path | Figure:
    """Upright vs inverted accuracy per epoch for each run (one colour per optimiser/control), 95% bootstrap bands, the
    chance line and the emergence epoch. ``runs``: the inversion probe's curves (``per_epoch`` rows with each view's
    interval, ``upright_acc``, ``inverted_acc``, ``emergence_epoch``, ``chance``, ``opt``, ``control``)."""
    fig, ax = new_figure(figsize=(7, 4.2))
    colours = matplotlib.rcParams["axes.prop_cycle"].by_key()["color"]
    for k, run in enumerate(runs):
        c = colours[k % len(colours)]
        label = run.opt + (" (inverted-trained)" if run.control else "")
        epochs = [r["epoch"] for r in run.per_epoch]
        for view, style, accuracy in (("upright", "-o", run.upright_acc), ("inverted", "--s", run.inverted_acc)):
            lo = [r[f"{view}_lo"] for r in run.per_epoch]
            hi = [r[f"{view}_hi"] for r in run.per_epoch]
            ax.plot(epochs, accuracy, style, color=c, ms=3, label=f"{label}: {view}")
            ax.fill_between(epochs, lo, hi, color=c, alpha=0.12)
        if run.emergence_epoch is not None:
            ax.axvline(run.emergence_epoch, color=c, lw=1, alpha=0.6, label=f"{label}: gap emerges")
    ax.axhline(runs[0].chance, color="grey", ls=":", label="chance")
    epoch_axis(ax)
    ax.set_ylabel("validation accuracy")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    return save_figure(fig, path)


def map_grid(
    maps: np.ndarray,
    captions: list[str],
    path: Path | None,
    image: np.ndarray | None = None,
    title: str = "",
    cols: int = 8,
    cmap: str = "viridis",
    colorbar_label: str = "activation",
) -> Path | Figure:
    """Feature maps (N, h, w) on one shared colour scale (shown as a colour bar), captioned, with the input image first."""
    lo, hi = (float(maps.min()), float(maps.max())) if len(maps) else (0.0, 1.0)
    coloured = matplotlib.colormaps[cmap](Normalize(lo, hi)(np.asarray(maps, dtype=float)))[..., :3] if len(maps) else []
    tiles = ([image] if image is not None else []) + list(coloured)
    names = (["input"] if image is not None else []) + captions
    fig, ax, _ = _mosaic(tiles, names, cols, 1.3 if cols > 4 else 2.0)  # few, larger tiles leave room for long captions
    if len(maps):
        _add_colorbar(fig, ax, cmap, colorbar_label, lo, hi)
    if title:
        fig.suptitle(title, fontsize=9, y=1.0, va="bottom")
    return save_figure(fig, path)


def line_plot(
    series: dict[str, list[float]], path: Path | None, xlabel: str, ylabel: str, title: str = "", integer_x: bool = False
) -> Path | Figure:
    fig, ax = new_figure(figsize=(5.5, 3.4))
    for label, values in series.items():
        ax.plot(range(len(values)), values, label=label)
    if integer_x:
        epoch_axis(ax)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    if len(series) > 1:
        ax.legend(fontsize=8)
    return save_figure(fig, path)


def save_png(image: np.ndarray, path: Path) -> Path:
    """An (H, W, 3) uint8 image as a PNG, written atomically."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.stem + ".tmp.png")
    Image.fromarray(image).save(tmp)
    os.replace(tmp, path)
    return path


def save_gif(frames: list[np.ndarray], path: Path, ms_per_frame: int = 120, scale: int = 2) -> Path:
    """An animated GIF of (H, W, 3) uint8 frames, enlarged ``scale`` times (nearest) to be seen."""
    from PIL import Image

    path.parent.mkdir(parents=True, exist_ok=True)
    pics = [Image.fromarray(f).resize((f.shape[1] * scale, f.shape[0] * scale), Image.NEAREST) for f in frames]
    tmp = path.with_name(path.stem + ".tmp.gif")
    pics[0].save(tmp, save_all=True, append_images=pics[1:], duration=ms_per_frame, loop=0)
    os.replace(tmp, path)
    return path


def bar_chart(
    labels: list[str],
    values: list[float],
    path: Path | None,
    ylabel: str,
    intervals: Sequence[Sequence[float | None]] | None = None,
    title: str = "",
    flagged: list[bool] | None = None,
    reference: float | None = None,
    reference_label: str = "overall",
) -> Path | Figure:
    """Horizontal bars with optional 95% intervals; flagged bars (e.g. small groups) hatched and greyed."""
    fig, ax = new_figure(figsize=(7, 0.35 * len(labels) + 1.2))
    y = np.arange(len(labels))
    colours = ["#bbbbbb" if flagged and flagged[k] else "#4878d0" for k in range(len(labels))]
    xerr = None
    if intervals:
        xerr = np.array([[max(0.0, v - lo), max(0.0, hi - v)] for v, (lo, hi) in zip(values, intervals)]).T
    bars = ax.barh(y, values, xerr=xerr, color=colours, capsize=3)
    for k, bar in enumerate(bars):
        if flagged and flagged[k]:
            bar.set_hatch("//")
    handles = []
    if flagged and any(flagged):
        handles.append(Patch(facecolor="#bbbbbb", hatch="//", label="hatched: small group (few images)"))
    if reference is not None:
        handles.append(ax.axvline(reference, color="black", lw=1, ls=":", label=reference_label))
    if handles:
        ax.legend(handles=handles, fontsize=7, loc="lower right")
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(ylabel)
    ax.grid(axis="x", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    return save_figure(fig, path)


def filter_grid(w: torch.Tensor, path: Path | None) -> Path | Figure:
    """A conv layer's kernels as one numbered picture grid."""
    tiles = kernel_pictures(w)
    return image_grid(list(tiles), [str(k) for k in range(len(tiles))], path, cols=min(16, len(tiles)))


def kernel_pictures(w: torch.Tensor) -> np.ndarray:
    """(O, I, k, k) kernels -> (O, k, k, 3) uint8: RGB for 3 inputs, grey (mean over inputs) otherwise."""
    x = w if w.shape[1] == 3 else w.mean(1, keepdim=True)
    lo = x.amin(dim=(1, 2, 3), keepdim=True)
    hi = x.amax(dim=(1, 2, 3), keepdim=True)
    x = ((x - lo) / (hi - lo).clamp_min(1e-12) * 255).round().byte().permute(0, 2, 3, 1).numpy()
    return np.repeat(x, 3, axis=3) if x.shape[3] == 1 else x
