"""A run's settings (``TrainConfig``: the task, the run folder, the seed and the four sections of
:mod:`~facelab.training.sections`), saved as config.json: enough to reproduce the run."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from functools import cache
from types import UnionType
from typing import Any, NamedTuple, TypedDict, Union, get_args, get_origin, get_type_hints

from ..errors import FacelabError
from ..ranges import SEED_BOUNDS, Bounds, check_range
from .sections import SECTION_OF, SECTIONS, DataSettings, ModelSettings, OptimSettings, RuntimeSettings, Section, option

FEW_VALID = 20
DEFAULT_LR = {"sgd": 0.05, "adam": 1e-3, "adamw": 1e-3}
# What a run trains with where neither the user nor its task (``Task.defaults``) says otherwise.
GENERIC_DEFAULTS = {"arch": "darknet64", "epochs": 3, "batch": 128, "opt": "sgd", "schedule": "onecycle", "size": "64", "channels": 3}


class CliOption(NamedTuple):
    """One of TrainConfig's command-line options: the type typed, the default (a list's joined), help and range."""

    kind: object
    default: object
    help: str
    bounds: Bounds | None


def cli_options() -> dict[str, CliOption]:
    """TrainConfig's command-line options by field name: its own, then its sections'."""
    made = {}
    for holder, f in option_fields():
        if "help" in f.metadata:
            default = f.default if f.default is not MISSING else ",".join(f.default_factory())  # type: ignore[operator]
            kind = f.metadata.get("cli", _hints(holder)[f.name])
            made[f.name] = CliOption(kind, default, f.metadata["help"], f.metadata.get("bounds"))
    return made


@cache
def _hints(kind: type) -> Mapping[str, Any]:
    """A settings class's field types, read once (each config made checks every field's value against them)."""
    return get_type_hints(kind)


def option_fields() -> Iterator[tuple[type, Field]]:
    """(class, field) of every setting a run takes by name: TrainConfig's own, then each section's."""
    yield from ((TrainConfig, f) for f in fields(TrainConfig) if f.name not in SECTIONS)
    for kind in SECTIONS.values():
        yield from ((kind, f) for f in fields(kind))


def setting_field(name: str) -> Field | None:
    """The field of TrainConfig or of one of its sections called ``name`` (an option's name), if any."""
    return next((f for _, f in option_fields() if f.name == name), None)


def _type_name(kind) -> str:
    return {int: "a whole number", float: "a number", str: "text", bool: "true or false"}.get(kind, "a list of names")


class Batching(TypedDict):
    """What one optimiser step sees under DDP (config.json's ``batching``)."""

    world: int  # processes: devices x nodes
    batch_per_process: int
    effective_batch: int
    lr_rule: str


def _section(name: str, given: Section | dict[str, Any] | None, named: dict[str, Any]) -> Section:
    """Section ``name`` from what was given for it (a section, a mapping of its options as a nested config file holds
    them, or nothing) with the options ``named`` beside it on top."""
    if given is None or isinstance(given, dict):
        return SECTIONS[name](**{**(given or {}), **named})
    return replace(given, **named)


@dataclass(init=False)
class TrainConfig:
    """Everything that defines a run, in sections - ``data``, ``model``, ``optim``, ``runtime`` - that the parts of a
    training each take; saved as config.json's "train" block, one level deep as the command line names the options,
    and enough to reproduce the run.

    ``TrainConfig(spec="synth:2000", lr=0.01, arch="resnet18")``: every field of a section is also a keyword by its
    own name (its --option), so a config is written as it is typed; ``TrainConfig(optim=OptimSettings(lr=0.01))``
    gives a whole section (or ``optim={"lr": 0.01}``), and a field named beside it wins over the section's.
    ``dataclasses.replace(cfg, lr=0.1)`` works the same way. An unknown keyword is a TypeError."""

    task: str = option(
        "attr",
        "attr (yes/no attributes), identity (one of N persons), keypoints (landmarks) or rotation "
        "(head rotation in degrees, synthetic faces).",
    )
    out: str = "runs/train"
    seed: int = field(default=0, metadata={"bounds": SEED_BOUNDS})
    data: DataSettings = field(default_factory=DataSettings)
    model: ModelSettings = field(default_factory=ModelSettings)
    optim: OptimSettings = field(default_factory=OptimSettings)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    from_task: list[str] | None = None  # the settings the task chose because none was given (recorded in config.json)

    def __init__(self, **settings: Any):
        unknown = sorted(set(settings) - set(SECTION_OF) - {f.name for f in fields(TrainConfig)})
        if unknown:
            raise TypeError(f"TrainConfig got unknown settings {', '.join(unknown)}: its settings are `facelab train --help`'s options")
        for f in fields(self):
            if f.name in SECTIONS:  # a copy, with the fields named beside it: a section handed in is never changed
                setattr(
                    self, f.name, _section(f.name, settings.get(f.name), {k: v for k, v in settings.items() if SECTION_OF.get(k) == f.name})
                )
            else:
                value = settings.get(f.name, f.default)
                setattr(self, f.name, list(value) if isinstance(value, list) else value)
        self._check_types_and_bounds()
        self._take_task_defaults()
        for name in SECTIONS:
            getattr(self, name).check()
        from .task_registry import task_class

        if self.data.balance in ("reweight", "groupdro") and not task_class(self.task).weighs_images:
            raise FacelabError(f"--balance {self.data.balance}: --task {self.task} has no per-image loss to weigh; use it with --task attr")

    def _options(self) -> Iterator[tuple[type, object, Field]]:
        """(its class, the object holding it, field) of every setting: the config's own, then each section's."""
        for kind, f in option_fields():
            yield kind, (self if kind is TrainConfig else getattr(self, SECTION_OF[f.name])), f

    def _check_types_and_bounds(self) -> None:
        """Each option of the wrong type (``epochs = "lots"`` in a --config file, a string from a notebook) or out of
        its bounds is one line naming the option, the value and what it takes, before anything is written."""
        for kind, holder, f in self._options():
            value = getattr(holder, f.name)
            if value is None:
                continue
            flag = f"--{f.name.replace('_', '-')}"
            hint = _hints(kind)[f.name]
            union = get_origin(hint) in (Union, UnionType)
            expected = next(k for k in get_args(hint) if k is not type(None)) if union else hint
            if expected is float and isinstance(value, int) and not isinstance(value, bool):
                setattr(holder, f.name, value := float(value))
            if f.name == "size" and isinstance(value, int) and not isinstance(value, bool):
                continue  # 64 or "64" or "80x60"
            origin = get_origin(expected) or expected
            if not isinstance(value, origin) or (origin in (int, float) and isinstance(value, bool)):
                raise FacelabError(f"{flag} {value!r}: expected {_type_name(expected)}")
            check_range(flag, value, f.metadata.get("bounds"))

    def changed(self, **settings: Any) -> TrainConfig:
        """A copy with ``settings`` (options by name, ``lr=0.1``, or whole sections) changed: ``dataclasses.replace``,
        which takes an option's name too, spelled so that a type checker lets it."""
        return replace(self, **settings)

    def flat(self) -> dict[str, Any]:
        """The settings one level deep, by their option names: config.json's "train" block (docs/json.md)."""
        return {f.name: getattr(holder, f.name) for _, holder, f in self._options()}

    @classmethod
    def saved(cls, train: dict[str, Any]) -> "TrainConfig":
        """A run's TrainConfig from config.json's "train" block. Runs saved before tasks had defaults took none: their
        unset settings (a crop left to the data source) keep the meaning they had."""
        return cls(**{"from_task": [], **train})

    def _take_task_defaults(self) -> None:
        """Fill what the user left unset from the task's defaults (listed in ``from_task``), then the generic ones. A
        task's learning rate goes with its optimiser: given another --opt, the lr is that optimiser's default."""
        if self.from_task is not None:  # resolved before (a config.json read back)
            return
        from .task_registry import task_class

        own = task_class(self.task).defaults
        self.from_task = []
        for name in (*GENERIC_DEFAULTS, "crop", "weights", "min_steps"):
            section = getattr(self, SECTION_OF[name])
            if getattr(section, name) is None and name in own:
                setattr(section, name, own[name])
                self.from_task.append(name)
            elif getattr(section, name) is None:
                setattr(section, name, GENERIC_DEFAULTS.get(name))
        if self.optim.lr is None and "lr" in own and "opt" in self.from_task:
            self.optim.lr = own["lr"]
            self.from_task.append("lr")
        if self.optim.lr is None:
            assert self.optim.opt is not None  # resolved above
            self.optim.lr = DEFAULT_LR.get(self.optim.opt)

    def batching(self) -> Batching:
        """What one optimiser step sees under DDP: each of the ``devices x num_nodes`` processes takes ``batch``
        images, so the effective batch is their product; the learning rate is used as given, not scaled with it."""
        assert self.optim.batch is not None  # resolved in __init__
        return Batching(
            world=self.runtime.world,
            batch_per_process=self.optim.batch,
            effective_batch=self.optim.batch * self.runtime.world,
            lr_rule="as given: --lr is not scaled with the effective batch (scale it yourself, e.g. linearly, when adding processes)",
        )

    def settings(self) -> dict[str, Any]:
        """The options that apply to this run (a report's settings table): other tasks' options, momentum
        without SGD and unset options are left out."""
        from .task_registry import TASKS

        others = {o for e in TASKS.entries() for o in e.item.options} - set(TASKS.get(self.task).options if self.task in TASKS else ())
        if self.optim.opt != "sgd":
            others.add("momentum")
        if self.optim.robust is None:
            others |= {"robust_norm", "robust_steps"}
        return {k: v for k, v in self.flat().items() if k not in others and v is not None}
