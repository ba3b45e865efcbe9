"""The ``facelab`` command: parses options and calls the public functions, nothing more. Options are declared once
(:mod:`facelab.cli_options`); ``facelab study NAME`` commands come from the study registry."""

from __future__ import annotations

import functools
import json
import signal
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from . import cli_probes
from .cli_options import USAGE_ERROR, StudyGroup, csv_list, example, number, out_option, print_json, say, takes
from .errors import FacelabError, RunStopped
from .model_export import FORMATS
from .ranges import N_BOOT_BOUNDS, SIZE_BOUNDS
from .results import Summary

app = typer.Typer(
    add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False, help="Train CNNs on faces, then take them apart."
)
data_app = typer.Typer(no_args_is_help=True, help="Data sources, the decode-once cache, synthetic faces.")
bench_app = typer.Typer(no_args_is_help=True, help="Speed measurements against a baseline in the same process.")
study_app = typer.Typer(
    cls=StudyGroup,
    no_args_is_help=True,
    help="The studies: a published protocol on your data (synthetic faces by default), published figures beside.",
)
app.add_typer(data_app, name="data")
app.add_typer(bench_app, name="bench")
app.add_typer(study_app, name="study")
app.registered_commands += cli_probes.commands.registered_commands  # looking inside, where it looks, keypoints, web
out = say.console
err = Console(stderr=True)

SPEC_OR_RUNS = typer.Argument(None, help="Data SPEC (default: the run's own).")
SPLIT = typer.Option("test", help="train, valid or test.")


# ----------------------------------------------------------------------------- data
@data_app.command("info")
@example("facelab data info celeba:/data/celeba")
@takes("json_")
def data_info_cmd(spec: str, json_=False):
    """Images, sizes, labels, splits and problems of a data SPEC."""
    from .data.info import data_info, info_rows
    from .data.spec import open_spec

    info = data_info(open_spec(spec), quiet=json_)
    if json_:
        return print_json(info.to_json())
    t = Table(title=f"facelab data info {spec}", show_header=False)
    for key, value in info_rows(info):
        t.add_row(key, value)
    out.print(t)


@data_app.command("cache")
@example("facelab data cache celeba:/data/celeba --size 64")
@takes("faces", train=("crop",), helps={"crop": "the data source's own (a folder of photos: detect, with facelab[faces])"})
def data_cache_cmd(
    spec: str,
    size: str = typer.Option("64", help="Pixels (64) or WIDTHxHEIGHT (80x60)."),
    out_dir: Optional[Path] = out_option("Cache folder (default: under $FACELAB_CACHE)."),
    margin: Optional[float] = number(None, "Extra border around box/landmark/face crops, as a fraction.", (0, 2)),
    workers: Optional[int] = number(
        None, "Decoding processes (default: the cores this process may use, shared with other facelab processes).", (1, 256)
    ),
    strict: bool = typer.Option(False, help="Stop on any unreadable image instead of skipping it."),
    faces=None,
    train_options=None,
):
    """Decode every image once into a memory-mappable uint8 array (resumes if interrupted)."""
    from .data.cache import build_cache, parse_size
    from .data.face_crops import FaceFinder
    from .data.spec import open_spec

    crop, finder = train_options["crop"], FaceFinder(**faces)
    cache = build_cache(open_spec(spec), parse_size(size), out_dir, crop, margin, workers, strict, finder=finder)
    m = cache.meta
    say(f"cache {cache.path}: {m['n']} images at {m['width']}x{m['height']}, {m['n_failed']} unreadable or without a face skipped")


@data_app.command("synth")
@example("facelab data synth faces --n 2000 --ids 20")
@takes("seed")
def data_synth_cmd(
    out_dir: Path = typer.Argument(..., metavar="OUT"),
    n: int = number(2000, "Number of images.", (1, 10_000_000)),
    ids: Optional[int] = number(None, "Number of persons (default: every image its own person).", (1, 10_000_000)),
    size: int = number(128, "Image size in pixels.", (32, 256)),
    correlate: list[str] = typer.Option([], help="A:B=P: in train, P(B|A) = P. Repeatable; add @valid,test for other splits."),
    spurious: list[str] = typer.Option([], help="A:background=P: background colour predicts A in train."),
    imbalance: list[str] = typer.Option([], help="A=P: fraction of positives of A in train."),
    seed=0,
):
    """Write synthetic faces in CelebA's layout, with 68/58 landmarks and region masks."""
    from .data.synth_export import write_synth

    path = write_synth(out_dir, n=n, ids=ids, size=size, seed=seed, correlate=correlate, spurious=spurious, imbalance=imbalance)
    say(f"wrote {n} synthetic faces to {path} (read it back with celeba:{path})")


@data_app.command("show")
@example("facelab data show synth:16 --out sheet.png")
@takes("strict")
def data_show_cmd(
    spec: str,
    n: int = number(16, "Images on the sheet (the first N).", (1, 1000)),
    size: int = number(128, "Pixels a side of each face on the sheet.", (16, 1024)),
    out_path: Path = out_option("The sheet PNG to write.", Path("contact_sheet.png")),
    strict=False,
):
    """A contact sheet PNG of the first N images with landmarks (and, for synth, region masks)."""
    from .data.spec import open_spec
    from .report.contact import contact_sheet

    say(f"wrote {contact_sheet(open_spec(spec), n, size, out_path, strict)}")


@data_app.command("validate-synth")
@example("facelab data validate-synth --out runs/validate_synth")
@takes("json_", "seed", "probe")
def validate_synth_cmd(out_dir: Path = out_option("Report folder.", Path("runs/validate_synth")), json_=False, seed=0, runtime=None):
    """Check the synthetic faces: attribute control, learnability, intervention, landmarks, bias knobs."""
    from .probes.synth_validity import validate_synth

    result = validate_synth(out_dir, seed=seed, quiet=json_, runtime=runtime).to_json()
    if json_:
        return print_json(result)
    out.print_json(json.dumps(result))
    say(f"report: {out_dir / 'report.html'}")


@data_app.command("label")
@example("facelab data label folder:my_photos --out labels")
@takes("faces", "quiet", "strict")
def data_label_cmd(
    spec: str = typer.Argument(..., metavar="SPEC|PATH", help="A folder of photos (folder:PATH) or a data SPEC."),
    out_dir: Path = out_option("Folder for labels.xml and summary.json (an interrupted run continues there).", None),
    faces=None,
    quiet=False,
    strict=False,
):
    """dlib's 68 points for every photo with one face, in dlib's XML layout: train on it with 300w:OUT/labels.xml."""
    from .keypoints.faces import label

    if out_dir is None:
        raise FacelabError("give --out DIR for labels.xml and summary.json")
    summary = label(spec, out=out_dir, strict=strict, quiet=quiet, **faces)
    say(
        f"labelled {summary.n_faces} of {summary.n_images} photos ({len(summary.skipped)} skipped); "
        f"train on them: facelab train 300w:{out_dir / 'labels.xml'} --task keypoints"
    )


# ----------------------------------------------------------------------------- models, training
@app.command("models")
@example("facelab models")
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
@example("facelab train synth:2000 --attrs Smiling,Male --epochs 3 --out runs/smile")
@takes("runtime", "quiet", "seed", "config", train="all")
def train_cmd(
    spec: Optional[str] = typer.Argument(None, help="Data SPEC (celeba:PATH, synth:N, ...)."),
    out_dir: Optional[Path] = out_option("Run folder (default: runs/TASK-ARCH)."),
    resume: Optional[Path] = typer.Option(None, help="Continue the run in this folder where it stopped."),
    force: bool = typer.Option(False, help="Start again in an --out folder that holds a run (removes only what facelab wrote there)."),
    seed=0,
    quiet=False,
    runtime=None,
    train_options=None,
):
    """Train a network; writes config.json, metrics.csv, summary.json, checkpoints/, figures/, report.html."""
    from .report.run_report import run_warnings
    from .training.config import TrainConfig
    from .training.engine import train

    if resume is not None:
        summary = train(resume=resume, quiet=quiet)
    else:
        if spec is None:
            raise FacelabError("give a data SPEC (e.g. synth:2000 or celeba:/data/celeba), or --resume RUN")
        cfg = TrainConfig(spec=spec, out=str(out_dir or ""), seed=seed, **train_options)
        cfg.out = str(out_dir or Path("runs") / f"{cfg.task}-{cfg.model.arch}")
        summary = train(cfg, quiet=quiet, force=force, runtime=runtime)
    if summary is not None:  # None on DDP ranks other than 0
        out.print_json(json.dumps(summary.to_json()))
        for line in run_warnings(summary):
            err.print(line, highlight=False, markup=False, soft_wrap=True)


@app.command("eval")
@example("facelab eval runs/smile --split test")
@takes("runtime")
def eval_cmd(
    run: Path,
    spec: Optional[str] = SPEC_OR_RUNS,
    split: str = SPLIT,
    out_dir: Optional[Path] = out_option("Default: RUN/eval_SPLIT."),
    json_: bool = typer.Option(False, "--json", help="Print only the JSON (plain, one object) on stdout."),
    runtime=None,
):
    """Evaluate a run's best checkpoint on a split of its data (or of another SPEC); prints the result as JSON."""
    from .run import evaluate

    result = evaluate(run, spec, split, out_dir, runtime=runtime).to_json()
    print_json(result) if json_ else out.print_json(json.dumps(result))


@app.command("inversion")
@example("facelab inversion synth:3000,ids=20 --classes 20 --epochs 6 --out runs/inversion")
@takes(
    "runtime",
    "quiet",
    "seed",
    train=("arch", "size", "epochs", "batch", "lr", "weights", "inverted_fraction"),
    epochs=10,
    batch=64,
    inverted_fraction=0.05,
    arch="darknet64",
    size="64",
)
def inversion_cmd(
    spec: str = typer.Argument("synth:3000,ids=20"),
    classes: str = typer.Option("20", help="Identity counts, comma-separated (e.g. 20,100)."),
    opt: str = typer.Option("sgd", help="Optimisers to compare, comma-separated (sgd,adam)."),
    control: Optional[str] = typer.Option(None, help="inverted-trained: also train mostly on inverted faces."),
    out_dir: Path = out_option("Study folder.", Path("runs/inversion")),
    n_boot: int = number(1000, "Bootstrap resamples for the 95% intervals.", N_BOOT_BOUNDS),
    threshold: float = number(0.0, "Gap the lower 95% bound must stay above for emergence.", (-1, 1)),
    seed=0,
    quiet=False,
    runtime=None,
    train_options=None,
):
    """Upright vs inverted identity accuracy after every epoch, with intervals and the emergence epoch."""
    from .probes.inversion import inversion
    from .studies.registry import counts

    summary = inversion(
        spec, classes=counts(classes), opts=csv_list(opt), control=control, out=out_dir, seed=seed, n_boot=n_boot, threshold=threshold,
        quiet=quiet, runtime=runtime, **train_options,
    )  # fmt: skip
    for r in summary.runs:
        say(r.in_words())
    say(f"report: {out_dir / 'report.html'}")


@app.command("demo")
@takes("runtime")
def demo_cmd(
    out_dir: Path = out_option("Demo folder.", Path("runs/demo")),
    quick: bool = typer.Option(False, help="Smaller, for a smoke test."),
    runtime=None,
):
    """Everything facelab does, on the built-in synthetic faces; writes OUT/index.html.

    Cost: about 4 minutes on a 2-core AVX2-only laptop CPU in fp32 (4 min 5 s measured on an AMD EPYC Zen 3).

    It says its estimate for this machine before it starts; its index shows the seconds of each section.

    --quick: a smoke test of about 2 minutes.

    Example: facelab demo --out runs/demo"""
    from .demo_run import demo

    say(f"demo finished: open {demo(out_dir, quick=quick, runtime=runtime)}")


@app.command("export")
@example("facelab export runs/smile --format onnx")
def export_cmd(
    run: Path,
    format_: str = typer.Option("csv", "--format", help="; ".join(f"{e.name}: {e.help}" for e in FORMATS.entries()) + "."),
    split: str = typer.Option("valid", help="csv: train, valid or test."),
    spec: Optional[str] = typer.Option(None, help="csv: another data SPEC."),
    out_path: Optional[Path] = out_option("Default: RUN/predictions_SPLIT.csv, RUN/model.onnx or RUN/model.torchscript.pt."),
):
    """A run's network as ONNX or TorchScript (with its input contract beside it), or a keypoint run's predictions as CSV."""
    from .model_export import export

    say(f"wrote {export(run, fmt=format_, split=split, spec=spec, out=out_path)}")


# ----------------------------------------------------------------------------- benchmarks
def _bench_result(result: Summary, json_: bool) -> None:
    print_json(result.to_json()) if json_ else out.print(result.to_json())


@bench_app.command("data")
@example("facelab bench data synth:2000 --json")
@takes("json_", "probe")
def bench_data_cmd(
    spec: str,
    size: int = number(64, "Pixels a side of the decoded images.", SIZE_BOUNDS),
    n: int = number(2000, "Images to time.", (1, 10_000_000)),
    json_=False,
    runtime=None,
):
    """Images/s: a per-epoch PIL decode + torchvision DataLoader vs the decode-once cache."""
    from .bench import bench_data

    _bench_result(bench_data(spec, size, n, quiet=json_, runtime=runtime), json_)


@bench_app.command("train")
@example("facelab bench train --json")
@takes("json_", "runtime")
def bench_train_cmd(
    steps: int = number(20, "Training steps timed per network (after the warm-up).", (1, 100_000)), json_=False, runtime=None
):
    """Training images/s of the real loop vs a pure-compute step, darknet64@64 and resnet18@112."""
    from .bench import bench_train

    _bench_result(bench_train(steps=steps, quiet=json_, runtime=runtime), json_)


@bench_app.command("scale")
@example("facelab bench scale --n 20000 --size 128 --json")
@takes("json_", "runtime")
def bench_scale_cmd(
    n: int = number(20000, "Synthetic faces.", (1, 10_000_000)),
    size: int = number(128, "Pixels a side.", SIZE_BOUNDS),
    steps: int = number(40, "Training batches timed per setting.", (1, 100_000)),
    json_=False,
    runtime=None,
):
    """Memory and speed at scale: peak RSS against a tiny run, images held vs streamed from the memory map, per-rank DDP shards."""
    from .bench import bench_scale

    _bench_result(bench_scale(n, size, steps, quiet=json_, runtime=runtime), json_)


@bench_app.command("cam")
@example("facelab bench cam --json")
@takes("json_", "probe")
def bench_cam_cmd(frames: int = number(30, "Frames timed per setting.", (1, 100_000)), json_=False, runtime=None):
    """Maps/s of CAM and Grad-CAM (batch 1, with overlay) on darknet64@128 and resnet18@224, against a full-backward Grad-CAM."""
    from .bench import bench_cam

    _bench_result(bench_cam(frames=frames, quiet=json_, runtime=runtime), json_)


@bench_app.command("serve")
@example("facelab bench serve --json")
@takes("json_", "probe")
def bench_serve_cmd(frames: int = number(40, "Requests timed, each against a direct call.", (1, 100_000)), json_=False, runtime=None):
    """Frames/s of the web API (640x480 JPEG, face detection, darknet64@128 CAM) against the analysis called directly."""
    from .bench import bench_serve

    _bench_result(bench_serve(frames=frames, quiet=json_, runtime=runtime), json_)


def _terminated(signum, frame):
    raise RunStopped(signum, "stopped by SIGTERM")


# typer carries its own click; its usage errors (an unknown option, "lots" for a number) are told by this class


@functools.lru_cache(maxsize=1)
def command_line():
    """Every command, built once per process (a test calls :func:`main` hundreds of times)."""
    return typer.main.get_command(app)


def main() -> None:
    """Entry point: user errors (facelab's and the command line's own) become one line on stderr and exit status 2,
    never a traceback."""
    try:
        import os

        from .hardware import thread_count

        os.environ.setdefault("OMP_NUM_THREADS", str(thread_count()))  # read by torch when it loads
        signal.signal(signal.SIGTERM, _terminated)  # training installs its own, resumable handling
        code = command_line()(standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except USAGE_ERROR as exc:
        if type(exc).__name__ == "NoArgsIsHelpError":  # a group called bare: its help, as before
            exc.show()
            sys.exit(2)
        command = exc.ctx.command_path if exc.ctx else "facelab"
        err.print(f"error: {exc.format_message()} (see {command} --help)", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except RunStopped as exc:
        err.print(str(exc), highlight=False, markup=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except FacelabError as exc:
        from .files import undo_empty_outputs

        undo_empty_outputs()  # no folder holding only facelab's marker is left behind by a command that failed
        err.print(f"error: {exc}", highlight=False, markup=False, soft_wrap=True)
        sys.exit(2)
    except (KeyboardInterrupt, typer.Abort):
        err.print("interrupted; a training run continues with: facelab train --resume RUN", highlight=False)
        sys.exit(130)
