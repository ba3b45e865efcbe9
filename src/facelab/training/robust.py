"""Adversarial training (``--robust EPS``): each training batch is replaced by its worst case within a small budget,
found by one signed-gradient step from a random start (Wong, Rice and Kolter 2020, "Fast is better than free").
Networks trained so answer to features people see, not to imperceptible patterns, which makes their edits and
activation maximisations look like faces rather than noise (Santurkar et al. 2019)."""

from __future__ import annotations

import torch

NORMS = ("linf", "l2")
STEP = 1.25  # the step, in budgets: Wong et al.'s alpha = 1.25 eps


def perturbed(loss_of, x: torch.Tensor, eps: float, norm: str, gen: torch.Generator) -> torch.Tensor:
    """``x`` moved within ``eps`` (in ``x``'s own units; ``norm`` linf per value, l2 per image) toward a higher
    ``loss_of(x)``: a random start in the ball, one gradient step of 1.25 ``eps``, projected back into the ball."""
    start = torch.rand(x.shape, generator=gen).to(x.device, x.dtype) * 2 - 1
    delta = start * eps if norm == "linf" else _onto_ball(start, eps * torch.rand(x.shape[0], generator=gen).to(x.device))
    delta.requires_grad_(True)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(loss_of(x + delta), delta)
    with torch.no_grad():
        if norm == "linf":
            delta = (delta + STEP * eps * grad.sign()).clamp_(-eps, eps)
        else:
            delta = _within(delta + STEP * eps * _unit(grad), eps)
    return (x + delta).detach()


def _norms(v: torch.Tensor) -> torch.Tensor:
    return v.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, *([1] * (v.dim() - 1)))


def _unit(v: torch.Tensor) -> torch.Tensor:
    return v / _norms(v)


def _onto_ball(v: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    return _unit(v) * radius.view(-1, *([1] * (v.dim() - 1)))


def _within(v: torch.Tensor, eps: float) -> torch.Tensor:
    return v * (eps / _norms(v)).clamp(max=1.0)
