"""The ``facelab`` command: parses options and calls the public functions, nothing more."""

from __future__ import annotations

import functools
import inspect
import json
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import FacelabError, RunStopped

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Train CNNs on faces, then take them apart."
)
data_app = typer.Typer(no_args_is_help=True, help="Data sources, the decode-once cache, synthetic faces.")
bench_app = typer.Typer(no_args_is_help=True, help="Speed measurements against a baseline in the same process.")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
study_app = typer.Typer(
    no_args_is_help=True,
    help="The four studies: a published protocol on your data (synthetic faces by default), published figures beside.",
)
app.add_typer(study_app, name="study")
out = Console()
err = Console(stderr=True)


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def _counts(text: str | None) -> list[int] | None:
    try:
        return [int(c) for c in _csv(text)] or None
    except ValueError:
        raise FacelabError(f"--classes {text!r}: expected numbers like 20,100") from None


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


# ----------------------------------------------------------------------------- options shared by commands, declared once
PRECISION = typer.Option("auto", "--precision", help="auto (bf16 only where the hardware computes it natively), bf16 or fp32.")
STRICT = typer.Option(False, "--strict", help="Stop at the first unreadable image instead of skipping it (exit 2).")
DEVICE = typer.Option("auto", "--device", help="auto (a CUDA GPU when present), cpu or cuda.")
SEED = typer.Option(0, help="Seed: the same seed on the same machine gives the same figures.")
QUIET = typer.Option(False, help="No progress bars.")
SPLIT = typer.Option("test", help="train, valid or test.")
JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
IMAGE_HELP = "An image file, or SPEC#ITEM: one item of a data set (synth:64#3, celeba:/data/celeba#000123.jpg)."
IMAGE = typer.Argument(..., help=IMAGE_HELP)
SPEC_OR_RUNS = typer.Argument(None, help="Data SPEC (default: the run's own).")
DETECTOR = typer.Option(
    "auto", help="Face detector: auto (dlib's HOG with facelab[faces] installed, else haar), dlib-hog, dlib-cnn or haar."
)
UPSAMPLE = typer.Option(None, help="Search an upsampled photo this many times (finds smaller faces; default: dlib 1, haar 0).")
MIN_SCORE = typer.Option(
    None, "--min-score", help="Drop detections scoring below this (default: dlib-hog 0.1, calibrated on real photos; dlib-cnn 0)."
)


def out_option(about: str, default: Path | None = None):
    return typer.Option(default, "--out", help=about)


# TrainConfig's options: (type, default, help); a command takes the ones it names with @train_options(...).
TRAIN_OPTIONS: dict[str, tuple[object, object, str]] = {
    "task": (
        str,
        "attr",
        "attr (yes/no attributes), identity (one of N persons), keypoints (landmarks) or rotation "
        "(head rotation in degrees, synthetic faces).",
    ),
    "points": (str, "all", "For --task keypoints: nose (the nose tip) or all (every landmark)."),
    "convs": (Optional[int], None, "Conv layers of kpnet-small/kpnet-full (default 3 / 4)."),
    "head": (Optional[str], None, "For --task keypoints: heatmap (per-point maps, soft-argmax; default for 68/58 points) or regress."),
    "attrs": (str, "Smiling", "Attributes for --task attr, comma-separated."),
    "classes": (int, 20, "Identities for --task identity (top-N by image count)."),
    "min_images": (int, 2, "Least images an identity needs to be chosen."),
    "arch": (Optional[str], None, "Network (facelab models lists them). Default: the task's (keypoints: resnet18), else darknet64."),
    "epochs": (Optional[int], None, "Passes over the training images. Default: the task's (keypoints: enough for --min-steps), else 3."),
    "min_steps": (Optional[int], None, "With --epochs left to the task: train at least this many optimiser steps (small sets)."),
    "batch": (Optional[int], None, "Images per step. Default: the task's, else 128."),
    "lr": (Optional[float], None, "Default: the task's with its optimiser, else 0.05 for sgd, 1e-3 for adam/adamw."),
    "opt": (Optional[str], None, "sgd, adam or adamw. Default: the task's (keypoints, rotation: adam), else sgd."),
    "momentum": (float, 0.9, "SGD momentum (Nesterov)."),
    "wd": (float, 5e-4, "Weight decay."),
    "schedule": (Optional[str], None, "onecycle, cosine or none. Default: the task's, else onecycle."),
    "size": (Optional[str], None, "Input pixels (64) or WIDTHxHEIGHT (80x60). Default: the task's, else 64."),
    "crop": (
        Optional[str],
        None,
        "center, full, box, landmarks, detect (the detector's box, squared) or aligned (five points onto a template). "
        "Default: the task's (keypoints: landmarks), else per source (a folder of photos: detect with facelab[faces]).",
    ),
    "min_score": (Optional[float], None, "--crop detect/aligned: drop detections scoring below this (default: dlib-hog 0.1)."),
    "channels": (Optional[int], None, "3 (RGB) or 1 (grey). Default: the task's, else 3."),
    "weights": (Optional[str], None, "imagenet (from the local torch cache, downloaded there when missing), a state-dict FILE or none."),
    "balance": (Optional[str], None, "Undersample training images to balance this attribute."),
    "inverted_fraction": (float, 0.0, "Fraction of training images shown upside down."),
    "augment": (bool, True, "Flips, small shifts, brightness/contrast on whole batches."),
    "devices": (int, 1, "Processes/GPUs per node (DDP when > 1)."),
    "num_nodes": (int, 1, "Nodes (DDP)."),
    "cache": (Optional[str], None, "Use this cache folder instead of the default one."),
}


def train_options(*names: str, **defaults):
    """Give a command TrainConfig's options ``names`` (declared once in TRAIN_OPTIONS, ``defaults`` overriding);
    the command receives them together as ``train_options``, a dict."""

    def wrap(command):
        def option(name: str) -> inspect.Parameter:
            kind, default, about = TRAIN_OPTIONS[name]
            default = defaults.get(name, default)
            return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=typer.Option(default, help=about))

        @functools.wraps(command)
        def with_options(**kwargs):
            chosen = {n: kwargs.pop(n) for n in names}
            if "attrs" in chosen:
                chosen["attrs"] = _csv(chosen["attrs"])
            return command(**kwargs, train_options=chosen)

        own = [p for p in inspect.signature(command).parameters.values() if p.name != "train_options"]
        with_options.__signature__ = inspect.signature(command).replace(parameters=own + [option(n) for n in names])
        return with_options

    return wrap


def _hardware(precision: str, device: str = "auto") -> None:
    """Every network this command runs uses this precision (and device) unless a run says otherwise."""
    from .hardware import use_hardware

    use_hardware(precision, device)


# ----------------------------------------------------------------------------- data
@data_app.command("info")
def data_info_cmd(spec: str, json_: bool = JSON):
    """Images, sizes, labels, splits and problems of a data SPEC."""
    from .data.info import data_info
    from .data.spec import open_spec

    info = data_info(open_spec(spec), quiet=json_)
    if json_:
        _print_json(info)
        return
    t = Table(title=f"facelab data info {spec}", show_header=False)
    for key, value in info.items():
        if isinstance(value, list) and key in ("problems", "notes"):
            value = "\n".join(value) or "none"
        elif key == "attributes" and value:
            value = f"{len(value)}: " + ", ".join(value)
        elif key == "image_sizes":
            continue  # summarised in image_size_summary
        elif key == "image_size_summary" and value:
            (w0, h0), (w1, h1), common = value["min"], value["max"], "x".join(map(str, value["most_common"]))
            value = (
                f"{value['distinct']} distinct; widths {w0}-{w1}, heights {h0}-{h1}; "
                f"most common {common} ({value['most_common_count']} images)"
            )
        t.add_row(key, str(value))
    out.print(t)


@data_app.command("cache")
def data_cache_cmd(
    spec: str,
    size: str = typer.Option("64", help="Pixels (64) or WIDTHxHEIGHT (80x60)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Cache folder (default: under $FACELAB_CACHE)."),
    crop: Optional[str] = typer.Option(None, help=TRAIN_OPTIONS["crop"][2]),
    margin: Optional[float] = typer.Option(None, help="Extra border around box/landmark/face crops, as a fraction."),
    workers: Optional[int] = typer.Option(
        None, help="Decoding processes (default: the cores this process may use, shared with other facelab processes)."
    ),
    strict: bool = typer.Option(False, help="Stop on any unreadable image instead of skipping it."),
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
):
    """Decode every image once into a memory-mappable uint8 array (resumes if interrupted)."""
    from .data.cache import build_cache, parse_size
    from .data.face_crops import FaceFinder
    from .data.spec import open_spec

    finder = FaceFinder(detector, upsample, min_score)
    cache = build_cache(open_spec(spec), parse_size(size), out_dir, crop, margin, workers, strict, finder=finder)
    m = cache.meta
    out.print(f"cache {cache.path}: {m['n']} images at {m['width']}x{m['height']}, {m['n_failed']} unreadable or without a face skipped")


@data_app.command("synth")
def data_synth_cmd(
    out_dir: Path = typer.Argument(..., metavar="OUT"),
    n: int = typer.Option(2000, help="Number of images."),
    ids: Optional[int] = typer.Option(None, help="Number of persons (default: every image its own person)."),
    size: int = typer.Option(128, help="Image size in pixels (32-256)."),
    seed: int = SEED,
    correlate: list[str] = typer.Option([], help="A:B=P: in train, P(B|A) = P. Repeatable; add @valid,test for other splits."),
    spurious: list[str] = typer.Option([], help="A:background=P: background colour predicts A in train."),
    imbalance: list[str] = typer.Option([], help="A=P: fraction of positives of A in train."),
):
    """Write synthetic faces in CelebA's layout, with 68/58 landmarks and region masks."""
    from .data.synth import Knob, SynthConfig, synth_faceset
    from .data.synth_export import write_synth_folder

    if not 32 <= size <= 256:
        raise FacelabError(f"--size {size}: synthetic faces are rendered at 32 to 256 px")
    knobs = tuple(Knob.parse(k, v) for k, vs in (("correlate", correlate), ("spurious", spurious), ("imbalance", imbalance)) for v in vs)
    fs = synth_faceset(SynthConfig(n=n, ids=ids, seed=seed, knobs=knobs))
    path = write_synth_folder(fs, out_dir, size)
    out.print(f"wrote {n} synthetic faces to {path} (read it back with celeba:{path})")


@data_app.command("show")
def data_show_cmd(
    spec: str,
    n: int = typer.Option(16),
    size: int = typer.Option(128),
    out_path: Path = typer.Option(Path("contact_sheet.png"), "--out"),
    strict: bool = STRICT,
):
    """A contact sheet PNG of the first N images with landmarks (and, for synth, region masks)."""
    from .data.spec import open_spec
    from .report.contact import contact_sheet

    path = contact_sheet(open_spec(spec), n, size, out_path, strict)
    out.print(f"wrote {path}")


@data_app.command("validate-synth")
def validate_synth_cmd(
    json_: bool = JSON, out_dir: Path = typer.Option(Path("runs/validate_synth"), "--out"), seed: int = SEED, precision: str = PRECISION
):
    """Check the synthetic faces: attribute control, learnability, intervention, landmarks, bias knobs."""
    _hardware(precision)
    from .probes.synth_validity import validate_synth

    result = validate_synth(out_dir, seed=seed, quiet=json_)
    if json_:
        _print_json(result)
    else:
        out.print_json(json.dumps(result))
        out.print(f"report: {out_dir / 'report.html'}")


# ----------------------------------------------------------------------------- models, training
@app.command("models")
def models_cmd():
    """The registered networks with their parameter counts."""
    from .models import list_models

    t = Table(title="facelab models (parameters with a 2-output head)")
    for col in ("arch", "parameters", "note"):
        t.add_column(col)
    for name, params, note in list_models():
        t.add_row(name, f"{params:,}", note)
    out.print(t)


@app.command("train")
@train_options(*TRAIN_OPTIONS)
def train_cmd(
    spec: Optional[str] = typer.Argument(None, help="Data SPEC (celeba:PATH, synth:N, ...)."),
    out_dir: Optional[Path] = out_option("Run folder (default: runs/TASK-ARCH)."),
    seed: int = SEED,
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder where it stopped."),
    force: bool = typer.Option(False, help="Start again in an --out folder that holds a run (removes only what facelab wrote there)."),
    quiet: bool = QUIET,
    precision: str = PRECISION,
    device: str = DEVICE,
    train_options: dict | None = None,
):
    """Train a network; writes config.json, metrics.csv, summary.json, checkpoints/, figures/, report.html."""
    _hardware(precision, device)
    from .train.engine import TrainConfig, train

    if resume is not None:
        summary = train(resume=resume, quiet=quiet)
    else:
        if spec is None:
            raise FacelabError("give a data SPEC (e.g. synth:2000 or celeba:/data/celeba), or --resume RUN")
        cfg = TrainConfig(spec=spec, out=str(out_dir or ""), seed=seed, precision=precision, device=device, **train_options)
        cfg.out = str(out_dir or Path("runs") / f"{cfg.task}-{cfg.arch}")
        summary = train(cfg, quiet=quiet, force=force)
    if summary:
        out.print_json(json.dumps(summary))


@app.command("eval")
def eval_cmd(
    run: Path,
    spec: Optional[str] = SPEC_OR_RUNS,
    split: str = SPLIT,
    out_dir: Optional[Path] = out_option("Default: RUN/eval_SPLIT."),
    precision: str = PRECISION,
    device: str = DEVICE,
    json_: bool = typer.Option(False, "--json", help="Print only the JSON (plain, one object) on stdout."),
):
    """Evaluate a run's best checkpoint on a split of its data (or of another SPEC); prints the result as JSON."""
    _hardware(precision, device)
    from .run import evaluate

    result = evaluate(run, spec, split, out_dir, precision=precision, device=device)
    if json_:
        _print_json(result)
    else:
        out.print_json(json.dumps(result))


@app.command("inversion")
@train_options("arch", "size", "epochs", "batch", "lr", "weights", "inverted_fraction", epochs=10, batch=64, inverted_fraction=0.05)
def inversion_cmd(
    spec: str = typer.Argument("synth:3000,ids=20"),
    classes: str = typer.Option("20", help="Identity counts, comma-separated (e.g. 20,100)."),
    opt: str = typer.Option("sgd", help="Optimisers to compare, comma-separated (sgd,adam)."),
    control: Optional[str] = typer.Option(None, help="inverted-trained: also train mostly on inverted faces."),
    out_dir: Path = out_option("Study folder.", Path("runs/inversion")),
    seed: int = SEED,
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for the 95% intervals."),
    threshold: float = typer.Option(0.0, help="Gap the lower 95% bound must stay above for emergence."),
    quiet: bool = QUIET,
    precision: str = PRECISION,
    device: str = DEVICE,
    train_options: dict | None = None,
):
    """Upright vs inverted identity accuracy after every epoch, with intervals and the emergence epoch."""
    _hardware(precision, device)
    from .probes.inversion import emergence_in_words, inversion

    summary = inversion(
        spec,
        classes=_counts(classes),
        opts=_csv(opt),
        control=control,
        out=out_dir,
        seed=seed,
        n_boot=n_boot,
        threshold=threshold,
        quiet=quiet,
        **train_options,
    )
    for r in summary["runs"]:
        control_note = " (inverted-trained)" if r["control"] else ""
        out.print(
            f"{r['classes']} ids, {r['opt']}{control_note}: upright {r['upright_acc'][-1]:.3f}, inverted {r['inverted_acc'][-1]:.3f}, "
            f"gap {r['final_gap']:.3f} {r['final_gap_ci']}, emergence epoch {emergence_in_words(r['emergence_epoch'])}"
        )
    out.print(f"report: {out_dir / 'report.html'}")


@app.command("demo")
def demo_cmd(
    out_dir: Path = typer.Option(Path("runs/demo"), "--out"),
    quick: bool = typer.Option(False, help="Smaller, for a smoke test."),
    precision: str = PRECISION,
    device: str = DEVICE,
):
    """Everything facelab does, on the built-in synthetic faces; writes OUT/index.html."""
    _hardware(precision, device)
    from .demo import demo

    index = demo(out_dir, quick=quick)
    out.print(f"demo finished: open {index}")


# ----------------------------------------------------------------------------- studies
# A study's settings default to its published protocol; these options scale it to the machine at hand, and the
# report lists every departure.
STUDY_SCALE = dict(arch=None, size=None, epochs=None, batch=None, weights=None)
STUDY_SPEC = typer.Argument(None, help="Data SPEC (default: the study's synthetic faces).")
N_BOOT = typer.Option(1000, help="Bootstrap resamples for the 95% intervals.")


def _study_done(summary: dict, json_: bool, lines: list[str]) -> None:
    """The summary as JSON, or the study's headline figures, its departures and where its report is."""
    if json_:
        _print_json(summary)
        return
    for line in lines:
        out.print(line, markup=False, highlight=False, soft_wrap=True)
    for line in summary["departures"]:
        out.print(f"departs from the protocol: {line}", markup=False, highlight=False, soft_wrap=True)
    out.print(f"report: {Path(summary['folder']) / 'report.html'}", markup=False, soft_wrap=True)


@study_app.command("bias")
@train_options("arch", "size", "epochs", "batch", "weights", "crop", **STUDY_SCALE)
def study_bias_cmd(
    spec: Optional[str] = STUDY_SPEC,
    out_dir: Optional[Path] = out_option("Study folder (default runs/study_bias)."),
    ood: Optional[str] = typer.Option(None, help="Faces from elsewhere (folder:PATH): the share predicted as each class, with maps."),
    by: Optional[str] = typer.Option(None, help="Grouping attributes, comma-separated (default: Male,Young,Pale_Skin)."),
    seed: int = SEED,
    n_boot: int = N_BOOT,
    quiet: bool = QUIET,
    json_: bool = JSON,
    precision: str = PRECISION,
    device: str = DEVICE,
    train_options: dict | None = None,
):
    """Gender classifier trained unbalanced and balanced: accuracy per gender and intersection, with intervals."""
    _hardware(precision, device)
    from .studies.bias import bias_study, gap_in_words

    summary = bias_study(spec, out=out_dir, ood=ood, seed=seed, n_boot=n_boot, quiet=quiet, by=_csv(by) or None, **train_options)
    gaps = summary["gap"].items()
    _study_done(summary, json_, [f"{n}: {gap_in_words(g)}" for n, g in gaps])


@study_app.command("inversion")
@train_options("arch", "size", "epochs", "batch", "weights", "inverted_fraction", "crop", **STUDY_SCALE, inverted_fraction=None)
def study_inversion_cmd(
    spec: Optional[str] = STUDY_SPEC,
    out_dir: Optional[Path] = out_option("Study folder (default runs/study_inversion)."),
    classes: Optional[str] = typer.Option(None, help="Identity counts, comma-separated (default: 20,100)."),
    seed: int = SEED,
    n_boot: int = N_BOOT,
    quiet: bool = QUIET,
    json_: bool = JSON,
    precision: str = PRECISION,
    device: str = DEVICE,
    train_options: dict | None = None,
):
    """Identity networks trained on upright faces: upright vs inverted accuracy per epoch, and the control."""
    _hardware(precision, device)
    from .studies.inversion import inversion_study

    summary = inversion_study(spec, out=out_dir, seed=seed, n_boot=n_boot, quiet=quiet, classes=_counts(classes), **train_options)
    lines = [
        f"{r['classes']} ids{' (inverted-trained)' if r['control'] else ''}: upright {r['upright_acc'][-1]:.3f}, "
        f"inverted {r['inverted_acc'][-1]:.3f}"
        for r in summary["runs"]
    ]
    _study_done(summary, json_, lines)


@study_app.command("youth")
@train_options("arch", "size", "epochs", "batch", "weights", "crop", **STUDY_SCALE)
def study_youth_cmd(
    spec: Optional[str] = STUDY_SPEC,
    out_dir: Optional[Path] = out_option("Study folder (default runs/study_youth)."),
    photo: Optional[str] = typer.Option(None, help="The photo to look inside with (a file or SPEC#ITEM; default: the first test face)."),
    steps: int = typer.Option(60, help="Gradient steps of each activation maximisation and edit."),
    seed: int = SEED,
    quiet: bool = QUIET,
    json_: bool = JSON,
    precision: str = PRECISION,
    device: str = DEVICE,
    train_options: dict | None = None,
):
    """Darknet64 on Young: accuracy, activations, RGB channels, activation maximisation, older/younger edits."""
    _hardware(precision, device)
    from .studies.youth import youth_study

    summary = youth_study(spec, photo=photo, out=out_dir, seed=seed, steps=steps, quiet=quiet, **train_options)
    acc = summary["test_accuracy"]
    lo, hi = acc["accuracy_ci"]
    _study_done(summary, json_, [f"test accuracy {acc['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] (published 0.90)"])


@study_app.command("keypoints")
@train_options("arch", "size", "epochs", "batch", **STUDY_SCALE)
def study_keypoints_cmd(
    spec: Optional[str] = STUDY_SPEC,
    out_dir: Optional[Path] = out_option("Study folder (default runs/study_keypoints)."),
    photos: Optional[str] = typer.Option(None, help="Your photos (folder:PATH): faces found, landmarks drawn."),
    seeds: Optional[int] = typer.Option(None, help="Runs per part, one per seed (default: 3)."),
    quiet: bool = QUIET,
    json_: bool = JSON,
    precision: str = PRECISION,
    device: str = DEVICE,
    train_options: dict | None = None,
):
    """Nose tip, 58 and 68 points: NME over seeds, per-seed loss curves, filters, your photos."""
    _hardware(precision, device)
    from .studies.keypoints import keypoints_study

    summary = keypoints_study(spec, photos=photos, out=out_dir, quiet=quiet, seeds=seeds, **train_options)
    errors = {name: ("NME", r["val_nme"]) if "val_nme" in r else ("px error", r["val_px_err"]) for name, r in summary["parts"].items()}
    lines = [f"{name}: {unit} {e['mean']:.4f} over {len(e['per_seed'])} seed(s)" for name, (unit, e) in errors.items()]
    _study_done(summary, json_, lines)


# ----------------------------------------------------------------------------- looking inside


def _regularisers(jitter: int, blur: float, param: str, decorrelate: bool):
    from .probes.ascent import Regularisers

    return Regularisers(jitter=jitter, blur_sigma=blur, param=param, decorrelate=decorrelate)


def _report_line(summary: dict, out_dir: Path | None, run: Path, name: str) -> None:
    out.print_json(json.dumps(summary))
    out.print(f"report: {(out_dir or run / name) / 'report.html'}")


@app.command("layers")
def layers_cmd(run: Path, json_: bool = JSON, precision: str = PRECISION):
    """The run's conv layers, numbered from 1, with module names and output shapes."""
    _hardware(precision)
    from .probes.activations import layers

    rows = layers(run)
    if json_:
        return _print_json(rows)
    t = Table(title=f"conv layers of {run}")
    for col in ("layer", "name", "kernel", "output (C, H, W)"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["index"]), r["name"], "x".join(map(str, r["kernel"])), str(tuple(r["shape"])))
    out.print(t)


@app.command("activations")
def activations_cmd(
    run: Path,
    image: str = IMAGE,
    layers: str = typer.Option("1,2,3", help="Conv layers by number (1 = first) or module name."),
    max_channels: int = typer.Option(64, help="Show at most this many channels per layer."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/activations."),
    precision: str = PRECISION,
):
    """A grid of every channel's activation map per layer, beside the input."""
    _hardware(precision)
    from .probes.activations import activations

    _report_line(activations(run, image, layer_specs=_csv(layers), max_channels=max_channels, out=out_dir), out_dir, run, "activations")


@app.command("rgb")
def rgb_cmd(
    run: Path,
    image: str = IMAGE,
    layer: str = typer.Option(..., help="Layer number or name."),
    channels: str = typer.Option(..., help="Three channels a,b,c shown as R,G,B."),
    overlay: float = typer.Option(0.0, help="Blend over the input image (0 = no, 1 = only the channels)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/rgb."),
    precision: str = PRECISION,
):
    """Three channels of one layer as one RGB image (each normalised, upsampled to the input size)."""
    _hardware(precision)
    from .probes.activations import rgb

    try:
        chans = [int(c) for c in _csv(channels)]
    except ValueError:
        raise FacelabError(f"--channels {channels!r}: expected three numbers like 0,5,7") from None
    _report_line(rgb(run, image, layer=layer, channels=chans, out=out_dir, overlay=overlay), out_dir, run, "rgb")


@app.command("dream")
def dream_cmd(
    run: Path,
    image: str = IMAGE,
    layer: str = typer.Option(..., help="Layer number or name."),
    channel: str = typer.Option("0", help="Channel number, or all (every channel into one grid)."),
    objective: str = typer.Option("sum", help="sum, square or abs of the channel's outputs."),
    steps: int = typer.Option(100),
    lr: float = typer.Option(0.02, help="Step size in pixel units (0..1)."),
    jitter: int = typer.Option(2, help="Random shift of up to this many pixels each step."),
    blur: float = typer.Option(0.0, help="Gaussian blur sigma applied every 4 steps (0 = off)."),
    param: str = typer.Option("pixel", help="pixel or fourier parametrisation."),
    decorrelate: bool = typer.Option(False, help="Step in decorrelated colour space."),
    seed: int = SEED,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/dream."),
    quiet: bool = QUIET,
    precision: str = PRECISION,
):
    """Activation maximisation: gradient ascent on the photo to increase a channel's output."""
    _hardware(precision)
    from .probes.dream import dream

    reg = _regularisers(jitter, blur, param, decorrelate)
    summary = dream(
        run, image, layer=layer, channel=channel, objective=objective, steps=steps, lr=lr, reg=reg, seed=seed, out=out_dir, quiet=quiet
    )
    _report_line(summary, out_dir, run, "dream")


@app.command("edit")
def edit_cmd(
    run: Path,
    image: str = IMAGE,
    attr: str = typer.Option(..., help="An attribute the run predicts."),
    to: int = typer.Option(1, help="1: more of the attribute, 0: less."),
    steps: int = typer.Option(60),
    lr: Optional[float] = typer.Option(None, help="Step size in pixel units (0..1); default: facelab.edit's own (0.01)."),
    jitter: int = typer.Option(2),
    blur: float = typer.Option(0.0),
    param: str = typer.Option("pixel"),
    decorrelate: bool = typer.Option(False),
    seed: int = SEED,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/edit."),
    quiet: bool = QUIET,
    precision: str = PRECISION,
):
    """Class-driven editing: move the image toward ATTR = TO; writes before/after/difference and the logit per step."""
    _hardware(precision)
    from .probes.dream import edit

    reg = _regularisers(jitter, blur, param, decorrelate)
    step = {"lr": lr} if lr is not None else {}  # one declaration of the default: the function's
    summary = edit(run, image, attr=attr, to=to, steps=steps, reg=reg, seed=seed, out=out_dir, quiet=quiet, **step)
    _report_line(summary, out_dir, run, "edit")


@app.command("filters")
def filters_cmd(
    run: Path,
    layer: str = typer.Option("1", help="Conv layer number (1 = first) or name."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/filters."),
    precision: str = PRECISION,
):
    """The learned kernels of a conv layer as a grid (colour for RGB input, grey otherwise)."""
    _hardware(precision)
    from .probes.activations import filters

    _report_line(filters(run, layer=layer, out=out_dir), out_dir, run, "filters")


# ----------------------------------------------------------------------------- where it looks, whom it fails


@app.command("cam")
def cam_cmd(
    run: Path,
    source: str = typer.Argument(
        ..., metavar="IMAGES|SPEC", help="An image file, a folder of images, SPEC#ITEM, or a SPEC (a whole split)."
    ),
    method: str = typer.Option("cam", help="cam, gradcam, gradcam++ or layercam."),
    target: Optional[str] = typer.Option(None, help="Attribute or class to explain (default: first attribute / predicted class)."),
    layer: Optional[str] = typer.Option(None, help="Layer for the Grad-CAM family (default: the last feature map)."),
    split: str = SPLIT,
    limit: int = typer.Option(256, help="Images of the split to map."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/cam."),
    quiet: bool = QUIET,
    colormap: str = typer.Option(
        "viridis", help="Heat-map colours: viridis (default, perceptually uniform), inferno, magma, plasma, turbo or jet."
    ),
    detect: bool = typer.Option(False, help="On image files: map each face found in them (see --detector)."),
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
    precision: str = PRECISION,
    strict: bool = STRICT,
):
    """Heat-map overlays; over a SPEC's split, galleries grouped by (true, predicted) label and each group's mean map."""
    _hardware(precision)
    from .probes.explain import cam

    summary = cam(
        run,
        source,
        method=method,
        target=target,
        layer=layer,
        split=split,
        limit=limit,
        out=out_dir,
        quiet=quiet,
        strict=strict,
        colormap=colormap,
        detector=detector if detect else None,
        upsample=upsample,
        min_score=min_score,
    )
    _report_line(summary, out_dir, run, "cam")


@app.command("cam-score")
def cam_score_cmd(
    run: Path,
    spec: Optional[str] = SPEC_OR_RUNS,
    method: str = typer.Option("all", help="Comma-separated methods, or all that apply."),
    target: Optional[str] = typer.Option(None),
    layer: Optional[str] = typer.Option(None),
    split: str = SPLIT,
    n: int = typer.Option(200, help="Images scored."),
    tolerance: Optional[int] = typer.Option(None, help="Pointing-game tolerance in px (default 7% of the image side)."),
    steps: int = typer.Option(16, help="Steps of the deletion and insertion curves."),
    seed: int = SEED,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/cam_score."),
    quiet: bool = QUIET,
    precision: str = PRECISION,
):
    """Pointing game, energy in the true region, deletion/insertion AUC; beside a random map, the mean mask, and randomised weights."""
    _hardware(precision)
    from .probes.attribution_scores import cam_score

    methods = None if method == "all" else _csv(method)
    summary = cam_score(
        run,
        spec,
        split=split,
        methods=methods,
        target=target,
        layer=layer,
        n=n,
        tolerance=tolerance,
        steps=steps,
        seed=seed,
        out=out_dir,
        quiet=quiet,
    )
    _report_line(summary, out_dir, run, "cam_score")


@app.command("audit")
def audit_cmd(
    run: Path,
    spec: Optional[str] = SPEC_OR_RUNS,
    by: str = typer.Option(..., help="Grouping attributes, comma-separated (all intersections are audited)."),
    target: Optional[str] = typer.Option(None, help="The attribute audited (default: the run's first)."),
    split: str = SPLIT,
    n_boot: int = typer.Option(1000, help="Unused: every audited rate is a proportion with Wilson's interval (kept for older scripts)."),
    min_n: int = typer.Option(30, help="Groups with fewer images are flagged as small."),
    threshold: str = typer.Option("0.5", help="Decision threshold: a probability, or valid (chosen on the validation split)."),
    seed: int = typer.Option(0, help="Unused (kept for older scripts): Wilson's intervals draw nothing at random."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/audit."),
    precision: str = PRECISION,
    strict: bool = STRICT,
):
    """Accuracy, TPR, FPR, FNR and selection rate per group and intersection, with Wilson's 95% intervals."""
    _hardware(precision)
    from .probes.audit import audit, eod_in_words

    summary = audit(
        run,
        spec,
        by=_csv(by),
        split=split,
        target=target,
        min_n=min_n,
        threshold=threshold,
        out=out_dir,
        strict=strict,
    )
    worst = summary["worst_group"]
    out.print(
        f"overall accuracy {summary['overall']['accuracy']:.4f} {summary['overall']['accuracy_ci']} on {summary['overall']['n']} images; "
        f"worst group {worst['group']}: {worst['accuracy']:.4f} {worst['accuracy_ci']} (n={worst['n']}); "
        f"equalized odds difference {eod_in_words(summary)}"
    )
    out.print(f"report: {(out_dir or run / 'audit') / 'report.html'}")


@app.command("compare")
def compare_cmd(
    run_a: Path,
    run_b: Path,
    spec: Optional[str] = typer.Argument(None),
    by: str = typer.Option(...),
    target: Optional[str] = typer.Option(None),
    split: str = SPLIT,
    n_boot: int = typer.Option(1000),
    min_n: int = typer.Option(30),
    seed: int = SEED,
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN_B/compare."),
    precision: str = PRECISION,
):
    """Two runs on the same groups side by side: accuracy, and B - A with a paired bootstrap interval."""
    _hardware(precision)
    from .probes.audit import compare

    summary = compare(run_a, run_b, spec, by=_csv(by), split=split, target=target, n_boot=n_boot, min_n=min_n, seed=seed, out=out_dir)
    for r in summary["groups"]:
        label = ", ".join(f"{k}={v}" for k, v in r["group"].items()) or "overall"
        out.print(f"{label}: A {r['accuracy_a']:.4f}  B {r['accuracy_b']:.4f}  B-A {r['difference']:+.4f} {r['difference_ci']}")
    out.print(f"report: {(out_dir or run_b / 'compare') / 'report.html'}")


@app.command("predict")
def predict_cmd(
    run: Path,
    source: str = typer.Argument(..., metavar="folder:PATH"),
    detect: bool = typer.Option(False, help="Find and crop faces first (see --detector)."),
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
    method: str = typer.Option("cam"),
    target: Optional[str] = typer.Option(None),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/predict."),
    precision: str = PRECISION,
    strict: bool = STRICT,
):
    """Predictions with probabilities and attribution overlays for a folder of your own photos."""
    _hardware(precision)
    from .probes.explain import predict

    summary = predict(
        run,
        source,
        detect=detect,
        detector=detector,
        upsample=upsample,
        min_score=min_score,
        method=method,
        target=target,
        out=out_dir,
        strict=strict,
    )
    out.print(
        f"{summary['n_faces']} faces in {summary['n_images']} photos; no face found in {len(summary['no_face'])}: "
        f"{', '.join(summary['no_face']) or '-'}"
    )
    out.print(f"report: {(out_dir or run / 'predict') / 'report.html'}")


# ----------------------------------------------------------------------------- keypoints
@app.command("sweep")
@train_options(
    "task",
    "points",
    "head",
    "attrs",
    "arch",
    "epochs",
    "batch",
    "opt",
    "size",
    "channels",
    "crop",
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
    seed: int = SEED,
    out_dir: Path = out_option("Sweep folder.", Path("runs/sweep")),
    quiet: bool = QUIET,
    precision: str = PRECISION,
    device: str = DEVICE,
    train_options: dict | None = None,
):
    """Train one run per setting (--lr x --convs) and compare them in one table and one figure."""
    _hardware(precision, device)
    from .keypoints.sweep import sweep
    from .train.engine import TrainConfig

    try:
        lrs = [float(v) for v in _csv(lr)]
        conv_counts = [int(v) for v in _csv(convs)] if convs else [None]
    except ValueError:
        raise FacelabError(f"--lr {lr!r} / --convs {convs!r}: expected comma-separated numbers") from None
    base = TrainConfig(spec=spec, seed=seed, out=str(out_dir), **train_options)
    result = sweep(base, lrs=lrs, convs=conv_counts, out=out_dir, quiet=quiet)
    for r in result["settings"]:
        out.print(f"{r['setting']}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.items() if k.startswith("val_") and v is not None))
    out.print(f"best by {result['ranked_by']}: {result['best']['setting']}; report: {out_dir / 'report.html'}")


@app.command("export")
def export_cmd(
    run: Path,
    format_: str = typer.Option("csv", "--format", help="csv: image,point,x,y in the source image's pixels."),
    split: str = typer.Option("valid", help="train, valid or test."),
    spec: Optional[str] = typer.Option(None, help="Another data SPEC."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/predictions_SPLIT.csv."),
):
    """A keypoint run's predictions as a submission-style CSV."""
    from .keypoints.export import export

    out.print(f"wrote {export(run, fmt=format_, split=split, spec=spec, out=out_path)}")


@app.command("landmarks")
def landmarks_cmd(
    run: Path,
    source: str = typer.Argument(..., metavar="folder:PATH"),
    margin: Optional[float] = typer.Option(None, help="Border around each detected face (default: as in training)."),
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
    landmarker: str = typer.Option("net", help="net (the run's network) or dlib (dlib's 68-point predictor, facelab[faces])."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/landmarks."),
    precision: str = PRECISION,
    strict: bool = STRICT,
):
    """Detect faces in your photos, predict their landmarks, and draw them on the full photos."""
    _hardware(precision)
    from .keypoints.photos import landmarks

    summary = landmarks(
        run,
        source,
        margin=margin,
        detector=detector,
        upsample=upsample,
        min_score=min_score,
        landmarker=landmarker,
        out=out_dir,
        strict=strict,
    )
    out.print(
        f"{summary['n_faces']} faces in {summary['n_images']} photos; no face found in {len(summary['no_face'])}: "
        f"{', '.join(summary['no_face']) or '-'}"
    )
    out.print(f"report: {(out_dir or run / 'landmarks') / 'report.html'}")


@app.command("detect")
def detect_cmd(
    source: str = typer.Argument(..., metavar="SPEC|PATH", help="A photo, a folder of photos, or a data SPEC."),
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
    out_dir: Path = out_option("Folder for faces.json, faces.csv, the contact sheet and report.html.", Path("runs/detect")),
    json_: bool = typer.Option(False, "--json", help="Print faces.json's content."),
    quiet: bool = QUIET,
    strict: bool = STRICT,
):
    """Find the faces in photos: boxes (photo pixels) and scores as CSV and JSON, and a contact sheet."""
    from .keypoints.faces import detect

    result = detect(source, detector=detector, upsample=upsample, min_score=min_score, out=out_dir, strict=strict, quiet=quiet or json_)
    if json_:
        return _print_json(result)
    n_faces = sum(len(im["faces"]) for im in result["images"])
    out.print(f"{n_faces} faces in {len(result['images'])} photos ({result['detector']}); report: {out_dir / 'report.html'}")


@data_app.command("label")
def data_label_cmd(
    spec: str = typer.Argument(..., metavar="SPEC|PATH", help="A folder of photos (folder:PATH) or a data SPEC."),
    out_dir: Path = out_option("Folder for labels.xml and summary.json (an interrupted run continues there).", None),
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
    quiet: bool = QUIET,
    strict: bool = STRICT,
):
    """dlib's 68 points for every photo with one face, in dlib's XML layout: train on it with 300w:OUT/labels.xml."""
    from .keypoints.faces import label

    if out_dir is None:
        raise FacelabError("give --out DIR for labels.xml and summary.json")
    summary = label(spec, out=out_dir, detector=detector, upsample=upsample, min_score=min_score, strict=strict, quiet=quiet)
    out.print(
        f"labelled {summary['n_faces']} of {summary['n_images']} photos ({len(summary['skipped'])} skipped); "
        f"train on them: facelab train 300w:{out_dir / 'labels.xml'} --task keypoints"
    )


# ----------------------------------------------------------------------------- web page, webcam
@app.command("serve")
def serve_cmd(
    runs: list[Path] = typer.Argument(..., metavar="RUN [RUN ...]"),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (only this machine by default)."),
    port: int = typer.Option(8000),
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
    precision: str = PRECISION,
):
    """A local web page: drop a photo or start the webcam; predictions, CAM overlay, landmarks."""
    _hardware(precision)
    from .web.app import serve

    out.print(f"facelab serving {len(runs)} run(s) on http://{host}:{port}/ (Ctrl+C to stop)")
    serve(runs, host, port, detector=detector, upsample=upsample, min_score=min_score)


@app.command("webcam")
def webcam_cmd(
    runs: list[Path] = typer.Argument(..., metavar="RUN [RUN ...]"),
    source: str = typer.Option("0", help="Camera number or a VIDEO_FILE."),
    out_path: Optional[Path] = typer.Option(None, "--out", help="Write an annotated video (e.g. annotated.webm) instead of a window."),
    target: Optional[str] = typer.Option(None, help="Output whose CAM is shown."),
    max_frames: Optional[int] = typer.Option(None),
    quiet: bool = QUIET,
    detector: str = DETECTOR,
    upsample: Optional[int] = UPSAMPLE,
    min_score: Optional[float] = MIN_SCORE,
    precision: str = PRECISION,
):
    """The same overlay as the web page on an OpenCV window, or into an annotated video file."""
    _hardware(precision)
    from .web.webcam import webcam

    result = webcam(runs, source, out_path, target, max_frames, quiet, detector=detector, upsample=upsample, min_score=min_score)
    out.print(
        f"{result['frames']} frames, {result['faces']} faces, {result['frames_per_s']:.1f} frames/s"
        + (f"; wrote {result['out']}" if result["out"] else "")
    )


# ----------------------------------------------------------------------------- benchmarks
@bench_app.command("data")
def bench_data_cmd(
    spec: str,
    size: int = typer.Option(64),
    n: int = typer.Option(2000, help="Images to time."),
    json_: bool = JSON,
    precision: str = PRECISION,
):
    """Images/s: a per-epoch PIL decode + torchvision DataLoader vs the decode-once cache."""
    _hardware(precision)
    from .bench import bench_data

    result = bench_data(spec, size, n, quiet=json_)
    _print_json(result) if json_ else out.print(result)


@bench_app.command("train")
def bench_train_cmd(json_: bool = JSON, steps: int = typer.Option(20), precision: str = PRECISION, device: str = DEVICE):
    """Training images/s of the real loop vs a pure-compute step, darknet64@64 and resnet18@112."""
    _hardware(precision, device)
    from .bench import bench_train

    result = bench_train(steps=steps, quiet=json_)
    _print_json(result) if json_ else out.print(result)


@bench_app.command("cam")
def bench_cam_cmd(json_: bool = JSON, frames: int = typer.Option(30, help="Frames timed per setting."), precision: str = PRECISION):
    """Maps/s of CAM and Grad-CAM (batch 1, with overlay) on darknet64@128 and resnet18@224, against a full-backward Grad-CAM."""
    _hardware(precision)
    from .bench import bench_cam

    result = bench_cam(frames=frames, quiet=json_)
    _print_json(result) if json_ else out.print(result)


@bench_app.command("serve")
def bench_serve_cmd(json_: bool = JSON, frames: int = typer.Option(40), precision: str = PRECISION):
    """Frames/s of the web API (640x480 JPEG, face detection, darknet64@128 CAM) against the analysis called directly."""
    _hardware(precision)
    from .bench import bench_serve

    result = bench_serve(frames=frames, quiet=json_)
    _print_json(result) if json_ else out.print(result)


def _terminated(signum, frame):
    raise RunStopped(signum, "stopped by SIGTERM")


def main() -> None:
    """Entry point: user errors become one line on stderr and exit status 2, never a traceback."""
    try:
        import os

        from .hardware import thread_count

        os.environ.setdefault("OMP_NUM_THREADS", str(thread_count()))  # read by torch when it loads
        signal.signal(signal.SIGTERM, _terminated)  # training installs its own, resumable handling
        app()
    except RunStopped as exc:
        err.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except FacelabError as exc:
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; a training run continues with: facelab train --resume RUN", highlight=False)
        sys.exit(130)
