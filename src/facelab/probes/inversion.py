"""``facelab inversion``: does a face-identity network develop the face inversion effect, and when?

Trains one identity classifier per class count (and optimiser, and optionally a control trained
mostly on inverted faces); after every epoch it scores the same validation images upright,
inverted (rotated 180 degrees), mirrored and rotated 90 degrees, with bootstrap intervals.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import numpy as np
import torch

from ..errors import FacelabError
from ..files import prepare_output, record_entries, write_json
from ..hardware import Runtime
from ..report.figures import image_grid
from ..report.html import Report
from ..results import Summary
from ..training.batches import invert
from ..training.config import TrainConfig
from ..training.engine import train
from .stats import bootstrap_ci, wilson_ci

VIEWS = {
    "upright": lambda x: x,
    "inverted": invert,
    "mirrored": lambda x: x.flip(-1),
    "rotated90": lambda x: torch.rot90(x, 1, dims=(-2, -1)),
}


def emergence_in_words(epoch: int | None) -> str:
    return "not reached" if epoch is None else str(epoch)


def emergence_epoch(gap_lo: list[float], threshold: float = 0.0) -> int | None:
    """First epoch from which the gap's lower 95% bound stays above ``threshold`` to the end."""
    start = None
    for epoch, lo in enumerate(gap_lo):
        if lo > threshold:
            start = epoch if start is None else start
        else:
            start = None
    return start


class ViewScores(pl.Callback):
    """After each epoch: per-image correctness of the validation set in every view."""

    def __init__(self):
        self.per_epoch: list[dict[str, np.ndarray]] = []
        self.positions: list[np.ndarray] = []

    @torch.no_grad()
    def on_train_epoch_end(self, trainer, module):
        was_training = module.training
        module.eval()
        correct = {v: [] for v in VIEWS}
        positions = []
        for x8, y, pos in trainer.val_dataloaders:
            x = module.prepare(x8)
            positions.append(pos.numpy())
            for name, view in VIEWS.items():
                with module.runtime.autocast():
                    pred = module.model(view(x)).float().argmax(1)
                correct[name].append((pred.cpu() == y).numpy())
        module.train(was_training)
        self.per_epoch.append({k: np.concatenate(v).astype(np.float64) for k, v in correct.items()})
        self.positions.append(np.concatenate(positions))


@dataclass
class InversionCurve(Summary):
    """One run's accuracy after every epoch, upright, inverted, mirrored and rotated 90 degrees, with the final
    intervals, the upright-minus-inverted gap and the epoch from which it stays above the threshold. ``per_epoch``
    (each epoch's row of inversion.csv) is kept in memory, not in summary.json."""

    classes: int
    opt: str
    control: str | None
    chance: float
    upright_acc: list[float]
    inverted_acc: list[float]
    mirrored_acc: list[float]
    rotated90_acc: list[float]
    final_upright_ci: list[float | None]
    final_inverted_ci: list[float | None]
    final_gap: float
    final_gap_ci: list[float]
    emergence_epoch: int | None
    per_epoch: list[dict[str, Any]] = field(default_factory=list, compare=False)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if k != "per_epoch"}

    def in_words(self) -> str:
        control = " (inverted-trained)" if self.control else ""
        return (
            f"{self.classes} ids, {self.opt}{control}: upright {self.upright_acc[-1]:.3f}, inverted {self.inverted_acc[-1]:.3f}, "
            f"gap {self.final_gap:.3f} {self.final_gap_ci}, emergence epoch {emergence_in_words(self.emergence_epoch)}"
        )


@dataclass
class InversionResult(Summary):
    """``facelab inversion``'s summary.json (docs/json.md): every run's curves, what they trained on, and the settings
    that define them (a study compares those before reusing the runs)."""

    runs: list[InversionCurve]
    spec: str
    arch: str
    epochs: int
    inverted_fraction: float
    crop: str | None
    settings: dict[str, Any]


@dataclass
class InversionRun:
    classes: int
    opt: str
    control: str | None

    @property
    def name(self) -> str:
        return f"ids{self.classes}_{self.opt}" + ("_inverted-trained" if self.control else "")


def _summarise(run: InversionRun, scores: ViewScores, n_boot: int, threshold: float) -> InversionCurve:
    rows, gap_lo = [], []
    for epoch, c in enumerate(scores.per_epoch):
        row: dict[str, Any] = {"epoch": epoch, "n": int(len(c["upright"]))}
        for view, v in c.items():
            lo, hi = wilson_ci(int(v.sum()), len(v))  # a view's accuracy is a proportion
            row.update({f"{view}_acc": float(v.mean()), f"{view}_lo": lo, f"{view}_hi": hi})
        gap = c["upright"] - c["inverted"]
        lo, hi = bootstrap_ci(gap, n_boot, seed=1000 + epoch)
        row.update({"gap": float(gap.mean()), "gap_lo": lo, "gap_hi": hi})
        gap_lo.append(lo)
        rows.append(row)
    last = rows[-1]
    return InversionCurve(
        classes=run.classes,
        opt=run.opt,
        control=run.control,
        chance=1.0 / run.classes,
        upright_acc=[r["upright_acc"] for r in rows],
        inverted_acc=[r["inverted_acc"] for r in rows],
        mirrored_acc=[r["mirrored_acc"] for r in rows],
        rotated90_acc=[r["rotated90_acc"] for r in rows],
        final_upright_ci=[last["upright_lo"], last["upright_hi"]],
        final_inverted_ci=[last["inverted_lo"], last["inverted_hi"]],
        final_gap=last["gap"],
        final_gap_ci=[last["gap_lo"], last["gap_hi"]],
        emergence_epoch=emergence_epoch(gap_lo, threshold),
        per_epoch=rows,
    )


def as_recorded(values: dict) -> dict:
    """``values`` as summary.json holds them (tuples become lists), so settings compare equal after a round trip."""
    return json.loads(json.dumps(values))


def ran_with(summary: InversionResult, spec: str, **params) -> bool:
    """Whether an earlier inversion ``summary`` trained its runs on ``spec`` with ``params`` (every one as given)."""
    recorded = summary.settings
    return all(recorded.get(k, object()) == v for k, v in as_recorded({"spec": spec, **params}).items())


def inversion(
    spec: str = "synth:3000,ids=20",
    *,
    classes: Sequence[int] = (20,),
    arch: str = "darknet64",
    epochs: int = 10,
    opts: Sequence[str] = ("sgd",),
    inverted_fraction: float = 0.05,
    control: str | None = None,
    out: str | Path = "runs/inversion",
    size: str = "64",
    batch: int = 64,
    lr: float | None = None,
    weights: str | None = None,
    crop: str | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    threshold: float = 0.0,
    quiet: bool = False,
    replace: bool = False,
    runtime: Runtime | None = None,
) -> InversionResult:
    """Train the runs, write OUT/summary.json, OUT/inversion.csv, figures and report.html. ``crop``: as for training
    (``aligned``: faces aligned on five points, what makes identities learnable from in-the-wild photos)."""
    if control not in (None, "inverted-trained"):
        raise FacelabError(f"--control {control!r}: the only control is inverted-trained")
    out = Path(out)
    if (out / "summary.json").exists() and not replace:
        raise FacelabError(f"{out} already holds an inversion study; choose another --out")
    prepare_output(out, "inversion", fresh=replace)  # ``replace``: what facelab wrote there goes, a user's files stay
    plan = [InversionRun(c, o, None) for c in classes for o in opts]
    if control:
        plan += [InversionRun(c, o, control) for c in classes for o in opts]
    results = []
    for run in plan:
        scores = ViewScores()
        folder = out / run.name
        frac = 1.0 - inverted_fraction if run.control else inverted_fraction
        cfg = TrainConfig(
            spec=spec,
            out=str(folder),
            task="identity",
            classes=run.classes,
            arch=arch,
            epochs=epochs,
            opt=run.opt,
            lr=lr,
            size=size,
            batch=batch,
            weights=weights,
            crop=crop,
            seed=seed,
            inverted_fraction=frac,
            flip=True,
        )
        train(cfg, quiet=quiet, callbacks=[scores], force=True, runtime=runtime)  # an unfinished run of an interrupted study starts again
        if any(not np.array_equal(p, scores.positions[0]) for p in scores.positions):
            raise FacelabError("internal: validation images changed between epochs")
        results.append(_summarise(run, scores, n_boot, threshold))
    settings = as_recorded(dict(spec=spec, classes=classes, arch=arch, epochs=epochs, opts=opts, control=control, lr=lr))
    settings |= as_recorded(dict(inverted_fraction=inverted_fraction, size=size, batch=batch, weights=weights, crop=crop, seed=seed))
    summary = InversionResult(results, spec, arch, epochs, inverted_fraction, crop, settings)
    _write_outputs(out, summary, plan)
    record_entries(out)
    return summary


def _write_outputs(out: Path, summary: InversionResult, plan: list[InversionRun]) -> None:
    from ..report.figures import inversion_curves

    rows = [{"run": run.name, **r} for run, res in zip(plan, summary.runs) for r in res.per_epoch]
    keys = list(rows[0])
    (out / "inversion.csv").write_text(",".join(keys) + "\n" + "".join(",".join(str(r[k]) for k in keys) + "\n" for r in rows))
    rep = Report("The face inversion effect over training")
    rep.paragraph(
        f"data {summary.spec} | {summary.arch} | {summary.epochs} epochs | "
        f"{summary.inverted_fraction:.0%} of training images upside down (controls: the reverse)"
    )
    for classes in sorted({r.classes for r in summary.runs}):
        runs = [r for r in summary.runs if r.classes == classes]
        name = f"figures/inversion_ids{classes}.png"
        inversion_curves(runs, out / name)
        rep.heading(f"{classes} identities (chance {1 / classes:.3f})").figure(
            name, "accuracy per epoch with 95% bootstrap bands; dotted: chance; vertical line: emergence epoch"
        )
        rep.table(
            ["run", "final upright", "final inverted", "final gap", "gap 95% CI", "emergence epoch", "mirrored", "rotated 90"],
            [
                [
                    f"{r.opt}{' (inverted-trained)' if r.control else ''}",
                    r.upright_acc[-1],
                    r.inverted_acc[-1],
                    r.final_gap,
                    f"[{r.final_gap_ci[0]:.3f}, {r.final_gap_ci[1]:.3f}]",
                    emergence_in_words(r.emergence_epoch),
                    r.mirrored_acc[-1],
                    r.rotated90_acc[-1],
                ]
                for r in runs
            ],
        )
    first = out / plan[0].name
    _sample_figure(first, out / "figures" / "samples.png")
    rep.heading("Upright and inverted validation faces, first run").figure("figures/samples.png", "predicted / true identity")
    rep.links([(f"training report {p.name}", f"{p.name}/report.html") for p in plan])
    rep.write(out / "report.html")
    write_json(out / "summary.json", summary.to_json())


@torch.no_grad()
def _sample_figure(run_dir: Path, path: Path, n: int = 8) -> None:
    from ..run import Run

    run = Run.open(run_dir)
    model = run.model
    data = run.data(keep_balance=True)
    pos = data.split_positions("valid")[:n]
    x8, y = data.batch(pos)
    images, captions, colours = [], [], []
    for view in ("upright", "inverted"):
        xv = VIEWS[view](x8.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        pred = model(run.contract.to_input(xv.contiguous())).argmax(1)
        for k in range(len(pos)):
            images.append(xv[k].numpy())
            captions.append(f"{view} {int(pred[k])}/{int(y[k])}")
            colours.append("green" if int(pred[k]) == int(y[k]) else "red")
    image_grid(images, captions, path, cols=n, colours=colours)
