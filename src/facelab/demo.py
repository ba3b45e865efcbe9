"""``facelab demo``: the built-in synthetic faces through every stage, one index.html."""
from __future__ import annotations

import shutil
import time
from pathlib import Path

from .data.spec import open_spec
from .report.contact import contact_sheet
from .report.html import Report
from .train.engine import TrainConfig, train


def look_inside(run: Path, quiet: bool) -> dict:
    """Every probe of what the network learned, on one non-smiling synthetic face."""
    from .probes.activations import activations, filters, rgb
    from .probes.dream import dream, edit

    fs = open_spec("synth:64")
    face = next(i for i in range(64) if fs.attributes[i, fs.attr_names.index("Smiling")] == 0)
    image = f"synth:64#{face}"
    activations(run, image, ["1", "2", "3"])
    rgb(run, image, "2", [0, 1, 2])
    filters(run)
    return {"dream": dream(run, image, "3", "5", "square", steps=60, quiet=quiet), "edit": edit(run, image, "Smiling", to=1, quiet=quiet)}


def demo(out: str | Path = "runs/demo", quick: bool = False) -> Path:
    """Train and analyse small models on synthetic faces; returns the path of index.html.

    ``quick`` shrinks every step (for smoke tests); the full demo takes a few minutes on 2 cores.
    """
    from .probes.inversion import inversion
    from .probes.synth_validity import validate_synth

    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    t0 = time.perf_counter()
    n, epochs = (600, 1) if quick else (8000, 5)
    contact_sheet(open_spec("synth:64"), 16, 128, out / "synthetic_faces.png")
    attrs = ["Smiling", "Eyeglasses", "Male", "Young"]
    summary = train(TrainConfig(spec=f"synth:{n}", out=str(out / "attributes"), attrs=attrs, epochs=epochs), quiet=quick)
    inside = look_inside(out / "attributes", quiet=quick)
    validity = validate_synth(out / "validate_synth", quiet=quick, attr_images=600 if quick else 6000,
                              id_images=400 if quick else 3000, epochs=1 if quick else 4)  # fmt: skip
    inv = inversion("synth:400,ids=10" if quick else "synth:3000,ids=20", classes=[10 if quick else 20],
                    epochs=2 if quick else 8, size="32" if quick else "64", out=out / "inversion", quiet=quick)["runs"][0]
    elapsed = time.perf_counter() - t0
    rep = Report("facelab demo")
    rep.paragraph(f"Everything below ran on the built-in synthetic faces in {elapsed:.0f} s.")
    rep.heading("The data").figure("synthetic_faces.png", "synthetic faces with their 68 landmarks, and one attribute's region mask each")
    rep.heading("An attribute classifier (darknet64, 64 px)")
    rep.table(["attribute", "final validation accuracy"], [[a, summary["final"]["val_acc_per_attr"][a]] for a in attrs])
    rep.links([("training report", "attributes/report.html")])
    rep.heading("Looking inside the attribute classifier")
    rep.table(["probe", "value"], [["dream: channel objective before -> after", f"{inside['dream']['objective_initial']:.1f} -> "
                                    f"{inside['dream']['objective_final']:.1f}"],
                                   ["edit toward Smiling: P(Smiling) before -> after",
                                    f"{inside['edit']['prob_before']:.3f} -> {inside['edit']['prob_after']:.3f}"],
                                   ["edit: mean |change| inside / outside the mouth region",
                                    f"{inside['edit']['change_inside_mask']:.4f} / {inside['edit']['change_outside_mask']:.4f}"]])  # fmt: skip
    for name, caption in (("activations/activations_layer2.png", "activation maps of layer 2"),
                          ("edit/edit.png", "class-driven edit toward Smiling: where the pixels changed"),
                          ("dream/activation_before_after.png", "activation maximisation of one layer-3 channel"),
                          ("filters/filters_layer1.png", "first-layer filters")):  # fmt: skip
        rep.figure(f"attributes/{name}", caption)
    rep.links([(f"{p} report", f"attributes/{p}/report.html") for p in ("activations", "rgb", "dream", "edit", "filters")])
    rep.heading("Are the synthetic faces valid?")
    rep.table(["check", "value"], [["mask containment (worst attribute)", validity["mask_containment"]],
                                   *[[f"accuracy {k}", v] for k, v in validity["acc"].items()],
                                   ["Smiling accuracy, mouth region greyed", validity["intervention"]["mask"]],
                                   ["Smiling accuracy, equal area elsewhere greyed", validity["intervention"]["elsewhere"]],
                                   ["faces/s rendered at 64 px", validity["faces_per_s"]]])  # fmt: skip
    rep.links([("validity report", "validate_synth/report.html"), ("Smiling/Eyeglasses run", "validate_synth/attr_run/report.html"),
               ("20-identity run", "validate_synth/identity_run/report.html")])  # fmt: skip
    rep.heading("The face inversion effect (identity, 5% of training faces upside down)")
    rep.table(["", "value"], [["final upright accuracy", inv["upright_acc"][-1]], ["final inverted accuracy", inv["inverted_acc"][-1]],
                              ["gap (95% CI)", f"{inv['final_gap']:.3f} [{inv['final_gap_ci'][0]:.3f}, {inv['final_gap_ci'][1]:.3f}]"],
                              ["emergence epoch", inv["emergence_epoch"]], ["chance", inv["chance"]]])  # fmt: skip
    rep.figure(f"inversion/figures/inversion_ids{inv['classes']}.png", "upright vs inverted accuracy per epoch")
    rep.links([("inversion report", "inversion/report.html")])
    return rep.write(out / "index.html")
