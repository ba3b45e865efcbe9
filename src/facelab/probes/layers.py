"""Addressing a network's layers and reading their outputs through hooks that are always released."""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import FacelabError
from ..models.registry import conv_layers


@dataclass(frozen=True, eq=False)
class Layer:
    index: int  # 1 = the first conv layer
    name: str
    module: nn.Module


def resolve_layer(model: nn.Module, spec: str | int) -> Layer:
    """A layer by its position in the conv stack (1 = first conv) or by module name (``features.4``)."""
    convs = conv_layers(model)
    text = str(spec).strip()
    if text.lstrip("-").isdigit():
        k = int(text)
        if not 1 <= k <= len(convs):
            raise FacelabError(f"layer {k}: this network has conv layers 1..{len(convs)} (facelab layers RUN lists them)")
        name, module = convs[k - 1]
        return Layer(k, name, module)
    modules = dict(model.named_modules())
    if text not in modules or text == "":
        raise FacelabError(f"layer {text!r}: no module of that name (facelab layers RUN lists them)")
    index = next((k + 1 for k, (n, _) in enumerate(convs) if n == text), 0)
    return Layer(index, text, modules[text])


@contextmanager
def recorded(modules: dict[str, nn.Module]):
    """Yields a dict filled with each module's output on every forward pass; hooks removed on exit."""
    outputs: dict[str, torch.Tensor] = {}
    handles = []
    try:
        for key, module in modules.items():
            handles.append(module.register_forward_hook(lambda _m, _i, out, key=key: outputs.__setitem__(key, out)))
        yield outputs
    finally:
        for h in handles:
            h.remove()


@torch.no_grad()
def layer_table(model: nn.Module, input_shape: tuple[int, ...]) -> list[dict]:
    """Every conv layer with its name and output shape (C, H, W) for an input of ``input_shape``."""
    convs = conv_layers(model)
    with recorded(dict(convs)) as outs:
        model(torch.zeros(1, *input_shape))
    return [
        {"index": k + 1, "name": n, "type": type(m).__name__, "kernel": list(m.kernel_size), "shape": list(outs[n].shape[1:])}
        for k, (n, m) in enumerate(convs)
    ]


OBJECTIVES = {
    "sum": lambda a: a.sum(dim=(-2, -1)),
    "square": lambda a: a.pow(2).sum(dim=(-2, -1)),
    "abs": lambda a: a.abs().sum(dim=(-2, -1)),
}


def channel_objective(run, layer, objective: str, channels: torch.Tensor | None = None):
    """f(pixels) -> (B,): item k's objective on its own channel ``channels[k]`` of ``layer``'s output, or, without
    ``channels``, each item's objective summed over every channel (a dream of the whole layer)."""
    if objective not in OBJECTIVES:
        raise FacelabError(f"--objective {objective!r}: use sum, square or abs")
    reduce = OBJECTIVES[objective]

    def f(pixels: torch.Tensor) -> torch.Tensor:
        with recorded({"layer": layer.module}) as outs:
            run.model(run.contract.normalise(pixels))
        act = outs["layer"].float()
        return reduce(act).sum(1) if channels is None else reduce(act[torch.arange(len(channels)), channels])

    return f
