"""``facelab eval``: a trained run on a split of its own data or of another data set."""
from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch

from ..errors import FacelabError
from ..files import prepare_output, record_entries
from ..hardware import runtime
from ..report.html import Report
from .batches import loader, to_input
from .engine import RunFolder, load_trained, prepare_data
from .task_registry import task_for


@torch.no_grad()
def evaluate(run: str | Path, spec: str | None = None, split: str = "test", out: str | Path | None = None,
             precision: str | None = None, device: str | None = None) -> dict:
    """Loss and accuracy of ``run``'s best checkpoint on ``split``; writes summary.json + report.html.
    ``precision`` / ``device``: as given, else as the run was trained."""
    model, cfg, conf = load_trained(Path(run))
    task = task_for(cfg)
    rt = runtime(precision or cfg.precision, device or cfg.device)
    data = prepare_data(replace(cfg, cache=None), task, spec=spec, device=rt.device)
    if not (data.split_positions(split)).size:
        raise FacelabError(f"{spec or cfg.spec}: the {split} split is empty; choose --split train, valid or test")
    model = rt.prepare(model)
    sums = torch.zeros(len(task.metric_names()) + 2, dtype=torch.float64)
    for x8, y, _ in loader(data.items(split), 256, False, cfg.seed, device=rt.device):
        with rt.autocast():
            logits = model(to_input(x8.to(rt.device), cfg.channels, rt.channels_last)).float().cpu()
        y = y.cpu()
        sums[0] += float(task.loss(logits, y)) * len(y)
        sums[1] += len(y)
        sums[2:] += task.correct(logits, y).double()
    n = float(sums[1])
    per = {name: float(c) / n for name, c in zip(task.metric_names(), sums[2:])}
    result = {"task": task.name, "arch": cfg.arch, "data": spec or cfg.spec, "split": split, "n": int(n), "loss": float(sums[0]) / n,
              "runtime": rt.describe()}
    result.update({"acc": sum(per.values()) / len(per)} if task.accuracy else per)  # keypoints: px_err (and nme)
    if task.name == "attr":
        result["acc_per_attr"] = {a: per[f"acc_{a}"] for a in task.attrs}
    folder = RunFolder(Path(out) if out else Path(run) / f"eval_{split}")
    prepare_output(folder.path, "eval")
    folder.write_json("summary.json", result)
    rep = Report(f"facelab eval: {Path(run).name} on {result['data']} ({split})")
    rep.table(["metric", "value"], [[k, v] for k, v in result.items() if not isinstance(v, dict)]
              + [[f"acc {a}", v] for a, v in result.get("acc_per_attr", {}).items()])  # fmt: skip
    rep.machine(result["runtime"]).write(folder.path / "report.html")
    record_entries(folder.path)
    return result
