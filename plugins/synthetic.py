"""A deterministic, learnable toy dataset: tests and demos run without any download.

Each class is a coloured, oriented stripe pattern plus noise, so a small network learns it in
one epoch (accuracy well above chance), which lets end-to-end tests assert real learning.
"""

from __future__ import annotations

from registry import ImageSplit

NUM_CLASSES = 10
SIZES = {"train": 1000, "test": 300}
SEEDS = {"train": 0, "test": 1}


def load_synthetic(split: str, root: object = None, download: bool = False,
                   image_size: int | None = None) -> ImageSplit:
    import math

    import torch

    size = 32
    n = SIZES[split]
    gen = torch.Generator().manual_seed(SEEDS[split])
    labels = torch.arange(n) % NUM_CLASSES
    labels = labels[torch.randperm(n, generator=gen)]
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32),
                            torch.arange(size, dtype=torch.float32), indexing="ij")
    images = torch.empty(n, 3, size, size)
    for k in range(NUM_CLASSES):
        angle = math.pi * k / NUM_CLASSES
        stripes = torch.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 0.6)
        colour = torch.tensor([(k * 37) % 256, (k * 91) % 256, (k * 53) % 256]) / 255.0
        pattern = 0.5 + 0.25 * stripes[None] + 0.25 * (colour[:, None, None] - 0.5)
        mask = labels == k
        images[mask] = pattern
    images += 0.15 * torch.randn(images.shape, generator=gen)
    images = (images.clamp(0, 1) * 255).round().to(torch.uint8)
    return ImageSplit(images, labels.to(torch.int64), tuple(f"class_{k}" for k in range(NUM_CLASSES)))
