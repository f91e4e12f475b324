"""Views of a dataset or task: a subset of its classes and a label budget per class.

Written after the name with a colon, so a shell passes it as is (square brackets would be a glob
pattern, which zsh refuses and bash may expand)::

    fashion-mnist:classes=0-4                   # the first five classes, every image
    fashion-mnist:classes=5-9,per_class=50      # the other five, 50 training images per class
    ./photos:per_class=20                       # with --data: 20 training images per class
    cifar10:classes=cat+dog,per_class=100,seed=1

``classes`` takes class indices, ranges and names joined by ``+``; ``per_class`` limits *training*
images per class (a seeded, stratified choice; the test split keeps every test image of the chosen
classes); ``seed`` picks another subset. Labels are re-indexed 0..k-1 with their names kept. A view
is a dataset and a task of its own, named ``BASE--classes-0-4--per-class-50``, so its models,
store records and select fingerprints are told apart from the base's.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from registry import Dataset, ImageSplit, Task, UsageError

KEYS = ("classes", "per_class", "seed")


@dataclass(frozen=True)
class View:
    """What a view keeps: class selectors (indices, ranges, names) and training images per class."""

    classes: tuple[str, ...] | None = None
    per_class: int | None = None
    seed: int = 0

    def text(self) -> str:
        parts = [f"classes={'+'.join(self.classes)}"] if self.classes else []
        parts += [f"per_class={self.per_class}"] if self.per_class else []
        parts += [f"seed={self.seed}"] if self.seed else []
        return ",".join(parts)

    def suffix(self) -> str:
        """The part of a view's task name after ``--`` (letters, digits and ``-`` only)."""
        return re.sub(r"[^a-z0-9]+", "-", self.text().replace(",", "--").lower()).strip("-")


def split_view(name: str) -> tuple[str, View | None]:
    """``("fashion-mnist", View(...))`` from ``fashion-mnist:classes=0-4``; no view without ``=``."""
    base, sep, rest = name.rpartition(":")
    if not sep or "=" not in rest or not base:
        return name, None
    fields: dict[str, str] = {}
    for part in rest.split(","):
        key, eq, value = part.partition("=")
        key = key.strip().replace("-", "_")
        if not eq or key not in KEYS or not value.strip():
            raise UsageError(f"bad view {rest!r} in {name!r}: use classes=0-4+7, per_class=N and seed=N, joined by "
                             "commas (e.g. fashion-mnist:classes=0-4,per_class=50)")
        fields[key] = value.strip()
    try:
        per_class = int(fields["per_class"]) if "per_class" in fields else None
        seed = int(fields.get("seed", 0))
    except ValueError:
        raise UsageError(f"bad view {rest!r}: per_class and seed are whole numbers") from None
    if per_class is not None and per_class < 1:
        raise UsageError(f"bad view {rest!r}: per_class must be at least 1")
    classes = tuple(c for c in fields["classes"].split("+") if c) if "classes" in fields else None
    return base, View(classes, per_class, seed)


def chosen_classes(view: View, names: tuple[str, ...]) -> list[int]:
    """The class indices ``view`` keeps, in the base's order; unknown selectors are refused."""
    if not view.classes:
        return list(range(len(names)))
    keep: set[int] = set()
    for selector in view.classes:
        low, dash, high = selector.partition("-")
        if low.isdigit() and (not dash or high.isdigit()):
            first, last = int(low), int(high) if dash else int(low)
            if not 0 <= first <= last < len(names):
                raise UsageError(f"view classes={selector}: the dataset has classes 0-{len(names) - 1}")
            keep.update(range(first, last + 1))
        elif selector in names:
            keep.add(names.index(selector))
        else:
            raise UsageError(f"view classes: no class {selector!r}; classes are 0-{len(names) - 1} or "
                             f"{', '.join(names[:10])}")
    if len(keep) < 2:
        raise UsageError("a view needs at least 2 classes")
    return sorted(keep)


def apply(view: View, split: str, data: ImageSplit, names: tuple[str, ...]) -> ImageSplit:
    """The view of one decoded split: chosen classes re-indexed; ``per_class`` on train only."""
    import torch

    keep = chosen_classes(view, names)
    remap = torch.full((len(names),), -1, dtype=torch.int64)
    remap[keep] = torch.arange(len(keep))
    new = remap[data.labels]
    rows = (new >= 0).nonzero().flatten()
    if view.per_class and split == "train":
        generator = torch.Generator().manual_seed(view.seed)
        picked = []
        for k in range(len(keep)):
            members = rows[new[rows] == k]
            picked.append(members[torch.randperm(len(members), generator=generator)[:view.per_class]])
        rows = torch.cat(picked).sort()[0]
    return ImageSplit(data.images[rows], new[rows], tuple(names[k] for k in keep))


class ViewLoader:
    """The loader of a view's dataset: the base's loader, then :func:`apply`."""

    def __init__(self, base: Dataset, view: View, names: tuple[str, ...]) -> None:
        self.base, self.view, self.names = base, view, names

    def __call__(self, split: str, root: Any, download: bool = False, image_size: int | None = None) -> ImageSplit:
        data = self.base.loader(split, root, download=download, image_size=image_size)
        return apply(self.view, split, data, tuple(data.class_names or self.names))

    def cache_token(self) -> str | None:
        token = getattr(self.base.loader, "cache_token", None)
        return token() if token else None


def view_dataset(base_dataset: Dataset, view: View, name: str) -> Dataset:
    """The dataset entry of ``view`` over ``base_dataset``, called ``name``."""
    import dataclasses

    names = tuple(base_dataset.class_names or ())
    if not names:
        raise UsageError(f"dataset {base_dataset.name} does not name its classes, so it cannot be viewed")
    keep = chosen_classes(view, names)
    return dataclasses.replace(base_dataset, name=name, loader=ViewLoader(base_dataset, view, names),
                               num_classes=len(keep), class_names=tuple(names[k] for k in keep), plugin=None,
                               description=f"view {view.text()} of {base_dataset.name}")


def view_entries(base_task: Task, base_dataset: Dataset, view: View) -> tuple[Dataset, Task]:
    """The dataset and task of ``view`` over ``base_task``."""
    import dataclasses

    name = f"{base_task.name}--{view.suffix()}"
    dataset = view_dataset(base_dataset, view, name)
    task = dataclasses.replace(base_task, name=name, dataset=name, plugin=None,
                               description=f"view {view.text()} of task {base_task.name}: {base_task.description}")
    return dataset, task


def register_view(ctx: Any, base: str, view: View) -> str:
    """Add the view of task (or, failing that, dataset) ``base`` to ``ctx``'s catalogue; returns its
    name (a view of a task is a task and a dataset of that name; of a dataset, a dataset)."""
    from registry import PluginInfo

    catalogue = ctx.catalogue
    info = PluginInfo("view", None, None)
    if base not in catalogue.tasks and base in catalogue.datasets:
        base_dataset = catalogue.datasets.get(base)
        dataset = view_dataset(base_dataset, view, f"{base}--{view.suffix()}")
        if dataset.name not in catalogue.datasets:
            catalogue.datasets.add(dataset, info)
        return dataset.name
    base_task = catalogue.task(base)
    dataset, task = view_entries(base_task, catalogue.datasets.get(base_task.dataset), view)
    if task.name not in catalogue.tasks:
        catalogue.datasets.add(dataset, info)
        catalogue.tasks.add(task, info)
        ctx.progress.info(f"task {task.name!r}: {view.text()} of {base} ({dataset.num_classes} classes)")
    return task.name


def view_chain(ctx: Any, task: str) -> tuple[str, list[str]]:
    """How task ``task`` was made from a registered one: ``(base, [view texts, innermost first])``
    (no views: ``(task, [])``), so another process can rebuild it with :func:`replay_views`."""
    texts: list[str] = []
    name = task
    while True:
        entry = ctx.catalogue.tasks.get(name)
        loader = ctx.catalogue.datasets.get(entry.dataset).loader
        if not isinstance(loader, ViewLoader):
            return name, texts[::-1]
        texts.append(loader.view.text())
        name = name[: -len(f"--{loader.view.suffix()}")]


def replay_views(ctx: Any, base: str, texts: list[str]) -> str:
    """Register the views ``texts`` over ``base`` in order; returns the last one's task name."""
    name = base
    for text in texts:
        _, view = split_view(f"{name}:{text}")
        assert view is not None
        name = register_view(ctx, name, view)
    return name
