"""The model registry: darknet64 and torchvision networks with their heads replaced."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from torch import nn

from ..errors import FacelabError
from ..plugins import Registry
from .heatmap import HEADS, HeatmapNet, feature_trunk


class Darknet64(nn.Module):
    """5 x [conv3x3 + BatchNorm + ReLU + maxpool 2/2] (16..256 channels), global average pool, linear."""

    def __init__(self, n_outputs: int, in_channels: int = 3, widths=(16, 32, 64, 128, 256)):
        super().__init__()
        layers, c = [], in_channels
        for w in widths:
            layers += [nn.Conv2d(c, w, 3, padding=1, bias=False), nn.BatchNorm2d(w), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c, n_outputs)

    def forward(self, x):
        return self.classifier(torch.flatten(self.pool(self.features(x)), 1))


class KPNet(nn.Module):
    """The course's keypoint net: ``convs`` x [conv (kernels 7x7 down to 3x3) + ReLU + maxpool 2/2], then two linear layers.

    An adaptive pool before the linear layers makes one net fit any input size (80x60, 240x180, ...).
    """

    def __init__(self, n_outputs: int, in_channels: int = 1, convs: int = 3, widths=(16, 32, 64, 96, 128, 128), hidden: int = 256):
        super().__init__()
        if not 1 <= convs <= len(widths):
            raise FacelabError(f"--convs {convs}: kpnet has 1 to {len(widths)} conv layers")
        kernels = [7, 5] + [3] * (convs - 2) if convs >= 2 else [7]
        layers, c = [], in_channels
        for w, k in zip(widths[:convs], kernels):
            layers += [nn.Conv2d(c, w, k, padding=k // 2), nn.ReLU(inplace=True), nn.MaxPool2d(2)]
            c = w
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d((4, 4))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(c * 16, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, n_outputs))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.constant_(self.head[-1].bias, 0.5)  # start from the image centre in relative coordinates

    def forward(self, x):
        return self.head(self.pool(self.features(x)))


@dataclass(frozen=True)
class Arch:
    """A network by name: how to build it, its ImageNet weights (a torchvision enum name) and, for CAM, the module
    whose output is pooled into the logits and the linear head after the pool (None: the pooled map is the class map;
    ``cam`` None: the network does not end in pooling + one linear layer, so CAM does not apply)."""

    build: Callable[..., nn.Module]  # (n_outputs, in_channels) -> the network; the kpnets also take a conv count
    weights_enum: str | None = None  # torchvision weights enum name, for --weights imagenet
    cam: tuple[str, str | None] | None = None


def _first_conv_to(model: nn.Module, in_channels: int) -> None:
    """Swap the first conv for one with ``in_channels`` inputs; grey from RGB sums the kernels."""
    if in_channels == 3:
        return
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            new = nn.Conv2d(in_channels, mod.out_channels, mod.kernel_size, mod.stride, mod.padding, bias=mod.bias is not None)
            with torch.no_grad():
                new.weight.copy_(mod.weight.sum(1, keepdim=True).repeat(1, in_channels, 1, 1) / in_channels)
                if mod.bias is not None:
                    new.bias.copy_(mod.bias)
            parent = model.get_submodule(name.rsplit(".", 1)[0]) if "." in name else model
            setattr(parent, name.rsplit(".", 1)[-1], new)
            return


def _tv(name: str) -> Callable[[int, int], nn.Module]:
    def build(n_outputs: int, in_channels: int) -> nn.Module:
        import torchvision.models as tvm

        model = getattr(tvm, name)(weights=None)
        if name.startswith("resnet"):
            model.fc = nn.Linear(model.fc.in_features, n_outputs)
        elif name.startswith("squeezenet"):
            model.classifier[1] = nn.Conv2d(512, n_outputs, kernel_size=1)
            model.num_classes = n_outputs
        elif name.startswith("mobilenet"):
            model.classifier[-1] = nn.Linear(model.classifier[-1].in_features, n_outputs)
        _first_conv_to(model, in_channels)
        return model

    return build


ARCHS: Registry[Arch] = Registry("--arch", hint=" (facelab models lists them)")
ARCHS.add("darknet64", Arch(lambda n, c: Darknet64(n, c), cam=("features", "classifier")), "5 conv blocks, GAP, linear; the fast CPU net")
ARCHS.add("kpnet-small", Arch(lambda n, c, convs=3: KPNet(n, c, convs or 3)), "keypoints: 3 convs (7x7, 5x5, 3x3) + 2 linear")
ARCHS.add("kpnet-full", Arch(lambda n, c, convs=4: KPNet(n, c, convs or 4)), "keypoints: 4 convs (7x7, 5x5, 3x3, 3x3) + 2 linear")
ARCHS.add("squeezenet1_1", Arch(_tv("squeezenet1_1"), "SqueezeNet1_1_Weights", cam=("classifier.2", None)), "torchvision's SqueezeNet 1.1")
for depth in (18, 34, 50):
    ARCHS.add(
        f"resnet{depth}", Arch(_tv(f"resnet{depth}"), f"ResNet{depth}_Weights", cam=("layer4", "fc")), f"torchvision's ResNet-{depth}"
    )
ARCHS.add("mobilenet_v3_small", Arch(_tv("mobilenet_v3_small"), "MobileNet_V3_Small_Weights"), "torchvision's MobileNetV3 small")


def check_arch(arch: str) -> Arch:
    return ARCHS.get(arch)


def imagenet_file(arch: str) -> Path:
    """torchvision's ImageNet weights file of ``arch`` in the torch cache, downloaded there first when missing (with
    a progress bar). Offline (or with ``FACELAB_OFFLINE=1``) one line says which file to fetch and where to put it."""
    import torchvision.models as tvm

    info = check_arch(arch)
    if info.weights_enum is None:
        raise FacelabError(f"--weights imagenet: {arch} has no ImageNet weights; train from scratch or pass --weights FILE")
    weights = getattr(tvm, info.weights_enum).IMAGENET1K_V1
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.exists():
        _download(weights.url, path)
    return path


def weights_if_available(arch: str, weights: str | None) -> tuple[str | None, str | None]:
    """``weights`` as given, except ``auto``: ImageNet weights when they can be had (cached or downloaded), otherwise
    none (from scratch). Returns (the weights to use, the reason ImageNet's were not used, or None)."""
    if weights != "auto":
        return weights, None
    if check_arch(arch).weights_enum is None:  # nothing to have: from scratch, as the network always trains
        return None, None
    try:
        imagenet_file(arch)
    except FacelabError as exc:
        return None, str(exc)
    return "imagenet", None


def _imagenet_state(arch: str) -> dict:
    return torch.load(imagenet_file(arch), map_location="cpu", weights_only=True)


def _download(url: str, path: Path) -> None:
    """``url`` into ``path`` (torch writes a temporary file and renames it when complete: nothing half-written)."""
    import os
    import urllib.error

    fetch_by_hand = f"fetch {url} on a machine with internet and copy it to {path}, or pass --weights FILE"
    if os.environ.get("FACELAB_OFFLINE") == "1":
        raise FacelabError(f"--weights imagenet: {path} not found and FACELAB_OFFLINE=1 (no download attempted); {fetch_by_hand}")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        torch.hub.download_url_to_file(url, str(path), progress=True)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        reason = getattr(exc, "reason", exc)
        raise FacelabError(f"--weights imagenet: could not download {url} ({reason}); {fetch_by_hand}") from None


def load_weights_file(path: Path) -> dict:
    """A state dict from a plain .pth/.pt file or a facelab/Lightning checkpoint (weights_only)."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise FacelabError(f"--weights {path}: no such file") from None
    except Exception as exc:
        raise FacelabError(f"--weights {path}: not a loadable weights file ({type(exc).__name__}: {str(exc)[:120]})") from None
    if isinstance(obj, dict) and "state_dict" in obj:
        obj = {k.removeprefix("model."): v for k, v in obj["state_dict"].items()}
    if not isinstance(obj, dict):
        raise FacelabError(f"--weights {path}: expected a state dict, got {type(obj).__name__}")
    return obj


def _load_matching(model: nn.Module, state: dict, source: str, in_channels: int) -> None:
    own = model.state_dict()
    usable = {}
    for k, v in state.items():
        if k in own and own[k].shape == v.shape:
            usable[k] = v
        elif k in own and v.ndim == 4 and own[k].shape[1] != v.shape[1] and own[k].shape[0] == v.shape[0]:
            usable[k] = v.sum(1, keepdim=True).repeat(1, own[k].shape[1], 1, 1) / own[k].shape[1]  # RGB -> grey
    if not usable:
        raise FacelabError(f"{source}: none of its tensors fit this architecture (wrong --arch?)")
    model.load_state_dict(usable, strict=False)


def build_model(
    arch: str, n_outputs: int, in_channels: int = 3, weights: str | None = None, convs: int | None = None, head: str = "regress"
) -> nn.Module:
    """``arch`` with an ``n_outputs`` head; ``weights`` None, "imagenet" or a state-dict file; ``convs`` for kpnet;
    ``head="heatmap"``: the backbone with a heatmap head for ``n_outputs // 2`` points (:mod:`.heatmap`)."""
    info = check_arch(arch)
    if head not in HEADS:
        raise FacelabError(f"--head {head!r}: use regress or heatmap")
    if in_channels not in (1, 3):
        raise FacelabError(f"--channels {in_channels}: use 1 (grey) or 3 (RGB)")
    if convs is not None and not arch.startswith("kpnet"):
        raise FacelabError(f"--convs applies to kpnet-small/kpnet-full, not {arch}")
    model = info.build(n_outputs, in_channels, convs) if arch.startswith("kpnet") else info.build(n_outputs, in_channels)
    if weights:
        state = _imagenet_state(arch) if weights == "imagenet" else load_weights_file(Path(weights))
        _load_matching(model, state, f"--weights {weights}", in_channels)
    if head == "heatmap":
        return HeatmapNet(feature_trunk(model), in_channels, n_outputs // 2)
    model.facelab_arch = arch  # what CAM reads its layers from (the registry's declaration)
    return model


def start_outputs_at(model: nn.Module, values: torch.Tensor) -> None:
    """An untrained network that answers ``values`` (one per output: a keypoint run's mean shape, relative) for every
    image: the output layer's bias set to them and its weights zeroed (they learn from the first step), or a heatmap
    head's prior (:meth:`HeatmapNet.start_at`)."""
    if isinstance(model, HeatmapNet):
        model.start_at(values.view(-1, 2))
        return
    last = [m for m in model.modules() if isinstance(m, (nn.Linear, nn.Conv2d)) and m.bias is not None]
    if not last or last[-1].bias.shape[0] != values.numel():
        raise FacelabError(f"cannot find the output layer of {type(model).__name__} to start it at the mean shape")
    with torch.no_grad():
        last[-1].weight.zero_()
        last[-1].bias.copy_(values.flatten())


def list_models() -> list[tuple[str, int, str]]:
    """(name, parameters with a 2-output head, note) for every registered net."""
    return [(e.name, sum(p.numel() for p in e.item.build(2, 3).parameters()), e.help) for e in ARCHS.entries()]


def conv_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """The network's conv layers in forward order (for probes addressing layers by index)."""
    return [(n, m) for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
