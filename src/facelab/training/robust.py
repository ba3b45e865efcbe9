"""Adversarial training (``--robust EPS``): each training batch is replaced by its worst case within a small budget,
found by one signed-gradient step from a random start (Wong, Rice and Kolter 2020, "Fast is better than free").
Networks trained so answer to features people see, not to imperceptible patterns, which makes their edits and
activation maximisations look like faces rather than noise (Santurkar et al. 2019)."""

from __future__ import annotations

import torch

NORMS = ("linf", "l2")
STEP = 1.25  # the single step, in budgets: Wong et al.'s alpha = 1.25 eps
PGD_STEP = 2.5  # several steps: each 2.5 x eps / steps (Madry et al. 2018)


def perturbed(loss_of, x: torch.Tensor, eps: float, norm: str, gen: torch.Generator, steps: int = 1) -> torch.Tensor:
    """``x`` moved within ``eps`` (in ``x``'s own units; ``norm`` linf per value, l2 per image) toward a higher
    ``loss_of(x)``, from a random start in the ball: one step of 1.25 ``eps`` (``steps`` 1, Wong et al.'s fast
    adversarial training) or ``steps`` steps of 2.5 ``eps`` / ``steps`` (PGD, Madry et al.), each projected back
    into the ball; steepest ascent for the norm (the gradient's sign for linf, its direction for l2)."""
    start = torch.rand(x.shape, generator=gen).to(x.device, x.dtype) * 2 - 1
    delta = start * eps if norm == "linf" else _unit(start) * _per_image(eps * torch.rand(x.shape[0], generator=gen).to(x.device), x)
    alpha = STEP * eps if steps == 1 else PGD_STEP * eps / steps
    for _ in range(steps):
        delta.requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(loss_of(x + delta), delta)
        with torch.no_grad():
            delta = project(delta + alpha * (grad.sign() if norm == "linf" else _unit(grad)), eps, norm)
    return (x + delta).detach()


def norm_of(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per image (B,): the L2 norm over all its values, or (linf) the largest absolute value."""
    flat = delta.flatten(1)
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(1)


def project(delta: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """``delta`` moved back inside the budget ball of radius ``eps`` (per image)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    return delta * _per_image((eps / norm_of(delta, "l2").clamp_min(1e-12)).clamp(max=1.0), delta)


def _per_image(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    return values.view(-1, *([1] * (like.dim() - 1)))


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / _per_image(norm_of(v, "l2").clamp_min(1e-12), v)
