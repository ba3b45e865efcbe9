"""How training treats the groups of ``--groups`` (``--balance``): ``undersample`` (every group cut to the smallest's
size, in the data), ``reweight`` (each image weighted so every group weighs the same in the loss) and ``groupdro``
(Sagawa et al. 2020's online group distributionally robust optimisation: the loss of the worst-off groups weighs
most, and their weights grow as long as they stay worst)."""

from __future__ import annotations

import numpy as np
import torch

from ..data.faceset import FaceSet

MODES = ("none", "undersample", "reweight", "groupdro")
DRO_STEP = 0.01  # eta, the step of the group weights (Sagawa et al.'s robust step size for CelebA)


def group_ids(fs: FaceSet, by: list[str]) -> tuple[np.ndarray, list[dict]]:
    """Each item's group (an index into the returned groups: every combination of ``by``'s values that an item has)."""
    values = np.stack([fs.group_values(name).astype(str) for name in by], 1)
    combos, ids = np.unique(values, axis=0, return_inverse=True)
    groups = [{name: _value(v) for name, v in zip(by, combo)} for combo in combos]
    return ids.reshape(-1), groups


def _value(text: str):
    return int(text) if text.lstrip("-").isdigit() else text


def undersampled(fs: FaceSet, by: list[str], seed: int) -> FaceSet:
    """Every group of ``by`` in the training split cut (seeded) to the size of the smallest group present."""
    from ..errors import FacelabError

    ids, groups = group_ids(fs, by)
    train = fs.split == 0
    sizes = np.bincount(ids[train], minlength=len(groups))
    present = np.flatnonzero(sizes)
    if len(present) < 2:
        raise FacelabError(f"{fs.spec}: cannot undersample by {', '.join(by)}: the training images hold only one group")
    smallest, rng = sizes[present].min(), np.random.default_rng(seed)
    keep = ~train
    for g in present:
        keep[rng.choice(np.flatnonzero(train & (ids == g)), size=smallest, replace=False)] = True
    out = fs.take(np.flatnonzero(keep))
    out.notes.append(f"undersampled: each of the {len(present)} groups of {', '.join(by)} cut to {smallest} training images")
    return out


class GroupLoss:
    """The mean over a batch's images of their losses, each group weighed as the mode says; ``weights`` are the
    groups' current weights (reweight: fixed; groupdro: moved after every batch, kept in checkpoints)."""

    def __init__(self, mode: str, train_groups: torch.Tensor, n_groups: int):
        counts = torch.bincount(train_groups, minlength=n_groups).float()
        self.mode = mode
        if mode == "reweight":  # N / (G n_g): a group's images together weigh 1 / G, whatever its size
            self.weights = counts.sum() / (n_groups * counts.clamp(min=1))
        else:
            self.weights = torch.full((n_groups,), 1.0 / n_groups)

    def __call__(self, item_losses: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
        groups = groups.to(item_losses.device)
        weights = self.weights.to(item_losses.device)
        if self.mode == "reweight":
            return (item_losses * weights[groups]).mean()
        n = len(weights)
        sums = torch.zeros(n, device=item_losses.device).index_add(0, groups, item_losses)
        counts = torch.bincount(groups, minlength=n).float()
        group_loss = sums / counts.clamp(min=1)
        with torch.no_grad():  # exponentiated-gradient step on the groups present in the batch
            moved = weights * torch.exp(DRO_STEP * group_loss.detach() * (counts > 0))
            self.weights = (moved / moved.sum()).cpu()
        return (self.weights.to(item_losses.device) * group_loss).sum()
