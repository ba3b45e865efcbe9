"""The command line's options, each declared once: the ones many commands share (``--precision``, ``--device``,
``--quiet``, ``--json``, ``--seed``, ``--strict``, the face finder's), TrainConfig's (from its fields' help), a
study's own (from its ``STUDY``), and ``--config FILE``. :func:`takes` gives a command the ones it names; the command
receives a :class:`~facelab.hardware.Runtime` built from ``--precision``/``--device`` instead of the two strings."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple, Optional

import typer
from rich.console import Console

from .errors import FacelabError
from .ranges import DETECTOR_SCORE_BOUNDS, SEED_BOUNDS, UPSAMPLE_BOUNDS, Bounds, check_range, with_range
from .studies.registry import comma_list

if TYPE_CHECKING:
    from .studies.protocol import StudyResult


class Shared(NamedTuple):
    """An option many commands share: its flag (None: from its name), type, default, help and range."""

    flag: str | None
    kind: object
    default: object
    help: str
    bounds: Bounds | None = None


SHARED = {
    name: Shared(*declared)
    for name, declared in {
        "precision": ("--precision", str, "auto", "auto (bf16 only where the hardware computes it natively), bf16 or fp32."),
        "device": ("--device", str, "auto", "auto (a CUDA GPU when present), cpu or cuda."),
        "quiet": (None, bool, False, "No progress bars."),
        "json_": ("--json", bool, False, "Print JSON instead of a table."),
        "seed": (None, int, 0, "Seed: the same seed on the same machine gives the same figures.", SEED_BOUNDS),
        "strict": ("--strict", bool, False, "Stop at the first unreadable image instead of skipping it (exit 2)."),
        "detector": (
            "--detector",
            str,
            "auto",
            "Face detector: auto (dlib's HOG with facelab[faces] installed, else haar), dlib-hog, dlib-cnn or haar.",
        ),
        "upsample": (
            "--upsample",
            Optional[int],
            None,
            "Search an upsampled photo this many times (finds smaller faces; default: dlib 1, haar 0).",
            UPSAMPLE_BOUNDS,
        ),
        "min_score": (
            "--min-score",
            Optional[float],
            None,
            "Drop detections scoring below this (default: dlib-hog 0.1, calibrated on real photos; dlib-cnn 0).",
            DETECTOR_SCORE_BOUNDS,
        ),
        "config": (
            "--config",
            Optional[Path],
            None,
            "A TOML, YAML or JSON file of options, or a run's config.json (those typed on the command line win).",
        ),
        "jitter": ("--jitter", int, 2, "Random shift of up to this many pixels each step.", (0, 64)),
        "blur": ("--blur", float, 0.0, "Gaussian blur sigma applied every 4 steps (0 = off).", (0, 20)),
        "param": ("--param", str, "pixel", "pixel or fourier parametrisation."),
        "decorrelate": ("--decorrelate/--no-decorrelate", bool, False, "Step in decorrelated colour space."),
        "budget": (
            "--budget",
            Optional[float],
            None,
            "How far from the start image, in pixel units (projected steps of 2.5 x budget / steps; 0: unbounded, at --lr). "
            "Default: l2 0.07 x sqrt(values), 7.8 for 3 x 64 x 64; linf 0.06.",
            (0, None),
        ),
        "budget_norm": ("--budget-norm", str, "l2", "The budget's norm: l2 (over the image) or linf (per value)."),
    }.items()
}
# A group a command names -> the options it adds, and what the command receives for them.
GROUPS = {
    "runtime": ("precision", "device"),  # -> runtime: Runtime
    "probe": ("precision",),  # -> runtime: Runtime on the CPU
    "faces": ("detector", "upsample", "min_score"),  # -> faces: dict of the three
    "ascent": ("jitter", "blur", "param", "decorrelate", "budget", "budget_norm"),  # -> reg: the gradient ascent's Regularisers
}
USAGE_ERROR = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")  # typer's own click's
IMAGE_HELP = "An image file, or SPEC#ITEM: one item of a data set (synth:64#3, celeba:/data/celeba#000123.jpg)."


def say(text: str) -> None:
    """One line of a command's output, printed as it is (no markup, no highlighting)."""
    say.console.print(text, markup=False, highlight=False, soft_wrap=True)


say.console = Console()


def csv_list(text: str | None) -> list[str]:
    return comma_list(text) or []


def print_json(obj) -> None:
    sys.stdout.write(json.dumps(obj, indent=2) + "\n")


def out_option(about: str, default: Path | None = None):
    return typer.Option(default, "--out", help=about)


def example(line: str):
    """Give a command's --help one example, after its description (every command has one: a test walks them)."""

    def add(command):
        command.__doc__ = f"{inspect.cleandoc(command.__doc__ or '')}\n\nExample: {line}"  # dedented: the example has no indent
        return command

    return add


def number(default, about: str, bounds: Bounds, flag: str | None = None):
    """A number option that says its range in its help and refuses a value outside it, in one line, as it is parsed
    (before the command runs, so before anything is written)."""

    def in_range(param: typer.CallbackParam, value):
        check_range(param.opts[0], value, bounds)
        return value

    return typer.Option(default, *([flag] if flag else []), help=with_range(about, bounds), callback=in_range)


def _parameter(name: str, kind, default, about: str, flag: str | None = None, bounds: Bounds | None = None) -> inspect.Parameter:
    inner = [t for t in typing.get_args(kind) if t is not type(None)]
    if len(inner) == 1:  # X | None, as TrainConfig writes it
        kind = inner[0]
    if default is None:
        kind = Optional[kind]
    if bounds is not None:
        option = number(default, about, bounds, flag)
    else:
        option = typer.Option(default, flag, help=about) if flag else typer.Option(default, help=about)
    return inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, annotation=kind, default=option)


def _shared_parameter(name: str) -> inspect.Parameter:
    shared = SHARED[name]
    return _parameter(name, shared.kind, shared.default, shared.help, shared.flag, shared.bounds)


def train_parameters(names, defaults: dict, helps: dict | None = None) -> list[inspect.Parameter]:
    """TrainConfig's options ``names``. Where the command sets its own default (``defaults``) the help's "Default: ..."
    sentence, which names TrainConfig's, goes (the help shows the command's); ``helps`` names a default in words
    instead (a study's: "the protocol's (30)")."""
    from .training.config import cli_options

    options = cli_options()
    about = {n: options[n].help for n in names}
    for n in names:
        if (helps or {}).get(n) is not None or defaults.get(n) is not None:
            about[n] = _with_default(about[n], (helps or {}).get(n))
    return [_parameter(n, options[n].kind, defaults.get(n, options[n].default), about[n], bounds=options[n].bounds) for n in names]


def _with_default(text: str, default: str | None) -> str:
    """An option's help with its "Default: ..." sentence replaced by ``default`` (left out for None), its range kept."""
    about, _, bounds = text.partition(" Range: ")
    about = about.split(" Default:")[0].rstrip(".") + "."
    return about + (f" Default: {default}." if default else "") + (f" Range: {bounds}" if bounds else "")


def _shown(value) -> str:
    """A protocol's setting as help text: per part where it is given per part, "none" for unset."""
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ",".join(map(str, value))
    return "none" if value is None else str(value)


def takes(*names: str, train=(), helps: dict | None = None, **defaults):
    """Give the command the shared options or groups ``names`` and TrainConfig's options ``train`` (``defaults``
    overriding theirs). It receives ``runtime`` (for "runtime"/"probe"), ``faces`` (for "faces"), ``train_options``
    (a dict, for ``train``) and every other option under its own name; ``--config FILE`` fills what was not typed."""
    flat = [o for n in names for o in GROUPS.get(n, (n,))]
    if train == "all":
        from .training.config import cli_options

        train = tuple(cli_options())

    def wrap(command):
        added = [_shared_parameter(n) for n in flat] + train_parameters(train, defaults, helps)
        received = {"runtime", "faces", "reg", "train_options"} | set(flat)
        own = [p for p in inspect.signature(command).parameters.values() if p.name not in received]

        @functools.wraps(command)
        def wired(**given):
            given = with_config_file(given)
            if "precision" in given:
                from .hardware import runtime

                given["runtime"] = runtime(given.pop("precision"), given.pop("device", "cpu" if "probe" in names else "auto")).apply()
            if "faces" in names:
                given["faces"] = {k: given.pop(k) for k in GROUPS["faces"]}
            if "ascent" in names:
                from .probes.ascent import Regularisers

                jitter, blur, param, decorrelate, budget, budget_norm = (given.pop(k) for k in GROUPS["ascent"])
                given["reg"] = Regularisers(jitter, blur, param=param, decorrelate=decorrelate, budget=budget, budget_norm=budget_norm)
            if train:
                chosen = {n: given.pop(n) for n in train}
                for listed in ("attrs", "groups"):  # typed as one comma-separated string
                    if isinstance(chosen.get(listed), str):
                        chosen[listed] = csv_list(chosen[listed])
                given["train_options"] = chosen
            return command(**given)

        if "config" in flat:  # typer hands the command's context over: it tells what was typed from what was left
            added.append(inspect.Parameter("typer_context", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context))
        wired.__signature__ = inspect.signature(command).replace(parameters=own + added)
        return wired

    return wrap


def with_config_file(given: dict) -> dict:
    """``--config FILE``: its keys (option names, - or _) fill the options left at their defaults on the command line."""
    path, ctx = given.pop("config", None), given.pop("typer_context", None)
    if path is None:
        return given
    values = {ALIASES.get(k, k): v for k, v in read_config_file(Path(path)).items()}
    values = {k: v for k, v in values.items() if k in given or not _run_record_only(k, v)}
    unknown = sorted(set(values) - set(given))
    if unknown:
        raise FacelabError(f"{path}: no option {', '.join(unknown)} here; the options are {', '.join(sorted(given))}")
    for key, value in values.items():
        if ctx.get_parameter_source(key).name in ("DEFAULT", "DEFAULT_MAP"):
            given[key] = _as_typed(ctx, key, ",".join(map(str, value)) if isinstance(value, list) else value, path)
    return given


def _as_typed(ctx, name: str, value, path: Path):
    """A --config value through the same type and range checks as one typed on the command line, or one line naming
    the file."""
    param = next(p for p in ctx.command.params if p.name == name)
    try:
        return param.process_value(ctx, value)
    except USAGE_ERROR as exc:
        raise FacelabError(f"--config {path}: {exc.format_message()}") from None
    except FacelabError as exc:  # out of the option's range
        raise FacelabError(f"--config {path}: {exc}") from None


ALIASES = {"out": "out_dir"}  # a run's config.json names the run folder as TrainConfig does


def _run_record_only(key: str, value) -> bool:
    """A key of a run's config.json that is no option of the command, left out when it holds its default: what a run
    records of itself (``from_task``: which settings its task chose) and settings no command line sets."""
    from dataclasses import MISSING

    from .training.config import setting_field

    if key == "from_task":
        return True
    field = setting_field(key)
    return field is not None and field.default is not MISSING and value == field.default


def read_config_file(path: Path) -> dict:
    """A TOML (.toml), YAML (.yaml/.yml) or JSON (.json) file's options as {name: value}, names with - written as _.
    A run's config.json is read too: its "train" block holds the run's settings."""
    if not path.is_file():
        raise FacelabError(f"--config {path}: no such file")
    if path.suffix not in (".toml", ".yaml", ".yml", ".json"):
        raise FacelabError(f"--config {path}: give a .toml, .yaml, .yml or .json file (a run's config.json)")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
            data = data["train"] if isinstance(data, dict) and isinstance(data.get("train"), dict) else data
        elif path.suffix == ".toml":
            import tomllib

            data = tomllib.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as exc:  # tomllib.TOMLDecodeError, yaml.YAMLError, json.JSONDecodeError: the file's own fault, in one line
        raise FacelabError(f"--config {path}: not readable as {path.suffix[1:]}: {str(exc).splitlines()[0]}") from None
    if not isinstance(data, dict):
        raise FacelabError(f"--config {path}: expected option = value pairs")
    return _one_level(path, {k.replace("-", "_"): v for k, v in data.items()})


def _one_level(path: Path, data: dict) -> dict:
    """A file's options with TrainConfig's sections (``[optim]`` in TOML, ``optim:`` in YAML) opened: each section's
    options by their own names, as the command line has them; one in the wrong section is one line naming both."""
    from .training.sections import SECTION_OF, SECTIONS

    flat = {k: v for k, v in data.items() if not (k in SECTIONS and isinstance(v, dict))}
    for name, options in ((k, v) for k, v in data.items() if k not in flat):
        for key, value in options.items():
            key = key.replace("-", "_")
            if SECTION_OF.get(key) != name:
                home = f"; it belongs in [{SECTION_OF[key]}]" if key in SECTION_OF else ""
                raise FacelabError(f"--config {path}: {key} is no option of [{name}]{home}")
            if key in flat:
                raise FacelabError(f"--config {path}: {key} is given twice, in [{name}] and at the top")
            flat[key] = value
    return flat


# ----------------------------------------------------------------------------- a study's command, from its declaration
def study_done(summary: StudyResult, json_: bool, lines: list[str]) -> None:
    """The summary as JSON, or the study's headline figures, its departures and where its report is."""
    if json_:
        return print_json(summary.to_json())
    for line in lines:
        say(line)
    for line in summary.departures:
        say(f"departs from the protocol: {line}")
    say(f"report: {Path(summary.folder) / 'report.html'}")


def study_command(study):
    """The ``facelab study NAME`` command of ``study`` (a registry ``Study``); it prints with :func:`study_done`."""

    def command(spec=None, out_dir=None, json_=False, quiet=False, runtime=None, train_options=None, **own):
        chosen = {o.name: o.parse(own.pop(o.name)) if o.parse else own.pop(o.name) for o in study.options}
        summary = study.run(spec, out=out_dir, quiet=quiet, runtime=runtime, **own, **chosen, **train_options)
        study_done(summary, json_, study.headline(summary))

    spec = inspect.Parameter(
        "spec", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=Optional[str], default=typer.Argument(None, help="Data SPEC.")
    )
    out = _parameter("out_dir", Optional[Path], None, f"Study folder (default runs/study_{study.name}).", "--out")
    own = [_parameter(o.name, o.type, o.default, o.help, bounds=o.bounds) for o in study.options]
    receives = ["json_", "quiet", "runtime", "train_options"]
    command.__signature__ = inspect.Signature([spec, out, *own, *(inspect.Parameter(n, inspect.Parameter.KEYWORD_ONLY) for n in receives)])
    command.__doc__ = f"{study.summary}\n\nExample: facelab study {study.name} {study.example}"
    groups = ("runtime", "quiet", "json_", "config") + (("seed",) if study.seeded else ())
    # a study's scale options default to None: the study's protocol decides (its help says what), a value typed departs
    protocol = {name: f"the protocol's ({_shown(study.protocol.settings.get(name))})" for name in study.scale}
    return takes(*groups, train=study.scale, helps=protocol, **dict.fromkeys(study.scale))(command)


class StudyGroup(typer.core.TyperGroup):
    """``facelab study``: one command per registered study, each built (and its module imported) when it is used."""

    def list_commands(self, ctx):
        from .studies.registry import study_names

        return study_names()

    def get_command(self, ctx, name):
        from .studies.registry import get_study, study_names

        if name not in study_names():
            return None
        single = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
        single.command(name)(study_command(get_study(name)))
        return typer.main.get_command(single)
