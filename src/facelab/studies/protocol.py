"""What every study shares: the published protocol, the settings a run actually used, where the two part,
and one report with the published figures in a column beside the measured ones."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

from ..errors import FacelabError
from ..files import prepare_output, record_entries, write_json
from ..hardware import Runtime, RuntimeDescription
from ..hardware import runtime as resolved_runtime
from ..report.html import Report

if TYPE_CHECKING:
    from ..data.faceset import FaceSet
from ..results import Summary, TrainSummary

PUBLISHED_SOURCE = "the published study"
FACELAB_SOURCE = "facelab's choice (the study does not record it)"
SOURCE_CROP = "the data source's own"  # a study's crop setting when the user gives no --crop
CROP_SOURCE = (
    "the study's faces are CelebA's aligned images; facelab's default is the data source's own crop (a folder of photos: "
    "the detector's box), --crop aligned aligns faces on five points"
)


@dataclass(frozen=True)
class Protocol:
    """A study as published: its question, data, settings (each with where it comes from) and figures."""

    name: str
    question: str
    data: str  # the data set the published figures come from
    default_spec: str  # what facelab runs the protocol on when the user gives no data: synthetic faces
    settings: dict[str, Any]  # a value each, or one per part ({"nose": ..., "68 points": ...})
    sources: dict[str, str] = field(default_factory=dict)  # setting -> where it comes from (default: the study)
    published: dict = field(default_factory=dict)
    literature: dict = field(default_factory=dict)  # figures others reported on comparable data, with their source

    def source(self, key: str) -> str:
        return self.sources.get(key, PUBLISHED_SOURCE)


@dataclass
class Plan:
    """The protocol as this run carries it out: the data and every setting after the user's options."""

    protocol: Protocol
    spec: str
    settings: dict[str, Any]
    data: FaceSet  # the opened SPEC, for the studies' own checks of what it holds
    runtime: Runtime  # where the study trains (its precision and device as asked) and probes
    notes: list[str] = field(default_factory=list)  # departures that no setting shows (no start photo given ...)
    reasons: dict[str, str] = field(default_factory=dict)  # why a setting differs when the user did not ask for it
    warnings: list[str] = field(default_factory=list)  # what makes a measured figure mean less (a model at chance ...)

    def check_chance(self, name: str, run_summary: TrainSummary) -> list[str]:
        """Warn when a trained run answers at chance level: its figures, maps and audits then explain a guess (and, for
        a robust run, why that happens and what to do). Returns the warnings (none: the run learned)."""
        from ..report.run_report import run_warnings

        lines = [f"{name} run: {line.removeprefix('WARNING: ').removeprefix('NOTE: ')}" for line in run_warnings(run_summary)]
        self.warnings += lines
        return lines

    @classmethod
    def of(cls, protocol: Protocol, spec: str | None, options: dict, runtime: Runtime | None = None) -> "Plan":
        """The plan, with the data and networks checked before anything is written or trained."""
        from ..data.spec import open_spec
        from ..models.registry import check_arch

        unknown = set(options) - set(protocol.settings)
        if unknown:
            raise FacelabError(f"study {protocol.name}: no setting {', '.join(sorted(unknown))}")
        chosen = {k: (options[k] if options.get(k) is not None else v) for k, v in protocol.settings.items()}
        if chosen.get("weights") == "none":  # asked for explicitly: from scratch
            chosen["weights"] = None
        arch = chosen.get("arch")
        for name in arch.values() if isinstance(arch, dict) else [arch] if arch else []:
            check_arch(name)
        spec = spec or protocol.default_spec
        return cls(protocol, spec, chosen, open_spec(spec), runtime or resolved_runtime())

    @property
    def crop(self) -> str | None:
        """The --crop the study's runs train with (None: the data source's own)."""
        crop = self.settings.get("crop")
        return None if crop == SOURCE_CROP else crop

    @property
    def synthetic(self) -> bool:
        return self.spec.startswith("synth")

    def departures(self) -> list[str]:
        """Each way this run differs from the published protocol, in words."""
        out = []
        if self.synthetic:
            out.append(f"data: facelab's synthetic faces ({self.spec}) instead of {self.protocol.data}")
        for key, published in self.protocol.settings.items():
            if self.settings[key] != published:
                why = f" ({self.reasons[key]})" if key in self.reasons else ""
                out.append(f"{key}: {_shown(self.settings[key])} instead of {_shown(published)}{why}")
        return out + self.notes

    def weights_for(self, arch: str, part: str | None = None) -> str | None:
        """The ImageNet weights the protocol asks for (for ``part``, where the setting is per part), when they can be
        had (cached or downloaded); otherwise None (from scratch), with the reason kept as a departure."""
        from ..models.registry import weights_if_available

        setting = self.settings.get("weights")
        wanted = setting[part] if isinstance(setting, dict) else setting
        if wanted != "imagenet":
            return wanted
        weights, reason = weights_if_available(arch, "auto")
        if weights is None:
            self.reasons["weights"] = f"ImageNet weights not available: {reason}"
            self.settings["weights"] = setting | {part: None} if isinstance(setting, dict) else None
        return weights


def _shown(value) -> str:
    if value is None:
        return "none (from scratch)"
    if isinstance(value, dict):
        return "; ".join(f"{k}: {v}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def interval(lo, hi) -> str:
    return "—" if lo is None or hi is None else f"[{lo:.3f}, {hi:.3f}]"


@dataclass
class Comparison(Summary):
    """One row of the published-beside-measured table."""

    figure: str
    published: str
    measured: float | int | str | None
    ci: Sequence[float | None] | None = None
    literature: str | None = None  # what others reported, with its source: never in the study's own column

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in super().to_json().items() if k != "literature" or v}

    def row(self, with_literature: bool = False) -> list:
        row = [self.figure, self.published, self.measured, interval(*self.ci) if self.ci else "—"]
        return row + [self.literature or "—"] if with_literature else row


COMMON = ("study", "folder", "data", "settings", "departures", "published", "literature", "comparison", "warnings", "runtime")


@dataclass(kw_only=True)
class StudyResult(Summary):
    """A study's summary.json: the study's own keys (a subclass's fields), then what every study holds, which
    :func:`write_study` fills in: the protocol as run, where it departs, and the published-beside-measured rows."""

    study: str = ""
    folder: str = ""
    data: str = ""
    settings: dict[str, Any] = field(default_factory=dict)
    departures: list[str] = field(default_factory=list)
    published: dict[str, Any] = field(default_factory=dict)
    literature: dict[str, Any] = field(default_factory=dict)
    comparison: list[Comparison] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    runtime: RuntimeDescription | None = None

    def to_json(self) -> dict[str, Any]:
        made = super().to_json()
        return {k: made[k] for k in made if k not in COMMON} | {k: made[k] for k in COMMON}


@dataclass
class StudyRun(Summary):
    """A run a study trained: its final validation metrics, its folder under the study's, and its training time."""

    final: dict[str, Any]
    folder: str
    train_seconds: float


@dataclass
class Accuracy(Summary):
    """An accuracy on ``n`` test images, with Wilson's 95% interval."""

    n: int
    accuracy: float
    accuracy_ci: list[float | None]


R = TypeVar("R", bound=StudyResult)


def comparison_table(protocol: Protocol, spec: str, comparisons: list[Comparison]) -> tuple[list[str], list[list]]:
    """The published-beside-measured table; figures from the literature, where a study has them, in a column of their
    own (with their source), so the study's own column holds only what the study reported."""
    literature = any(c.literature for c in comparisons)
    header = ["figure", f"published ({protocol.data})", f"measured ({spec})", "95% interval"]
    header += ["literature (source)"] if literature else []
    return header, [c.row(literature) for c in comparisons]


def study_folder(out: str | Path | None, name: str) -> Path:
    return prepare_output(Path(out) if out else Path("runs") / f"study_{name}", f"study {name}")


def write_study(folder: Path, plan: Plan, result: R, comparisons: list[Comparison], sections: Callable[[Report], None]) -> R:
    """summary.json (the study's own keys plus protocol, settings, departures and published) and report.html:
    the question, the published-beside-measured table, the protocol, the departures, then the study's sections."""
    p = plan.protocol
    result.study, result.folder, result.data = p.name, str(folder), plan.spec
    result.settings, result.departures, result.warnings = plan.settings, plan.departures(), plan.warnings
    result.published, result.literature, result.comparison = p.published, p.literature, comparisons
    result.runtime = plan.runtime.describe()
    rep = Report(f"facelab study {p.name}")
    rep.paragraph(p.question)
    for line in plan.warnings:
        rep.paragraph(f"WARNING: {line}")
    rep.heading("Published and measured")
    rep.table(*comparison_table(p, plan.spec, comparisons))
    rep.heading("Protocol")
    rep.table(
        ["setting", "published protocol", "this run", "source of the protocol's value"],
        [[k, _shown(v), _shown(plan.settings[k]), p.source(k)] for k, v in p.settings.items()],
    )
    rep.heading("Departures from the published protocol")
    if result.departures:
        rep.bullets(result.departures)
    else:
        rep.paragraph("None: this run follows the published protocol.")
    sections(rep)
    rep.machine(result.runtime)
    write_json(folder / "summary.json", result.to_json())
    rep.write(folder / "report.html")
    record_entries(folder)
    return result
