"""Intervals over images: Wilson's for a proportion (an accuracy, a rate, a share: k of n), the bootstrap for a mean
of other scores and for the difference between two groups' means.

A percentile bootstrap of k/k is always [1, 1], whatever n: a zero-width interval on four faces. Wilson's interval
for 4/4 is [0.51, 1.00], for 30/30 [0.89, 1.00], and it never has zero width for a finite sample."""

from __future__ import annotations

import numpy as np


def bootstrap_ci(values: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the mean of ``values`` (per-image scores) by resampling images."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(1)
    return float(np.quantile(means, 0.025)), float(np.quantile(means, 0.975))


def permutation_p(a: np.ndarray, b: np.ndarray, n_perm: int = 2000, seed: int = 0) -> float:
    """Two-sided p-value of the difference of the means of two groups' per-image scores under a permutation of the
    group labels (with the usual +1 so it is never 0)."""
    rng = np.random.default_rng(seed)
    pooled, observed = np.concatenate([a, b]), abs(a.mean() - b.mean())
    shuffled = np.stack([rng.permutation(pooled) for _ in range(n_perm)])
    diffs = np.abs(shuffled[:, : len(a)].mean(1) - shuffled[:, len(a) :].mean(1))
    return float((1 + (diffs >= observed - 1e-12).sum()) / (1 + n_perm))


def difference_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 1000, seed: int = 0) -> tuple[float, float, float]:
    """mean(a) - mean(b) of two independent groups of per-image scores, with its 95% interval (each group
    resampled on its own)."""
    rng = np.random.default_rng(seed)
    boot = a[rng.integers(0, len(a), (n_boot, len(a)))].mean(1) - b[rng.integers(0, len(b), (n_boot, len(b)))].mean(1)
    return float(a.mean() - b.mean()), float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def wilson_ci(k: int, n: int, confidence: float = 0.95) -> list[float | None]:
    """Wilson's score interval of the proportion ``k`` / ``n`` ([None, None] when n is 0)."""
    if n == 0:
        return [None, None]
    from scipy.stats import binomtest

    ci = binomtest(int(k), int(n)).proportion_ci(confidence_level=confidence, method="wilson")
    return [float(ci.low), float(ci.high)]
