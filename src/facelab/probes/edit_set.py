"""``facelab edit RUN SPEC --n N``: the class-driven edit over a set of test faces, scored the way counterfactual
explanation papers on CelebA score theirs (DiME, ACCV 2022; ACE, CVPR 2023): how often the edit flips the classifier
(flip rate), how often a face-verification network still takes the edited face for the same person (FVA: dlib's
descriptors within its same-person threshold), how many *other* attributes the edit changed according to an oracle
classifier (MNAC), and how close it stays (L1, SSIM, the high-frequency share of the change)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from ..data.detect import dlib_installed
from ..errors import FacelabError
from ..hardware import Runtime
from ..progress import progress_bar
from ..report.figures import image_grid
from ..results import Summary
from ..run import Run
from .ascent import Regularisers, ascend, pixels_to_uint8
from .change import amplified_change, change_measures
from .output import probe_folder, write_probe_output
from .split_data import load_split
from .stats import wilson_ci

SAME_PERSON = 0.6  # dlib's threshold: descriptors of one person lie closer than this (its documented operating point)
CHUNK = 32  # faces edited together
DLIB_SIDE = 250  # an edited face is scaled up to this before dlib looks for its five points
SHEET = 8  # faces on the contact sheet


@dataclass
class AscentBudget(Summary):
    """The ascent as a summary records it: norm, budget, steps, step size and what it climbed."""

    norm: str
    eps: float | None
    steps: int
    lr: float
    objective: str


@dataclass
class SetScores(Summary):
    """What every change over a set is scored by, whatever moved it: FVA (dlib: still the same person) with Wilson's
    interval, the faces dlib found none in, and the medians of closeness."""

    fva: float | None
    fva_ci: list[float | None]
    fva_not_found: list[str]
    fva_threshold: float
    fva_network: str | None
    ssim_median: float | None
    l1_median: float | None
    hf_share_median: float | None


@dataclass
class ScoredSet(SetScores):
    """A set of changed faces: its scores, the ascent's budget and one entry per face."""

    n: int
    budget: AscentBudget
    faces: list[dict[str, Any]]


@dataclass
class EditSet(ScoredSet):
    """``facelab edit RUN SPEC --n N``'s summary.json (docs/json.md)."""

    attr: str
    to: int
    flip_rate: float
    flip_rate_ci: list[float | None]
    mnac: float | None
    mnac_distribution: dict[str, int] | None
    mnac_oracle: str | None
    mnac_oracle_accuracy: float | None


def edit_set(
    run: str | Path | Run,
    spec: str | None = None,
    *,
    attr: str,
    to: int = 1,
    n: int = 100,
    oracle: str | Path | None = None,
    split: str = "test",
    steps: int = 60,
    lr: float = 0.01,
    reg: Regularisers | None = None,
    seed: int = 0,
    out: str | Path | None = None,
    quiet: bool = True,
    runtime: Runtime | None = None,
) -> EditSet:
    """Edit ``n`` faces of ``split`` that do not show ``attr`` = ``to`` toward it and score the edits as a set;
    ``oracle``: a run predicting several attributes that judges which other attributes changed (default: the run
    itself when it predicts several). Writes summary.json (one entry per face under ``faces``), a contact sheet and
    report.html."""
    opened = Run.for_probes(run, runtime)
    k, _, objective = edit_objective(opened, attr, to)
    judge = Run.for_probes(oracle, runtime) if oracle else (opened if len(opened.outputs) > 1 else None)
    folder = probe_folder(out, opened, "edit_set")
    reg = reg or Regularisers()
    start, names = faces_of(opened, spec, split, n, lambda d: d.labels(k) != to, f"lacks {attr} = {to}")
    edited = ascended_set(objective, start, steps, lr, reg, seed, "editing faces", quiet)
    p_before, p_after = (attribute_probabilities(opened, k, x) for x in (start, edited))
    faces: list[dict[str, Any]] = [
        {"image": name, "prob_before": b, "prob_after": a, "flipped": bool((a >= 0.5) == bool(to))}
        for name, b, a in zip(names, p_before, p_after)
    ]
    scores = set_scores(faces, start, edited, reg, quiet)
    others = _other_attributes_flipped(judge, attr, start, edited) if judge is not None else None
    for i, face in enumerate(faces):
        face["other_attributes_flipped"] = None if others is None else int(others[i])
    flips = sum(f["flipped"] for f in faces)
    summary = EditSet(
        **vars(scores),
        n=len(faces),
        budget=budget(reg, start, steps, lr, f"{'+' if to else '-'}logit of {attr}"),
        faces=faces,
        attr=attr,
        to=to,
        flip_rate=flips / len(faces),
        flip_rate_ci=wilson_ci(flips, len(faces)),
        mnac=None if others is None else float(np.mean(others)),
        mnac_distribution=None if others is None else {str(int(v)): int(c) for v, c in zip(*np.unique(others, return_counts=True))},
        mnac_oracle=None if judge is None else str(oracle or judge.path),
        mnac_oracle_accuracy=None if judge is None else _oracle_accuracy(judge, attr),
    )
    captions = [(f"P {f['prob_before']:.2f}", f"P {f['prob_after']:.2f}" + (" flipped" if f["flipped"] else "")) for f in faces]
    figures = [contact_sheet(folder, start, edited, captions)]
    return write_probe_output(folder, f"facelab edit: {attr} -> {to} on {len(faces)} faces", summary, figures, _facts(summary))


def edit_objective(opened: Run, attr: str, to: int) -> tuple[int, float, Callable[[torch.Tensor], torch.Tensor]]:
    """What an edit toward ``attr`` = ``to`` climbs: (the attribute's output, +1 or -1, the signed logit of [0, 1]
    pixels), after checking the run predicts the attribute."""
    opened.require("binary", "edit")
    if attr not in opened.outputs:
        raise FacelabError(f"--attr {attr!r}: the run predicts {', '.join(opened.outputs)}")
    if to not in (0, 1):
        raise FacelabError(f"--to {to}: use 0 or 1")
    k, sign, model, normalise = opened.outputs.index(attr), 1.0 if to == 1 else -1.0, opened.model, opened.contract.normalise
    return k, sign, lambda pixels: sign * model(normalise(pixels))[:, k].float()


def faces_of(opened: Run, spec, split: str, n: int, keep: Callable, wanted: str = "") -> tuple[torch.Tensor, list[str]]:
    """The first ``n`` faces of the split that ``keep(split_data)`` marks, as [0, 1] pixels (B, C, H, W), and their
    names; ``wanted`` says in the error what the kept faces were to show."""
    d = load_split(opened, spec, split, max(4 * n, 512))
    chosen = np.flatnonzero(keep(d))[:n]
    if len(chosen) == 0:
        raise FacelabError(f"no {split} face of {spec or opened.cfg.data.spec} {wanted}: nothing to edit".replace("  ", " "))
    contract = opened.contract
    pixels = contract.to_input(d.images[chosen]) * contract.std + contract.mean
    return pixels.float(), [d.faceset.names[int(d.rows[i])] for i in chosen]


def ascended_set(objective, start: torch.Tensor, steps: int, lr: float, reg: Regularisers, seed: int, what: str, quiet: bool):
    """The faces (a tensor) moved up ``objective`` (chunks of CHUNK, each its own ascent)."""
    parts = []
    with progress_bar(what, len(start), quiet) as advance:
        for first in range(0, len(start), CHUNK):
            parts.append(ascend(objective, start[first : first + CHUNK], steps, lr, reg, seed + first).pixels)
            advance(len(parts[-1]))
    return torch.cat(parts)


def attribute_probabilities(opened: Run, k: int, pixels: torch.Tensor) -> list[float]:
    """P(output ``k``) of each image of ``pixels`` ([0, 1], B x C x H x W)."""
    with torch.no_grad():
        return opened.task.probabilities(opened.model(opened.contract.normalise(pixels)))[:, k].float().tolist()


def set_scores(faces: list[dict], start: torch.Tensor, edited: torch.Tensor, reg: Regularisers, quiet: bool) -> SetScores:
    """What every change over a set is scored by, whatever moved it: each face's closeness to its start and whether
    dlib still takes it for the same person (added to its entry in ``faces``), and the set's FVA with Wilson's
    interval and the medians of closeness."""
    identity = _same_person(start, edited, quiet)
    for i, face in enumerate(faces):
        face |= _closeness(start[i], edited[i], reg)
        face["descriptor_distance"], face["same_person"] = identity.distance[i], identity.same[i]
    judged = [f["same_person"] for f in faces if f["same_person"] is not None]
    median = lambda key: float(np.median([f[key] for f in faces if f[key] is not None])) if any(f[key] is not None for f in faces) else None  # noqa: E731
    return SetScores(
        fva=sum(judged) / len(judged) if judged else None,
        fva_ci=wilson_ci(sum(judged), len(judged)) if judged else [None, None],
        fva_not_found=[faces[i]["image"] for i in identity.not_found],
        fva_threshold=SAME_PERSON,
        fva_network="dlib_face_recognition_resnet_model_v1" if identity.available else None,
        ssim_median=median("ssim"),
        l1_median=median("l1"),
        hf_share_median=median("hf_share"),
    )


def budget(reg: Regularisers, start: torch.Tensor, steps: int, lr: float, objective: str) -> AscentBudget:
    return AscentBudget(reg.budget_norm, reg.eps(start.shape[1:]), steps, lr, objective)


class Closeness(TypedDict):
    """How close one changed face stays to its start (its entry in ``faces``)."""

    l1: float
    ssim: float
    hf_share: float | None
    budget_used: float


class Identity(NamedTuple):
    """dlib's verdict on each face of a set: descriptor distance and same person (None where no face was found)."""

    distance: list[float | None]
    same: list[bool | None]
    not_found: list[int]
    available: bool  # False without dlib (facelab[faces])


def _closeness(start: torch.Tensor, edited: torch.Tensor, reg: Regularisers) -> Closeness:
    measured = change_measures(start, edited, reg.eps(start.shape), reg.budget_norm, None)
    return Closeness(
        l1=float((edited - start).abs().mean()),
        ssim=measured.ssim,
        hf_share=measured.high_frequency_share,
        budget_used=measured.budget.used,
    )


def _same_person(start: torch.Tensor, edited: torch.Tensor, quiet: bool) -> Identity:
    """dlib's descriptor distance between each face and its edit, and whether it stays under SAME_PERSON; the face's
    five points are found on the start (scaled up to DLIB_SIDE) and used for both, so the edit cannot move them.
    Faces where dlib finds none are listed; without dlib (facelab[faces]) every entry is None."""
    n = len(start)
    if not dlib_installed():
        return Identity([None] * n, [None] * n, [], False)
    from ..data.detect import face_detector, face_recogniser
    from .face_reference import CHIP, CHIP_PADDING

    five_points, recogniser, dlib = face_recogniser()
    detector = face_detector("dlib-hog")
    distance: list[float | None] = []
    same: list[bool | None] = []
    not_found: list[int] = []
    with progress_bar("dlib: same person?", n, quiet) as advance:
        for i in range(n):
            before, after = (
                cv2.resize(pixels_to_uint8(x[i : i + 1]), (DLIB_SIDE, DLIB_SIDE), interpolation=cv2.INTER_CUBIC) for x in (start, edited)
            )
            found = detector.find(before)
            if not found:
                distance.append(None)
                same.append(None)
                not_found.append(i)
            else:
                x, y, w, h = found[0].box
                shape = five_points(before, dlib.rectangle(int(x), int(y), int(x + w), int(y + h)))
                chips = [np.asarray(dlib.get_face_chip(img, shape, size=CHIP, padding=CHIP_PADDING)) for img in (before, after)]
                a, b = np.array(recogniser.compute_face_descriptor(chips))
                apart = float(np.linalg.norm(a - b))
                distance.append(apart)
                same.append(apart < SAME_PERSON)
            advance()
    return Identity(distance, same, not_found, True)


def _other_attributes_flipped(judge: Run, attr: str, start: torch.Tensor, edited: torch.Tensor) -> np.ndarray:
    """How many of the oracle's attributes other than ``attr`` changed its decision between each face and its edit."""
    others = [i for i, name in enumerate(judge.outputs) if name != attr]
    with torch.no_grad():
        decided = [judge.task.probabilities(judge.model(_as_input_of(judge, x)))[:, others] >= 0.5 for x in (start, edited)]
    return (decided[0] != decided[1]).sum(1).numpy()


def _as_input_of(judge: Run, pixels: torch.Tensor) -> torch.Tensor:
    """[0, 1] pixels as the oracle's network takes them: its size and its channels."""
    w, h = judge.contract.size
    x = F.interpolate(pixels, size=(h, w), mode="bilinear", align_corners=False) if pixels.shape[-2:] != (h, w) else pixels
    if judge.contract.channels == 1 and x.shape[1] == 3:
        x = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:3]
    elif judge.contract.channels == 3 and x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    return judge.contract.normalise(x)


def _oracle_accuracy(judge: Run, attr: str) -> float | None:
    """The oracle's own validation accuracy on the attributes it judges (its summary.json), or None without one."""
    import json

    path = judge.path / "summary.json"
    per_attr = json.loads(path.read_text()).get("final", {}).get("val_acc_per_attr", {}) if path.exists() else {}
    judged = [v for name, v in per_attr.items() if name != attr]
    return float(np.mean(judged)) if judged else None


def contact_sheet(folder: Path, start: torch.Tensor, edited: torch.Tensor, captions: list[tuple[str, str]]) -> tuple[str, str]:
    """The first SHEET faces: start, changed and the change amplified, captioned (start, changed) by ``captions``."""
    tiles, shown = [], []
    for i in range(min(SHEET, len(start))):
        before, after = pixels_to_uint8(start[i : i + 1]), pixels_to_uint8(edited[i : i + 1])
        tiles += [before, after, amplified_change(np.abs(after.astype(float) - before.astype(float)).mean(2))]
        shown += [*captions[i], "|change|, amplified"]
    image_grid(tiles, shown, folder / "contact_sheet.png", cols=3)
    return "contact_sheet.png", "start, changed and the change (amplified) of the first faces"


def _facts(s: EditSet) -> list[list]:
    return [
        ["faces edited (not showing the target value)", s.n],
        ["flip rate (the classifier now says the target value)", _shown(s.flip_rate) + _ci(s.flip_rate_ci)],
        ["MNAC (other attributes flipped, by the oracle)", _shown(s.mnac)],
        ["oracle's validation accuracy on those attributes", _shown(s.mnac_oracle_accuracy)],
        *score_facts(s),
    ]


def score_facts(s: ScoredSet) -> list[list]:
    """The rows of a set's scores and its budget, for its report."""
    closeness = " / ".join(_shown(v) for v in (s.ssim_median, s.l1_median, s.hf_share_median))
    return [
        [f"FVA (dlib: same person, distance < {s.fva_threshold})", _shown(s.fva) + _ci(s.fva_ci)],
        ["faces dlib found no face in (left out of FVA)", len(s.fva_not_found)],
        ["median SSIM / L1 / high-frequency share", closeness],
        ["budget", f"{s.budget.norm} {_shown(s.budget.eps)}, {s.budget.steps} steps, {s.budget.objective}"],
    ]


def _shown(v: float | None) -> str:
    return "—" if v is None else f"{v:.3f}"


def _ci(lo_hi: list) -> str:
    return "" if lo_hi[0] is None else f" [{lo_hi[0]:.3f}, {lo_hi[1]:.3f}]"
