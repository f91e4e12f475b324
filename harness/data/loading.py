"""Resolve the data root and load dataset splits with the checks every consumer relies on."""

from __future__ import annotations

import difflib
import errno
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from registry import Catalogue, DataError, Dataset, HarnessError, ImageSplit, PluginError, UsageError

if TYPE_CHECKING:
    from harness.context import Context, DataOptions
    from harness.plugins import Plugins


def data_root(data_dir: str | os.PathLike[str] | None = None) -> Path:
    """``--data-dir``, else ``$HARNESS_DATA``, else the user cache dir (``.../harness/data``)."""
    if data_dir:
        return Path(data_dir).expanduser()
    if os.environ.get("HARNESS_DATA"):
        return Path(os.environ["HARNESS_DATA"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("harness")) / "data"


_CACHE: dict[tuple, ImageSplit] = {}
_CACHE_BYTES = 2_000_000_000


def _cached(key: tuple, load) -> ImageSplit:
    """Decoded splits, kept per process: select fine-tunes several candidates on the same data."""
    if key in _CACHE:
        return _CACHE[key]
    result = load()
    size = result.images.numel() if hasattr(result, "images") and hasattr(result.images, "numel") else 0
    if size and size <= _CACHE_BYTES // 4:
        while _CACHE and sum(v.images.numel() for v in _CACHE.values()) + size > _CACHE_BYTES:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = result
    return result


_OLD = object()
"""Marks ``data_dir=``/``download=`` as not given (the keywords of the deprecated form)."""


def load_split(ctx: Context | Catalogue | Plugins, dataset: str, split: str, *, image_size: int | None = None,
               data_dir: Any = _OLD, download: Any = _OLD) -> ImageSplit:
    """Load ``split`` of ``dataset`` (from ``ctx.data``) and check it: uint8 NCHW images, labels
    within the classes. ``image_size`` is a hint for loaders of varying-size images.

    Deprecated, kept for one release: ``load_split(catalogue, dataset, split, data_dir=, download=)``
    (the form before :class:`~harness.context.Context`; a :class:`~harness.plugins.Plugins` in
    place of the catalogue too) still works and warns."""
    from contextlib import AbstractContextManager, nullcontext

    from harness.context import Context, DataOptions
    from harness.plugins import Plugins

    if isinstance(ctx, Plugins):
        warnings.warn("load_split(plugins, dataset, split, ...) is deprecated and will be removed in harness 0.2; "
                      "pass a Context: load_split(Context(plugins, data=DataOptions(data_dir, download)), dataset, "
                      "split)", DeprecationWarning, stacklevel=2)
        ctx = ctx.catalogue
    elif not isinstance(ctx, (Context, Catalogue)):
        raise TypeError(f"load_split() takes a harness.Context as its first argument, not {type(ctx).__name__}: "
                        "load_split(harness.Context(harness.load_plugins()), dataset, split)")
    elif isinstance(ctx, Catalogue):
        warnings.warn("load_split(catalogue, dataset, split, data_dir=..., download=...) is deprecated and will be "
                      "removed in harness 0.2; pass a Context: load_split(Context(plugins, data=DataOptions("
                      "data_dir, download)), dataset, split)", DeprecationWarning, stacklevel=2)
    elif data_dir is not _OLD or download is not _OLD:  # a Context already: only the keywords are old
        warnings.warn("load_split(ctx, dataset, split, data_dir=..., download=...) is deprecated and will be removed "
                      "in harness 0.2; put them in the context: load_split(ctx.replace(data=DataOptions(data_dir, "
                      "download)), dataset, split)", DeprecationWarning, stacklevel=2)
    using: AbstractContextManager[object]
    if isinstance(ctx, Catalogue):
        catalogue, data, using = ctx, DataOptions(), nullcontext()
    else:
        catalogue, data, using = ctx.catalogue, ctx.data, ctx.progress.using()
    data = DataOptions(data.data_dir if data_dir is _OLD else None if data_dir is None else str(data_dir),
                       data.download if download is _OLD else bool(download))
    with using:  # loaders are not handed the context: their bars find its progress so
        return _load_checked(catalogue, data, dataset, split, image_size)


def _load_checked(catalogue: Catalogue, data: DataOptions, dataset: str, split: str,
                  image_size: int | None) -> ImageSplit:
    """:func:`load_split` once the context is resolved."""
    import torch

    entry = catalogue.datasets.get(dataset)
    if split not in entry.splits:
        close = difflib.get_close_matches(split, entry.splits, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(f"dataset {dataset} has no split {split!r}; {hint}splits: {', '.join(entry.splits)}")
    root = data_root(data.data_dir)
    if root.exists() and not root.is_dir():
        source = ("--data-dir" if data.data_dir else
                  "HARNESS_DATA" if os.environ.get("HARNESS_DATA") else "the data root")
        raise UsageError(f"{source} {str(root)!r} is a file; point it at a folder")
    token = entry.loader.cache_token() if hasattr(entry.loader, "cache_token") else None  # data that can change
    result = _cached((dataset, split, str(root.resolve()), image_size, id(entry.loader), token),
                     lambda: _call_loader(entry, split, root, data.may_download(), image_size))
    if not isinstance(result, ImageSplit):
        raise PluginError(f"dataset {dataset!r} ({entry.plugin or 'no plugin'}): its loader returned "
                          f"{type(result).__name__}, not a registry.ImageSplit")
    images, labels = result.images, result.labels
    who = f"dataset {dataset!r} ({entry.plugin or 'no plugin'})"
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or images.dim() != 4:
        raise PluginError(f"{who}: its loader's images must be a uint8 tensor (N, C, H, W)")
    if (not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or labels.dim() != 1
            or labels.shape[0] != images.shape[0]):
        raise PluginError(f"{who}: its loader's labels must be int64 of shape ({images.shape[0]},)")
    if images.shape[0] == 0:
        raise DataError(f"{who}: the {split} split is empty")
    num_classes = entry.num_classes or len(result.class_names)
    if images.shape[1] not in (1, 3):
        raise PluginError(f"{who}: its loader's images have {images.shape[1]} channels; expected 1 or 3")
    check_labels(labels, num_classes, f"dataset {dataset} ({split})")
    if entry.class_names and not result.class_names:
        result = ImageSplit(images, labels, entry.class_names)
    return result


def _call_loader(entry: Dataset, split: str, root: Path, download: bool, image_size: int | None) -> ImageSplit:
    """The plugin's loader; anything it raises other than harness's own errors is the plugin's failure,
    named as such (a loader reports missing or damaged files with :class:`registry.DataError`)."""
    try:
        return entry.loader(split, root, download=download, image_size=image_size)
    except (HarnessError, MemoryError):
        raise
    except Exception as exc:
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk (the decoded-image cache's) is the machine's failure, not the plugin's
        raise PluginError(f"dataset {entry.name!r} ({entry.plugin or 'no plugin'}): its loader raised "
                          f"{type(exc).__name__}: {str(exc).strip()[:200]} loading the {split} split from {root}; "
                          "a loader reports missing or damaged files by raising registry.DataError") from None


def check_labels(labels, num_classes: int, where: str) -> None:
    """Refuse labels outside ``[0, num_classes)``: torchmetrics would fail with a shape error."""
    low, high = int(labels.min()), int(labels.max())
    if low < 0 or high >= num_classes:
        bad = low if low < 0 else high
        raise DataError(f"{where}: label {bad} is outside [0, {num_classes}); "
                        "fix the labels or the class count")
