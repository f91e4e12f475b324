"""``--data hf:NAME_OR_PATH``: a Hugging Face ``datasets`` dataset as a :class:`Source`.

The value is a folder written by ``save_to_disk``, a folder of parquet files, or a Hub name (which
``datasets`` downloads, or reads from its cache when offline). The image column is the one whose
feature is ``Image`` and the label column the ``ClassLabel`` one (class names from it), unless
``--image-column``/``--label-column`` say otherwise. ``datasets`` is the optional extra ``hf``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.data.sources import DataSpec, Source, _make_test_split
from registry import DataError, UsageError

SPLIT_NAMES = {"train": "train", "test": "test", "validation": "val", "valid": "val", "val": "val"}


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise UsageError("{param} hf:... needs Hugging Face datasets: pip install 'imgcls-harness[hf]'",
                         param="data") from None
    return datasets


def _load(name: str) -> Any:
    datasets = _datasets()
    path = Path(name).expanduser()
    try:
        if path.is_dir() and ((path / "dataset_dict.json").is_file() or (path / "state.json").is_file()):
            return datasets.load_from_disk(str(path))
        if path.is_dir() and any(path.rglob("*.parquet")):
            files = {split: [str(p) for p in sorted(path.rglob(f"{split}*.parquet"))] for split in SPLIT_NAMES}
            files = ({k: v for k, v in files.items() if v}
                     or {"train": [str(p) for p in sorted(path.rglob("*.parquet"))]})
            return datasets.load_dataset("parquet", data_files=files)
        if path.exists():
            raise DataError(f"hf:{name} is neither a save_to_disk folder nor a folder of parquet files")
        return datasets.load_dataset(name)
    except DataError:
        raise
    except Exception as exc:  # a Hub name that cannot be reached or does not exist, a broken folder
        raise DataError(f"cannot load the Hugging Face dataset {name!r} ({type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0][:160] if str(exc).strip() else ''}); give a save_to_disk "
                        "or parquet folder, or a Hub name reachable from here") from None


def _columns(features: Any, spec: DataSpec) -> tuple[str, str]:
    datasets = _datasets()
    images = [k for k, f in features.items() if isinstance(f, datasets.Image)]
    labels = [k for k, f in features.items() if isinstance(f, datasets.ClassLabel)]
    image = spec.image_column or (images[0] if images else None)
    label = spec.label_column or (labels[0] if labels else ("label" if "label" in features else None))
    known = ", ".join(features)
    if image is None or image not in features:
        raise DataError(f"no image column in this dataset (columns: {known}); pass {{param}} NAME",
                        param="image_column")
    if label is None or label not in features:
        raise DataError(f"no label column in this dataset (columns: {known}); pass {{param}} NAME",
                        param="label_column")
    return image, label


def open_hf(spec: DataSpec) -> Source:
    """The dataset's splits (``validation`` counts as ``val``), labels and class names."""
    name = spec.uri[3:]
    loaded = _load(name)
    parts = dict(loaded) if hasattr(loaded, "keys") else {"train": loaded}
    first = next(iter(parts.values()))
    image_col, label_col = _columns(first.features, spec)
    feature = first.features[label_col]
    names: tuple[str, ...]
    if hasattr(feature, "names"):
        names = tuple(feature.names)
        to_index = None
    else:  # plain labels (strings or integers): classes are the distinct values
        values = sorted({str(v) for part in parts.values() for v in part[label_col]})
        names, to_index = tuple(values), {v: i for i, v in enumerate(values)}
    splits: dict[str, list[tuple[Any, int]]] = {}
    tables: dict[str, Any] = {}
    for split_name, part in parts.items():
        ours = SPLIT_NAMES.get(split_name)
        if ours is None:
            continue
        tables[ours] = part
        labels = part[label_col]
        splits.setdefault(ours, []).extend(
            ((ours, i), int(v) if to_index is None else to_index[str(v)]) for i, v in enumerate(labels))
    if not splits:
        raise DataError(f"hf:{name} has splits {', '.join(parts)}; harness reads train, validation and test")

    def decode(item: tuple[str, int]) -> Any:
        table, index = item
        image = tables[table][index][image_col]
        if image is None:
            raise DataError(f"hf:{name} {table}[{index}] has no image")
        return image

    source = Source("hf", spec.uri, names, splits, decode,
                    fingerprint="|".join(str(getattr(t, "_fingerprint", "")) for t in tables.values()))
    if "test" not in splits:
        _make_test_split(source, spec)
    return source
