"""``facelab export RUN``: a run's network for other tools (ONNX, checked with onnxruntime; TorchScript), with its
input contract written beside it, or a keypoint run's predictions as CSV."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Callable, NamedTuple, TypedDict

from .files import prepare_output_file, write_json
from .plugins import Registry


class Exporter(NamedTuple):
    """How one --format writes a run: ``write(run, out, split, spec, quiet)``; ``suffix``: the default file is
    RUN/model<suffix> (None: the exporter names its own default)."""

    write: Callable[[str | Path, Path | None, str, str | None, bool], Path]
    suffix: str | None


FORMATS: Registry[Exporter] = Registry("--format")


def export(
    run: str | Path, fmt: str = "csv", split: str = "valid", *, spec: str | None = None, out: str | Path | None = None, quiet: bool = True
) -> Path:
    """Write the export; returns its path. ``onnx``/``torchscript``: the fp32 network taking the normalised
    (1, C, H, W) input and giving the logits, with ``<file>.json`` (size, channels, crop, mean, std, outputs)."""
    exporter = FORMATS.get(fmt)
    default = Path(run) / f"model{exporter.suffix}" if exporter.suffix else None
    return exporter.write(run, Path(out) if out else default, split, spec, quiet)


def _keypoint_csv(run: str | Path, out: Path | None, split: str, spec: str | None, quiet: bool) -> Path:
    from .keypoints.export import export as keypoint_csv

    return keypoint_csv(run, split=split, spec=spec, out=out, quiet=quiet)


def _network_as(fmt: str) -> Callable[[str | Path, Path | None, str, str | None, bool], Path]:
    def write(run: str | Path, out: Path | None, split: str, spec: str | None, quiet: bool) -> Path:
        assert out is not None  # export() names the file from the format's suffix
        return export_network(run, fmt, out)

    return write


FORMATS.add("csv", Exporter(_keypoint_csv, None), "a keypoint run's points: image,point,x,y in photo pixels")
FORMATS.add("onnx", Exporter(_network_as("onnx"), ".onnx"), "the network for onnxruntime and other ONNX tools")
FORMATS.add("torchscript", Exporter(_network_as("torchscript"), ".torchscript.pt"), "the network for torch.jit.load, without facelab")


class InputSpec(TypedDict):
    shape: list[int]  # 1, channels, height, width
    crop: str
    mean: list[float]
    std: list[float]
    dtype: str


class InputContract(TypedDict):
    """What an exported network expects and answers (MODEL.json beside the file): the input, the pixels' scaling,
    the outputs' names, the task and the network."""

    input: InputSpec
    pixels: str
    outputs: list[str]
    task: str
    arch: str


def input_contract(opened) -> InputContract:
    c = opened.contract
    return InputContract(
        input=InputSpec(shape=[1, c.channels, c.size[1], c.size[0]], crop=c.crop, mean=c.mean, std=c.std, dtype="float32"),
        pixels="RGB (or grey for 1 channel) in [0, 1], then (x - mean) / std",
        outputs=opened.outputs,
        task=opened.cfg.task,
        arch=opened.cfg.model.arch,
    )


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


def read_contract(path: Path) -> InputContract:
    return json.loads(path.with_name(path.name + ".json").read_text())
