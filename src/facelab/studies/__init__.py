"""The four studies facelab grew out of, one command each: a published protocol run on the user's data (the
synthetic faces by default), with the published figures beside the measured ones. Each is one module declaring
``STUDY`` (:mod:`facelab.studies.registry`).

``facelab.study("bias", "celeba:/data/celeba", epochs=3)`` is ``facelab study bias celeba:/data/celeba --epochs 3``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .protocol import StudyResult


def study(name: str, spec: str | None = None, **options) -> StudyResult:
    """Run study ``name`` (``facelab study --help`` lists them) on ``spec``; returns its result (its summary.json's
    keys as attributes)."""
    from .registry import get_study

    return get_study(name).run(spec, **options)
