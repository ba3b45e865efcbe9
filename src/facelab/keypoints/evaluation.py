"""Keypoint predictions on a split, per-image errors and the cumulative error distribution."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..train.batches import to_input

CED_LIMIT = 0.08


@dataclass
class SplitPredictions:
    positions: np.ndarray  # positions in the prepared selection
    pred: np.ndarray  # (N, K, 2) pixels of the cached image
    true: np.ndarray
    px_err: np.ndarray  # (N,)
    nme: np.ndarray | None


@torch.no_grad()
def predict_split(model: torch.nn.Module, data, split: str, channels: int, batch: int = 256) -> SplitPredictions:
    pos = data.split_positions(split)
    outs, ys = [], []
    model.eval()
    device = next(model.parameters()).device
    for start in range(0, len(pos), batch):
        x8, y = data.batch(pos[start : start + batch])
        outs.append(model(to_input(x8.to(device), channels, channels_last=False)).float().cpu())
        ys.append(y.cpu())
    out, y = torch.cat(outs), torch.cat(ys)
    errors = data.task.errors(out, y)
    return SplitPredictions(pos, data.task.to_pixels(out).numpy(), data.task.to_pixels(y).numpy(), errors["px_err"].numpy(),
                            errors["nme"].numpy() if "nme" in errors else None)  # fmt: skip


def ced(errors: np.ndarray, limit: float = CED_LIMIT, steps: int = 200) -> dict:
    """Cumulative error distribution up to ``limit``: the curve, its area (normalised to 1) and the failure rate."""
    xs = np.linspace(0, limit, steps + 1)
    fraction = (errors[None, :] <= xs[:, None]).mean(1)
    auc = float(np.trapezoid(fraction, xs) / limit)
    return {"x": xs.tolist(), "fraction": fraction.tolist(), f"auc_{limit}": auc, f"failure_rate_{limit}": float((errors > limit).mean())}
