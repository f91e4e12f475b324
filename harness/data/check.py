"""``harness data check``: what is wrong with a dataset before anything is trained on it.

Integrity (files that do not decode, are empty or truncated, carry the wrong extension, are much
smaller than the input size, mix colour modes, have extreme aspect ratios), labels (balance per
split, classes missing from a split) and duplicates (exact and near, within a split and across
train/test: leakage, with label disagreements). Errors are what makes a result untrustworthy or a
run crash: undecodable files and exact train/test copies. Everything else is a warning or a note.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.data.dedup import MEASURE, Pair, exact_groups, near_pairs

EXAMPLES = 5
ASPECT_LIMIT = 3.0
IMBALANCE_LIMIT = 10.0


@dataclass(frozen=True)
class Finding:
    """One problem (or fact) found: which check, how bad, how many, and the items involved."""

    check: str
    severity: str  # error | warning | info
    count: int
    detail: str
    items: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {"check": self.check, "severity": self.severity, "count": self.count, "detail": self.detail,
                "items": list(self.items)}


@dataclass
class Images:
    """Everything the checks need, for every image of every split, in one list."""

    ids: list[str] = field(default_factory=list)  # a path, or split[index]
    splits: list[str] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    keys: list[bytes] = field(default_factory=list)  # exact-content key
    small: list[np.ndarray] = field(default_factory=list)  # (C, 32, 32) uint8 copies, bicubic
    info: list[dict[str, Any]] = field(default_factory=list)  # size, mode, format (files)
    broken: list[tuple[str, str]] = field(default_factory=list)  # (id, why)


@dataclass
class DataReport:
    """What ``harness data check`` prints; ``errors`` decide its exit code."""

    target: str
    class_names: tuple[str, ...]
    counts: dict[str, int]
    findings: list[Finding]
    seconds: float
    dropped: dict[str, str] = field(default_factory=dict)  # id -> why a clean manifest leaves it out

    @property
    def flagged(self) -> set[str]:
        """Ids a clean manifest leaves out."""
        return set(self.dropped)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity == "error"]

    def as_dict(self) -> dict[str, Any]:
        return {"target": self.target, "classes": len(self.class_names), "images": self.counts,
                "errors": len(self.errors), "findings": [f.as_dict() for f in self.findings],
                "left_out": dict(Counter(self.dropped.values())), "seconds": round(self.seconds, 2)}


def _small32(image: Any) -> np.ndarray:
    """A (3, 32, 32) uint8 colour copy, resized with a bicubic filter: near copies are aligned to a
    fraction of a pixel, which a box or bilinear filter (whose blur changes with a shift) spoils,
    and confirmed in colour (two images can share a brightness pattern in other hues)."""
    from PIL import Image

    small = np.asarray(image.convert("RGB").resize((32, 32), Image.Resampling.BICUBIC), dtype=np.uint8)
    return small.transpose(2, 0, 1)


def _file(path: Path) -> tuple[bytes, np.ndarray | None, dict[str, Any], str | None]:
    """(content key, 32x32 grey, facts, why it is broken) for one image file."""
    from PIL import Image

    try:
        data = path.read_bytes()
    except OSError as exc:
        return b"", None, {}, f"unreadable ({exc.strerror})"
    if not data:
        return b"", None, {}, "zero bytes"
    from harness.data.decode import HIGH_BIT_MODES, as_rgb, decode_failure, orientation, register_plugins

    register_plugins()
    try:
        with Image.open(io.BytesIO(data)) as image:
            # 48-bit RGB PNGs open as RGB; the undecoded tile's raw mode still says 16 bits
            wide = image.mode in HIGH_BIT_MODES or any(";16" in str(getattr(t, "args", "")) for t in image.tile)
            image.load()  # decodes everything: a truncated file fails here
            facts = {"format": image.format, "mode": image.mode, "width": image.width, "height": image.height,
                     "orientation": orientation(image), "high_bit": wide}
            return hashlib.blake2b(data, digest_size=16).digest(), _small32(as_rgb(image)), facts, None
    except Exception as exc:  # Pillow raises OSError, SyntaxError, ValueError... for damaged files
        return b"", None, {}, f"does not decode ({decode_failure(exc)[:100]})"


def images_of_source(source: Any) -> Images:
    """Read every file of a ``--data`` source once (all cores)."""
    found = Images()
    entries = [(split, item, label) for split, items in source.splits.items() for item, label in items]
    if source.kind != "hf":
        with ThreadPoolExecutor() as pool:
            results = list(pool.map(lambda e: _file(Path(e[1])), entries))
    else:
        results = []
        for _, item, _ in entries:
            try:
                with source.decode(item) as image:
                    pixels = np.asarray(image.convert("RGB"))
                    results.append((hashlib.blake2b(pixels.tobytes(), digest_size=16).digest(), _small32(image),
                                    {"mode": image.mode, "width": image.width, "height": image.height}, None))
            except Exception as exc:
                results.append((b"", None, {}, f"does not decode ({type(exc).__name__})"))
    for (split, item, label), (key, small, facts, why) in zip(entries, results, strict=True):
        ident = str(item) if source.kind != "hf" else f"{item[0]}[{item[1]}]"
        if why is not None:
            found.broken.append((ident, why))
            continue
        found.ids.append(ident)
        found.splits.append(split)
        found.labels.append(label)
        found.keys.append(key)
        found.small.append(small)  # type: ignore[arg-type]
        found.info.append({**facts, "suffix": Path(str(item)).suffix.lower() if source.kind != "hf" else ""})
    return found


def images_of_tensors(splits: dict[str, Any]) -> Images:
    """The decoded splits of a registered dataset (``{split: ImageSplit}``)."""
    import torch
    import torch.nn.functional as F

    found = Images()
    for split, data in splits.items():
        pixels = data.images
        small = pixels
        if pixels.shape[-1] != 32 or pixels.shape[-2] != 32:  # as _small32 does for files
            small = F.interpolate(pixels.float(), size=(32, 32), mode="bicubic", antialias=True)
            small = small.round().clamp(0, 255).to(torch.uint8)
        arrays = pixels.numpy()
        for i in range(len(pixels)):
            found.ids.append(f"{split}[{i}]")
            found.splits.append(split)
            found.labels.append(int(data.labels[i]))
            found.keys.append(hashlib.blake2b(arrays[i].tobytes(), digest_size=16).digest())
            found.info.append({"width": pixels.shape[-1], "height": pixels.shape[-2]})
        found.small.extend(small.numpy())
    return found


def _integrity(found: Images, input_size: int) -> list[Finding]:
    out = []
    if found.broken:
        out.append(Finding("integrity", "error", len(found.broken), "files that cannot be used: "
                           + "; ".join(f"{i} {w}" for i, w in found.broken[:3]),
                           tuple(i for i, _ in found.broken)))
    names = {"JPEG": (".jpg", ".jpeg", ".jfif"), "PNG": (".png",), "GIF": (".gif",), "BMP": (".bmp",),
             "WEBP": (".webp",), "TIFF": (".tif", ".tiff")}
    wrong = [i for i, f in zip(found.ids, found.info, strict=True)
             if f.get("suffix") and f.get("format") in names and f["suffix"] not in names[f["format"]]]
    if wrong:
        out.append(Finding("extension", "warning", len(wrong), "files whose extension is not their format",
                           tuple(wrong)))
    tiny = [i for i, f in zip(found.ids, found.info, strict=True) if min(f["width"], f["height"]) * 2 < input_size]
    if tiny:
        out.append(Finding("size", "warning", len(tiny), f"images smaller than half the input size ({input_size}px): "
                           "upscaled more than 2x", tuple(tiny)))
    wide = [i for i, f in zip(found.ids, found.info, strict=True)
            if max(f["width"], f["height"]) > ASPECT_LIMIT * min(f["width"], f["height"])]
    if wide:
        out.append(Finding("aspect", "warning", len(wide), f"aspect ratio above {ASPECT_LIMIT:g}:1 (the centre crop "
                           "drops most of the image)", tuple(wide)))
    turned = [i for i, f in zip(found.ids, found.info, strict=True) if f.get("orientation", 1) != 1]
    if turned:
        out.append(Finding("orientation", "info", len(turned), "images with an EXIF rotation or mirror tag "
                           "(decoded upright)", tuple(turned)))
    wide = [i for i, f in zip(found.ids, found.info, strict=True) if f.get("high_bit")]
    if wide:
        out.append(Finding("bit-depth", "info", len(wide), "images with more than 8 bits per sample (scaled to 8 "
                           "bits, not clipped)", tuple(wide)))
    modes = Counter(f["mode"] for f in found.info if "mode" in f)
    if len(modes) > 1:
        out.append(Finding("modes", "info", len(modes), "colour modes: " + ", ".join(f"{m} {n}" for m, n in
                                                                                     modes.most_common())))
    return out


def _labels(found: Images, names: tuple[str, ...]) -> list[Finding]:
    out = []
    for split in sorted(set(found.splits)):
        counts = Counter(label for label, s in zip(found.labels, found.splits, strict=True) if s == split)
        missing = [names[k] for k in range(len(names)) if counts[k] == 0]
        if missing:
            out.append(Finding("classes", "warning", len(missing), f"classes with no {split} images: "
                               + ", ".join(missing[:10]), tuple(missing)))
        present = [c for c in counts.values() if c]
        if present and max(present) / min(present) > IMBALANCE_LIMIT:
            out.append(Finding("balance", "warning", len(present), f"{split}: the largest class has "
                               f"{max(present) / min(present):.1f}x the images of the smallest"))
        out.append(Finding("balance", "info", len(present), f"{split}: {sum(counts.values())} images, "
                           f"{min(present) if present else 0}..{max(present) if present else 0} per class"))
    return out


def _pairs_finding(found: Images, pairs: list[Pair], kind: str) -> list[Finding]:
    """Findings for exact or near pairs, split into leakage (across splits) and duplicates (within);
    near pairs come closest first and each names its distance, so the list can be read top down."""
    within = [p for p in pairs if found.splits[p.a] == found.splits[p.b]]
    across = [p for p in pairs if found.splits[p.a] != found.splits[p.b]]
    measure = f", closest first by {MEASURE} (0..1, shown per pair)" if kind == "near" else ""
    out = []

    def text(p: Pair) -> str:
        clash = " (labels differ: both left out of --write-clean)" if found.labels[p.a] != found.labels[p.b] else ""
        distance = f" ({p.distance:.4f})" if kind == "near" else ""
        return f"{found.ids[p.a]} = {found.ids[p.b]}{distance}{clash}"

    if across:
        severity = "error" if kind == "exact" else "warning"
        clashes = sum(1 for p in across if found.labels[p.a] != found.labels[p.b])
        out.append(Finding(f"{kind}-leakage", severity, len(across), f"{kind} copies across splits (test images "
                           f"seen in training); {clashes} with different labels{measure}",
                           tuple(text(p) for p in across)))
    if within:
        clashes = sum(1 for p in within if found.labels[p.a] != found.labels[p.b])
        out.append(Finding(f"{kind}-duplicates", "warning", len(within), f"{kind} copies within a split; {clashes} "
                           f"with different labels{measure}", tuple(text(p) for p in within)))
    return out


def _near(found: Images, exact: list[Pair]) -> list[Pair]:
    """Near pairs (closest first), exact ones excluded, from the 32x32 copies."""
    small = np.stack(found.small).astype(np.float32) / 255  # (N, C, 32, 32)
    if small.shape[1] == 3:
        grey = np.tensordot(np.array([0.299, 0.587, 0.114], np.float32), small, (0, 1))
        chroma = np.stack([small[:, 0] - small[:, 1], small[:, 2] - small[:, 1]], 1)
        chroma = chroma.reshape(len(small), 2, 8, 4, 8, 4).mean((3, 5))
        coloured = bool(np.abs(chroma).max() > 1 / 255)
    else:
        grey, coloured = small[:, 0], False
    native = [min(f["width"], f["height"]) for f in found.info]
    return near_pairs(grey, native, chroma if coloured else None, {(p.a, p.b) for p in exact})


def _left_out(found: Images, pairs: list[Pair]) -> dict[str, str]:
    """Ids a clean manifest leaves out, and why: broken files; of a pair with one label, one copy
    (the test one stays across splits, the first within a split); of a pair whose labels disagree,
    both (which label is right cannot be known, and keeping either teaches or tests a wrong one)."""
    dropped = {i: "broken" for i, _ in found.broken}
    for p in pairs:
        if found.labels[p.a] != found.labels[p.b]:
            dropped[found.ids[p.a]] = dropped[found.ids[p.b]] = "label conflict"
    for p in pairs:
        if found.labels[p.a] == found.labels[p.b] and found.ids[p.a] not in dropped and found.ids[p.b] not in dropped:
            dropped[found.ids[p.b] if found.splits[p.b] != "test" else found.ids[p.a]] = "copy"
    return dropped


def check(found: Images, target: str, names: tuple[str, ...], input_size: int, *, near: bool = True) -> DataReport:
    """Run every check over ``found``."""
    started = time.perf_counter()
    findings = _integrity(found, input_size) + _labels(found, names)
    exact = [Pair(g[0], other, 0.0) for g in exact_groups(found.keys) for other in g[1:]]
    findings += _pairs_finding(found, exact, "exact")
    pairs = list(exact)
    if near and found.small:
        close = _near(found, exact)
        findings += _pairs_finding(found, close, "near")
        pairs += close
    counts = dict(Counter(found.splits))
    return DataReport(target, names, counts, findings, time.perf_counter() - started, _left_out(found, pairs))


def leaked_exact(train: Any, test: Any) -> int:
    """How many test images are byte-identical to a training image (select's cheap check)."""
    seen = {hashlib.blake2b(a.tobytes(), digest_size=16).digest() for a in train.images.numpy()}
    return sum(1 for a in test.images.numpy() if hashlib.blake2b(a.tobytes(), digest_size=16).digest() in seen)


def check_target(ctx: Any, target: str, *, spec: Any = None, input_size: int | None = None,
                 near: bool = True) -> tuple[DataReport, Any]:
    """Check a registered task or dataset (by name), a task file, or a ``--data`` source (``spec``);
    returns the report and the source (None for a registered dataset)."""
    from harness.data.datatask import derived_size, read
    from harness.data.loading import load_split
    from harness.data.sources import open_source

    if spec is None and target.endswith(".toml"):
        spec = read(Path(target)).data
    if spec is not None:
        source = open_source(spec)
        size = input_size or derived_size(source)
        ctx.progress.info(f"checking {source.count()} images of {source.location}")
        for note in source.notes:  # files skipped, folders merged: what the check below cannot see
            ctx.progress.info(note)
        return check(images_of_source(source), source.location, source.class_names, size, near=near), source
    catalogue = ctx.catalogue
    dataset = catalogue.task(target).dataset if target in catalogue.tasks else catalogue.datasets.get(target).name
    entry = catalogue.datasets.get(dataset)
    asked = input_size or (catalogue.task(target).protocol.input_size if target in catalogue.tasks else None)
    splits = {split: load_split(ctx, dataset, split, image_size=asked) for split in ("train", "test")
              if split in entry.splits}
    names = tuple(next(iter(splits.values())).class_names or entry.class_names or ())
    ctx.progress.info(f"checking {sum(len(s) for s in splits.values())} images of {dataset}")
    found = images_of_tensors(splits)
    return check(found, dataset, names, asked or splits["train"].images.shape[-1], near=near), None


FORMULA = ("=", "+", "-", "@", "\t", "\r")
"""What a spreadsheet takes for the start of a formula (OWASP: CSV injection)."""


def escape_cell(value: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that starts like a formula gets a leading
    apostrophe, and so does one that starts with an apostrophe and then such a character or another
    apostrophe (which reading would otherwise take for an escape). ``sources.unescape_cell`` undoes
    it, so a manifest reads back exactly as written."""
    return "'" + value if value.startswith(FORMULA) or (value[:1] == "'" and value[1:2] in (*FORMULA, "'")) else value


def write_clean(report: DataReport, source: Any, path: Path) -> int:
    """A manifest (path,label,split) of ``source`` without the left-out files; returns its rows.
    Any file name: names that are not UTF-8 (Linux keeps bytes) are written back as the same bytes."""
    import csv

    from registry.files import atomic_write_bytes

    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(("path", "label", "split"))
    rows = 0
    for split, items in source.splits.items():
        for item, label in items:
            if str(item) in report.dropped:
                continue
            writer.writerow([escape_cell(c) for c in (str(Path(item).resolve()), source.class_names[label], split)])
            rows += 1
    atomic_write_bytes(path, buffer.getvalue().encode("utf-8", "surrogateescape"))
    return rows
