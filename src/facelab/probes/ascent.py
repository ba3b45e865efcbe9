"""Gradient ascent on the input image, shared by activation maximisation (dream) and attribute editing.

Plain ascent on an ordinary CNN drifts into high-frequency adversarial noise; the regularisers
users of feature visualisation expect keep the result readable: a perturbation budget around the
start image (projected gradient ascent, as in adversarial robustness work), a random shift each
step (jitter), an occasional blur, the pixel range clamp, and optionally a Fourier
parametrisation (steps favour low frequencies) with decorrelated colour.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch

from ..errors import FacelabError
from ..progress import progress_bar
from ..training.robust import PGD_STEP, project
from .subject import pixels_to_uint8

# The square root of ImageNet's colour correlation (as in Olah et al.'s Lucid), columns normalised.
_COLOUR_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
COLOUR_SQRT = _COLOUR_SQRT / _COLOUR_SQRT.norm(dim=0).max()
PARAMS = ("pixel", "fourier")
BUDGET_NORMS = ("l2", "linf")
# The default budget, as the root mean square change per value the L2 budget allows (7.8 for a 3 x 64 x 64 input,
# 15.5 at 128 px), or the largest change per value for L-inf: small enough that the face stays recognisable.
DEFAULT_BUDGET = {"l2": 0.07, "linf": 0.06}


@dataclass
class Regularisers:
    jitter: int = 2  # random shift of up to this many pixels, each step
    blur_sigma: float = 0.0  # Gaussian blur of the image every ``blur_every`` steps (0: off)
    blur_every: int = 4
    param: str = "pixel"  # pixel or fourier
    decorrelate: bool = False  # steps in decorrelated colour space (RGB networks)
    budget: float | None = None  # how far from the start image, in pixel units (0..1 values); None: the default; 0: unbounded
    budget_norm: str = "l2"  # l2 (over the whole image) or linf (per value)

    def __post_init__(self):
        if self.param not in PARAMS:
            raise FacelabError(f"--param {self.param!r}: use pixel or fourier")
        if self.jitter < 0 or self.blur_sigma < 0:
            raise FacelabError("--jitter and --blur must not be negative")
        if self.budget_norm not in BUDGET_NORMS:
            raise FacelabError(f"--budget-norm {self.budget_norm!r}: use l2 or linf")
        if self.budget is not None and self.budget < 0:
            raise FacelabError(f"--budget {self.budget}: give 0 (unbounded) or a positive budget in pixel units")

    def eps(self, shape: torch.Size) -> float | None:
        """The budget for one image of ``shape`` (C, H, W); None when unbounded."""
        if self.budget == 0:
            return None
        if self.budget is not None:
            return float(self.budget)
        per_value = DEFAULT_BUDGET[self.budget_norm]
        return per_value * float(np.sqrt(np.prod(shape))) if self.budget_norm == "l2" else per_value


@dataclass
class Ascent:
    pixels: torch.Tensor  # (B, C, H, W) in [0, 1]
    values: list[list[float]]  # objective per step, per image
    frames: list[np.ndarray] = field(default_factory=list)  # first image, every few steps


class _Image:
    """The optimised image in the chosen parametrisation; ``pixels()`` gives [0, 1] pixels."""

    def __init__(self, start: torch.Tensor, reg: Regularisers):
        self.reg, self.shape = reg, start.shape
        self.colour = reg.decorrelate and start.shape[1] == 3
        x = start - 0.5
        if self.colour:
            x = torch.einsum("ij,bjhw->bihw", torch.linalg.inv(COLOUR_SQRT), x)
        if reg.param == "fourier":
            h, w = start.shape[-2:]
            fy = torch.fft.fftfreq(h)[:, None]
            fx = torch.fft.rfftfreq(w)[None, :]
            self.scale = 1.0 / torch.sqrt(fx**2 + fy**2).clamp_min(1.0 / max(h, w))
            self.scale = self.scale / self.scale.max()
            spec = torch.fft.rfft2(x, norm="ortho") / self.scale
            x = torch.view_as_real(spec)
        self.param = x.clone().requires_grad_(True)

    def pixels(self) -> torch.Tensor:
        x = self.param
        if self.reg.param == "fourier":
            x = torch.fft.irfft2(torch.view_as_complex(x) * self.scale, s=self.shape[-2:], norm="ortho")
        if self.colour:
            x = torch.einsum("ij,bjhw->bihw", COLOUR_SQRT, x)
        return (x + 0.5).clamp(0, 1)

    @torch.no_grad()
    def step(self, lr: float, norm: str | None = None) -> None:
        """A step of ``lr`` along the gradient: scaled by its mean magnitude (unbounded ascent), or PGD's steepest
        step for the budget's ``norm`` (the gradient's sign for linf, its unit vector for l2)."""
        g = self.param.grad
        if norm == "linf":
            self.param.add_(g.sign(), alpha=lr)
            return
        size = g.flatten(1).norm(dim=1) if norm == "l2" else g.abs().flatten(1).mean(1)
        self.param.add_(g / size.clamp_min(1e-20).view(-1, *[1] * (g.ndim - 1)), alpha=lr)

    @torch.no_grad()
    def set_pixels(self, pixels: torch.Tensor) -> None:
        self.param.copy_(_Image(pixels, self.reg).param)

    @torch.no_grad()
    def keep_in_range(self) -> None:
        """Pixel parameters stay inside the clamp, so they cannot drift where the gradient is zero."""
        if self.reg.param == "pixel" and not self.colour:
            self.param.clamp_(-0.5, 0.5)

    @torch.no_grad()
    def blur(self, sigma: float) -> None:
        """Blur in pixel space and write the result back into the parameters."""
        from torchvision.transforms.v2.functional import gaussian_blur

        k = max(3, int(2 * round(3 * sigma) + 1))
        self.set_pixels(gaussian_blur(self.pixels(), [k, k], [sigma, sigma]))


def ascend(
    objective: Callable[[torch.Tensor], torch.Tensor],
    start: torch.Tensor,
    steps: int,
    lr: float,
    reg: Regularisers,
    seed: int = 0,
    quiet: bool = True,
    desc: str = "ascent",
    n_frames: int = 24,
) -> Ascent:
    """Maximise ``objective(pixels in [0, 1]) -> (B,)`` from the ``start`` pixels (B, C, H, W).

    Within the budget (``reg.eps``): projected gradient ascent, steps of PGD_STEP x budget / steps, each image
    moved back into the budget ball around its start after every step. Unbounded: steps of ``lr`` along the
    gradient scaled by its mean magnitude per image (not Adam, whose per-pixel normalisation moves every pixel
    alike and so hides where the network's evidence lies).
    """
    if steps < 1 or lr <= 0:
        raise FacelabError("--steps must be at least 1 and --lr positive")
    start = start.detach().float()
    image = _Image(start, reg)
    eps = reg.eps(start.shape[1:])
    norm, lr = (None, lr) if eps is None else (reg.budget_norm, PGD_STEP * eps / steps)
    gen = torch.Generator().manual_seed(seed)
    values, frames = [], [pixels_to_uint8(start[:1])]
    every = max(1, steps // n_frames)
    with progress_bar(desc, steps, quiet) as advance:
        for step in range(steps):
            x = image.pixels()
            if reg.jitter:
                dy, dx = torch.randint(-reg.jitter, reg.jitter + 1, (2,), generator=gen).tolist()
                x = torch.roll(x, (dy, dx), dims=(-2, -1))
            value = objective(x)
            image.param.grad = None
            value.sum().backward()
            image.step(lr, norm)
            image.keep_in_range()
            if reg.blur_sigma > 0 and (step + 1) % reg.blur_every == 0:
                image.blur(reg.blur_sigma)
            if eps is not None:
                image.set_pixels(start + project(image.pixels() - start, eps, norm))
            values.append(value.detach().float().tolist())
            if (step + 1) % every == 0 or step == steps - 1:
                frames.append(pixels_to_uint8(image.pixels()[:1]))
            advance()
    return Ascent(image.pixels().detach(), values, frames)
