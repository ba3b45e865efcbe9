"""``facelab audit`` and ``compare``: whom the classifier fails, by group and intersection, with intervals.

Point estimates, between-group differences and ratios and the equalized-odds difference come
from fairlearn's MetricFrame. Every rate is a proportion, so its interval is Wilson's (a bootstrap
of an all-correct group is [1, 1] whatever its size); differences between two runs on the same
images are bootstrapped (paired), each group's images resampled ``n_boot`` times.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from pathlib import Path
from typing import NamedTuple, TypedDict

import numpy as np

from ..data.faceset import Group, group_label
from ..errors import FacelabError
from ..files import write_csv
from ..hardware import Runtime
from ..report.figures import bar_chart
from ..results import Summary
from ..run import Run
from .output import probe_folder, write_probe_output
from .split_data import SplitData, load_split
from .stats import wilson_ci

RATES = ("accuracy", "tpr", "fpr", "fnr", "selection_rate")


@dataclass
class Rates(Summary):
    """A set of images' counts and rates; every rate is a proportion, with Wilson's 95% interval (None: undefined)."""

    n: int
    positives: int
    negatives: int
    accuracy: float
    accuracy_ci: list[float | None]
    tpr: float | None
    tpr_ci: list[float | None]
    fpr: float | None
    fpr_ci: list[float | None]
    fnr: float | None
    fnr_ci: list[float | None]
    selection_rate: float
    selection_rate_ci: list[float | None]

    @property
    def majority(self) -> float:
        """The accuracy of always answering the more frequent label: the baseline every accuracy must beat."""
        return max(self.positives, self.negatives) / self.n


@dataclass
class GroupRates(Rates):
    """One group's rates; ``small``: fewer images than the audit's ``min_n`` (listed, not ranked)."""

    group: Group
    small: bool


@dataclass
class Gap(Summary):
    """The best group's accuracy minus the worst's, with a 95% bootstrap interval that re-ranks in every resample."""

    value: float
    ci: list[float]
    best: Group
    worst: Group
    interval: str


@dataclass
class AuditTable(Summary):
    """Every group of every combination of the grouping attributes, the worst first, and the gaps between them."""

    overall: Rates
    groups: list[GroupRates]
    worst_group: GroupRates
    best_minus_worst: Gap
    small_groups: list[Group]
    between_groups: dict[str, dict[str, float]]
    equalized_odds_difference: float | None
    equalized_odds_over: list[str]
    equalized_odds_note: str | None
    min_n: int
    interval: str


@dataclass
class Audit(AuditTable):
    """``facelab audit``'s summary.json (docs/json.md)."""

    target: str
    data: str
    split: str
    threshold: float
    unreadable: list[str]


class EqualizedOdds(NamedTuple):
    value: float | None
    over: list[str]
    note: str | None


class BestWorst(NamedTuple):
    value: float
    ci: list[float]
    best: int  # rows of the membership matrix
    worst: int


def group_columns(d: SplitData, by: list[str]) -> dict[str, np.ndarray]:
    """Per image, the value of each grouping attribute: 0/1, or the value's name for an attribute with several values
    (``race=Black``); ``background`` too, on synthetic faces."""
    return {name: d.faceset.group_values(name)[d.rows] for name in by}


def members(columns: dict[str, np.ndarray], group: Group) -> np.ndarray:
    """Which images belong to ``group`` (every image for the empty group, the whole set)."""
    n = len(next(iter(columns.values())))
    return np.logical_and.reduce([columns[c] == v for c, v in group.items()]) if group else np.ones(n, bool)


def rows_with_overall(table: AuditTable) -> list[GroupRates]:
    """The whole set (as the group {}) followed by every group."""
    return [GroupRates(**vars(table.overall), group={}, small=False)] + table.groups


class RateCounts(TypedDict):
    """Each rate of a group as (k, n): the images counted and the images it is a share of."""

    accuracy: tuple[int, int]
    tpr: tuple[int, int]
    fpr: tuple[int, int]
    fnr: tuple[int, int]
    selection_rate: tuple[int, int]


def _counts(y: np.ndarray, pred: np.ndarray) -> RateCounts:
    """Each rate as (k, n): the images counted and the images it is a share of."""
    y, pred = np.asarray(y), np.asarray(pred)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    tp, fp = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum())
    return RateCounts(
        accuracy=(int((pred == y).sum()), len(y)),
        tpr=(tp, pos),
        fpr=(fp, neg),
        fnr=(pos - tp, pos),
        selection_rate=(int((pred == 1).sum()), len(y)),
    )


def _describe(y: np.ndarray, pred: np.ndarray) -> Rates:
    """A group's rates, each with Wilson's 95% interval (every rate is a proportion)."""
    counts = _counts(y, pred)
    defined = lambda kn: kn[0] / kn[1] if kn[1] else None  # noqa: E731  (no positives: no TPR)
    return Rates(
        n=int(len(y)),
        positives=int((y == 1).sum()),
        negatives=int((y == 0).sum()),
        accuracy=counts["accuracy"][0] / max(counts["accuracy"][1], 1),
        accuracy_ci=wilson_ci(*counts["accuracy"]),
        tpr=defined(counts["tpr"]),
        tpr_ci=wilson_ci(*counts["tpr"]),
        fpr=defined(counts["fpr"]),
        fpr_ci=wilson_ci(*counts["fpr"]),
        fnr=defined(counts["fnr"]),
        fnr_ci=wilson_ci(*counts["fnr"]),
        selection_rate=counts["selection_rate"][0] / max(counts["selection_rate"][1], 1),
        selection_rate_ci=wilson_ci(*counts["selection_rate"]),
    )


def _defined_rate(y: np.ndarray, pred: np.ndarray, label: int) -> float:
    """TPR (``label`` 1) or FPR (``label`` 0) of one group, NaN when the group has no such true labels."""
    y, pred = np.asarray(y), np.asarray(pred)
    n = (y == label).sum()
    return float(((pred == 1) & (y == label)).sum() / n) if n else float("nan")


def equalized_odds(y: np.ndarray, pred: np.ndarray, columns: dict[str, np.ndarray], target: str | None) -> EqualizedOdds:
    """The equalized-odds difference (the larger of the TPR gap and the FPR gap between the intersections of the
    grouping attributes) from the rates each group defines. The audited attribute itself is left out of the groups:
    grouped by it, one side has no positives and the other no negatives, and a gap built from those undefined rates
    means nothing. Value None (with the reason in note) when no gap can be defined."""
    from fairlearn.metrics import MetricFrame

    over = [c for c in columns if c != target]
    if not over:
        return EqualizedOdds(None, [], f"every grouping attribute is the audited one ({target}): no gap is defined")
    rates = {"tpr": lambda a, b: _defined_rate(a, b, 1), "fpr": lambda a, b: _defined_rate(a, b, 0)}
    frame = MetricFrame(metrics=rates, y_true=y, y_pred=pred, sensitive_features={c: columns[c] for c in over}).by_group
    gaps = [float(frame[m].max() - frame[m].min()) for m in rates if frame[m].notna().sum() >= 2]
    note = None if target not in columns else f"computed over {', '.join(over)}: the audited attribute {target} is left out"
    if not gaps:
        return EqualizedOdds(None, over, "fewer than two groups define a TPR or an FPR")
    return EqualizedOdds(max(gaps), over, note)


def best_minus_worst(correct: np.ndarray, member: np.ndarray, n_boot: int = 1000, seed: int = 0) -> BestWorst:
    """The accuracy of the best group minus the worst (rows of ``member``: which images each group holds; groups may
    overlap, as an intersection overlaps its attributes' groups), with a 95% interval from a bootstrap over the images
    that redoes the ranking in every resample (so the interval carries the choice of best and worst, not only their
    noise). Resamples in which a group has no image leave that group out."""
    accuracy = member @ correct / member.sum(1)
    rng = np.random.default_rng(seed)
    counts = np.stack([np.bincount(rng.integers(0, len(correct), len(correct)), minlength=len(correct)) for _ in range(n_boot)])
    with np.errstate(invalid="ignore", divide="ignore"):
        resampled = (counts * correct) @ member.T / (counts @ member.T)
    spread = np.nanmax(resampled, 1) - np.nanmin(resampled, 1)
    ci = [float(np.quantile(spread, 0.025)), float(np.quantile(spread, 0.975))]
    return BestWorst(float(accuracy.max() - accuracy.min()), ci, int(accuracy.argmax()), int(accuracy.argmin()))


def audit_table(
    y: np.ndarray,
    pred: np.ndarray,
    columns: dict[str, np.ndarray],
    min_n: int = 30,
    target: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> AuditTable:
    """Overall and every group of every combination of ``columns``: counts, rates (None where undefined) and Wilson's
    95% intervals; the worst group (of those with at least ``min_n`` images) and the best-minus-worst gap with its
    bootstrap interval; the equalized-odds difference over the grouping attributes other than ``target``."""
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    if len(y) == 0:
        raise FacelabError("audit: no images to audit")
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    names = list(columns)
    groups: list[GroupRates] = []
    between: dict[str, dict[str, float]] = {}
    for size in range(1, len(names) + 1):
        for combo in combinations(names, size):
            frame = MetricFrame(metrics=accuracy_score, y_true=y, y_pred=pred, sensitive_features={c: columns[c] for c in combo})
            between[" x ".join(combo)] = {"accuracy_difference": float(frame.difference()), "accuracy_ratio": float(frame.ratio())}
            for key in frame.by_group.index:
                values = key if isinstance(key, tuple) else (key,)
                group = {c: v if isinstance(v, str) else int(v) for c, v in zip(combo, values)}
                member = members(columns, group)
                if not member.any():  # a combination no image has (MetricFrame lists the full product)
                    continue
                rates = _describe(y[member], pred[member])
                groups.append(GroupRates(**vars(rates), group=group, small=rates.n < min_n))
    eod = equalized_odds(y, pred, columns, target)
    ranked = [g for g in groups if not g.small] or groups
    worst = min(ranked, key=lambda g: g.accuracy)
    member = np.stack([members(columns, g.group) for g in ranked]).astype(float)
    gap = best_minus_worst((pred == y).astype(float), member, n_boot, seed)
    return AuditTable(
        overall=_describe(y, pred),
        groups=groups,
        worst_group=worst,
        best_minus_worst=Gap(
            gap.value,
            gap.ci,
            ranked[gap.best].group,
            ranked[gap.worst].group,
            "95% bootstrap over the test images, best and worst chosen again in each resample",
        ),  # fmt: skip
        small_groups=[g.group for g in groups if g.small],
        between_groups=between,
        equalized_odds_difference=eod.value,
        equalized_odds_over=eod.over,
        equalized_odds_note=eod.note,
        min_n=min_n,
        interval="Wilson's 95% score interval",
    )


def _threshold(run, spec, output: int, threshold: str) -> float:
    """0.5, a number, or ``valid``: the probability cut that maximises validation accuracy (fixed before any group is seen)."""
    if threshold != "valid":
        try:
            t = float(threshold)
        except ValueError:
            raise FacelabError(f"--threshold {threshold!r}: give a probability such as 0.5, or valid") from None
        if not 0 < t < 1:
            raise FacelabError(f"--threshold {t}: must be between 0 and 1")
        return t
    v = load_split(run, spec, "valid")
    prob, y = probabilities(v, output), v.labels(output)
    cuts = np.unique(np.concatenate([[0.5], prob]))
    acc = [((prob >= c).astype(int) == y).mean() for c in cuts]
    return float(cuts[int(np.argmax(acc))])


def probabilities(d: SplitData, output: int) -> np.ndarray:
    """The probability of ``output`` for every image of ``d``."""
    import torch

    out = []
    with torch.no_grad():
        for start in range(0, len(d.images), 256):
            out.append(d.run.task.probabilities(d.model(d.inputs(slice(start, start + 256))))[:, output])
    return torch.cat(out).numpy()


def predictions(
    run,
    spec,
    split,
    target,
    by,
    threshold,
    strict: bool = False,
    *,
    runtime: Runtime | None = None,
) -> tuple[SplitData, int, np.ndarray, np.ndarray, float, dict[str, np.ndarray]]:
    opened = Run.for_probes(run, runtime)
    opened.require("binary", "the audit")
    d = load_split(opened, spec, split, strict=strict)
    if not by:
        raise FacelabError("--by needs at least one attribute, e.g. --by Male,Young")
    output = d.output_index(target)
    if output is None:
        raise FacelabError(f"--target {target}: the run predicts {', '.join(d.outputs)}")
    cut = _threshold(opened, spec, output, threshold)
    prob = probabilities(d, output)
    return d, output, d.labels(output), (prob >= cut).astype(int), cut, group_columns(d, by)


def eod_in_words(table: AuditTable) -> str:
    value, note = table.equalized_odds_difference, table.equalized_odds_note
    shown = "undefined" if value is None else f"{value:.4f}"
    return f"{shown} ({note})" if note else shown


def gap_in_words(gap: Gap) -> str:
    """The best-minus-worst gap with its interval and the two groups."""
    lo, hi = gap.ci
    best, worst = (group_label(g) or "everyone" for g in (gap.best, gap.worst))
    return f"{gap.value:.4f} [{lo:.4f}, {hi:.4f}] ({best} minus {worst})"


def audit(
    run: str | Path | Run,
    spec: str | None = None,
    *,
    by: list[str] | None = None,
    split: str = "test",
    target: str | None = None,
    min_n: int = 30,
    threshold: str = "0.5",
    out: str | Path | None = None,
    strict: bool = False,
    n_boot: int = 1000,
    seed: int = 0,
    runtime: Runtime | None = None,
) -> Audit:
    """Accuracy, TPR, FPR, FNR and selection rate per group and intersection, with 95% intervals, the worst group
    first; audit.csv, summary.json, report. ``n_boot``/``seed``: the best-minus-worst interval's bootstrap."""
    folder = probe_folder(out, run, "audit")
    d, output, y, pred, cut, columns = predictions(run, spec, split, target, by or [], threshold, strict, runtime=runtime)
    table = audit_table(y, pred, columns, min_n, target=d.outputs[output], n_boot=n_boot, seed=seed)
    summary = Audit(**vars(table), target=d.outputs[output], data=spec or d.run.cfg.data.spec, split=split, threshold=cut,
                    unreadable=d.unreadable)  # fmt: skip
    _write_csv(folder / "audit.csv", table)
    g, overall, worst = table.groups, table.overall, table.worst_group
    bar_chart(
        ["overall"] + [group_label(r.group) + (" (small)" if r.small else "") for r in g],
        [overall.accuracy] + [r.accuracy for r in g],
        folder / "accuracy_by_group.png",
        "accuracy (Wilson 95% interval)",
        [overall.accuracy_ci] + [r.accuracy_ci for r in g],
        f"{summary.target} on {summary.data} ({split}), threshold {cut:.2f}",
        [False] + [r.small for r in g],
        reference=overall.accuracy,
    )
    facts: list[list] = [
        ["worst group", f"{group_label(worst.group)} (n={worst.n})"],
        ["worst group accuracy", _with_ci(worst, "accuracy")],
        ["best minus worst group", gap_in_words(table.best_minus_worst)],
        [f"too small to judge (n < {min_n})", ", ".join(group_label(g) for g in table.small_groups) or "none"],
        ["overall accuracy", _with_ci(overall, "accuracy")],
        ["majority answer's accuracy (baseline)", f"{overall.majority:.4f}"],
        ["target", summary.target],
        ["threshold", cut],
        ["images", overall.n],
        ["equalized odds difference", eod_in_words(table)],
    ]
    return write_probe_output(
        folder,
        f"facelab audit: {summary.target}",
        summary,
        [("accuracy_by_group.png", "accuracy per group; hatched: fewer than min n")],
        facts,
        _report_tables(table),
    )


def _with_ci(row: Rates, key: str) -> str:
    value, (lo, hi) = getattr(row, key), getattr(row, f"{key}_ci")
    return f"{value:.4f} [{lo:.4f}, {hi:.4f}]" if lo is not None and value is not None else str(value)


def _write_csv(path: Path, table: AuditTable) -> None:
    keys = ["group", "n", "positives", "negatives", *[x for k in RATES for x in (k, f"{k}_lo", f"{k}_hi")], "small"]
    write_csv(
        path,
        keys,
        (
            [
                group_label(row.group) or "overall",
                row.n,
                row.positives,
                row.negatives,
                *[x for k in RATES for x in (getattr(row, k), *getattr(row, f"{k}_ci"))],
                row.small,
            ]
            for row in rows_with_overall(table)
        ),
    )


def _report_tables(table: AuditTable) -> list[tuple[str, list[str], list[list]]]:
    """The per-group table and the between-group differences, for the report below the chart."""
    per_group = [
        [
            group_label(r.group) or "overall",
            r.n,
            r.positives,
            *[_with_ci(r, k) for k in RATES],
            "yes" if r.small else "",
        ]
        for r in rows_with_overall(table)
    ]
    between = [[k, v["accuracy_difference"], v["accuracy_ratio"]] for k, v in table.between_groups.items()]
    return [
        (
            "Per group (Wilson 95% intervals)",
            ["group", "n", "positives", "accuracy", "TPR", "FPR", "FNR", "selection rate", "small"],
            per_group,
        ),
        ("Between groups", ["grouping", "accuracy difference (max - min)", "accuracy ratio (min / max)"], between),
    ]


@dataclass
class GroupDifference(Summary):
    """One group's accuracy under two runs, and B - A with its 95% paired-bootstrap interval."""

    group: Group
    n: int
    accuracy_a: float
    accuracy_b: float
    difference: float
    difference_ci: list[float]
    small: bool


@dataclass
class RunComparison(Summary):
    """``facelab compare``'s summary.json (docs/json.md)."""

    run_a: str
    run_b: str
    target: str
    split: str
    groups: list[GroupDifference]


def compare(
    run_a: str | Path,
    run_b: str | Path,
    spec: str | None = None,
    *,
    by: list[str] | None = None,
    split: str = "test",
    target: str | None = None,
    n_boot: int = 1000,
    min_n: int = 30,
    seed: int = 0,
    out: str | Path | None = None,
    runtime: Runtime | None = None,
) -> RunComparison:
    """Two runs' accuracy on the same groups side by side, with the difference (B - A) and its 95% interval
    (paired bootstrap over the same images when both runs see the same data)."""
    folder = probe_folder(out, run_b, "compare")
    da, output, ya, pa, _, cols = predictions(run_a, spec, split, target, by or [], "0.5", runtime=runtime)
    db, _, yb, pb, _, _ = predictions(run_b, spec or da.run.cfg.data.spec, split, target, by or [], "0.5", runtime=runtime)
    if len(ya) != len(yb) or not np.array_equal(ya, yb):
        raise FacelabError(f"{run_a} and {run_b} are evaluated on different images; pass a SPEC both can be evaluated on")
    table_a, table_b = (audit_table(ya, p, cols, min_n) for p in (pa, pb))
    rng = np.random.default_rng(seed)
    rows = []
    for ga, gb in zip(rows_with_overall(table_a), rows_with_overall(table_b)):
        member = members(cols, ga.group)
        ca, cb = (pa[member] == ya[member]), (pb[member] == ya[member])
        idx = rng.integers(0, member.sum(), size=(n_boot, member.sum()))
        diff = cb[idx].mean(1) - ca[idx].mean(1)
        ci = [float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))]
        rows.append(GroupDifference(ga.group, ga.n, ga.accuracy, gb.accuracy, gb.accuracy - ga.accuracy, ci, ga.small))
    summary = RunComparison(str(run_a), str(run_b), da.outputs[output], split, rows)
    labels = [group_label(r.group) or "overall" for r in rows]
    bar_chart(
        labels,
        [r.difference for r in rows],
        folder / "difference_by_group.png",
        "accuracy B - A (95% paired bootstrap)",
        [(r.difference_ci[0], r.difference_ci[1]) for r in rows],
        f"B = {Path(run_b).name}, A = {Path(run_a).name}",
        [r.small for r in rows],
        0.0,
    )
    facts: list[list] = [["A", str(run_a)], ["B", str(run_b)], ["target", summary.target], ["split", split]]
    table: list[list] = [
        [label, r.n, r.accuracy_a, r.accuracy_b, f"{r.difference:+.4f}", f"[{r.difference_ci[0]:+.4f}, {r.difference_ci[1]:+.4f}]"]
        for label, r in zip(labels, rows)
    ]
    return write_probe_output(
        folder,
        f"facelab compare: {Path(run_a).name} vs {Path(run_b).name}",
        summary,
        [("difference_by_group.png", "accuracy difference per group")],
        facts,
        [("Accuracy per group", ["group", "n", "A", "B", "B - A", "B - A, 95% interval"], table)],
    )
