"""``facelab export RUN``: a run's network for other tools (ONNX, checked with onnxruntime; TorchScript), with its
input contract written beside it, or a keypoint run's predictions as CSV."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

from .errors import FacelabError
from .files import prepare_output_file, write_json

FORMATS = ("csv", "onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


def export(
    run: str | Path, fmt: str = "csv", split: str = "valid", *, spec: str | None = None, out: str | Path | None = None, quiet: bool = True
) -> Path:
    """Write the export; returns its path. ``onnx``/``torchscript``: the fp32 network taking the normalised
    (1, C, H, W) input and giving the logits, with ``<file>.json`` (size, channels, crop, mean, std, outputs)."""
    if fmt not in FORMATS:
        raise FacelabError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if fmt == "csv":
        from .keypoints.export import export as keypoint_csv

        return keypoint_csv(run, split=split, spec=spec, out=out, quiet=quiet)
    return export_network(run, fmt, Path(out) if out else Path(run) / f"model{SUFFIX[fmt]}")


def input_contract(opened) -> dict:
    c = opened.contract
    return {
        "input": {"shape": [1, c.channels, c.size[1], c.size[0]], "crop": c.crop, "mean": c.mean, "std": c.std, "dtype": "float32"},
        "pixels": "RGB (or grey for 1 channel) in [0, 1], then (x - mean) / std",
        "outputs": opened.outputs,
        "task": opened.cfg.task,
        "arch": opened.cfg.arch,
    }


def export_network(run: str | Path, fmt: str, path: Path) -> Path:
    import torch

    from .run import Run

    opened = Run.open(run)
    contract = input_contract(opened)
    example = torch.zeros(contract["input"]["shape"])
    path = prepare_output_file(path)
    tmp = path.with_name(path.name + ".part")
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated upstream; the format is still asked for
        if fmt == "onnx":
            batch = {"input": {0: "batch"}, "logits": {0: "batch"}}
            torch.onnx.export(
                opened.model, (example,), str(tmp), input_names=["input"], output_names=["logits"], dynamic_axes=batch, dynamo=False
            )
        else:
            torch.jit.trace(opened.model, example).save(str(tmp))
    tmp.replace(path)  # a finished file or none: an interrupted export leaves no half-written model
    write_json(path.with_name(path.name + ".json"), contract)
    return path


def check_onnx(path: Path, x) -> "object":
    """The ONNX file's logits for ``x`` (a numpy batch) from onnxruntime: what another tool would get."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": x})[0]


def read_contract(path: Path) -> dict:
    return json.loads(path.with_name(path.name + ".json").read_text())
