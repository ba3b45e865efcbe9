"""``facelab study keypoints``: how well do small networks place facial landmarks (the nose tip, IMM's 58
points, iBUG 300-W's 68), how much do runs differ from seed to seed, and how do they do on the user's photos?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..data.photos import photo_files
from ..data.spec import open_spec
from ..errors import FacelabError
from ..hardware import Runtime
from ..report.html import Report
from ..results import Summary
from .protocol import FACELAB_SOURCE, Comparison, Plan, Protocol, StudyResult, study_folder, write_study
from .registry import Option, Study

if TYPE_CHECKING:
    from ..keypoints.photos import Landmarks
    from ..keypoints.sweep import SweepResult

PARTS = ("nose", "58 points", "68 points")
QUESTION = (
    "How well do small networks place facial landmarks: the nose tip alone, the IMM layout's 58 points, iBUG "
    "300-W's 68? How much does a run vary from seed to seed, what do the first-layer filters look like, and how "
    "do the networks do on photos of the user's own?"
)
DATA = "IMM face database (nose tip, 58 points) and iBUG 300-W (68 points)"
NETWORKS = "kpnet-full: convs 7x7, 5x5, then 3x3 (--convs of them), each + ReLU + maxpool, an adaptive pool, fc 256, fc out"
LITERATURE = {
    "300w_nme_interocular": {
        "ResNet regression": "~0.044",
        "Simple Baselines / HRNetV2 heatmaps": "0.033-0.039",
        "dlib ERT": "0.05-0.06",
    },
    "source": "300-W full test set, NME by inter-ocular distance: ResNet regression and heatmap networks as reported "
    "by Xiao et al. 2018 (Simple Baselines) and Wang et al. 2020 (HRNetV2); dlib's ERT (Kazemi and Sullivan 2014) "
    "as commonly benchmarked",
}
STEPS_SOURCE = "the study's own experiment on the nose network; facelab runs it on the nose part, one seed (--{} none: off)"


def per_part(nose, points58, points68) -> dict[str, Any]:
    return dict(zip(PARTS, (nose, points58, points68)))


# The two write-ups of the study, each as recorded: a setting a write-up does not record is facelab's, and says so.
VARIANTS = {
    "004": Protocol(
        name="keypoints",
        question=f"{QUESTION} (write-up 004)",
        data=DATA,
        default_spec="synth:3000",
        settings={
            "arch": per_part("kpnet-full", "kpnet-full", "resnet18"),
            "convs": per_part(4, 5, None),
            "size": per_part("80x60", "240x180", "128"),
            "channels": 1,
            "augment": True,
            "epochs": per_part(20, 20, 10),
            "batch": per_part(64, 32, 66),
            "opt": "adam",
            "lr": 1e-3,
            "weights": None,
            "valid_share": per_part(None, None, 0.1),
            "seeds": 3,
            "lr_sweep": "0.001,0.01",
            "conv_ablation": "4,3",
        },
        sources={
            "arch": f"the study: nose convs 7/5/3/3 + fc 30 + fc 2, 58 points 5 convs 7x7 + fc 1000, 68 points ResNet-18 ({NETWORKS})",
            "convs": "the study (nose 4, 58 points 5)",
            "size": "the study for the nose (80x60) and 58 points (240x180); facelab's choice for 68 points",
            "augment": "the study for 58 points (saturation jitter, rotation +-15 deg, shift +-24/+-18 px); facelab's: "
            "flips, rotation +-25 deg, shift +-10%, scale +-10%, brightness/contrast, for every part",
            "epochs": "the study for 68 points (10); facelab's choice for the others",
            "batch": "the study for the nose (64) and 68 points (66); facelab's choice for 58 points",
            "opt": FACELAB_SOURCE,
            "weights": FACELAB_SOURCE,
            "valid_share": "the study for 68 points (a 90/10 split); the data source's own split for the others",
            "seeds": FACELAB_SOURCE,
            "lr_sweep": STEPS_SOURCE.format("lr-sweep"),
            "conv_ablation": STEPS_SOURCE.format("conv-ablation"),
        },
        published={
            "per_seed_loss_curves": "the study shows validation loss per epoch for each seed (curves, no single figure)",
            "lr_sweep": "lr 1e-2: the nose network still converges",
            "conv_ablation": "3 convs instead of 4: no change",
        },
        literature=LITERATURE,
    ),
    "003": Protocol(
        name="keypoints",
        question=f"{QUESTION} (write-up 003)",
        data=DATA,
        default_spec="synth:3000",
        settings={
            "arch": per_part("kpnet-full", "kpnet-full", "resnet18"),
            "convs": per_part(4, 6, None),
            "size": per_part("80x60", "240x180", "128"),
            "channels": 1,
            "augment": True,
            "epochs": 20,
            "batch": per_part(32, 32, 32),
            "opt": "adam",
            "lr": per_part(1e-4, 1e-3, 1e-4),
            "weights": per_part(None, None, "imagenet"),
            "valid_share": None,
            "seeds": 3,
            "lr_sweep": "1e-05,0.0001,0.001",
            "conv_ablation": "none",
        },
        sources={
            "arch": f"the study: nose 4 convs (3x3 to 7x7) + 3 fc, 58 points 6 convs 5x5 + 2 fc, 68 points ResNet-18 ({NETWORKS})",
            "convs": "the study (nose 4, 58 points 6)",
            "size": "facelab's choice (write-up 004's sizes; 003 does not record them)",
            "augment": "the study for 58 points (flip, shift, rotate); facelab adds scale and brightness/contrast",
            "epochs": FACELAB_SOURCE,
            "batch": "the study for 68 points (32); facelab's choice for the others",
            "opt": "the study for 58 points (Adam); facelab's choice for the others",
            "weights": "the study (68 points: ResNet-18 fine-tuned from pretrained weights; the others from scratch)",
            "valid_share": "facelab's choice: the data source's own split (003 does not record one)",
            "seeds": FACELAB_SOURCE,
            "lr_sweep": STEPS_SOURCE.format("lr-sweep"),
            "conv_ablation": "the study records none",
        },
        published={
            "per_seed_loss_curves": "the study shows validation loss per epoch for each seed (curves, no single figure)",
            "lr_sweep": "lr 1e-5, 1e-4 and 1e-3 on the nose network: about the same loss",
            "resnet18_loss": "68 points, ResNet-18: loss ~0.004 falling to ~0.002 (the write-up's loss, not facelab's)",
        },
        literature=LITERATURE,
    ),
}
KEYPOINTS = VARIANTS["004"]


@dataclass
class Part:
    name: str
    spec: str
    points: str  # TrainConfig.points: nose or all


def parts_for(spec: str) -> tuple[list[Part], list[str]]:
    """The protocol's parts this data can carry (synthetic faces: all three, the 58 points in IMM's layout), and a
    note for each part it cannot."""
    if spec.startswith("synth"):
        return [Part("nose", spec, "nose"), Part("58 points", f"{spec},points=58", "all"), Part("68 points", spec, "all")], []
    fs = open_spec(spec)
    fs.require("landmarks", "study keypoints")
    have = {68: "68 points", 58: "58 points"}.get(fs.n_landmarks or 0)
    parts = [Part("nose", spec, "nose")] + ([Part(have, spec, "all")] if have else [])
    missing = [p for p in PARTS[1:] if p != have]
    return parts, [f"{p}: not run, {spec} has {fs.n_landmarks}-point landmarks (run the study on a set with {p})" for p in missing]


def _value(setting, part: str):
    return setting[part] if isinstance(setting, dict) else setting


def keypoints_study(
    spec: str | None = None,
    *,
    variant: str = "004",
    photos: str | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    runtime: Runtime | None = None,
    **options,
) -> KeypointsResult:
    """The write-up ``variant`` (003 or 004) as recorded: each part trained once per seed, per-seed loss curves, NME
    with its spread over seeds, first-layer filters, the write-up's learning-rate sweep and conv ablation on the nose
    network (one seed), and the landmarks of ``photos`` (folder:PATH) from the richest part. Writes OUT/summary.json
    and OUT/report.html."""
    from ..keypoints.photos import landmarks
    from ..probes.activations import filters
    from ..training.engine import trained

    if variant not in VARIANTS:
        raise FacelabError(f"--variant {variant!r}: the study's write-ups are {', '.join(VARIANTS)}")
    plan = Plan.of(VARIANTS[variant], spec, options, runtime)
    s = plan.settings
    parts, skipped = parts_for(plan.spec)
    plan.notes += skipped
    _convs_only_for_kpnet(plan, parts)
    if photos:
        photo_files(photos)
    folder = study_folder(out, "keypoints")
    results = {}
    for part in parts:
        slug = part.name.replace(" ", "_")
        runs = [
            trained(_part_config(plan, part, folder / slug / f"seed{seed}", seed), quiet, plan.runtime) for seed in range(int(s["seeds"]))
        ]
        seeds = [r.final for r in runs]
        _loss_curves(folder / slug, int(s["seeds"]), folder / f"loss_{slug}.png", part.name)
        filters(folder / slug / "seed0", out=folder / slug / "filters", runtime=plan.runtime)
        baseline = runs[0].fields["baseline_mean_shape"]
        results[part.name] = PartResult(slug, part.spec, seeds, baseline, _spread(seeds, "val_nme"), _spread(seeds, "val_px_err"))
    steps = _nose_steps(plan, parts[0], folder, quiet)
    on_photos = None
    if photos:
        on_photos = landmarks(folder / parts[-1].name.replace(" ", "_") / "seed0", photos, out=folder / "photos", runtime=plan.runtime)
    else:
        plan.notes.append("the user's photos: none given (--photos folder:PATH)")
    result = KeypointsResult(
        variant=variant, parts=results, steps=steps, photos=None if on_photos is None else PhotosLandmarked(len(on_photos.faces), "photos")
    )
    comparisons = _comparisons(plan.protocol, results, steps)
    return write_study(folder, plan, result, comparisons, lambda rep: _sections(rep, results, steps, on_photos))


@dataclass
class Spread(Summary):
    """A validation error's mean over seeds, with a 95% t interval across seeds (None for one seed), and each seed's."""

    mean: float
    ci: list[float | None]
    per_seed: list[float]


@dataclass
class PartResult(Summary):
    """One part (nose, 58 or 68 points): its folder and data, each seed's final block, the mean shape's errors (the
    baseline to beat) and the spread of each error over seeds (absent from the JSON where the task has no such error)."""

    folder: str
    data: str
    seeds: list[dict[str, Any]]
    baseline_mean_shape: dict[str, float]
    val_nme: Spread | None
    val_px_err: Spread | None

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if v is not None}

    def errors(self) -> list[tuple[str, str, Spread]]:
        """(key, in words, spread) of each error this part measured: NME first."""
        shown = (("val_nme", "NME, inter-ocular", self.val_nme), ("val_px_err", "error in pixels", self.val_px_err))
        return [(key, words, spread) for key, words, spread in shown if spread is not None]


@dataclass
class PhotosLandmarked(Summary):
    faces: int
    folder: str


@dataclass
class KeypointsResult(StudyResult):
    """``facelab study keypoints``'s summary.json (docs/json.md): each part's errors over seeds, the nose network's
    sweep and ablation (each a ``facelab sweep`` summary), and how many faces of the user's photos were landmarked."""

    variant: str
    parts: dict[str, PartResult]
    steps: dict[str, SweepResult]
    photos: PhotosLandmarked | None

    borrows = ("facelab.keypoints.sweep.SweepResult",)


def _part_config(plan: Plan, part: Part, out: Path, seed: int, **changes):
    """The training run of ``part`` under the plan's settings (per part where the write-up gives them per part)."""

    from ..training.config import TrainConfig

    s = plan.settings
    arch = _value(s["arch"], part.name)
    cfg = TrainConfig(
        spec=part.spec,
        out=str(out),
        task="keypoints",
        points=part.points,
        arch=arch,
        convs=_value(s["convs"], part.name),
        size=_value(s["size"], part.name),
        channels=int(s["channels"]),
        augment=bool(s["augment"]),
        epochs=int(_value(s["epochs"], part.name)),
        batch=int(_value(s["batch"], part.name)),
        opt=s["opt"],
        lr=float(_value(s["lr"], part.name)),
        crop=open_spec(part.spec).default_crop,  # the source's framing, as the study's courses crop
        weights=plan.weights_for(arch, part.name) or "none",
        valid_share=_value(s["valid_share"], part.name),
        seed=seed,
    )
    return cfg.changed(**changes)


def _convs_only_for_kpnet(plan: Plan, parts: list[Part]) -> None:
    """A conv count is the kpnet networks' only: dropped (and said) for a part trained with another network."""
    convs = plan.settings["convs"]
    kept = {p: (_value(convs, p) if str(_value(plan.settings["arch"], p)).startswith("kpnet") else None) for p in PARTS}
    if any(kept[p.name] != _value(convs, p.name) for p in parts):
        plan.settings["convs"] = kept
        plan.reasons["convs"] = "only the kpnet networks take a conv count"


def _numbers(text: str | None, kind: type) -> list:
    try:
        return [kind(float(t)) for t in str(text or "none").split(",") if t.strip() and t.strip() != "none"]
    except ValueError:
        raise FacelabError(f"{text!r}: expected numbers separated by commas, or none") from None


def _nose_steps(plan: Plan, nose: Part, folder: Path, quiet: bool) -> dict[str, SweepResult]:
    """The write-up's learning-rate sweep and conv ablation on the nose network, one seed each (facelab sweep)."""
    from ..keypoints.sweep import sweep

    s = plan.settings
    base = _part_config(plan, nose, folder, 0)
    steps = {}
    lrs = _numbers(s["lr_sweep"], float)
    if lrs:
        steps["lr_sweep"] = sweep(base, lrs, [base.model.convs], folder / "lr_sweep", quiet=quiet)
    convs = _numbers(s["conv_ablation"], int)
    if convs and (base.model.arch or "").startswith("kpnet"):
        steps["conv_ablation"] = sweep(base, [base.optim.lr], convs, folder / "conv_ablation", quiet=quiet)
    elif convs:
        plan.notes.append(f"conv ablation: not run, the nose network {base.model.arch} has no conv count (kpnet-small/kpnet-full do)")
    return steps


def _spread(finals: list[dict[str, Any]], key: str) -> Spread | None:
    """Mean over seeds of the validation error ``key``, with a 95% t interval across seeds (none for one seed; None: no
    seed measured it)."""
    from scipy import stats

    values = np.array([f[key] for f in finals if f.get(key) is not None], dtype=float)
    if not values.size:
        return None
    mean = float(values.mean())
    half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
    return Spread(mean, [mean - half, mean + half] if half is not None else [None, None], values.tolist())


def _loss_curves(part_folder: Path, seeds: int, path: Path, name: str) -> None:
    from ..report.figures import line_plot
    from ..training.run_folder import RunFolder

    series = {}
    for seed in range(seeds):
        rows = RunFolder(part_folder / f"seed{seed}").read_metrics()
        series[f"seed {seed}"] = [r["loss"] for r in rows if r["split"] == "valid"]
    line_plot(series, path, "epoch", "validation loss", f"{name}: validation loss per seed", integer_x=True)


def _comparisons(protocol: Protocol, results: dict[str, PartResult], steps: dict[str, SweepResult]) -> list[Comparison]:
    """Per part: NME and pixel error over seeds, each beside the mean shape (the baseline to beat); then the nose
    network's sweep and ablation, one seed per setting, beside what the write-up says of them."""
    anchors = "; ".join(f"{k} {v}" for k, v in protocol.literature["300w_nme_interocular"].items())
    rows = []
    for name, r in results.items():
        for key, unit, spread in r.errors():
            literature = f"300-W: {anchors} ({protocol.literature['source']})" if name == "68 points" and key == "val_nme" else None
            rows.append(Comparison(f"{name}: {unit} (mean of {len(r.seeds)} seeds)", "not published", spread.mean, spread.ci, literature))
            rows.append(Comparison(f"{name}: {unit} of the mean shape (the baseline to beat)", "—", r.baseline_mean_shape[key]))
    for step, says in (("lr_sweep", "lr {lr:g}"), ("conv_ablation", "{convs} convs")):
        for setting in steps[step].settings if step in steps else []:
            figure = f"nose, {says.format(lr=setting.lr, convs=setting.convs)}: error in pixels (1 seed)"
            rows.append(Comparison(figure, protocol.published.get(step, "not published"), setting.fields["val_px_err"]))
    return rows


def _sections(rep: Report, results: dict[str, PartResult], steps: dict[str, SweepResult], on_photos: Landmarks | None) -> None:
    for name, r in results.items():
        rep.heading(f"{name} ({r.data})")
        rep.figure(f"loss_{r.folder}.png", f"{name}: validation loss per epoch, one curve per seed")
        rep.figure(f"{r.folder}/seed0/figures/best_worst.png", "best and worst validation faces of seed 0: truth lime, prediction red")
        rep.figure(f"{r.folder}/filters/filters_layer1.png", "first-layer filters of seed 0")
        rep.links([(f"seed {k} training report", f"{r.folder}/seed{k}/report.html") for k in range(len(r.seeds))])
    for step, title in (("lr_sweep", "The nose network's learning-rate sweep"), ("conv_ablation", "The nose network with fewer convs")):
        if step in steps:
            rep.heading(title)
            rep.figure(f"{step}/figures/sweep.png", "validation loss per epoch, one line per setting (one seed each)")
            rep.links([("the sweep's report", f"{step}/report.html")])
    if on_photos is not None:
        rep.heading("The user's photos")
        rep.paragraph(f"{len(on_photos.faces)} faces found and landmarked.")
        rep.links([("landmarks on the photos", "photos/report.html")])


def _headline(result: KeypointsResult) -> list[str]:
    first = {name: r.errors()[0] for name, r in result.parts.items() if r.errors()}
    return [f"{name}: {unit} {e.mean:.4f} over {len(e.per_seed)} seed(s)" for name, (_, unit, e) in first.items()]


STUDY = Study(
    KEYPOINTS,
    keypoints_study,
    _headline,
    "Nose tip, 58 and 68 points: NME over seeds, per-seed loss curves, filters, your photos.",
    options=(
        Option("variant", str, "004", "The write-up whose protocol to run: 004 or 003."),
        Option("photos", str, None, "Your photos (folder:PATH): faces found, landmarks drawn."),
        Option("seeds", int, None, "Runs per part, one per seed (default: 3).", bounds=(1, 100)),
        Option("lr_sweep", str, None, "Learning rates the nose network also trains with, one seed each (default: the write-up's; none)."),
        Option("conv_ablation", str, None, "Conv counts of the nose network to compare, one seed each (default: the write-up's; none)."),
    ),
    scale=("arch", "size", "epochs", "batch"),
    seeded=False,
    example="300w:/data/300w --photos folder:my_photos",
    demo=dict(spec="synth:1200", arch="darknet64", size="64", epochs=5, batch=64, seeds=1, photos="folder:{photos}")
    | dict(lr_sweep="none", conv_ablation="none"),
    demo_note="left out for time, the seeds a part (3), the nose network's learning-rate sweep and its conv ablation (facelab study "
    "keypoints runs all three).",
    quick=dict(spec="synth:300", arch="darknet64", size="32", epochs=2, batch=64, seeds=1, photos="folder:{photos}")
    | dict(lr_sweep="none", conv_ablation="none"),
    figures=lambda s: [
        ("68_points/seed0/figures/best_worst.png", "68 points: best and worst validation faces"),
        ("photos/landmarks_photo.png", "landmarks on a photo, through the face detector"),
    ],
    webcam=("68_points/seed0", None),
)
