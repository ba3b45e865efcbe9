"""``facelab cam`` and ``predict``: attribution maps over images, a split, and the user's photos (``cam-score`` rates them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..data.detect import face_detector, face_margin, faces_for_network
from ..data.images import SkippedImages
from ..data.photos import FacesFound, Photos, photo_files
from ..errors import FacelabError
from ..files import write_csv
from ..hardware import Runtime
from ..progress import progress_bar
from ..report.figures import image_grid, map_grid
from ..results import Summary
from ..run import Run
from .cam import DEFAULT_COLORMAP, MAP_LEGEND, Target, attribution_maps, check_colormap, layer_for, overlay
from .output import probe_folder, write_probe_output
from .split_data import SplitData, load_split
from .subject import load_subject, named_probabilities

CHUNK = 64
GALLERY = 16


@dataclass
class CamGroup(Summary):
    """The images of one (true, predicted) pair: how many, their gallery, and the pair in words."""

    n: int
    figure: str
    words: str


@dataclass
class CamGallery(Summary):
    """``facelab cam`` over a split's summary.json: galleries by (true, predicted) label, keyed ``trueT_predP``."""

    method: str
    target: str
    layer: str
    data: str
    split: str
    n: int
    groups: dict[str, CamGroup]
    one_answer: bool  # the model gives one answer for every image: its maps explain a constant
    unreadable: list[str]


@dataclass
class CamImages(Summary):
    """``facelab cam`` over image files' summary.json: each image's (or detected face's) output and probability."""

    method: str
    layer: str
    detector: str | None
    images: list[dict[str, Any]]
    unreadable: list[str]


@dataclass
class Predictions(FacesFound):
    """``facelab predict``'s summary.json: each face found in the user's photos and its probabilities."""

    detect: bool
    method: str


def maps_over(d: SplitData, method: str, output: int | None, layer: str | None, model=None, quiet: bool = True, present: bool = False):
    """Attribution maps of every image of ``d`` in chunks: (logits, Target, raw maps, normalised maps); ``present``: of
    the attribute's presence on every face, not of each face's decision."""
    model = model or d.model
    lyr = layer_for(model, method, layer)
    parts = []
    with progress_bar(f"{method} maps", len(d.images), quiet) as advance:
        for start in range(0, len(d.images), CHUNK):
            sl = slice(start, start + CHUNK)
            logits, target, raw, norm = attribution_maps(
                model, d.inputs(sl), method, output, d.binary, lyr, runtime=d.run.runtime, present=present
            )
            parts.append((logits, target.index, target.sign, raw, norm))
            advance(len(logits))
    logits, index, sign, raw, norm = (torch.cat(p) for p in zip(*parts))
    return logits, Target(index, sign), raw, norm


def cam(
    run: str | Path | Run,
    source: str,
    *,
    method: str = "cam",
    target: str | None = None,
    layer: str | None = None,
    split: str = "test",
    limit: int = 256,
    out: str | Path | None = None,
    quiet: bool = True,
    strict: bool = False,
    colormap: str = DEFAULT_COLORMAP,
    detect: bool = False,
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    runtime: Runtime | None = None,
) -> CamGallery | CamImages:
    """Heat-map overlays: for image files (a file, a folder, or SPEC#ITEM; with ``detect``, each face ``detector`` finds
    in them), or a whole split of a SPEC, with galleries grouped by (true, predicted) label and each group's mean map."""
    check_colormap(colormap)
    folder = probe_folder(out, run, "cam")
    if source.startswith("folder:"):  # a folder of photos has no labels to group a split by: map each photo
        source = source.removeprefix("folder:")
    path = Path(source)
    if path.exists() or "#" in source:
        return _cam_files(run, source, method=method, target=target, layer=layer, folder=folder, strict=strict, colormap=colormap,
                          detector=detector if detect else None, upsample=upsample, min_score=min_score, runtime=runtime)  # fmt: skip
    opened = Run.for_probes(run, runtime)
    opened.require("labels", "cam")
    d = load_split(opened, source, split, limit, strict)
    output = d.output_index(target)
    logits, _, _, norm = maps_over(d, method, output, layer, quiet=quiet)
    true, pred = d.labels(output), d.run.task.predicted(logits, output)
    images = d.images.numpy()
    groups, figures = _galleries(d, output, norm, true, pred, folder, colormap)
    name = d.outputs[output] if output is not None else "predicted class"
    summary = CamGallery(
        method=method,
        target=name,
        layer=layer_for(d.model, method, layer).name,
        data=source,
        split=split,
        n=int(len(images)),
        groups=groups,
        one_answer=len(set(pred.tolist())) == 1,
        unreadable=d.unreadable,
    )
    facts: list[list] = [["images", len(images)], ["method", method], ["explained", name]]
    if summary.one_answer:
        facts.append(["warning", f"the model answers '{d.in_words(output, int(pred[0]))}' for every image: these maps explain a constant"])
    return write_probe_output(
        folder,
        f"facelab cam: {method} for {name} on {source} ({split})",
        summary,
        [("mean_maps.png", f"mean {method} map per (true, predicted) group")] + figures,
        facts,
    )


def _galleries(
    d: SplitData, output: int | None, norm: torch.Tensor, true: np.ndarray, pred: np.ndarray, folder: Path, colormap: str
) -> tuple[dict[str, CamGroup], list[tuple[str, str]]]:
    """One gallery per (true, predicted) pair of the split's images, and mean_maps.png: each pair's mean map."""
    images = d.images.numpy()
    groups: dict[str, CamGroup] = {}
    figures: list[tuple[str, str]] = []
    means, mean_names = [], []
    for t, p in sorted(set(zip(true.tolist(), pred.tolist()))):
        idx = np.flatnonzero((true == t) & (pred == p))
        key = f"true{t}_pred{p}"
        words = f"true: {d.in_words(output, t)}, predicted: {d.in_words(output, p)}"
        file = f"gallery_{key}.png"
        shown = idx[:GALLERY]
        image_grid(
            [overlay(images[i], norm[i].numpy(), colormap=colormap) for i in shown],
            [d.faceset.names[d.rows[i]][-12:] for i in shown],
            folder / file,
            cols=8,
            colorbar=(colormap, MAP_LEGEND),
        )
        groups[key] = CamGroup(int(len(idx)), file, words)
        figures.append((file, f"{words}: {len(idx)} images (first {len(shown)} shown)"))
        means.append(norm[idx].mean(0).numpy())
        mean_names.append(words.replace(", ", "\n") + f"\n(n={len(idx)})")
    map_grid(np.stack(means), mean_names, folder / "mean_maps.png", cols=min(4, len(means)), cmap=colormap, colorbar_label=MAP_LEGEND)
    return groups, figures


def _image_files(source: str) -> list[str]:
    return [str(p) for p in photo_files(f"folder:{source}")] if Path(source).is_dir() else [source]


def _whole_images(source: str, size: tuple[int, int], skipped: SkippedImages):
    """(name, image at ``size``) of each file, folder image or SPEC#ITEM, centre-cropped."""
    for src in _image_files(source):
        subject = skipped.call(Path(src).name, load_subject, src, size)
        if subject is not None:
            yield subject.name, subject.image


def _detected_faces(photos: Photos, size: tuple[int, int], finder, margin: float, align: bool):
    """(name, face at ``size``) of every face found in the photos."""
    for _, name, photo in photos:
        for k, crop in enumerate(faces_for_network(photo, size, detector=finder, margin=margin, whole_if_none=False, align=align)):
            yield f"{name}#{k}", crop.image


def _cam_files(
    run,
    source,
    *,
    method,
    target,
    layer,
    folder,
    strict=False,
    colormap=DEFAULT_COLORMAP,
    detector=None,
    upsample=None,
    min_score=None,
    runtime: Runtime | None = None,
) -> CamImages:
    opened = Run.for_probes(run, runtime)
    opened.require("labels", "cam")
    model, outputs, binary = opened.model, opened.outputs, opened.task.binary
    output = opened.task.explained_output(target)
    lyr = layer_for(model, method, layer)
    tiles, captions, results = [], [], []
    size = opened.contract.size
    if detector is None:
        skipped = SkippedImages(strict)
        images = _whole_images(source, size, skipped)
    else:
        photos = Photos(source, strict)
        skipped = photos.skipped
        images = _detected_faces(
            photos, size, face_detector(detector, upsample, min_score), face_margin(opened.contract.crop), opened.contract.aligned
        )
    for name, image in images:
        logits, tgt, _, norm = attribution_maps(
            model, opened.contract.image_input(image), method, output, binary, lyr, runtime=opened.runtime
        )
        k = int(tgt.index[0])
        prob = float(opened.task.probabilities(logits)[0, k])
        tiles += [image, overlay(image, norm[0].numpy(), colormap=colormap)]
        captions += [name[-14:], f"{outputs[k][:12]} {prob:.2f}"]
        results.append({"image": name, "output": outputs[k], "prob": prob})
    summary = CamImages(method, lyr.name, detector, results, skipped.say())
    if not tiles:
        raise FacelabError(f"{source}: no image could be read" + ("" if detector is None else " or no face was found"))
    image_grid(tiles, captions, folder / "overlays.png", cols=min(8, len(tiles)), colorbar=(colormap, MAP_LEGEND))
    return write_probe_output(folder, f"facelab cam: {method}", summary, [("overlays.png", "image and map; caption: output, P(output)")])


# ----------------------------------------------------------------------------- the user's photos
def predict(
    run: str | Path,
    source: str,
    *,
    detect: bool = False,
    detector: str = "auto",
    upsample: int | None = None,
    min_score: float | None = None,
    method: str = "cam",
    target: str | None = None,
    out: str | Path | None = None,
    top: int = 5,
    strict: bool = False,
    runtime: Runtime | None = None,
) -> Predictions:
    """Predictions with probabilities and attribution overlays for a folder of the user's own photos (each face
    found with ``detector`` when ``detect``, else each whole photo centre-cropped)."""
    opened = Run.for_probes(run, runtime)
    opened.require("labels", "predict")
    model, contract = opened.model, opened.contract
    folder = probe_folder(out, run, "predict")
    photos = Photos(source, strict)
    finder = face_detector(detector, upsample, min_score) if detect else None
    output = opened.task.explained_output(target)
    results, no_face, tiles, captions = [], [], [], []
    for _, name, photo in photos:
        crops = faces_for_network(
            photo, contract.size, detector=finder, margin=face_margin(contract.crop), whole_if_none=False, align=contract.aligned
        )
        if not crops:
            no_face.append(name)
            continue
        for crop in crops:
            x = contract.image_input(crop.image)
            logits, tgt, _, norm = attribution_maps(
                model, x, method, output, opened.task.binary, layer_for(model, method, None), runtime=opened.runtime
            )
            preds = named_probabilities(opened, logits[0], top)
            results.append({"image": name, "box": list(crop.face.box), "score": crop.face.score, "predictions": preds})
            tiles += [crop.image, overlay(crop.image, norm[0].numpy())]
            best = max(preds, key=lambda k: preds[k])
            captions += [name[-14:], f"{best[:12]} {preds[best]:.2f}"]
    if tiles:
        image_grid(tiles, captions, folder / "predictions.png", cols=min(8, len(tiles)))
    _write_predictions_csv(folder / "predictions.csv", results)
    unreadable = photos.skipped.say()
    summary = Predictions(source, finder.name if finder else None, len(photos), len(results), no_face, unreadable, results, detect, method)
    facts: list[list] = [
        ["photos", len(photos)],
        ["faces", len(results)],
        ["face detector", finder.name if finder else "none (whole photos)"],
        ["no face found", ", ".join(no_face) or "none"],
        ["unreadable", ", ".join(unreadable) or "none"],
    ]
    return write_probe_output(
        folder,
        f"facelab predict: {source}",
        summary,
        [("predictions.png", "each face and its map; caption: most probable output")] if tiles else [],
        facts,
    )


def _write_predictions_csv(path: Path, results: list[dict]) -> None:
    write_csv(
        path,
        ["image", "x", "y", "w", "h", "output", "prob"],
        ([r["image"], *r["box"], name, f"{p:.6f}"] for r in results for name, p in r["predictions"].items()),
    )
