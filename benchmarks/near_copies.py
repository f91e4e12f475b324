"""Near-copy detection of ``harness data check`` on real images: recall per transformation,
precision on clean data, and the time.

Real Fashion-MNIST garments are written to a temporary folder as a user would have them
(``train/<class>/*``, ``test/<class>/*``), in one of two styles: ``small`` (the 28 px greyscale
originals as PNG) or ``photo`` (each garment upscaled to a random 64-160 px, as RGB JPEG, quality
90). Then N training images per transformation are copied into ``test/`` (train -> test leaks),
each transformed once:

- ``jpeg``: re-compressed as JPEG at a quality drawn from 50-75;
- ``down``: down-scaled to 60% (Lanczos);
- ``shift``: moved by 1-2 px in x and/or y (the uncovered edge filled with black, the background);
- ``crop``: 95% of the width and height kept, at a random offset (not resized back);
- ``bright``: brightness times 0.9 or 1.1 (Pillow's ImageEnhance, which clips at white).

The real check runs on the folder (``open_source`` -> ``images_of_source`` -> ``check``, what
``harness data check DIR`` runs), and its near pairs are read from the report: recall is the share
of planted copies reported with their original; every other pair is among the clean images (a
false pair unless the two are genuinely the same picture: Fashion-MNIST has a few; ``--sheet``
draws them for inspection). ``--full`` also times the check of all 70,000 Fashion-MNIST images.

    python benchmarks/near_copies.py [--style small|photo|both] [--per 100] [--train 5000]
        [--test 1000] [--sheet pairs.png] [--full]

Needs real Fashion-MNIST (Debian package dataset-fashion-mnist). Figures: the issue notes and the
README's ``harness data check`` section.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("tshirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")
KINDS = ("jpeg", "down", "shift", "crop", "bright")


def fashion(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images (N, 28, 28) uint8, labels) of a Fashion-MNIST split from the idx files."""
    prefix = "train" if split == "train" else "t10k"
    with gzip.open(FASHION / f"{prefix}-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)
    with gzip.open(FASHION / f"{prefix}-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)
    return images, labels


def styled(pixels: np.ndarray, style: str, rng: np.random.Generator) -> Any:
    """A garment as the user's file would hold it: 28 px grey, or upscaled RGB."""
    from PIL import Image

    image = Image.fromarray(pixels)
    if style == "photo":
        side = int(rng.integers(64, 161))
        image = image.resize((side, side), Image.Resampling.BICUBIC).convert("RGB")
    return image


def transform(image: Any, kind: str, rng: np.random.Generator) -> tuple[Any, dict[str, Any]]:
    """One planted transformation of ``image`` and how to save it."""
    from PIL import Image, ImageEnhance

    w, h = image.size
    if kind == "jpeg":
        return image, {"format": "JPEG", "quality": int(rng.integers(50, 76))}
    if kind == "down":
        return image.resize((round(w * 0.6), round(h * 0.6)), Image.Resampling.LANCZOS), {}
    if kind == "shift":
        dx, dy = 0, 0
        while dx == 0 and dy == 0:
            dx, dy = (int(v) for v in rng.integers(-2, 3, 2))
        return image.transform(image.size, Image.Transform.AFFINE, (1, 0, -dx, 0, 1, -dy)), {}
    if kind == "crop":
        cw, ch = round(w * 0.95), round(h * 0.95)
        x, y = int(rng.integers(0, w - cw + 1)), int(rng.integers(0, h - ch + 1))
        return image.crop((x, y, x + cw, y + ch)), {}
    return ImageEnhance.Brightness(image).enhance(float(rng.choice([0.9, 1.1]))), {}


def save(image: Any, path: Path, style: str, how: dict[str, Any]) -> Path:
    """PNG for the small style, JPEG (quality 90 unless told) for photos and re-compressions."""
    if how.get("format") == "JPEG" or style == "photo":
        path = path.with_suffix(".jpg")
        image.save(path, "JPEG", quality=how.get("quality", 90))
    else:
        image.save(path.with_suffix(".png"))
        path = path.with_suffix(".png")
    return path


def build(root: Path, style: str, per: int, n_train: int, n_test: int, seed: int = 0) -> dict[str, tuple[str, str]]:
    """Write the folder; returns {copy path: (original path, transformation)}."""
    rng = np.random.default_rng(seed)
    train, train_labels = fashion("train")
    test, test_labels = fashion("test")
    picked = rng.choice(len(train), n_train, replace=False)
    paths = {}
    for i in picked:
        folder = root / "train" / NAMES[train_labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        paths[int(i)] = save(styled(train[i], style, rng), folder / f"{i}", style, {})
    for i in rng.choice(len(test), n_test, replace=False):
        folder = root / "test" / NAMES[test_labels[i]]
        folder.mkdir(parents=True, exist_ok=True)
        save(styled(test[i], style, rng), folder / f"t{i}", style, {})
    planted = {}
    sources = rng.permutation(picked)[: per * len(KINDS)]
    for k, kind in enumerate(KINDS):
        for i in sources[k * per:(k + 1) * per]:
            from PIL import Image

            with Image.open(paths[int(i)]) as original:
                image, how = transform(original.copy(), kind, rng)
            folder = root / "test" / NAMES[train_labels[i]]
            copy = save(image, folder / f"{kind}-{i}", style, how)
            planted[str(copy)] = (str(paths[int(i)]), kind)
    return planted


def near_pairs_of(report: Any) -> list[tuple[str, str, float]]:
    """(a, b, distance) of every near pair the report lists, in its order."""
    out = []
    for finding in report.findings:
        if finding.check in ("near-leakage", "near-duplicates"):
            for item in finding.items:  # "A = B (0.0123)[ (labels differ...)]"; no distance before 2026-12
                a, rest = item.split(" = ", 1)
                b, _, distance = rest.partition(" (")
                try:
                    out.append((a, b, float(distance.split(")")[0])))
                except ValueError:
                    out.append((a, b, float("nan")))
    return out


def run(style: str, args: argparse.Namespace) -> list[tuple[str, str, float]]:
    """Build, check, print recall per transformation and the clean pairs; returns those."""
    from harness.data.check import check, images_of_source
    from harness.data.sources import DataSpec, open_source

    with tempfile.TemporaryDirectory() as tmp:
        planted = build(Path(tmp), style, args.per, args.train, args.test)
        source = open_source(DataSpec(tmp))
        started = time.perf_counter()
        found = images_of_source(source)
        report = check(found, tmp, source.class_names, 64)
        seconds = time.perf_counter() - started
        pairs = near_pairs_of(report)
        hits = {(a, b) for a, b, _ in pairs} | {(b, a) for a, b, _ in pairs}
        print(f"\n{style}: {sum(report.counts.values())} images ({args.train} train, {args.test} test, "
              f"{len(planted)} planted), check {seconds:.1f} s (decoding included), check() {report.seconds:.1f} s")
        for kind in KINDS:
            mine = [c for c, (_, k) in planted.items() if k == kind]
            got = sum(1 for c in mine if (c, planted[c][0]) in hits)
            print(f"  recall {kind:7s} {got}/{len(mine)} = {got / len(mine):.3f}")
        clean = [(a, b, d) for a, b, d in pairs if planted.get(a, ("",))[0] != b and planted.get(b, ("",))[0] != a]
        print(f"  pairs not planted: {len(clean)} (each a false pair unless genuinely the same picture)")
        for a, b, d in clean[:20]:
            print(f"    {d:.4f}  {Path(a).relative_to(tmp)} = {Path(b).relative_to(tmp)}")
        if args.sheet and clean:
            sheet(clean, Path(args.sheet).with_stem(f"{Path(args.sheet).stem}-{style}"))
    return clean


def sheet(pairs: list[tuple[str, str, float]], path: Path, limit: int = 60) -> None:
    """Draw pairs side by side (96 px each) with their distance, to judge them by eye."""
    from PIL import Image, ImageDraw

    board = Image.new("L", (4 * 210, 110 * ((min(limit, len(pairs)) + 3) // 4)), 128)
    draw = ImageDraw.Draw(board)
    for k, (a, b, d) in enumerate(pairs[:limit]):
        x, y = (k % 4) * 210, (k // 4) * 110
        for dx, name in ((0, a), (100, b)):
            with Image.open(name) as image:
                board.paste(image.convert("L").resize((96, 96)), (x + dx, y))
        draw.text((x, y + 97), f"{d:.4f}", fill=255)
    board.save(path)
    print(f"  drew {min(limit, len(pairs))} pairs: {path}")


def full(args: argparse.Namespace) -> None:
    """The check of all 70,000 Fashion-MNIST images (decoded tensors, as ``data check
    fashion-mnist`` has them): time and pairs."""
    import torch

    from harness.data.check import check, images_of_tensors

    class Split:
        def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
            self.images = torch.from_numpy(images.copy())[:, None]
            self.labels = torch.from_numpy(labels.astype(np.int64))

    splits = {s: Split(*fashion(s)) for s in ("train", "test")}
    started = time.perf_counter()
    found = images_of_tensors(splits)
    report = check(found, "fashion-mnist", NAMES, 28)
    pairs = near_pairs_of(report)
    print(f"\nall of Fashion-MNIST: {len(found.ids)} images, check {time.perf_counter() - started:.1f} s, "
          f"{len(pairs)} near pairs; closest and farthest reported:")
    for a, b, d in pairs[:5] + pairs[-5:]:
        print(f"    {d:.4f}  {a} = {b}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--style", choices=("small", "photo", "both"), default="both")
    parser.add_argument("--per", type=int, default=100, help="planted copies per transformation")
    parser.add_argument("--train", type=int, default=5000, help="clean training images")
    parser.add_argument("--test", type=int, default=1000, help="clean test images")
    parser.add_argument("--sheet", help="draw the pairs that were not planted into this PNG")
    parser.add_argument("--full", action="store_true", help="also time all 70,000 Fashion-MNIST images")
    args = parser.parse_args()
    for style in ("small", "photo") if args.style == "both" else (args.style,):
        run(style, args)
    if args.full:
        full(args)


if __name__ == "__main__":
    main()
