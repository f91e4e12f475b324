"""A task's data as training needs it: seeded subsets, validation carved from train (never from
test), and the test split alone for evaluation, parity and INT8 calibration."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from harness.data.cache import take
from harness.data.loading import load_split
from registry import ImageSplit, Task, UsageError

if TYPE_CHECKING:
    from harness.context import Context


@dataclass(frozen=True)
class TaskData:
    """The splits of one run: train (less validation), validation, test."""

    train: ImageSplit
    val: ImageSplit | None
    test: ImageSplit
    class_names: tuple[str, ...]
    num_classes: int


def subset(split: ImageSplit, limit: int | None, seed: int) -> ImageSplit:
    """A seeded random subset of ``limit`` images (the whole split when it is smaller)."""
    import torch

    if limit is None or limit >= len(split):
        return split
    index = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))[:limit]
    index, _ = index.sort()
    return ImageSplit(take(split.images, index), split.labels[index], split.class_names)


def split_train_val(train: ImageSplit, val_fraction: float, seed: int) -> tuple[ImageSplit, ImageSplit | None]:
    """Carve ``val_fraction`` of train off as validation (seeded; test is never touched)."""
    import torch

    n_val = int(len(train) * val_fraction)
    if n_val == 0:
        return train, None
    order = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed + 2))
    val_idx, train_idx = order[:n_val].sort()[0], order[n_val:].sort()[0]
    return (ImageSplit(take(train.images, train_idx), train.labels[train_idx], train.class_names),
            ImageSplit(take(train.images, val_idx), train.labels[val_idx], train.class_names))


def _classes(ctx: Context, task: Task, split: ImageSplit) -> tuple[tuple[str, ...], int]:
    dataset = ctx.catalogue.datasets.get(task.dataset)
    names = tuple(split.class_names or dataset.class_names or ())
    return names, dataset.num_classes or len(names)


def load_test_split(ctx: Context, task: Task, *, image_size: int | None, limit: int | None = None,
               seed: int = 1) -> TaskData:
    """The task's test split alone (``train`` and ``val`` are the test split too, unused)."""
    test = subset(load_split(ctx, task.dataset, "test", image_size=image_size), limit, seed)
    names, num_classes = _classes(ctx, task, test)
    return TaskData(test, None, test, names, num_classes)


def load_task_data(ctx: Context, task: Task, *, image_size: int | None, train_limit: int | None = None,
                   test_limit: int | None = None, val_fraction: float = 0.1, seed: int = 0) -> TaskData:
    """Load the task's splits once; limit them; carve validation from train with ``seed``."""
    test = load_test_split(ctx, task, image_size=image_size, limit=test_limit, seed=seed + 1)
    train = load_split(ctx, task.dataset, "train", image_size=image_size)
    train, val = split_train_val(subset(train, train_limit, seed), val_fraction, seed)
    if len(train) == 0:
        raise UsageError(f"task {task.name}: no training images left after the limit and validation split")
    return TaskData(train, val, test.test, test.class_names, test.num_classes)
