"""``facelab study bias``: is a gender classifier as accurate for women as for men, and for the intersections
with age and skin tone; does training on a gender-balanced set change that?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.faceset import Group, group_label
from ..data.photos import photo_files
from ..errors import FacelabError
from ..hardware import Runtime
from ..ranges import N_BOOT_BOUNDS
from ..report.html import Report
from ..results import Summary
from .protocol import (
    CROP_SOURCE,
    FACELAB_SOURCE,
    SOURCE_CROP,
    Accuracy,
    Comparison,
    Plan,
    Protocol,
    StudyResult,
    StudyRun,
    interval,
    study_folder,
    write_study,
)
from .registry import Option, Study, comma_list

if TYPE_CHECKING:
    from ..probes.audit import Audit, AuditTable, Gap, GroupRates
    from ..probes.group_maps import Answers, GroupEnergy, RegionTest, RunRegionShare, RunRegionTest
    from ..results import TrainSummary

BIAS = Protocol(
    name="bias",
    question=(
        "Is a gender classifier as accurate for women as for men, and for the intersections with age and skin tone? "
        "Does training on a gender-balanced set (the majority undersampled) change that?"
    ),
    data="CelebA, aligned, official split",
    # Every man of the training faces is pale (and 20% of the women): a shortcut the network can take,
    # which the unbiased test split then exposes as a gap between men and women.
    default_spec="synth:3000,correlate=Male:Pale_Skin=1.0",
    settings={
        "arch": "resnet18",
        "weights": "imagenet",
        "size": "64",
        "epochs": 5,
        "batch": 64,
        "target": "Male",
        "by": ["Male", "Young", "Pale_Skin"],
        "crop": SOURCE_CROP,
        "modes": ["none", "undersample"],
    },
    sources={"crop": CROP_SOURCE, "size": FACELAB_SOURCE, "batch": FACELAB_SOURCE},
    published={
        "accuracy": {"unbalanced": {"male": 0.973, "female": 0.966}, "balanced": {"male": 0.969, "female": 0.965}},
        "note": "test accuracy per gender, ResNet on CelebA's Male attribute",
    },
)
# each training mode's run folder: the seed's two (unbalanced; balanced = its gender undersampled), then the two the
# fairness literature added (every group of --by weighed the same; GroupDRO), which group by every --by attribute
TRAININGS = {"none": "unbalanced", "undersample": "balanced", "reweight": "reweight", "groupdro": "groupdro"}
FACELAB_MODES = list(TRAININGS)  # what facelab runs unless --modes says otherwise


def grouping(plan: Plan, target: str, given: bool) -> list[str]:
    """The attributes the audit groups by, the target first (the gap between its two groups is the headline), set in
    the plan's settings and returned. The study's default leaves out what the data does not hold (UTKFace has no
    Pale_Skin) and says so among the departures; attributes the user names with --by must all be there."""
    plan.data.attr_index([target])
    held = set(plan.data.group_names())
    by = [target] + [b for b in plan.settings["by"] if b != target]
    missing = [b for b in by if b not in held]
    if missing and given:
        raise FacelabError(f"--by {','.join(missing)}: {plan.spec} has no such attribute; choose from {', '.join(plan.data.group_names())}")
    if missing:
        plan.reasons["by"] = f"{plan.spec} holds no {', '.join(missing)}"
    plan.settings["by"] = [b for b in by if b in held]
    return plan.settings["by"]


def bias_study(
    spec: str | None = None,
    *,
    out: str | Path | None = None,
    ood: str | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    quiet: bool = False,
    runtime: Runtime | None = None,
    **options,
) -> BiasResult:
    """Train the target with and without balancing, audit both by the groups and their intersections, compare
    them, map where each group's evidence lies, and (``ood``: a SPEC such as folder:PATH) what the two networks
    answer on faces from elsewhere. Writes OUT/summary.json and OUT/report.html."""
    from ..probes.audit import audit
    from ..probes.group_maps import answers_on, evidence_by_group
    from ..run import Run

    plan = Plan.of(BIAS, spec, options, runtime)
    target = plan.settings["target"]
    by = grouping(plan, target, given=options.get("by") is not None)  # before any training
    modes = _modes(plan, options.get("modes"))
    if ood:
        photo_files(ood)
    folder = study_folder(out, "bias")
    runs = _trained(plan, folder, modes, by, seed, quiet)
    opened = {name: Run.for_probes(folder / name, plan.runtime) for name in runs}  # each network loaded once, probed many times
    audits = {name: audit(run, by=by, out=run.path / "audit", runtime=plan.runtime) for name, run in opened.items()}
    gaps = {name: target_gap(a, target, n_boot, seed) for name, a in audits.items()}
    evidence = {
        name: evidence_by_group(run, by=by, path=folder / f"evidence_{name}.png", quiet=quiet, runtime=plan.runtime)
        for name, run in opened.items()
    }
    answers = (
        {name: answers_on(run, ood, out=folder / f"ood_{name}", runtime=plan.runtime) for name, run in opened.items()} if ood else None
    )
    first = next(iter(audits.values()))
    tagged = [ev.of_run(name) for name, ev in evidence.items()]  # each run's shares and tests, naming the run
    result = BiasResult(
        runs={name: StudyRun(r.final, name, r.train_seconds) for name, r in runs.items()},
        target=target,
        by=by,
        worst_group={mode: WorstGroup.of(audits[TRAININGS[mode]]) for mode in modes},
        best_minus_worst={mode: audits[TRAININGS[mode]].best_minus_worst for mode in modes},
        small_groups=first.small_groups,
        majority=first.overall.majority,
        modes={mode: ModeResult.of(audits[TRAININGS[mode]]) for mode in modes},
        overall={name: Accuracy(a.overall.n, a.overall.accuracy, a.overall.accuracy_ci) for name, a in audits.items()},
        groups=_groups(audits),
        gap=gaps,
        evidence=[share for shares, _ in tagged for share in shares],
        evidence_tests=[test for _, tests in tagged for test in tests],
        evidence_maps={name: EvidenceMaps(ev.method, ev.split, ev.groups, ev.regions_from) for name, ev in evidence.items()},
        ood=answers,
    )
    return write_study(folder, plan, result, _comparisons(result), lambda rep: _sections(rep, result))


@dataclass
class WorstGroup(Summary):
    """The group a training fails most (of those with at least the audit's minimum n), with Wilson's interval."""

    group: Group
    accuracy: float | None
    ci: list[float | None]
    n: int

    @classmethod
    def of(cls, audited: Audit) -> "WorstGroup":
        w = audited.worst_group
        return cls(w.group, w.accuracy, w.accuracy_ci, w.n)


@dataclass
class ModeResult(Summary):
    """A training mode's accuracy beside its worst group's."""

    accuracy: float
    accuracy_ci: list[float | None]
    worst_group_accuracy: float | None
    worst_group_ci: list[float | None]
    worst_group: Group

    @classmethod
    def of(cls, audited: Audit) -> "ModeResult":
        w = audited.worst_group
        return cls(audited.overall.accuracy, audited.overall.accuracy_ci, w.accuracy, w.accuracy_ci, w.group)


@dataclass
class GroupSideBySide(Summary):
    """One group's accuracy under each training (the test images are the same), by run name."""

    group: Group
    n: int
    accuracy: dict[str, float | None]
    accuracy_ci: dict[str, list[float | None]]


@dataclass
class TargetGap(Summary):
    """Accuracy of the target's positives minus its negatives, with a 95% bootstrap interval (None: a side is empty)."""

    between: str
    difference: float | None
    ci: list[float | None]
    excludes_zero: bool

    def in_words(self) -> str:
        if self.difference is None:
            return f"{self.between}: undefined (one side has no test image)"
        return f"{self.between} = {self.difference:+.3f} {interval(*self.ci)}"

    def verdict(self) -> str:
        if self.difference is None:
            return "."
        return ", an interval that excludes 0: a real gap." if self.excludes_zero else ", an interval that includes 0: no gap shown."


@dataclass
class EvidenceMaps(Summary):
    """Which maps a run's evidence per group comes from, each group's energy per region, and where the regions came from."""

    method: str
    split: str
    groups: list[GroupEnergy]
    regions_from: str

    borrows = ("facelab.probes.group_maps.GroupEnergy",)


@dataclass
class BiasResult(StudyResult):
    """``facelab study bias``'s summary.json (docs/json.md): each training's worst group first, then accuracy per group
    and intersection side by side, the target's gap, where each group's evidence lies, and answers on faces from elsewhere."""

    runs: dict[str, StudyRun]
    target: str
    by: list[str]
    worst_group: dict[str, WorstGroup]
    best_minus_worst: dict[str, Gap]
    small_groups: list[Group]
    majority: float
    modes: dict[str, ModeResult]
    overall: dict[str, Accuracy]
    groups: list[GroupSideBySide]
    gap: dict[str, TargetGap]
    evidence: list[RunRegionShare]
    evidence_tests: list[RunRegionTest]
    evidence_maps: dict[str, EvidenceMaps]
    ood: dict[str, Answers] | None

    borrows = (
        "facelab.probes.audit.Gap",
        "facelab.probes.group_maps.Answers",
        "facelab.probes.group_maps.RunRegionShare",
        "facelab.probes.group_maps.RunRegionTest",
    )

    def single(self, value: int) -> GroupSideBySide | None:
        """The group of all images whose target is ``value`` (men: 1, women: 0 for Male)."""
        return next((g for g in self.groups if g.group == {self.target: value}), None)


def _trained(plan: Plan, folder: Path, modes: list[str], by: list[str], seed: int, quiet: bool) -> dict[str, TrainSummary]:
    """One network per training mode, into FOLDER/<its run name> (a finished one read back), each checked for chance."""
    from ..training.config import TrainConfig
    from ..training.engine import trained

    s, target = plan.settings, plan.settings["target"]
    weights = plan.weights_for(s["arch"])
    runs = {}
    for mode in modes:
        name = TRAININGS[mode]
        balance = {"none": None, "undersample": target}.get(mode, mode)
        cfg = TrainConfig(spec=plan.spec, out=str(folder / name), attrs=[target], arch=s["arch"], size=s["size"], epochs=s["epochs"],
                          batch=s["batch"], crop=plan.crop, weights=weights, balance=balance,
                          groups=by if mode in ("reweight", "groupdro") else None, seed=seed)  # fmt: skip
        runs[name] = trained(cfg, quiet, plan.runtime)
        plan.check_chance(name, runs[name])
    return runs


def _modes(plan: Plan, given: list[str] | None) -> list[str]:
    """The training modes to compare (``--modes``), checked before any training; the two the seed did not run are
    departures from its protocol."""
    modes = list(given or FACELAB_MODES)
    unknown = [m for m in modes if m not in TRAININGS]
    if unknown:
        raise FacelabError(f"--modes {','.join(unknown)}: use none, undersample, reweight or groupdro")
    plan.settings["modes"] = modes
    added = [m for m in modes if m not in BIAS.settings["modes"]]
    if added:
        plan.reasons["modes"] = f"{' and '.join(added)} added beside the seed's two, grouped by {', '.join(plan.settings['by'])}"
    return modes


def _groups(audits: dict[str, Audit]) -> list[GroupSideBySide]:
    """One entry per group with every training's accuracy side by side (the test images are the same)."""
    first = next(iter(audits.values())).groups
    return [
        GroupSideBySide(
            g.group,
            g.n,
            {name: a.groups[k].accuracy for name, a in audits.items()},
            {name: a.groups[k].accuracy_ci for name, a in audits.items()},
        )
        for k, g in enumerate(first)
    ]


def target_gap(audited: AuditTable, target: str, n_boot: int, seed: int) -> TargetGap:
    """Accuracy of the target's positives minus its negatives (men minus women for Male), with a 95% interval: the
    bias the audit's groups show, in one figure. Resampling a group's images resamples its right/wrong answers,
    so the audit's counts are all the bootstrap needs."""
    from ..probes.stats import difference_ci

    between = f"{target}=1 minus {target}=0"
    positives, negatives = (next((g for g in audited.groups if g.group == {target: v}), None) for v in (1, 0))
    if positives is None or negatives is None:  # a side with no test image: no gap is defined
        return TargetGap(between, None, [None, None], False)
    diff, lo, hi = difference_ci(_correct(positives), _correct(negatives), n_boot, seed)
    return TargetGap(between, diff, [lo, hi], bool(lo > 0 or hi < 0))


def _correct(group: GroupRates) -> np.ndarray:
    right = round((group.accuracy or 0.0) * group.n)
    return np.repeat([1.0, 0.0], [right, group.n - right])


def _comparisons(result: BiasResult) -> list[Comparison]:
    published = BIAS.published["accuracy"]
    rows = []
    for name in (n for n in result.runs if n in published):
        for label, value in (("male", 1), ("female", 0)):
            g = result.single(value)
            if g is None:
                continue
            rows.append(
                Comparison(f"{name}: accuracy, {label} (n={g.n})", f"{published[name][label]:.3f}", g.accuracy[name], g.accuracy_ci[name])
            )
        gap = result.gap[name]
        pub = published[name]["male"] - published[name]["female"]
        rows.append(Comparison(f"{name}: male minus female", f"{pub:+.3f}", gap.difference, gap.ci))
    for mode, worst in result.worst_group.items():
        figure = f"{TRAININGS[mode]}: worst group ({group_label(worst.group)}, n={worst.n}), accuracy"
        rows.append(Comparison(figure, "not published", worst.accuracy, worst.ci))
    return rows


def _worst_first(rep: Report, result: BiasResult) -> None:
    """The figure fairness work reports first: each mode's worst group and the best-minus-worst gap, then the groups
    too small to judge."""
    rep.heading("Worst group first (groups of at least the audit's minimum n; Wilson 95% intervals)")
    rep.table(
        [
            "training",
            "accuracy",
            "95% interval",
            "worst group",
            "n",
            "worst-group accuracy",
            "95% interval",
            "best minus worst",
            "95% interval",
        ],
        [
            [
                TRAININGS[mode],
                m.accuracy,
                interval(*m.accuracy_ci),
                group_label(m.worst_group),
                result.worst_group[mode].n,
                m.worst_group_accuracy,
                interval(*m.worst_group_ci),
                result.best_minus_worst[mode].value,
                interval(*result.best_minus_worst[mode].ci),
            ]
            for mode, m in result.modes.items()
        ],
    )
    overall = next(iter(result.overall.values()))
    rep.paragraph(
        f"Baseline: always answering the majority value of {result.target} scores {result.majority:.3f} on these "
        f"{overall.n} test images. The best-minus-worst interval is a bootstrap over the test images that chooses the "
        "best and worst groups again in each resample. Reweight and GroupDRO weigh the groups of "
        f"{', '.join(result.by)}; undersample balances {result.target} only, as the seed did."
    )
    small = result.small_groups
    rep.paragraph(f"Too small to judge: {'; '.join(group_label(g) for g in small)}." if small else "No group is too small to judge.")


def _evidence(rep: Report, result: BiasResult) -> None:
    rep.heading("Where each group's evidence lies")
    for name, ev in result.evidence_maps.items():
        rep.figure(f"evidence_{name}.png", f"{name} run: {ev.method} maps per group, and each group's mean map")
        rows = [e for e in result.evidence if e.run == name]
        if rows:
            rep.paragraph(f"{name}: regions from {ev.regions_from}.")
            rep.table(
                ["group", "region", "share of the map's energy", "95% interval (bootstrap over faces)", "n"],
                [[group_label(e.group) or "everyone", e.region, e.share, interval(*e.ci), e.n] for e in rows],
            )
        tests = [t for t in result.evidence_tests if t.run == name]
        if tests:
            found = "; ".join(_difference_in_words(t) for t in tests if t.differs) or "none differs"
            rep.paragraph(
                f"{name}: of {len(tests)} permutation tests (each region, each pair of values of each attribute), {found} "
                "beyond chance (Bonferroni-corrected 0.05)."
            )
    if not result.evidence:
        rep.paragraph("No share per region: no face region could be drawn on these images (no landmarks, no face found).")


def _difference_in_words(test: RegionTest) -> str:
    a, b = (group_label(g) for g in test.groups)
    return f"{test.region}: {a} minus {b} {test.difference:+.3f} (p={test.p:.4f})"


def _sections(rep: Report, result: BiasResult) -> None:
    names = list(result.runs)
    _worst_first(rep, result)
    rep.heading("Accuracy per group and intersection (test split, Wilson 95% intervals)")
    rep.table(
        ["group", "n", *[f"{n}" for n in names], *[f"{n}, 95% interval" for n in names]],
        [
            [group_label(g.group), g.n, *(g.accuracy[n] for n in names), *(interval(*g.accuracy_ci[n]) for n in names)]
            for g in result.groups
        ],
    )
    for name in names:
        gap = result.gap[name]
        rep.paragraph(f"{name}: {gap.in_words()}{gap.verdict()}")
    rep.links(
        [(f"audit of the {n} run", f"{n}/audit/report.html") for n in names] + [(f"{n} training report", f"{n}/report.html") for n in names]
    )
    _evidence(rep, result)
    if result.ood:
        rep.heading("Faces from elsewhere (out of distribution)")
        for name in names:
            o = result.ood[name]
            rep.table(
                ["answer", "share of images", "95% interval"], [[k, v, interval(*o.share_ci[k])] for k, v in o.share_predicted.items()]
            )
            rep.figure(f"ood_{name}/overlays.png", f"{name} run on {o.data} (n={o.n}): answers and {o.method} maps")


def _headline(result: BiasResult) -> list[str]:
    worst = [
        f"{TRAININGS[mode]}: worst group {group_label(w.group)} (n={w.n}) {w.accuracy:.3f} {interval(*w.ci)}; "
        f"accuracy {result.modes[mode].accuracy:.3f}"
        for mode, w in result.worst_group.items()
    ]
    return worst + [f"{name}: {gap.in_words()}" for name, gap in result.gap.items()]


STUDY = Study(
    BIAS,
    bias_study,
    _headline,
    "Gender classifier trained unbalanced, balanced, reweighted and with GroupDRO: the worst group first, then accuracy "
    "per gender and intersection, with intervals.",
    options=(
        Option("ood", str, None, "Faces from elsewhere (folder:PATH): the share predicted as each class, with maps."),
        Option("by", str, None, "Grouping attributes, comma-separated (default: Male,Young,Pale_Skin).", parse=comma_list),
        Option("n_boot", int, 1000, "Bootstrap resamples for the 95% intervals.", bounds=N_BOOT_BOUNDS),
        Option(
            "modes",
            str,
            None,
            "Training modes compared, comma-separated: none (unbalanced), undersample (the target balanced, as the seed), "
            "reweight and groupdro (both over the groups of --by). Default: all four.",
            parse=comma_list,
        ),
    ),
    example="celeba:/data/celeba --by Male,Young,Pale_Skin --ood folder:my_photos",
    demo=dict(spec=None, arch="darknet64", size="64", epochs=3, weights="none", ood="folder:{photos}", modes=["none", "undersample"]),
    quick=dict(
        spec="synth:600,correlate=Male:Pale_Skin=1.0",
        arch="darknet64",
        size="32",
        epochs=1,
        weights="none",
        ood="folder:{photos}",
        n_boot=200,
        modes=["none", "undersample"],
    ),
    demo_note="the seed's two trainings only; reweight and GroupDRO, each a network more, are left out for time "
    "(facelab study bias shows all four, the worst group of each first)",
    figures=lambda s: [("evidence_unbalanced.png", "where the unbalanced run's evidence lies, per group")],
)
