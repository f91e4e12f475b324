"""A task's data as training needs it: seeded subsets, a stratified validation split carved from
train (never from test), and the test split alone for evaluation, parity and INT8 calibration.

Validation is drawn from the *whole* training split before ``train_limit`` takes its subset of the
rest: a quick budget that trains on 12,000 of Fashion-MNIST's 60,000 images still validates on
6,000 (10%), so the choice between candidates rests on an interval of about +-0.7 points rather
than +-1.5. Every split keeps the ids (row numbers in the dataset's split) of its images, so a score
can say exactly which images it was computed on (:class:`~harness.predictions.stored.EvalSet`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from harness.data.cache import is_mapped, mapped_note, take
from harness.data.loading import load_split
from registry import ImageSplit, Task, UsageError

if TYPE_CHECKING:
    from harness.context import Context


@dataclass(frozen=True)
class TaskData:
    """The splits of one run: train (less validation), validation, test, and where they came from.

    ``val_ids``/``test_ids`` are the row numbers of those images in the dataset's train/test split;
    ``train_size``/``test_size`` the sizes of those whole splits."""

    train: ImageSplit
    val: ImageSplit | None
    test: ImageSplit
    class_names: tuple[str, ...]
    num_classes: int
    dataset: str = ""
    val_ids: Any = None
    test_ids: Any = None
    train_size: int = 0
    test_size: int = 0


def sample_index(n: int, limit: int | None, seed: int) -> Any:
    """Sorted row numbers of a seeded random subset of ``limit`` of ``n`` rows (all when it is smaller)."""
    import torch

    if limit is None or limit >= n:
        return torch.arange(n)
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:limit].sort()[0]


def subset(split: ImageSplit, limit: int | None, seed: int) -> ImageSplit:
    """A seeded random subset of ``limit`` images (the whole split when it is smaller)."""
    if limit is None or limit >= len(split):
        return split
    index = sample_index(len(split), limit, seed)
    return ImageSplit(take(split.images, index), split.labels[index], split.class_names)


def stratified_val_index(labels: Any, fraction: float, seed: int, limit: int | None = None) -> tuple[Any, Any]:
    """(train rows, validation rows), sorted: ``fraction`` of each class (at most ``limit`` in all,
    spread over classes in proportion) goes to validation, seeded. A class too small to give one image
    gives none, so validation never takes a class's last training images."""
    import torch

    n = int(labels.shape[0])
    n_val = int(n * fraction)
    if limit is not None:
        n_val = min(n_val, limit)
    if n_val == 0:
        return torch.arange(n), torch.arange(0)
    generator = torch.Generator().manual_seed(seed + 2)
    order = torch.randperm(n, generator=generator)
    shuffled = labels[order]
    chosen = []
    for cls in torch.unique(labels).tolist():
        rows = order[shuffled == cls]
        k = round(len(rows) * n_val / n)
        if k >= len(rows):
            k = len(rows) - 1
        chosen.append(rows[:k])
    val = torch.cat(chosen).sort()[0] if chosen else torch.arange(0)
    keep = torch.ones(n, dtype=torch.bool)
    keep[val] = False
    return torch.arange(n)[keep], val


def split_train_val(train: ImageSplit, val_fraction: float, seed: int) -> tuple[ImageSplit, ImageSplit | None]:
    """Carve a stratified ``val_fraction`` of train off as validation (seeded; test is never touched)."""
    rest, val = stratified_val_index(train.labels, val_fraction, seed)
    if not len(val):
        return train, None
    return (ImageSplit(take(train.images, rest), train.labels[rest], train.class_names),
            ImageSplit(take(train.images, val), train.labels[val], train.class_names))


def _classes(ctx: Context, task: Task, split: ImageSplit) -> tuple[tuple[str, ...], int]:
    dataset = ctx.catalogue.datasets.get(task.dataset)
    names = tuple(split.class_names or dataset.class_names or ())
    return names, dataset.num_classes or len(names)


def load_test_split(ctx: Context, task: Task, *, image_size: int | None, limit: int | None = None,
                    seed: int = 1) -> TaskData:
    """The task's test split alone (``train`` and ``val`` are the test split too, unused)."""
    whole = load_split(ctx, task.dataset, "test", image_size=image_size)
    index = sample_index(len(whole), limit, seed)
    test = ImageSplit(take(whole.images, index), whole.labels[index], whole.class_names)  # all rows: no copy
    names, num_classes = _classes(ctx, task, test)
    return TaskData(test, None, test, names, num_classes, task.dataset, None, index, 0, len(whole))


def load_task_data(ctx: Context, task: Task, *, image_size: int | None, train_limit: int | None = None,
                   test_limit: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                   val_limit: int | None = None) -> TaskData:
    """Load the task's splits once; validation first (stratified, from the whole train split, at most
    ``val_limit``), then ``train_limit`` images of the rest; ``seed`` draws both."""
    test = load_test_split(ctx, task, image_size=image_size, limit=test_limit, seed=seed + 1)
    whole = load_split(ctx, task.dataset, "train", image_size=image_size)
    rest, val_ids = stratified_val_index(whole.labels, val_fraction, seed, val_limit)
    rest = rest[sample_index(len(rest), train_limit, seed)]
    if len(rest) == 0:
        raise UsageError(f"task {task.name}: no training images left after the limit and validation split")
    train = ImageSplit(take(whole.images, rest), whole.labels[rest], whole.class_names)
    val = ImageSplit(take(whole.images, val_ids), whole.labels[val_ids], whole.class_names) if len(val_ids) else None
    if is_mapped(train.images):
        ctx.progress.info(mapped_note(task.dataset, train.images))
    return TaskData(train, val, test.test, test.class_names, test.num_classes, task.dataset,
                    val_ids if val is not None else None, test.test_ids, len(whole), test.test_size)


def split_sizes(ctx: Context, task: Task, *, image_size: int | None, train_limit: int | None = None,
                test_limit: int | None = None, val_fraction: float = 0.1, seed: int = 0,
                val_limit: int | None = None) -> tuple[int, int, int, int]:
    """(train, validation, test images, classes) that :func:`load_task_data` would give with these
    arguments, without copying any images (select's estimate needs the counts only)."""
    whole = load_split(ctx, task.dataset, "train", image_size=image_size)
    rest, val_ids = stratified_val_index(whole.labels, val_fraction, seed, val_limit)
    n_test = len(load_split(ctx, task.dataset, "test", image_size=image_size))
    _, num_classes = _classes(ctx, task, whole)
    return (len(rest) if train_limit is None else min(train_limit, len(rest)), len(val_ids),
            n_test if test_limit is None else min(test_limit, n_test), num_classes)
