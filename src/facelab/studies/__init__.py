"""The four studies facelab grew out of, one command each: a published protocol run on the user's data (the
synthetic faces by default), with the published figures beside the measured ones.

``facelab.study("bias", "celeba:/data/celeba", epochs=3)`` is ``facelab study bias celeba:/data/celeba --epochs 3``.
"""

from __future__ import annotations

from importlib import import_module

STUDIES = ("inversion", "youth", "bias", "keypoints")


def study(name: str, spec: str | None = None, **options) -> dict:
    """Run study ``name`` (inversion, youth, bias or keypoints) on ``spec``; returns its summary.json content."""
    from ..errors import FacelabError

    if name not in STUDIES:
        raise FacelabError(f"unknown study {name!r}; the studies are {', '.join(STUDIES)}")
    return getattr(import_module(f"facelab.studies.{name}"), f"{name}_study")(spec, **options)
