"""Tasks made from a user's data (``--data``, ``harness task add``, ``--task FILE.toml``), without a
plugin: a dataset entry whose loader decodes the source, and a task whose protocol is derived from
the data (input size from the images, budgets from their number).

A saved task is a small TOML file under ``$HARNESS_HOME/tasks/`` holding the source and what was
derived when it was added (so listing tasks never walks the folder again). The built-in plugin
``plugins.saved_tasks`` registers those files, and the tasks of this process's ``--data``
(passed to child processes in ``HARNESS_DATA_TASKS``), like any plugin's entries.
"""

from __future__ import annotations

import json
import os
import re
import statistics
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomllib

from harness.data.sources import DataSpec, Source, describe, image_sizes, open_source
from registry import Budget, DataError, Dataset, ImageSplit, Protocol, Task, UsageError

ENV = "HARNESS_DATA_TASKS"
QUALITY = ("accuracy", "macro_f1", "top5_accuracy", "ece")
SMALL_CANDIDATES = ("cifar_convnet_xs", "cifar_resnet8", "cifar_convnet_s", "cifar_resnet20")
PRETRAINED = ("resnet18.tv_in1k", "mobilenet_v3_small.tv_in1k")
QUICK_MAX_SIZE = 32
"""The quick budget trains at most at this size: the small CIFAR-style nets it tries are made for
32 px, and on 3,000 garment photos of 80-130 px, 15 epochs at 32 px gave 0.81 test accuracy in 52 s
where 10 epochs at 48 px gave 0.74 in more time (standard/full use the data's own size)."""
QUICK_PASSES = 24_000
"""Images the quick budget trains each candidate on (epochs x training images, 2 to 30 epochs):
~375 steps of 64, so a quick run's time depends on the number of candidates, not on the size of
the folder (32,000 took 297-319 s for the four nets on 3,000 photos on 2 cores with other work
running: over the 5 minutes a quick screen should take)."""


@dataclass(frozen=True)
class TaskSpec:
    """A task from data: its name, source, and what was derived from the data (or overridden)."""

    name: str
    data: DataSpec
    input_size: int
    class_names: tuple[str, ...]
    train_images: int
    metrics: tuple[str, ...] = QUALITY
    candidates: tuple[str, ...] | None = None
    notes: tuple[str, ...] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        data = {"name": self.name, "data": self.data.as_dict(), "input_size": self.input_size,
                "class_names": list(self.class_names), "train_images": self.train_images,
                "metrics": list(self.metrics)}
        if self.candidates is not None:
            data["candidates"] = list(self.candidates)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TaskSpec:
        try:
            return cls(name=str(data["name"]), data=DataSpec(**data["data"]), input_size=int(data["input_size"]),
                       class_names=tuple(data["class_names"]), train_images=int(data["train_images"]),
                       metrics=tuple(data.get("metrics", QUALITY)),
                       candidates=tuple(data["candidates"]) if data.get("candidates") else None)
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"not a harness task file ({type(exc).__name__}: {exc}); make one with 'harness task add'"
                            ) from None


def slug(text: str) -> str:
    """A task name from a folder or file name: lower case, ``[a-z0-9-]``."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")
    return name if name and name[0].isalpha() else f"data-{name or 'set'}"


def default_name(uri: str, data: DataSpec | None = None) -> str:
    """The task name of ``--data uri``: the folder's or file's name, with the options that change
    what the data gives (``photos-label-depth-2``), so models of two readings never share a name."""
    if uri.startswith("hf:"):
        base = slug(uri[3:].rstrip("/").rsplit("/", 1)[-1])
    else:
        path = Path(uri).expanduser().resolve()
        base = slug(path.stem if path.is_file() else path.name)
    options = _options(data) if data is not None else []
    return slug("-".join([base, *options])) if options else base


def data_flags(data: DataSpec) -> str:
    """The command-line flags that name ``data`` again: ``--data /x/photos --label-depth 2``."""
    import shlex

    default = DataSpec(data.uri).as_dict()
    words = ["--data", data.uri]
    for key, value in data.as_dict().items():
        if key != "uri" and default.get(key) != value:
            words += [f"--{key.replace('_', '-')}", str(value)]
    return shlex.join(words)


def _options(data: DataSpec) -> list[str]:
    """``["label_depth 2"]``: the options of ``data`` that differ from their defaults."""
    default = DataSpec(data.uri).as_dict()
    return [f"{k} {v}" for k, v in data.as_dict().items() if k != "uri" and default.get(k) != v]


def derived_size(source: Source) -> int:
    """The side to train at: the images' median shorter side, rounded to 16, within 32..224."""
    sizes = image_sizes(source)
    if not sizes:
        raise DataError(f"{source.location}: none of the sampled images could be opened; run 'harness data check'")
    side = statistics.median(min(w, h) for w, h in sizes)
    return int(min(224, max(32, round(side / 16) * 16)))


def make_spec(name: str, data: DataSpec, *, input_size: int | None = None, metrics: tuple[str, ...] | None = None,
              candidates: tuple[str, ...] | None = None) -> TaskSpec:
    """Open the source (every data problem surfaces here) and derive the task."""
    source = open_source(data)
    size = input_size or derived_size(source)
    return TaskSpec(name=name, data=data, input_size=size, class_names=source.class_names,
                    train_images=source.count("train") + source.count("val"), metrics=metrics or QUALITY,
                    candidates=candidates, notes=tuple(describe(source)))


def quick_epochs(train_images: int, train_limit: int = 12_000) -> int:
    """Epochs of the quick budget: :data:`QUICK_PASSES` image passes over the images it trains on
    (at most ``train_limit``, less the tenth that validation takes), between 2 and 30."""
    trained = max(1, int(min(train_images * 0.9, train_limit)))
    return max(2, min(30, round(QUICK_PASSES / trained)))


def protocol(spec: TaskSpec) -> Protocol:
    """Budgets scaled to the number of training images; CIFAR-style nets at small sizes."""
    n = spec.train_images
    batch = max(8, min(64, n // 10))
    epochs = quick_epochs(n)
    small = spec.candidates or SMALL_CANDIDATES + PRETRAINED
    large = spec.candidates or ("resnet18", "mobilenet_v3_small", *PRETRAINED)
    quick_size = min(spec.input_size, QUICK_MAX_SIZE)
    return Protocol(
        input_size=spec.input_size, augmentation=("random_crop", "hflip"),
        crop_padding=max(2, spec.input_size // 8),
        budgets={"quick": Budget(epochs=epochs, batch_size=batch, lr=0.1 if batch >= 32 else 0.05,
                                 train_limit=12_000, test_limit=None, input_size=quick_size,
                                 augmentation=("hflip",), candidates=small),
                 "standard": Budget(epochs=30, batch_size=min(128, max(8, n // 10)), lr=0.1),
                 "full": Budget(epochs=100, batch_size=min(128, max(8, n // 10)), lr=0.1)},
        candidates=small if spec.input_size <= QUICK_MAX_SIZE else large)


def data_label(data: DataSpec) -> str:
    """The source and every option that changes what it gives (``./photos, label_depth 2``): two
    readings of one folder with other options are two tasks, never one reused for the other."""
    return ", ".join([data.uri, *_options(data)])


def entries(spec: TaskSpec) -> tuple[Dataset, Task]:
    """The dataset and task entries of ``spec`` (nothing is decoded until the loader runs)."""
    where = data_label(spec.data)
    dataset = Dataset(name=spec.name, loader=SourceLoader(spec), num_classes=len(spec.class_names),
                      class_names=spec.class_names, splits=("train", "test"), image_size=spec.input_size,
                      channels=3, license="yours", description=f"your data: {where}")
    task = Task(name=spec.name, dataset=spec.name, metrics=spec.metrics, protocol=protocol(spec),
                description=f"your data: {where} ({len(spec.class_names)} classes, "
                            f"{spec.train_images} training images)")
    return dataset, task


class SourceLoader:
    """A data task's loader; :meth:`cache_token` changes when the data does (file list, sizes and
    modification times; a HF dataset's fingerprint), so decoded splits kept in a process are never
    served for changed files."""

    def __init__(self, spec: TaskSpec) -> None:
        self.spec = spec

    def __call__(self, split: str, root: Path, download: bool = False, image_size: int | None = None) -> ImageSplit:
        return load_split(self.spec, split, root, download, image_size)

    def cache_token(self) -> str:
        source = open_source(self.spec.data)
        return _identity(source, [entry for _, items in sorted(source.splits.items()) for entry in items])


def load_split(spec: TaskSpec, split: str, root: Path, download: bool = False,
               image_size: int | None = None) -> ImageSplit:
    """Decode ``split`` of the task's source (``val`` images count as training data here: the
    engine carves its own validation split) at ``image_size``, in parallel."""
    import torch

    from harness.data.cache import decoded, key_of
    from harness.data.decode import decode_all
    from harness.environment import use_threads

    source = open_source(spec.data)
    if source.class_names != spec.class_names:
        raise DataError(f"the classes of {spec.data.uri} changed since task {spec.name!r} was made "
                        f"({len(spec.class_names)} then, {len(source.class_names)} now); run 'harness task add "
                        f"{spec.name} --data {spec.data.uri} --force' to update it")
    items = source.splits.get(split, []) + (source.splits.get("val", []) if split == "train" else [])
    if not items:
        raise DataError(f"{spec.data.uri}: no {split} images")
    size = image_size or spec.input_size
    key = key_of(spec.data.as_dict(), split, size, _identity(source, items))
    paths = [item for item, _ in items]
    workers = use_threads()  # --threads/HARNESS_THREADS, else the CPU quota and affinity
    pixels = decoded(key, len(items), size, lambda array: decode_all(source, paths, size, out=array, workers=workers))
    labels = torch.tensor([label for _, label in items], dtype=torch.int64)
    return ImageSplit(pixels, labels, spec.class_names)


def _identity(source: Source, items: list[tuple[Any, int]]) -> str:
    """What the decoded pixels depend on: each file's path, size and modification time (a HF
    dataset's fingerprint), and the labels' order."""
    import hashlib

    digest = hashlib.sha256(source.fingerprint.encode())
    for item, label in items:
        if isinstance(item, Path):  # os.fsencode: any file name, valid UTF-8 or not
            stat = item.stat()
            digest.update(os.fsencode(item) + f"|{label}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
        else:
            digest.update(f"{item}|{label}\n".encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def decode_check(ctx: Any, spec: TaskSpec) -> str:
    """Decode every image of ``spec`` once, at the quick budget's size, into the decoded cache (so
    the first quick select starts without decoding); a file that does not decode is a DataError
    naming it. Returns the line that says what was checked."""
    import time

    size = protocol(spec).budgets["quick"].input_size or spec.input_size
    started = time.perf_counter()
    counts = [len(load_split(spec, split, Path("."), image_size=size).labels) for split in ("train", "test")]
    return (f"decoded all {sum(counts):,} images at {size}px in {time.perf_counter() - started:.1f}s "
            "(kept in the decoded cache)")


# -- saved tasks ---------------------------------------------------------------------------------


def tasks_dir(home: Path | None = None) -> Path:
    from registry.store import default_home

    return (home or default_home()) / "tasks"


def save(spec: TaskSpec, home: Path | None = None, *, force: bool = False) -> Path:
    """Write ``spec`` as ``$HARNESS_HOME/tasks/NAME.toml`` (atomically); refuse to overwrite unless ``force``."""
    from registry.files import atomic_write_bytes

    path = tasks_dir(home) / f"{spec.name}.toml"
    if path.exists() and not force:
        raise UsageError(f"task {spec.name!r} is already saved ({path}); pass {{param}} to replace it", param="force")
    atomic_write_bytes(path, to_toml(spec.as_dict()).encode())
    return path


def to_toml(data: dict[str, Any]) -> str:
    """A task file's text, written by ``tomli_w`` (TOML's quoting and escaping, tables after keys);
    TOML has no null, so unset fields are left out (reading fills their defaults back in)."""
    import tomli_w

    def present(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: present(v) for k, v in value.items() if v is not None}
        return list(value) if isinstance(value, tuple) else value

    return tomli_w.dumps(present(data))


def read(path: Path) -> TaskSpec:
    """A task file (``harness task add``'s, or one written by hand in a project)."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise DataError(f"cannot read task file {path}: {exc}") from None
    spec = TaskSpec.from_dict(data)
    uri = spec.data.uri
    if not uri.startswith("hf:") and not Path(uri).expanduser().is_absolute():  # relative to the file
        spec = replace(spec, data=replace(spec.data, uri=str((path.parent / uri).resolve())))
    return spec


def from_environment() -> list[TaskSpec]:
    """The ``--data`` tasks of the parent process (benchmark and executor workers see them too)."""
    raw = os.environ.get(ENV)
    return [TaskSpec.from_dict(d) for d in json.loads(raw)] if raw else []


def publish(spec: TaskSpec) -> None:
    """Make ``spec`` visible to child processes."""
    current = [d for d in (json.loads(os.environ[ENV]) if os.environ.get(ENV) else []) if d["name"] != spec.name]
    os.environ[ENV] = json.dumps([*current, spec.as_dict()])


# -- using a data task in this process -----------------------------------------------------------


def register(ctx: Any, spec: TaskSpec) -> str:
    """Add ``spec``'s dataset and task to ``ctx``'s catalogue (and to child processes'); returns the
    task name, which differs from ``spec.name`` only when another task already uses that name."""
    import hashlib

    tasks, datasets = ctx.catalogue.tasks, ctx.catalogue.datasets
    tasks.names(), datasets.names()  # fill from plugins first: names below are then final
    name = spec.name
    if name in tasks or name in datasets:
        existing = tasks.get(name) if name in tasks else None
        if existing is not None and existing.description.startswith(f"your data: {data_label(spec.data)} ("):
            return name  # this same data, read the same way, is already a task (saved, or registered here)
        name = f"{spec.name}-{hashlib.sha256(data_label(spec.data).encode()).hexdigest()[:6]}"
        spec = replace(spec, name=name)
        if name in tasks:
            return name
    add_entries(ctx.catalogue, spec)
    publish(spec)
    for line in spec.notes:
        ctx.progress.info(line)
    ctx.progress.info(f"task {name!r} from {spec.data.uri}: {len(spec.class_names)} classes, {spec.input_size}px "
                      f"(save it with 'harness task add {name} {data_flags(spec.data)}')")
    return name


def add_entries(catalogue: Any, spec: TaskSpec) -> None:
    """Put ``spec``'s dataset and task in this process's catalogue (a saved task added just now, or
    a ``--data`` task), unless a task of that name is there already."""
    from registry import PluginInfo

    if spec.name in catalogue.tasks:
        return
    dataset, task = entries(spec)
    info = PluginInfo("data", None, None)
    catalogue.datasets.add(dataset, info)
    catalogue.tasks.add(task, info)


def resolve(ctx: Any, task: str | None, data: DataSpec | None, *, required: bool = True) -> str | None:
    """The task name a command runs on: ``--task NAME``, ``--task FILE.toml`` or ``--data SOURCE``."""
    from harness.data.views import register_view, split_view

    if task and data:
        raise UsageError("give {param} or {param:data}, not both", param="task")
    if data is not None:
        uri, view = split_view(data.uri)
        name = register(ctx, make_spec(default_name(uri, data), replace(data, uri=uri)))
        return register_view(ctx, name, view) if view else name
    if task:
        base, view = split_view(task)
        if view is not None:
            return register_view(ctx, str(resolve(ctx, base, None)), view)
    if task and task.endswith(".toml"):
        path = Path(task).expanduser()
        if not path.is_file():
            raise UsageError(f"task file {task!r} does not exist")
        return register(ctx, read(path))
    if required and not task:
        raise UsageError("give {param} NAME (harness list tasks) or {param:data} PATH (your own images)", param="task")
    return task
