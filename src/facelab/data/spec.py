"""SPEC strings: one way to name any data source (``celeba:PATH``, ``synth:2000,ids=20`` ...)."""

from __future__ import annotations

from pathlib import Path

from ..errors import FacelabError
from .faceset import FaceSet

KINDS = ("celeba", "imm", "300w", "utkface", "folder", "synth")
SYNTH_KEYS = ("ids", "seed", "points", "correlate", "spurious", "imbalance")


def _options(parts: list[str], spec: str, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    opts: dict[str, list[str]] = {}
    for part in parts:
        key, eq, value = part.partition("=")
        if not eq or key not in allowed:
            raise FacelabError(f"{spec!r}: unknown option {part!r}; allowed: {', '.join(allowed)}")
        opts.setdefault(key, []).append(value)
    return opts


def synth_config_from(parts: list[str], spec: str):
    from .synth import DEFAULT_N, Knob, SynthConfig

    n = DEFAULT_N
    if parts and parts[0].isdigit():
        n, parts = int(parts[0]), parts[1:]
    opts = _options(parts, spec, SYNTH_KEYS)
    try:
        ids = int(opts["ids"][0]) if "ids" in opts else None
        seed = int(opts.get("seed", ["0"])[0])
        points = int(opts.get("points", ["68"])[0])
    except ValueError:
        raise FacelabError(f"{spec!r}: ids, seed and points must be integers") from None
    if points not in (68, 58):
        raise FacelabError(f"{spec!r}: points={points}; synthetic faces carry 68 (iBUG 300-W layout) or 58 (IMM layout) points")
    knobs = tuple(Knob.parse(k, v) for k in ("correlate", "spurious", "imbalance") for v in opts.get(k, []))
    return SynthConfig(n=n, ids=ids, seed=seed, points=points, knobs=knobs)


def open_spec(spec: str) -> FaceSet:
    """The FaceSet a SPEC names; a bad SPEC stops with one line saying what is valid."""
    kind, _, rest = spec.partition(":")
    if kind not in KINDS and Path(spec).expanduser().is_dir():
        raise FacelabError(
            f"{spec!r} is a folder but not a SPEC: for your own photos give folder:{spec} "
            f"(celeba:{spec}, imm:{spec} or 300w:{spec} for those layouts)"
        )
    if kind not in KINDS:
        raise FacelabError(
            f"unknown data source {spec!r}; use one of: celeba:PATH, imm:PATH, 300w:PATH, utkface:PATH, folder:PATH, synth[:N]"
        )
    if kind == "synth":
        from .synth import synth_faceset

        return synth_faceset(synth_config_from([p for p in rest.split(",") if p], spec), spec)
    if not rest:
        raise FacelabError(f"{spec!r}: give a path, e.g. {kind}:/data/{kind}")
    path_text, *parts = rest.split(",")
    path = Path(path_text).expanduser()
    if not path.exists():
        raise FacelabError(f"{path}: no such file or folder (from SPEC {spec!r})")
    if kind == "celeba":
        from .celeba import load_celeba

        opts = _options(parts, spec, ("images",))
        images = opts.get("images", ["aligned"])[0]
        if images not in ("aligned", "wild"):
            raise FacelabError(f"{spec!r}: images must be aligned or wild")
        return load_celeba(path, spec, images)
    _options(parts, spec, ())
    if kind == "imm":
        from .imm import load_imm

        return load_imm(path, spec)
    if kind == "300w":
        from .ibug import load_300w

        return load_300w(path, spec)
    if kind == "utkface":
        from .utkface import load_utkface

        return load_utkface(path, spec)
    from .folder import load_folder

    return load_folder(path, spec)
