"""``facelab cam-score``: how good attribution maps are: pointing game and energy in the ground-truth region,
deletion/insertion AUC, beside a random map, the mean mask and a randomised last layer (a sanity check)."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypedDict

import cv2
import numpy as np
import torch

from ..data.regions import REGIONS, five_points, region_masks, region_of
from ..data.synth import with_pose
from ..errors import FacelabError
from ..hardware import Runtime
from ..progress import progress_bar
from ..report.figures import bar_chart, image_grid
from ..results import Summary
from ..run import Run
from .cam import METHODS, Target, chosen_precision, head_layer, overlay, with_last_layer_randomised
from .cascading import cascading_figures, cascading_randomisation, still_alike, weighted_layers
from .explain import CHUNK, maps_over
from .output import probe_folder, write_probe_output
from .split_data import SplitData, load_split
from .stats import wilson_ci

BENCHMARK_POSE = "wide"
"""How the benchmark draws synthetic faces whose SPEC names no pose: studio faces sit where the mean mask says (it
points into the mouth on every face), so no attribution could beat that fixed map there; wide ones move, scale and
turn enough that it does not (mean mask 0.42-0.63 on the smiling faces of ``synth:N,pose=wide``)."""


def synthetic_pose(faceset) -> str | None:
    """The pose synthetic faces were drawn in (None for other data)."""
    return getattr(getattr(faceset, "config", None), "pose", None)


def benchmark_pose_fact(faceset) -> list[list[str]]:
    """The report's line saying how synthetic faces were drawn (none for other data)."""
    pose = synthetic_pose(faceset)
    if pose is None:
        return []
    why = "moved, scaled and turned so that no fixed map fits" if pose == BENCHMARK_POSE else "near the centre"
    return [["synthetic faces", f"pose={pose}: {why} (pose=studio or pose=wide in the SPEC chooses; default {BENCHMARK_POSE})"]]


def pointing_hits(raw: torch.Tensor, masks: np.ndarray, tolerance: int) -> np.ndarray:
    """Whether the centre of each map's maximal cell falls within ``tolerance`` px of the mask."""
    n, h, w = raw.shape
    H, W = masks.shape[1:]
    flat = raw.reshape(n, -1).argmax(1).numpy()
    ys = np.clip(np.round((flat // w + 0.5) * H / h - 0.5).astype(int), 0, H - 1)
    xs = np.clip(np.round((flat % w + 0.5) * W / w - 0.5).astype(int), 0, W - 1)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * tolerance + 1, 2 * tolerance + 1))
    return np.array([cv2.dilate(masks[i].astype(np.uint8), kernel)[ys[i], xs[i]] > 0 for i in range(n)])


def energy_share(maps: torch.Tensor, masks: np.ndarray) -> np.ndarray:
    """Share of each [0, 1] map's total inside its mask (NaN for an all-zero map: it has no energy to share)."""
    m = torch.from_numpy(masks).float()
    total = maps.flatten(1).sum(1)
    inside = (maps * m).flatten(1).sum(1)
    return torch.where(total > 0, inside / total.clamp_min(1e-12), torch.nan).numpy()


def mean_share(maps: torch.Tensor, masks: np.ndarray) -> float | None:
    """The mean share over the maps that have any energy (None when none has)."""
    shares = energy_share(maps, masks)
    return float(np.nanmean(shares)) if not np.isnan(shares).all() else None


@torch.no_grad()
def deletion_insertion(
    model, x: torch.Tensor, maps: torch.Tensor, target: Target, binary: bool, steps: int = 16, runtime: Runtime | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Probability of the explained decision as the most-attributed pixels are removed (grey) or inserted
    into a blurred copy, ``steps`` equal fractions from 0 to all; returns the per-image AUCs (deletion, insertion)."""
    from torchvision.transforms.v2.functional import gaussian_blur

    n, H, W = maps.shape
    rank = torch.empty(n, H * W, dtype=torch.long)
    rank.scatter_(1, maps.reshape(n, -1).argsort(1, descending=True), torch.arange(H * W).expand(n, -1).contiguous())
    rank = rank.view(n, 1, H, W)
    k = max(3, (H // 8) | 1)
    blurred = gaussian_blur(x, [k, k], [H / 16, H / 16])
    dele: list[torch.Tensor] = []
    ins: list[torch.Tensor] = []
    for step in range(steps + 1):
        top = rank < round(step / steps * H * W)
        for curve, xs in ((dele, torch.where(top, torch.zeros_like(x), x)), (ins, torch.where(top, x, blurred))):
            with chosen_precision(runtime):
                logits = model(xs).float()
            curve.append(target.prob(logits, binary))
    auc = lambda c: ((torch.stack(c).sum(0) - (c[0] + c[-1]) / 2) / steps).numpy()  # noqa: E731  trapezoid on [0, 1]
    return auc(dele), auc(ins)


def _decision_scores(model, d: SplitData, norm, target: Target, truth: GroundTruth, steps) -> DecisionScores:
    """Over every face, of its decision: deletion and insertion AUC (any data), the energy on the background and in each
    face region (where known): where the evidence for what the network decided lies, absence included."""
    dele, ins = [], []
    for start in range(0, len(norm), CHUNK):
        sl = slice(start, start + CHUNK)
        a, b = deletion_insertion(model, d.inputs(sl), norm[sl], Target(target.index[sl], target.sign[sl]), d.binary, steps, d.run.runtime)
        dele.append(a)
        ins.append(b)
    return DecisionScores(
        deletion_auc=float(np.concatenate(dele).mean()),
        insertion_auc=float(np.concatenate(ins).mean()),
        energy_on_background=mean_share(norm, truth.background) if truth.background is not None else None,
        energy_by_region=None if truth.regions is None else {name: mean_share(norm, m) for name, m in truth.regions.items()},
    )


def _pointing_scores(raw, norm, masks: np.ndarray | None, tolerance) -> PointingScores:
    """Over the faces that show the attribute, of its presence: the pointing game (with Wilson's interval) and the
    energy in the true region."""
    if masks is None or not len(masks):  # no true region, or no face shows the attribute
        return PointingScores(pointing_game=None, pointing_game_ci=None, energy_in_mask=None)
    hits = pointing_hits(raw, masks, tolerance)
    return PointingScores(
        pointing_game=float(hits.mean()),
        pointing_game_ci=list(wilson_ci(int(hits.sum()), len(hits))),
        energy_in_mask=mean_share(norm, masks),
    )


class DecisionScores(TypedDict):
    deletion_auc: float
    insertion_auc: float
    energy_on_background: float | None
    energy_by_region: dict[str, float | None] | None


class PointingScores(TypedDict):
    pointing_game: float | None
    pointing_game_ci: list[float | None] | None
    energy_in_mask: float | None


@dataclass
class MapScores(Summary):
    """One kind of map's scores over a split: deletion and insertion AUC and where its energy lies (of every face's
    decision), and the pointing game with Wilson's interval and the energy in the true region (of the faces that show
    the attribute); None where the data has no such ground truth."""

    deletion_auc: float
    insertion_auc: float
    energy_on_background: float | None
    energy_by_region: dict[str, float | None] | None
    pointing_game: float | None
    pointing_game_ci: list[float | None] | None
    energy_in_mask: float | None


@dataclass
class CamScore(Summary):
    """``facelab cam-score``'s summary.json (docs/json.md): each method's scores and its randomised twin's
    (``METHOD_randomized``), beside a random map and the mean true region (``mean_mask``, None without one)."""

    methods: dict[str, MapScores | None]
    beats_mean_mask: dict[str, bool] | None
    warnings: list[str]
    cascading: dict[str, list[dict[str, Any]]] | None
    weighted_layers: int
    advice: list[str]
    map_cells: dict[str, list[int]]
    target: str
    n: int
    n_region: int
    region_faces: str
    split: str
    tolerance_px: int
    steps: int
    data: str
    ground_truth: str


@dataclass
class GroundTruth:
    """Per image: the explained output's region, the background, and every named face region (where known)."""

    masks: np.ndarray | None = None
    background: np.ndarray | None = None
    regions: dict[str, np.ndarray] | None = None
    source: str = "none"


def faces_showing(d: SplitData, output: int | None) -> np.ndarray:
    """The faces a map of the attribute can be scored on: those that show it (the pointing game's protocol: a class is
    looked for in images that hold it; a face without a smile has no smile to point at). Identities: every face."""
    if not d.binary:
        return np.ones(len(d.images), dtype=bool)
    return d.labels(output) == 1


def landmark_regions(d: SplitData) -> dict[str, np.ndarray] | None:
    """Eyes, nose, mouth, face and background of each image, from its landmarks (CelebA's five, 58 or 68)."""
    if d.points is None or five_points(d.points[0]) is None:
        return None
    h, w = d.images.shape[1:3]
    per_image = [region_masks(_five(p), (w, h)) for p in d.points]
    return {name: np.stack([m[name] for m in per_image]) for name in REGIONS}


DETECT_AT = 250  # a face crop is scaled up to this side before the detector looks (HOG misses faces under ~80 px)


_BOXES: dict[tuple, dict[str, np.ndarray]] = {}  # the last images' regions: a study's runs share their test faces


def box_regions(d: SplitData, quiet: bool = True) -> dict[str, np.ndarray]:
    """Face (the detector's box) and background (the rest) of each image, for images without landmarks; an image in
    which no face is found has neither (all False: its share is left out). The same images (a study's several runs
    on one test split) are searched once."""
    key = (d.faceset.spec, d.rows.tobytes(), tuple(d.images.shape))
    if key not in _BOXES:
        _BOXES.clear()
        _BOXES[key] = _face_and_background(d.images, quiet)
    return _BOXES[key]


def _face_and_background(images: torch.Tensor, quiet: bool) -> dict[str, np.ndarray]:
    from ..data.detect import face_detector

    detector = face_detector("auto")
    n, h, w = images.shape[:3]
    face = np.zeros((n, h, w), bool)
    found = np.zeros(n, bool)
    with progress_bar("finding faces for the regions", n, quiet) as advance:
        for i in range(n):
            big = cv2.resize(images[i].numpy(), (DETECT_AT, DETECT_AT), interpolation=cv2.INTER_CUBIC)
            faces = detector.find(big)
            if faces:
                x, y, bw, bh = (np.array(faces[0].box) * np.array([w, h, w, h]) / DETECT_AT).round().astype(int)
                face[i, max(0, y) : y + bh, max(0, x) : x + bw] = True
                found[i] = True
            advance()
    return {"face": face, "background": ~face & found[:, None, None]}


def _five(points: np.ndarray) -> np.ndarray:
    five = five_points(points)
    assert five is not None  # every image of a set has the same landmark layout as its first
    return five


def ground_truth(d: SplitData, output: int | None) -> GroundTruth:
    """Synthetic faces: the exact region of the attribute; other faces with landmarks: the region drawn from
    them that decides the attribute (the whole face for attributes without one, and for identities)."""
    regions = landmark_regions(d)
    masks_of = getattr(d.faceset, "masks", None)
    h, w = d.images.shape[1:3]
    if masks_of is not None and h == w and d.binary and output is not None and d.faceset.attr_names:
        col = d.faceset.attr_names.index(d.outputs[output])
        exact = [masks_of(int(r), h) for r in d.rows]
        return GroundTruth(np.stack([m[col] for m in exact]), np.stack([~m.any(0) for m in exact]), regions, "synthetic regions")
    if regions is None:
        return GroundTruth()
    region = region_of(d.outputs[output]) if d.binary and output is not None else "face"
    return GroundTruth(regions[region], regions["background"], regions, f"{region} region from the landmarks")


def cam_score(
    run: str | Path | Run,
    spec: str | None = None,
    *,
    split: str = "test",
    methods: list[str] | None = None,
    target: str | None = None,
    layer: str | None = None,
    n: int = 200,
    tolerance: int | None = None,
    steps: int = 16,
    seed: int = 0,
    cascading: bool = True,
    out: str | Path | None = None,
    quiet: bool = True,
    runtime: Runtime | None = None,
) -> CamScore:
    """Pointing game and energy inside the ground-truth region (synthetic faces exactly; faces with landmarks,
    CelebA's five included, by regions drawn from them), each map's energy per face region, deletion/insertion AUC
    (any data), beside a random map, the mean ground-truth mask, and each method after randomising the last layer;
    ``cascading``: and after randomising the top k layers, k = 1 to all (:mod:`facelab.probes.cascading`)."""
    folder = probe_folder(out, run, "cam_score")
    opened = Run.for_probes(run, runtime)
    opened.require("labels", "cam-score")
    spec = with_pose(spec or opened.cfg.data.spec, BENCHMARK_POSE)
    d = load_split(opened, spec, split, n)
    output = d.output_index(target)
    methods = methods or applicable_methods(d.model)
    h, w = d.images.shape[1:3]
    tolerance = max(1, round(0.07 * max(h, w))) if tolerance is None else tolerance
    scorer = MapScorer(d, output, layer, ground_truth(d, output), faces_showing(d, output), tolerance, steps, quiet)
    results, examples, trained, decisions = scorer.methods(methods, seed)
    n_layers = len(weighted_layers(d.model))
    curves, cascade_maps = cascading_randomisation(d, methods, output, layer, trained, seed, quiet) if cascading else ({}, {})
    results |= scorer.constants(decisions, seed)
    name = d.outputs[output] if output is not None else "predicted class"
    constant = results["mean_mask"]
    beaten = {m: beats_constant(_known(results[m]), constant) for m in methods} if constant else None
    summary = CamScore(
        methods=results,
        beats_mean_mask=beaten,
        warnings=constant_warnings(results, beaten) + still_alike(curves, n_layers),
        cascading=curves if cascading else None,
        weighted_layers=n_layers,
        advice=coarse_map_advice(scorer.cells, (h, w), tolerance) + fixed_region_advice(constant, d.faceset),
        map_cells={m: list(c) for m, c in scorer.cells.items()},
        target=name,
        n=int(len(d.images)),
        n_region=int(scorer.shown.sum()),
        region_faces=f"faces that show {name}, explaining {name}" if d.binary else "every face",
        split=split,
        tolerance_px=tolerance,
        steps=steps,
        data=spec,
        ground_truth=scorer.truth.source,
    )
    figures = _score_figures(folder, results, examples, d.images[:8].numpy(), scorer.truth.masks)
    if cascading:
        figures += cascading_figures(folder, curves, cascade_maps, {m: t[0] for m, t in trained.items()}, d.images[0].numpy(), n_layers)
    tables = [score_table(results), *region_table(results), *([cascading_table(curves, n_layers)] if cascading else [])]
    return write_probe_output(
        folder, f"facelab cam-score: {name} on {summary.data} ({split})", summary, figures, _facts(summary, d), tables
    )


@dataclass
class MapScorer:
    """Scores maps of one split against its ground truth: each face's decision (deletion/insertion, energy per region)
    and, on the faces that show the attribute, the pointing game and the energy inside its region. ``cells``: each
    method's map size, as it was computed."""

    d: SplitData
    output: int | None
    layer: str | None
    truth: GroundTruth
    shown: np.ndarray  # the faces that show the attribute (every face for identities)
    tolerance: int
    steps: int
    quiet: bool
    cells: dict[str, tuple[int, int]] = field(default_factory=dict)

    @cached_property
    def masks_shown(self) -> np.ndarray | None:
        """The true regions of the faces that show the attribute (None without ground truth)."""
        return None if self.truth.masks is None else self.truth.masks[self.shown]

    def scored(self, norm: torch.Tensor, target: Target, raw_p: torch.Tensor, norm_p: torch.Tensor) -> MapScores:
        """Scores of one kind of map: ``norm`` explains each face's decision ``target``; ``raw_p``/``norm_p`` the
        attribute's presence (see :func:`_decision_scores` and :func:`_pointing_scores`)."""
        pointing = _pointing_scores(raw_p[self.shown], norm_p[self.shown], self.masks_shown, self.tolerance)
        return MapScores(**_decision_scores(self.d.model, self.d, norm, target, self.truth, self.steps), **pointing)

    def maps_of(self, model: torch.nn.Module, method: str) -> tuple[torch.Tensor, Target, torch.Tensor, torch.Tensor]:
        """``method``'s maps of each face's decision, then (attributes) of the attribute's presence, raw and normalised."""
        d = self.d
        _, target, raw, norm = maps_over(d, method, self.output, self.layer, model=model, quiet=self.quiet)
        self.cells[method] = (int(raw.shape[1]), int(raw.shape[2]))
        present = (
            maps_over(d, method, self.output, self.layer, model=model, quiet=self.quiet, present=True)[2:] if d.binary else (raw, norm)
        )
        return norm, target, *present

    def methods(self, methods: list[str], seed: int) -> tuple[dict[str, MapScores | None], list, dict[str, torch.Tensor], Target]:
        """Each method's scores, and its scores after randomising the last layer (``METHOD_randomized``); the first
        maps of each (for the figure), each method's presence maps (for the cascade), and the decisions explained
        (every method explains the same ones)."""
        randomised = with_last_layer_randomised(self.d.model, seed)
        results: dict[str, MapScores | None] = {}
        examples, trained = [], {}
        for method in methods:
            norm, decisions, raw_p, norm_p = self.maps_of(self.d.model, method)
            results[method] = self.scored(norm, decisions, raw_p, norm_p)
            examples.append((method, norm_p[:8]))
            trained[method] = norm_p
            results[f"{method}_randomized"] = self.scored(*self.maps_of(randomised, method))
        return results, examples, trained, decisions

    def constants(self, decisions: Target, seed: int) -> dict[str, MapScores | None]:
        """The maps a method must beat: a random map, and the mean ground-truth mask (None without masks)."""
        n, h, w = self.d.images.shape[:3]
        maps = {"random": torch.rand(n, h, w, generator=torch.Generator().manual_seed(seed))}
        masks = self.masks_shown
        if masks is not None and len(masks):
            maps["mean_mask"] = torch.from_numpy(masks.mean(0)).float().expand(n, h, w).contiguous()
        scores: dict[str, MapScores | None] = {key: self.scored(m, decisions, m, m) for key, m in maps.items()}
        scores.setdefault("mean_mask", None)
        return scores


def _facts(summary: CamScore, d: SplitData) -> list[list]:
    facts: list[list] = [
        ["target", summary.target],
        ["images", summary.n],
        ["pointing game and energy on", f"{summary.n_region} {summary.region_faces}"],
        ["pointing-game tolerance", f"{summary.tolerance_px} px"],
        ["true region", summary.ground_truth],
        *benchmark_pose_fact(d.faceset),
    ]
    return facts + [["WARNING", line] for line in summary.warnings] + [["NOTE", line] for line in summary.advice]


def cascading_table(curves: dict[str, list[dict]], n_layers: int) -> tuple[str, list[str], list[list]]:
    steps = [c["layers_randomised"] for c in next(iter(curves.values()))]
    return (
        f"Cascading randomisation: rank correlation with the trained network's maps, top k of {n_layers} layers randomised",
        ["method", *[f"k = {k}" for k in steps]],
        [[m, *("—" if c["spearman"] is None else round(c["spearman"], 3) for c in curve)] for m, curve in curves.items()],
    )


SCORE_COLUMNS = {
    "pointing_game": "pointing game",
    "energy_in_mask": "energy in true region",
    "energy_on_background": "energy on background (every decision)",
    "deletion_auc": "deletion AUC (lower is better)",
    "insertion_auc": "insertion AUC (higher is better)",
}


def beats_constant(scores: MapScores, constant: MapScores) -> bool:
    """Whether a method's maps point at the true region more often than the best constant map (the mean true region,
    one map for every face) does. A method that does not cannot be told from a fixed guess on these images."""
    return (scores.pointing_game or 0.0) > (constant.pointing_game or 0.0)


def _known(scores: MapScores | None) -> MapScores:
    """A method's scores, which every method has (only the mean mask may be None)."""
    assert scores is not None
    return scores


def constant_warnings(results: dict[str, MapScores | None], beaten: dict[str, bool] | None) -> list[str]:
    constant = results["mean_mask"]
    if beaten is None or constant is None:
        return []
    return [
        f"{m} does not beat the mean mask, one fixed map for every face (pointing game {_known(results[m]).pointing_game:.2f} vs "
        f"{constant.pointing_game:.2f}, energy in the true region {_energy(_known(results[m]))} vs "
        f"{_energy(constant)}): on these images its maps cannot be told from a fixed guess"
        for m, ok in beaten.items()
        if not ok
    ]


def _energy(scores: MapScores) -> str:
    """The energy in the true region in words: None where every map was zero (no energy to share)."""
    return "none (every map is zero)" if scores.energy_in_mask is None else f"{scores.energy_in_mask:.2f}"


def coarse_map_advice(cells: dict[str, tuple[int, int]], size: tuple[int, int], tolerance: int) -> list[str]:
    """A line per method whose map is too coarse to point with: the pointing game names a cell's centre, so cells
    much wider than the tolerance find a region that moves less than a cell only by luck (darknet64 at 64 px: 2x2
    cells of 32 px against a tolerance of 4 px)."""
    lines = []
    for method, (ch, cw) in cells.items():
        cell = max(size[0] / ch, size[1] / cw)
        if cell > 4 * tolerance:
            lines.append(
                f"{method}'s map is {ch}x{cw} cells of {cell:.0f} px against a tolerance of {tolerance} px: its pointing game "
                "names a cell centre and finds a small region by luck; a network trained at a larger --size has finer cells"
            )
    return lines


def fixed_region_advice(constant: MapScores | None, faceset) -> list[str]:
    """Where the true region barely moves from face to face, the mean mask cannot be beaten: say so, and for synthetic
    faces how to draw ones whose regions move."""
    share = None if constant is None else constant.pointing_game
    if share is None or share < 0.95:
        return []
    line = f"the true region barely moves on these images (the mean mask points into it on {share:.0%} of them): no map can beat it"
    if synthetic_pose(faceset) == "studio":
        line += f"; synthetic faces drawn with pose={BENCHMARK_POSE} (the default where a SPEC names none) are moved, scaled and turned"
    return [line]


def sanity_verdict(scores: MapScores, randomised: MapScores) -> str:
    """Adebayo et al.'s check in words: a faithful map changes when the learned head is re-initialised."""
    key = "pointing_game" if scores.pointing_game is not None else "insertion_auc"
    drop = getattr(scores, key) - getattr(randomised, key)
    if drop >= 0.05:
        return f"passes: {SCORE_COLUMNS[key]} drops by {drop:.2f} with the last layer randomised"
    return f"fails: {SCORE_COLUMNS[key]} changes by only {-drop:+.2f} with the last layer randomised"


def score_table(results: dict[str, MapScores | None]) -> tuple[str, list[str], list[list]]:
    """Methods and baselines x measures, one row each, with the sanity check's verdict per method."""
    rows = []
    for name, scores in results.items():
        if not scores or name.endswith("_randomized"):
            continue
        randomised, constant = results.get(f"{name}_randomized"), results.get("mean_mask")
        verdict = sanity_verdict(scores, randomised) if randomised else "baseline"
        against = ("yes" if beats_constant(scores, constant) else "NO") if randomised and constant else ""
        rows.append([name, *(_shown(scores, k) for k in SCORE_COLUMNS), against, verdict])
        if randomised:
            rows.append([f"{name}, last layer randomised", *(_shown(randomised, k) for k in SCORE_COLUMNS), "", ""])
    return "Scores", ["map", *SCORE_COLUMNS.values(), "beats the mean mask", "sanity check"], rows


def _shown(scores: MapScores, key: str):
    """A score for the table; the pointing game (a share of images) with its Wilson interval."""
    value = getattr(scores, key)
    if key == "pointing_game" and value is not None and scores.pointing_game_ci:
        lo, hi = scores.pointing_game_ci
        return f"{value:.3f} [{lo:.3f}, {hi:.3f}]"
    return value


def region_table(results: dict[str, MapScores | None]) -> list[tuple[str, list[str], list[list]]]:
    """Share of each map's energy per face region (none when the images have no landmarks)."""
    rows = [[name, *scores.energy_by_region.values()] for name, scores in results.items() if scores and scores.energy_by_region]
    if not rows:
        return []
    return [("Where the evidence lies: share of each map's energy per face region", ["map", *REGIONS], rows)]


def applicable_methods(model) -> list[str]:
    """The attribution methods that apply to ``model`` (plain CAM needs a global-pool-then-linear head)."""
    try:
        head_layer(model)
        return METHODS.names()
    except FacelabError:
        return [m for m in METHODS if m != "cam"]


def _score_figures(folder, results: dict[str, MapScores | None], examples, images, masks) -> list[tuple[str, str]]:
    figures = []
    for metric in ("pointing_game", "energy_in_mask", "deletion_auc", "insertion_auc"):
        pairs = [(k, getattr(r, metric)) for k, r in results.items() if r and getattr(r, metric) is not None]
        if pairs:
            bar_chart([k for k, _ in pairs], [v for _, v in pairs], folder / f"{metric}.png", metric)
            figures.append((f"{metric}.png", metric.replace("_", " ") + " per method and baseline"))
    tiles, captions = [], []
    for k, img in enumerate(images):
        tiles.append(img if masks is None else _outlined(img, masks[k]))
        captions.append("input" + ("" if masks is None else " + region"))
        for method, maps in examples:
            tiles.append(overlay(img, maps[k].numpy()))
            captions.append(method)
    image_grid(tiles, captions, folder / "examples.png", cols=1 + len(examples))
    return figures + [("examples.png", "first images of the split with each method's map")]


def _outlined(img: np.ndarray, mask: np.ndarray) -> np.ndarray:
    out = img.copy()
    edge = mask & ~cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    out[edge] = (255, 0, 255)
    return out
