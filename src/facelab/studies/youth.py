"""``facelab study youth``: what does a network that tells young from old faces compute, layer by layer, and
which pixel changes make a face look older or younger to it?"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.spec import open_spec
from ..errors import FacelabError
from ..hardware import Runtime
from ..ranges import STEPS_BOUNDS
from ..report.html import Report

if TYPE_CHECKING:
    from ..probes.audit import Audit, Rates
    from ..probes.dream import Dream, Edit
    from ..run import Run
from .protocol import CROP_SOURCE, FACELAB_SOURCE, SOURCE_CROP, Comparison, Plan, Protocol, study_folder, write_study
from .registry import Option, Study

RECORDED_SOURCE = (
    "the published study (layer:channel; its channels are numbered from 1, as layer 3's channel 64 of 64 shows: facelab's "
    "channel k-1; the objective of each single-channel dream is not recorded here, so each runs with the sum)"
)

ROBUST_SOURCE = (
    "facelab's addition (the study trains one network): a second one, trained adversarially within this L2 budget in pixel "
    "units by PGD with these steps, whose edits and dreams change features rather than add noise (Santurkar et al. 2019); "
    "--robust 0 leaves it out"
)

YOUTH = Protocol(
    name="youth",
    question=(
        "A Darknet-style network trained on CelebA's Young attribute: how accurate is it, what do its layers respond "
        "to (activation grids, three channels as one RGB picture, activation maximisation from a photo with three "
        "objectives), and which changes to a face does it read as older or younger?"
    ),
    data="CelebA, aligned, official split",
    default_spec="synth:8000",
    settings={
        "arch": "darknet64",
        "weights": None,
        "size": "auto",
        "epochs": 10,
        "batch": 128,
        "opt": "sgd",
        "lr": 0.01,
        "momentum": 0.9,
        "wd": 5e-4,
        "schedule": "onecycle",
        "target": "Young",
        "dream_layer": "3",
        "recorded_dreams": "1:11, 2:24, 3:27, 4:44",
        "recorded_rgb": "1:10,14,13; 3:51,54,64",
        "crop": SOURCE_CROP,
        "robust": 0.5,
        "robust_steps": 3,
        "robust_lr": 0.05,
        "robust_epochs": 10,
        "robust_start": "plain",
        "edit_n": 100,
    },
    sources={
        "crop": CROP_SOURCE,
        "epochs": FACELAB_SOURCE,
        "schedule": FACELAB_SOURCE,
        "dream_layer": FACELAB_SOURCE,
        "recorded_dreams": RECORDED_SOURCE,
        "recorded_rgb": RECORDED_SOURCE,
        "size": "facelab's choice (the study's input size is not recorded): auto is 128 px where the data's photos are at least "
        "that large (CelebA's aligned 178x218, UTKFace's 200x200), so that edits and dreams are drawn where a face is more "
        "than a few dozen pixels wide, at about 4x the compute of 64 px; 64 px for synthetic faces and smaller photos",
        "robust": ROBUST_SOURCE,
        "robust_steps": ROBUST_SOURCE,
        "robust_lr": "facelab's choice for the robust network (at the study's 0.01 it stayed at the majority answer on UTKFace "
        "after 10 epochs: test accuracy 0.665, balanced 0.51; at 0.05, 0.785)",
        "robust_epochs": "facelab's choice: the robust network's own passes, fine-tuning the plain one (on UTKFace, 5 left it "
        "at the majority answer on validation, 0.685 against 0.665; 10 reached 0.765, test 0.775 [0.712, 0.827])",
        "edit_n": "facelab's choice: the young test faces each network's edit toward older is scored on as a set (flip rate, FVA), "
        "and the test faces each network's dream of the dream layer is (FVA, high-frequency share)",
        "robust_start": "facelab's choice: plain (the robust network starts from the plain network's weights, as robust "
        "fine-tuning does; from scratch it stayed at the majority answer on synthetic faces and learned slowly on UTKFace) "
        "or scratch",
    },
    published={"test_accuracy": 0.90, "note": "Darknet64 on CelebA's Young attribute, test split"},
)


def youth_study(
    spec: str | None = None,
    *,
    photo: str | None = None,
    out: str | Path | None = None,
    seed: int = 0,
    steps: int = 60,
    recorded: bool = True,
    quiet: bool = False,
    runtime: Runtime | None = None,
    **options,
) -> dict:
    """Train the target, then every look inside on ``photo`` (a file or SPEC#ITEM; default: the first test face):
    activations of every conv layer, three channels as RGB, activation maximisation with each objective, and an edit
    toward older and toward younger. Writes OUT/summary.json and OUT/report.html."""
    from ..probes.activations import activations, filters, layers, rgb
    from ..probes.audit import audit
    from ..probes.dream import dream
    from ..probes.layers import OBJECTIVES
    from ..probes.subject import load_subject
    from ..run import Run
    from ..training.config import TrainConfig
    from ..training.engine import trained

    plan = Plan.of(YOUTH, spec, options, runtime)
    s = plan.settings
    if s["size"] == "auto":
        s["size"], plan.reasons["size"] = _auto_size(plan)
    plan.data.attr_index([s["target"]])
    if s["robust_start"] not in ("plain", "scratch"):
        raise FacelabError(f"--robust-start {s['robust_start']!r}: use plain (warm start from the plain network) or scratch")
    if photo is not None:
        load_subject(photo, s["size"])  # a missing or unreadable photo stops the study before it trains
    folder = study_folder(out, "youth")
    cfg = TrainConfig(
        spec=plan.spec,
        out=str(folder / "run"),
        attrs=[s["target"]],
        arch=s["arch"],
        size=s["size"],
        epochs=s["epochs"],
        batch=s["batch"],
        opt=s["opt"],
        lr=s["lr"],
        momentum=s["momentum"],
        wd=s["wd"],
        schedule=s["schedule"],
        crop=plan.crop,
        weights=plan.weights_for(s["arch"]),
        seed=seed,
    )
    run_summary = trained(cfg, quiet, plan.runtime)
    plan.check_chance("the", run_summary)
    run = Run.for_probes(folder / "run", plan.runtime)  # opened once: every probe below looks at the same network
    starts = {"older": photo, "younger": photo}
    if photo is None:  # each edit starts from a face the network does not already see that way
        starts = {"older": _test_face(plan.spec, s["target"], 1), "younger": _test_face(plan.spec, s["target"], 0)}
        photo = starts["older"]
        plan.notes.append(
            f"start image: test faces of the data ({photo}; {starts['younger']} for the edit toward younger), "
            "not a photo of the user's (give --photo)"
        )
    audited = audit(run, by=[s["target"]], out=run.path / "audit", runtime=plan.runtime)
    n_layers = len(layers(run, runtime=plan.runtime))
    inside = {
        "activations": activations(run, photo, [str(k) for k in range(1, n_layers + 1)], out=folder / "activations", runtime=plan.runtime),
        "rgb": rgb(run, photo, s["dream_layer"], [0, 1, 2], out=folder / "rgb", runtime=plan.runtime),
        "recorded": _recorded_channels(run, photo, s, folder, steps, seed, quiet, plan) if recorded else None,
        "filters": filters(run, out=folder / "filters", runtime=plan.runtime),
        "dream": {
            objective: dream(
                run,
                photo,
                s["dream_layer"],
                "all",
                objective,
                steps=steps,
                seed=seed,
                out=folder / f"dream_{objective}",
                quiet=quiet,
                runtime=plan.runtime,
            )
            for objective in OBJECTIVES
        },
        "edit": _age_edits(run, starts, s["target"], folder, "edit", steps, seed, quiet, plan.runtime),
    }
    summary = {
        "run": {"final": run_summary.final, "folder": "run", "train_seconds": run_summary.train_seconds},
        "size": int(s["size"]),
        "photo": photo,
        "test_accuracy": _test_accuracy(audited),
        "groups": [{"group": g.group, "n": g.n, "accuracy": g.accuracy, "accuracy_ci": g.accuracy_ci} for g in audited.groups],
        "dream": {o: {"layer": d.layer} | _growth(d) for o, d in inside["dream"].items()},
        "edit": {k: {"image": starts[k]} | _edit_measures(e) for k, e in inside["edit"].items()},
        "layers": n_layers,
        "recorded": inside["recorded"],
        "counterfactual": _counterfactual(run, plan, folder / "edit_set", steps, seed, quiet),
        "dream_set": _dreams_of_set(run, plan, folder / "dream_set", steps, seed, quiet),
        "robust": None,
    }
    if s["robust"]:
        summary["robust"] = _robust_beside(plan, cfg, starts, photo, folder, steps, seed, quiet, inside)
    return write_study(folder, plan, summary, _comparisons(summary, s["target"]), lambda rep: _sections(rep, summary, inside))


COUNTERFACTUAL_LITERATURE = (
    "reported for CelebA's Young at 128 px with diffusion-guided edits by DiME (Jeanneret et al., ACCV 2022) and ACE "
    "(Jeanneret et al., CVPR 2023); their figures are not copied into facelab: compare with their tables"
)
SET_KEYS = ("n", "fva", "fva_ci", "fva_not_found", "ssim_median", "l1_median", "hf_share_median", "budget")
SETS = (("edits", "counterfactual"), ("dreams", "dream_set"))  # what the study scores over a set, and its summary's key


def _counterfactual(run: Run, plan: Plan, folder: Path, steps: int, seed: int, quiet: bool) -> dict:
    """The edit toward older over a set of young test faces (:func:`facelab.probes.edit_set.edit_set`), the figures
    counterfactual papers report: flip rate and FVA with their intervals, closeness, the budget."""
    from ..probes.edit_set import edit_set

    target, began = plan.settings["target"], time.perf_counter()
    s = edit_set(run, plan.spec, attr=target, to=0, n=int(plan.settings["edit_n"]), steps=steps, seed=seed, out=folder, quiet=quiet,
                 runtime=plan.runtime)  # fmt: skip
    kept = s.to_json()
    return {k: kept[k] for k in (*SET_KEYS, "flip_rate", "flip_rate_ci", "mnac")} | _made_in(folder, began)


def _dreams_of_set(run: Run, plan: Plan, folder: Path, steps: int, seed: int, quiet: bool) -> dict:
    """The square objective's dream of the dream layer from as many test faces as the edits are scored on
    (:func:`facelab.probes.dream_set.dream_set`): still the same person? how much of the change is fine noise?"""
    from ..probes.dream_set import dream_set

    began = time.perf_counter()
    s = dream_set(run, plan.spec, layer=plan.settings["dream_layer"], objective="square", n=int(plan.settings["edit_n"]), steps=steps,
                  seed=seed, out=folder, quiet=quiet, runtime=plan.runtime)  # fmt: skip
    kept = s.to_json()
    return {k: kept[k] for k in (*SET_KEYS, "gain_median")} | _made_in(folder, began)


def _made_in(folder: Path, began: float) -> dict:
    """Where a set's own page is, and what it cost (seconds, on this machine)."""
    return {"folder": folder.name, "seconds": round(time.perf_counter() - began, 1)}


def _test_accuracy(audited: Audit) -> dict:
    overall = audited.overall
    return {"n": overall.n, "accuracy": overall.accuracy, "accuracy_ci": overall.accuracy_ci} | baselines(overall)


def _edit_measures(e: Edit) -> dict:
    return {"prob_before": e.prob_before, "prob_after": e.prob_after, "ssim": e.ssim, "high_frequency_share": e.high_frequency_share,
            "budget_used": e.budget.used}  # fmt: skip


def _age_edits(run: Run, starts: dict, target: str, folder: Path, prefix: str, steps: int, seed: int, quiet: bool, runtime) -> dict:
    """The edits toward older and toward younger, each from its start image, into FOLDER/PREFIX_older and _younger."""
    from ..probes.dream import edit

    return {
        direction: edit(
            run,
            starts[direction],
            target,
            to=to,
            steps=steps,
            seed=seed,
            out=folder / f"{prefix}_{direction}",
            quiet=quiet,
            runtime=runtime,
        )  # fmt: skip
        for direction, to in (("older", 0), ("younger", 1))
    }


def _robust_beside(plan: Plan, cfg, starts: dict, photo: str, folder: Path, steps: int, seed: int, quiet: bool, plain: dict) -> dict:
    """The same network trained adversarially (``robust`` L2 budget, ``robust_steps`` PGD steps), its test accuracy,
    its age edits and its dream with the square objective, each figure beside the plain network's."""
    from dataclasses import replace

    from ..probes.audit import audit
    from ..probes.dream import dream
    from ..run import Run
    from ..training.engine import trained

    s = plan.settings
    adversarial = dict(robust=float(s["robust"]), robust_norm="l2", robust_steps=int(s["robust_steps"]))
    start = str(folder / "run" / "checkpoints" / "best.ckpt") if s["robust_start"] == "plain" else cfg.weights
    robust_cfg = replace(
        cfg, out=str(folder / "robust"), lr=float(s["robust_lr"]), epochs=int(s["robust_epochs"]), weights=start, **adversarial
    )
    summary = trained(robust_cfg, quiet, plan.runtime)
    at_chance = plan.check_chance("the robust", summary)
    run = Run.for_probes(folder / "robust", plan.runtime)
    audited = audit(run, by=[s["target"]], out=run.path / "audit", runtime=plan.runtime)
    made = {
        "final": summary.final,
        "folder": "robust",
        "budget": {"norm": "l2", "eps": robust_cfg.robust, "steps": robust_cfg.robust_steps},
        "start": s["robust_start"],
        "epochs": robust_cfg.epochs,
        "train_seconds": round(summary.train_seconds, 1),  # as the run recorded it, also when a finished run is reused
        "test_accuracy": _test_accuracy(audited),
        "at_chance": bool(at_chance),
    }
    if at_chance:  # its edits and dreams would show what a guess climbs, not what the network learned
        plan.warnings.append("the robust run: no edits or dreams of it are shown, as it answers at chance (see above)")
        return made | {"edit": None, "dream": None, "counterfactual": None, "dream_set": None}
    edits = _age_edits(run, starts, s["target"], folder, "robust_edit", steps, seed, quiet, plan.runtime)
    dreamed = dream(run, photo, s["dream_layer"], "all", "square", steps=steps, seed=seed, out=folder / "robust_dream_square",
                    quiet=quiet, runtime=plan.runtime)  # fmt: skip
    _side_by_side_edits(folder, edits)
    _side_by_side_dreams(folder, plain["dream"]["square"], dreamed)
    return made | {
        "edit": {k: {"image": starts[k]} | _edit_measures(e) for k, e in edits.items()},
        "dream": {
            "square": {"layer": dreamed.layer}
            | _growth(dreamed)
            | {"ssim": dreamed.ssim, "high_frequency_share": dreamed.high_frequency_share}
        },
        "counterfactual": _counterfactual(run, plan, folder / "robust_edit_set", steps, seed, quiet),
        "dream_set": _dreams_of_set(run, plan, folder / "robust_dream_set", steps, seed, quiet),
    }


def _side_by_side_edits(folder: Path, robust_edits: dict) -> None:
    """Per direction: the start, the plain network's edit and the robust one's (the networks' own inputs)."""
    import numpy as np
    from PIL import Image

    from ..report.figures import image_grid

    panels, captions = [], []
    for direction in robust_edits:
        read = lambda name: np.asarray(Image.open(folder / name).convert("RGB"))  # noqa: E731
        panels += [read(f"edit_{direction}/start.png"), read(f"edit_{direction}/edited.png"), read(f"robust_edit_{direction}/edited.png")]
        captions += [f"start ({direction} edit)", "plain network", "robust network"]
    image_grid(panels, captions, folder / "edits_plain_vs_robust.png", cols=3)


def _side_by_side_dreams(folder: Path, plain: Dream, robust: Dream, shown: int = 8) -> None:
    """The first ``shown`` channels' dreams of the plain network (top row) and the robust one (bottom row)."""
    import numpy as np
    from PIL import Image

    from ..report.figures import image_grid

    panels, captions = [], []
    for name, d, sub in (("plain", plain, "dream_square"), ("robust", robust, "robust_dream_square")):
        for c in d.channels[:shown]:
            panels.append(np.asarray(Image.open(folder / sub / "edited" / f"channel_{c}.png").convert("RGB")))
            captions.append(f"{name}, channel {c}")
    image_grid(panels, captions, folder / "dreams_plain_vs_robust.png", cols=min(shown, len(panels) // 2))


def parse_recorded(text: str) -> list[tuple[int, list[int]]]:
    """ "1:11, 2:24" or "1:10,14,13; 3:51,54,64" -> [(layer, [facelab's channels, from 0])]: the write-up counts from 1."""
    made = []
    for part in text.replace(";", " ").replace(", ", " ").split():
        layer, _, channels = part.partition(":")
        made.append((int(layer), [int(c) - 1 for c in channels.split(",")]))
    return made


def _recorded_channels(run: Run, photo, s: dict, folder: Path, steps: int, seed: int, quiet: bool, plan) -> dict:
    """The write-up's own pictures: a single-channel activation maximisation of each recorded (layer, channel) and
    each recorded RGB triple, on the same photo. A channel the network does not have is skipped and said."""
    from ..probes.activations import layers, rgb
    from ..probes.dream import dream

    widths = {row["index"]: row["shape"][0] for row in layers(run, runtime=plan.runtime)}
    fits = lambda layer, chans: layer in widths and all(0 <= c < widths[layer] for c in chans)  # noqa: E731
    made = {"dreams": [], "rgb": []}
    for layer, (channel,) in parse_recorded(s["recorded_dreams"]):
        if not fits(layer, [channel]):
            plan.notes.append(f"recorded dream: layer {layer} channel {channel + 1} is not in this network, skipped")
            continue
        d = dream(run, photo, str(layer), str(channel), "sum", steps=steps, seed=seed, out=folder / f"recorded_dream_l{layer}c{channel}",
                  quiet=quiet, runtime=plan.runtime)  # fmt: skip
        made["dreams"].append({"layer": layer, "channel": channel, "folder": f"recorded_dream_l{layer}c{channel}"} | _growth(d))
    for layer, channels in parse_recorded(s["recorded_rgb"]):
        if not fits(layer, channels):
            plan.notes.append(f"recorded RGB: layer {layer} channels {[c + 1 for c in channels]} are not all in this network, skipped")
            continue
        picture = rgb(run, photo, str(layer), channels, out=folder / f"recorded_rgb_l{layer}", runtime=plan.runtime)
        made["rgb"].append({"layer": layer, "channels": channels, "figure": f"recorded_rgb_l{layer}/{picture.figure}"})
    return made


def _growth(d: Dream) -> dict:
    return {"objective_initial": d.objective_initial, "objective_final": d.objective_final}


def baselines(overall: Rates) -> dict:
    """Beside a test accuracy: the positives, the accuracy of always answering the majority (with Wilson's interval)
    and the balanced accuracy (from the audit's TPR and FPR; None where a class is absent)."""
    from ..probes.stats import wilson_ci

    n, pos, tpr, fpr = overall.n, overall.positives, overall.tpr, overall.fpr
    return {
        "positives": pos,
        "majority": overall.majority,
        "majority_ci": wilson_ci(max(pos, n - pos), n),
        "balanced": None if tpr is None or fpr is None else (tpr + 1 - fpr) / 2,
    }


EDIT_SIDE = 128  # the side edits are drawn at where the photos allow


def _auto_size(plan: Plan, sample: int = 16) -> tuple[str, str]:
    """``--size auto``: EDIT_SIDE where the first ``sample`` photos are all at least that large on their short side,
    64 otherwise and for synthetic faces (rendered at any size: 64 keeps the demo's cost); with the reason."""
    if plan.synthetic:
        return "64", "auto: 64 px for synthetic faces"
    side = min(min(plan.data.image_size(i)) for i in range(min(sample, len(plan.data))))
    if side >= EDIT_SIDE:
        return str(EDIT_SIDE), f"auto: the photos are at least {side} px on their short side, so edits are drawn at {EDIT_SIDE} px"
    return "64", f"auto: the photos are {side} px on their short side, under {EDIT_SIDE}"


def _test_face(spec: str, attr: str, value: int) -> str:
    """SPEC#ITEM of the first test face with ``attr`` = ``value`` (the first test face when there is none)."""
    fs = open_spec(spec)  # the selection of a SPEC such as synth:N is cheap to open again
    test = fs.split_indices("test")
    column = fs.attributes[test, fs.attr_index([attr])[0]]
    matching = test[column == value]
    return f"{spec}#{int((matching if matching.size else test)[0])}"


def _comparisons(summary: dict, target: str) -> list[Comparison]:
    acc = summary["test_accuracy"]
    rows = [
        Comparison(f"test accuracy (n={acc['n']})", f"{YOUTH.published['test_accuracy']:.2f}", acc["accuracy"], tuple(acc["accuracy_ci"]))
    ]
    majority = "young" if acc["positives"] >= acc["n"] - acc["positives"] else "older"
    rows += [
        Comparison(
            f"always answering the majority ({majority}): accuracy to beat", "not published", acc["majority"], tuple(acc["majority_ci"])
        ),
        Comparison(
            "balanced accuracy (mean of the recalls of young and older faces; 0.5 for a constant)", "not published", acc["balanced"]
        ),
    ]
    for g in summary["groups"]:
        label = "young faces" if g["group"][target] else "older faces"
        rows.append(Comparison(f"accuracy on {label} (n={g['n']})", "not published", g["accuracy"], tuple(g["accuracy_ci"])))
    if summary["robust"]:
        r = summary["robust"]["test_accuracy"]
        rows.append(Comparison(f"robust network: test accuracy (n={r['n']})", "not in the study", r["accuracy"], tuple(r["accuracy_ci"])))
    for which, net in _shown_networks(summary):
        cf = net["counterfactual"]
        flips = f"{which}: edits of young faces toward older that flip the network (n={cf['n']})"
        rows.append(Comparison(flips, "not published", cf["flip_rate"], tuple(cf["flip_rate_ci"]), COUNTERFACTUAL_LITERATURE))
        for name, key in SETS:
            scored = net[key]
            judged = scored["n"] - len(scored["fva_not_found"])
            if scored["fva"] is not None:
                literature = COUNTERFACTUAL_LITERATURE if key == "counterfactual" else None
                rows.append(Comparison(f"{which}: {name} dlib still takes for the same person (FVA, n={judged})", "not published",
                                       scored["fva"], tuple(scored["fva_ci"]), literature))  # fmt: skip
            rows.append(Comparison(f"{which}: median SSIM of the {name[:-1]} to its start (n={scored['n']})", "not published",
                                   scored["ssim_median"]))  # fmt: skip
            rows.append(Comparison(f"{which}: median high-frequency share of the {name[:-1]}'s change (n={scored['n']})", "not published",
                                   scored["hf_share_median"]))  # fmt: skip
    return rows


def _cost(summary: dict) -> str:
    """What drawing the edits at this size cost here: each network's training and its sets of edits and dreams."""
    parts = [f"plain network: training {summary['run']['train_seconds']:.0f} s"]
    if summary["robust"]:
        parts.append(f"robust network: training {summary['robust']['train_seconds']:.0f} s")
    parts += [f"{net}: {kind} over {shown[key]['n']} faces {shown[key]['seconds']:.0f} s" for net, shown in _shown_networks(summary)
              for kind, key in SETS]  # fmt: skip
    return f"Edits and dreams at {summary['size']} px, as the networks see faces; on this machine: " + "; ".join(parts) + "."


def _shown_networks(summary: dict) -> list[tuple[str, dict]]:
    """The networks whose edits and dreams the study shows: the plain one, and the robust one unless it is at chance."""
    robust = summary["robust"]
    return [("plain", summary)] + ([("robust", robust)] if robust and not robust["at_chance"] else [])


def _sections(rep: Report, summary: dict, inside: dict) -> None:
    rep.links([("training report", "run/report.html"), ("audit by age", "run/audit/report.html")])
    rep.heading(f"Activation grids of every conv layer ({summary['photo']})")
    for layer in inside["activations"].layers.values():
        rep.figure(f"activations/{layer.figure}", f"layer {layer.index}: {layer.channels} channels of {layer.height}x{layer.width}")
    rep.heading("Three channels as one RGB picture, and the first layer's filters")
    rep.links([("RGB of three channels", "rgb/report.html"), ("first-layer filters", "filters/report.html")])
    rep.figure("filters/filters_layer1.png", "first-layer filters")
    rep.heading("Activation maximisation from the photo, one objective each")
    rep.table(
        ["objective", "layer", "before", "after"],
        [[o, d["layer"], d["objective_initial"], d["objective_final"]] for o, d in summary["dream"].items()],
    )
    for objective in summary["dream"]:
        rep.figure(f"dream_{objective}/dream_grid.png", f"objective {objective}: the photo, then each channel's image after the ascent")
    if summary["recorded"]:
        rep.heading("The write-up's recorded channels (numbered from 0 here, from 1 in the write-up)")
        rep.table(
            ["layer", "channel", "sum before", "sum after"],
            [[d["layer"], d["channel"], d["objective_initial"], d["objective_final"]] for d in summary["recorded"]["dreams"]],
        )
        for d in summary["recorded"]["dreams"]:
            rep.figure(
                f"{d['folder']}/activation_before_after.png",
                f"layer {d['layer']}, channel {d['channel']}: its map before and after the ascent",
            )
        for r in summary["recorded"]["rgb"]:
            rep.figure(r["figure"], f"layer {r['layer']}, channels {r['channels']} as R, G, B")
    rep.heading("Class-driven age shift")
    rep.paragraph(_cost(summary))
    rep.table(
        ["network", "toward", "start image", "P(young) before", "P(young) after", "SSIM to the start", "high-frequency share"],
        [
            [net, k, e["image"], e["prob_before"], e["prob_after"], e["ssim"], e["high_frequency_share"]]
            for net, shown in _shown_networks(summary)
            for k, e in shown["edit"].items()
        ],
    )
    rep.links([(f"{net}: {kind} over {shown[key]['n']} test faces", f"{shown[key]['folder']}/report.html")
               for net, shown in _shown_networks(summary) for kind, key in SETS])  # fmt: skip
    for direction in summary["edit"]:
        rep.figure(f"edit_{direction}/edit.png", f"toward {direction}: the edited face and where its pixels changed")
    if summary["robust"] and summary["robust"]["at_chance"]:
        rep.heading("Beside a robust network: at chance, so not shown")
        rep.paragraph("The robust network answers at chance (the warning above says why): its edits and dreams would show what a "
                      "guess climbs, so the study draws none.")  # fmt: skip
        rep.links([("robust training report", "robust/report.html")])
    elif summary["robust"]:
        r = summary["robust"]
        rep.heading("Beside a robust network: features, not noise")
        rep.paragraph(
            f"The same network trained adversarially (L2 budget {r['budget']['eps']} in pixel units, {r['budget']['steps']} PGD steps; "
            f"{r['train_seconds']:.0f} s of training): test accuracy {r['test_accuracy']['accuracy']:.3f} (n = {r['test_accuracy']['n']}) "
            f"against the plain network's {summary['test_accuracy']['accuracy']:.3f}. Its edits within the same budget change what a "
            "person sees; the plain network's are mostly fine speckle (the high-frequency share above)."
        )
        rep.figure("edits_plain_vs_robust.png", "each edit's start image, the plain network's edit and the robust network's")
        rep.figure("dreams_plain_vs_robust.png", "the square objective's dreams of the first channels: plain network above, robust below")
        rep.links([("robust training report", "robust/report.html")])


def _headline(summary: dict) -> list[str]:
    acc = summary["test_accuracy"]
    lo, hi = acc["accuracy_ci"]
    return [f"test accuracy {acc['accuracy']:.3f} [{lo:.3f}, {hi:.3f}] (published {YOUTH.published['test_accuracy']:.2f})"]


STUDY = Study(
    YOUTH,
    youth_study,
    _headline,
    "Darknet64 on Young: accuracy, activations, RGB channels, activation maximisation, older/younger edits.",
    options=(
        Option("photo", str, None, "The photo to look inside with (a file or SPEC#ITEM; default: the first test face)."),
        Option("steps", int, 60, "Gradient steps of each activation maximisation and edit.", bounds=STEPS_BOUNDS),
        Option("recorded", bool, True, "Also the write-up's recorded channels: single-channel dreams and RGB triples."),
        Option("robust", float, None, "L2 budget of a robust network trained beside (default 0.5, pixel units; 0: none).", bounds=(0, 100)),
        Option("robust_epochs", int, None, "Passes of the robust network's training (default 10).", bounds=(1, 100_000)),
        Option(
            "edit_n",
            int,
            None,
            "Young test faces each network's edit toward older is scored on as a set, and test faces its dreams are (default 100).",
            bounds=(1, 100_000),
        ),
        Option("robust_start", str, None, "plain: the robust network starts from the plain one's weights (default); scratch."),
    ),
    example="celeba:/data/celeba --photo me.jpg",
    demo=dict(spec="synth:4000", size="64", epochs=4, batch=32, steps=40, edit_n=16) | dict(robust=0.25, robust_lr=0.01, robust_epochs=1),
    demo_note="batch 32 (at the study's 128 the plain network stayed at the majority answer in the demo's 100 steps); the "
    "robust network fine-tuned from the plain one for one epoch within an L2 budget of 0.25 at lr 0.01 (at 0.5 the synthetic "
    "faces' age lines are not learnable robustly: it fell to the majority answer, even fine-tuned at lr 0.002).",
    quick=dict(spec="synth:600", size="32", epochs=1, robust_epochs=1, steps=10, edit_n=4),
    figures=lambda s: [
        ("activations/activations_layer2.png", "activation maps of layer 2"),
        ("edit_older/edit.png", "class-driven edit toward older: where the pixels changed"),
        ("dream_square/dream_grid.png", "activation maximisation (sum of squares) of every channel of a layer"),
    ],
    webcam=("run", "Young"),
)
