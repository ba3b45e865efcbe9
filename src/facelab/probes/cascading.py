"""Cascading randomisation (Adebayo et al. 2018, "Sanity checks for saliency maps"): the network's weighted layers
re-initialised from the top down, k at a time, and each method's maps compared with its maps of the trained network
by their rank correlation. A method whose maps stay alike while the network that decides is destroyed explains the
image, not the model."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from ..report.figures import image_grid, new_figure, save_figure
from .cam import overlay
from .explain import maps_over
from .split_data import SplitData

STILL_ALIKE = 0.5  # a rank correlation at or above this, with half of the layers randomised, flags the method
MOST_STEPS = 8  # a deep network's cascade is sampled at this many depths (ResNet-18 has 21 weighted layers)


def weighted_layers(model: nn.Module) -> list[nn.Module]:
    """The layers with weights, input to output (convolutions and linear layers)."""
    return [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]


def with_top_layers_randomised(model: nn.Module, k: int, seed: int = 0) -> nn.Module:
    """A copy whose ``k`` weighted layers nearest the output are re-initialised (the process's random state is left
    as it was)."""
    clone = copy.deepcopy(model)
    layers = weighted_layers(clone)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        for layer in layers[len(layers) - k :]:
            layer.reset_parameters()
    return clone


def cascade_steps(n_layers: int) -> list[int]:
    """How many top layers each step randomises: every count for a small network, MOST_STEPS of them for a deep one."""
    return sorted({int(k) for k in np.round(np.linspace(1, n_layers, min(n_layers, MOST_STEPS)))})


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float | None:
    """The mean over images of the Spearman correlation of two maps of the same image (None when every pair has a
    constant map, whose ranks say nothing)."""
    ra, rb = (rankdata(m.flatten(1).numpy(), axis=1) for m in (a, b))
    ra, rb = ra - ra.mean(1, keepdims=True), rb - rb.mean(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ra * rb).sum(1) / np.sqrt((ra**2).sum(1) * (rb**2).sum(1))
    return None if np.isnan(r).all() else float(np.nanmean(r))


def cascading_randomisation(
    d: SplitData, methods: list[str], output: int | None, layer: str | None, trained: dict[str, torch.Tensor], seed: int, quiet: bool
) -> tuple[dict[str, list[dict]], dict[str, list[torch.Tensor]]]:
    """Per method, ``[{"layers_randomised": k, "spearman": r}, ...]`` against its maps of the trained network
    (``trained``; of the attribute's presence on every face for a yes/no output, so each step explains the same
    thing), and each step's map of the first image (for the figure)."""
    steps = cascade_steps(len(weighted_layers(d.model)))
    curves: dict[str, list[dict]] = {m: [] for m in methods}
    first: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
    for k in steps:
        model = with_top_layers_randomised(d.model, k, seed)
        for method in methods:
            maps = maps_over(d, method, output, layer, model=model, quiet=quiet, present=d.binary)[3]
            curves[method].append({"layers_randomised": k, "spearman": rank_correlation(trained[method], maps)})
            first[method].append(maps[0])
    return curves, first


def still_alike(curves: dict[str, list[dict]], n_layers: int) -> list[str]:
    """A warning per method whose maps still correlate at STILL_ALIKE or more once the top half of the layers is
    randomised."""
    lines = []
    for method, curve in curves.items():
        deep = [c for c in curve if c["layers_randomised"] >= n_layers / 2 and c["spearman"] is not None]
        if deep and max(c["spearman"] for c in deep) >= STILL_ALIKE:
            worst = max(deep, key=lambda c: c["spearman"])
            lines.append(
                f"{method}'s maps stay alike with {worst['layers_randomised']} of {n_layers} layers randomised (rank correlation "
                f"{worst['spearman']:.2f}): they show the image more than what the network learned"
            )
    return lines


def cascading_figures(
    folder: Path, curves: dict, first: dict, trained_first: dict, image: np.ndarray, n_layers: int
) -> list[tuple[str, str]]:
    """The correlation against the layers randomised (as in the paper), and each method's map of one image at each step."""
    fig, ax = new_figure(figsize=(5.5, 3.4))
    for method, curve in curves.items():
        ax.plot(
            [c["layers_randomised"] for c in curve], [np.nan if c["spearman"] is None else c["spearman"] for c in curve], "o-", label=method
        )
    ax.axhline(STILL_ALIKE, color="grey", linestyle="--", linewidth=0.8)
    ax.set_xlabel(f"weighted layers randomised from the top (of {n_layers})")
    ax.set_ylabel("rank correlation with the trained maps")
    ax.set_ylim(-0.2, 1.05)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, folder / "cascading.png")
    steps = [c["layers_randomised"] for c in next(iter(curves.values()))]
    tiles, captions = [], []
    for method in curves:
        for k, m in [("trained", trained_first[method]), *zip(steps, first[method])]:
            tiles.append(overlay(image, m.numpy()))
            captions.append(f"{method}, {k}" + ("" if k == "trained" else " randomised"))
    image_grid(tiles, captions, folder / "cascading_maps.png", cols=1 + len(steps))
    return [
        ("cascading.png", f"cascading randomisation: maps against the trained network's (dashed: {STILL_ALIKE})"),
        ("cascading_maps.png", "each method's map of the first image as layers are randomised from the top"),
    ]
