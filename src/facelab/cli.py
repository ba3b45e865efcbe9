"""The ``facelab`` command: parses options and calls the public functions, nothing more."""
from __future__ import annotations

import json
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from .errors import FacelabError, RunStopped

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Train CNNs on faces, then take them apart.")  # fmt: skip
data_app = typer.Typer(no_args_is_help=True, help="Data sources, the decode-once cache, synthetic faces.")
bench_app = typer.Typer(no_args_is_help=True, help="Speed measurements against a baseline in the same process.")
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
out = Console()
err = Console(stderr=True)


def _csv(text: str | None) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()] if text else []


def _print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


PRECISION = typer.Option("auto", "--precision", help="auto (bf16 only where the hardware computes it natively), bf16 or fp32.")
STRICT = typer.Option(False, "--strict", help="Stop at the first unreadable image instead of skipping it (exit 2).")
DEVICE = typer.Option("auto", "--device", help="auto (a CUDA GPU when present), cpu or cuda.")


def _hardware(precision: str, device: str = "auto") -> None:
    """Every network this command runs uses this precision (and device) unless a run says otherwise."""
    from .hardware import use_hardware

    use_hardware(precision, device)


# ----------------------------------------------------------------------------- data
@data_app.command("info")
def data_info_cmd(spec: str, json_: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")):
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
            value = ", ".join(f"{w}x{h}" for w, h in value[:6]) + (" ..." if len(value) > 6 else "")
        t.add_row(key, str(value))
    out.print(t)


@data_app.command("cache")
def data_cache_cmd(
    spec: str,
    size: str = typer.Option("64", help="Pixels (64) or WIDTHxHEIGHT (80x60)."),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Cache folder (default: under $FACELAB_CACHE)."),
    crop: Optional[str] = typer.Option(None, help="center, full, box or landmarks (default: per source)."),
    margin: Optional[float] = typer.Option(None, help="Extra border around box/landmark crops, as a fraction."),
    workers: Optional[int] = typer.Option(None, help="Decoding processes (default: the cores this process may use, shared with other facelab processes)."),
    strict: bool = typer.Option(False, help="Stop on any unreadable image instead of skipping it."),
):
    """Decode every image once into a memory-mappable uint8 array (resumes if interrupted)."""
    from .data.cache import build_cache, parse_size
    from .data.spec import open_spec

    cache = build_cache(open_spec(spec), parse_size(size), out_dir, crop, margin, workers, strict)
    m = cache.meta
    out.print(f"cache {cache.path}: {m['n']} images at {m['width']}x{m['height']}, {m['n_failed']} unreadable skipped")


@data_app.command("synth")
def data_synth_cmd(
    out_dir: Path = typer.Argument(..., metavar="OUT"),
    n: int = typer.Option(2000, help="Number of images."),
    ids: Optional[int] = typer.Option(None, help="Number of persons (default: every image its own person)."),
    size: int = typer.Option(128, help="Image size in pixels (32-256)."),
    seed: int = typer.Option(0),
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
def data_show_cmd(spec: str, n: int = typer.Option(16), size: int = typer.Option(128),
                  out_path: Path = typer.Option(Path("contact_sheet.png"), "--out"), strict: bool = STRICT):  # fmt: skip
    """A contact sheet PNG of the first N images with landmarks (and, for synth, region masks)."""
    from .data.spec import open_spec
    from .report.contact import contact_sheet

    path = contact_sheet(open_spec(spec), n, size, out_path, strict)
    out.print(f"wrote {path}")


@data_app.command("validate-synth")
def validate_synth_cmd(json_: bool = typer.Option(False, "--json"), out_dir: Path = typer.Option(Path("runs/validate_synth"), "--out"),
                       seed: int = typer.Option(0),
    precision: str = PRECISION):  # fmt: skip
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
def train_cmd(
    spec: Optional[str] = typer.Argument(None, help="Data SPEC (celeba:PATH, synth:N, ...)."),
    task: str = typer.Option("attr", help="attr, identity or keypoints."),
    points: str = typer.Option("all", help="For --task keypoints: nose (the nose tip) or all (every landmark)."),
    convs: Optional[int] = typer.Option(None, help="Conv layers of kpnet-small/kpnet-full (default 3 / 4)."),
    attrs: str = typer.Option("Smiling", help="Attributes for --task attr, comma-separated."),
    classes: int = typer.Option(20, help="Identities for --task identity (top-N by image count)."),
    min_images: int = typer.Option(2, help="Least images an identity needs to be chosen."),
    arch: str = typer.Option("darknet64"),
    out_dir: Optional[Path] = typer.Option(None, "--out", help="Run folder."),
    epochs: int = typer.Option(3),
    batch: int = typer.Option(128),
    lr: Optional[float] = typer.Option(None, help="Default: 0.05 for sgd, 1e-3 for adam/adamw."),
    opt: str = typer.Option("sgd", help="sgd, adam or adamw."),
    momentum: float = typer.Option(0.9),
    wd: float = typer.Option(5e-4),
    schedule: str = typer.Option("onecycle", help="onecycle, cosine or none."),
    size: str = typer.Option("64"),
    crop: Optional[str] = typer.Option(None),
    channels: int = typer.Option(3, help="3 (RGB) or 1 (grey)."),
    seed: int = typer.Option(0),
    weights: Optional[str] = typer.Option(None, help="imagenet (from the local torch cache) or a state-dict FILE."),
    balance: Optional[str] = typer.Option(None, help="Undersample training images to balance this attribute."),
    inverted_fraction: float = typer.Option(0.0, help="Fraction of training images shown upside down."),
    augment: bool = typer.Option(True, help="Flips, small shifts, brightness/contrast on whole batches."),
    devices: int = typer.Option(1, help="Processes/GPUs per node (DDP when > 1)."),
    num_nodes: int = typer.Option(1),
    cache: Optional[str] = typer.Option(None, help="Use this cache folder instead of the default one."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder where it stopped."),
    force: bool = typer.Option(False, help="Start again in an --out folder that holds a run (removes only what facelab wrote there)."),
    quiet: bool = typer.Option(False, help="No progress bar."), precision: str = PRECISION, device: str = DEVICE):
    """Train a network; writes config.json, metrics.csv, summary.json, checkpoints/, figures/, report.html."""
    _hardware(precision, device)
    from .train.engine import TrainConfig, train

    if resume is not None:
        summary = train(resume=resume, quiet=quiet)
    else:
        if spec is None:
            raise FacelabError("give a data SPEC (e.g. synth:2000 or celeba:/data/celeba), or --resume RUN")
        cfg = TrainConfig(
            spec=spec, out=str(out_dir or Path("runs") / f"{task}-{arch}"), task=task, attrs=_csv(attrs), classes=classes,
            min_images=min_images, arch=arch, epochs=epochs, batch=batch, lr=lr, opt=opt, momentum=momentum, wd=wd,
            schedule=schedule, size=size, crop=crop, channels=channels, seed=seed, weights=weights, balance=balance,
            inverted_fraction=inverted_fraction, augment=augment, precision=precision, device=device, devices=devices,
            num_nodes=num_nodes, cache=cache, points=points, convs=convs,
        )  # fmt: skip
        summary = train(cfg, quiet=quiet, force=force)
    if summary:
        out.print_json(json.dumps(summary))


@app.command("eval")
def eval_cmd(run: Path, spec: Optional[str] = typer.Argument(None), split: str = typer.Option("test"),
             out_dir: Optional[Path] = typer.Option(None, "--out"),
    precision: str = PRECISION, device: str = DEVICE):  # fmt: skip
    """Evaluate a run's best checkpoint on a split of its data (or of another SPEC)."""
    _hardware(precision, device)
    from .train.evaluate import evaluate

    out.print_json(json.dumps(evaluate(run, spec, split, out_dir, precision, device)))


@app.command("inversion")
def inversion_cmd(
    spec: str = typer.Argument("synth:3000,ids=20"),
    classes: str = typer.Option("20", help="Identity counts, comma-separated (e.g. 20,100)."),
    arch: str = typer.Option("darknet64"),
    epochs: int = typer.Option(10),
    opt: str = typer.Option("sgd", help="Optimisers to compare, comma-separated (sgd,adam)."),
    inverted_fraction: float = typer.Option(0.05, help="Share of training images shown upside down."),
    control: Optional[str] = typer.Option(None, help="inverted-trained: also train mostly on inverted faces."),
    out_dir: Path = typer.Option(Path("runs/inversion"), "--out"),
    size: str = typer.Option("64"),
    batch: int = typer.Option(64),
    lr: Optional[float] = typer.Option(None),
    weights: Optional[str] = typer.Option(None, help="imagenet or a state-dict FILE."),
    seed: int = typer.Option(0),
    n_boot: int = typer.Option(1000, help="Bootstrap resamples for the 95% intervals."),
    threshold: float = typer.Option(0.0, help="Gap the lower 95% bound must stay above for emergence."),
    quiet: bool = typer.Option(False), precision: str = PRECISION, device: str = DEVICE):
    """Upright vs inverted identity accuracy after every epoch, with intervals and the emergence epoch."""
    _hardware(precision, device)
    from .probes.inversion import emergence_in_words, inversion

    try:
        counts = [int(c) for c in _csv(classes)]
    except ValueError:
        raise FacelabError(f"--classes {classes!r}: expected numbers like 20,100") from None
    summary = inversion(spec, counts, arch, epochs, _csv(opt), inverted_fraction, control, out_dir, size, batch, lr,
                        weights, seed, n_boot, threshold, quiet)  # fmt: skip
    for r in summary["runs"]:
        out.print(f"{r['classes']} ids, {r['opt']}{' (inverted-trained)' if r['control'] else ''}: upright {r['upright_acc'][-1]:.3f}, "
                  f"inverted {r['inverted_acc'][-1]:.3f}, gap {r['final_gap']:.3f} {r['final_gap_ci']}, emergence epoch {emergence_in_words(r['emergence_epoch'])}")
    out.print(f"report: {out_dir / 'report.html'}")


@app.command("demo")
def demo_cmd(out_dir: Path = typer.Option(Path("runs/demo"), "--out"), quick: bool = typer.Option(False, help="Smaller, for a smoke test."), precision: str = PRECISION, device: str = DEVICE):
    """Everything facelab does, on the built-in synthetic faces; writes OUT/index.html."""
    _hardware(precision, device)
    from .demo import demo

    index = demo(out_dir, quick=quick)
    out.print(f"demo finished: open {index}")


# ----------------------------------------------------------------------------- looking inside
IMAGE_HELP = "An image file, or SPEC#ITEM: one item of a data set (synth:64#3, celeba:/data/celeba#000123.jpg)."


def _regularisers(jitter: int, blur: float, param: str, decorrelate: bool):
    from .probes.ascent import Regularisers

    return Regularisers(jitter=jitter, blur_sigma=blur, param=param, decorrelate=decorrelate)


def _report_line(summary: dict, out_dir: Path | None, run: Path, name: str) -> None:
    out.print_json(json.dumps(summary))
    out.print(f"report: {(out_dir or run / name) / 'report.html'}")


@app.command("layers")
def layers_cmd(run: Path, json_: bool = typer.Option(False, "--json"), precision: str = PRECISION):
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
def activations_cmd(run: Path, image: str = typer.Argument(..., help=IMAGE_HELP),
                    layers: str = typer.Option("1,2,3", help="Conv layers by number (1 = first) or module name."),
                    max_channels: int = typer.Option(64, help="Show at most this many channels per layer."),
                    out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/activations."),
    precision: str = PRECISION):  # fmt: skip
    """A grid of every channel's activation map per layer, beside the input."""
    _hardware(precision)
    from .probes.activations import activations

    _report_line(activations(run, image, _csv(layers), max_channels, out_dir), out_dir, run, "activations")


@app.command("rgb")
def rgb_cmd(run: Path, image: str = typer.Argument(..., help=IMAGE_HELP), layer: str = typer.Option(..., help="Layer number or name."),
            channels: str = typer.Option(..., help="Three channels a,b,c shown as R,G,B."),
            overlay: float = typer.Option(0.0, help="Blend over the input image (0 = no, 1 = only the channels)."),
            out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/rgb."),
    precision: str = PRECISION):  # fmt: skip
    """Three channels of one layer as one RGB image (each normalised, upsampled to the input size)."""
    _hardware(precision)
    from .probes.activations import rgb

    try:
        chans = [int(c) for c in _csv(channels)]
    except ValueError:
        raise FacelabError(f"--channels {channels!r}: expected three numbers like 0,5,7") from None
    _report_line(rgb(run, image, layer, chans, out_dir, overlay), out_dir, run, "rgb")


@app.command("dream")
def dream_cmd(run: Path, image: str = typer.Argument(..., help=IMAGE_HELP), layer: str = typer.Option(..., help="Layer number or name."),
              channel: str = typer.Option("0", help="Channel number, or all (every channel into one grid)."),
              objective: str = typer.Option("sum", help="sum, square or abs of the channel's outputs."),
              steps: int = typer.Option(100), lr: float = typer.Option(0.02, help="Step size in pixel units (0..1)."),
              jitter: int = typer.Option(2, help="Random shift of up to this many pixels each step."),
              blur: float = typer.Option(0.0, help="Gaussian blur sigma applied every 4 steps (0 = off)."),
              param: str = typer.Option("pixel", help="pixel or fourier parametrisation."),
              decorrelate: bool = typer.Option(False, help="Step in decorrelated colour space."),
              seed: int = typer.Option(0), out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/dream."),
              quiet: bool = typer.Option(False),
    precision: str = PRECISION):  # fmt: skip
    """Activation maximisation: gradient ascent on the photo to increase a channel's output."""
    _hardware(precision)
    from .probes.dream import dream

    summary = dream(run, image, layer, channel, objective, steps, lr, _regularisers(jitter, blur, param, decorrelate), seed, out_dir, quiet)
    _report_line(summary, out_dir, run, "dream")


@app.command("edit")
def edit_cmd(run: Path, image: str = typer.Argument(..., help=IMAGE_HELP), attr: str = typer.Option(..., help="An attribute the run predicts."),
             to: int = typer.Option(1, help="1: more of the attribute, 0: less."), steps: int = typer.Option(60),
             lr: float = typer.Option(0.002, help="Step size in pixel units (0..1)."), jitter: int = typer.Option(2),
             blur: float = typer.Option(0.0), param: str = typer.Option("pixel"), decorrelate: bool = typer.Option(False),
             seed: int = typer.Option(0), out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/edit."),
             quiet: bool = typer.Option(False),
    precision: str = PRECISION):  # fmt: skip
    """Class-driven editing: move the image toward ATTR = TO; writes before/after/difference and the logit per step."""
    _hardware(precision)
    from .probes.dream import edit

    summary = edit(run, image, attr, to, steps, lr, _regularisers(jitter, blur, param, decorrelate), seed, out_dir, quiet)
    _report_line(summary, out_dir, run, "edit")


@app.command("filters")
def filters_cmd(run: Path, layer: str = typer.Option("1", help="Conv layer number (1 = first) or name."),
                out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/filters."),
    precision: str = PRECISION):  # fmt: skip
    """The learned kernels of a conv layer as a grid (colour for RGB input, grey otherwise)."""
    _hardware(precision)
    from .probes.activations import filters

    _report_line(filters(run, layer, out_dir), out_dir, run, "filters")


# ----------------------------------------------------------------------------- where it looks, whom it fails
SPLIT_OPTION = typer.Option("test", help="train, valid or test.")


@app.command("cam")
def cam_cmd(run: Path, source: str = typer.Argument(..., metavar="IMAGES|SPEC", help="An image file, a folder of images, SPEC#ITEM, or a SPEC (a whole split)."),
            method: str = typer.Option("cam", help="cam, gradcam, gradcam++ or layercam."),
            target: Optional[str] = typer.Option(None, help="Attribute or class to explain (default: first attribute / predicted class)."),
            layer: Optional[str] = typer.Option(None, help="Layer for the Grad-CAM family (default: the last feature map)."),
            split: str = SPLIT_OPTION, limit: int = typer.Option(256, help="Images of the split to map."),
            out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/cam."), quiet: bool = typer.Option(False),
    colormap: str = typer.Option("viridis", help="Heat-map colours: viridis (default, perceptually uniform), inferno, magma, plasma, turbo or jet."),
            precision: str = PRECISION, strict: bool = STRICT):  # fmt: skip
    """Heat-map overlays; over a SPEC's split, galleries grouped by (true, predicted) label and each group's mean map."""
    _hardware(precision)
    from .probes.where import cam

    _report_line(cam(run, source, method, target, layer, split, limit, out_dir, quiet, strict, colormap), out_dir, run, "cam")


@app.command("cam-score")
def cam_score_cmd(run: Path, spec: Optional[str] = typer.Argument(None, help="Data SPEC (default: the run's own)."),
                  method: str = typer.Option("all", help="Comma-separated methods, or all that apply."),
                  target: Optional[str] = typer.Option(None), layer: Optional[str] = typer.Option(None),
                  split: str = SPLIT_OPTION, n: int = typer.Option(200, help="Images scored."),
                  tolerance: Optional[int] = typer.Option(None, help="Pointing-game tolerance in px (default 7% of the image side)."),
                  steps: int = typer.Option(16, help="Steps of the deletion and insertion curves."), seed: int = typer.Option(0),
                  out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/cam_score."), quiet: bool = typer.Option(False),
    precision: str = PRECISION):  # fmt: skip
    """Pointing game, energy in the true region, deletion/insertion AUC; beside a random map, the mean mask, and randomised weights."""
    _hardware(precision)
    from .probes.where import cam_score

    methods = None if method == "all" else _csv(method)
    _report_line(cam_score(run, spec, split, methods, target, layer, n, tolerance, steps, seed, out_dir, quiet), out_dir, run, "cam_score")


@app.command("audit")
def audit_cmd(run: Path, spec: Optional[str] = typer.Argument(None, help="Data SPEC (default: the run's own)."),
              by: str = typer.Option(..., help="Grouping attributes, comma-separated (all intersections are audited)."),
              target: Optional[str] = typer.Option(None, help="The attribute audited (default: the run's first)."),
              split: str = SPLIT_OPTION, n_boot: int = typer.Option(1000, help="Bootstrap resamples for the 95% intervals."),
              min_n: int = typer.Option(30, help="Groups with fewer images are flagged as small."),
              threshold: str = typer.Option("0.5", help="Decision threshold: a probability, or valid (chosen on the validation split)."),
              seed: int = typer.Option(0), out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/audit."),
    precision: str = PRECISION, strict: bool = STRICT):  # fmt: skip
    """Accuracy, TPR, FPR, FNR and selection rate per group and intersection, with bootstrap intervals."""
    _hardware(precision)
    from .probes.audit import audit

    summary = audit(run, spec, _csv(by), split, target, n_boot, min_n, threshold, seed, out_dir, strict)
    worst = summary["worst_group"]
    out.print(f"overall accuracy {summary['overall']['accuracy']:.4f} {summary['overall']['accuracy_ci']} on {summary['overall']['n']} images; "
              f"worst group {worst['group']}: {worst['accuracy']:.4f} {worst['accuracy_ci']} (n={worst['n']}); "
              f"equalized odds difference {summary['equalized_odds_difference']:.4f}")
    out.print(f"report: {(out_dir or run / 'audit') / 'report.html'}")


@app.command("compare")
def compare_cmd(run_a: Path, run_b: Path, spec: Optional[str] = typer.Argument(None), by: str = typer.Option(...),
                target: Optional[str] = typer.Option(None), split: str = SPLIT_OPTION, n_boot: int = typer.Option(1000),
                min_n: int = typer.Option(30), seed: int = typer.Option(0),
                out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN_B/compare."),
    precision: str = PRECISION):  # fmt: skip
    """Two runs on the same groups side by side: accuracy, and B - A with a paired bootstrap interval."""
    _hardware(precision)
    from .probes.audit import compare

    summary = compare(run_a, run_b, spec, _csv(by), split, target, n_boot, min_n, seed, out_dir)
    for r in summary["groups"]:
        label = ", ".join(f"{k}={v}" for k, v in r["group"].items()) or "overall"
        out.print(f"{label}: A {r['accuracy_a']:.4f}  B {r['accuracy_b']:.4f}  B-A {r['difference']:+.4f} {r['difference_ci']}")
    out.print(f"report: {(out_dir or run_b / 'compare') / 'report.html'}")


@app.command("predict")
def predict_cmd(run: Path, source: str = typer.Argument(..., metavar="folder:PATH"),
                detect: bool = typer.Option(False, help="Find and crop faces first (OpenCV Haar cascade)."),
                method: str = typer.Option("cam"), target: Optional[str] = typer.Option(None),
                out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/predict."),
    precision: str = PRECISION, strict: bool = STRICT):  # fmt: skip
    """Predictions with probabilities and attribution overlays for a folder of your own photos."""
    _hardware(precision)
    from .probes.where import predict

    summary = predict(run, source, detect, method, target, out_dir, strict=strict)
    out.print(f"{summary['n_faces']} faces in {summary['n_images']} photos; no face found in {len(summary['no_face'])}: "
              f"{', '.join(summary['no_face']) or '-'}")
    out.print(f"report: {(out_dir or run / 'predict') / 'report.html'}")


# ----------------------------------------------------------------------------- keypoints
@app.command("sweep")
def sweep_cmd(spec: str, task: str = typer.Option("keypoints", help="keypoints, attr or identity."),
              lr: str = typer.Option("1e-2,1e-3,1e-4", help="Learning rates, comma-separated."),
              convs: Optional[str] = typer.Option(None, help="Conv counts of kpnet, comma-separated (e.g. 3,4)."),
              points: str = typer.Option("all"), attrs: str = typer.Option("Smiling"), arch: str = typer.Option("kpnet-small"),
              epochs: int = typer.Option(10), batch: int = typer.Option(64), opt: str = typer.Option("adam"),
              size: str = typer.Option("64"), channels: int = typer.Option(1), crop: Optional[str] = typer.Option(None),
              seed: int = typer.Option(0), out_dir: Path = typer.Option(Path("runs/sweep"), "--out"), quiet: bool = typer.Option(False),
    precision: str = PRECISION, device: str = DEVICE):  # fmt: skip
    """Train one run per setting (--lr x --convs) and compare them in one table and one figure."""
    _hardware(precision, device)
    from .keypoints.sweep import sweep
    from .train.engine import TrainConfig

    try:
        lrs = [float(v) for v in _csv(lr)]
        conv_counts = [int(v) for v in _csv(convs)] if convs else [None]
    except ValueError:
        raise FacelabError(f"--lr {lr!r} / --convs {convs!r}: expected comma-separated numbers") from None
    base = TrainConfig(spec=spec, task=task, points=points, attrs=_csv(attrs), arch=arch, epochs=epochs, batch=batch, opt=opt,
                       size=size, channels=channels, crop=crop, seed=seed, out=str(out_dir))  # fmt: skip
    result = sweep(base, lrs, conv_counts, out_dir, quiet)
    for r in result["settings"]:
        out.print(f"{r['setting']}: " + ", ".join(f"{k} {v:.4g}" for k, v in r.items() if k.startswith("val_") and v is not None))
    out.print(f"best by {result['ranked_by']}: {result['best']['setting']}; report: {out_dir / 'report.html'}")


@app.command("export")
def export_cmd(run: Path, format_: str = typer.Option("csv", "--format", help="csv: image,point,x,y in the source image's pixels."),
               split: str = typer.Option("valid", help="train, valid or test."), spec: Optional[str] = typer.Option(None, help="Another data SPEC."),
               out_path: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/predictions_SPLIT.csv.")):  # fmt: skip
    """A keypoint run's predictions as a submission-style CSV."""
    from .keypoints.export import export

    out.print(f"wrote {export(run, format_, split, spec, out_path)}")


@app.command("landmarks")
def landmarks_cmd(run: Path, source: str = typer.Argument(..., metavar="folder:PATH"),
                  margin: Optional[float] = typer.Option(None, help="Border around each detected face (default: as in training)."),
                  out_dir: Optional[Path] = typer.Option(None, "--out", help="Default: RUN/landmarks."),
    precision: str = PRECISION, strict: bool = STRICT):  # fmt: skip
    """Detect faces in your photos, predict their landmarks, and draw them on the full photos."""
    _hardware(precision)
    from .keypoints.photos import landmarks

    summary = landmarks(run, source, margin, out_dir, strict)
    out.print(f"{summary['n_faces']} faces in {summary['n_images']} photos; no face found in {len(summary['no_face'])}: "
              f"{', '.join(summary['no_face']) or '-'}")
    out.print(f"report: {(out_dir or run / 'landmarks') / 'report.html'}")


# ----------------------------------------------------------------------------- web page, webcam
@app.command("serve")
def serve_cmd(runs: list[Path] = typer.Argument(..., metavar="RUN [RUN ...]"),
              host: str = typer.Option("127.0.0.1", help="Interface to bind (only this machine by default)."),
              port: int = typer.Option(8000),
    precision: str = PRECISION):  # fmt: skip
    """A local web page: drop a photo or start the webcam; predictions, CAM overlay, landmarks."""
    _hardware(precision)
    from .web.app import serve

    out.print(f"facelab serving {len(runs)} run(s) on http://{host}:{port}/ (Ctrl+C to stop)")
    serve(runs, host, port)


@app.command("webcam")
def webcam_cmd(runs: list[Path] = typer.Argument(..., metavar="RUN [RUN ...]"),
               source: str = typer.Option("0", help="Camera number or a VIDEO_FILE."),
               out_path: Optional[Path] = typer.Option(None, "--out", help="Write an annotated video (e.g. annotated.webm) instead of a window."),
               target: Optional[str] = typer.Option(None, help="Output whose CAM is shown."),
               max_frames: Optional[int] = typer.Option(None), quiet: bool = typer.Option(False),
    precision: str = PRECISION):  # fmt: skip
    """The same overlay as the web page on an OpenCV window, or into an annotated video file."""
    _hardware(precision)
    from .web.webcam import webcam

    result = webcam(runs, source, out_path, target, max_frames, quiet)
    out.print(f"{result['frames']} frames, {result['faces']} faces, {result['frames_per_s']:.1f} frames/s" +
              (f"; wrote {result['out']}" if result["out"] else ""))


# ----------------------------------------------------------------------------- benchmarks
@bench_app.command("data")
def bench_data_cmd(spec: str, size: int = typer.Option(64), n: int = typer.Option(2000, help="Images to time."),
                   json_: bool = typer.Option(False, "--json"),
    precision: str = PRECISION):  # fmt: skip
    """Images/s: a per-epoch PIL decode + torchvision DataLoader vs the decode-once cache."""
    _hardware(precision)
    from .bench import bench_data

    result = bench_data(spec, size, n, quiet=json_)
    _print_json(result) if json_ else out.print(result)


@bench_app.command("train")
def bench_train_cmd(json_: bool = typer.Option(False, "--json"), steps: int = typer.Option(20), precision: str = PRECISION, device: str = DEVICE):
    """Training images/s of the real loop vs a pure-compute step, darknet64@64 and resnet18@112."""
    _hardware(precision, device)
    from .bench import bench_train

    result = bench_train(steps=steps, quiet=json_)
    _print_json(result) if json_ else out.print(result)


@bench_app.command("cam")
def bench_cam_cmd(json_: bool = typer.Option(False, "--json"), frames: int = typer.Option(30, help="Frames timed per setting."), precision: str = PRECISION):
    """Maps/s of CAM and Grad-CAM (batch 1, with overlay) on darknet64@128 and resnet18@224, against a full-backward Grad-CAM."""
    _hardware(precision)
    from .bench import bench_cam

    result = bench_cam(frames=frames, quiet=json_)
    _print_json(result) if json_ else out.print(result)


@bench_app.command("serve")
def bench_serve_cmd(json_: bool = typer.Option(False, "--json"), frames: int = typer.Option(40), precision: str = PRECISION):
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
        err.print(str(exc), highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except FacelabError as exc:
        err.print(f"error: {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted; a training run continues with: facelab train --resume RUN", highlight=False)
        sys.exit(130)
