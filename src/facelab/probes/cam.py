"""Where the network looks: CAM and the Grad-CAM family as small plug-ins over one hook.

Every method turns a layer's activations (and, except CAM, their gradients) into a map.
Gradients come from ``torch.autograd.grad`` to the hooked layer only (no parameter grads,
no full backward pass); plain CAM needs no gradient at all. For attribute runs a map explains
the decision made: evidence for the attribute where it is predicted present, against it where
predicted absent. For identity runs it explains the predicted (or a chosen) class.
"""

from __future__ import annotations

import contextlib
import copy
from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..errors import FacelabError
from ..hardware import Runtime
from ..plugins import Registry
from .layers import Layer, recorded, resolve_layer


@dataclass
class Target:
    index: torch.Tensor  # (B,) output explained
    sign: torch.Tensor  # (B,) +1, or -1 where an attribute is predicted absent

    def score(self, logits: torch.Tensor) -> torch.Tensor:
        return self.sign * logits.float()[torch.arange(len(self.index)), self.index]

    def prob(self, logits: torch.Tensor, binary: bool) -> torch.Tensor:
        """Probability of the explained decision."""
        if binary:
            return torch.sigmoid(self.score(logits))
        return torch.softmax(logits.float(), 1)[torch.arange(len(self.index)), self.index]


def decision_target(logits: torch.Tensor, output: int | None, binary: bool, present: bool = False) -> Target:
    """Attribute runs: ``output`` with the sign of its prediction (``present``: its presence, on every face). Identity
    runs: ``output`` or the predicted class."""
    b = logits.shape[0]
    if binary:
        k = 0 if output is None else output
        sign = torch.ones(b) if present else torch.where(logits[:, k] >= 0, 1.0, -1.0)
        return Target(torch.full((b,), k), sign)
    index = logits.argmax(1) if output is None else torch.full((b,), output)
    return Target(index, torch.ones(b))


def head_layer(model: nn.Module) -> tuple[nn.Module, nn.Module | None]:
    """(the module whose output is pooled into the logits, the linear head after the pool) for CAM, as the network's
    registry entry declares them (``Arch.cam``). The head is None when the pooled map holds one channel per class."""
    from ..models.registry import ARCHS

    name = getattr(model, "facelab_arch", None)
    arch = ARCHS.get(name) if name in ARCHS else None
    if arch is None or arch.cam is None:
        raise FacelabError(
            f"CAM needs a network that ends in global average pooling + one linear layer; {type(model).__name__} does not: "
            "use --method gradcam"
        )
    pooled, head = arch.cam
    return model.get_submodule(pooled), model.get_submodule(head) if head else None


def default_layer(model: nn.Module) -> Layer:
    """The last feature map before pooling: CAM's layer, and Grad-CAM's default."""
    try:
        module = head_layer(model)[0]
    except FacelabError:
        from ..models.registry import conv_layers

        name, module = conv_layers(model)[-1]
    name = next(n for n, m in model.named_modules() if m is module)
    return Layer(0, name, module)


def chosen_precision(runtime: Runtime | None):
    """Autocast in ``runtime``'s precision (bf16 only where chosen); None: exact fp32. Maps are combined in float32."""
    return runtime.autocast() if runtime is not None else contextlib.nullcontext()


class Attribution:
    """A map method: override ``combine`` (activations, gradients) -> (B, h, w)."""

    uses_gradient = True

    def raw(
        self, model: nn.Module, x: torch.Tensor, layer: Layer, output: int | None, binary: bool, runtime: Runtime | None = None,
        present: bool = False,
    ):  # fmt: skip
        """(logits, target, raw maps (B, h, w)) for the batch ``x``, in ``runtime``'s precision (None: exact fp32); the
        target is each face's decision, or with ``present`` the attribute's presence (see :func:`decision_target`)."""
        x = x.detach().contiguous(memory_format=torch.channels_last).requires_grad_(self.uses_gradient)  # no parameter grads
        with torch.enable_grad(), chosen_precision(runtime), recorded({"layer": layer.module}) as outs:
            logits = model(x).float()
            target = decision_target(logits.detach(), output, binary, present)
            acts = outs["layer"]
            grads = torch.autograd.grad(target.score(logits).sum(), acts)[0] if self.uses_gradient else None
        return logits.detach(), target, self.combine(acts.detach().float(), None if grads is None else grads.float(), model, target)

    def combine(self, acts, grads, model, target) -> torch.Tensor:
        raise NotImplementedError

    def normalise(self, maps: torch.Tensor) -> torch.Tensor:
        """Maps scaled to [0, 1] per image (negative evidence clipped)."""
        maps = maps.clamp_min(0)
        return maps / maps.flatten(1).amax(1).clamp_min(1e-12).view(-1, 1, 1)


class CAM(Attribution):
    """Zhou et al. 2016: the head's weights for the explained output, summed over the pooled feature maps."""

    uses_gradient = False

    def combine(self, acts, grads, model, target):
        _, head = head_layer(model)
        if head is None:  # the pooled map is the class map
            maps = acts[torch.arange(len(target.index)), target.index]
        else:
            w = head.weight.detach().float()[target.index]  # (B, C)
            maps = torch.einsum("bc,bchw->bhw", w, acts) + head.bias.detach().float()[target.index].view(-1, 1, 1)
        return target.sign.view(-1, 1, 1) * maps

    def normalise(self, maps):
        lo = maps.flatten(1).amin(1).view(-1, 1, 1)
        hi = maps.flatten(1).amax(1).view(-1, 1, 1)
        return (maps - lo) / (hi - lo).clamp_min(1e-12)


class GradCAM(Attribution):
    """Selvaraju et al. 2017: channels weighted by their mean gradient."""

    def combine(self, acts, grads, model, target):
        return F.relu((grads.mean(dim=(2, 3), keepdim=True) * acts).sum(1))


class GradCAMPlusPlus(Attribution):
    """Chattopadhay et al. 2018: positive gradients weighted per position."""

    def combine(self, acts, grads, model, target):
        g2, g3 = grads.pow(2), grads.pow(3)
        denom = 2 * g2 + acts.sum(dim=(2, 3), keepdim=True) * g3
        alpha = g2 / torch.where(denom != 0, denom, torch.ones_like(denom))
        weights = (alpha * F.relu(grads)).sum(dim=(2, 3), keepdim=True)
        return F.relu((weights * acts).sum(1))


class LayerCAM(Attribution):
    """Jiang et al. 2021: each position's activation weighted by its own positive gradient."""

    def combine(self, acts, grads, model, target):
        return F.relu((F.relu(grads) * acts).sum(1))


METHODS: Registry[Attribution] = Registry("--method")
METHODS.add("cam", CAM(), "class activation mapping (Zhou et al. 2016): pooled map x the head's weights")
METHODS.add("gradcam", GradCAM(), "Grad-CAM (Selvaraju et al. 2017): channels weighted by their mean gradient")
METHODS.add("gradcam++", GradCAMPlusPlus(), "Grad-CAM++ (Chattopadhay et al. 2018): positive gradients weighted per position")
METHODS.add("layercam", LayerCAM(), "LayerCAM (Jiang et al. 2021): each position weighted by its own positive gradient")


def method_named(name: str) -> Attribution:
    return METHODS.get(name)


def layer_for(model: nn.Module, method: str, layer: str | None) -> Layer:
    if method == "cam" and layer is not None:
        raise FacelabError("--layer does not apply to CAM (it uses the last feature map); use --method gradcam to choose a layer")
    return resolve_layer(model, layer) if layer is not None else default_layer(model)


def attribution_maps(
    model: nn.Module,
    x: torch.Tensor,
    method: str,
    output: int | None,
    binary: bool,
    layer: Layer | None = None,
    size: tuple[int, int] | None = None,
    runtime: Runtime | None = None,
    present: bool = False,
):
    """(logits, target, raw (B, h, w), normalised upsampled (B, H, W) in [0, 1]); ``runtime``: its precision;
    ``present``: explain the attribute's presence rather than each face's decision."""
    m = method_named(method)
    layer = layer or default_layer(model)
    logits, target, raw = m.raw(model, x, layer, output, binary, runtime, present)
    size = size or tuple(x.shape[-2:])
    up = F.interpolate(raw[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return logits, target, raw, m.normalise(up)


COLORMAPS = {
    "viridis": cv2.COLORMAP_VIRIDIS,
    "inferno": cv2.COLORMAP_INFERNO,
    "magma": cv2.COLORMAP_MAGMA,
    "plasma": cv2.COLORMAP_PLASMA,
    "turbo": cv2.COLORMAP_TURBO,
    "jet": cv2.COLORMAP_JET,
}
DEFAULT_COLORMAP = "viridis"  # perceptually uniform: equal steps of attribution look like equal steps of colour
MAP_LEGEND = "attribution (0 = none, 1 = the image's strongest)"


def check_colormap(name: str) -> str:
    if name not in COLORMAPS:
        raise FacelabError(f"--colormap {name!r}: use one of {', '.join(COLORMAPS)}")
    return name


def overlay(image: np.ndarray, heat: np.ndarray, alpha: float = 0.5, colormap: str = DEFAULT_COLORMAP) -> np.ndarray:
    """A [0, 1] map (H, W) as a heat map (``colormap``, viridis by default) blended over an (H, W, 3) uint8 image."""
    colour = cv2.applyColorMap((heat * 255).astype(np.uint8), COLORMAPS[check_colormap(colormap)])[..., ::-1]
    return cv2.addWeighted(image, 1 - alpha, colour, alpha, 0)


def with_last_layer_randomised(model: nn.Module, seed: int = 0) -> nn.Module:
    """A copy whose last weighted layer (the output head) is re-initialised: the sanity check of Adebayo et al."""
    clone = copy.deepcopy(model)
    last = [m for m in clone.modules() if isinstance(m, (nn.Linear, nn.Conv2d))][-1]
    torch.manual_seed(seed)
    last.reset_parameters()
    return clone
