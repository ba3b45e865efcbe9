"""``facelab layers``, ``activations``, ``rgb`` and ``filters``: what each layer of a trained network responds to."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import FacelabError
from ..hardware import Runtime
from ..models.registry import conv_layers
from ..report.figures import filter_grid, map_grid, save_png
from ..results import Summary
from ..run import Run
from .layers import Layer, layer_table, recorded, resolve_layer
from .output import probe_folder, write_probe_output
from .subject import open_probe


def layers(run: str | Path | Run, *, runtime: Runtime | None = None) -> list[dict]:
    """The run's conv layers, numbered from 1, with module names and output shapes."""
    opened = Run.for_probes(run, runtime)
    w, h = opened.contract.size
    return layer_table(opened.model, (opened.contract.channels, h, w))


@dataclass
class LayerGrid(Summary):
    """One layer's activation grid: its output's shape, the channels shown and the figure."""

    index: int
    channels: int
    height: int
    width: int
    shown: int
    figure: str


@dataclass
class Activations(Summary):
    """``facelab activations``' summary.json: the image and each layer's grid, by layer name."""

    image: str
    layers: dict[str, LayerGrid]


@dataclass
class ChannelsRGB(Summary):
    """``facelab rgb``'s summary.json: three channels of one layer drawn as R, G, B."""

    image: str
    layer: str
    index: int
    channels: list[int]
    figure: str


@dataclass
class Filters(Summary):
    """``facelab filters``' summary.json: the learned kernels of one conv layer."""

    layer: str
    index: int
    n_filters: int
    in_channels: int
    kernel: list[int]
    figure: str


@torch.no_grad()
def layer_outputs(model, x: torch.Tensor, layer_specs: list[str]) -> dict[Layer, torch.Tensor]:
    """{Layer: (C, h, w) output} of one forward pass of the input ``x`` (1, C, H, W)."""
    chosen = [resolve_layer(model, s) for s in layer_specs]
    with recorded({c.name: c.module for c in chosen}) as outs:
        model(x)
    return {c: outs[c.name][0].float() for c in chosen}


def activations(
    run: str | Path | Run,
    image: str,
    layer_specs: list[str] | None = None,
    *,
    max_channels: int = 64,
    out: str | Path | None = None,
    runtime: Runtime | None = None,
) -> Activations:
    """A grid of every channel's activation map (numbered from 0) per chosen layer, beside the input."""
    opened, subject = open_probe(run, image, runtime)
    folder = probe_folder(out, run, "activations")
    maps = layer_outputs(opened.model, opened.contract.image_input(subject.image), layer_specs or ["1", "2", "3"])
    figures: list[tuple[str, str]] = []
    shapes: dict[str, LayerGrid] = {}
    for layer, act in maps.items():
        if act.ndim != 3:
            raise FacelabError(f"layer {layer.name}: output has shape {tuple(act.shape)}, not channel maps (choose a conv layer)")
        n = min(max_channels, act.shape[0])
        file = f"activations_layer{layer.index or layer.name}.png"
        map_grid(
            act[:n].numpy(),
            [str(c) for c in range(n)],
            folder / file,
            subject.image,
            title=f"layer {layer.index} ({layer.name}): {act.shape[0]} channels of {act.shape[1]}x{act.shape[2]}",
        )
        figures.append((file, f"layer {layer.index} ({layer.name}), channels 0..{n - 1} of {act.shape[0]}"))
        shapes[layer.name] = LayerGrid(layer.index, act.shape[0], act.shape[1], act.shape[2], n, file)
    summary = Activations(subject.name, shapes)
    return write_probe_output(folder, f"facelab activations: {subject.name}", summary, figures)


def channels_rgb(act: torch.Tensor, channels: list[int], size: tuple[int, int]) -> np.ndarray:
    """Channels (a, b, c) of a (C, h, w) output as R, G, B: each min-max normalised, upsampled to ``size`` (H, W)."""
    if len(channels) != 3:
        raise FacelabError(f"--channels needs exactly three channel numbers (a,b,c), got {len(channels)}")
    bad = [c for c in channels if not 0 <= c < act.shape[0]]
    if bad:
        raise FacelabError(f"--channels {bad}: this layer has channels 0..{act.shape[0] - 1}")
    x = act[channels]
    lo = x.amin(dim=(1, 2), keepdim=True)
    hi = x.amax(dim=(1, 2), keepdim=True)
    x = (x - lo) / (hi - lo).clamp_min(1e-12)
    x = F.interpolate(x[None], size=size, mode="bilinear", align_corners=False)[0].clamp(0, 1)
    return x.permute(1, 2, 0).numpy()


def rgb(
    run: str | Path | Run,
    image: str,
    layer: str,
    channels: list[int],
    *,
    out: str | Path | None = None,
    overlay: float = 0.0,
    runtime: Runtime | None = None,
) -> ChannelsRGB:
    """Three channels of one layer as one RGB picture, optionally blended over the input (``overlay`` in 0..1)."""
    opened, subject = open_probe(run, image, runtime)
    folder = probe_folder(out, run, "rgb")
    ((lyr, act),) = layer_outputs(opened.model, opened.contract.image_input(subject.image), [layer]).items()
    picture = channels_rgb(act, channels, subject.image.shape[:2])
    img = (picture * 255).round().astype(np.uint8)
    if overlay > 0:
        img = ((1 - overlay) * subject.image + overlay * img).round().astype(np.uint8)
    name = f"rgb_layer{lyr.index}_{'_'.join(map(str, channels))}.png"
    save_png(img, folder / name)
    save_png(subject.image, folder / "input.png")
    summary = ChannelsRGB(subject.name, lyr.name, lyr.index, channels, name)
    return write_probe_output(
        folder,
        f"facelab rgb: {subject.name}",
        summary,
        [("input.png", "input"), (name, f"channels {channels} of layer {lyr.index} as R, G, B")],
    )


def filters(run: str | Path | Run, *, layer: str = "1", out: str | Path | None = None, runtime: Runtime | None = None) -> Filters:
    """The learned kernels of a conv layer: colour when it reads RGB, grey otherwise, each normalised."""
    model = Run.for_probes(run, runtime).model
    folder = probe_folder(out, run, "filters")
    lyr = resolve_layer(model, layer)
    if not isinstance(lyr.module, torch.nn.Conv2d):
        raise FacelabError(f"layer {lyr.name}: not a conv layer; convs are {', '.join(n for n, _ in conv_layers(model))}")
    w = lyr.module.weight.detach().float()
    file = f"filters_layer{lyr.index}.png"
    filter_grid(w, folder / file)
    summary = Filters(lyr.name, lyr.index, int(w.shape[0]), int(w.shape[1]), list(w.shape[2:]), file)
    return write_probe_output(
        folder,
        f"facelab filters: layer {lyr.index}",
        summary,
        [(file, f"{w.shape[0]} kernels of {tuple(w.shape[1:])}, each min-max normalised")],
    )
