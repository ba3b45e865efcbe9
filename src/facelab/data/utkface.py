"""UTKFace: aligned face crops whose file names carry the labels, ``AGE_GENDER_RACE_DATE.jpg(.chip.jpg)``.

Attributes (0/1): ``Male`` (gender 0), ``Young`` (age under 30, the usual young/old cut of age studies; CelebA's own
``Young`` is an annotator's impression with no age behind it), one per race (``White``, ``Black``, ``Asian``,
``Indian``, ``Others``); the age in years is kept as ``ages``. A name without a race field (the full set has two) is
kept with every race attribute 0 and listed under ``problems``; a name whose age or gender does not parse is listed
and left out. Neither is fatal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import FacelabError
from .faceset import FileFaceSet
from .folder import split_by_position
from .images import looks_like_image, walk_files
from .sources import data_source

RACES = ("White", "Black", "Asian", "Indian", "Others")
ATTRIBUTES = ("Male", "Young", *RACES)
YOUNG_BELOW = 30


@dataclass
class UTKFaceSet(FileFaceSet):
    ages: np.ndarray | None = None  # years, aligned with names

    def _take_extra(self, idx):
        return super()._take_extra(idx) | {"ages": None if self.ages is None else self.ages[idx]}


def parse_name(name: str) -> tuple[int, int, int | None] | None:
    """(age, gender, race) from ``AGE_GENDER_RACE_DATE...``; race None where the name lacks it (two names of the full
    set go ``AGE_GENDER_DATE``); None when age or gender does not parse."""
    parts = name.split("_")
    try:
        age, gender = int(parts[0]), int(parts[1])
    except (ValueError, IndexError):
        return None
    if not (0 <= age <= 130 and gender in (0, 1)):
        return None
    race = parts[2] if len(parts) >= 4 else ""
    return age, gender, int(race) if race.isdigit() and int(race) < len(RACES) else None


@data_source("utkface")
def load_utkface(path: Path, spec: str) -> UTKFaceSet:
    if not path.is_dir():
        raise FacelabError(f"{path}: not a folder of UTKFace photos (AGE_GENDER_RACE_DATE.jpg names)")
    files = [p for p in walk_files(path) if looks_like_image(p)]
    parsed = [(p, parse_name(p.name)) for p in files]
    bad = [p.name for p, labels in parsed if labels is None]
    kept = [(p, labels) for p, labels in parsed if labels is not None]
    no_race = [p.name for p, labels in kept if labels[2] is None]
    if not kept:
        raise FacelabError(f"{path}: no image named AGE_GENDER_RACE_DATE.jpg found ({len(files)} images, none parse)")
    ages = np.array([a for _, (a, _, _) in kept], dtype=np.int16)
    gender = np.array([g for _, (_, g, _) in kept])
    race = np.array([r for _, (_, _, r) in kept])
    attributes = np.column_stack([gender == 0, ages < YOUNG_BELOW, *(race == k for k in range(len(RACES)))]).astype(np.uint8)
    problems = []
    if bad:
        problems.append(f"{len(bad)} file names do not parse as AGE_GENDER_RACE_DATE and were left out (e.g. {', '.join(bad[:3])})")
    if no_race:
        problems.append(f"{len(no_race)} file names have no race field (kept; every race attribute 0): {', '.join(no_race[:5])}")
    return UTKFaceSet(
        spec=spec,
        source="utkface",
        names=[str(p.relative_to(path)) for p, _ in kept],
        paths=[p for p, _ in kept],
        split=split_by_position(len(kept)),
        attr_names=list(ATTRIBUTES),
        attributes=attributes,
        ages=ages,
        default_crop="center",
        problems=problems,
        categories={"race": RACES},
        notes=[f"Young = age under {YOUNG_BELOW}; Male = gender 0; one attribute per race, grouped as race"],
    )
