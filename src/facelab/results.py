"""Typed results: a public probe, study or training returns a dataclass whose fields are its summary.json's
documented keys (docs/json.md, a contract scripts outside read). Callers read attributes, which a type checker and an
editor follow; :meth:`Summary.to_json` writes the keys, :meth:`Summary.read` reads a folder's summary back."""

from __future__ import annotations

import json
import types
import typing
from dataclasses import dataclass, field, fields, is_dataclass
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from .hardware import RuntimeDescription

S = TypeVar("S", bound="Summary")


@dataclass
class Summary:
    """A result that is its summary.json: one field per documented key, nested results for nested blocks."""

    # "module.Name" of each result type the fields name that the module imports for the type checker only: a study's
    # module may not load torch when the command line starts, so the probes' results it holds are imported when read
    borrows: ClassVar[tuple[str, ...]] = ()

    def to_json(self) -> dict[str, Any]:
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_json(cls: type[S], data: dict[str, Any]) -> S:
        """The result a summary.json holds; nested blocks become their own result types."""
        hints = cls.field_types()
        return cls(**{f.name: _typed(hints[f.name], data[f.name]) for f in fields(cls) if f.name in data})

    @classmethod
    def field_types(cls) -> dict[str, Any]:
        """Each field's type, resolved (the annotations are strings until then), the borrowed ones imported now."""
        borrowed = {path.rpartition(".")[2]: path for base in cls.__mro__ for path in vars(base).get("borrows", ())}
        names = {name: getattr(import_module(path.rpartition(".")[0]), name) for name, path in borrowed.items()}
        return typing.get_type_hints(cls, localns=names)

    @classmethod
    def read(cls: type[S], folder: str | Path) -> S:
        return cls.from_json(json.loads((Path(folder) / "summary.json").read_text()))


def plain(value: Any) -> Any:
    """``value`` as JSON holds it: results as their keys, tuples as lists, numpy scalars as numbers."""
    if isinstance(value, Summary):
        return value.to_json()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value.item() if hasattr(value, "item") and not isinstance(value, (int, float, str)) else value


def _typed(hint: Any, value: Any) -> Any:
    """``value`` read from JSON as ``hint`` declares it (a result, a list or dict of results, or either or None)."""
    if value is None:
        return None
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        results = [a for a in args if isinstance(a, type) and issubclass(a, Summary)]
        return _typed(results[0], value) if results else value
    if isinstance(hint, type) and is_dataclass(hint) and issubclass(hint, Summary):
        return hint.from_json(value)
    if origin is list and args:
        return [_typed(args[0], v) for v in value]
    if origin is dict and len(args) == 2:
        return {k: _typed(args[1], v) for k, v in value.items()}
    return value


@dataclass
class WithFields(Summary):
    """A result whose JSON holds, beside its named keys, the keys a task adds (its last field, ``fields``)."""

    def to_json(self) -> dict[str, Any]:
        made = {f.name: plain(getattr(self, f.name)) for f in fields(self) if f.name != "fields"}
        return made | plain(getattr(self, "fields"))

    @classmethod
    def from_json(cls: type[S], data: dict[str, Any]) -> S:
        named = {f.name for f in fields(cls)} - {"fields"}
        given: dict[str, Any] = {k: v for k, v in data.items() if k in named}
        return cls(**given | {"fields": {k: v for k, v in data.items() if k not in named}})


@dataclass
class TrainSummary(WithFields):
    """A run's summary.json (docs/json.md): what trained and for how long, the final and best validation blocks (the
    task's metrics, by name), and the task's own keys (``fields``: ``chance`` for attributes, ``points`` and
    ``baseline_mean_shape`` for keypoints, ...), which the JSON holds beside the others."""

    task: str
    arch: str
    epochs_done: int
    train_seconds: float
    seed: int
    final: dict[str, Any]
    best: dict[str, Any]
    runtime: RuntimeDescription
    robust: dict[str, Any] | None = None  # trained with --robust: its budget
    skipped: list[str] | None = None  # images left out (unreadable, or no face found)
    fields: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if v is not None or k not in ("robust", "skipped")}

    @property
    def chance(self) -> dict[str, float]:
        """What always answering the most frequent value scores on the validation split, per output (attributes and
        identities; empty for keypoints)."""
        return self.fields.get("chance", {})


@dataclass
class Evaluation(WithFields):
    """``facelab eval``'s summary.json (docs/json.md): a run's loss on a split, and the task's metrics (``fields``:
    ``acc`` and ``acc_per_attr`` for attributes, ``px_err``, ``nme`` and the 300-W ``protocol`` for keypoints, ...)."""

    task: str
    arch: str
    data: str
    split: str
    n: int
    loss: float
    runtime: RuntimeDescription
    fields: dict[str, Any] = field(default_factory=dict)
