"""``facelab study youth``: what does a network that tells young from old faces compute, layer by layer, and
which pixel changes make a face look older or younger to it?"""

from __future__ import annotations

import time
from dataclasses import dataclass, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ..data.spec import open_spec
from ..errors import FacelabError
from ..hardware import Runtime
from ..ranges import STEPS_BOUNDS
from ..report.html import Report

if TYPE_CHECKING:
    from ..probes.activations import Activations
    from ..probes.audit import Audit
    from ..probes.dream import Dream, Edit
    from ..probes.edit_set import AscentBudget, ScoredSet
    from ..run import Run
from ..data.faceset import Group
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
from .registry import Option, Study

RECORDED_SOURCE = (
    "the published study (layer:channel; its channels are numbered from 1, as layer 3's channel 64 of 64 shows: facelab's "
    "channel k-1; the objective of each single-channel dream is not recorded here, so each runs with the sum)"
)

ROBUST_SOURCE = (
    "facelab's addition (the study trains one network): a second one, trained adversarially within this L2 budget in pixel "
    "units by PGD with these steps, whose edits and dreams change features rather than add noise (Santurkar et al. 2019); "
    "--robust 0 leaves it out"
)

YOUTH = Protocol(
    name="youth",
    question=(
        "A Darknet-style network trained on CelebA's Young attribute: how accurate is it, what do its layers respond "
        "to (activation grids, three channels as one RGB picture, activation maximisation from a photo with three "
        "objectives), and which changes to a face does it read as older or younger?"
    ),
    data="CelebA, aligned, official split",
    default_spec="synth:8000",
    settings={
        "arch": "darknet64",
        "weights": None,
        "size": "auto",
        "epochs": 10,
        "batch": 128,
        "opt": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "wd": 5e-4,
        "schedule": "onecycle",
        "target": "Young",
        "dream_layer": "3",
        "recorded_dreams": "1:11, 2:24, 3:27, 4:44",
        "recorded_rgb": "1:10,14,13; 3:51,54,64",
        "crop": SOURCE_CROP,
        "robust": 0.5,
        "robust_steps": 3,
        "robust_lr": 0.05,
        "robust_epochs": 10,
        "robust_start": "plain",
        "edit_n": 100,
    },
    sources={
        "crop": CROP_SOURCE,
        "epochs": FACELAB_SOURCE,
        "schedule": FACELAB_SOURCE,
        "dream_layer": FACELAB_SOURCE,
        "recorded_dreams": RECORDED_SOURCE,
        "recorded_rgb": RECORDED_SOURCE,
        "size": "facelab's choice (the study's input size is not recorded): auto is 128 px where the data's photos are at least "
        "that large (CelebA's aligned 178x218, UTKFace's 200x200), so that edits and dreams are drawn where a face is more "
        "than a few dozen pixels wide, at about 4x the compute of 64 px; 64 px for synthetic faces and smaller photos",
        "robust": ROBUST_SOURCE,
        "robust_steps": ROBUST_SOURCE,
        "robust_lr": "facelab's choice for the robust network (at the study's 0.01 it stayed at the majority answer on UTKFace "
        "after 10 epochs: test accuracy 0.665, balanced 0.51; at 0.05, 0.785)",
        "robust_epochs": "facelab's choice: the robust network's own passes, fine-tuning the plain one (on UTKFace, 5 left it "
        "at the majority answer on validation, 0.685 against 0.665; 10 reached 0.765, test 0.775 [0.712, 0.827])",
        "edit_n": "facelab's choice: the young test faces each network's edit toward older is scored on as a set (flip rate, FVA), "
        "and the test faces each network's dream of the dream layer is (FVA, high-frequency share)",
        "robust_start": "facelab's choice: plain (the robust network starts from the plain network's weights, as robust "
        "fine-tuning does; from scratch it stayed at the majority answer on synthetic faces and learned slowly on UTKFace) "
        "or scratch",
    },
    published={"test_accuracy": 0.90, "note": "Darknet64 on CelebA's Young attribute, test split"},
)


def youth_study(
    spec: str | None = None,
    *,
    photo: str | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    steps: int = 60,
    recorded: bool = True,
    quiet: bool = False,
    runtime: Runtime | None = None,
    **options,
) -> YouthResult:
    """Train the target, then every look inside on ``photo`` (a file or SPEC#ITEM; default: the first test face):
    activations of every conv layer, three channels as RGB, activation maximisation with each objective, and an edit
    toward older and toward younger. Writes OUT/summary.json and OUT/report.html."""
    from ..probes.audit import audit
    from ..probes.subject import load_subject
    from ..run import Run
    from ..training.engine import trained

    plan = Plan.of(YOUTH, spec, options, runtime)
    s = plan.settings
    if s["size"] == "auto":
        s["size"], plan.reasons["size"] = _auto_size(plan)
    plan.data.attr_index([s["target"]])
    if s["robust_start"] not in ("plain", "scratch"):
        raise FacelabError(f"--robust-start {s['robust_start']!r}: use plain (warm start from the plain network) or scratch")
    if photo is not None:
        load_subject(photo, s["size"])  # a missing or unreadable photo stops the study before it trains
    folder = study_folder(out, "youth")
    cfg = _plain_config(plan, folder, seed)
    run_summary = trained(cfg, quiet, plan.runtime)
    plan.check_chance("the", run_summary)
    run = Run.for_probes(folder / "run", plan.runtime)  # opened once: every probe below looks at the same network
    starts = _starts(plan, photo)
    ascent = Ascent(steps, seed, quiet)
    audited = audit(run, by=[s["target"]], out=run.path / "audit", runtime=plan.runtime)
    inside = _look_inside(run, plan, starts, folder, ascent)
    result = YouthResult(
        run=StudyRun(run_summary.final, "run", run_summary.train_seconds),
        size=int(s["size"]),
        photo=starts.photo,
        test_accuracy=TestAccuracy.of(audited),
        groups=[GroupAccuracy(g.n, g.accuracy, g.accuracy_ci, group=g.group) for g in audited.groups],
        dream={o: DreamGrowth.of(d) for o, d in inside.dreams.items()},
        edit={k: EditMeasures.of(starts.of(k), e) for k, e in inside.edits.items()},
        layers=len(inside.activations.layers),
        recorded=_recorded_channels(run, starts.photo, s, folder, ascent, plan) if recorded else None,
        counterfactual=_counterfactual(run, plan, folder / "edit_set", ascent),
        dream_set=_dreams_of_set(run, plan, folder / "dream_set", ascent),
        robust=None,
    )
    if s["robust"]:
        result.robust = _robust_beside(plan, cfg, starts, folder, ascent, inside)
    return write_study(folder, plan, result, _comparisons(result, s["target"]), lambda rep: _sections(rep, result, inside))


@dataclass(frozen=True)
class Ascent:
    """How every dream and edit of the study climbs: gradient steps, seed, and whether progress is shown."""

    steps: int
    seed: int
    quiet: bool


@dataclass(frozen=True)
class Starts:
    """The image each look inside starts from: the photo (activations, dreams), and each edit's start."""

    photo: str
    older: str
    younger: str

    def of(self, direction: str) -> str:
        return self.older if direction == "older" else self.younger


@dataclass
class Inside:
    """What the study draws of the plain network on the photo (its report's pictures)."""

    activations: Activations
    dreams: dict[str, Dream]
    edits: dict[str, Edit]


def _plain_config(plan: Plan, folder: Path, seed: int):
    """The plain network's training, as the protocol sets it."""
    from ..training.config import TrainConfig

    s = plan.settings
    return TrainConfig(
        spec=plan.spec,
        out=str(folder / "run"),
        attrs=[s["target"]],
        arch=s["arch"],
        size=s["size"],
        epochs=s["epochs"],
        batch=s["batch"],
        opt=s["opt"],
        lr=s["lr"],
        momentum=s["momentum"],
        wd=s["wd"],
        schedule=s["schedule"],
        crop=plan.crop,
        weights=plan.weights_for(s["arch"]),
        seed=seed,
    )


def _starts(plan: Plan, photo: str | None) -> Starts:
    """The user's photo for everything, or (none given) test faces: each edit from a face the network does not
    already see that way, the photo the first of them (a departure, said)."""
    if photo is not None:
        return Starts(photo, photo, photo)
    target = plan.settings["target"]
    older, younger = _test_face(plan.spec, target, 1), _test_face(plan.spec, target, 0)
    plan.notes.append(
        f"start image: test faces of the data ({older}; {younger} for the edit toward younger), not a photo of the user's (give --photo)"
    )
    return Starts(older, older, younger)


def _look_inside(run: Run, plan: Plan, starts: Starts, folder: Path, ascent: Ascent) -> Inside:
    """Activations of every conv layer, three channels as RGB, the first layer's filters, a dream of the dream layer
    with each objective, and the edits toward older and younger."""
    from ..probes.activations import activations, filters, layers, rgb
    from ..probes.dream import dream_image
    from ..probes.layers import OBJECTIVES

    s, photo = plan.settings, starts.photo
    n_layers = len(layers(run, runtime=plan.runtime))
    shown = activations(run, photo, [str(k) for k in range(1, n_layers + 1)], out=folder / "activations", runtime=plan.runtime)
    rgb(run, photo, s["dream_layer"], [0, 1, 2], out=folder / "rgb", runtime=plan.runtime)
    filters(run, out=folder / "filters", runtime=plan.runtime)
    dreams = {
        objective: dream_image(
            run,
            photo,
            s["dream_layer"],
            "all",
            objective,
            steps=ascent.steps,
            seed=ascent.seed,
            out=folder / f"dream_{objective}",
            quiet=ascent.quiet,
            runtime=plan.runtime,
        )  # fmt: skip
        for objective in OBJECTIVES
    }
    return Inside(shown, dreams, _age_edits(run, starts, s["target"], folder, "edit", ascent, plan.runtime))


COUNTERFACTUAL_LITERATURE = (
    "reported for CelebA's Young at 128 px with diffusion-guided edits by DiME (Jeanneret et al., ACCV 2022) and ACE "
    "(Jeanneret et al., CVPR 2023); their figures are not copied into facelab: compare with their tables"
)


def _counterfactual(run: Run, plan: Plan, folder: Path, ascent: Ascent) -> CounterfactualSet:
    """The edit toward older over a set of young test faces (:func:`facelab.probes.edit_set.edit_set`), the figures
    counterfactual papers report: flip rate and FVA with their intervals, closeness, the budget."""
    from ..probes.edit_set import edit_set

    began = time.perf_counter()
    scored = edit_set(run, plan.spec, attr=plan.settings["target"], to=0, n=int(plan.settings["edit_n"]), steps=ascent.steps,
                      seed=ascent.seed, out=folder, quiet=ascent.quiet, runtime=plan.runtime)  # fmt: skip
    return CounterfactualSet.of(scored, folder, began)


def _dreams_of_set(run: Run, plan: Plan, folder: Path, ascent: Ascent) -> DreamsOfSet:
    """The square objective's dream of the dream layer from as many test faces as the edits are scored on
    (:func:`facelab.probes.dream_set.dream_set`): still the same person? how much of the change is fine noise?"""
    from ..probes.dream_set import dream_set

    began = time.perf_counter()
    scored = dream_set(run, plan.spec, layer=plan.settings["dream_layer"], objective="square", n=int(plan.settings["edit_n"]),
                       steps=ascent.steps, seed=ascent.seed, out=folder, quiet=ascent.quiet, runtime=plan.runtime)  # fmt: skip
    return DreamsOfSet.of(scored, folder, began)


def _age_edits(run: Run, starts: Starts, target: str, folder: Path, prefix: str, ascent: Ascent, runtime: Runtime) -> dict[str, Edit]:
    """The edits toward older and toward younger, each from its start image, into FOLDER/PREFIX_older and _younger."""
    from ..probes.dream import edit_image

    return {
        direction: edit_image(
            run,
            starts.of(direction),
            target,
            to=to,
            steps=ascent.steps,
            seed=ascent.seed,
            out=folder / f"{prefix}_{direction}",
            quiet=ascent.quiet,
            runtime=runtime,
        )  # fmt: skip
        for direction, to in (("older", 0), ("younger", 1))
    }


def _robust_beside(plan: Plan, cfg, starts: Starts, folder: Path, ascent: Ascent, plain: Inside) -> RobustResult:
    """The same network trained adversarially (``robust`` L2 budget, ``robust_steps`` PGD steps), its test accuracy,
    its age edits and its dream with the square objective, each figure beside the plain network's."""

    from ..probes.audit import audit
    from ..probes.dream import dream_image
    from ..run import Run
    from ..training.engine import trained

    s = plan.settings
    adversarial = dict(robust=float(s["robust"]), robust_norm="l2", robust_steps=int(s["robust_steps"]))
    start = str(folder / "run" / "checkpoints" / "best.ckpt") if s["robust_start"] == "plain" else cfg.model.weights
    robust_cfg = cfg.changed(
        out=str(folder / "robust"), lr=float(s["robust_lr"]), epochs=int(s["robust_epochs"]), weights=start, **adversarial
    )
    summary = trained(robust_cfg, quiet=ascent.quiet, runtime=plan.runtime)
    at_chance = plan.check_chance("the robust", summary)
    run = Run.for_probes(folder / "robust", plan.runtime)
    made = RobustResult(
        summary.final,
        "robust",
        round(summary.train_seconds, 1),  # as the run recorded it, also when a finished run is reused
        budget=RobustBudget("l2", robust_cfg.optim.robust, robust_cfg.optim.robust_steps),
        start=s["robust_start"],
        epochs=robust_cfg.optim.epochs,
        test_accuracy=TestAccuracy.of(audit(run, by=[s["target"]], out=run.path / "audit", runtime=plan.runtime)),
        at_chance=bool(at_chance),
    )
    if at_chance:  # its edits and dreams would show what a guess climbs, not what the network learned
        plan.warnings.append("the robust run: no edits or dreams of it are shown, as it answers at chance (see above)")
        return made
    edits = _age_edits(run, starts, s["target"], folder, "robust_edit", ascent, plan.runtime)
    dreamed = dream_image(run, starts.photo, s["dream_layer"], "all", "square", steps=ascent.steps, seed=ascent.seed,
                    out=folder / "robust_dream_square", quiet=ascent.quiet, runtime=plan.runtime)  # fmt: skip
    _side_by_side_edits(folder, edits)
    _side_by_side_dreams(folder, plain.dreams["square"], dreamed)
    made.edit = {k: EditMeasures.of(starts.of(k), e) for k, e in edits.items()}
    made.dream = {"square": DreamChange.of(dreamed)}
    made.counterfactual = _counterfactual(run, plan, folder / "robust_edit_set", ascent)
    made.dream_set = _dreams_of_set(run, plan, folder / "robust_dream_set", ascent)
    return made


def _side_by_side_edits(folder: Path, robust_edits: dict) -> None:
    """Per direction: the start, the plain network's edit and the robust one's (the networks' own inputs)."""
    import numpy as np
    from PIL import Image

    from ..report.figures import image_grid

    panels, captions = [], []
    for direction in robust_edits:
        read = lambda name: np.asarray(Image.open(folder / name).convert("RGB"))  # noqa: E731
        panels += [read(f"edit_{direction}/start.png"), read(f"edit_{direction}/edited.png"), read(f"robust_edit_{direction}/edited.png")]
        captions += [f"start ({direction} edit)", "plain network", "robust network"]
    image_grid(panels, captions, folder / "edits_plain_vs_robust.png", cols=3)


def _side_by_side_dreams(folder: Path, plain: Dream, robust: Dream, shown: int = 8) -> None:
    """The first ``shown`` channels' dreams of the plain network (top row) and the robust one (bottom row)."""
    import numpy as np
    from PIL import Image

    from ..report.figures import image_grid

    panels, captions = [], []
    for name, d, sub in (("plain", plain, "dream_square"), ("robust", robust, "robust_dream_square")):
        for c in d.channels[:shown]:
            panels.append(np.asarray(Image.open(folder / sub / "edited" / f"channel_{c}.png").convert("RGB")))
            captions.append(f"{name}, channel {c}")
    image_grid(panels, captions, folder / "dreams_plain_vs_robust.png", cols=min(shown, len(panels) // 2))


def parse_recorded(text: str) -> list[tuple[int, list[int]]]:
    """ "1:11, 2:24" or "1:10,14,13; 3:51,54,64" -> [(layer, [facelab's channels, from 0])]: the write-up counts from 1."""
    made = []
    for part in text.replace(";", " ").replace(", ", " ").split():
        layer, _, channels = part.partition(":")
        made.append((int(layer), [int(c) - 1 for c in channels.split(",")]))
    return made


def _recorded_channels(run: Run, photo: str, s: dict[str, Any], folder: Path, ascent: Ascent, plan: Plan) -> Recorded:
    """The write-up's own pictures: a single-channel activation maximisation of each recorded (layer, channel) and
    each recorded RGB triple, on the same photo. A channel the network does not have is skipped and said."""
    from ..probes.activations import layers, rgb
    from ..probes.dream import dream_image

    widths = {row["index"]: row["shape"][0] for row in layers(run, runtime=plan.runtime)}
    fits = lambda layer, chans: layer in widths and all(0 <= c < widths[layer] for c in chans)  # noqa: E731
    made = Recorded([], [])
    for layer, (channel,) in parse_recorded(s["recorded_dreams"]):
        if not fits(layer, [channel]):
            plan.notes.append(f"recorded dream: layer {layer} channel {channel + 1} is not in this network, skipped")
            continue
        sub = f"recorded_dream_l{layer}c{channel}"
        d = dream_image(run, photo, str(layer), str(channel), "sum", steps=ascent.steps, seed=ascent.seed, out=folder / sub,
                        quiet=ascent.quiet, runtime=plan.runtime)  # fmt: skip
        made.dreams.append(RecordedDream(layer, channel, sub, d.objective_initial, d.objective_final))
    for layer, channels in parse_recorded(s["recorded_rgb"]):
        if not fits(layer, channels):
            plan.notes.append(f"recorded RGB: layer {layer} channels {[c + 1 for c in channels]} are not all in this network, skipped")
            continue
        picture = rgb(run, photo, str(layer), channels, out=folder / f"recorded_rgb_l{layer}", runtime=plan.runtime)
        made.rgb.append(RecordedRGB(layer, channels, f"recorded_rgb_l{layer}/{picture.figure}"))
    return made


# ----------------------------------------------------------------------------- the study's summary.json, typed
@dataclass
class TestAccuracy(Accuracy):
    """The test accuracy beside its baselines: the positives, the accuracy of always answering the majority (with
    Wilson's interval) and the balanced accuracy (from the audit's TPR and FPR; None where a class is absent)."""

    positives: int
    majority: float
    majority_ci: list[float | None]
    balanced: float | None

    @classmethod
    def of(cls, audited: Audit) -> "TestAccuracy":
        from ..probes.stats import wilson_ci

        o = audited.overall
        n, pos, tpr, fpr = o.n, o.positives, o.tpr, o.fpr
        balanced = None if tpr is None or fpr is None else (tpr + 1 - fpr) / 2
        return cls(n, o.accuracy, o.accuracy_ci, pos, o.majority, list(wilson_ci(max(pos, n - pos), n)), balanced)


@dataclass(kw_only=True)
class GroupAccuracy(Accuracy):
    """The accuracy on one group of the test faces (young, older)."""

    group: Group


@dataclass
class DreamGrowth(Summary):
    """A dream of a layer: the objective before and after the ascent."""

    layer: str
    objective_initial: float
    objective_final: float

    @classmethod
    def of(cls, d: Dream) -> "DreamGrowth":
        return cls(d.layer, d.objective_initial, d.objective_final)


@dataclass
class DreamChange(DreamGrowth):
    """A dream with how far the picture moved: SSIM to the photo and the high-frequency share of the change."""

    ssim: float
    high_frequency_share: float | None

    @classmethod
    def of(cls, d: Dream) -> "DreamChange":
        return cls(d.layer, d.objective_initial, d.objective_final, d.ssim, d.high_frequency_share)


@dataclass
class EditMeasures(Summary):
    """An edit toward older or younger from its start image: P(target) before and after, and how far it moved."""

    image: str
    prob_before: float
    prob_after: float
    ssim: float
    high_frequency_share: float | None
    budget_used: float

    @classmethod
    def of(cls, image: str, e: Edit) -> "EditMeasures":
        return cls(image, e.prob_before, e.prob_after, e.ssim, e.high_frequency_share, e.budget.used)


@dataclass
class RecordedDream(Summary):
    layer: int
    channel: int  # facelab's, from 0
    folder: str
    objective_initial: float
    objective_final: float


@dataclass
class RecordedRGB(Summary):
    layer: int
    channels: list[int]
    figure: str


@dataclass
class Recorded(Summary):
    """The write-up's recorded channels: its single-channel dreams and its RGB triples."""

    dreams: list[RecordedDream]
    rgb: list[RecordedRGB]


@dataclass
class ScoredSetBrief(Summary):
    """A set of edits or dreams the study drew, as its own page (FOLDER/report.html) scores it, less the per-face
    entries; with the seconds it cost on this machine."""

    n: int
    fva: float | None
    fva_ci: list[float | None]
    fva_not_found: list[str]
    ssim_median: float | None
    l1_median: float | None
    hf_share_median: float | None
    budget: AscentBudget
    folder: str
    seconds: float

    @classmethod
    def of(cls: type[B], scored: ScoredSet, folder: Path, began: float) -> B:
        kept = {f.name: getattr(scored, f.name) for f in fields(cls) if f.name not in ("folder", "seconds")}
        return cls(**kept, folder=folder.name, seconds=round(time.perf_counter() - began, 1))

    borrows = ("facelab.probes.edit_set.AscentBudget",)


B = TypeVar("B", bound=ScoredSetBrief)


@dataclass(kw_only=True)
class CounterfactualSet(ScoredSetBrief):
    """The edits toward older over young test faces: also the flip rate (Wilson) and MNAC."""

    flip_rate: float
    flip_rate_ci: list[float | None]
    mnac: float | None


@dataclass(kw_only=True)
class DreamsOfSet(ScoredSetBrief):
    """The square objective's dreams from test faces: also the objective's median gain."""

    gain_median: float | None


@dataclass
class RobustBudget(Summary):
    norm: str
    eps: float
    steps: int


@dataclass(kw_only=True)
class RobustResult(StudyRun):
    """The robust network beside the plain one: its budget, start and epochs, its test accuracy, and (unless it is at
    chance) its edits, dream and sets (None when at chance: the study draws none)."""

    budget: RobustBudget
    start: str
    epochs: int
    test_accuracy: TestAccuracy
    at_chance: bool
    edit: dict[str, EditMeasures] | None = None
    dream: dict[str, DreamChange] | None = None
    counterfactual: CounterfactualSet | None = None
    dream_set: DreamsOfSet | None = None


@dataclass
class YouthResult(StudyResult):
    """``facelab study youth``'s summary.json (docs/json.md)."""

    run: StudyRun
    size: int
    photo: str
    test_accuracy: TestAccuracy
    groups: list[GroupAccuracy]
    dream: dict[str, DreamGrowth]
    edit: dict[str, EditMeasures]
    layers: int
    recorded: Recorded | None
    counterfactual: CounterfactualSet
    dream_set: DreamsOfSet
    robust: RobustResult | None

    def shown_networks(self) -> list[tuple[str, YouthResult | RobustResult]]:
        """The networks whose edits and dreams the study shows: the plain one, and the robust one unless it is at chance."""
        robust = self.robust
        return [("plain", self)] + ([("robust", robust)] if robust and not robust.at_chance else [])


EDIT_SIDE = 128  # the side edits are drawn at where the photos allow


def _auto_size(plan: Plan, sample: int = 16) -> tuple[str, str]:
    """``--size auto``: EDIT_SIDE where the first ``sample`` photos are all at least that large on their short side,
    64 otherwise and for synthetic faces (rendered at any size: 64 keeps the demo's cost); with the reason."""
    if plan.synthetic:
        return "64", "auto: 64 px for synthetic faces"
    side = min(min(plan.data.image_size(i)) for i in range(min(sample, len(plan.data))))
    if side >= EDIT_SIDE:
        return str(EDIT_SIDE), f"auto: the photos are at least {side} px on their short side, so edits are drawn at {EDIT_SIDE} px"
    return "64", f"auto: the photos are {side} px on their short side, under {EDIT_SIDE}"


def _test_face(spec: str, attr: str, value: int) -> str:
    """SPEC#ITEM of the first test face with ``attr`` = ``value`` (the first test face when there is none)."""
    fs = open_spec(spec)  # the selection of a SPEC such as synth:N is cheap to open again
    test = fs.split_indices("test")
    column = fs.group_values(attr)[test]
    matching = test[column == value]
    return f"{spec}#{int((matching if matching.size else test)[0])}"


def _comparisons(result: YouthResult, target: str) -> list[Comparison]:
    acc = result.test_accuracy
    rows = [Comparison(f"test accuracy (n={acc.n})", f"{YOUTH.published['test_accuracy']:.2f}", acc.accuracy, acc.accuracy_ci)]
    majority = "young" if acc.positives >= acc.n - acc.positives else "older"
    rows += [
        Comparison(f"always answering the majority ({majority}): accuracy to beat", "not published", acc.majority, acc.majority_ci),
        Comparison("balanced accuracy (mean of the recalls of young and older faces; 0.5 for a constant)", "not published", acc.balanced),
    ]
    for g in result.groups:
        label = "young faces" if g.group[target] else "older faces"
        rows.append(Comparison(f"accuracy on {label} (n={g.n})", "not published", g.accuracy, g.accuracy_ci))
    if result.robust:
        r = result.robust.test_accuracy
        rows.append(Comparison(f"robust network: test accuracy (n={r.n})", "not in the study", r.accuracy, r.accuracy_ci))
    for which, net in result.shown_networks():
        cf = net.counterfactual
        assert cf is not None  # a shown network has its sets
        flips = f"{which}: edits of young faces toward older that flip the network (n={cf.n})"
        rows.append(Comparison(flips, "not published", cf.flip_rate, cf.flip_rate_ci, COUNTERFACTUAL_LITERATURE))
        for name, scored in _sets_of(net):
            judged = scored.n - len(scored.fva_not_found)
            if scored.fva is not None:
                literature = COUNTERFACTUAL_LITERATURE if scored is cf else None
                rows.append(Comparison(f"{which}: {name} dlib still takes for the same person (FVA, n={judged})", "not published",
                                       scored.fva, scored.fva_ci, literature))  # fmt: skip
            rows.append(Comparison(f"{which}: median SSIM of the {name[:-1]} to its start (n={scored.n})", "not published",
                                   scored.ssim_median))  # fmt: skip
            rows.append(Comparison(f"{which}: median high-frequency share of the {name[:-1]}'s change (n={scored.n})", "not published",
                                   scored.hf_share_median))  # fmt: skip
    return rows


def _sets_of(net: YouthResult | RobustResult) -> list[tuple[str, ScoredSetBrief]]:
    """A shown network's sets, each with what it holds: (edits, its counterfactual set), (dreams, its dream set)."""
    return [(kind, scored) for kind, scored in (("edits", net.counterfactual), ("dreams", net.dream_set)) if scored is not None]


def _cost(result: YouthResult) -> str:
    """What drawing the edits at this size cost here: each network's training and its sets of edits and dreams."""
    parts = [f"plain network: training {result.run.train_seconds:.0f} s"]
    if result.robust:
        parts.append(f"robust network: training {result.robust.train_seconds:.0f} s")
    parts += [f"{net}: {kind} over {scored.n} faces {scored.seconds:.0f} s" for net, shown in result.shown_networks()
              for kind, scored in _sets_of(shown)]  # fmt: skip
    return f"Edits and dreams at {result.size} px, as the networks see faces; on this machine: " + "; ".join(parts) + "."


def _sections(rep: Report, result: YouthResult, inside: Inside) -> None:
    rep.links([("training report", "run/report.html"), ("audit by age", "run/audit/report.html")])
    rep.heading(f"Activation grids of every conv layer ({result.photo})")
    for layer in inside.activations.layers.values():
        rep.figure(f"activations/{layer.figure}", f"layer {layer.index}: {layer.channels} channels of {layer.height}x{layer.width}")
    rep.heading("Three channels as one RGB picture, and the first layer's filters")
    rep.links([("RGB of three channels", "rgb/report.html"), ("first-layer filters", "filters/report.html")])
    rep.figure("filters/filters_layer1.png", "first-layer filters")
    rep.heading("Activation maximisation from the photo, one objective each")
    rep.table(
        ["objective", "layer", "before", "after"], [[o, d.layer, d.objective_initial, d.objective_final] for o, d in result.dream.items()]
    )
    for objective in result.dream:
        rep.figure(f"dream_{objective}/dream_grid.png", f"objective {objective}: the photo, then each channel's image after the ascent")
    if result.recorded:
        _recorded_section(rep, result.recorded)
    rep.heading("Class-driven age shift")
    rep.paragraph(_cost(result))
    rep.table(
        ["network", "toward", "start image", "P(young) before", "P(young) after", "SSIM to the start", "high-frequency share"],
        [
            [net, k, e.image, e.prob_before, e.prob_after, e.ssim, e.high_frequency_share]
            for net, shown in result.shown_networks()
            for k, e in (shown.edit or {}).items()
        ],
    )
    rep.links([(f"{net}: {kind} over {scored.n} test faces", f"{scored.folder}/report.html")
               for net, shown in result.shown_networks() for kind, scored in _sets_of(shown)])  # fmt: skip
    for direction in result.edit:
        rep.figure(f"edit_{direction}/edit.png", f"toward {direction}: the edited face and where its pixels changed")
    if result.robust:
        _robust_section(rep, result, result.robust)


def _recorded_section(rep: Report, recorded: Recorded) -> None:
    rep.heading("The write-up's recorded channels (numbered from 0 here, from 1 in the write-up)")
    rep.table(
        ["layer", "channel", "sum before", "sum after"],
        [[d.layer, d.channel, d.objective_initial, d.objective_final] for d in recorded.dreams],
    )
    for d in recorded.dreams:
        rep.figure(f"{d.folder}/activation_before_after.png", f"layer {d.layer}, channel {d.channel}: its map before and after the ascent")
    for r in recorded.rgb:
        rep.figure(r.figure, f"layer {r.layer}, channels {r.channels} as R, G, B")


def _robust_section(rep: Report, result: YouthResult, r: RobustResult) -> None:
    if r.at_chance:
        rep.heading("Beside a robust network: at chance, so not shown")
        rep.paragraph("The robust network answers at chance (the warning above says why): its edits and dreams would show what a "
                      "guess climbs, so the study draws none.")  # fmt: skip
    else:
        rep.heading("Beside a robust network: features, not noise")
        rep.paragraph(
            f"The same network trained adversarially (L2 budget {r.budget.eps} in pixel units, {r.budget.steps} PGD steps; "
            f"{r.train_seconds:.0f} s of training): test accuracy {r.test_accuracy.accuracy:.3f} (n = {r.test_accuracy.n}) "
            f"against the plain network's {result.test_accuracy.accuracy:.3f}. Its edits within the same budget change what a "
            "person sees; the plain network's are mostly fine speckle (the high-frequency share above)."
        )
        rep.figure("edits_plain_vs_robust.png", "each edit's start image, the plain network's edit and the robust network's")
        rep.figure("dreams_plain_vs_robust.png", "the square objective's dreams of the first channels: plain network above, robust below")
    rep.links([("robust training report", "robust/report.html")])


def _headline(result: YouthResult) -> list[str]:
    acc = result.test_accuracy
    return [f"test accuracy {acc.accuracy:.3f} {interval(*acc.accuracy_ci)} (published {YOUTH.published['test_accuracy']:.2f})"]


STUDY = Study(
    YOUTH,
    youth_study,
    _headline,
    "Darknet64 on Young: accuracy, activations, RGB channels, activation maximisation, older/younger edits.",
    options=(
        Option("photo", str, None, "The photo to look inside with (a file or SPEC#ITEM; default: the first test face)."),
        Option("steps", int, 60, "Gradient steps of each activation maximisation and edit.", bounds=STEPS_BOUNDS),
        Option("recorded", bool, True, "Also the write-up's recorded channels: single-channel dreams and RGB triples."),
        Option("robust", float, None, "L2 budget of a robust network trained beside (default 0.5, pixel units; 0: none).", bounds=(0, 100)),
        Option("robust_epochs", int, None, "Passes of the robust network's training (default 10).", bounds=(1, 100_000)),
        Option(
            "edit_n",
            int,
            None,
            "Young test faces each network's edit toward older is scored on as a set, and test faces its dreams are (default 100).",
            bounds=(1, 100_000),
        ),
        Option("robust_start", str, None, "plain: the robust network starts from the plain one's weights (default); scratch."),
    ),
    example="celeba:/data/celeba --photo me.jpg",
    demo=dict(spec="synth:4000", size="64", epochs=4, batch=32, steps=40, edit_n=16) | dict(robust=0.25, robust_lr=0.01, robust_epochs=1),
    demo_note="batch 32 (at the study's 128 the plain network stayed at the majority answer in the demo's 100 steps); the "
    "robust network fine-tuned from the plain one for one epoch within an L2 budget of 0.25 at lr 0.01 (at 0.5 the synthetic "
    "faces' age lines are not learnable robustly: it fell to the majority answer, even fine-tuned at lr 0.002).",
    quick=dict(spec="synth:600", size="32", epochs=1, robust_epochs=1, steps=10, edit_n=4),
    figures=lambda s: [
        ("activations/activations_layer2.png", "activation maps of layer 2"),
        ("edit_older/edit.png", "class-driven edit toward older: where the pixels changed"),
        ("dream_square/dream_grid.png", "activation maximisation (sum of squares) of every channel of a layer"),
    ],
    webcam=("run", "Young"),
)
