"""``facelab eval``: a trained run on a split of its own data or of another data set."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import FacelabError
from ..files import prepare_output, record_entries
from ..hardware import Runtime
from ..report.html import Report
from ..report.run_report import summary_columns
from .batches import loader, to_input
from .engine import RunFolder, TrainConfig, prepare_data
from .tasks import MetricSums


@torch.no_grad()
def evaluate_model(
    model: torch.nn.Module,
    cfg: TrainConfig,
    task,
    rt: Runtime,
    *,
    spec: str | None = None,
    split: str = "test",
) -> dict:
    """Loss and the task's metrics of ``model`` on ``split`` of ``spec`` (default: the run's data), accumulated as in
    training (:class:`~facelab.training.tasks.MetricSums`), in ``rt``."""
    data = prepare_data(cfg, task, spec=spec, device=rt.device, for_training=False)
    if not (data.split_positions(split)).size:
        raise FacelabError(f"{spec or cfg.spec}: the {split} split is empty; choose --split train, valid or test")
    model = rt.prepare(model)
    sums = MetricSums(task)
    for x8, y, _ in loader(data.items(split), 256, False, cfg.seed, device=rt.device):
        with rt.autocast():
            out = model(to_input(x8.to(rt.device), cfg.channels, rt.channels_last)).float().cpu()
        y = y.cpu()
        sums.add(task.loss(out, y), out, y)
    result = {
        "task": task.name,
        "arch": cfg.arch,
        "data": spec or cfg.spec,
        "split": split,
        "n": int(sums.values[1]),
        "loss": sums.result()["loss"],
        "runtime": rt.describe(),
    }
    return result | task.eval_fields(task.finish(sums.per_metric())) | task.eval_extra(data, split, model, cfg.channels)


def write_evaluation(result: dict, folder: Path, title: str) -> None:
    """summary.json and report.html of an evaluation."""
    folder = RunFolder(folder)
    prepare_output(folder.path, "eval")
    folder.write_json("summary.json", result)
    rep = Report(title)
    shown = {k: v for k, v in result.items() if k != "runtime"}
    rep.table(["metric", "value"], [[k, v] for k, v in summary_columns(shown).items()])
    rep.machine(result["runtime"]).write(folder.path / "report.html")
    record_entries(folder.path)
