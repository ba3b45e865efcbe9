"""report.html of a training run: settings, curves, final table, sample predictions (the task captions them)."""

from __future__ import annotations

import torch

from ..results import TrainSummary
from .figures import image_grid, training_curves
from .html import Report

N_SAMPLES = 16


@torch.no_grad()
def sample_predictions(module, data, n: int = N_SAMPLES):
    """A fixed sample of validation images with the task's caption of each prediction against its label."""
    pos = data.split_positions("valid")[:n]
    x8, y = data.batch(pos)
    module.eval()
    out = module.model(module.prepare(x8)).float().cpu()
    captions, oks = zip(*(data.task.caption(out[k], y[k].cpu()) for k in range(len(pos))))
    return [im.numpy() for im in x8.cpu()], list(captions), ["green" if ok else "red" for ok in oks]


def summary_columns(block: dict) -> dict:
    """A summary block as flat columns: {"val_acc_per_attr": {"Male": ..}} becomes {"acc Male": ..}."""
    flat = {}
    for key, value in block.items():
        if isinstance(value, dict):
            prefix = key.removeprefix("val_").removesuffix("_per_attr")
            flat.update({f"{prefix} {name}": v for name, v in value.items()})
        elif key != "epoch":
            flat[key] = value
    return flat


CHANCE_MARGIN = 0.02


def at_chance(summary: TrainSummary) -> list[str]:
    """A warning per output whose final validation accuracy is within CHANCE_MARGIN of always answering the majority."""
    final = summary.final
    accuracies = final.get("val_acc_per_attr") or {"acc": final.get("val_acc")}
    return [
        f"WARNING: {name} {accuracies[name]:.3f} is at chance level (always answering the most frequent value scores "
        f"{chance:.3f}): this model has learned nothing about it, and its maps and audits explain a guess."
        for name, chance in summary.chance.items()
        if accuracies.get(name) is not None and accuracies[name] <= chance + CHANCE_MARGIN
    ]


# Measured (docs/measured.md): UTKFace Young, darknet64 at 64 px, 1,600 training faces, default SGD.
SLOW_ROBUST = (
    "NOTE: adversarial training learns more slowly than plain training: on UTKFace (1,600 training faces, 64 px) --robust 0.5 "
    "stayed at the majority answer after 6 epochs (78 steps) and reached 0.765 after 10 (130 steps); train longer "
    "(--epochs) or with a smaller --robust. An attribute whose cue is a small, fine change may not be learnable within the "
    "budget at all (synthetic faces' Young: lines of L2 2.3; no budget down to 0.1 learned it, see docs/measured.md)"
)


def run_warnings(summary: TrainSummary) -> list[str]:
    """:func:`at_chance`'s warnings and, for a run trained with ``--robust`` that is at chance, why and what to do."""
    lines = at_chance(summary)
    return lines + [SLOW_ROBUST] if lines and summary.robust else lines


def robust_cost(optim, rows: list[dict]) -> str:
    """What --robust did and what it cost: the attack adds ``robust_steps`` forward and backward passes to each step."""
    times = [float(r["time_s"]) for r in rows if r["split"] == "valid" and r.get("time_s") not in (None, "")]
    per_epoch = f"; {times[-1] / len(times):.1f} s per epoch here" if times else ""
    attack = "one step (fast adversarial training)" if optim.robust_steps == 1 else f"{optim.robust_steps} PGD steps"
    return (
        f"adversarial training: each batch replaced by its worst case within {optim.robust} ({optim.robust_norm}, pixel units), "
        f"found by {attack}: about {1 + optim.robust_steps}x the compute of a plain step{per_epoch}"
    )


def write_run_report(run, cfg, module, data, summary: TrainSummary) -> None:
    task = data.task
    rows = run.read_metrics()
    training_curves(rows, run.figures / "curves.png", task.curve_metrics)
    images, captions, colours = sample_predictions(module, data)
    image_grid(images, captions, run.figures / "samples.png", colours=colours)
    rep = Report(f"facelab run: {cfg.task} with {cfg.model.arch}")
    n_train, batch = len(data.split_positions("train")), cfg.optim.batch
    assert batch is not None  # resolved when the config was made
    used = n_train // batch * batch if n_train >= batch else n_train
    dropped = f" ({used} an epoch: the last {n_train - used} left over after whole batches of {batch}, a new draw each epoch)"
    rep.paragraph(
        f"data {cfg.data.spec} | {n_train} training{dropped if used < n_train else ''} and "
        f"{len(data.split_positions('valid'))} validation images at {cfg.data.size}px | seed {cfg.seed}"
    )
    for line in run_warnings(summary):
        rep.paragraph(line, "note" if line.startswith("NOTE") else "")
    if cfg.optim.robust:
        rep.paragraph(robust_cost(cfg.optim, rows), "note")
    if summary.skipped:
        skipped = summary.skipped
        shown = ", ".join(skipped[:20]) + (f" and {len(skipped) - 20} more" if len(skipped) > 20 else "")
        rep.paragraph(f"left out ({len(skipped)}, unreadable or without a face found): {shown}", "note")
    rep.heading("Final and best validation metrics")
    columns = {"final": summary_columns(summary.final), "best": summary_columns(summary.best)}
    header = list(columns["final"])
    rep.table([""] + header, [[key] + [columns[key].get(h, "") for h in header] for key in columns])
    rep.heading("Training curves").figure("figures/curves.png", f"{' and '.join(task.curve_metrics)} per epoch, train and valid")
    rep.heading("Sample validation predictions").figure("figures/samples.png", task.caption_about)
    rep.heading("Per-epoch metrics")
    keys = [k for k in rows[0] if k not in ("n",)] if rows else []
    rep.table(keys, [[r.get(k, "") for k in keys] for r in rows])
    rep.heading("Settings")
    rep.table(["option", "value"], [[k, v] for k, v in cfg.settings().items()])
    if cfg.runtime.world > 1:
        rep.table(["DDP", "value"], [[k.replace("_", " "), v] for k, v in cfg.batching().items()])
    rep.machine(summary.runtime)
    rep.write(run.path / "report.html")
