"""``facelab data validate-synth``: evidence that the synthetic faces' ground truth holds.

Five checks, each a number: attribute control (flipping one attribute changes pixels only
inside its mask), learnability (a small CNN learns Smiling, Eyeglasses and 20 identities
quickly), intervention (greying the Smiling mask removes the signal, greying an equal
area elsewhere does not), landmark placement, and the bias knobs' realised rates.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypedDict

import numpy as np
import torch

from ..data.synth import (
    ATTRIBUTES,
    A,
    Knob,
    SynthConfig,
    make_labels,
    render,
    synth_faceset,
)
from ..files import prepare_output, record_entries, write_json
from ..hardware import Runtime, probe_runtime
from ..report.figures import image_grid
from ..report.html import Report
from ..results import Summary
from ..run import Run
from ..training.config import TrainConfig
from ..training.engine import train

SIZE = 64


@dataclass
class ValidityDetails(Summary):
    """Every check's figures behind the headline ones."""

    containment_per_attr: dict[str, float]
    landmarks: LandmarkChecks
    knobs: list[dict[str, Any]]
    intervention_clean: float
    attr_training_s: float
    identity_chance: float


@dataclass
class SynthValidity(Summary):
    """``facelab data validate-synth``'s summary.json (docs/json.md): attribute control, learnability, the
    intervention, rendering speed, and the details."""

    mask_containment: float
    acc: dict[str, float]
    intervention: dict[str, float]
    faces_per_s: float
    details: ValidityDetails


def mask_containment(n: int = 60, size: int = SIZE, seed: int = 0) -> dict[str, float]:
    """Per attribute: share of the pixels changed by flipping it that lie inside its mask."""
    fs = synth_faceset(SynthConfig(n=n, seed=seed))
    inside = np.zeros(len(ATTRIBUTES))
    total = np.zeros(len(ATTRIBUTES))
    for i in range(n):
        ident, nuis, attrs = fs.parts(i)
        base, _ = render(ident, nuis, attrs, size)
        masks = fs.masks(i, size)
        for k in range(len(ATTRIBUTES)):
            flipped = attrs.copy()
            flipped[k] = 1 - flipped[k]
            changed = (render(ident, nuis, flipped, size)[0] != base).any(-1)
            inside[k] += (changed & masks[k]).sum()
            total[k] += changed.sum()
    return {name: float(inside[k] / total[k]) if total[k] else 1.0 for k, name in enumerate(ATTRIBUTES)}


def faces_per_second(n: int = 500, size: int = SIZE) -> float:
    fs = synth_faceset(SynthConfig(n=n, seed=1))
    fs.load(0, (size, size))
    t = time.perf_counter()
    for i in range(n):
        fs.load(i, (size, size))
    return n / (time.perf_counter() - t)


class LandmarkChecks(TypedDict):
    """Shares of faces whose landmarks fall on the rendered features (1.0 by construction of the renderer)."""

    nose_tip_in_nose: float
    eye_corners_in_eyes: float
    mouth_corners_in_mouth: float


def landmark_checks(n: int = 200, size: int = 128) -> LandmarkChecks:
    """Share of faces whose nose tip lies in the nose region, eye corners in the eye region,
    mouth corners in the mouth region (all by construction of the renderer)."""
    fs = synth_faceset(SynthConfig(n=n, seed=2))
    hits = {"nose_tip_in_nose": 0, "eye_corners_in_eyes": 0, "mouth_corners_in_mouth": 0}
    for i in range(n):
        pts = np.round(fs.geometry(i, size).landmarks68).astype(int).clip(0, size - 1)
        m = fs.masks(i, size)
        inside = lambda k, name: bool(m[A[name]][pts[k, 1], pts[k, 0]])  # noqa: E731
        hits["nose_tip_in_nose"] += inside(30, "Big_Nose")
        hits["eye_corners_in_eyes"] += all(inside(k, "Narrow_Eyes") for k in (36, 39, 42, 45))
        hits["mouth_corners_in_mouth"] += inside(48, "Smiling") and inside(54, "Smiling")
    return LandmarkChecks(
        nose_tip_in_nose=hits["nose_tip_in_nose"] / n,
        eye_corners_in_eyes=hits["eye_corners_in_eyes"] / n,
        mouth_corners_in_mouth=hits["mouth_corners_in_mouth"] / n,
    )


def knob_rates(n: int = 20000) -> list[dict]:
    """Requested vs realised rates of each bias knob in the training split."""
    checks = []
    for kind, text in (("correlate", "Male:Bald=0.9"), ("spurious", "Male:background=0.95"), ("imbalance", "Male=0.3")):
        knob = Knob.parse(kind, text)
        lab = make_labels(SynthConfig(n=n, seed=3, knobs=(knob,)))
        tr = lab["split"] == 0
        male = lab["attributes"][:, A["Male"]] == 1
        if kind == "correlate":
            sel, got = tr & male, lab["attributes"][tr & male, A["Bald"]].mean()
        elif kind == "spurious":
            sel, got = tr, (lab["background"][tr] == lab["attributes"][tr, A["Male"]]).mean()
        else:
            sel, got = tr, male[tr].mean()
        se = np.sqrt(knob.p * (1 - knob.p) / sel.sum())
        test_rate = (lab["background"][lab["split"] == 2] == lab["attributes"][lab["split"] == 2, A["Male"]]).mean()
        checks.append(
            {
                "knob": f"--{kind} {text}",
                "requested": knob.p,
                "realised": float(got),
                "n": int(sel.sum()),
                "within_4se": bool(abs(got - knob.p) < 4 * se),
                "test_split_agreement" if kind == "spurious" else "note": float(test_rate) if kind == "spurious" else "",
            }
        )
    return checks


class Intervention(NamedTuple):
    """Smiling accuracy on clean faces, with the Smiling region greyed, and with an equal area elsewhere greyed; and
    four faces of each kind to show."""

    clean: float
    mask: float
    elsewhere: float
    examples: list[np.ndarray]


@torch.no_grad()
def intervention(run: Path, n: int = 400, seed: int = 0, runtime: Runtime | None = None) -> Intervention:
    """Smiling accuracy on fresh faces with the Smiling region greyed out vs an equal area elsewhere.

    "Elsewhere" is the same mask mirrored top-to-bottom (the forehead), so the area is equal.
    """
    opened = Run.for_probes(run, runtime)
    model, contract, rt = opened.model, opened.contract, opened.runtime
    assert rt is not None  # for_probes puts every run on a runtime
    col = opened.outputs.index("Smiling")
    fs = synth_faceset(SynthConfig(n=n, seed=seed + 1000))
    imgs: dict[str, list[np.ndarray]] = {"clean": [], "mask": [], "elsewhere": []}
    for i in range(n):
        img, _ = fs.load(i, (SIZE, SIZE))
        m = fs.masks(i, SIZE)[A["Smiling"]]
        other = m[::-1] & ~m
        for key, region in (("clean", None), ("mask", m), ("elsewhere", other)):
            x = img.copy()
            if region is not None:
                x[region] = 128
            imgs[key].append(x)
    y = torch.from_numpy(np.asarray(fs.attributes)[:, A["Smiling"]].astype(np.float32))
    acc: dict[str, float] = {}
    for key, arr in imgs.items():
        x = contract.to_input(torch.from_numpy(np.stack(arr)))
        with rt.autocast():
            logits = model(rt.input(x)).float()[:, col]
        acc[key] = float(((logits > 0).float() == y).float().mean())
    examples = [imgs[k][j] for j in range(4) for k in ("clean", "mask", "elsewhere")]
    return Intervention(acc["clean"], acc["mask"], acc["elsewhere"], examples)


def validate_synth(
    out: str | Path = "runs/validate_synth",
    seed: int = 0,
    quiet: bool = False,
    attr_images: int = 6000,
    id_images: int = 3000,
    epochs: int = 4,
    runtime: Runtime | None = None,
) -> SynthValidity:
    """Run every check, write OUT/summary.json and OUT/report.html; returns the summary."""
    out = prepare_output(out, "validate-synth")
    containment = mask_containment(seed=seed)
    speed = faces_per_second()
    marks = landmark_checks()
    knobs = knob_rates()
    runtime = runtime or probe_runtime()
    attr_run = out / "attr_run"
    id_run = out / "identity_run"
    t0 = time.perf_counter()
    attr_cfg = TrainConfig(out=str(attr_run), spec=f"synth:{attr_images},seed={seed}", attrs=["Smiling", "Eyeglasses"], epochs=epochs,
                           size=str(SIZE), seed=seed)  # fmt: skip
    attr_summary = train(attr_cfg, quiet=quiet, force=True, runtime=runtime)  # from the start: a fresh check
    t_attr = time.perf_counter() - t0
    id_cfg = TrainConfig(out=str(id_run), spec=f"synth:{id_images},ids=20,seed={seed}", task="identity", classes=20, epochs=epochs,
                         size=str(SIZE), seed=seed)  # fmt: skip
    id_summary = train(id_cfg, quiet=quiet, force=True, runtime=runtime)
    iv = intervention(attr_run, seed=seed, runtime=runtime)
    assert attr_summary is not None and id_summary is not None  # trained in this one process
    per_attr = attr_summary.final["val_acc_per_attr"]
    summary = SynthValidity(
        mask_containment=min(containment.values()),
        acc={"Smiling": per_attr["Smiling"], "Eyeglasses": per_attr["Eyeglasses"], "identity20": id_summary.final["val_acc"]},
        intervention={"mask": iv.mask, "elsewhere": iv.elsewhere},
        faces_per_s=speed,
        details=ValidityDetails(containment, marks, knobs, iv.clean, t_attr, 1 / 20),
    )
    write_json(out / "summary.json", summary.to_json())
    image_grid(iv.examples, ["clean", "Smiling region grey", "equal area elsewhere"] * 4, out / "intervention.png", cols=6)
    _report(out, summary)
    record_entries(out)
    return summary


def _report(out: Path, s: SynthValidity) -> None:
    d = s.details
    rep = Report("Synthetic faces: validity report")
    rep.paragraph(f"Rendering speed: {s.faces_per_s:.0f} faces/s at {SIZE}px on one core.")
    rep.heading("Attribute control: share of changed pixels inside the flipped attribute's mask")
    rep.table(["attribute", "containment"], [[k, v] for k, v in d.containment_per_attr.items()])
    rep.heading("Learnability (darknet64, validation accuracy)")
    rep.table(["target", "accuracy"], [[k, v] for k, v in s.acc.items()] + [["identity chance", d.identity_chance]])
    rep.paragraph(f"Smiling/Eyeglasses model trained in {d.attr_training_s:.0f} s (including the cache build).")
    rep.heading("Intervention on the Smiling model")
    rep.table(
        ["input", "Smiling accuracy"],
        [
            ["clean", d.intervention_clean],
            ["Smiling mask greyed", s.intervention["mask"]],
            ["equal area elsewhere greyed", s.intervention["elsewhere"]],
        ],
    )
    rep.figure("intervention.png", "examples: clean, mask greyed, equal area elsewhere greyed")
    rep.heading("Landmarks placed on the rendered features")
    rep.table(["check", "share of faces"], [[k, v] for k, v in d.landmarks.items()])
    rep.heading("Bias knobs: requested vs realised (training split)")
    rep.table(
        ["knob", "requested", "realised", "n", "within 4 s.e."],
        [[k["knob"], k["requested"], k["realised"], k["n"], k["within_4se"]] for k in d.knobs],
    )
    rep.write(out / "report.html")
