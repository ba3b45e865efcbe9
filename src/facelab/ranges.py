"""The range a number option takes, declared once beside it and checked at every door (the command line, ``--config``,
the API) before anything is written: a value outside is one line naming the option, the value and the range."""

from __future__ import annotations

from .errors import FacelabError

Bounds = tuple[float, "float | None"]  # (lowest, highest or None), both included

SEED_BOUNDS: Bounds = (0, 2**32 - 1)  # numpy's generators take no larger seed
DETECTOR_SCORE_BOUNDS: Bounds = (-10, 10)  # dlib's HOG and CNN detectors score faces within about -2 to 3
UPSAMPLE_BOUNDS: Bounds = (0, 4)  # each doubles a photo's side; 4 already asks 256x the pixels
STEPS_BOUNDS: Bounds = (1, 100_000)  # gradient steps of an ascent or an edit
LR_BOUNDS: Bounds = (1e-6, 1)  # a step in pixel units, where the image spans 0..1
N_BOOT_BOUNDS: Bounds = (20, 1_000_000)  # a 95% interval needs a few dozen resamples at the least (1000 is the default)
SIZE_BOUNDS: Bounds = (16, 1024)  # pixels a side: five halvings of darknet64 leave a map at 16 px; 1024 fills memory


def range_text(bounds: Bounds) -> str:
    lo, hi = (_shown(b) if b is not None else None for b in bounds)
    return f"{lo} to {hi}" if hi is not None else f"{lo} or more"


def _shown(number: float) -> str:
    """A bound as typed: whole numbers in full (a seed's 4294967295, not 4.29497e+09), others short (1e-06)."""
    return str(int(number)) if float(number).is_integer() else f"{number:g}"


def with_range(about: str, bounds: Bounds | None) -> str:
    """An option's help with its range as the last sentence (the help is where a user reads it)."""
    return about if bounds is None or " Range: " in about else f"{about} Range: {range_text(bounds)}."


def check_range(flag: str, value, bounds: Bounds | None) -> None:
    """Raise the one-line error for ``value`` outside ``bounds`` (None, the option's "not given", always passes)."""
    if value is None or bounds is None:
        return
    lo, hi = bounds
    if not (lo <= value and (hi is None or value <= hi)):
        raise FacelabError(f"{flag} {value!r}: out of range; give {range_text(bounds)}")
