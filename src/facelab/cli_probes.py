"""The ``facelab`` commands that open a trained run or photos: looking inside, where it looks and whom it fails,
keypoints on photos, the web page and the webcam. :mod:`facelab.cli` adds them to the ``facelab`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.table import Table

from .cli_options import IMAGE_HELP, csv_list, example, number, out_option, print_json, say, takes
from .errors import FacelabError
from .ranges import LR_BOUNDS, N_BOOT_BOUNDS, SEED_BOUNDS, STEPS_BOUNDS
from .results import Summary, plain

if TYPE_CHECKING:
    from .probes.edit_set import ScoredSet

commands = typer.Typer()
out = say.console
IMAGE = typer.Argument(..., help=IMAGE_HELP)
SPEC_OR_RUNS = typer.Argument(None, help="Data SPEC (default: the run's own).")
SPLIT = typer.Option("test", help="train, valid or test.")
PHOTOS = typer.Argument(..., metavar="folder:PATH")


def _report_line(summary: dict | Summary, out_dir: Path | None, run: Path, name: str) -> None:
    out.print_json(json.dumps(plain(summary)))
    say(f"report: {(out_dir or run / name) / 'report.html'}")


# ----------------------------------------------------------------------------- looking inside
@commands.command("layers")
@example("facelab layers runs/smile")
@takes("json_", "probe")
def layers_cmd(run: Path, json_=False, runtime=None):
    """The run's conv layers, numbered from 1, with module names and output shapes."""
    from .probes.activations import layers

    rows = layers(run, runtime=runtime)
    if json_:
        return print_json(rows)
    t = Table(title=f"conv layers of {run}")
    for col in ("layer", "name", "kernel", "output (C, H, W)"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["index"]), r["name"], "x".join(map(str, r["kernel"])), str(tuple(r["shape"])))
    out.print(t)


@commands.command("activations")
@example("facelab activations runs/smile synth:64#3 --layers 1,2,3")
@takes("probe")
def activations_cmd(
    run: Path,
    image: str = IMAGE,
    layers: str = typer.Option("1,2,3", help="Conv layers by number (1 = first) or module name."),
    max_channels: int = number(64, "Show at most this many channels per layer.", (1, 4096)),
    out_dir: Optional[Path] = out_option("Default: RUN/activations."),
    runtime=None,
):
    """A grid of every channel's activation map per layer, beside the input."""
    from .probes.activations import activations

    summary = activations(run, image, layer_specs=csv_list(layers), max_channels=max_channels, out=out_dir, runtime=runtime)
    _report_line(summary, out_dir, run, "activations")


@commands.command("rgb")
@example("facelab rgb runs/smile synth:64#3 --layer 3 --channels 0,5,7")
@takes("probe")
def rgb_cmd(
    run: Path,
    image: str = IMAGE,
    layer: str = typer.Option(..., help="Layer number or name."),
    channels: str = typer.Option(..., help="Three channels a,b,c shown as R,G,B."),
    overlay: float = number(0.0, "Blend over the input image (0 = no, 1 = only the channels).", (0, 1)),
    out_dir: Optional[Path] = out_option("Default: RUN/rgb."),
    runtime=None,
):
    """Three channels of one layer as one RGB image (each normalised, upsampled to the input size)."""
    from .probes.activations import rgb

    try:
        chans = [int(c) for c in csv_list(channels)]
    except ValueError:
        raise FacelabError(f"--channels {channels!r}: expected three numbers like 0,5,7") from None
    _report_line(rgb(run, image, layer=layer, channels=chans, out=out_dir, overlay=overlay, runtime=runtime), out_dir, run, "rgb")


@commands.command("dream")
@example("facelab dream runs/smile synth:64#3 --layer 3 --channel all")
@takes("seed", "quiet", "probe", "ascent")
def dream_cmd(
    run: Path,
    image: str = typer.Argument(..., help=IMAGE_HELP + " With --n: a data SPEC whose test faces are dreamed."),
    layer: str = typer.Option(..., help="Layer number or name."),
    channel: str = typer.Option("0", help="Channel number, or all (every channel into one grid)."),
    objective: str = typer.Option("sum", help="sum, square or abs of the channel's outputs."),
    steps: int = number(100, "Gradient steps of the ascent.", STEPS_BOUNDS),
    lr: float = number(0.02, "Step size in pixel units (0..1) of an unbounded ascent (--budget 0).", LR_BOUNDS),
    n: Optional[int] = number(None, "Dream the whole layer from this many faces of the SPEC and score the set.", (1, 100_000)),
    split: str = SPLIT,
    out_dir: Optional[Path] = out_option("Default: RUN/dream (with --n: RUN/dream_set)."),
    seed=0,
    quiet=False,
    runtime=None,
    reg=None,
):
    """Activation maximisation: gradient ascent on the photo to increase a channel's output.

    With --n, the whole layer dreamed from a set of faces and scored: FVA (dlib: still the same person), closeness,
    high-frequency share (facelab dream runs/smile synth:400 --layer 3 --objective square --n 100)."""
    from .probes.dream import dream

    s = dream(
        run, image, layer=layer, channel=channel, objective=objective, steps=steps, lr=lr, reg=reg, seed=seed, out=out_dir,
        quiet=quiet, runtime=runtime, n=n, split=split,
    )  # fmt: skip
    if n is None:
        return _report_line(s, out_dir, run, "dream")
    say(f"{s.n} faces: FVA {_fva(s)}; median SSIM {s.ssim_median:.3f}; high-frequency share {s.hf_share_median:.3f}")
    say(f"report: {(out_dir or run / 'dream_set') / 'report.html'}")


@commands.command("edit")
@example("facelab edit runs/smile synth:64#3 --attr Smiling --to 1")
@takes("seed", "quiet", "probe", "ascent")
def edit_cmd(
    run: Path,
    image: str = typer.Argument(..., help=IMAGE_HELP + " With --n: a data SPEC whose test faces are edited."),
    attr: str = typer.Option(..., help="An attribute the run predicts."),
    to: int = number(1, "1: more of the attribute, 0: less.", (0, 1)),
    steps: int = number(60, "Gradient steps of the edit.", STEPS_BOUNDS),
    lr: Optional[float] = number(
        None, "Step size in pixel units (0..1) of an unbounded ascent (--budget 0); default: facelab.edit's own (0.01).", LR_BOUNDS
    ),
    n: Optional[int] = number(None, "Edit this many faces of the SPEC (those not showing ATTR = TO) and score the set.", (1, 100_000)),
    oracle: Optional[Path] = typer.Option(
        None, help="With --n: a run predicting several attributes that judges which others the edit changed (MNAC)."
    ),
    split: str = SPLIT,
    out_dir: Optional[Path] = out_option("Default: RUN/edit (with --n: RUN/edit_set)."),
    seed=0,
    quiet=False,
    runtime=None,
    reg=None,
):
    """Class-driven editing: move the image toward ATTR = TO; writes before/after/difference and the logit per step.

    With --n, a set of faces scored as counterfactuals: flip rate, FVA (dlib: still the same person), MNAC (other
    attributes changed, by --oracle), closeness (facelab edit runs/smile synth:400 --n 100 --attr Smiling)."""
    from .probes.dream import edit

    step = {"lr": lr} if lr is not None else {}  # one declaration of the default: the function's
    s = edit(run, image, attr=attr, to=to, steps=steps, reg=reg, seed=seed, out=out_dir, quiet=quiet, runtime=runtime,
             n=n, oracle=oracle, split=split, **step)  # fmt: skip
    if n is None:
        return _report_line(s, out_dir, run, "edit")
    mnac = "—" if s.mnac is None else f"{s.mnac:.2f} (oracle accuracy {s.mnac_oracle_accuracy})"
    say(f"{s.n} faces: flip rate {s.flip_rate:.3f} {s.flip_rate_ci}; FVA {_fva(s)}; MNAC {mnac}; median SSIM {s.ssim_median:.3f}")
    say(f"report: {(out_dir or run / 'edit_set') / 'report.html'}")


@commands.command("filters")
@example("facelab filters runs/smile")
@takes("probe")
def filters_cmd(
    run: Path,
    layer: str = typer.Option("1", help="Conv layer number (1 = first) or name."),
    out_dir: Optional[Path] = out_option("Default: RUN/filters."),
    runtime=None,
):
    """The learned kernels of a conv layer as a grid (colour for RGB input, grey otherwise)."""
    from .probes.activations import filters

    _report_line(filters(run, layer=layer, out=out_dir, runtime=runtime), out_dir, run, "filters")


# ----------------------------------------------------------------------------- where it looks, whom it fails
METHOD_HELP = "cam, or another map method of probes/cam.py (gradcam, gradcam++, layercam; an unknown name lists them)."


@commands.command("cam")
@example("facelab cam runs/smile synth:64#3 --target Smiling")
@takes("quiet", "faces", "probe", "strict")
def cam_cmd(
    run: Path,
    source: str = typer.Argument(
        ..., metavar="IMAGES|SPEC", help="An image file, a folder of images, SPEC#ITEM, or a SPEC (a whole split)."
    ),
    method: str = typer.Option("cam", help=METHOD_HELP),
    target: Optional[str] = typer.Option(None, help="Attribute or class to explain (default: first attribute / predicted class)."),
    layer: Optional[str] = typer.Option(None, help="Layer for the Grad-CAM family (default: the last feature map)."),
    split: str = SPLIT,
    limit: int = number(256, "Images of the split to map.", (1, 10_000_000)),
    out_dir: Optional[Path] = out_option("Default: RUN/cam."),
    colormap: str = typer.Option(
        "viridis", help="Heat-map colours: viridis (default, perceptually uniform), inferno, magma, plasma, turbo or jet."
    ),
    detect: bool = typer.Option(False, help="On image files: map each face found in them (see --detector)."),
    quiet=False,
    faces=None,
    runtime=None,
    strict=False,
):
    """Heat-map overlays; over a SPEC's split, galleries grouped by (true, predicted) label and each group's mean map."""
    from .probes.explain import cam

    summary = cam(
        run, source, method=method, target=target, layer=layer, split=split, limit=limit, out=out_dir, quiet=quiet, strict=strict,
        colormap=colormap, detect=detect, runtime=runtime, **faces,
    )  # fmt: skip
    _report_line(summary, out_dir, run, "cam")


@commands.command("cam-score")
@example("facelab cam-score runs/smile synth:400")
@takes("seed", "quiet", "probe")
def cam_score_cmd(
    run: Path,
    spec: Optional[str] = SPEC_OR_RUNS,
    method: str = typer.Option("all", help="Comma-separated methods, or all that apply."),
    target: Optional[str] = typer.Option(None, help="The output whose maps are scored (default: the run's first)."),
    layer: Optional[str] = typer.Option(None, help="Layer the maps come from (default: the network's last conv block)."),
    split: str = SPLIT,
    n: int = number(200, "Images scored.", (1, 10_000_000)),
    tolerance: Optional[int] = number(None, "Pointing-game tolerance in px (default 7% of the image side).", (0, 1024)),
    steps: int = number(16, "Steps of the deletion and insertion curves.", (2, 1000)),
    cascading: bool = typer.Option(True, help="Also randomise the top k layers, k = 1 to all, and compare each method's maps."),
    out_dir: Optional[Path] = out_option("Default: RUN/cam_score."),
    seed=0,
    quiet=False,
    runtime=None,
):
    """Pointing game, energy in the true region, deletion/insertion AUC; beside a random map, the mean mask, randomised weights.

    Cascading randomisation: the top k layers re-initialised, each method's maps compared with the trained ones by rank.

    Synthetic faces are drawn with pose=wide (moved, scaled, turned) unless the SPEC names a pose."""
    from .probes.attribution_scores import cam_score

    methods = None if method == "all" else csv_list(method)
    summary = cam_score(
        run, spec, split=split, methods=methods, target=target, layer=layer, n=n, tolerance=tolerance, steps=steps, seed=seed,
        cascading=cascading, out=out_dir, quiet=quiet, runtime=runtime,
    )  # fmt: skip
    _report_line(summary, out_dir, run, "cam_score")


@commands.command("audit")
@example("facelab audit runs/smile --by Male,Young")
@takes("probe", "strict")
def audit_cmd(
    run: Path,
    spec: Optional[str] = SPEC_OR_RUNS,
    by: str = typer.Option(..., help="Grouping attributes, comma-separated (all intersections are audited)."),
    target: Optional[str] = typer.Option(None, help="The attribute audited (default: the run's first)."),
    split: str = SPLIT,
    n_boot: int = number(1000, "Bootstrap resamples for the best-minus-worst interval (each rate has Wilson's).", N_BOOT_BOUNDS),
    min_n: int = number(30, "Groups with fewer images are flagged as small.", (1, 10_000_000)),
    threshold: str = typer.Option("0.5", help="Decision threshold: a probability, or valid (chosen on the validation split)."),
    seed: int = number(0, "Seed of the best-minus-worst bootstrap.", SEED_BOUNDS),
    out_dir: Optional[Path] = out_option("Default: RUN/audit."),
    runtime=None,
    strict=False,
):
    """Accuracy, TPR, FPR, FNR and selection rate per group and intersection, with Wilson's 95% intervals."""
    from .probes.audit import audit, eod_in_words, gap_in_words, group_label

    s = audit(
        run,
        spec,
        by=csv_list(by),
        split=split,
        target=target,
        min_n=min_n,
        threshold=threshold,
        out=out_dir,
        strict=strict,
        n_boot=n_boot,
        seed=seed,
        runtime=runtime,
    )
    overall, worst = s.overall, s.worst_group
    say(f"worst group {group_label(worst.group)}: {worst.accuracy:.4f} {worst.accuracy_ci} (n={worst.n})")
    say(f"best minus worst group: {gap_in_words(s.best_minus_worst)}")
    if s.small_groups:
        say(f"too small to judge (n < {min_n}): {'; '.join(group_label(g) for g in s.small_groups)}")
    say(f"overall accuracy {overall.accuracy:.4f} {overall.accuracy_ci} on {overall.n} images; equalized odds difference {eod_in_words(s)}")
    say(f"report: {(out_dir or run / 'audit') / 'report.html'}")


@commands.command("compare")
@example("facelab compare runs/unbalanced runs/balanced --by Male")
@takes("seed", "probe")
def compare_cmd(
    run_a: Path,
    run_b: Path,
    spec: Optional[str] = typer.Argument(None),
    by: str = typer.Option(..., help="Grouping attributes, comma-separated (all intersections are compared)."),
    target: Optional[str] = typer.Option(None, help="The attribute compared (default: the runs' first)."),
    split: str = SPLIT,
    n_boot: int = number(1000, "Bootstrap resamples for the intervals of the differences.", N_BOOT_BOUNDS),
    min_n: int = number(30, "Groups with fewer images are flagged as small.", (1, 10_000_000)),
    out_dir: Optional[Path] = out_option("Default: RUN_B/compare."),
    seed=0,
    runtime=None,
):
    """Two runs on the same groups side by side: accuracy, and B - A with a paired bootstrap interval."""
    from .probes.audit import compare

    summary = compare(
        run_a, run_b, spec, by=csv_list(by), split=split, target=target, n_boot=n_boot, min_n=min_n, seed=seed, out=out_dir, runtime=runtime
    )
    for r in summary.groups:
        label = ", ".join(f"{k}={v}" for k, v in r.group.items()) or "overall"
        say(f"{label}: A {r.accuracy_a:.4f}  B {r.accuracy_b:.4f}  B-A {r.difference:+.4f} {r.difference_ci}")
    say(f"report: {(out_dir or run_b / 'compare') / 'report.html'}")


@commands.command("predict")
@example("facelab predict runs/smile folder:my_photos --detect")
@takes("faces", "probe", "strict")
def predict_cmd(
    run: Path,
    source: str = PHOTOS,
    detect: bool = typer.Option(False, help="Find and crop faces first (see --detector)."),
    method: str = typer.Option("cam", help=METHOD_HELP),
    target: Optional[str] = typer.Option(None, help="Output whose map is drawn (default: the most probable one)."),
    out_dir: Optional[Path] = out_option("Default: RUN/predict."),
    faces=None,
    runtime=None,
    strict=False,
):
    """Predictions with probabilities and attribution overlays for a folder of your own photos."""
    from .probes.explain import predict

    summary = predict(run, source, detect=detect, method=method, target=target, out=out_dir, strict=strict, runtime=runtime, **faces)
    say(summary.in_words())
    say(f"report: {(out_dir or run / 'predict') / 'report.html'}")


# ----------------------------------------------------------------------------- keypoints
@commands.command("sweep")
@example("facelab sweep synth:2000 --lr 1e-2,1e-3 --convs 3,4")
@takes(
    "quiet",
    "seed",
    "runtime",
    train=("task", "points", "head", "attrs", "arch", "epochs", "batch", "opt", "size", "channels", "crop"),
    task="keypoints",
    arch="kpnet-small",
    epochs=10,
    batch=64,
    opt="adam",
    channels=1,
    size="64",
)
def sweep_cmd(
    spec: str,
    lr: str = typer.Option("1e-2,1e-3,1e-4", help="Learning rates, comma-separated."),
    convs: Optional[str] = typer.Option(None, help="Conv counts of kpnet, comma-separated (e.g. 3,4)."),
    out_dir: Path = out_option("Sweep folder.", Path("runs/sweep")),
    quiet=False,
    seed=0,
    runtime=None,
    train_options=None,
):
    """Train one run per setting (--lr x --convs) and compare them in one table and one figure."""
    from .keypoints.sweep import sweep
    from .training.config import TrainConfig

    try:
        lrs = [float(v) for v in csv_list(lr)]
        conv_counts = [int(v) for v in csv_list(convs)] if convs else [None]
    except ValueError:
        raise FacelabError(f"--lr {lr!r} / --convs {convs!r}: expected comma-separated numbers") from None
    base = TrainConfig(spec=spec, seed=seed, out=str(out_dir), **train_options)
    result = sweep(base, lrs=lrs, convs=conv_counts, out=out_dir, quiet=quiet, runtime=runtime)
    for r in result.settings:
        say(f"{r.setting}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.fields.items() if k.startswith("val_") and v is not None))
    say(f"best by {result.ranked_by}: {result.best.setting}; report: {out_dir / 'report.html'}")


@commands.command("landmarks")
@example("facelab landmarks runs/keypoints folder:my_photos")
@takes("faces", "probe", "strict")
def landmarks_cmd(
    run: Path,
    source: str = PHOTOS,
    margin: Optional[float] = number(None, "Border around each detected face (default: as in training).", (0, 2)),
    landmarker: str = typer.Option("net", help="net (the run's network) or dlib (dlib's 68-point predictor, facelab[faces])."),
    out_dir: Optional[Path] = out_option("Default: RUN/landmarks."),
    faces=None,
    runtime=None,
    strict=False,
):
    """Detect faces in your photos, predict their landmarks, and draw them on the full photos."""
    from .keypoints.photos import landmarks

    summary = landmarks(run, source, margin=margin, landmarker=landmarker, out=out_dir, strict=strict, runtime=runtime, **faces)
    say(summary.in_words())
    say(f"report: {(out_dir or run / 'landmarks') / 'report.html'}")


@commands.command("detect")
@example("facelab detect folder:my_photos --detector dlib-hog --json")
@takes("faces", "quiet", "strict")
def detect_cmd(
    source: str = typer.Argument(..., metavar="SPEC|PATH", help="A photo, a folder of photos, or a data SPEC."),
    out_dir: Path = out_option("Folder for faces.json, faces.csv, the contact sheet and report.html.", Path("runs/detect")),
    json_: bool = typer.Option(False, "--json", help="Print faces.json's content."),
    faces=None,
    quiet=False,
    strict=False,
):
    """Find the faces in photos: boxes (photo pixels) and scores as CSV and JSON, and a contact sheet."""
    from .keypoints.faces import detect

    result = detect(source, out=out_dir, strict=strict, quiet=quiet or json_, **faces)
    if json_:
        return print_json(result.faces_json())
    say(f"{result.n_faces} faces in {len(result.images)} photos ({result.detector}); report: {out_dir / 'report.html'}")


# ----------------------------------------------------------------------------- web page, webcam
RUNS = typer.Argument(..., metavar="RUN [RUN ...]")


@commands.command("serve")
@example("facelab serve runs/smile runs/keypoints --port 8000")
@takes("faces", "probe")
def serve_cmd(
    runs: list[Path] = RUNS,
    host: str = typer.Option("127.0.0.1", help="Interface to bind (only this machine by default)."),
    port: int = number(8000, "Port to serve on (127.0.0.1 only).", (1, 65535)),
    faces=None,
    runtime=None,
):
    """A local web page: drop a photo or start the webcam; predictions, CAM overlay, landmarks."""
    from .web.app import serve

    serve(runs, host, port, runtime=runtime, **faces)


@commands.command("webcam")
@example("facelab webcam runs/smile --source 0")
@takes("quiet", "faces", "probe")
def webcam_cmd(
    runs: list[Path] = RUNS,
    source: str = typer.Option("0", help="Camera number or a VIDEO_FILE."),
    out_path: Optional[Path] = out_option("Write an annotated video (e.g. annotated.webm) instead of a window."),
    target: Optional[str] = typer.Option(None, help="Output whose CAM is shown."),
    max_frames: Optional[int] = number(None, "Stop after this many frames (default: when the source ends).", (1, 10_000_000)),
    quiet=False,
    faces=None,
    runtime=None,
):
    """The same overlay as the web page on an OpenCV window, or into an annotated video file."""
    from .web.webcam import webcam

    result = webcam(runs, source, out_path, target, max_frames, quiet, runtime=runtime, **faces)
    say(result.in_words())


def _fva(s: ScoredSet) -> str:
    return "—" if s.fva is None else f"{s.fva:.3f} {s.fva_ci}"
