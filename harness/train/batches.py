"""Batches from a split held in memory as one uint8 tensor, augmented as whole tensors.

This replaces the classic Dataset + DataLoader + per-sample PIL transforms: the split is decoded
once (by the dataset's loader), moved to the training device once, and every batch is cropped,
flipped, resized, normalised and expanded to 3 channels with a handful of tensor operations. On
a 2-core CPU that is the difference between feeding a small network and starving it.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


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

    def as_dict(self) -> dict[str, object]:
        return {"input_size": self.input_size, "channels": self.channels, "mean": list(self.mean),
                "std": list(self.std), "augmentation": list(self.augmentation),
                "crop_padding": self.crop_padding}


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad by ``padding`` and take one random crop of the original size per image."""
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
    flip = (torch.rand(images.shape[0], generator=generator, device=generator.device) < 0.5).to(images.device)
    return torch.where(flip[:, None, None, None], images.flip(-1), images)


def to_model_input(images: torch.Tensor, pre: Preprocess, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """uint8 (B, C, H, W) -> normalised float at ``pre.input_size`` with ``pre.channels``."""
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
    return x.to(dtype)


class TensorBatches:
    """Iterate (input, label) batches over in-memory uint8 images.

    ``generator`` drives shuffling and augmentation; saving its state is what makes a resumed run
    replay exactly the batches an uninterrupted one would have seen.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, pre: Preprocess,
                 device: torch.device, *, train: bool, generator: torch.Generator | None = None,
                 drop_last: bool | None = None) -> None:
        self.images = images.to(device)
        self.labels = labels.to(device)
        self.batch_size = batch_size
        self.pre = pre
        self.device = device
        self.train = train
        self.generator = generator or torch.Generator().manual_seed(0)
        self.drop_last = train if drop_last is None else drop_last

    def __len__(self) -> int:
        n = self.labels.shape[0]
        return n // self.batch_size if self.drop_last and n >= self.batch_size else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.labels.shape[0]
        if self.train:
            order = torch.randperm(n, generator=self.generator).to(self.device)
        else:
            order = torch.arange(n, device=self.device)
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            images = self.images[index]
            if self.train:
                if "random_crop" in self.pre.augmentation:
                    images = random_crop(images, self.pre.crop_padding, self.generator)
                if "hflip" in self.pre.augmentation:
                    images = random_hflip(images, self.generator)
            yield to_model_input(images, self.pre), self.labels[index]
