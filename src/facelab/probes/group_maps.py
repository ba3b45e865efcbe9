"""Where a classifier's evidence lies for each group of an audit (attribution maps per group, their energy per
face region), and what it answers on faces from elsewhere (an out-of-distribution folder)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..data.faceset import Group, group_label
from ..data.regions import REGIONS
from ..hardware import Runtime
from ..report.figures import image_grid
from ..results import Summary
from ..run import Run
from .attribution_scores import applicable_methods, box_regions, energy_share, landmark_regions
from .audit import group_columns, members
from .cam import overlay
from .explain import CamImages, cam, maps_over
from .split_data import SplitData, load_split
from .stats import bootstrap_ci, permutation_p, wilson_ci


def _maps(d: SplitData, method: str | None, quiet: bool) -> tuple[int | None, str, torch.Tensor]:
    output = d.output_index(None)
    method = method or applicable_methods(d.model)[0]
    return output, method, maps_over(d, method, output, None, quiet=quiet)[3]


@dataclass
class GroupEvidence(Summary):
    """Where each group's evidence lies: per group (everyone, then each value of each attribute) the mean share of the
    map's energy per region (``groups``, from landmarks; ``shares`` with intervals across faces), permutation tests
    between the values of each attribute (``tests``), and where the regions came from."""

    method: str
    split: str
    groups: list[GroupEnergy]
    shares: list[RegionShare]
    tests: list[RegionTest]
    regions_from: str

    def of_run(self, name: str) -> tuple[list[RunRegionShare], list[RunRegionTest]]:
        """The shares and tests, each naming the run ``name`` they are of: rows of several runs in one table."""
        return [RunRegionShare(**vars(s), run=name) for s in self.shares], [RunRegionTest(**vars(t), run=name) for t in self.tests]


@dataclass
class GroupEnergy(Summary):
    """A group's mean share of the map's energy per landmark region (None: no landmarks to draw regions from)."""

    group: Group
    n: int
    energy_by_region: dict[str, float | None] | None


@dataclass
class RegionShare(Summary):
    """A group's mean share of the map's energy on one region, with a 95% bootstrap interval across its ``n`` faces."""

    group: Group
    region: str
    share: float
    ci: list[float]
    n: int


@dataclass
class RegionTest(Summary):
    """One region's share in one group minus another's, a permutation test's p, and whether it survives Bonferroni."""

    region: str
    groups: list[Group]
    difference: float
    p: float
    differs: bool = False


@dataclass(kw_only=True)
class RunRegionShare(RegionShare):
    """A region's share in one of several runs compared (the bias study's trainings)."""

    run: str


@dataclass(kw_only=True)
class RunRegionTest(RegionTest):
    """A region's permutation test in one of several runs compared."""

    run: str


@dataclass
class Answers(Summary):
    """What a network answers on faces from elsewhere: the share predicted as each class, with Wilson's intervals."""

    data: str
    n: int
    method: str
    share_predicted: dict[str, float]
    share_ci: dict[str, list[float | None]]
    unreadable: list[str]


def _label(group: dict) -> str:
    return group_label(group) or "everyone"


def evidence_by_group(
    run: str | Path | Run,
    spec: str | None = None,
    *,
    by: list[str],
    path: Path,
    split: str = "test",
    method: str | None = None,
    limit: int = 256,
    per_group: int = 6,
    quiet: bool = True,
    runtime: Runtime | None = None,
) -> GroupEvidence:
    """For everyone and each value of each ``by`` attribute: the mean share of the map's energy per face region with
    a 95% bootstrap interval across faces (``shares``; regions from the landmarks where the images have them, else face
    and background from the face detector's box), a permutation test of each region's share between the values of each
    attribute (``tests``), and a gallery row at ``path``: ``per_group`` maps, then the group's mean map."""
    d = load_split(Run.for_probes(run, runtime), spec, split, limit)
    _, method, norm = _maps(d, method, quiet)
    regions = landmark_regions(d)
    cols = group_columns(d, by)
    rows: list[GroupEnergy] = []
    tiles, captions = [], []
    blank = np.zeros_like(d.images[0].numpy())
    if regions is not None:
        per_face = {r: energy_share(norm, m) for r, m in regions.items()}
        source = "landmarks"
    else:  # face and background from the detector's box; a face where none was found has no region to share among
        boxes = box_regions(d, quiet)
        found = boxes["face"].any((1, 2))
        per_face = {r: np.where(boxes["background"].any((1, 2)) | found, energy_share(norm, m), np.nan) for r, m in boxes.items()}
        source = f"the face detector's box ({int(found.sum())} of {len(norm)} faces found)"
    groups: list[Group] = [{}] + [{name: v} for name in by for v in _values(cols[name])]
    for group in groups:
        member = members(cols, group)
        if not member.any():
            continue
        energy = None if regions is None else {r: _mean_or_none(per_face[r][member]) for r in REGIONS}
        rows.append(GroupEnergy(group, int(member.sum()), energy))
        shown = np.flatnonzero(member)[:per_group]
        tiles += [overlay(d.images[i].numpy(), norm[i].numpy()) for i in shown] + [blank] * (per_group - len(shown))
        captions += [_label(group)] * len(shown) + [""] * (per_group - len(shown))
        mean_image = d.images[member].float().mean(0).round().to(torch.uint8).numpy()
        tiles.append(overlay(mean_image, norm[member].mean(0).numpy()))
        captions.append(f"mean map, n={int(member.sum())}")
    image_grid(tiles, captions, path, cols=per_group + 1, colorbar=("viridis", f"{method} (normalised)"))
    return GroupEvidence(method, split, rows, region_shares(per_face, cols, rows), region_tests(per_face, cols, by), source)


def _mean_or_none(shares: np.ndarray) -> float | None:
    """The mean share over the maps that have any energy (None when none has), as ``mean_share`` gives it."""
    return None if np.isnan(shares).all() else float(np.nanmean(shares))


def _values(column: np.ndarray) -> list:
    """The values of a grouping column, 1 before 0 for an attribute (as the audit lists them), names sorted."""
    values = set(column.tolist())
    return sorted(values, key=str) if any(isinstance(v, str) for v in values) else sorted(values, reverse=True)


def region_shares(per_face: dict[str, np.ndarray], cols: dict[str, np.ndarray], rows: list[GroupEnergy]) -> list[RegionShare]:
    """Each group's mean share of the map's energy on each region, with a 95% bootstrap interval across its faces
    (faces whose map has no energy left out)."""
    out = []
    for row in rows:
        member = members(cols, row.group)
        for region, shares in per_face.items():
            kept = shares[member][~np.isnan(shares[member])]
            if len(kept):
                lo, hi = bootstrap_ci(kept)
                out.append(RegionShare(row.group, region, float(kept.mean()), [lo, hi], int(len(kept))))
    return out


def region_tests(per_face: dict[str, np.ndarray], cols: dict[str, np.ndarray], by: list[str], alpha: float = 0.05) -> list[RegionTest]:
    """For each attribute, each pair of its values and each region: the difference of the groups' mean shares and a
    permutation test's p-value; ``differs`` where p stays under ``alpha`` divided by the number of tests (Bonferroni)."""
    from itertools import combinations

    tests: list[RegionTest] = []
    for name in by:
        for a, b in combinations(_values(cols[name]), 2):
            for region, shares in per_face.items():
                x, y = (shares[(cols[name] == v) & ~np.isnan(shares)] for v in (a, b))
                if len(x) >= 2 and len(y) >= 2:
                    tests.append(RegionTest(region, [{name: a}, {name: b}], float(x.mean() - y.mean()), permutation_p(x, y)))
    for t in tests:
        t.differs = t.p < alpha / len(tests)
    return tests


def answers_on(run: str | Path | Run, source: str, *, out: Path, method: str | None = None, runtime: Runtime | None = None) -> Answers:
    """The share of the images of ``source`` (folder:PATH) predicted as each class, with Wilson's 95% intervals, and their
    maps (OUT/overlays.png, through ``facelab cam``)."""
    opened = Run.for_probes(run, runtime)
    method = method or applicable_methods(opened.model)[0]
    mapped = cam(opened, source, method=method, out=out)
    assert isinstance(mapped, CamImages)  # a folder of photos: each photo mapped, no split
    said = np.asarray([r["prob"] >= 0.5 for r in mapped.images], dtype=np.float64)
    output = opened.task.explained_output(None)
    assert output is not None  # a binary attribute run: its first output
    name = opened.outputs[output]
    lo, hi = wilson_ci(int(said.sum()), len(said))
    share = {name: float(said.mean()), f"not {name}": float(1 - said.mean())}
    ci = {name: [lo, hi], f"not {name}": [None if hi is None else 1 - hi, None if lo is None else 1 - lo]}
    return Answers(source, int(len(said)), method, share, ci, mapped.unreadable)
