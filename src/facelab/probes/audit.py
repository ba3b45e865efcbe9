"""``facelab audit`` and ``compare``: whom the classifier fails, by group and intersection, with intervals.

Point estimates, between-group differences and ratios and the equalized-odds difference come
from fairlearn's MetricFrame. Every rate is a proportion, so its interval is Wilson's (a bootstrap
of an all-correct group is [1, 1] whatever its size); differences between two runs on the same
images are bootstrapped (paired), each group's images resampled ``n_boot`` times.
"""

from __future__ import annotations

from itertools import combinations
from pathlib import Path

import numpy as np

from ..data.faceset import group_label
from ..errors import FacelabError
from ..files import write_csv
from ..hardware import Runtime
from ..report.figures import bar_chart
from ..run import Run
from .output import probe_folder, write_probe_output
from .split_data import SplitData, load_split
from .stats import wilson_ci

RATES = ("accuracy", "tpr", "fpr", "fnr", "selection_rate")


def group_columns(d: SplitData, by: list[str]) -> dict[str, np.ndarray]:
    """Per image, the value of each grouping attribute: 0/1, or the value's name for an attribute with several values
    (``race=Black``); ``background`` too, on synthetic faces."""
    return {name: d.faceset.group_values(name)[d.rows] for name in by}


def members(columns: dict[str, np.ndarray], group: dict[str, int]) -> np.ndarray:
    """Which images belong to ``group`` (every image for the empty group, the whole set)."""
    n = len(next(iter(columns.values())))
    return np.logical_and.reduce([columns[c] == v for c, v in group.items()]) if group else np.ones(n, bool)


def rows_with_overall(table: dict) -> list[dict]:
    """The whole set (as the group {}) followed by every group."""
    return [{"group": {}, **table["overall"], "small": False}] + table["groups"]


def _rates(y: np.ndarray, pred: np.ndarray) -> dict[str, np.ndarray]:
    """The rates over the last axis (resamples are rows); NaN where a rate has no denominator."""
    pos, neg = (y == 1).sum(-1), (y == 0).sum(-1)
    tp, fp = ((pred == 1) & (y == 1)).sum(-1), ((pred == 1) & (y == 0)).sum(-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return {
            "accuracy": (pred == y).mean(-1),
            "tpr": tp / pos,
            "fpr": fp / neg,
            "fnr": (pos - tp) / pos,
            "selection_rate": pred.mean(-1),
        }


def _counts(y: np.ndarray, pred: np.ndarray) -> dict[str, tuple[int, int]]:
    """Each rate as (k, n): the images counted and the images it is a share of."""
    y, pred = np.asarray(y), np.asarray(pred)
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    tp, fp = int(((pred == 1) & (y == 1)).sum()), int(((pred == 1) & (y == 0)).sum())
    return {
        "accuracy": (int((pred == y).sum()), len(y)),
        "tpr": (tp, pos),
        "fpr": (fp, neg),
        "fnr": (pos - tp, pos),
        "selection_rate": (int((pred == 1).sum()), len(y)),
    }


def _describe(y: np.ndarray, pred: np.ndarray) -> dict:
    """A group's rates, each with Wilson's 95% interval (every rate is a proportion)."""
    point, counts = _rates(y, pred), _counts(y, pred)
    out = {"n": int(len(y)), "positives": int((y == 1).sum()), "negatives": int((y == 0).sum())}
    for k in RATES:
        out[k] = None if np.isnan(point[k]) else float(point[k])
        out[f"{k}_ci"] = wilson_ci(*counts[k])
    return out


def _defined_rate(y: np.ndarray, pred: np.ndarray, label: int) -> float:
    """TPR (``label`` 1) or FPR (``label`` 0) of one group, NaN when the group has no such true labels."""
    y, pred = np.asarray(y), np.asarray(pred)
    n = (y == label).sum()
    return float(((pred == 1) & (y == label)).sum() / n) if n else float("nan")


def equalized_odds(y: np.ndarray, pred: np.ndarray, columns: dict[str, np.ndarray], target: str | None) -> dict:
    """The equalized-odds difference (the larger of the TPR gap and the FPR gap between the intersections of the
    grouping attributes) from the rates each group defines. The audited attribute itself is left out of the groups:
    grouped by it, one side has no positives and the other no negatives, and a gap built from those undefined rates
    means nothing. ``{"value", "over", "note"}``; value None (with the reason in note) when no gap can be defined."""
    from fairlearn.metrics import MetricFrame

    over = [c for c in columns if c != target]
    if not over:
        return {"value": None, "over": [], "note": f"every grouping attribute is the audited one ({target}): no gap is defined"}
    rates = {"tpr": lambda a, b: _defined_rate(a, b, 1), "fpr": lambda a, b: _defined_rate(a, b, 0)}
    frame = MetricFrame(metrics=rates, y_true=y, y_pred=pred, sensitive_features={c: columns[c] for c in over}).by_group
    gaps = [float(frame[m].max() - frame[m].min()) for m in rates if frame[m].notna().sum() >= 2]
    note = None if target not in columns else f"computed over {', '.join(over)}: the audited attribute {target} is left out"
    if not gaps:
        return {"value": None, "over": over, "note": "fewer than two groups define a TPR or an FPR"}
    return {"value": max(gaps), "over": over, "note": note}


def best_minus_worst(correct: np.ndarray, member: np.ndarray, n_boot: int = 1000, seed: int = 0) -> dict:
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
    return {
        "value": float(accuracy.max() - accuracy.min()),
        "ci": [float(np.quantile(spread, 0.025)), float(np.quantile(spread, 0.975))],
        "best": int(accuracy.argmax()),
        "worst": int(accuracy.argmin()),
    }


def audit_table(
    y: np.ndarray,
    pred: np.ndarray,
    columns: dict[str, np.ndarray],
    min_n: int = 30,
    target: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
) -> dict:
    """Overall and every group of every combination of ``columns``: counts, rates (None where undefined) and Wilson's
    95% intervals; the worst group (of those with at least ``min_n`` images) and the best-minus-worst gap with its
    bootstrap interval; the equalized-odds difference over the grouping attributes other than ``target``."""
    from fairlearn.metrics import MetricFrame
    from sklearn.metrics import accuracy_score

    if len(y) == 0:
        raise FacelabError("audit: no images to audit")
    y, pred = np.asarray(y).astype(int), np.asarray(pred).astype(int)
    names = list(columns)
    groups, between = [], {}
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
                row = {"group": group} | _describe(y[member], pred[member])
                row["small"] = row["n"] < min_n
                groups.append(row)
    eod = equalized_odds(y, pred, columns, target)
    ranked = [g for g in groups if not g["small"]] or groups
    worst = min(ranked, key=lambda g: g["accuracy"])
    member = np.stack([members(columns, g["group"]) for g in ranked]).astype(float)
    gap = best_minus_worst((pred == y).astype(float), member, n_boot, seed)
    overall = _describe(y, pred)
    return {
        "overall": overall,
        "groups": groups,
        "worst_group": worst,
        "best_minus_worst": {
            "value": gap["value"],
            "ci": gap["ci"],
            "best": ranked[gap["best"]]["group"],
            "worst": ranked[gap["worst"]]["group"],
            "interval": "95% bootstrap over the test images, best and worst chosen again in each resample",
        },
        "small_groups": [g["group"] for g in groups if g["small"]],
        "between_groups": between,
        "equalized_odds_difference": eod["value"],
        "equalized_odds_over": eod["over"],
        "equalized_odds_note": eod["note"],
        "min_n": min_n,
        "interval": "Wilson's 95% score interval",
    }


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
) -> tuple[SplitData, int, np.ndarray, np.ndarray, float, dict]:
    opened = Run.for_probes(run, runtime)
    opened.require("binary", "the audit")
    d = load_split(opened, spec, split, strict=strict)
    if not by:
        raise FacelabError("--by needs at least one attribute, e.g. --by Male,Young")
    output = d.output_index(target)
    cut = _threshold(opened, spec, output, threshold)
    prob = probabilities(d, output)
    return d, output, d.labels(output), (prob >= cut).astype(int), cut, group_columns(d, by)


def eod_in_words(table: dict) -> str:
    value, note = table["equalized_odds_difference"], table["equalized_odds_note"]
    shown = "undefined" if value is None else f"{value:.4f}"
    return f"{shown} ({note})" if note else shown


def _label(g: dict) -> str:
    return group_label(g["group"])


def gap_in_words(gap: dict) -> str:
    """The best-minus-worst gap with its interval and the two groups."""
    lo, hi = gap["ci"]
    best, worst = (group_label(gap[k]) or "everyone" for k in ("best", "worst"))
    return f"{gap['value']:.4f} [{lo:.4f}, {hi:.4f}] ({best} minus {worst})"


def audit(
    run: str | Path,
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
) -> dict:
    """Accuracy, TPR, FPR, FNR and selection rate per group and intersection, with 95% intervals, the worst group
    first; audit.csv, summary.json, report. ``n_boot``/``seed``: the best-minus-worst interval's bootstrap."""
    folder = probe_folder(out, run, "audit")
    d, output, y, pred, cut, columns = predictions(run, spec, split, target, by or [], threshold, strict, runtime=runtime)
    table = audit_table(y, pred, columns, min_n, target=d.outputs[output], n_boot=n_boot, seed=seed)
    summary = {
        "target": d.outputs[output],
        "data": spec or d.run.cfg.spec,
        "split": split,
        "threshold": cut,
        **table,
        "unreadable": d.unreadable,
    }
    _write_csv(folder / "audit.csv", table)
    g = table["groups"]
    bar_chart(
        ["overall"] + [_label(r) + (" (small)" if r["small"] else "") for r in g],
        [table["overall"]["accuracy"]] + [r["accuracy"] for r in g],
        folder / "accuracy_by_group.png",
        "accuracy (Wilson 95% interval)",
        [table["overall"]["accuracy_ci"]] + [r["accuracy_ci"] for r in g],
        f"{summary['target']} on {summary['data']} ({split}), threshold {cut:.2f}",
        [False] + [r["small"] for r in g],
        reference=table["overall"]["accuracy"],
    )
    facts = [
        ["worst group", f"{_label(table['worst_group'])} (n={table['worst_group']['n']})"],
        ["worst group accuracy", _with_ci(table["worst_group"], "accuracy")],
        ["best minus worst group", gap_in_words(table["best_minus_worst"])],
        [f"too small to judge (n < {min_n})", ", ".join(group_label(g) for g in table["small_groups"]) or "none"],
        ["overall accuracy", _with_ci(table["overall"], "accuracy")],
        [
            "majority answer's accuracy (baseline)",
            f"{max(table['overall']['positives'], table['overall']['negatives']) / table['overall']['n']:.4f}",
        ],
        ["target", summary["target"]],
        ["threshold", cut],
        ["images", table["overall"]["n"]],
        ["equalized odds difference", eod_in_words(table)],
    ]
    write_probe_output(
        folder,
        f"facelab audit: {summary['target']}",
        summary,
        [("accuracy_by_group.png", "accuracy per group; hatched: fewer than min n")],
        facts,
        _report_tables(table),
    )
    return summary


def _with_ci(row: dict, key: str) -> str:
    lo, hi = row[f"{key}_ci"]
    return f"{row[key]:.4f} [{lo:.4f}, {hi:.4f}]" if lo is not None and row[key] is not None else str(row[key])


def _write_csv(path: Path, table: dict) -> None:
    keys = ["group", "n", "positives", "negatives", *[x for k in RATES for x in (k, f"{k}_lo", f"{k}_hi")], "small"]
    write_csv(
        path,
        keys,
        (
            [
                _label(row) or "overall",
                row["n"],
                row["positives"],
                row["negatives"],
                *[x for k in RATES for x in (row[k], *row[f"{k}_ci"])],
                row["small"],
            ]
            for row in rows_with_overall(table)
        ),
    )


def _report_tables(table: dict) -> list[tuple[str, list[str], list[list]]]:
    """The per-group table and the between-group differences, for the report below the chart."""
    per_group = [
        [
            _label(r) or "overall",
            r["n"],
            r["positives"],
            _with_ci(r, "accuracy"),
            _with_ci(r, "tpr"),
            _with_ci(r, "fpr"),
            _with_ci(r, "fnr"),
            _with_ci(r, "selection_rate"),
            "yes" if r["small"] else "",
        ]
        for r in rows_with_overall(table)
    ]
    between = [[k, v["accuracy_difference"], v["accuracy_ratio"]] for k, v in table["between_groups"].items()]
    return [
        (
            "Per group (Wilson 95% intervals)",
            ["group", "n", "positives", "accuracy", "TPR", "FPR", "FNR", "selection rate", "small"],
            per_group,
        ),
        ("Between groups", ["grouping", "accuracy difference (max - min)", "accuracy ratio (min / max)"], between),
    ]


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
) -> dict:
    """Two runs' accuracy on the same groups side by side, with the difference (B - A) and its 95% interval
    (paired bootstrap over the same images when both runs see the same data)."""
    folder = probe_folder(out, run_b, "compare")
    da, _, ya, pa, _, cols = predictions(run_a, spec, split, target, by or [], "0.5", runtime=runtime)
    db, _, yb, pb, _, _ = predictions(run_b, spec or da.run.cfg.spec, split, target, by or [], "0.5", runtime=runtime)
    if len(ya) != len(yb) or not np.array_equal(ya, yb):
        raise FacelabError(f"{run_a} and {run_b} are evaluated on different images; pass a SPEC both can be evaluated on")
    table_a, table_b = (audit_table(ya, p, cols, min_n) for p in (pa, pb))
    rng = np.random.default_rng(seed)
    rows = []
    for ga, gb in zip(rows_with_overall(table_a), rows_with_overall(table_b)):
        member = members(cols, ga["group"])
        ca, cb = (pa[member] == ya[member]), (pb[member] == ya[member])
        idx = rng.integers(0, member.sum(), size=(n_boot, member.sum()))
        diff = cb[idx].mean(1) - ca[idx].mean(1)
        rows.append(
            {
                "group": ga["group"],
                "n": ga["n"],
                "accuracy_a": ga["accuracy"],
                "accuracy_b": gb["accuracy"],
                "difference": gb["accuracy"] - ga["accuracy"],
                "difference_ci": [float(np.quantile(diff, 0.025)), float(np.quantile(diff, 0.975))],
                "small": ga["small"],
            }
        )
    summary = {"run_a": str(run_a), "run_b": str(run_b), "target": da.outputs[da.output_index(target)], "split": split, "groups": rows}
    labels = [_label(r) or "overall" for r in rows]
    bar_chart(
        labels,
        [r["difference"] for r in rows],
        folder / "difference_by_group.png",
        "accuracy B - A (95% paired bootstrap)",
        [tuple(r["difference_ci"]) for r in rows],
        f"B = {Path(run_b).name}, A = {Path(run_a).name}",
        [r["small"] for r in rows],
        0.0,
    )
    facts = [["A", str(run_a)], ["B", str(run_b)], ["target", summary["target"]], ["split", split]]
    table = [
        [
            label,
            r["n"],
            r["accuracy_a"],
            r["accuracy_b"],
            f"{r['difference']:+.4f}",
            f"[{r['difference_ci'][0]:+.4f}, {r['difference_ci'][1]:+.4f}]",
        ]
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
