"""``facelab study inversion``: does a network trained mostly on upright faces recognise them worse upside down,
and from which epoch on?"""

from __future__ import annotations

import json
from pathlib import Path

from ..hardware import Runtime
from ..report.html import Report
from .protocol import CROP_SOURCE, FACELAB_SOURCE, SOURCE_CROP, Comparison, Plan, Protocol, study_folder, write_study
from .registry import Option, Study, counts

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
        "crop": SOURCE_CROP,
    },
    sources={
        "crop": CROP_SOURCE,
        "size": "facelab's choice (ImageNet's input size; the study does not record it)",
        "batch": FACELAB_SOURCE,
        "inverted_fraction": FACELAB_SOURCE,
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
) -> dict:
    """The inversion protocol (upright vs inverted accuracy every epoch, each identity count, the inverted-trained
    control) on ``spec``; OUT/summary.json holds the inversion summary's ``runs`` plus ``published``."""
    from ..probes.inversion import inversion, ran_with
    from ..report.run_report import CHANCE_MARGIN
    from ..training.config import TrainConfig
    from ..training.task_registry import task_for

    plan = Plan.of(INVERSION, spec, options, runtime)
    s = plan.settings
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
    done = folder / "inversion" / "summary.json"
    params = dict(classes=list(s["classes"]), arch=s["arch"], epochs=s["epochs"], opts=[s["opt"]], control=s["control"])
    params |= dict(inverted_fraction=s["inverted_fraction"], size=s["size"], batch=s["batch"], weights=weights, crop=plan.crop, seed=seed)
    earlier = json.loads(done.read_text()) if done.exists() else None
    if earlier is not None and ran_with(earlier, plan.spec, **params):  # run before with these settings: its runs are kept
        measured = earlier
    else:  # never run, or run with other settings (data, epochs, classes ...): what facelab wrote there is replaced
        measured = inversion(
            plan.spec, **params, out=folder / "inversion", n_boot=n_boot, quiet=quiet, replace=earlier is not None, runtime=plan.runtime
        )
    runs = [{k: v for k, v in r.items() if k != "per_epoch"} for r in measured["runs"]]
    plan.warnings += [
        f"{r['classes']} identities{' (control)' if r['control'] else ''}: upright accuracy {r['upright_acc'][-1]:.3f} is at "
        f"chance level ({r['chance']:.3f}); there is no recognition to invert"
        for r in runs
        if r["upright_acc"][-1] <= r["chance"] + CHANCE_MARGIN
    ]
    summary = {"runs": runs}
    return write_study(folder, plan, summary, _comparisons(runs), lambda rep: _sections(rep, runs))


def _comparisons(runs: list[dict]) -> list[Comparison]:
    from ..probes.inversion import emergence_in_words

    published = INVERSION.published
    rows = []
    for r in runs:
        if r["control"]:
            continue
        pub = published.get(str(r["classes"]))
        shown = lambda view: f"~{pub[view]:.2f}" if pub else "not published"  # noqa: E731
        rows += [
            Comparison(
                f"{r['classes']} identities: upright accuracy", shown("upright"), r["upright_acc"][-1], tuple(r["final_upright_ci"])
            ),
            Comparison(
                f"{r['classes']} identities: inverted accuracy", shown("inverted"), r["inverted_acc"][-1], tuple(r["final_inverted_ci"])
            ),
            Comparison(
                f"{r['classes']} identities: upright minus inverted",
                f"~{pub['upright'] - pub['inverted']:.2f}" if pub else "not published",
                r["final_gap"],
                tuple(r["final_gap_ci"]),
            ),
            Comparison(
                f"{r['classes']} identities: epoch the gap appears",
                f"about {published['emergence_epoch']}",
                emergence_in_words(r["emergence_epoch"]),
            ),
        ]
    return rows


def _sections(rep: Report, runs: list[dict]) -> None:
    from ..probes.inversion import emergence_in_words

    rep.heading("Upright and inverted accuracy per epoch")
    for classes in sorted({r["classes"] for r in runs}):
        rep.figure(
            f"inversion/figures/inversion_ids{classes}.png",
            f"{classes} identities: accuracy per epoch with 95% bands; dotted: chance; vertical line: the epoch the gap appears",
        )
    rep.table(
        ["run", "final upright", "final inverted", "gap", "gap 95% interval", "gap appears at epoch", "chance"],
        [
            [
                f"{r['classes']} ids" + (" (inverted-trained control)" if r["control"] else ""),
                r["upright_acc"][-1],
                r["inverted_acc"][-1],
                r["final_gap"],
                f"[{r['final_gap_ci'][0]:.3f}, {r['final_gap_ci'][1]:.3f}]",
                emergence_in_words(r["emergence_epoch"]),
                r["chance"],
            ]
            for r in runs
        ],
    )
    rep.links([("the inversion report, with every run's training report", "inversion/report.html")])


def _headline(summary: dict) -> list[str]:
    return [
        f"{r['classes']} ids{' (inverted-trained)' if r['control'] else ''}: upright {r['upright_acc'][-1]:.3f}, "
        f"inverted {r['inverted_acc'][-1]:.3f}"
        for r in summary["runs"]
    ]


STUDY = Study(
    INVERSION,
    inversion_study,
    _headline,
    "Identity networks trained on upright faces: upright vs inverted accuracy per epoch, and the control.",
    options=(
        Option("classes", str, None, "Identity counts, comma-separated (default: 20,100).", parse=counts),
        Option("n_boot", int, 1000, "Bootstrap resamples for the 95% intervals."),
    ),
    scale=("arch", "size", "epochs", "batch", "weights", "inverted_fraction", "crop"),
    demo=dict(spec="synth:3000,ids=20", classes=[20], arch="darknet64", size="64", epochs=6, weights="none"),
    quick=dict(spec="synth:400,ids=10", classes=[10], arch="darknet64", size="32", epochs=2, weights="none", n_boot=200),
    figures=lambda s: [
        (f"inversion/figures/inversion_ids{r['classes']}.png", "upright vs inverted accuracy per epoch")
        for r in s["runs"]
        if not r["control"]
    ],
)
