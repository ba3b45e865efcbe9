"""``facelab sweep``: one training run per setting (learning rate x conv count), one table and one figure.

Finished settings are kept: an interrupted sweep, started again, resumes the unfinished run
from its last checkpoint and skips the finished ones (a run is reused only when its settings are the same).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from pathlib import Path
from typing import Any

from ..files import prepare_output, record_entries, write_csv, write_json
from ..hardware import Runtime
from ..report.figures import epoch_axis, new_figure, save_figure
from ..report.html import Report
from ..results import Summary, WithFields
from ..training.config import TrainConfig
from ..training.engine import trained
from ..training.run_folder import RunFolder
from ..training.task_registry import task_class


def _setting_name(lr: float, convs: int | None) -> str:
    return f"lr{lr:g}" + (f"_convs{convs}" if convs is not None else "")


@dataclass
class SweepSetting(WithFields):
    """One setting of a sweep: its learning rate and conv count, its run folder, and its final validation metrics
    (``fields``, by name, beside the others in the JSON)."""

    setting: str
    lr: float
    convs: int | None
    run: str
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class SweepResult(Summary):
    """``facelab sweep``'s summary.json (docs/json.md): every setting's final metrics, the best by the task's monitor."""

    task: str
    arch: str | None  # None: the task's default network
    settings: list[SweepSetting]
    best: SweepSetting
    ranked_by: str
    folder: str  # the sweep's folder name (a study's step: lr_sweep, conv_ablation)


def sweep(
    base: TrainConfig, lrs: list[float], convs: list[int | None], out: str | Path, *, quiet: bool = True, runtime: Runtime | None = None
) -> SweepResult:
    """Trains ``base`` once per (lr, convs) in ``runtime`` (default: the config's); writes sweep.csv, summary.json,
    figures/sweep.png and report.html."""
    out = prepare_output(out, "sweep")
    rows, curves = [], {}
    for lr, c in product(lrs, convs or [None]):
        name = _setting_name(lr, c)
        cfg = base.changed(lr=lr, convs=c, out=str(out / name))
        summary = trained(cfg, quiet, runtime)
        metrics = {k: v for k, v in summary.final.items() if not isinstance(v, dict)}
        rows.append(SweepSetting(name, lr, c, name, metrics))
        curves[name] = [r for r in RunFolder(out / name).read_metrics() if r["split"] == "valid"]
    key, mode = task_class(base.task).monitor
    best = (min if mode == "min" else max)(rows, key=lambda r: r.fields[key])
    table = [r.to_json() for r in rows]
    write_csv(out / "sweep.csv", list(table[0]), ([r[k] for k in table[0]] for r in table))
    _sweep_figure(curves, out / "figures" / "sweep.png", "loss")
    result = SweepResult(base.task, base.model.arch, rows, best, key, out.name)
    write_json(out / "summary.json", result.to_json())
    rep = Report(f"facelab sweep: {base.task} with {base.model.arch} on {base.data.spec}")
    keys = [k for k in table[0] if k != "run"]
    rep.table(keys, [[r[k] if r[k] is not None else "-" for k in keys] for r in table])
    rep.paragraph(f"best by {key}: {best.setting}")
    rep.figure("figures/sweep.png", "validation loss per epoch, one line per setting")
    rep.links([(r.setting, f"{r.run}/report.html") for r in rows])
    rep.write(out / "report.html")
    record_entries(out)
    return result


def _sweep_figure(curves: dict[str, list[dict]], path: Path, metric: str) -> None:
    fig, ax = new_figure(figsize=(6, 3.8))
    for name, rows in curves.items():
        ax.plot([r["epoch"] for r in rows], [r[metric] for r in rows], "-o", ms=3, label=name)
    epoch_axis(ax)
    ax.set_ylabel(f"validation {metric}")
    ax.set_yscale("log")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)
