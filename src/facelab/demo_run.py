"""``facelab demo``: every study on the built-in synthetic faces, small and fast, and one index.html."""

from __future__ import annotations

import time
from pathlib import Path

from .data.spec import open_spec
from .files import prepare_output, recording_output
from .hardware import Runtime
from .report.contact import contact_sheet
from .report.html import Report
from .studies.protocol import Comparison, comparison_table
from .studies.registry import Study, all_studies


def run_studies(out: Path, quick: bool, runtime: Runtime | None = None) -> list[tuple[Study, dict]]:
    """Every registered study into OUT/<name>, at the scale it declares for the demo (``quick``: seconds, for smoke
    tests; every change from the published protocol is listed in the study's report): [(study, summary)]."""
    from PIL import Image

    from .data.synth_export import synthetic_photo

    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo()).save(photos / "photo.jpg", quality=95)
    done = []
    for study in all_studies():
        settings = {k: v.format(photos=photos) if isinstance(v, str) else v for k, v in (study.quick if quick else study.demo).items()}
        done.append((study, study.run(out=out / study.name, quiet=quick, runtime=runtime, **settings)))
    return done


def video(out: Path, runs: list[Path], target: str, runtime: Runtime | None = None) -> dict:
    """The webcam view, headless: a short synthetic video annotated with faces, CAM and landmarks."""
    from .data.synth_export import synthetic_video
    from .web.webcam import webcam

    folder = out / "webcam"
    folder.mkdir(parents=True, exist_ok=True)
    synthetic_video(folder / "input.webm", frames=16)
    return webcam(runs, str(folder / "input.webm"), folder / "annotated.webm", target=target, quiet=True, runtime=runtime)


def attribution_benchmark(out: Path, quick: bool, runtime: Runtime | None = None) -> dict:
    """``facelab cam-score`` of a Smiling network on synthetic faces that move (the benchmark's default), so that CAM
    is set against the best fixed map. At 128 px: darknet64's last map is 4x4 there, 2x2 at 64 px, too coarse to point."""
    from .probes.attribution_scores import cam_score
    from .training.config import TrainConfig
    from .training.engine import train

    run = out / "where" / "smiling_128px"
    cfg = TrainConfig(spec="synth:600" if quick else "synth:3000", attrs=["Smiling"], size="128", epochs=1 if quick else 5, out=str(run))
    train(cfg, quiet=quick, runtime=runtime)
    folder, steps = out / "where" / "cam_score", 4 if quick else 16
    return cam_score(run, "synth:1000", methods=["cam", "gradcam"], steps=steps, out=folder, quiet=quick, runtime=runtime)


def demo(out: str | Path = "runs/demo", quick: bool = False, runtime: Runtime | None = None) -> Path:
    """Run every study on synthetic faces at a small scale; returns the path of index.html.

    ``quick`` shrinks every step (for smoke tests); the full demo takes a few minutes on 2 cores.
    Run again into the same folder, it first removes what the last demo wrote there, and nothing else.
    """
    out = prepare_output(out, "demo", fresh=True)
    with recording_output(out):
        return _run_demo(out, quick, runtime)


def _run_demo(out: Path, quick: bool, runtime: Runtime | None) -> Path:
    from .probes.synth_validity import validate_synth

    t0 = time.perf_counter()
    contact_sheet(open_spec("synth:64"), 16, 128, out / "synthetic_faces.png")
    studies = run_studies(out, quick, runtime)
    watched = [(study.name, study.webcam) for study, _ in studies if study.webcam]
    webcam_runs = [out / name / folder for name, (folder, _) in watched]
    cam_target = next(target for _, (_, target) in watched if target)
    clip = video(out, webcam_runs, target=cam_target, runtime=runtime)
    scores = attribution_benchmark(out, quick, runtime)
    validity = validate_synth(
        out / "validate_synth",
        quiet=quick,
        attr_images=600 if quick else 6000,
        id_images=400 if quick else 3000,
        epochs=1 if quick else 4,
        runtime=runtime,
    )
    elapsed = time.perf_counter() - t0
    rep = Report("facelab demo: the four studies on synthetic faces")
    rep.paragraph(
        f"Everything below ran on the built-in synthetic faces in {elapsed:.0f} s, each study scaled down from its published "
        "protocol (each study's report lists how). Published figures come from real data; the measured ones from synthetic faces."
    )
    rep.heading("The data").figure("synthetic_faces.png", "synthetic faces with their 68 landmarks, and one attribute's region mask each")
    for study, summary in studies:
        name, protocol = study.name, study.protocol
        rep.heading(f"Study {name}")
        rep.paragraph(protocol.question)
        for line in summary["warnings"]:
            rep.paragraph(f"WARNING: {line}")
        rep.table(*comparison_table(protocol, summary["data"], [Comparison.from_dict(c) for c in summary["comparison"]]))
        for file, caption in study.figures(summary):
            if (out / name / file).exists():
                rep.figure(f"{name}/{file}", caption)
        rep.links([(f"the {name} study's report ({len(summary['departures'])} departures from the protocol)", f"{name}/report.html")])
    rep.heading("Webcam view (headless, on a synthetic video)")
    rep.paragraph(
        f"{clip['frames']} frames annotated with faces, the {cam_target} CAM and landmarks at {clip['frames_per_s']:.1f} frames/s. "
        f"Live in a browser: facelab serve {' '.join(map(str, webcam_runs))}"
    )
    rep.video("webcam/annotated.webm", "the annotated video (WebM, VP8)")
    rep.heading("Where it looks, scored: CAM against a fixed guess")
    rep.paragraph(
        f"A Smiling network at 128 px, scored on {scores['n_region']} smiling test faces of {scores['data']} (moved, scaled and "
        "turned): does the peak of each map fall on the mouth more often than the peak of the mean mouth region, one map for "
        "every face? Pointing game with Wilson's 95% interval, tolerance "
        f"{scores['tolerance_px']} px."
    )
    for line in scores["warnings"]:
        rep.paragraph(f"WARNING: {line}")
    rep.table(*benchmark_rows(scores))
    rep.figure("where/cam_score/examples.png", "test faces with the mouth outlined, and each method's map")
    rep.links([("the cam-score report", "where/cam_score/report.html")])
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


def benchmark_rows(scores: dict) -> tuple[list[str], list[list]]:
    """The demo's pointing-game table: each method, its randomised twin and the two baselines, with n and interval."""
    named = {m: m for m in scores["beats_mean_mask"]} | {"mean_mask": "mean mask (baseline)", "random": "random map (baseline)"}
    named |= {f"{m}_randomized": f"{m}, last layer randomised" for m in scores["beats_mean_mask"]}
    rows = []
    for key, label in named.items():
        r = scores["methods"][key]
        lo, hi = r["pointing_game_ci"]
        rows.append([label, f"{r['pointing_game']:.2f} [{lo:.2f}, {hi:.2f}]", scores["n_region"]])
    return ["map", "pointing game [95% interval]", "n"], rows
