"""Selections users need: top-N identities, per-identity splits, attribute filters, balanced subsets."""

from __future__ import annotations

import numpy as np

from ..errors import FacelabError
from .faceset import SPLITS, FaceSet


def top_identities(fs: FaceSet, n: int, min_images: int = 2) -> FaceSet:
    """The ``n`` identities with most images (each at least ``min_images``), relabelled 0..n-1."""
    fs.require("identities", "--task identity")
    ids, counts = np.unique(fs.identities[fs.identities >= 0], return_counts=True)
    order = np.lexsort((ids, -counts))  # most images first, ties by id: deterministic
    ids, counts = ids[order], counts[order]
    eligible = counts >= min_images
    if eligible.sum() < n:
        largest = int(counts.max()) if len(counts) else 0
        raise FacelabError(
            f"{fs.spec}: asked for {n} identities with >= {min_images} images each, but only "
            f"{int(eligible.sum())} of {len(ids)} qualify (the largest has {largest} images)"
        )
    chosen = ids[eligible][:n]
    keep = np.flatnonzero(np.isin(fs.identities, chosen))
    out = fs.take(keep)
    out.identities = np.searchsorted(np.sort(chosen), out.identities)
    out.classes = [str(c) for c in np.sort(chosen)] if fs.classes is None else [fs.classes[c] for c in np.sort(chosen)]
    return out


def identity_split(fs: FaceSet, valid_fraction: float = 0.2, seed: int = 0) -> FaceSet:
    """Split each identity's images into train and valid, so every person is in both."""
    rng = np.random.default_rng(seed)
    split = np.zeros(len(fs), dtype=np.int8)
    for ident in np.unique(fs.identities):
        idx = np.flatnonzero(fs.identities == ident)
        rng.shuffle(idx)
        n_valid = max(1, int(round(len(idx) * valid_fraction))) if len(idx) > 1 else 0
        split[idx[:n_valid]] = SPLITS.index("valid")
    out = fs.take(np.arange(len(fs)))
    out.split = split
    out.notes.append(f"per-identity split: {valid_fraction:.0%} of each person's images held out for validation")
    return out


def where(fs: FaceSet, conditions: dict[str, int]) -> FaceSet:
    """Images whose attributes equal the given values (e.g. {"Male": 1})."""
    cols = fs.attr_index(list(conditions))
    mask = np.ones(len(fs), dtype=bool)
    for c, v in zip(cols, conditions.values()):
        mask &= fs.attributes[:, c] == v
    if not mask.any():
        raise FacelabError(f"{fs.spec}: no image has {conditions}")
    return fs.take(np.flatnonzero(mask))


def balanced(fs: FaceSet, attr: str, seed: int = 0, splits: tuple[str, ...] = ("train",)) -> FaceSet:
    """Undersample the majority value of ``attr`` within each named split to a 50/50 set."""
    col = fs.attr_index([attr])[0]
    rng = np.random.default_rng(seed)
    keep = np.ones(len(fs), dtype=bool)
    for s in splits:
        in_split = fs.split == SPLITS.index(s)
        pos = np.flatnonzero(in_split & (fs.attributes[:, col] == 1))
        neg = np.flatnonzero(in_split & (fs.attributes[:, col] == 0))
        if len(pos) == 0 or len(neg) == 0:
            raise FacelabError(f"{fs.spec}: cannot balance {attr} in {s}: {len(pos)} positives, {len(neg)} negatives")
        major = pos if len(pos) > len(neg) else neg
        drop = rng.choice(major, size=len(major) - min(len(pos), len(neg)), replace=False)
        keep[drop] = False
    out = fs.take(np.flatnonzero(keep))
    out.notes.append(f"balanced on {attr} in {', '.join(splits)} by undersampling the majority")
    return out
