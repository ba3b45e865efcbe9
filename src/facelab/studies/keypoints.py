"""``facelab study keypoints``: how well do small networks place facial landmarks (the nose tip, IMM's 58
points, iBUG 300-W's 68), how much do runs differ from seed to seed, and how do they do on the user's photos?"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.photos import photo_files
from ..data.spec import open_spec
from ..hardware import Runtime
from ..report.html import Report
from .protocol import FACELAB_SOURCE, Comparison, Plan, Protocol, study_folder, trained, write_study
from .registry import Option, Study

PARTS = ("nose", "58 points", "68 points")
KEYPOINTS = Protocol(
    name="keypoints",
    question=(
        "How well do small networks place facial landmarks: the nose tip alone, the IMM layout's 58 points, iBUG "
        "300-W's 68? How much does a run vary from seed to seed, what do the first-layer filters look like, and how "
        "do the networks do on photos of the user's own?"
    ),
    data="IMM face database (nose tip, 58 points) and iBUG 300-W (68 points)",
    default_spec="synth:3000",
    settings={
        "arch": {"nose": "kpnet-small", "58 points": "kpnet-full", "68 points": "resnet18"},
        "size": {"nose": "80x60", "58 points": "240x180", "68 points": "128"},
        "channels": 1,
        "augment": True,
        "epochs": 20,
        "batch": 32,
        "opt": "adam",
        "lr": 3e-3,
        "seeds": 3,
    },
    sources={
        "size": "the study for the nose tip and 58 points; facelab's choice for 68 points",
        "channels": "the study for 68 points (one channel); the same for the others by facelab",
        "epochs": FACELAB_SOURCE,
        "batch": FACELAB_SOURCE,
        "opt": FACELAB_SOURCE,
        "lr": FACELAB_SOURCE,
        "seeds": FACELAB_SOURCE,
    },
    published={
        "per_seed_loss_curves": "the study shows validation loss per epoch for each seed (curves, no single figure)",
    },
    literature={
        "300w_nme_interocular": {
            "ResNet regression": "~0.044",
            "Simple Baselines / HRNetV2 heatmaps": "0.033-0.039",
            "dlib ERT": "0.05-0.06",
        },
        "source": "300-W full test set, NME by inter-ocular distance: ResNet regression and heatmap networks as reported "
        "by Xiao et al. 2018 (Simple Baselines) and Wang et al. 2020 (HRNetV2); dlib's ERT (Kazemi and Sullivan 2014) "
        "as commonly benchmarked",
    },
)


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
    have = {68: "68 points", 58: "58 points"}.get(fs.n_landmarks)
    parts = [Part("nose", spec, "nose")] + ([Part(have, spec, "all")] if have else [])
    missing = [p for p in PARTS[1:] if p != have]
    return parts, [f"{p}: not run, {spec} has {fs.n_landmarks}-point landmarks (run the study on a set with {p})" for p in missing]


def _value(setting, part: str):
    return setting[part] if isinstance(setting, dict) else setting


def keypoints_study(
    spec: str | None = None,
    *,
    photos: str | None = None,
    out: str | Path | None = None,
    quiet: bool = False,
    runtime: Runtime | None = None,
    **options,
) -> dict:
    """Each part trained once per seed; per-seed loss curves, NME with its spread over seeds, first-layer filters,
    and the landmarks of ``photos`` (folder:PATH) from the richest part. Writes OUT/summary.json and OUT/report.html."""
    from ..keypoints.photos import landmarks
    from ..probes.activations import filters
    from ..training.config import TrainConfig

    plan = Plan.of(KEYPOINTS, spec, options, runtime)
    s = plan.settings
    parts, skipped = parts_for(plan.spec)
    plan.notes += skipped
    if photos:
        photo_files(photos)
    folder = study_folder(out, "keypoints")
    results = {}
    for part in parts:
        slug = part.name.replace(" ", "_")
        crop = open_spec(part.spec).default_crop  # the source's framing, as the study's courses crop
        seeds = []
        for seed in range(int(s["seeds"])):
            cfg = TrainConfig(
                spec=part.spec,
                out=str(folder / slug / f"seed{seed}"),
                task="keypoints",
                points=part.points,
                arch=_value(s["arch"], part.name),
                size=_value(s["size"], part.name),
                channels=int(s["channels"]),
                augment=bool(s["augment"]),
                epochs=int(s["epochs"]),
                batch=int(s["batch"]),
                opt=s["opt"],
                lr=float(s["lr"]),
                crop=crop,
                weights="none",
                seed=seed,
                **plan.runtime.train_settings,
            )
            seeds.append(trained(cfg, quiet)["final"])
        first = folder / slug / "seed0"
        _loss_curves(folder / slug, int(s["seeds"]), folder / f"loss_{slug}.png", part.name)
        filters(first, out=folder / slug / "filters", runtime=plan.runtime)
        results[part.name] = {"folder": slug, "data": part.spec, "seeds": seeds, **_spread(seeds)}
    on_photos = None
    if photos:
        on_photos = landmarks(folder / parts[-1].name.replace(" ", "_") / "seed0", photos, out=folder / "photos", runtime=plan.runtime)
    else:
        plan.notes.append("the user's photos: none given (--photos folder:PATH)")
    summary = {"parts": results, "photos": None if on_photos is None else {"faces": len(on_photos["faces"]), "folder": "photos"}}
    return write_study(folder, plan, summary, _comparisons(results), lambda rep: _sections(rep, results, on_photos))


def _spread(finals: list[dict]) -> dict:
    """Mean over seeds of the validation errors, with a 95% t interval across seeds (none for one seed)."""
    from scipy import stats

    out = {}
    for key in ("val_nme", "val_px_err"):
        values = np.array([f[key] for f in finals if f.get(key) is not None], dtype=float)
        if not values.size:
            continue
        mean = float(values.mean())
        half = float(stats.t.ppf(0.975, len(values) - 1) * values.std(ddof=1) / np.sqrt(len(values))) if len(values) > 1 else None
        out[key] = {"mean": mean, "ci": [mean - half, mean + half] if half is not None else [None, None], "per_seed": values.tolist()}
    return out


def _loss_curves(part_folder: Path, seeds: int, path: Path, name: str) -> None:
    from ..report.figures import line_plot
    from ..training.run_folder import RunFolder

    series = {}
    for seed in range(seeds):
        rows = RunFolder(part_folder / f"seed{seed}").read_metrics()
        series[f"seed {seed}"] = [r["loss"] for r in rows if r["split"] == "valid"]
    line_plot(series, path, "epoch", "validation loss", f"{name}: validation loss per seed", integer_x=True)


def _comparisons(results: dict) -> list[Comparison]:
    anchors = "; ".join(f"{k} {v}" for k, v in KEYPOINTS.literature["300w_nme_interocular"].items())
    rows = []
    for name, r in results.items():
        seeds = len(r["seeds"])
        if "val_nme" in r:
            literature = f"300-W: {anchors} ({KEYPOINTS.literature['source']})" if name == "68 points" else None
            figure = f"{name}: NME, inter-ocular (mean of {seeds} seeds)"
            rows.append(Comparison(figure, "not published", r["val_nme"]["mean"], tuple(r["val_nme"]["ci"]), literature))
        rows.append(
            Comparison(
                f"{name}: error in pixels (mean of {seeds} seeds)", "not published", r["val_px_err"]["mean"], tuple(r["val_px_err"]["ci"])
            )
        )
    return rows


def _sections(rep: Report, results: dict, on_photos: dict | None) -> None:
    for name, r in results.items():
        rep.heading(f"{name} ({r['data']})")
        rep.figure(f"loss_{r['folder']}.png", f"{name}: validation loss per epoch, one curve per seed")
        rep.figure(f"{r['folder']}/seed0/figures/best_worst.png", "best and worst validation faces of seed 0: truth lime, prediction red")
        rep.figure(f"{r['folder']}/filters/filters_layer1.png", "first-layer filters of seed 0")
        rep.links([(f"seed {k} training report", f"{r['folder']}/seed{k}/report.html") for k in range(len(r["seeds"]))])
    if on_photos is not None:
        rep.heading("The user's photos")
        rep.paragraph(f"{len(on_photos['faces'])} faces found and landmarked.")
        rep.links([("landmarks on the photos", "photos/report.html")])


def _headline(summary: dict) -> list[str]:
    errors = {name: ("NME", r["val_nme"]) if "val_nme" in r else ("px error", r["val_px_err"]) for name, r in summary["parts"].items()}
    return [f"{name}: {unit} {e['mean']:.4f} over {len(e['per_seed'])} seed(s)" for name, (unit, e) in errors.items()]


STUDY = Study(
    KEYPOINTS,
    keypoints_study,
    _headline,
    "Nose tip, 58 and 68 points: NME over seeds, per-seed loss curves, filters, your photos.",
    options=(
        Option("photos", str, None, "Your photos (folder:PATH): faces found, landmarks drawn."),
        Option("seeds", int, None, "Runs per part, one per seed (default: 3)."),
    ),
    scale=("arch", "size", "epochs", "batch"),
    seeded=False,
    demo=dict(spec="synth:3000", arch="darknet64", size="64", epochs=12, batch=64, seeds=1, photos="folder:{photos}"),
    quick=dict(spec="synth:300", arch="darknet64", size="32", epochs=2, batch=64, seeds=1, photos="folder:{photos}"),
    figures=lambda s: [
        ("68_points/seed0/figures/best_worst.png", "68 points: best and worst validation faces"),
        ("photos/landmarks_photo.png", "landmarks on a photo, through the face detector"),
    ],
    webcam=("68_points/seed0", None),
)
