"""What an edit or a dream did to its image, measured: how alike the result still is (SSIM), how much of the change
is fine speckle rather than shapes (the share a blur removes), how much of the budget it spent, and where it went
(inside the face or the attribute's region, against outside). These tell a feature from an adversarial pattern."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2.functional import gaussian_blur

from ..results import Summary
from ..training.robust import norm_of

HIGH_FREQUENCY_SIGMA = 1.5  # px: the change a Gaussian blur of this sigma removes counts as high-frequency
SSIM_SIGMA, SSIM_WINDOW = 1.5, 11  # Wang et al. 2004


def _blur(x: torch.Tensor, sigma: float, window: int | None = None) -> torch.Tensor:
    k = window or max(3, int(2 * round(3 * sigma) + 1))
    return gaussian_blur(x, [k, k], [sigma, sigma])


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """The structural similarity of two (C, H, W) images in [0, 1] (Gaussian window, mean over pixels and channels)."""
    c1, c2 = 0.01**2, 0.03**2
    x, y = a[None].float(), b[None].float()
    mx, my = _blur(x, SSIM_SIGMA, SSIM_WINDOW), _blur(y, SSIM_SIGMA, SSIM_WINDOW)
    vx = _blur(x * x, SSIM_SIGMA, SSIM_WINDOW) - mx**2
    vy = _blur(y * y, SSIM_SIGMA, SSIM_WINDOW) - my**2
    cov = _blur(x * y, SSIM_SIGMA, SSIM_WINDOW) - mx * my
    index = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
    return float(index.mean())


def high_frequency_share(change: torch.Tensor) -> float | None:
    """Of a (C, H, W) change's energy, the share a Gaussian blur of HIGH_FREQUENCY_SIGMA px removes (None: no change)."""
    energy = float(change.float().pow(2).sum())
    if energy == 0:
        return None
    return float((change.float() - _blur(change[None].float(), HIGH_FREQUENCY_SIGMA)[0]).pow(2).sum()) / energy


def amplified_change(change: np.ndarray) -> np.ndarray:
    """An (H, W) map of |change| as an RGB picture scaled to its own maximum (the change itself is often too faint to see)."""
    amplified = (np.clip(change / max(float(change.max()), 1e-12), 0, 1) * 255).astype(np.uint8)
    return np.repeat(amplified[..., None], 3, axis=2)


def change_by_mask(change: np.ndarray, mask: np.ndarray | None) -> tuple[float | None, float | None]:
    """Mean |change| per pixel inside and outside ``mask`` (None where the mask is unknown, empty or everything)."""
    if mask is None or not mask.any() or mask.all():
        return None, None
    return float(change[mask].mean()), float(change[~mask].mean())


@dataclass
class BudgetUsed(Summary):
    """How much of the ascent's budget (``eps`` in the ``norm``; None: unbounded) the change used."""

    norm: str
    eps: float | None
    used: float


@dataclass
class ChangeMeasures(Summary):
    """The measures of one change to an image: SSIM to the start, the high-frequency share of the change, the budget
    used, and the mean change inside and outside the face (None without landmarks)."""

    ssim: float
    high_frequency_share: float | None
    budget: BudgetUsed
    change_inside_face: float | None
    change_outside_face: float | None


def change_measures(start: torch.Tensor, edited: torch.Tensor, eps: float | None, norm: str, face: np.ndarray | None) -> ChangeMeasures:
    """The measures of one (C, H, W) edit."""
    change = edited.float() - start.float()
    inside, outside = change_by_mask(change.abs().mean(0).numpy(), face)
    used = BudgetUsed(norm, eps, float(norm_of(change[None], norm)[0]))
    return ChangeMeasures(ssim(start, edited), high_frequency_share(change), used, inside, outside)
