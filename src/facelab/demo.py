"""``facelab demo``: the built-in synthetic faces through every stage, one index.html."""

from __future__ import annotations

import time
from pathlib import Path

from .data.spec import open_spec
from .files import prepare_output, recording_output
from .report.contact import contact_sheet
from .report.html import Report
from .train.engine import TrainConfig, train


def look_inside(run: Path, quiet: bool) -> dict:
    """Every probe of what the network learned, on one non-smiling synthetic face."""
    from .probes.activations import activations, filters, rgb
    from .probes.dream import dream, edit

    fs = open_spec("synth:64")
    face = next(i for i in range(64) if fs.attributes[i, fs.attr_names.index("Smiling")] == 0)
    image = f"synth:64#{face}"
    activations(run, image, ["1", "2", "3"])
    rgb(run, image, "2", [0, 1, 2])
    filters(run)
    return {"dream": dream(run, image, "3", "5", "square", steps=60, quiet=quiet), "edit": edit(run, image, "Smiling", to=1, quiet=quiet)}


def where_and_whom(out: Path, attr_run: Path, quick: bool) -> dict:
    """CAM scores of the attribute run, and a bias study: Male trained with and without a spurious background."""
    from .probes.attribution_scores import cam_score
    from .probes.audit import audit, compare
    from .probes.explain import cam

    n, epochs = (600, 1) if quick else (3000, 3)
    scores = cam_score(attr_run, target="Smiling", n=64 if quick else 200, steps=4 if quick else 16, quiet=quick)
    cam(attr_run, f"synth:{n}" if quick else "synth:8000", method="cam", target="Smiling", limit=64 if quick else 256, quiet=quick)
    runs = {}
    for name, spec in (("unbiased", f"synth:{n}"), ("spurious", f"synth:{n},spurious=Male:background=0.95")):
        train(TrainConfig(spec=spec, out=str(out / "bias" / name), attrs=["Male"], epochs=epochs), quiet=quick)
        runs[name] = out / "bias" / name
    audits = {k: audit(r, by=["Male", "background"], n_boot=200 if quick else 1000) for k, r in runs.items()}
    diff = compare(runs["unbiased"], runs["spurious"], by=["Male", "background"], n_boot=200 if quick else 1000)
    maps = {
        k: cam_score(r, methods=["gradcam"], layer="4", n=64 if quick else 200, steps=2, quiet=quick)["methods"]["gradcam"]
        for k, r in runs.items()
    }
    return {"scores": scores, "audits": audits, "compare": diff, "maps": maps}


def keypoints(out: Path, quick: bool) -> dict:
    """68 landmarks and the nose tip on synthetic faces, then landmarks on a synthetic 'photo' through the face detector."""
    from PIL import Image

    from .data.synth_export import synthetic_photo
    from .keypoints.photos import landmarks

    n, epochs = (400, 2) if quick else (3000, 12)
    common = dict(task="keypoints", arch="darknet64", opt="adam", lr=3e-3, batch=64, channels=1, epochs=epochs)
    full = train(TrainConfig(spec=f"synth:{n}", out=str(out / "keypoints" / "all"), **common), quiet=quick)
    nose = train(TrainConfig(spec=f"synth:{n}", out=str(out / "keypoints" / "nose"), points="nose", **common), quiet=quick)
    photos = out / "keypoints" / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo()).save(photos / "photo.jpg", quality=95)
    found = landmarks(out / "keypoints" / "all", f"folder:{photos}", out=out / "keypoints" / "on_photos")
    return {"all": full, "nose": nose, "photos": found}


def video(out: Path, runs: list[Path]) -> dict:
    """The webcam view, headless: a short synthetic video annotated with faces, CAM and landmarks."""
    from .data.synth_export import synthetic_video
    from .web.webcam import webcam

    folder = out / "webcam"
    folder.mkdir(parents=True, exist_ok=True)
    synthetic_video(folder / "input.webm", frames=16)
    return webcam(runs, str(folder / "input.webm"), folder / "annotated.webm", target="Smiling", quiet=True)


def demo(out: str | Path = "runs/demo", quick: bool = False) -> Path:
    """Train and analyse small models on synthetic faces; returns the path of index.html.

    ``quick`` shrinks every step (for smoke tests); the full demo takes a few minutes on 2 cores.
    Run again into the same folder, it first removes what the last demo wrote there, and nothing else.
    """
    out = prepare_output(out, "demo", fresh=True)
    with recording_output(out):
        return _run_demo(out, quick)


def _run_demo(out: Path, quick: bool) -> Path:
    from .probes.inversion import emergence_in_words, inversion
    from .probes.synth_validity import validate_synth

    t0 = time.perf_counter()
    n, epochs = (600, 1) if quick else (8000, 5)
    contact_sheet(open_spec("synth:64"), 16, 128, out / "synthetic_faces.png")
    attrs = ["Smiling", "Eyeglasses", "Male", "Young"]
    summary = train(TrainConfig(spec=f"synth:{n}", out=str(out / "attributes"), attrs=attrs, epochs=epochs), quiet=quick)
    inside = look_inside(out / "attributes", quiet=quick)
    where = where_and_whom(out, out / "attributes", quick)
    kp = keypoints(out, quick)
    clip = video(out, [out / "attributes", out / "keypoints" / "all"])
    validity = validate_synth(
        out / "validate_synth", quiet=quick, attr_images=600 if quick else 6000, id_images=400 if quick else 3000, epochs=1 if quick else 4
    )
    inv = inversion(
        "synth:400,ids=10" if quick else "synth:3000,ids=20",
        classes=[10 if quick else 20],
        epochs=2 if quick else 8,
        size="32" if quick else "64",
        out=out / "inversion",
        quiet=quick,
    )["runs"][0]
    elapsed = time.perf_counter() - t0
    rep = Report("facelab demo")
    rep.paragraph(f"Everything below ran on the built-in synthetic faces in {elapsed:.0f} s.")
    rep.heading("The data").figure("synthetic_faces.png", "synthetic faces with their 68 landmarks, and one attribute's region mask each")
    rep.heading("An attribute classifier (darknet64, 64 px)")
    rep.table(["attribute", "final validation accuracy"], [[a, summary["final"]["val_acc_per_attr"][a]] for a in attrs])
    rep.links([("training report", "attributes/report.html")])
    rep.heading("Looking inside the attribute classifier")
    rep.table(
        ["probe", "value"],
        [
            [
                "dream: channel objective before -> after",
                f"{inside['dream']['objective_initial']:.1f} -> {inside['dream']['objective_final']:.1f}",
            ],
            [
                "edit toward Smiling: P(Smiling) before -> after",
                f"{inside['edit']['prob_before']:.3f} -> {inside['edit']['prob_after']:.3f}",
            ],
            [
                "edit: mean |change| inside / outside the mouth region",
                f"{inside['edit']['change_inside_mask']:.4f} / {inside['edit']['change_outside_mask']:.4f}",
            ],
        ],
    )
    for name, caption in (
        ("activations/activations_layer2.png", "activation maps of layer 2"),
        ("edit/edit.png", "class-driven edit toward Smiling: where the pixels changed"),
        ("dream/activation_before_after.png", "activation maximisation of one layer-3 channel"),
        ("filters/filters_layer1.png", "first-layer filters"),
    ):
        rep.figure(f"attributes/{name}", caption)
    rep.links([(f"{p} report", f"attributes/{p}/report.html") for p in ("activations", "rgb", "dream", "edit", "filters")])
    rep.heading("Where the Smiling classifier looks (CAM family, scored against the true mouth region)")
    m = where["scores"]["methods"]
    rep.table(
        ["map", "pointing game", "energy in mouth region", "deletion AUC", "insertion AUC"],
        [[k, v["pointing_game"], v["energy_in_mask"], v["deletion_auc"], v["insertion_auc"]] for k, v in m.items() if v],
    )
    rep.figure("attributes/cam_score/examples.png", "test faces with the mouth region outlined and each method's map")
    rep.links(
        [("cam-score report", "attributes/cam_score/report.html"), ("CAM galleries by (true, predicted)", "attributes/cam/report.html")]
    )
    rep.heading("Whom it fails: Male trained with a spurious background (95% of training faces)")
    rows = []
    for name, a in where["audits"].items():
        for g in a["groups"]:
            if len(g["group"]) == 2:
                lo, hi = g["accuracy_ci"]
                rows.append(
                    [
                        name,
                        f"Male={g['group']['Male']}, background={g['group']['background']}",
                        g["n"],
                        f"{g['accuracy']:.3f} [{lo:.3f}, {hi:.3f}]",
                    ]
                )
    rep.table(["training", "group (unbiased test split)", "n", "accuracy [95% CI]"], rows)
    rep.table(
        ["training", "Grad-CAM (layer 4) energy on the background"], [[k, v["energy_on_background"]] for k, v in where["maps"].items()]
    )
    rep.figure("bias/spurious/compare/difference_by_group.png", "accuracy of the biased run minus the unbiased run, per group")
    rep.links(
        [
            ("audit, unbiased run", "bias/unbiased/audit/report.html"),
            ("audit, spurious run", "bias/spurious/audit/report.html"),
            ("comparison", "bias/spurious/compare/report.html"),
        ]
    )
    rep.heading("Facial keypoints (darknet64, 64 px grey; heatmap head for 68 points, regression for the nose tip)")
    rep.table(
        ["model", "head", "validation px error", "NME (inter-ocular)", "mean-shape baseline px error", "baseline NME"],
        [
            [
                name,
                r["head"],
                r["final"]["val_px_err"],
                r["final"]["val_nme"] if r["final"]["val_nme"] is not None else "-",
                r["baseline_mean_shape"]["val_px_err"],
                r["baseline_mean_shape"]["val_nme"] if r["baseline_mean_shape"]["val_nme"] is not None else "-",
            ]
            for name, r in (("68 points", kp["all"]), ("nose tip", kp["nose"]))
        ],
    )
    rep.figure("keypoints/all/figures/best_worst.png", "best and worst validation faces: truth lime, prediction red")
    rep.figure("keypoints/all/figures/heatmaps.png", "per-point heatmaps of a typical face: sharp where the network is sure")
    if kp["photos"]["faces"]:
        rep.figure(
            "keypoints/on_photos/landmarks_photo.png", "a face found by the Haar cascade in a larger photo, with predicted landmarks"
        )
    rep.links(
        [
            ("68-point run", "keypoints/all/report.html"),
            ("nose-tip run", "keypoints/nose/report.html"),
            ("landmarks on photos", "keypoints/on_photos/report.html"),
        ]
    )
    rep.heading("Webcam view (headless, on a synthetic video)")
    rep.paragraph(
        f"{clip['frames']} frames annotated with faces, the Smiling CAM and 68 landmarks at {clip['frames_per_s']:.1f} frames/s. "
        "Live in a browser: facelab serve " + str(out / "attributes") + " " + str(out / "keypoints" / "all")
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
    rep.links(
        [
            ("validity report", "validate_synth/report.html"),
            ("Smiling/Eyeglasses run", "validate_synth/attr_run/report.html"),
            ("20-identity run", "validate_synth/identity_run/report.html"),
        ]
    )
    rep.heading("The face inversion effect (identity, 5% of training faces upside down)")
    rep.table(
        ["", "value"],
        [
            ["final upright accuracy", inv["upright_acc"][-1]],
            ["final inverted accuracy", inv["inverted_acc"][-1]],
            ["gap (95% CI)", f"{inv['final_gap']:.3f} [{inv['final_gap_ci'][0]:.3f}, {inv['final_gap_ci'][1]:.3f}]"],
            ["emergence epoch", emergence_in_words(inv["emergence_epoch"])],
            ["chance", inv["chance"]],
        ],
    )
    rep.figure(f"inversion/figures/inversion_ids{inv['classes']}.png", "upright vs inverted accuracy per epoch")
    rep.links([("inversion report", "inversion/report.html")])
    return rep.write(out / "index.html")
