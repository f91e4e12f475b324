"""How raw uint8 images become model input, decided in one place.

:func:`resolve_preprocess` is the only function that decides a model's input size, channels,
mean/std and augmentation; training, evaluation, export, parity, benchmarks and prescreens all
call it, so a model is always fed the way it was trained. :func:`to_model_input` and the
augmentations work on whole uint8 batches as tensor operations (no PIL in the loop).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch

    from harness.models.sources import ModelSource



@dataclass(frozen=True)
class Preprocess:
    """How raw uint8 images become model input: size, channels, mean/std, augmentation."""

    input_size: int
    channels: int = 3
    mean: Sequence[float] = (0.485, 0.456, 0.406)
    std: Sequence[float] = (0.229, 0.224, 0.225)
    augmentation: tuple[str, ...] = ()
    crop_padding: int = 4
    channels_last: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {"input_size": self.input_size, "channels": self.channels, "mean": list(self.mean),
                "std": list(self.std), "augmentation": list(self.augmentation),
                "crop_padding": self.crop_padding}


def resolve_preprocess(source: ModelSource, size: int | None = None, *, default_size: int | None = None,
                       augmentation: Sequence[str] = (), crop_padding: int = 4,
                       channels_last: bool = True) -> Preprocess:
    """The preprocessing for ``source``.

    Input size, first that applies: ``size`` (a training protocol or an explicit request); the size
    the model was trained at (its recorded preprocessing); ``default_size`` (the task's, when
    evaluating a model that records none); the weight tag's; the backbone's. Fixed-size backbones
    (ViT) always get their own size, and no size goes below the backbone's minimum. Mean and std
    come from the recorded preprocessing, else the weight tag, else the backbone.
    """
    backbone, tag = source.backbone, source.tag
    recorded = source.preprocess or {}
    tag_size = tag.input_size if tag is not None else None
    chosen = size or recorded.get("input_size") or default_size or tag_size or backbone.input_size
    if backbone.fixed_input_size:
        chosen = tag_size or backbone.input_size
    mean = recorded.get("mean") or (tag.mean if tag is not None and tag.mean else None) or backbone.mean
    std = recorded.get("std") or (tag.std if tag is not None and tag.std else None) or backbone.std
    return Preprocess(input_size=max(int(chosen), backbone.min_input_size),
                      channels=int(recorded.get("channels", backbone.channels)), mean=tuple(mean), std=tuple(std),
                      augmentation=tuple(augmentation), crop_padding=crop_padding, channels_last=channels_last)


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and take one random crop of the original size per image."""
    import torch
    import torch.nn.functional as F

    if padding <= 0:
        return images
    b, _, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    ys = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=generator.device)
    xs = torch.randint(0, 2 * padding + 1, (b,), generator=generator, device=generator.device)
    ys, xs = ys.to(images.device), xs.to(images.device)
    rows = (ys[:, None] + torch.arange(h, device=images.device))[:, :, None]  # (B, H, 1)
    cols = (xs[:, None] + torch.arange(w, device=images.device))[:, None, :]  # (B, 1, W)
    batch = torch.arange(b, device=images.device)[:, None, None]
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)


def random_hflip(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    import torch

    flip = (torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def augment(images: torch.Tensor, pre: Preprocess, generator: torch.Generator) -> torch.Tensor:
    """Apply ``pre.augmentation`` to a uint8 batch, in a fixed order (crop, then flip)."""
    if "random_crop" in pre.augmentation:
        images = random_crop(images, pre.crop_padding, generator)
    if "hflip" in pre.augmentation:
        images = random_hflip(images, generator)
    return images


def to_model_input(images: torch.Tensor, pre: Preprocess, dtype: torch.dtype | None = None) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float at ``pre.input_size`` with ``pre.channels``."""
    import torch
    import torch.nn.functional as F

    x = images.to(dtype=torch.float32).div_(255.0)
    if x.shape[-1] != pre.input_size or x.shape[-2] != pre.input_size:
        x = F.interpolate(x, size=(pre.input_size, pre.input_size), mode="bilinear",
                          align_corners=False, antialias=x.shape[-1] > pre.input_size)
    if x.shape[1] == 1 and pre.channels == 3:
        x = x.expand(-1, 3, -1, -1)
    elif x.shape[1] == 3 and pre.channels == 1:
        x = x.mean(dim=1, keepdim=True)
    mean = torch.tensor(pre.mean, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    std = torch.tensor(pre.std, device=x.device, dtype=x.dtype).view(1, -1, 1, 1)
    x = (x - mean) / std
    if pre.channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    return x.to(dtype or torch.float32)
