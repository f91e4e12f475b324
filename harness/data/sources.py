"""A user's data, read from what ``--data`` names: an image folder, a CSV or JSON-lines manifest, or
a Hugging Face dataset (``hf:NAME_OR_PATH``). Each becomes a :class:`Source`: class names and, per
split, the items to decode, with a seeded, stratified test split made (and recorded) when the data
has none. Everything wrong with the data is a one-line :class:`DataError` naming the fix, raised
here, before anything is decoded or trained; what was left out or merged is a note.

Folder rule: the class of an image is the folder ``label_depth`` levels below the root (or below
``train/``, ``test/``, ``val/``): at the default depth 1, ``animals/cat/1.jpg`` is class ``animals``
(deeper folders are part of their class, with a note); at depth 2 it is class ``animals/cat``.
"""

from __future__ import annotations

import csv
import json
import os
import random
import stat
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from registry import DataError, UsageError

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
    label_depth: int = 1  # image folders: the folder level below the root (or split) that names the class

    def __post_init__(self) -> None:
        if not 0.0 < self.test_fraction < 1.0:
            raise UsageError("{param} must be between 0 and 1 (exclusive)", param="test_fraction")
        if self.label_depth < 1:
            raise UsageError("{param} must be 1 or more", param="label_depth")

    def as_dict(self) -> dict[str, Any]:
        """The fields as saved in task files and cache keys; ``label_depth`` only when not 1, so
        the files and keys of tasks made before it existed stay the same."""
        return {k: v for k, v in self.__dict__.items() if v is not None and not (k == "label_depth" and v == 1)}


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
            raise DataError(f"{{param}} {spec.uri!r} does not exist; give an image folder, a .csv/.jsonl manifest or "
                            "hf:NAME", param="data")
        if spec.label_depth != 1 and not path.is_dir():
            raise UsageError("{param} applies to image folders; a manifest names each label", param="label_depth")
        if path.is_dir():
            source = _folder(path, spec)
        elif path.suffix.lower() in MANIFEST_SUFFIXES:
            source = _manifest(path, spec)
        else:
            raise DataError(f"{{param}} {spec.uri!r} is a {path.suffix or 'plain'} file; give an image folder, a "
                            ".csv/.jsonl manifest (path,label[,split]) or hf:NAME", param="data")
    _check(source)
    return source


def _open_image(path: Any) -> Any:
    from PIL import Image

    from harness.data.decode import register_plugins

    register_plugins()
    return Image.open(path)


@dataclass
class _Tree:
    """One walk of a folder: images by class, and what was left out or merged on the way."""

    classes: dict[str, list[Path]] = field(default_factory=dict)  # class -> sorted images (empty folders too)
    skipped: Counter[str] = field(default_factory=Counter)  # extension -> files not read
    loose: int = 0  # images above the label depth (in no class folder)
    merged: dict[str, set[str]] = field(default_factory=dict)  # class -> its sub-folders that hold images
    links: list[tuple[Path, str]] = field(default_factory=list)  # links not followed: (link, where it leads)


def _walk(base: Path, depth: int) -> _Tree:
    """Every file under ``base`` (hidden ones aside): the class of an image is the path of its
    first ``depth`` folders.

    Links are followed (linked class folders are common, also to folders outside ``base``), but an
    image gets one label, its own folder's: the class folders are found first, and every folder that
    is not a link is a class of its own, whatever links point into it. A link that leads into a class
    folder (another class's, or back into its own), around one (up the tree), or to a folder or image
    already read is not followed, and is named in a note (:attr:`_Tree.links`). Of two class folders
    that are the same folder, one a link, the link is left out likewise.
    """
    from harness.data.decode import readable_extensions

    readable, tree, top = readable_extensions(), _Tree(), os.path.realpath(base)
    found, above = _class_candidates(base, depth, tree, readable, top)
    # plain folders first: at one depth they cannot overlap, so each is a class; then links, by name
    found.sort(key=lambda kv: (os.path.realpath(kv[1]) != os.path.join(top, kv[0]), kv[0]))
    claimed: dict[str, str] = {}  # real path -> class
    classes: list[tuple[str, Path]] = []
    for key, candidate in found:
        real = os.path.realpath(candidate)
        if _overlap(real, claimed) or real in above or _within(top, real):  # a class's folder again, or up the tree
            tree.links.append((candidate, _shown(real, top)))
        else:
            claimed[real] = key
            classes.append((key, candidate))
    seen_folders, seen_images = set(claimed), set[str]()
    for key, class_folder in sorted(classes):
        _read_class(tree, key, class_folder, readable, top, claimed, seen_folders, seen_images)
    for images in tree.classes.values():
        images.sort()
    return tree


def _class_candidates(base: Path, depth: int, tree: _Tree, readable: frozenset[str],
                      top: str) -> tuple[list[tuple[str, Path]], set[str]]:
    """(class, folder) of every folder ``depth`` levels down, and the real paths of the folders above
    them; images above the label depth are counted in ``tree.loose``, links back up in ``tree.links``."""
    found: list[tuple[str, Path]] = []
    above: set[str] = set()
    for folder, subfolders, files in os.walk(base, followlinks=True):  # bounded: it stops above the classes
        rel, real = Path(folder).relative_to(base).parts, os.path.realpath(folder)
        if real in above and real != os.path.join(top, *rel):  # a link to a folder walked already
            tree.links.append((Path(folder), _shown(real, top)))
            subfolders[:] = []
            continue
        above.add(real)
        subfolders[:] = sorted(d for d in subfolders if not d.startswith("."))
        tree.loose += len(_images(tree, readable, Path(folder), files, top, (), set()))
        if len(rel) == depth - 1:
            found += [("/".join((*rel, d)), Path(folder, d)) for d in subfolders]
            subfolders[:] = []
    return found, above


def _read_class(tree: _Tree, key: str, class_folder: Path, readable: frozenset[str], top: str,
                claimed: dict[str, str], seen_folders: set[str], seen_images: set[str]) -> None:
    """The images of one class folder (its sub-folders merged), skipping links into other classes,
    up the tree, or to folders and images read already (named in ``tree.links``)."""
    images = tree.classes.setdefault(key, [])
    for folder, subfolders, files in os.walk(class_folder, followlinks=True):
        kept = []
        for name in sorted(d for d in subfolders if not d.startswith(".")):
            path = os.path.join(folder, name)
            real = os.path.realpath(path)
            if real in seen_folders or (os.path.islink(path) and (_overlap(real, claimed) or _within(top, real))):
                tree.links.append((Path(path), _shown(real, top)))
            else:
                seen_folders.add(real)
                kept.append(name)
        subfolders[:] = kept
        here = _images(tree, readable, Path(folder), files, top, claimed, seen_images)
        images += here
        rel = Path(folder).relative_to(class_folder).parts
        if rel and here:
            tree.merged.setdefault(key, set()).add(rel[0])


def _images(tree: _Tree, readable: frozenset[str], folder: Path, files: list[str], top: str,
            claimed: Collection[str], seen: set[str]) -> list[Path]:
    """The images among ``files`` of ``folder``; other files are counted in ``tree.skipped``, and a
    linked image whose file lies in a class folder (read there) or was read already, in ``tree.links``."""
    found, here = [], os.path.realpath(folder)
    for name in files:
        suffix = Path(name).suffix.lower()
        if name.startswith("."):
            continue
        path = folder / name
        if suffix not in readable:
            tree.skipped[suffix or "(no extension)"] += 1
            continue
        try:
            mode = os.lstat(path).st_mode
        except OSError:  # gone since the folder was listed
            mode = 0
        linked = stat.S_ISLNK(mode)
        if not (stat.S_ISREG(mode) or (linked and os.path.isfile(path))):  # a broken link (or not a file)
            tree.skipped["(broken link)"] += 1
            continue
        real = os.path.realpath(path) if linked else os.path.join(here, name)
        if real in seen or (linked and _overlap(real, claimed)):
            tree.links.append((path, _shown(real, top)))
            continue
        seen.add(real)
        found.append(path)
    return found


def _overlap(path: str, roots: Iterable[str]) -> bool:
    """Whether ``path`` is one of ``roots`` (real paths), lies in one or holds one."""
    return any(path == root or _within(path, root) or _within(root, path) for root in roots)


def _within(path: str, folder: str) -> bool:
    return path.startswith(folder.rstrip(os.sep) + os.sep)


def _shown(real: str, top: str) -> str:
    """Where a link leads: relative to the folder walked when inside it."""
    return os.path.relpath(real, top) if real == top or _within(real, top) else real


def _folder(root: Path, spec: DataSpec) -> Source:
    """``root/train/<class>/*`` (+ ``test``, ``val``), or ``root/<class>/*`` with a test split made."""
    present = [s for s in SPLITS if (root / s).is_dir()]
    if present and "train" not in present:
        raise DataError(f"{root} has {', '.join(present)} but no train/ folder; add train/<class>/ or put the "
                        "class folders directly in it")
    trees = {s: _walk(root / s, spec.label_depth) for s in present} or {"train": _walk(root, spec.label_depth)}
    names = tuple(sorted(trees["train"].classes))
    index = {name: k for k, name in enumerate(names)}
    splits: dict[str, list[tuple[Any, int]]] = {}
    for split, tree in trees.items():
        extra = sorted(set(tree.classes) - set(names))
        if extra:
            raise DataError(f"{root / split} has classes that train/ lacks: {', '.join(extra)}; add them to "
                            "train/ or remove them")
        splits[split] = [(path, index[k]) for k in sorted(tree.classes) for path in tree.classes[k]]
    source = Source("folder", str(root), names, splits, _open_image,
                    notes=_folder_notes(trees, spec.label_depth, root))
    if not present and not splits["train"]:
        loose = trees["train"].loose
        hint = (f"; its {loose} images must be sorted into one sub-folder per class" if loose else "")
        raise DataError(f"no images in class sub-folders of {root}{hint} (expected <class>/*.jpg, or "
                        "train/<class>/*.jpg and test/<class>/*.jpg)")
    if "test" not in splits:
        _make_test_split(source, spec)
    return source


def _folder_notes(trees: dict[str, _Tree], depth: int, root: Path) -> list[str]:
    """One note each: files skipped (by extension, with what would read them), images above the
    label depth, links not followed (each image gets one label), and class folders that merge
    sub-folders."""
    from harness.data.decode import UNREADABLE_HINTS

    notes = []
    skipped = sum((t.skipped for t in trees.values()), Counter())
    if skipped:
        kinds = ", ".join(f"{n} {ext}" + (f" ({UNREADABLE_HINTS[ext]})" if ext in UNREADABLE_HINTS else "")
                          for ext, n in skipped.most_common())
        notes.append(f"skipped {sum(skipped.values())} files that are not images harness reads: {kinds}")
    loose = sum(t.loose for t in trees.values())
    if loose:
        notes.append(f"left out {loose} images that are in no class folder (the class is the folder {depth} "
                     f"level{'s' if depth > 1 else ''} down)")
    links = [(os.path.relpath(link, root), target) for t in trees.values() for link, target in t.links]
    if links:
        shown = ", ".join(f"{link} -> {target}" for link, target in links[:3]) + (", ..." if len(links) > 3 else "")
        notes.append(f"did not follow {len(links)} link{'s' if len(links) > 1 else ''} to folders or images read "
                     f"elsewhere (a class folder, up the tree, or read already; each image gets one label): {shown}")
    merged = trees["train"].merged
    if merged:
        subs = sum(len(v) for v in merged.values())
        example = next(iter(sorted(merged)))
        notes.append(f"class folders have sub-folders: {len(merged)} class{'es' if len(merged) > 1 else ''} merge "
                     f"{subs} sub-folders (e.g. {example}: {', '.join(sorted(merged[example])[:3])}); use "
                     f"--label-depth {depth + 1} to label by sub-folder")
    return notes


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


def unescape_cell(value: str) -> str:
    """Undo ``check.escape_cell`` (what ``data check --write-clean`` writes): a cell that starts
    with an apostrophe followed by = + - @ tab, carriage return or another apostrophe loses that
    first apostrophe. A hand-written label starting that way must double its apostrophe."""
    return value[1:] if value[:1] == "'" and value[1:2] in ("=", "+", "-", "@", "\t", "\r", "'") else value


def _manifest_rows(path: Path) -> list[dict[str, Any]]:
    if path.suffix.lower() == ".csv":
        # utf-8-sig: Excel writes a BOM; surrogateescape: file names that are not UTF-8 (Linux keeps
        # bytes) come back as the same bytes
        with open(path, newline="", encoding="utf-8-sig", errors="surrogateescape") as f:
            reader = csv.DictReader(f)
            if reader.fieldnames is None or not {"path", "label"} <= {c.strip() for c in reader.fieldnames}:
                raise DataError(f"{path}: a manifest needs the columns path,label[,split]; it has "
                                f"{', '.join(reader.fieldnames or []) or 'none'}")
            return [{k.strip(): unescape_cell((v or "").strip()) for k, v in row.items() if k} for row in reader]
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
    _refuse_unreadable(path, [str(r["path"]) for r in rows])
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


def _refuse_unreadable(manifest: Path, paths: list[str]) -> None:
    """A manifest that lists HEIC (or AVIF) files this install cannot read is refused up front,
    naming what would read them, instead of failing mid-decode."""
    from harness.data.decode import UNREADABLE_HINTS, readable_extensions

    suffixes = Counter(Path(p).suffix.lower() for p in paths)
    bad = [(ext, n) for ext, n in suffixes.items() if ext in UNREADABLE_HINTS and ext not in readable_extensions()]
    if bad:
        ext, n = bad[0]
        raise DataError(f"{manifest}: {n} listed {ext} file(s) cannot be read by this install; "
                        f"{UNREADABLE_HINTS[ext]}")


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
