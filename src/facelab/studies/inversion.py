"""``facelab study inversion``: does a network trained mostly on upright faces recognise them worse upside down,
and from which epoch on?"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import FacelabError
from ..hardware import Runtime
from ..ranges import N_BOOT_BOUNDS
from ..report.html import Report
from ..results import Summary
from .protocol import CROP_SOURCE, FACELAB_SOURCE, SOURCE_CROP, Comparison, Plan, Protocol, StudyResult, interval, study_folder, write_study
from .registry import Option, Study, counts

if TYPE_CHECKING:
    from ..probes.face_reference import ReferenceScores
    from ..probes.inversion import InversionCurve

SCRATCH_ARCH = "darknet64"  # what the study trains when the protocol's ImageNet weights cannot be had
INVERSION = Protocol(
    name="inversion",
    question=(
        "Face inversion effect: a network fine-tuned on identities with faces almost always upright; is its accuracy "
        "on the same faces upside down lower, by how much, and from which epoch on? A control trained mostly on "
        "inverted faces shows the effect is learned, not built in."
    ),
    data="CelebA identities, aligned",
    default_spec="synth:6000,ids=100",
    settings={
        "arch": "squeezenet1_1",
        "weights": "imagenet",
        "classes": [20, 100],
        "size": "224",
        "epochs": 30,
        "opt": "sgd",
        "batch": 64,
        "inverted_fraction": 0.05,
        "control": "inverted-trained",
        "compare_opts": "adam",
        "crop": SOURCE_CROP,
        "reference": "dlib",
    },
    sources={
        "crop": CROP_SOURCE,
        "size": "facelab's choice (ImageNet's input size; the study does not record it)",
        "batch": FACELAB_SOURCE,
        "inverted_fraction": FACELAB_SOURCE,
        "compare_opts": "the published study tried other optimisers without naming them: facelab compares Adam on the first "
        "identity count (none: skip)",
        "reference": "facelab's addition: dlib's face-recognition network (trained for identity on about 3 million faces), "
        "scored upright and inverted on the same people beside the student network (facelab[faces]; none: skip)",
    },
    published={
        "20": {"upright": 0.5, "inverted": 0.3},
        "100": {"upright": 0.5, "inverted": 0.1},
        "emergence_epoch": 5,
        "note": "approximate final accuracies read from the study's curves; the gap appears from about epoch 5",
    },
)


def inversion_study(
    spec: str | None = None,
    *,
    out: str | Path | None = None,
    seed: int = 0,
    n_boot: int = 1000,
    quiet: bool = False,
    runtime: Runtime | None = None,
    **options,
) -> InversionStudyResult:
    """The inversion protocol (upright vs inverted accuracy every epoch, each identity count, the inverted-trained
    control) on ``spec``; OUT/summary.json holds the inversion summary's ``runs`` plus ``published``."""
    from ..probes.inversion import InversionResult, inversion, ran_with
    from ..report.run_report import CHANCE_MARGIN
    from ..training.config import TrainConfig
    from ..training.task_registry import task_for

    plan = Plan.of(INVERSION, spec, options, runtime)
    s = plan.settings
    _check_reference(plan)
    for classes in s["classes"]:  # enough identities for every count, before any training
        task_for(TrainConfig(spec=plan.spec, task="identity", classes=classes, arch=s["arch"])).select(plan.data, seed)
    folder = study_folder(out, "inversion")
    weights = plan.weights_for(s["arch"])
    if weights is None and s["arch"] == INVERSION.settings["arch"] and options.get("arch") is None:
        s["arch"] = SCRATCH_ARCH
        plan.reasons["arch"] = (
            "without ImageNet weights SqueezeNet does not learn identities from scratch (aligned LFW, 20 people, 112 px: "
            f"accuracy 0.05, chance, after 30 epochs); {SCRATCH_ARCH}, with batch normalisation, reached 0.57 in 10 epochs"
        )
    params = dict(classes=list(s["classes"]), arch=s["arch"], epochs=s["epochs"], opts=[s["opt"]], control=s["control"])
    params |= dict(inverted_fraction=s["inverted_fraction"], size=s["size"], batch=s["batch"], weights=weights, crop=plan.crop, seed=seed)

    def measured(sub: str, **changed) -> list[InversionCurve]:
        """The runs in OUT/sub (as summary.json holds them), reused when they were run with these settings, else (re)run."""
        wanted = params | changed
        earlier = InversionResult.read(folder / sub) if (folder / sub / "summary.json").exists() else None
        if earlier is None or not ran_with(earlier, plan.spec, **wanted):
            earlier = inversion(
                plan.spec, **wanted, out=folder / sub, n_boot=n_boot, quiet=quiet, replace=earlier is not None, runtime=plan.runtime
            )
        return earlier.runs

    runs = measured("inversion")
    others = [o for o in str(s["compare_opts"] or "none").split(",") if o.strip() and o.strip() not in ("none", s["opt"])]
    optimisers = measured("optimisers", classes=list(s["classes"])[:1], opts=others, control=None) if others else []
    plan.warnings += [
        f"{r.classes} identities{' (control)' if r.control else ''}: upright accuracy {r.upright_acc[-1]:.3f} is at "
        f"chance level ({r.chance:.3f}); there is no recognition to invert"
        for r in runs
        if r.upright_acc[-1] <= r.chance + CHANCE_MARGIN
    ]
    reference = _earlier_reference(folder, plan, seed, n_boot) or _reference(plan, seed, n_boot, quiet)
    result = InversionStudyResult(runs=runs, optimisers=optimisers, reference=reference, seed=seed, n_boot=n_boot)
    comparisons = _comparisons(runs) + _optimiser_rows(optimisers) + _reference_rows(reference)
    return write_study(folder, plan, result, comparisons, lambda rep: _sections(rep, runs, optimisers, reference))


@dataclass
class FaceReference(Summary):
    """dlib's face-trained network scored upright and inverted on the same people as each identity count (by count)."""

    network: str
    classes: dict[str, ReferenceScores]

    borrows = ("facelab.probes.face_reference.ReferenceScores",)


@dataclass
class InversionStudyResult(StudyResult):
    """``facelab study inversion``'s summary.json (docs/json.md): the inversion runs (each identity count, the control),
    the other optimisers' runs, the face-trained reference, and the seed and resamples they were measured with."""

    runs: list[InversionCurve]
    optimisers: list[InversionCurve]
    reference: FaceReference | None
    seed: int
    n_boot: int

    borrows = ("facelab.probes.inversion.InversionCurve",)


def _check_reference(plan: Plan) -> None:
    """Before any training: the reference asked for is one facelab has; without dlib it is left out, with the reason."""
    from ..data.detect import FACES_EXTRA, dlib_installed

    s = plan.settings
    if s["reference"] not in ("dlib", "none", None):
        raise FacelabError(f"--reference {s['reference']!r}: use dlib or none")
    if s["reference"] == "dlib" and not dlib_installed():
        plan.reasons["reference"] = f"dlib is not installed: {FACES_EXTRA}"
        s["reference"] = "none"


def _earlier_reference(folder: Path, plan: Plan, seed: int, n_boot: int) -> FaceReference | None:
    """The reference this folder's last run of the study measured on the same data, people and seed: dlib's network
    takes about 0.15 s a face on a laptop CPU, so a study run again does not embed every face again."""
    done = folder / "summary.json"
    if plan.settings["reference"] != "dlib" or not done.exists():
        return None
    earlier = json.loads(done.read_text())
    same = (earlier.get("data"), earlier.get("seed"), earlier.get("n_boot")) == (plan.spec, seed, n_boot)
    classes = sorted(str(c) for c in plan.settings["classes"])
    reference = earlier.get("reference") or {}
    return FaceReference.from_json(reference) if same and sorted(reference.get("classes", {})) == classes else None


def _reference(plan: Plan, seed: int, n_boot: int, quiet: bool) -> FaceReference | None:
    """dlib's face-recognition network on the same people as each identity count (``reference`` dlib), else None."""
    from ..probes.face_reference import NETWORK, reference_for
    from ..training.config import TrainConfig
    from ..training.task_registry import task_for

    s = plan.settings
    if s["reference"] != "dlib":
        return None
    known: dict = {}  # the embeddings of faces shared by the identity counts, computed once
    classes = {}
    for count in s["classes"]:
        sel = task_for(TrainConfig(spec=plan.spec, task="identity", classes=count)).select(plan.data, seed)
        classes[str(count)] = reference_for(sel, seed, n_boot, known, quiet)
    return FaceReference(NETWORK, classes)


def _reference_rows(reference: FaceReference | None) -> list[Comparison]:
    if reference is None:
        return []
    rows = []
    for count, r in reference.classes.items():
        label = f"face-trained reference (dlib), {count} identities (n={r.n})"
        rows += [
            Comparison(f"{label}: upright accuracy", "not in the study", r.upright, r.upright_ci),
            Comparison(f"{label}: inverted accuracy", "not in the study", r.inverted, r.inverted_ci),
            Comparison(f"{label}: upright minus inverted", "not in the study", r.gap, r.gap_ci),
        ]
    return rows


def _optimiser_rows(runs: list[InversionCurve]) -> list[Comparison]:
    """The optimiser comparison: the study tried others but reported no figure for them."""
    return [
        Comparison(f"{r.classes} identities, {r.opt}: upright minus inverted", "tried, not reported", r.final_gap, r.final_gap_ci)
        for r in runs
    ]


def _comparisons(runs: list[InversionCurve]) -> list[Comparison]:
    from ..probes.inversion import emergence_in_words

    published = INVERSION.published
    rows = []
    for r in runs:
        if r.control:
            continue
        pub = published.get(str(r.classes))
        shown = lambda view: f"~{pub[view]:.2f}" if pub else "not published"  # noqa: E731
        rows += [
            Comparison(f"{r.classes} identities: upright accuracy", shown("upright"), r.upright_acc[-1], r.final_upright_ci),
            Comparison(f"{r.classes} identities: inverted accuracy", shown("inverted"), r.inverted_acc[-1], r.final_inverted_ci),
            Comparison(
                f"{r.classes} identities: upright minus inverted",
                f"~{pub['upright'] - pub['inverted']:.2f}" if pub else "not published",
                r.final_gap,
                r.final_gap_ci,
            ),
            Comparison(
                f"{r.classes} identities: epoch the gap appears",
                f"about {published['emergence_epoch']}",
                emergence_in_words(r.emergence_epoch),
            ),
        ]
    return rows


def _sections(rep: Report, runs: list[InversionCurve], optimisers: list[InversionCurve], reference: FaceReference | None) -> None:
    rep.heading("Upright and inverted accuracy per epoch")
    for classes in sorted({r.classes for r in runs}):
        rep.figure(
            f"inversion/figures/inversion_ids{classes}.png",
            f"{classes} identities: accuracy per epoch with 95% bands; dotted: chance; vertical line: the epoch the gap appears",
        )
    rep.table(RUN_COLUMNS, [_run_row(r) for r in runs])
    rep.links([("the inversion report, with every run's training report", "inversion/report.html")])
    if optimisers:
        rep.heading("Other optimisers (the study tried them; it reports no figure)")
        for classes in sorted({r.classes for r in optimisers}):
            rep.figure(f"optimisers/figures/inversion_ids{classes}.png", f"{classes} identities: the same curves, other optimisers")
        rep.table(RUN_COLUMNS, [_run_row(r) for r in optimisers])
        rep.links([("the optimiser comparison's report", "optimisers/report.html")])
    if reference:
        rep.heading("A face-trained reference: dlib's recognition network, upright and turned 180 degrees")
        rep.paragraph(
            f"{reference.network}: faces aligned on five points into 150 px chips, each person's class mean from upright "
            "training faces, the same people's held-out faces named upright and inverted (95% Wilson intervals; the gap's by "
            "bootstrap). Networks trained for identity at scale show the inversion effect most clearly (Dobs et al. 2023)."
        )
        rep.table(
            ["identities", "n", "upright", "inverted", "upright minus inverted", "chance"],
            [
                [count, r.n, f"{r.upright:.3f} {interval(*r.upright_ci)}", f"{r.inverted:.3f} {interval(*r.inverted_ci)}",
                 f"{r.gap:.3f} {interval(*r.gap_ci)}", r.chance]
                for count, r in reference.classes.items()
            ],
        )  # fmt: skip


RUN_COLUMNS = ["run", "final upright", "final inverted", "gap", "gap 95% interval", "gap appears at epoch", "chance"]


def _run_row(r: InversionCurve) -> list:
    from ..probes.inversion import emergence_in_words

    name = f"{r.classes} ids, {r.opt}" + (" (inverted-trained control)" if r.control else "")
    return [
        name,
        r.upright_acc[-1],
        r.inverted_acc[-1],
        r.final_gap,
        interval(*r.final_gap_ci),
        emergence_in_words(r.emergence_epoch),
        r.chance,
    ]


def _headline(result: InversionStudyResult) -> list[str]:
    return [
        f"{r.classes} ids{' (inverted-trained)' if r.control else ''}: upright {r.upright_acc[-1]:.3f}, inverted {r.inverted_acc[-1]:.3f}"
        for r in result.runs
    ]


STUDY = Study(
    INVERSION,
    inversion_study,
    _headline,
    "Identity networks trained on upright faces: upright vs inverted accuracy per epoch, and the control.",
    options=(
        Option("classes", str, None, "Identity counts, comma-separated (default: 20,100).", parse=counts),
        Option("n_boot", int, 1000, "Bootstrap resamples for the 95% intervals.", bounds=N_BOOT_BOUNDS),
        Option("compare_opts", str, None, "Other optimisers trained on the first identity count, comma-separated (default: adam; none)."),
        Option("reference", str, None, "A face-trained reference network beside the student: dlib (default, facelab[faces]) or none."),
    ),
    scale=("arch", "size", "epochs", "batch", "weights", "inverted_fraction", "crop"),
    example="folder:/data/lfw --crop aligned --classes 20,100",
    demo=dict(
        spec="synth:2000,ids=20", classes=[20], arch="darknet64", size="64", epochs=5, weights="none", compare_opts="none", reference="none"
    ),
    demo_note="left out for time, the Adam comparison and dlib's face-trained reference (facelab study inversion --compare-opts adam "
    "--reference dlib runs both; dlib's network takes about 0.15 s a face on a laptop CPU).",
    quick=dict(spec="synth:400,ids=10", classes=[10], arch="darknet64", size="32", epochs=2, weights="none", n_boot=200)
    | dict(compare_opts="none", reference="none"),
    figures=lambda s: [
        (f"inversion/figures/inversion_ids{r.classes}.png", "upright vs inverted accuracy per epoch") for r in s.runs if not r.control
    ],
)
