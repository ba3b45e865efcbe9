"""``facelab data validate-synth``: evidence that the synthetic faces' ground truth holds.

Five checks, each a number: attribute control (flipping one attribute changes pixels only
inside its mask), learnability (a small CNN learns Smiling, Eyeglasses and 20 identities
quickly), intervention (greying the Smiling mask removes the signal, greying an equal
area elsewhere does not), landmark placement, and the bias knobs' realised rates.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

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
from ..files import prepare_output, record_entries
from ..hardware import Runtime, probe_runtime
from ..report.figures import image_grid
from ..report.html import Report
from ..run import Run
from ..training.config import TrainConfig
from ..training.engine import train

SIZE = 64


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


def landmark_checks(n: int = 200, size: int = 128) -> dict[str, float]:
    """Share of faces whose nose tip lies in the nose region, eye corners in the eye region,
    mouth corners in the mouth region (all by construction of the renderer)."""
    fs = synth_faceset(SynthConfig(n=n, seed=2))
    hits = {"nose_tip_in_nose": 0, "eye_corners_in_eyes": 0, "mouth_corners_in_mouth": 0}
    for i in range(n):
        pts = np.round(fs.geometry(i, size)["landmarks68"]).astype(int).clip(0, size - 1)
        m = fs.masks(i, size)
        inside = lambda k, name: bool(m[A[name]][pts[k, 1], pts[k, 0]])  # noqa: E731
        hits["nose_tip_in_nose"] += inside(30, "Big_Nose")
        hits["eye_corners_in_eyes"] += all(inside(k, "Narrow_Eyes") for k in (36, 39, 42, 45))
        hits["mouth_corners_in_mouth"] += inside(48, "Smiling") and inside(54, "Smiling")
    return {k: v / n for k, v in hits.items()}


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


@torch.no_grad()
def intervention(run: Path, n: int = 400, seed: int = 0, runtime: Runtime | None = None) -> dict[str, float]:
    """Smiling accuracy on fresh faces with the Smiling region greyed out vs an equal area elsewhere.

    "Elsewhere" is the same mask mirrored top-to-bottom (the forehead), so the area is equal.
    """
    opened = Run.for_probes(run, runtime)
    model, contract = opened.model, opened.contract
    col = opened.outputs.index("Smiling")
    fs = synth_faceset(SynthConfig(n=n, seed=seed + 1000))
    imgs = {"clean": [], "mask": [], "elsewhere": []}
    for i in range(n):
        img, _ = fs.load(i, (SIZE, SIZE))
        m = fs.masks(i, SIZE)[A["Smiling"]]
        other = m[::-1] & ~m
        for key, region in (("clean", None), ("mask", m), ("elsewhere", other)):
            x = img.copy()
            if region is not None:
                x[region] = 128
            imgs[key].append(x)
    y = torch.from_numpy(fs.attributes[:, A["Smiling"]].astype(np.float32))
    acc = {}
    for key, arr in imgs.items():
        x = contract.to_input(torch.from_numpy(np.stack(arr)))
        with opened.runtime.autocast():
            logits = model(opened.runtime.input(x)).float()[:, col]
        acc[key] = float(((logits > 0).float() == y).float().mean())
    acc["examples"] = [imgs[k][j] for j in range(4) for k in ("clean", "mask", "elsewhere")]
    return acc


def validate_synth(
    out: str | Path = "runs/validate_synth",
    seed: int = 0,
    quiet: bool = False,
    attr_images: int = 6000,
    id_images: int = 3000,
    epochs: int = 4,
    runtime: Runtime | None = None,
) -> dict:
    """Run every check, write OUT/summary.json and OUT/report.html; returns the summary."""
    out = prepare_output(out, "validate-synth")
    containment = mask_containment(seed=seed)
    speed = faces_per_second()
    marks = landmark_checks()
    knobs = knob_rates()
    runtime = runtime or probe_runtime()
    common = dict(epochs=epochs, size=str(SIZE), seed=seed, quiet=quiet, runtime=runtime)
    attr_run = out / "attr_run"
    id_run = out / "identity_run"
    t0 = time.perf_counter()
    attr_summary = _train_fresh(attr_run, spec=f"synth:{attr_images},seed={seed}", task="attr", attrs=["Smiling", "Eyeglasses"], **common)
    t_attr = time.perf_counter() - t0
    id_summary = _train_fresh(id_run, spec=f"synth:{id_images},ids=20,seed={seed}", task="identity", classes=20, **common)
    iv = intervention(attr_run, seed=seed, runtime=runtime)
    examples = iv.pop("examples")
    summary = {
        "mask_containment": min(containment.values()),
        "acc": {
            "Smiling": attr_summary["final"]["val_acc_per_attr"]["Smiling"],
            "Eyeglasses": attr_summary["final"]["val_acc_per_attr"]["Eyeglasses"],
            "identity20": id_summary["final"]["val_acc"],
        },
        "intervention": {"mask": iv["mask"], "elsewhere": iv["elsewhere"]},
        "faces_per_s": speed,
        "details": {
            "containment_per_attr": containment,
            "landmarks": marks,
            "knobs": knobs,
            "intervention_clean": iv["clean"],
            "attr_training_s": t_attr,
            "identity_chance": 1 / 20,
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    image_grid(examples, ["clean", "Smiling region grey", "equal area elsewhere"] * 4, out / "intervention.png", cols=6)
    _report(out, summary)
    record_entries(out)
    return summary


def _train_fresh(run: Path, *, quiet: bool, runtime: Runtime, **settings) -> dict:
    """A run trained from the start in ``run`` (``settings``: its TrainConfig's)."""
    return train(TrainConfig(out=str(run), **settings), quiet=quiet, force=True, runtime=runtime)


def _report(out: Path, s: dict) -> None:
    d = s["details"]
    rep = Report("Synthetic faces: validity report")
    rep.paragraph(f"Rendering speed: {s['faces_per_s']:.0f} faces/s at {SIZE}px on one core.")
    rep.heading("Attribute control: share of changed pixels inside the flipped attribute's mask")
    rep.table(["attribute", "containment"], [[k, v] for k, v in d["containment_per_attr"].items()])
    rep.heading("Learnability (darknet64, validation accuracy)")
    rep.table(["target", "accuracy"], [[k, v] for k, v in s["acc"].items()] + [["identity chance", d["identity_chance"]]])
    rep.paragraph(f"Smiling/Eyeglasses model trained in {d['attr_training_s']:.0f} s (including the cache build).")
    rep.heading("Intervention on the Smiling model")
    rep.table(
        ["input", "Smiling accuracy"],
        [
            ["clean", d["intervention_clean"]],
            ["Smiling mask greyed", s["intervention"]["mask"]],
            ["equal area elsewhere greyed", s["intervention"]["elsewhere"]],
        ],
    )
    rep.figure("intervention.png", "examples: clean, mask greyed, equal area elsewhere greyed")
    rep.heading("Landmarks placed on the rendered features")
    rep.table(["check", "share of faces"], [[k, v] for k, v in d["landmarks"].items()])
    rep.heading("Bias knobs: requested vs realised (training split)")
    rep.table(
        ["knob", "requested", "realised", "n", "within 4 s.e."],
        [[k["knob"], k["requested"], k["realised"], k["n"], k["within_4se"]] for k in d["knobs"]],
    )
    rep.write(out / "report.html")
