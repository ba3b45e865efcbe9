"""``facelab export RUN --format csv`` (see :mod:`facelab.model_export`): a keypoint run's predictions, one row per (image, point),
in the original image's pixels."""

from __future__ import annotations

from pathlib import Path

from ..data.cache import DEFAULT_MARGIN, cache_to_source
from ..data.spec import open_spec
from ..errors import FacelabError
from ..files import prepare_output_file, write_csv
from ..progress import progress_bar
from ..run import Run
from ..training.keypoint_eval import predict_split


def export(run: str | Path, split: str = "valid", *, spec: str | None = None, out: str | Path | None = None, quiet: bool = True) -> Path:
    """Writes ``image,point,x,y`` (x, y in the source image's pixels) for every image of ``split``; returns the file."""
    opened = Run.open(run)
    opened.require("points", "export --format csv (the network itself: --format onnx or torchscript)")
    shown = opened.cfg.data
    data = opened.data(spec, keep_balance=True)
    if not data.split_positions(split).size:
        raise FacelabError(f"{spec or shown.spec}: the {split} split is empty; choose --split train, valid or test")
    p = predict_split(opened.model, data, split, shown.channels)
    fs = open_spec(spec or shown.spec)
    crop = shown.crop or fs.default_crop
    size = data.cache.size
    path = prepare_output_file(Path(out) if out else Path(run) / f"predictions_{split}.csv")

    def rows(advance):
        for k, pos in enumerate(p.positions):
            row = int(data.rows[pos])
            source = cache_to_source(fs, row, size, crop, DEFAULT_MARGIN[crop], p.pred[k])
            yield from ([fs.names[row], point, f"{x:.2f}", f"{y:.2f}"] for point, (x, y) in zip(data.task.indices, source))
            advance()

    with progress_bar("export", len(p.positions), quiet) as advance:
        return write_csv(path, ["image", "point", "x", "y"], rows(advance))
