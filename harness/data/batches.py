"""Batches from a split held in memory as one uint8 tensor, augmented as whole tensors.

This replaces the classic Dataset + DataLoader + per-sample PIL transforms: the split is decoded
once (by the dataset's loader), moved to the training device once, and every batch is cropped,
flipped, resized, normalised and expanded to 3 channels with a handful of tensor operations. On
a 2-core CPU that is the difference between feeding a small network and starving it.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from harness.data.preprocess import Preprocess, augment, to_model_input


class TensorBatches:
    """Iterate (input, label) batches over in-memory uint8 images.

    ``generator`` drives shuffling and augmentation; saving its state is what makes a resumed run
    replay exactly the batches an uninterrupted one would have seen.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, pre: Preprocess,
                 device: torch.device, *, train: bool, generator: torch.Generator | None = None,
                 drop_last: bool | None = None, shard: tuple[int, int] | None = None) -> None:
        # a split that does not fit the device stays where it is (in RAM or memory-mapped); each
        # batch is copied to the device as it is taken
        fits = device.type != "cuda" or images.numel() < torch.cuda.mem_get_info(device)[0] // 4
        self.images = images.to(device) if fits else images
        self.labels = labels.to(device) if fits else labels
        self.batch_size = batch_size
        self.pre = pre
        self.device = device
        self.train = train
        self.generator = generator or torch.Generator().manual_seed(0)
        self.drop_last = train if drop_last is None else drop_last
        self.shard = shard  # (rank, world): yield this rank's slice of every (global) batch

    def __len__(self) -> int:
        n = self.labels.shape[0]
        return n // self.batch_size if self.drop_last and n >= self.batch_size else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n = self.labels.shape[0]
        where = self.images.device
        order = (torch.randperm(n, generator=self.generator).to(where) if self.train
                 else torch.arange(n, device=where))
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            images, labels = self.images[index].to(self.device), self.labels[index].to(self.device)
            if self.train:  # the whole global batch, so the generator stays in step on every rank
                images = augment(images, self.pre, self.generator)
            if self.shard is not None:
                rank, world = self.shard
                images, labels = images[rank::world], labels[rank::world]
            yield to_model_input(images, self.pre), labels
