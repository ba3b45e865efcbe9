"""``facelab dream RUN SPEC --layer L --n N``: activation maximisation of a whole layer from each of N test faces,
scored as a set the way edits are (:mod:`facelab.probes.edit_set`): how far the objective climbed, whether dlib still
takes the dreamed face for the same person (FVA), and how close it stays (L1, SSIM, the high-frequency share of the
change). A robust network's dreams change features a person sees; a plain one's add fine noise: the set says how
often, not one example."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..hardware import Runtime
from ..run import Run
from .ascent import Regularisers
from .edit_set import ScoredSet, ascended_set, budget, contact_sheet, faces_of, score_facts, set_scores
from .layers import channel_objective, resolve_layer
from .output import probe_folder, write_probe_output


@dataclass
class DreamSet(ScoredSet):
    """``facelab dream RUN SPEC --layer L --n N``'s summary.json (docs/json.md)."""

    layer: str
    index: int
    objective: str
    gain_median: float | None  # the objective after / before, median over faces


def dream_set(
    run: str | Path | Run,
    spec: str | None = None,
    *,
    layer: str,
    objective: str = "square",
    n: int = 100,
    split: str = "test",
    steps: int = 60,
    lr: float = 0.02,
    reg: Regularisers | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    quiet: bool = True,
    runtime: Runtime | None = None,
) -> DreamSet:
    """Dream ``layer`` (``objective`` summed over its channels) from the first ``n`` faces of ``split`` and score the
    dreams as a set. Writes summary.json (one entry per face under ``faces``), a contact sheet and report.html."""
    opened = Run.for_probes(run, runtime)
    lyr = resolve_layer(opened.model, layer)
    f = channel_objective(opened, lyr, objective)
    folder = probe_folder(out, opened, "dream_set")
    reg = reg or Regularisers()
    start, names = faces_of(opened, spec, split, n, lambda d: np.ones(len(d.rows), bool))
    dreamed = ascended_set(f, start, steps, lr, reg, seed, "dreaming faces", quiet)
    with torch.no_grad():
        before, after = f(start).tolist(), f(dreamed).tolist()
    faces = [{"image": name, "objective_initial": b, "objective_final": a} for name, b, a in zip(names, before, after)]
    gains = [a / b for b, a in zip(before, after) if b > 0]
    summary = DreamSet(
        **vars(set_scores(faces, start, dreamed, reg, quiet)),
        n=len(faces),
        budget=budget(reg, start, steps, lr, f"{objective} of layer {lyr.index}'s outputs, every channel"),
        faces=faces,
        layer=lyr.name,
        index=lyr.index,
        objective=objective,
        gain_median=float(np.median(gains)) if gains else None,
    )
    captions = [(f"{f['objective_initial']:.3g}", f"{f['objective_final']:.3g}") for f in faces]
    figures = [contact_sheet(folder, start, dreamed, captions)]
    return write_probe_output(folder, f"facelab dream: layer {lyr.index} on {len(faces)} faces", summary, figures, _facts(summary))


def _facts(s: DreamSet) -> list[list]:
    return [
        ["faces dreamed", s.n],
        ["layer, objective", f"{s.index} ({s.layer}), {s.objective} over every channel"],
        ["median gain of the objective (after / before)", "—" if s.gain_median is None else f"{s.gain_median:.3f}"],
        *score_facts(s),
    ]
