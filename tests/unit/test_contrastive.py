"""SimCLR pieces on tensors: views, the NT-Xent loss, and the pair accuracy used as its quality."""

from __future__ import annotations

import torch
from torch import nn

from harness.train.contrastive import Contrastive, nt_xent, pair_accuracy, two_views


def test_two_views_are_different_random_crops_of_the_same_batch_and_seeded():
    x = torch.randn(8, 3, 32, 32)
    views = two_views(x, torch.Generator().manual_seed(1))
    assert views.shape == (16, 3, 32, 32) and torch.isfinite(views).all()
    assert not torch.allclose(views[:8], views[8:])  # the two views of an image differ
    again = two_views(x, torch.Generator().manual_seed(1))
    assert torch.equal(views, again)


def test_nt_xent_is_low_when_views_agree_and_high_when_they_do_not():
    z = nn.functional.normalize(torch.randn(16, 8), dim=1)
    agree = nt_xent(torch.cat([z, z]), torch.empty(0), torch.empty(0))
    shuffled = nt_xent(torch.cat([z, z[torch.randperm(16)]]), torch.empty(0), torch.empty(0))
    assert agree < shuffled
    assert agree > 0  # other views still compete in the softmax


def test_pair_accuracy_is_perfect_for_an_encoder_that_sees_through_the_augmentations():
    class ChannelContrast(nn.Module):
        """Channel differences of flat images: crops keep them, brightness cancels, and contrast only
        scales them, which the unit projection removes; so both views of an image coincide."""

        def forward(self, x):
            return torch.stack([(x[:, 0] - x[:, 1]).mean((1, 2)), (x[:, 1] - x[:, 2]).mean((1, 2))], dim=1)

    model = Contrastive(ChannelContrast(), 2)
    model.project = nn.Identity()  # type: ignore[assignment]
    angles = torch.arange(10) * (2 * torch.pi / 10)
    d1, d2 = torch.cos(angles), torch.sin(angles)
    channels = torch.stack([d1 + d2, d2, torch.zeros(10)], dim=1)  # c0 - c1 = d1, c1 - c2 = d2
    images = channels.view(10, 3, 1, 1).expand(10, 3, 16, 16).contiguous()
    assert pair_accuracy(model, images) == 1.0
    assert model.generator is None  # the validation generator does not leak into training
