"""report.html of a training run: settings, curves, final table, sample predictions."""
from __future__ import annotations


import torch

from .figures import image_grid, training_curves
from .html import Report

N_SAMPLES = 16


@torch.no_grad()
def sample_predictions(module, data, n: int = N_SAMPLES):
    """A fixed sample of validation images with their labels and the model's predictions."""
    pos = data.split_positions("valid")[:n]
    x8, y = data.batch(pos)
    module.eval()
    logits = module.model(module.prepare(x8)).float().cpu()
    x8, y = x8.cpu(), y.cpu()
    captions, colours = [], []
    task = data.task
    for k in range(len(pos)):
        if task.name == "attr":
            p = torch.sigmoid(logits[k]).numpy()
            shown = range(min(4, len(task.attrs)))
            parts = [f"{task.attrs[j][:10]} {p[j]:.2f}/{int(y[k, j])}" for j in shown]
            ok = all((p[j] > 0.5) == (y[k, j] > 0.5) for j in shown)
        else:
            pred = int(logits[k].argmax())
            parts = [f"pred {pred} / true {int(y[k])}"]
            ok = pred == int(y[k])
        captions.append("\n".join(parts))
        colours.append("green" if ok else "red")
    return [im.numpy() for im in x8], captions, colours


def write_run_report(run, cfg, module, data, predictions=None) -> None:
    """``predictions``: a keypoint run's validation predictions, for its report."""
    if cfg.task == "keypoints":
        from .keypoint_report import write_keypoint_report

        return write_keypoint_report(run, cfg, module, data, predictions)
    rows = run.read_metrics()
    metrics = ("loss", "acc")
    training_curves(rows, run.figures / "curves.png", metrics)
    images, captions, colours = sample_predictions(module, data)
    image_grid(images, captions, run.figures / "samples.png", colours=colours)
    summary = __import__("json").loads((run.path / "summary.json").read_text())
    rep = Report(f"facelab run: {cfg.task} with {cfg.arch}")
    rep.paragraph(f"data {cfg.spec} | {len(data.split_positions('train'))} training and "
                  f"{len(data.split_positions('valid'))} validation images at {cfg.size}px | seed {cfg.seed}")  # fmt: skip
    rep.heading("Final and best validation metrics")
    header = ["", "val_loss", "val_acc"] + ([f"acc {a}" for a in cfg.attrs] if cfg.task == "attr" else [])
    table = []
    for key in ("final", "best"):
        b = summary[key]
        table.append([key, b["val_loss"], b["val_acc"]] + [b.get("val_acc_per_attr", {}).get(a, "") for a in (cfg.attrs if cfg.task == "attr" else [])])
    rep.table(header, table)
    rep.heading("Training curves").figure("figures/curves.png", "loss and accuracy per epoch, train and valid")
    rep.heading("Sample validation predictions").figure(
        "figures/samples.png", "probability / true label (attr) or predicted / true identity; green correct, red wrong")
    rep.heading("Per-epoch metrics")
    keys = [k for k in rows[0] if k not in ("n",)] if rows else []
    rep.table(keys, [[r.get(k, "") for k in keys] for r in rows])
    rep.heading("Settings")
    rep.table(["option", "value"], [[k, v] for k, v in cfg.settings().items()])
    rep.machine(summary.get("runtime"))
    rep.write(run.path / "report.html")
