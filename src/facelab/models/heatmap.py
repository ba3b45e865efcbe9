"""Heatmap heads for keypoints, on any registered backbone.

As in Simple Baselines (Xiao et al. 2018): the backbone's last feature map is upsampled by deconvolutions to
stride 4, one map per point; a soft-argmax (integral regression, Sun et al. 2018) turns each map into the expected
(x, y), so the network still outputs relative coordinates ((x + 0.5) / W) and every loss, metric, export and figure
downstream stays as it is. ``heatmaps(x)`` gives the maps themselves (for pictures).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

HEADS = ("regress", "heatmap")
HEATMAP_STRIDE = 4
PROBE_SIDE = 64  # the input side the trunk's stride is measured at
PRIOR_SIGMA = 0.1  # of the image side: wide enough that the maps move the points freely


def log_prior(prior: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """(K, h, w): minus the weighted squared distance of each map cell's centre (relative units) from the point's prior."""
    xs = (torch.arange(w, device=prior.device, dtype=torch.float32) + 0.5) / w
    ys = (torch.arange(h, device=prior.device, dtype=torch.float32) + 0.5) / h
    dx = (xs[None, :] - prior[:, :1]) ** 2  # (K, w)
    dy = (ys[None, :] - prior[:, 1:2]) ** 2  # (K, h)
    return -prior[:, 2, None, None] * (dy[:, :, None] + dx[:, None, :])


def soft_argmax(maps: torch.Tensor) -> torch.Tensor:
    """(B, K, h, w) logits -> (B, 2K) expected relative coordinates: map cell j covers (j + 0.5) / w."""
    b, k, h, w = maps.shape
    p = F.softmax(maps.float().flatten(2), -1).view(b, k, h, w)
    xs = (torch.arange(w, device=maps.device, dtype=torch.float32) + 0.5) / w
    ys = (torch.arange(h, device=maps.device, dtype=torch.float32) + 0.5) / h
    return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1).flatten(1)


def map_target_loss(maps: torch.Tensor, coords: torch.Tensor, sigma: float = 1.0) -> torch.Tensor:
    """Cross-entropy of each point's map against a Gaussian (``sigma`` map cells) at its true position.

    The soft-argmax alone only constrains each map's mean: a map can put its mass on opposite borders and still
    average to the right place (it did: trained maps were rims, not dots). This term makes the mass sit on the point,
    so the maps show where the network thinks each point is."""
    b, k, h, w = maps.shape
    xy = coords.float().view(b, k, 2) * torch.tensor([w, h], device=maps.device, dtype=torch.float32) - 0.5  # cell units
    xs = torch.arange(w, device=maps.device, dtype=torch.float32)
    ys = torch.arange(h, device=maps.device, dtype=torch.float32)
    gx = torch.exp(-((xs - xy[..., :1]) ** 2) / (2 * sigma**2))  # (b, k, w)
    gy = torch.exp(-((ys - xy[..., 1:]) ** 2) / (2 * sigma**2))  # (b, k, h)
    target = gy[..., :, None] * gx[..., None, :]
    target = target / target.flatten(2).sum(-1).clamp_min(1e-12)[..., None, None]
    log_p = F.log_softmax(maps.float().flatten(2), -1).view(b, k, h, w)
    return -(target * log_p).flatten(2).sum(-1).mean()


def feature_trunk(model: nn.Module) -> nn.Module:
    """The convolutional part of a registered network (everything before its pooling and classifier)."""
    if hasattr(model, "features"):  # darknet64, kpnet, squeezenet, mobilenet
        return model.features
    names = ("conv1", "bn1", "relu", "maxpool", "layer1", "layer2", "layer3", "layer4")  # torchvision ResNets
    return nn.Sequential(*(getattr(model, n) for n in names))


def _upsample(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class HeatmapNet(nn.Module):
    def __init__(self, trunk: nn.Module, in_channels: int, n_points: int, width: int = 128):
        super().__init__()
        self.trunk = trunk
        with torch.no_grad():
            was_training = trunk.training
            probe = trunk.eval()(torch.zeros(1, in_channels, PROBE_SIDE, PROBE_SIDE))
            trunk.train(was_training)
        stride = PROBE_SIDE // probe.shape[-1]
        ups, c = [], probe.shape[1]
        for _ in range(max(0, int(math.log2(stride // HEATMAP_STRIDE)))):
            ups.append(_upsample(c, width))
            c = width
        self.upsample = nn.Sequential(*ups)
        self.maps = nn.Conv2d(c, n_points, 1)
        self.register_buffer("prior", torch.zeros(n_points, 3))  # per point: relative (x, y) and weight (0: no prior)

    def start_at(self, points: torch.Tensor, sigma: float = PRIOR_SIGMA) -> None:
        """Add a log-Gaussian of ``sigma`` (relative units) around ``points`` (K, 2, relative) to every map, so an untrained
        network answers these points (the training set's mean shape) and training starts from that constant."""
        with torch.no_grad():
            self.prior.copy_(torch.cat([points.float(), torch.full((len(points), 1), 1.0 / (2 * sigma**2))], 1))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.setdefault(prefix + "prior", torch.zeros_like(self.prior))  # runs saved before the prior existed
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) logits, one map per point at stride 4 (with the mean-shape prior, where one was set)."""
        maps = self.maps(self.upsample(self.trunk(x)))
        return maps + log_prior(self.prior, *maps.shape[-2:]).to(maps.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        maps = self.heatmaps(x)
        self.last_maps = maps if self.training else None  # for the training loss on the maps themselves
        return soft_argmax(maps)

    @torch.no_grad()
    def point_maps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) per-point probabilities (each map sums to 1): where the network thinks each point lies."""
        maps = self.heatmaps(x).float()
        return F.softmax(maps.flatten(2), -1).view(maps.shape)


def uncertainty_picture(point_maps: torch.Tensor) -> torch.Tensor:
    """(K, h, w) per-point probabilities -> one (h, w) map in [0, 1]: each point's map scaled to its own peak, then
    the maximum over points (sharp dots: certain points; smears: uncertain ones)."""
    peaks = point_maps.flatten(1).amax(1).clamp_min(1e-12)
    return (point_maps / peaks[:, None, None]).amax(0)
