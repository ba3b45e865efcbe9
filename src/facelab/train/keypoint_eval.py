"""Keypoint predictions on a split and their per-image errors (beside the keypoint task; the report draws them)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .batches import to_input


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
    return SplitPredictions(
        pos,
        data.task.to_pixels(out).numpy(),
        data.task.to_pixels(y).numpy(),
        errors["px_err"].numpy(),
        errors["nme"].numpy() if "nme" in errors else None,
    )
