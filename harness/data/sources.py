"""A user's data, read from what ``--data`` names: an image folder, a CSV or JSON-lines manifest, or
a Hugging Face dataset (``hf:NAME_OR_PATH``). Each becomes a :class:`Source`: class names and, per
split, the items to decode, with a seeded, stratified test split made (and recorded) when the data
has none. Everything wrong with the data is a one-line :class:`DataError` naming the fix, raised
here, before anything is decoded or trained.
"""

from __future__ import annotations

import csv
import json
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry import DataError, UsageError

EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff")
SPLITS = ("train", "val", "test")
MANIFEST_SUFFIXES = (".csv", ".jsonl", ".json")


@dataclass(frozen=True)
class DataSpec:
    """What the user asked for: the source and how to read it (part of a saved task's file)."""

    uri: str
    test_fraction: float = 0.2
    seed: int = 0
    image_column: str | None = None
    label_column: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise UsageError("{param} must be between 0 and 1 (exclusive)", param="test_fraction")

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class Source:
    """Class names and, per split, ``(item, label index)`` pairs; ``decode(item)`` gives a PIL image."""

    kind: str  # folder | manifest | hf
    location: str
    class_names: tuple[str, ...]
    splits: dict[str, list[tuple[Any, int]]]
    decode: Callable[[Any], Any]
    made_test_split: bool = False
    notes: list[str] = field(default_factory=list)
    fingerprint: str = ""  # what identifies content that item names cannot (a HF dataset's fingerprint)

    def count(self, split: str | None = None) -> int:
        return sum(len(v) for k, v in self.splits.items() if split in (None, k))


def open_source(spec: DataSpec) -> Source:
    """The :class:`Source` that ``spec.uri`` names (folder, manifest, or ``hf:``), checked."""
    if spec.uri.startswith("hf:"):
        from harness.data.hf import open_hf

        source = open_hf(spec)
    else:
        path = Path(spec.uri).expanduser()
        if not path.exists():
            raise DataError(f"--data {spec.uri!r} does not exist; give an image folder, a .csv/.jsonl manifest or "
                            "hf:NAME")
        if path.is_dir():
            source = _folder(path, spec)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            source = _manifest(path, spec)
        else:
            raise DataError(f"--data {spec.uri!r} is a {path.suffix or 'plain'} file; give an image folder, a "
                            ".csv/.jsonl manifest (path,label[,split]) or hf:NAME")
    _check(source)
    return source


def _open_image(path: Any) -> Any:
    from PIL import Image

    return Image.open(path)


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in EXTENSIONS and p.is_file()
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _class_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _folder(root: Path, spec: DataSpec) -> Source:
    """``root/train/<class>/*`` (+ ``test``, ``val``), or ``root/<class>/*`` with a test split made."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present:
        if "train" not in present:
            raise DataError(f"{root} has {', '.join(present)} but no train/ folder; add train/<class>/ or put the "
                            "class folders directly in it")
        names = tuple(p.name for p in _class_dirs(root / "train"))
        splits: dict[str, list[tuple[Any, int]]] = {}
        for split in present:
            extra = sorted({p.name for p in _class_dirs(root / split)} - set(names))
            if extra:
                raise DataError(f"{root / split} has classes that train/ lacks: {', '.join(extra)}; add them to "
                                "train/ or remove them")
            splits[split] = [(path, names.index(d.name)) for d in _class_dirs(root / split)
                             for path in _images_in(d)]
        source = Source("folder", str(root), names, splits, _open_image)
        if "test" not in splits:
            _make_test_split(source, spec)
        return source
    class_dirs = _class_dirs(root)
    names = tuple(d.name for d in class_dirs)
    items = [(path, k) for k, d in enumerate(class_dirs) for path in _images_in(d)]
    source = Source("folder", str(root), names, {"train": items}, _open_image)
    if not items:
        loose = _images_in(root)
        hint = (f"; its {len(loose)} images must be sorted into one sub-folder per class" if loose else "")
        raise DataError(f"no images in class sub-folders of {root}{hint} (expected <class>/*.jpg, or "
                        "train/<class>/*.jpg and test/<class>/*.jpg)")
    _make_test_split(source, spec)
    return source


def _make_test_split(source: Source, spec: DataSpec) -> None:
    """Move a seeded, stratified ``test_fraction`` of train to test (at least one image per class
    that has two or more)."""
    rng = random.Random(spec.seed)
    by_class: dict[int, list[tuple[Any, int]]] = {}
    for item in source.splits["train"]:
        by_class.setdefault(item[1], []).append(item)
    train, test = [], []
    for label in sorted(by_class):
        items = list(by_class[label])
        rng.shuffle(items)
        n_test = max(1, round(len(items) * spec.test_fraction)) if len(items) >= 2 else 0
        test += items[:n_test]
        train += items[n_test:]
    source.splits["train"] = sorted(train, key=lambda t: str(t[0]))
    source.splits["test"] = sorted(test, key=lambda t: str(t[0]))
    source.made_test_split = True
    source.notes.append(f"test split made: {len(test)} images ({spec.test_fraction:.0%} per class, seed {spec.seed})")


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"path", "label"} <= {c.strip() for c in reader.fieldnames}:
                raise DataError(f"{path}: a manifest needs the columns path,label[,split]; it has "
                                f"{', '.join(reader.fieldnames or []) or 'none'}")
            return [{k.strip(): (v or "").strip() for k, v in row.items() if k} for row in reader]
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if line.strip():
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise DataError(f"{path}:{number}: not a JSON object ({exc.msg})") from None
                if not isinstance(row, dict) or "path" not in row or "label" not in row:
                    raise DataError(f"{path}:{number}: each line needs \"path\" and \"label\"")
                rows.append(row)
    return rows


def _manifest(path: Path, spec: DataSpec) -> Source:
    """``path,label[,split]`` rows; paths relative to the manifest's folder."""
    rows = _manifest_rows(path)
    if not rows:
        raise DataError(f"{path} lists no images")
    base = path.parent
    missing = [r["path"] for r in rows if not (base / str(r["path"])).is_file()]
    if missing:
        raise DataError(f"{path}: {len(missing)} listed file(s) do not exist (first: {missing[0]!r}, relative to "
                        f"{base}); fix the paths or remove those rows")
    bad_split = sorted({str(r.get("split")) for r in rows if r.get("split") and r.get("split") not in SPLITS})
    if bad_split:
        raise DataError(f"{path}: unknown split(s) {', '.join(bad_split)}; use train, val or test")
    empty = [i for i, r in enumerate(rows, 2) if str(r["label"]).strip() == ""]
    if empty:
        raise DataError(f"{path}: row {empty[0]} has an empty label; every image needs one")
    names = tuple(sorted({str(r["label"]) for r in rows}, key=_natural))
    splits: dict[str, list[tuple[Any, int]]] = {}
    index = {name: k for k, name in enumerate(names)}
    for r in rows:
        splits.setdefault(str(r.get("split") or "train"), []).append((base / str(r["path"]), index[str(r["label"])]))
    source = Source("manifest", str(path), names, splits, _open_image)
    if "test" not in splits:
        _make_test_split(source, spec)
    return source


def _natural(text: str) -> tuple[int, Any]:
    """Labels sort numerically when they are numbers ("2" before "10"), else alphabetically."""
    return (0, int(text)) if text.isdigit() else (1, text)


def _check(source: Source) -> None:
    """Refuse data nothing useful can be trained on, naming why."""
    counts = {name: 0 for name in source.class_names}
    for _, label in source.splits.get("train", []):
        counts[source.class_names[label]] += 1
    if len(source.class_names) < 2:
        raise DataError(f"{source.location} has {len(source.class_names)} class"
                        f"{'' if len(source.class_names) == 1 else 'es'}; classification needs at least 2")
    empty = [n for n, c in counts.items() if c == 0]
    if empty:
        raise DataError(f"{source.location}: class(es) with no training images: {', '.join(empty[:5])}; add images "
                        "or remove the class")
    if not source.splits.get("test"):
        raise DataError(f"{source.location}: no test images (every class has a single image?); add images")


def image_sizes(source: Source, limit: int = 200) -> list[tuple[int, int]]:
    """``(width, height)`` of up to ``limit`` training images spread over the split (header reads)."""
    items = source.splits["train"]
    step = max(1, len(items) // limit)
    sizes = []
    for item, _ in items[::step][:limit]:
        try:
            with source.decode(item) as image:
                sizes.append(image.size)
        except Exception:  # a damaged file is data check's to report; the size guess skips it
            continue
    return sizes


def describe(source: Source) -> Sequence[str]:
    """Lines for stderr: what was found."""
    per_split = ", ".join(f"{k} {len(v)}" for k, v in source.splits.items())
    return [f"{source.location}: {len(source.class_names)} classes, {per_split} images", *source.notes]
