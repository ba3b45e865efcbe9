"""``facelab demo``: every study on the built-in synthetic faces, small and fast, and one index.html."""

from __future__ import annotations

import time
from pathlib import Path

from .data.spec import open_spec
from .files import prepare_output, recording_output
from .report.contact import contact_sheet
from .report.html import Report
from .studies.protocol import Comparison, Protocol, comparison_table

# Each study scaled to a few minutes on 2 cores (``quick``: seconds, for smoke tests); every change from the
# published protocol is listed in the study's report.
SCALE = {
    "inversion": dict(spec="synth:3000,ids=20", classes=[20], arch="darknet64", size="64", epochs=6, weights="none"),
    "youth": dict(spec="synth:8000", size="64", epochs=5),
    "bias": dict(spec=None, arch="darknet64", size="64", epochs=3, weights="none"),
    "keypoints": dict(spec="synth:3000", arch="darknet64", size="64", epochs=12, batch=64, seeds=1),
}
QUICK = {
    "inversion": dict(spec="synth:400,ids=10", classes=[10], arch="darknet64", size="32", epochs=2, weights="none"),
    "youth": dict(spec="synth:600", size="32", epochs=1),
    "bias": dict(spec="synth:600,correlate=Male:Pale_Skin=1.0", arch="darknet64", size="32", epochs=1, weights="none"),
    "keypoints": dict(spec="synth:300", arch="darknet64", size="32", epochs=2, batch=64, seeds=1),
}


def run_studies(out: Path, quick: bool) -> dict[str, tuple[Protocol, dict]]:
    """The four studies into OUT/<name>: {name: (protocol, summary)}."""
    from PIL import Image

    from .data.synth_export import synthetic_photo
    from .studies.bias import BIAS, bias_study
    from .studies.inversion import INVERSION, inversion_study
    from .studies.keypoints import KEYPOINTS, keypoints_study
    from .studies.youth import YOUTH, youth_study

    scale = QUICK if quick else SCALE
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo()).save(photos / "photo.jpg", quality=95)
    n_boot = 200 if quick else 1000
    return {
        "inversion": (INVERSION, inversion_study(out=out / "inversion", quiet=quick, n_boot=n_boot, **scale["inversion"])),
        "youth": (YOUTH, youth_study(out=out / "youth", quiet=quick, steps=10 if quick else 60, **scale["youth"])),
        "bias": (BIAS, bias_study(out=out / "bias", quiet=quick, n_boot=n_boot, ood=f"folder:{photos}", **scale["bias"])),
        "keypoints": (KEYPOINTS, keypoints_study(out=out / "keypoints", quiet=quick, photos=f"folder:{photos}", **scale["keypoints"])),
    }


def video(out: Path, runs: list[Path], target: str) -> dict:
    """The webcam view, headless: a short synthetic video annotated with faces, CAM and landmarks."""
    from .data.synth_export import synthetic_video
    from .web.webcam import webcam

    folder = out / "webcam"
    folder.mkdir(parents=True, exist_ok=True)
    synthetic_video(folder / "input.webm", frames=16)
    return webcam(runs, str(folder / "input.webm"), folder / "annotated.webm", target=target, quiet=True)


def demo(out: str | Path = "runs/demo", quick: bool = False) -> Path:
    """Run every study on synthetic faces at a small scale; returns the path of index.html.

    ``quick`` shrinks every step (for smoke tests); the full demo takes a few minutes on 2 cores.
    Run again into the same folder, it first removes what the last demo wrote there, and nothing else.
    """
    out = prepare_output(out, "demo", fresh=True)
    with recording_output(out):
        return _run_demo(out, quick)


STUDY_FIGURES = {
    "inversion": lambda s: [
        (f"inversion/inversion/figures/inversion_ids{r['classes']}.png", "upright vs inverted accuracy per epoch")
        for r in s["runs"]
        if not r["control"]
    ],
    "youth": lambda s: [
        ("youth/activations/activations_layer2.png", "activation maps of layer 2"),
        ("youth/edit_older/edit.png", "class-driven edit toward older: where the pixels changed"),
        ("youth/dream_square/dream_grid.png", "activation maximisation (sum of squares) of every channel of a layer"),
    ],
    "bias": lambda s: [("bias/evidence_unbalanced.png", "where the unbalanced run's evidence lies, per group")],
    "keypoints": lambda s: [
        ("keypoints/68_points/seed0/figures/best_worst.png", "68 points: best and worst validation faces"),
        ("keypoints/photos/landmarks_photo.png", "landmarks on a photo, through the face detector"),
    ],
}


def _run_demo(out: Path, quick: bool) -> Path:
    from .probes.synth_validity import validate_synth

    t0 = time.perf_counter()
    contact_sheet(open_spec("synth:64"), 16, 128, out / "synthetic_faces.png")
    studies = run_studies(out, quick)
    clip = video(out, [out / "youth" / "run", out / "keypoints" / "68_points" / "seed0"], target="Young")
    validity = validate_synth(
        out / "validate_synth", quiet=quick, attr_images=600 if quick else 6000, id_images=400 if quick else 3000, epochs=1 if quick else 4
    )
    elapsed = time.perf_counter() - t0
    rep = Report("facelab demo: the four studies on synthetic faces")
    rep.paragraph(
        f"Everything below ran on the built-in synthetic faces in {elapsed:.0f} s, each study scaled down from its published "
        "protocol (each study's report lists how). Published figures come from real data; the measured ones from synthetic faces."
    )
    rep.heading("The data").figure("synthetic_faces.png", "synthetic faces with their 68 landmarks, and one attribute's region mask each")
    for name, (protocol, summary) in studies.items():
        rep.heading(f"Study {name}")
        rep.paragraph(protocol.question)
        for line in summary["warnings"]:
            rep.paragraph(f"WARNING: {line}")
        rep.table(*comparison_table(protocol, summary["data"], [Comparison.from_dict(c) for c in summary["comparison"]]))
        for file, caption in STUDY_FIGURES[name](summary):
            if (out / file).exists():
                rep.figure(file, caption)
        rep.links([(f"the {name} study's report ({len(summary['departures'])} departures from the protocol)", f"{name}/report.html")])
    rep.heading("Webcam view (headless, on a synthetic video)")
    rep.paragraph(
        f"{clip['frames']} frames annotated with faces, the Young CAM and 68 landmarks at {clip['frames_per_s']:.1f} frames/s. "
        f"Live in a browser: facelab serve {out / 'youth' / 'run'} {out / 'keypoints' / '68_points' / 'seed0'}"
    )
    rep.video("webcam/annotated.webm", "the annotated video (WebM, VP8)")
    rep.heading("Are the synthetic faces valid?")
    rep.table(
        ["check", "value"],
        [
            ["mask containment (worst attribute)", validity["mask_containment"]],
            *[[f"accuracy {k}", v] for k, v in validity["acc"].items()],
            ["Smiling accuracy, mouth region greyed", validity["intervention"]["mask"]],
            ["Smiling accuracy, equal area elsewhere greyed", validity["intervention"]["elsewhere"]],
            ["faces/s rendered at 64 px", validity["faces_per_s"]],
        ],
    )
    rep.links([("validity report", "validate_synth/report.html")])
    return rep.write(out / "index.html")
