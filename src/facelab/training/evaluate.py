"""``facelab eval``: a trained run on a split of its own data or of another data set."""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import FacelabError
from ..files import prepare_output, record_entries
from ..hardware import Runtime
from ..report.html import Report
from ..report.run_report import summary_columns
from ..results import Evaluation
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
) -> Evaluation:
    """Loss and the task's metrics of ``model`` on ``split`` of ``spec`` (default: the run's data), accumulated as in
    training (:class:`~facelab.training.tasks.MetricSums`), in ``rt``."""
    arch, channels, spec = cfg.model.arch, cfg.data.channels, spec or cfg.data.spec
    assert arch is not None and channels is not None  # a trained run's config names both
    data = prepare_data(cfg, task, spec=spec, device=rt.device, for_training=False)
    if not (data.split_positions(split)).size:
        raise FacelabError(f"{spec}: the {split} split is empty; choose --split train, valid or test")
    model = rt.prepare(model)
    sums = MetricSums(task)
    for x8, y, _ in loader(data.items(split), 256, False, cfg.seed, device=rt.device):
        with rt.autocast():
            out = model(to_input(x8.to(rt.device), channels, rt.channels_last)).float().cpu()
        y = y.cpu()
        sums.add(task.loss(out, y), out, y)
    per = task.finish(sums.per_metric())
    return Evaluation(task.name, arch, spec, split, int(sums.values[1]), sums.result()["loss"], rt.describe(),
                      task.eval_fields(per) | task.eval_extra(data, split, model, channels))  # fmt: skip


def write_evaluation(result: Evaluation, folder: Path, title: str) -> None:
    """summary.json and report.html of an evaluation."""
    run = RunFolder(folder)
    prepare_output(run.path, "eval")
    run.write_json("summary.json", result.to_json())
    rep = Report(title)
    shown = {k: v for k, v in result.to_json().items() if k != "runtime"}
    rep.table(["metric", "value"], [[k, v] for k, v in summary_columns(shown).items()])
    rep.machine(result.runtime).write(run.path / "report.html")
    record_entries(run.path)
