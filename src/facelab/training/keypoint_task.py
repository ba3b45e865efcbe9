"""Keypoint regression as a training task: targets from the cache, landmark-safe augmentation, NME.

Targets are the points' coordinates relative to the image ((x + 0.5) / W, (y + 0.5) / H), as in
IMM's .asf files, so the loss (MSE on these) is comparable with the usual course numbers. Flips
swap left and right points with the data set's mirror permutation; rotations and shifts move
image and points together (torchvision transforms v2 with KeyPoints); a transform that would
push a point out of the image is halved until it does not.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import ClassVar, NotRequired, TypedDict

import numpy as np
import torch
import torch.nn.functional as F
from torchvision import tv_tensors
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as TF

from ..data.faceset import FaceSet
from ..data.landmark_layouts import EYE_CORNER_PAIRS, EYE_POINTS, IMM58_NOSE_TIP
from ..errors import FacelabError
from .batches import augment as photometric
from .keypoint_eval import (
    REFERENCE_LIMIT,
    DlibReference,
    PointErrors,
    SubsetScores,
    dlib_nme,
    mean_shape_errors,
    mean_shape_nme,
    predict_split,
    protocol,
)
from .sections import OptimSettings
from .tasks import Task

MAP_LOSS_WEIGHT = 0.05  # beside the L1 on coordinates (about 0.01 when trained); the cross-entropy starts near 5.5
NOSE_TIP = {68: 30, 58: IMM58_NOSE_TIP, 5: 2}  # iBUG 68 (and synthetic), IMM 58, CelebA 5
POINTS = ("nose", "all")


class ProtocolBlock(TypedDict):
    """What a 300-W run's summary and ``facelab eval`` add: the protocol per subset and, with facelab[faces], dlib's
    predictor on the same faces."""

    protocol: dict[str, SubsetScores]
    dlib_reference: NotRequired[DlibReference]


@dataclass
class Geometry:
    """Random landmark-safe geometry: rotation (degrees), shift (fraction of the size), horizontal flip, scale (a
    relative zoom in or out: detectors' boxes on real photos differ in size from face to face)."""

    rotate: float = 25.0
    shift: float = 0.1
    flip: bool = True
    scale: float = 0.1

    def draw(self, gen: torch.Generator) -> tuple[float, float, float, bool, float]:
        u = torch.rand(5, generator=gen).tolist()
        shift = ((2 * u[1] - 1) * self.shift, (2 * u[2] - 1) * self.shift)
        return (2 * u[0] - 1) * self.rotate, *shift, self.flip and u[3] < 0.5, 1.0 + (2 * u[4] - 1) * self.scale


def move_points(pts: torch.Tensor, size: tuple[int, int], angle: float, dx: float, dy: float, scale: float = 1.0) -> torch.Tensor:
    """Pixel points (K, 2) under torchvision's affine (rotation and scale about the centre, then a shift in px)."""
    w, h = size
    kp = tv_tensors.KeyPoints(pts, canvas_size=(h, w))
    return TF.affine(kp, angle=angle, translate=[dx, dy], scale=scale, shear=[0.0, 0.0]).as_subclass(torch.Tensor)


def _inside(pts: torch.Tensor, size: tuple[int, int]) -> bool:
    w, h = size
    return bool(((pts[:, 0] >= 0) & (pts[:, 0] <= w - 1) & (pts[:, 1] >= 0) & (pts[:, 1] <= h - 1)).all())


def augment_one(img: torch.Tensor, pts: torch.Tensor, geo: tuple, mirror: np.ndarray | None):
    """One image (C, H, W) and its pixel points (K, 2); ``geo`` = (angle, shift x, shift y, flip[, scale]): rotate, scale
    and shift together (halved towards none while a point would leave the image), then flip with the left/right permutation."""
    h, w = img.shape[-2:]
    angle, fx, fy, flip, *rest = geo
    scale = rest[0] if rest else 1.0
    for _ in range(4):
        moved = move_points(pts, (w, h), angle, fx * w, fy * h, scale)
        if _inside(moved, (w, h)):
            break
        angle, fx, fy, scale = angle / 2, fx / 2, fy / 2, (1 + scale) / 2
    else:
        angle = fx = fy = 0.0
        scale = 1.0
        moved = pts
    if angle or fx or fy or scale != 1.0:
        img = TF.affine(
            img, angle=angle, translate=[fx * w, fy * h], scale=scale, shear=[0.0, 0.0], interpolation=InterpolationMode.BILINEAR
        )
    if flip and mirror is not None:
        img = img.flip(-1)
        moved = torch.stack([w - 1 - moved[:, 0], moved[:, 1]], 1)[torch.as_tensor(mirror)]
    return img, moved


class MeanShapeErrors(TypedDict):
    """The baseline a keypoint network must beat: always answering the training set's mean shape (``baseline_mean_shape``)."""

    val_px_err: float
    val_nme: float | None  # None where the layout has no eyes to normalise by (the nose)


@dataclass
class KeypointTask(Task):
    name: ClassVar[str] = "keypoints"
    about: ClassVar[str] = "landmark coordinates"
    options: ClassVar[tuple[str, ...]] = ("points", "convs", "head")
    monitor: ClassVar[tuple[str, str]] = ("val_loss", "min")
    accuracy: ClassVar[bool] = False
    labels: ClassVar[bool] = False
    points: ClassVar[bool] = True
    curve_metrics: ClassVar[tuple[str, ...]] = ("loss", "px_err", "nme")
    # A recipe that learns from ~2,000 real photos on a 2-core laptop CPU in under ten minutes (docs/measured.md): what
    # it needs is Adam, small batches and enough steps (the generic SGD 0.05 / 128-image batches / 128 steps stayed at
    # the mean shape); darknet64 with the heatmap head at 128 px grey beat ResNet-18 there at a third of its time. The crop is
    # the points' own box, as the 300-W protocol crops, so a run trained on a detector's labels (dlib XML, whose
    # default crop is the detector's box) is evaluated on manually labelled photos (.pts, no box) with the same framing.
    defaults: ClassVar[dict] = {
        "arch": "darknet64",
        "size": "128",
        "channels": 1,
        "opt": "adam",
        "lr": 3e-3,
        "batch": 32,
        "epochs": 10,
        "min_steps": 1000,
        "crop": "landmarks",
        "weights": "auto",
    }
    which: str = "all"  # --points: nose (the nose tip) or all
    head: str = "regress"  # --head: regress (coordinates from pooled features) or heatmap (soft-argmax of per-point maps)
    indices: list[int] = field(default_factory=list)  # chosen points of the data set's layout
    n_layout: int = 0  # points in the data set's layout (68, 58, 5)
    mirror: np.ndarray | None = None
    size: tuple[int, int] = (64, 64)  # (W, H) of the cached images
    geometry: Geometry = field(default_factory=Geometry)

    @classmethod
    def from_config(cls, cfg):
        from ..data.cache import parse_size

        return cls(which=cfg.data.points, size=parse_size(cfg.data.size), head=cfg.model.head or "regress")

    @property
    def n_outputs(self) -> int:
        return 2 * len(self.indices)

    def select(self, fs: FaceSet, seed: int) -> FaceSet:
        if self.which not in POINTS:
            raise FacelabError(f"--points {self.which!r}: use nose or all")
        fs.require("landmarks", "--task keypoints")
        self._choose(fs.n_landmarks, fs.mirror, fs.spec)
        return fs

    def _choose(self, n_layout: int, mirror, where: str) -> None:
        self.n_layout = n_layout
        if self.which == "nose":
            if self.n_layout not in NOSE_TIP:
                raise FacelabError(f"{where}: no nose tip known for a {self.n_layout}-point layout; use --points all")
            self.indices = [NOSE_TIP[self.n_layout]]
            self.mirror = np.array([0])
        else:
            self.indices = list(range(self.n_layout))
            self.mirror = None if mirror is None else np.asarray(mirror)

    def restore(self, description: dict) -> None:
        self._choose(description["layout"], description.get("mirror"), "config.json")

    def targets(self, fs: FaceSet, cache=None, rows: np.ndarray | None = None) -> torch.Tensor:
        if cache is None or cache.landmarks is None:
            raise FacelabError(f"{fs.spec}: the cache holds no landmarks; rebuild it (facelab data cache {fs.spec})")
        self.size = cache.size
        pts = torch.from_numpy(np.ascontiguousarray(cache.landmarks[rows][:, self.indices]))
        return self.to_relative(pts).flatten(1)

    def start_model(self, model, train_targets):
        """Start at the training set's mean shape, so training can only improve on that constant answer."""
        from ..models.registry import start_outputs_at

        start_outputs_at(model, train_targets.float().mean(0).cpu())

    # --- coordinates ----------------------------------------------------------------------
    def to_relative(self, pts_px: torch.Tensor) -> torch.Tensor:
        return (pts_px + 0.5) / torch.tensor(self.size, dtype=torch.float32)

    def to_pixels(self, flat_rel: torch.Tensor) -> torch.Tensor:
        """(B, 2K) relative -> (B, K, 2) pixels of the cached image."""
        return flat_rel.float().view(flat_rel.shape[0], -1, 2) * torch.tensor(self.size, dtype=torch.float32, device=flat_rel.device) - 0.5

    # --- training ---------------------------------------------------------------------------
    def batch_augmentation(self, optim):
        return None  # the points move with the pixels: augment() below

    def augment(self, x: torch.Tensor, y: torch.Tensor, gen: torch.Generator, optim: OptimSettings):
        pts = self.to_pixels(y.cpu())
        geometry = replace(self.geometry, flip=optim.flip and self.mirror is not None)
        imgs, moved = zip(*(augment_one(x[i], pts[i], geometry.draw(gen), self.mirror) for i in range(len(x))))
        x = torch.stack(imgs).contiguous(
            memory_format=torch.channels_last if x.is_contiguous(memory_format=torch.channels_last) else torch.contiguous_format
        )
        x = photometric(x, gen, flip=False, shift=0.0, jitter=0.2)
        return x, self.to_relative(torch.stack(moved)).flatten(1).to(y.device)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """MSE of the relative coordinates (the course's numbers) for regression; L1 for heatmaps, as integral
        regression trains them (measured: NME 0.047 against 0.055 with MSE, synthetic 68 points, 64 px)."""
        if self.head == "heatmap":
            return F.l1_loss(out.float(), y)
        return F.mse_loss(out.float(), y)

    def auxiliary_loss(self, model, y):
        """Heatmaps: the maps pulled onto Gaussians at the true points (:func:`facelab.models.heatmap.map_target_loss`)."""
        from ..models.heatmap import map_target_loss

        maps = getattr(model, "last_maps", None)
        if self.head != "heatmap" or maps is None:
            return 0.0
        model.last_maps = None
        return MAP_LOSS_WEIGHT * map_target_loss(maps, y)

    def errors(self, out: torch.Tensor, y: torch.Tensor) -> PointErrors[torch.Tensor]:
        """Per image: MSE of the relative coordinates, mean point error in pixels, and (68 and 58 points) NME by the
        outer-eye-corner distance (inter-ocular) and by the distance of the pupils (the eye points' means)."""
        pred, true = self.to_pixels(out.detach()), self.to_pixels(y)
        dist = (pred - true).norm(dim=-1)
        result = PointErrors(mse=(out.detach().float() - y).pow(2).mean(1), px_err=dist.mean(1))
        if self.has_nme:
            inter_ocular = torch.stack([(true[:, a] - true[:, b]).norm(dim=-1) for a, b in EYE_CORNER_PAIRS[self.n_layout]]).amax(0)
            left, right = (true[:, list(eye)].mean(1) for eye in EYE_POINTS[self.n_layout])
            result["nme"] = dist.mean(1) / inter_ocular.clamp_min(1e-6)
            result["nme_ip"] = dist.mean(1) / (left - right).norm(dim=-1).clamp_min(1e-6)
        return result

    @property
    def has_nme(self) -> bool:
        return self.which == "all" and self.n_layout in EYE_CORNER_PAIRS

    @property
    def is_300w(self) -> bool:
        """iBUG 300-W's 68 points: the layout of its protocol and of dlib's predictor."""
        return self.which == "all" and self.n_layout == 68

    def metric_sums(self, out, y):
        """Sums over the batch of the per-image metrics (divided by n at the end of the epoch)."""
        return torch.stack([v.sum() for v in self.errors(out, y).values()])

    def metric_names(self):
        return ["mse", "px_err", "nme", "nme_ip"] if self.has_nme else ["mse", "px_err"]

    def describe(self):
        mirror = None if self.mirror is None or self.which == "nose" else [int(m) for m in self.mirror]
        return {"task": "keypoints", "points": self.which, "n_points": len(self.indices), "layout": self.n_layout, "mirror": mirror}

    def summary_block(self, row):
        return {
            "val_loss": row["loss"],
            "val_mse_norm": row.get("mse", row["loss"]),
            "val_px_err": row["px_err"],
            "val_nme": row.get("nme"),
            "val_nme_interpupil": row.get("nme_ip"),
        }

    def resolve_head(self, requested):
        """Heatmaps by default for whole layouts (68, 58 points), coordinates regressed for the nose tip."""
        from ..models.heatmap import HEADS

        if requested is not None and requested not in HEADS:
            raise FacelabError(f"--head {requested!r}: use regress or heatmap")
        self.head = requested or ("heatmap" if len(self.indices) > 1 else "regress")
        return self.head

    def summary_fields(self):
        return {"points": self.which, "n_points": len(self.indices), "head": self.head}

    def validation_outputs(self, module, data):
        return predict_split(module.model.float(), data, "valid", module.cfg.data.channels)

    def summary_extra(self, data, outputs=None):
        """The mean-shape baseline; with NME, the CED's AUC and failure rate up to NME 0.08 (the final model, flip
        test) and, for 68 points, the 300-W protocol on the validation split (dlib on its first 100 faces, where installed)."""
        from ..report.keypoint_report import CED

        extra = {"baseline_mean_shape": self.mean_shape_baseline(data)}
        if outputs is not None and outputs.nme is not None:
            extra["ced"] = CED.of(outputs.nme).summary()
            extra["final"] = {"auc_008": extra["ced"]["auc_0.08"], "failure_rate_008": extra["ced"]["failure_rate_0.08"]}
            if self.is_300w:
                extra |= self.protocol(data, "valid", outputs, limit=100)
        return extra

    def predict(self, model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
        """Flip test: the mean of the prediction and the mirrored image's prediction mapped back through the
        left/right permutation (when the layout has one)."""
        out = model(x).float()
        if self.mirror is None:
            return out
        flipped = model(x.flip(-1)).float().view(len(x), -1, 2)
        flipped = torch.stack([1 - flipped[..., 0], flipped[..., 1]], -1)[:, torch.as_tensor(self.mirror)]
        return (out + flipped.flatten(1)) / 2

    def eval_extra(self, data, split, model, channels):
        """68 points: the 300-W protocol per subset (``protocol``), with the mean shape and, where facelab[faces] is
        installed, dlib's 68-point predictor on the same faces (``dlib_reference``)."""
        if not self.is_300w:
            return {}
        return self.protocol(data, split, predict_split(model, data, split, channels))

    def protocol(self, data, split, predictions, limit: int = REFERENCE_LIMIT) -> ProtocolBlock:
        from ..data.detect import dlib_installed

        reference = dlib_nme(data, split, limit) if dlib_installed() else None
        names = [data.names[i] for i in predictions.positions]
        extra = ProtocolBlock(protocol=protocol(predictions, names, mean_shape_nme(data, split), reference))
        if reference is not None:
            done = reference[np.isfinite(reference)]
            extra["dlib_reference"] = DlibReference(
                landmarker="dlib shape_predictor_68_face_landmarks", n=len(done), nme=float(done.mean())
            )
        return extra

    def mean_shape_baseline(self, data) -> MeanShapeErrors:
        """Errors on the validation split of always predicting the training set's mean shape."""
        errors = mean_shape_errors(data, "valid")
        nme = float(errors["nme"].mean()) if "nme" in errors else None
        return MeanShapeErrors(val_px_err=float(errors["px_err"].mean()), val_nme=nme)

    def output_names(self):
        return [str(i) for i in self.indices]

    def caption(self, out, y):
        err = float(self.errors(out[None], y[None])["px_err"][0])
        return f"{err:.1f} px", err < 0.05 * max(self.size)

    def write_report(self, run, cfg, module, data, summary, outputs=None) -> None:
        from ..report.keypoint_report import write_keypoint_report

        write_keypoint_report(run, cfg, module, data, outputs, summary)
