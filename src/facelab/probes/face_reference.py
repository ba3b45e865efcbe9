"""A face-trained reference for the inversion study: dlib's face-recognition network (a ResNet trained for identity on
about 3 million faces), the kind of network in which the face inversion effect is strongest (Dobs et al. 2023). Each
face is aligned on five points into a 150 px chip and embedded upright and turned 180 degrees; a nearest-class-mean
classifier fitted on the upright training embeddings names the held-out faces both ways up."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..data.cache import DEFAULT_MARGIN, decode_item
from ..data.detect import Face, face_detector, face_recogniser
from ..progress import progress_bar
from ..results import Summary
from .stats import bootstrap_ci, wilson_ci

NETWORK = "dlib_face_recognition_resnet_model_v1 (ResNet, 128-d embeddings, trained on about 3 million faces)"
CHIP, CHIP_PADDING = 150, 0.25  # dlib's own chip size and padding for this network
PHOTO_SIDE = 250  # faces are decoded this big (the source's own crop) before the five points are found
PER_PERSON = 10  # a person's upright training faces that make their class mean, and their held-out faces scored


def embeddings(
    fs, indices: np.ndarray, known: dict | None = None, quiet: bool = True, views: tuple[str, ...] = ("upright", "inverted")
) -> list[np.ndarray]:
    """The 128-d embeddings of the faces ``indices`` of ``fs`` in each of ``views``: the five points of the largest
    detected face (the whole image where none is found), the aligned chip (``upright``), and the same chip turned 180
    degrees (``inverted``); dlib's network takes about 0.15 s a face on a laptop CPU. ``known``: embeddings by face
    name and view from an earlier call, reused (and added to)."""
    known = {} if known is None else known
    missing = [int(i) for i in indices if any((fs.names[int(i)], v) not in known for v in views)]
    if missing:
        chips = face_chips(fs, missing, quiet)
        _, recogniser, _ = face_recogniser()
        for view in views:
            shown = chips if view == "upright" else [np.ascontiguousarray(c[::-1, ::-1]) for c in chips]
            known.update({(fs.names[i], view): e for i, e in zip(missing, np.array(recogniser.compute_face_descriptor(shown)))})
    return [np.array([known[(fs.names[int(i)], v)] for i in indices]) for v in views]


def face_chips(fs, indices: list[int], quiet: bool = True) -> list[np.ndarray]:
    """dlib's aligned 150 px chip of each face (the largest HOG detection, else the whole decoded image)."""
    five_points, _, dlib = face_recogniser()
    detector = face_detector("dlib-hog")
    crop = fs.default_crop
    chips = []
    with progress_bar("aligning faces for dlib's recogniser", len(indices), quiet) as advance:
        for i in indices:
            image, _ = decode_item(fs, i, (PHOTO_SIDE, PHOTO_SIDE), crop, DEFAULT_MARGIN[crop])
            found = detector.find(image)
            x, y, w, h = (found[0] if found else Face((0, 0, PHOTO_SIDE, PHOTO_SIDE), None)).box
            shape = five_points(image, dlib.rectangle(int(x), int(y), int(x + w), int(y + h)))
            chips.append(np.asarray(dlib.get_face_chip(image, shape, size=CHIP, padding=CHIP_PADDING)))
            advance()
    return chips


def nearest_mean(train: np.ndarray, labels: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """The label of the class mean nearest each query (Euclidean, as dlib's embeddings are meant to be compared)."""
    classes = np.unique(labels)
    means = np.stack([train[labels == c].mean(0) for c in classes])
    return classes[np.linalg.norm(queries[:, None] - means[None], axis=2).argmin(1)]


@dataclass
class ReferenceScores(Summary):
    """The face-trained reference's upright and inverted accuracy on held-out faces, and the gap, with intervals."""

    n: int
    train_faces: int
    upright: float
    upright_ci: list[float | None]
    inverted: float
    inverted_ci: list[float | None]
    gap: float
    gap_ci: list[float]
    chance: float


def reference_for(sel, seed: int = 0, n_boot: int = 1000, known: dict | None = None, quiet: bool = True) -> ReferenceScores:
    """Upright and inverted accuracy of the reference on ``sel``'s validation faces (an identity selection, split as
    the student network's), at most PER_PERSON of each person's, with class means from at most PER_PERSON of each
    person's upright training faces."""
    rng = np.random.default_rng(seed)
    people = np.unique(sel.identities)
    train, held_out = (
        np.concatenate([rng.permutation(np.flatnonzero((sel.split == split) & (sel.identities == p)))[:PER_PERSON] for p in people])
        for split in (0, 1)
    )
    (upright_train,) = embeddings(sel, train, known, quiet, views=("upright",))
    upright, inverted = embeddings(sel, held_out, known, quiet)
    truth, labels = sel.identities[held_out], sel.identities[train]
    right_up = nearest_mean(upright_train, labels, upright) == truth
    right_inv = nearest_mean(upright_train, labels, inverted) == truth
    n = len(held_out)
    return ReferenceScores(
        n=n,
        train_faces=len(train),
        upright=float(right_up.mean()),
        upright_ci=list(wilson_ci(int(right_up.sum()), n)),
        inverted=float(right_inv.mean()),
        inverted_ci=list(wilson_ci(int(right_inv.sum()), n)),
        gap=float(right_up.mean() - right_inv.mean()),
        gap_ci=list(bootstrap_ci(right_up.astype(float) - right_inv.astype(float), n_boot, seed)),
        chance=1 / len(people),
    )
