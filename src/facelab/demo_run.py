"""``facelab demo``: every study on the built-in synthetic faces, small and fast, and one index.html."""

from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .data.spec import open_spec
from .files import prepare_output, recording_output
from .hardware import Runtime
from .hardware import runtime as resolved_runtime
from .progress import say
from .report.contact import contact_sheet
from .report.html import Report
from .studies.protocol import StudyResult, comparison_table
from .studies.registry import Study, all_studies

if TYPE_CHECKING:
    from .probes.attribution_scores import CamScore
    from .web.webcam import AnnotatedVideo


def run_studies(
    out: Path, quick: bool, runtime: Runtime | None = None, clock: "Stopwatch | None" = None
) -> list[tuple[Study, StudyResult]]:
    """Every registered study into OUT/<name>, at the scale it declares for the demo (``quick``: seconds, for smoke
    tests; every change from the published protocol is listed in the study's report): [(study, summary)]."""
    from PIL import Image

    from .data.synth_export import synthetic_photo

    clock = clock or Stopwatch()
    photos = out / "photos"
    photos.mkdir(parents=True, exist_ok=True)
    Image.fromarray(synthetic_photo()).save(photos / "photo.jpg", quality=95)
    done = []
    for study in all_studies():
        settings = {k: v.format(photos=photos) if isinstance(v, str) else v for k, v in (study.quick if quick else study.demo).items()}
        with clock.section(f"study {study.name}"):
            done.append((study, study.run(out=out / study.name, quiet=quick, runtime=runtime, **settings)))
    return done


class Stopwatch:
    """Seconds spent in each named section of the demo, for the index (which section costs what, on this machine)."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def section(self, name: str):
        t = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = time.perf_counter() - t


def video(out: Path, runs: list[Path], target: str, runtime: Runtime | None = None) -> AnnotatedVideo:
    """The webcam view, headless: a short synthetic video annotated with faces, CAM and landmarks."""
    from .data.synth_export import synthetic_video
    from .web.webcam import webcam

    folder = out / "webcam"
    folder.mkdir(parents=True, exist_ok=True)
    synthetic_video(folder / "input.webm", frames=16)
    return webcam(runs, str(folder / "input.webm"), folder / "annotated.webm", target=target, quiet=True, runtime=runtime)


# The Smiling network the attribution benchmark scores: darknet64's last map is 4x4 at 128 px (2x2 at 64 px, too coarse
# to point at a mouth). Its scale, measured: docs/measured.md ("the demo's scale").
ATTRIBUTION_RUN: dict[str, Any] = {"spec": "synth:1000", "size": "128", "epochs": 4, "batch": 64}
ATTRIBUTION_QUICK: dict[str, Any] = {"spec": "synth:600", "size": "128", "epochs": 1, "batch": 64}


def attribution_benchmark(out: Path, quick: bool, runtime: Runtime | None = None) -> CamScore:
    """``facelab cam-score`` of a Smiling network on synthetic faces that move (the benchmark's default), so that CAM
    is set against the best fixed map."""
    from .probes.attribution_scores import cam_score
    from .training.config import TrainConfig
    from .training.engine import train

    run = out / "where" / "smiling_128px"
    settings = ATTRIBUTION_QUICK if quick else ATTRIBUTION_RUN
    rt = runtime or resolved_runtime()
    train(TrainConfig(attrs=["Smiling"], out=str(run), **settings), quiet=quick, runtime=rt)
    folder, steps = out / "where" / "cam_score", 4 if quick else 8  # deletion steps: the index shows the pointing game
    return cam_score(run, "synth:1000", methods=["cam", "gradcam"], steps=steps, out=folder, quiet=quick, runtime=rt)


# The whole demo costs about this many darknet64@64 training steps (batch 128) of the machine it runs on: its measured
# wall time over one settled step's, on a 2-core AVX2-only EPYC in fp32 (docs/measured.md, "the demo's scale").
DEMO_COST_IN_STEPS = 1600


def expected_seconds(runtime: Runtime) -> float:
    """The demo's expected wall time here, from a few timed training steps of this machine (about 3 s)."""
    from .bench import WARMUP, ComputeStep

    step = ComputeStep("darknet64", 64, 128, runtime)
    step.warm(most=3 * WARMUP)
    return DEMO_COST_IN_STEPS * float(np.median([step() for _ in range(3)]))


def demo(out: str | Path = "runs/demo", quick: bool = False, runtime: Runtime | None = None) -> Path:
    """Run every study on synthetic faces at a small scale; returns the path of index.html.

    ``quick`` shrinks every step (for smoke tests); the full demo takes about four minutes on a 2-core laptop CPU.
    Run again into the same folder, it first removes what the last demo wrote there, and nothing else.
    """
    out = prepare_output(out, "demo", fresh=True)
    runtime = runtime or resolved_runtime()
    if not quick:
        say(f"the demo takes about {expected_seconds(runtime) / 60:.0f} min on this machine (timed from a few training steps here)")
    with recording_output(out):
        return _run_demo(out, quick, runtime)


def _run_demo(out: Path, quick: bool, runtime: Runtime) -> Path:
    clock = Stopwatch()
    t0 = time.perf_counter()
    with clock.section("synthetic faces (contact sheet)"):
        contact_sheet(open_spec("synth:64"), 16, 128, out / "synthetic_faces.png")
    studies = run_studies(out, quick, runtime, clock)
    watched = [(study.name, study.webcam) for study, _ in studies if study.webcam]
    webcam_runs = [out / name / folder for name, (folder, _) in watched]
    cam_target = next(target for _, (_, target) in watched if target)
    with clock.section("webcam video"):
        clip = video(out, webcam_runs, target=cam_target, runtime=runtime)
    with clock.section("where it looks, scored"):
        scores = attribution_benchmark(out, quick, runtime)
    elapsed = time.perf_counter() - t0
    machine = runtime.describe()
    gpu = f", GPU {machine['gpu']}" if machine["gpu"] else ""
    rep = Report("facelab demo: the four studies on synthetic faces")
    rep.paragraph(
        f"Everything below ran on the built-in synthetic faces in {elapsed:.0f} s on this machine (CPU capability "
        f"{machine['cpu_capability']}, {machine['cores']} cores, {machine['precision']}{gpu}), "
        "each study scaled down from its published protocol (each study's report lists how). Published figures come from "
        "real data; the measured ones from synthetic faces."
    )
    rep.table(["section", "seconds"], [[name, round(sec, 1)] for name, sec in clock.seconds.items()] + [["whole demo", round(elapsed, 1)]])
    rep.heading("The data").figure("synthetic_faces.png", "synthetic faces with their 68 landmarks, and one attribute's region mask each")
    for study, summary in studies:
        name, protocol = study.name, study.protocol
        rep.heading(f"Study {name}")
        rep.paragraph(protocol.question)
        for line in summary.warnings:
            rep.paragraph(f"WARNING: {line}")
        rep.table(*comparison_table(protocol, summary.data, summary.comparison))
        for file, caption in study.figures(summary):
            if (out / name / file).exists():
                rep.figure(f"{name}/{file}", caption)
        if study.demo_note:
            rep.paragraph(f"The demo's scale: {study.demo_note}")
        rep.links([(f"the {name} study's report ({len(summary.departures)} departures from the protocol)", f"{name}/report.html")])
    rep.heading("Webcam view (headless, on a synthetic video)")
    rep.paragraph(
        f"{clip.frames} frames annotated with faces, the {cam_target} CAM and landmarks at {clip.frames_per_s:.1f} frames/s. "
        f"Live in a browser: facelab serve {' '.join(map(str, webcam_runs))}"
    )
    rep.video("webcam/annotated.webm", "the annotated video (WebM, VP8)")
    rep.heading("Where it looks, scored: CAM against a fixed guess")
    rep.paragraph(
        f"A Smiling network at 128 px, scored on {scores.n_region} smiling test faces of {scores.data} (moved, scaled and "
        "turned): does the peak of each map fall on the mouth more often than the peak of the mean mouth region, one map for "
        "every face? Pointing game with Wilson's 95% interval, tolerance "
        f"{scores.tolerance_px} px."
    )
    for line in scores.warnings:
        rep.paragraph(f"WARNING: {line}")
    rep.table(*benchmark_rows(scores))
    rep.figure("where/cam_score/examples.png", "test faces with the mouth outlined, and each method's map")
    rep.figure(
        "where/cam_score/cascading.png",
        "sanity check (Adebayo et al. 2018): each method's maps against the trained network's as its layers are randomised "
        "from the top; maps that stay alike explain the image, not the model",
    )
    rep.links([("the cam-score report", "where/cam_score/report.html")])
    rep.heading("Are the synthetic faces valid?")
    rep.paragraph(
        "Left out of the demo for time: facelab data validate-synth checks that each attribute's region mask contains its "
        "pixels, that networks learn every attribute, and that greying the mouth (not an equal area elsewhere) removes Smiling."
    )
    rep.machine(machine)
    return rep.write(out / "index.html")


def benchmark_rows(scores: CamScore) -> tuple[list[str], list[list]]:
    """The demo's pointing-game table: each method, its randomised twin and the two baselines, with n and interval."""
    methods = list(scores.beats_mean_mask or {})
    named = {m: m for m in methods} | {"mean_mask": "mean mask (baseline)", "random": "random map (baseline)"}
    named |= {f"{m}_randomized": f"{m}, last layer randomised" for m in methods}
    rows = []
    for key, label in named.items():
        r = scores.methods[key]
        assert r is not None and r.pointing_game is not None and r.pointing_game_ci is not None  # synthetic faces: a true region
        lo, hi = r.pointing_game_ci
        rows.append([label, f"{r.pointing_game:.2f} [{lo:.2f}, {hi:.2f}]", scores.n_region])
    return ["map", "pointing game [95% interval]", "n"], rows
