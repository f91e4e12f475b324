"""Contrastive self-supervised pretraining: SimCLR (Chen et al., ICML 2020), sized for small images.

Every image of a batch is augmented twice (random resized crop, horizontal flip, brightness and
contrast jitter, all as batched tensor operations on the device); the backbone (head removed) and
a small projection MLP map both views to unit vectors, and the NT-Xent loss pulls each image's two
views together against every other view in the batch. Labels are never read, so the source can be
the target's own unlabelled images. Quality is measured on validation images as the fraction whose
second view's nearest neighbour among all views is its own first view (higher is better), the
pretraining score recorded for this method.
"""

from __future__ import annotations

import torch
from torch import nn

TEMPERATURE = 0.5
"""NT-Xent temperature; SimCLR's small-batch setting (0.5 worked best at batch 256 in the paper)."""


def two_views(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """``x`` (B, C, H, W, normalised) -> (2B, C, H, W): two random views of every image, stacked."""
    return torch.cat([_view(x, generator), _view(x, generator)])


def _rand(n: int, low: float, high: float, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) * (high - low) + low).to(device)


def _view(x: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    """Random resized crop (area 0.35-1, aspect 3:4-4:3), flip, brightness/contrast jitter."""
    n, dev = x.shape[0], x.device
    area = _rand(n, 0.35, 1.0, generator, dev)
    aspect = torch.exp(_rand(n, -0.2877, 0.2877, generator, dev))  # log(3/4) .. log(4/3)
    sx, sy = (area * aspect).sqrt().clamp(max=1.0), (area / aspect).sqrt().clamp(max=1.0)
    flip = torch.where(_rand(n, 0, 1, generator, dev) < 0.5, -1.0, 1.0)
    tx, ty = (1 - sx) * _rand(n, -1, 1, generator, dev), (1 - sy) * _rand(n, -1, 1, generator, dev)
    theta = torch.zeros(n, 2, 3, device=dev)
    theta[:, 0, 0], theta[:, 0, 2], theta[:, 1, 1], theta[:, 1, 2] = sx * flip, tx, sy, ty
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = nn.functional.grid_sample(x.float(), grid.to(x.dtype if x.is_floating_point() else torch.float32),
                                    mode="bilinear", padding_mode="reflection", align_corners=False)
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    contrast = _rand(n, 0.6, 1.4, generator, dev).view(n, 1, 1, 1)
    brightness = _rand(n, -0.4, 0.4, generator, dev).view(n, 1, 1, 1)
    return ((out - mean) * contrast + mean + brightness).to(x.dtype).contiguous(memory_format=torch.channels_last)


class Contrastive(nn.Module):
    """Backbone encoder + projection head; ``forward`` returns unit projections of two views."""

    def __init__(self, encoder: nn.Module, feature_dim: int, projection: int = 64) -> None:
        super().__init__()
        self.encoder = encoder
        self.project = nn.Sequential(nn.Linear(feature_dim, 256), nn.ReLU(inplace=True), nn.Linear(256, projection))
        self.generator: torch.Generator | None = None  # set for a deterministic validation pass

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        views = two_views(x, self.generator)
        return nn.functional.normalize(self.project(torch.flatten(self.encoder(views), 1)).float(), dim=1)


def nt_xent(outputs: torch.Tensor, inputs: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SimCLR's loss over the 2B unit projections (first half and second half are pairs)."""
    n = outputs.shape[0] // 2
    sim = outputs @ outputs.T / TEMPERATURE
    sim.fill_diagonal_(-float("inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(outputs.device)
    return nn.functional.cross_entropy(sim, partner)


@torch.no_grad()
def pair_accuracy(model: Contrastive, images: torch.Tensor, seed: int = 0) -> float:
    """Fraction of views whose nearest other view is their partner (``images`` normalised, one batch)."""
    model.eval()
    model.generator = torch.Generator().manual_seed(seed)
    try:
        z = model(images)
    finally:
        model.generator = None
    n = z.shape[0] // 2
    sim = z @ z.T
    sim.fill_diagonal_(-float("inf"))
    partner = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return float((sim.argmax(1) == partner).float().mean())
