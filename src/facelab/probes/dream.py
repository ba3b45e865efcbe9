"""``facelab dream`` (activation maximisation from a photo) and ``facelab edit`` (class-driven editing)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from ..errors import FacelabError
from ..hardware import Runtime
from ..report.figures import image_grid, line_plot, map_grid, save_gif, save_png
from .ascent import Ascent, Regularisers, ascend
from .change import HIGH_FREQUENCY_SIGMA, BudgetUsed, ChangeMeasures, amplified_change, change_by_mask, change_measures
from .edit_set import EditSet, attribute_probabilities, edit_objective, edit_set
from .layers import channel_objective, recorded, resolve_layer
from .output import probe_folder, write_probe_output
from .subject import named_probabilities, open_probe, pixels_to_uint8

if TYPE_CHECKING:
    from ..run import Run
    from .dream_set import DreamSet


@dataclass
class Dream(ChangeMeasures):
    """``facelab dream``'s summary.json (docs/json.md); with several channels the change measures are medians."""

    image: str
    layer: str
    index: int
    objective: str
    steps: int
    lr: float
    channels: list[int]
    objective_initial: float
    objective_final: float
    per_channel: dict[str, list[float]]
    prob_before: dict[str, float]
    prob_after: dict[str, float]  # of the first channel's image
    per_channel_measures: dict[str, ChangeMeasures]


@dataclass
class Edit(ChangeMeasures):
    """``facelab edit``'s summary.json for one face (docs/json.md)."""

    image: str
    attr: str
    to: int
    steps: int
    lr: float
    prob_before: float
    prob_after: float
    change_inside_mask: float | None
    change_outside_mask: float | None


def dream(
    run: str | Path | Run,
    image: str,
    layer: str,
    channel: str = "0",
    objective: str = "sum",
    *,
    steps: int = 100,
    lr: float = 0.02,
    reg: Regularisers | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    quiet: bool = True,
    runtime: Runtime | None = None,
    n: int | None = None,
    split: str = "test",
) -> Dream | DreamSet:
    """``facelab dream``: :func:`dream_image` on one photo; with ``n``, ``image`` is a data SPEC and the whole layer is
    dreamed from ``n`` of its ``split`` faces, scored as a set (:func:`facelab.probes.dream_set.dream_set`: FVA,
    closeness, high-frequency share)."""
    if n is None:
        return dream_image(run, image, layer, channel, objective, steps=steps, lr=lr, reg=reg, seed=seed, out=out, quiet=quiet,
                           runtime=runtime)  # fmt: skip
    from .dream_set import dream_set

    _one_spec(image)
    return dream_set(run, image, layer=layer, objective=objective, n=n, split=split, steps=steps, lr=lr, reg=reg, seed=seed, out=out,
                     quiet=quiet, runtime=runtime)  # fmt: skip


def dream_image(
    run: str | Path | Run,
    image: str,
    layer: str,
    channel: str = "0",
    objective: str = "sum",
    *,
    steps: int = 100,
    lr: float = 0.02,
    reg: Regularisers | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    quiet: bool = True,
    runtime: Runtime | None = None,
) -> Dream:
    """Gradient ascent on the photo to increase one channel's output (or every channel's, ``channel="all"``)."""
    opened, subject = open_probe(run, image, runtime)
    model = opened.model
    folder = probe_folder(out, run, "dream")
    lyr = resolve_layer(model, layer)
    start = opened.contract.pixels(subject.image)
    with torch.no_grad(), recorded({"layer": lyr.module}) as outs:
        model(opened.contract.normalise(start))
    n_channels = outs["layer"].shape[1]
    chans = list(range(n_channels)) if channel == "all" else [_channel_number(channel, n_channels)]
    idx = torch.tensor(chans)
    f = channel_objective(opened, lyr, objective, idx)
    reg = reg or Regularisers()
    result = ascend(f, start.repeat(len(chans), 1, 1, 1), steps, lr, reg, seed, quiet, "dream")
    with torch.no_grad():
        before, after = f(start.repeat(len(chans), 1, 1, 1)), f(result.pixels)
        logits = model(opened.contract.normalise(torch.cat([start, result.pixels[:1]]))).float()
    measures = [change_measures(start[0], p, reg.eps(start.shape[1:]), reg.budget_norm, subject.face) for p in result.pixels]
    summary = Dream(
        **vars(_median_measures(measures)),
        image=subject.name,
        layer=lyr.name,
        index=lyr.index,
        objective=objective,
        steps=steps,
        lr=lr,
        channels=chans,
        objective_initial=float(before.sum()),
        objective_final=float(after.sum()),
        per_channel={str(c): [float(b), float(a)] for c, b, a in zip(chans, before, after)},
        prob_before=named_probabilities(opened, logits[0]),
        prob_after=named_probabilities(opened, logits[1]),
        per_channel_measures={str(c): m for c, m in zip(chans, measures)},
    )
    _write_inputs(folder, start, result.pixels, [f"channel_{c}" for c in chans] if len(chans) > 1 else None)
    figures = _dream_figures(folder, opened, lyr, subject.image, start, result, chans, objective)
    facts: list[list] = [
        ["layer", f"{lyr.index} ({lyr.name})"],
        ["channel(s)", channel],
        ["objective", objective],
        ["initial", summary.objective_initial],
        ["final", summary.objective_final],
        *_measure_facts(summary),
    ]
    return write_probe_output(folder, f"facelab dream: {subject.name}", summary, figures, facts)


def _median_measures(measures: list[ChangeMeasures]) -> ChangeMeasures:
    """One image's measures as they are; several images' (a dream of every channel) as their medians."""
    if len(measures) == 1:
        return measures[0]

    def median(values: list[float | None]) -> float | None:
        kept = [v for v in values if v is not None]
        return float(np.median(kept)) if kept else None

    budget = measures[0].budget
    return ChangeMeasures(
        ssim=float(np.median([m.ssim for m in measures])),
        high_frequency_share=median([m.high_frequency_share for m in measures]),
        budget=BudgetUsed(budget.norm, budget.eps, float(np.median([m.budget.used for m in measures]))),
        change_inside_face=median([m.change_inside_face for m in measures]),
        change_outside_face=median([m.change_outside_face for m in measures]),
    )


def _measure_facts(summary: ChangeMeasures) -> list[list]:
    """The measures beside each picture: what the ascent did to its image."""
    b = summary.budget
    shown = lambda v: "unknown (no landmarks)" if v is None else v  # noqa: E731
    return [
        ["SSIM to the start image", summary.ssim],
        [f"high-frequency share of the change (blur sigma {HIGH_FREQUENCY_SIGMA} px removes it)", shown(summary.high_frequency_share)],
        [f"budget ({b.norm})", "unbounded" if b.eps is None else f"{b.used:.3f} of {b.eps:.3f} used"],
        ["mean |change| inside the face", shown(summary.change_inside_face)],
        ["mean |change| outside the face", shown(summary.change_outside_face)],
    ]


def _write_inputs(folder: Path, start: torch.Tensor, edited: torch.Tensor, names: list[str] | None) -> None:
    """start.png and edited.png: the network's own inputs, lossless, at its input size (several: edited/NAME.png)."""
    save_png(pixels_to_uint8(start), folder / "start.png")
    if names is None:
        save_png(pixels_to_uint8(edited[:1]), folder / "edited.png")
        return
    for k, name in enumerate(names):
        save_png(pixels_to_uint8(edited[k : k + 1]), folder / "edited" / f"{name}.png")


def _channel_number(text: str, n: int) -> int:
    try:
        c = int(text)
    except ValueError:
        raise FacelabError(f"--channel {text!r}: give a channel number or 'all'") from None
    if not 0 <= c < n:
        raise FacelabError(f"--channel {c}: this layer has channels 0..{n - 1}")
    return c


def _dream_figures(folder, run, lyr, photo, start, result: Ascent, chans, objective) -> list[tuple[str, str]]:
    finals = [pixels_to_uint8(result.pixels[k : k + 1]) for k in range(len(chans))]
    line_plot({"objective": [sum(v) for v in result.values]}, folder / "objective.png", "step", f"{objective} objective")
    if len(chans) > 1:
        image_grid([photo] + finals, ["start"] + [f"channel {c}" for c in chans], folder / "dream_grid.png")
        return [("dream_grid.png", "each channel's image after ascent"), ("objective.png", "sum of the objectives per step")]
    save_png(finals[0], folder / "dream.png")
    save_gif(result.frames, folder / "progress.gif")
    with torch.no_grad(), recorded({"layer": lyr.module}) as outs:
        run.model(run.contract.normalise(torch.cat([start, result.pixels])))
    maps = outs["layer"][:, chans[0]].float().numpy()
    map_grid(
        maps,
        ["before", "after"],
        folder / "activation_before_after.png",
        photo,
        cols=3,
        title=f"channel {chans[0]} of layer {lyr.index}, one colour scale",
    )
    return [
        ("dream.png", "the image after ascent"),
        ("progress.gif", "progress"),
        ("activation_before_after.png", "the channel's map before and after"),
        ("objective.png", "objective per step"),
    ]


def edit(
    run: str | Path | Run,
    image: str,
    attr: str,
    *,
    to: int = 1,
    steps: int = 60,
    lr: float = 0.01,
    reg: Regularisers | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    quiet: bool = True,
    runtime: Runtime | None = None,
    n: int | None = None,
    oracle: str | Path | None = None,
    split: str = "test",
) -> Edit | EditSet:
    """``facelab edit``: :func:`edit_image` on one photo; with ``n``, ``image`` is a data SPEC and ``n`` of its ``split``
    faces are edited and scored as a set (:func:`facelab.probes.edit_set.edit_set`: flip rate, FVA, MNAC with ``oracle``,
    closeness)."""
    if n is None:
        return edit_image(run, image, attr, to=to, steps=steps, lr=lr, reg=reg, seed=seed, out=out, quiet=quiet, runtime=runtime)
    _one_spec(image)
    return edit_set(run, image, attr=attr, to=to, n=n, oracle=oracle, split=split, steps=steps, lr=lr, reg=reg, seed=seed, out=out,
                    quiet=quiet, runtime=runtime)  # fmt: skip


def edit_image(
    run: str | Path | Run,
    image: str,
    attr: str,
    *,
    to: int = 1,
    steps: int = 60,
    lr: float = 0.01,
    reg: Regularisers | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    quiet: bool = True,
    runtime: Runtime | None = None,
) -> Edit:
    """Move the image toward ``attr`` = ``to`` by gradient steps on its logit; where did the pixels change?"""
    opened, subject = open_probe(run, image, runtime)
    k, sign, f = edit_objective(opened, attr, to)
    folder = probe_folder(out, run, "edit")
    start = opened.contract.pixels(subject.image)
    reg = reg or Regularisers()
    result = ascend(f, start, steps, lr, reg, seed, quiet, "edit")
    p_before, p_after = attribute_probabilities(opened, k, torch.cat([start, result.pixels]))
    change = (result.pixels - start).abs().mean(1)[0].numpy()  # (H, W), mean over colour
    inside, outside = change_by_mask(change, subject.mask(attr))
    summary = Edit(
        **vars(change_measures(start[0], result.pixels[0], reg.eps(start.shape[1:]), reg.budget_norm, subject.face)),
        image=subject.name,
        attr=attr,
        to=to,
        steps=steps,
        lr=lr,
        prob_before=p_before,
        prob_after=p_after,
        change_inside_mask=inside,
        change_outside_mask=outside,
    )
    _write_inputs(folder, start, result.pixels, None)
    figures = _edit_figures(folder, subject, start, result, sign, attr, change)
    facts: list[list] = [
        [f"P({attr}) before", p_before],
        [f"P({attr}) after", p_after],
        ["mean |change| inside the attribute's region", inside if inside is not None else "no mask"],
        ["mean |change| outside", outside if outside is not None else "no mask"],
        *_measure_facts(summary),
    ]
    return write_probe_output(folder, f"facelab edit: {subject.name}, {attr} -> {to}", summary, figures, facts)


def _edit_figures(folder, subject, start, result: Ascent, sign, attr, change) -> list[tuple[str, str]]:
    before, after = pixels_to_uint8(start), pixels_to_uint8(result.pixels)
    diff = amplified_change(change)
    panels, captions = [before, after, diff], ["before", "after", "|change|, amplified"]
    mask = subject.mask(attr)
    if mask is not None:
        outlined = diff.copy()
        outlined[mask & ~_eroded(mask)] = (255, 0, 255)
        panels.append(outlined)
        captions.append(f"{attr} region outlined")
    image_grid(panels, captions, folder / "edit.png", cols=len(panels))
    save_gif(result.frames, folder / "progress.gif")
    line_plot({f"{attr} logit": [sign * v[0] for v in result.values]}, folder / "logit.png", "step", "logit")
    return [("edit.png", "before, after, amplified difference"), ("logit.png", f"{attr} logit per step"), ("progress.gif", "progress")]


def _eroded(mask: np.ndarray) -> np.ndarray:
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def _one_spec(image: str) -> None:
    if "#" in image:
        raise FacelabError(f"{image}: --n changes a set of faces; give the SPEC without #ITEM (or leave out --n for one face)")
