"""``harness select --data DIR --budget quick`` on a folder of photos, timed the way a user meets it:
a new process, an empty ``HARNESS_HOME`` and ``HARNESS_CACHE`` (nothing decoded, nothing trained).

The photos are real Fashion-MNIST garments (Debian's ``dataset-fashion-mnist``) written as a
phone or a web shop would hand them over: RGB JPEGs of 80-130 px (shorter side), each garment
tinted and placed on a light background, a third of them saved with an EXIF rotation tag
(pixels stored sideways, as a phone does), in ``DIR/<class>/``. 300 per class by default: 3,000
photos, the issue's "~3,000 photos of ~100 px".

Prints the seconds, the chosen model with its validation and test accuracy, and select's own
plan/estimate lines (so the estimate can be compared with the time taken).

    python benchmarks/own_data_quick.py [--per-class 300] [--folder DIR] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle-boot")


def fashion(limit: int) -> tuple[np.ndarray, np.ndarray]:
    """The first ``limit`` training garments (28x28 grey) and labels."""
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as f:
        images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28)[:limit]
    with gzip.open(FASHION / "train-labels-idx1-ubyte.gz") as f:
        labels = np.frombuffer(f.read(), np.uint8, offset=8)[:limit]
    return images, labels


def write_garment_photos(root: Path, per_class: int, seed: int = 0) -> Path:
    """``per_class`` photos of each class in ``root/<class>/`` (see the module docstring)."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    images, labels = fashion(per_class * 14)
    done = dict.fromkeys(range(10), 0)
    for k, (grey, label) in enumerate(zip(images, labels, strict=True)):
        if done[int(label)] >= per_class:
            continue
        done[int(label)] += 1
        side = int(rng.integers(80, 131))
        tint = rng.uniform(0.4, 1.0, 3)
        background = rng.uniform(200, 250, 3)
        ink = grey.astype(np.float32)[..., None] / 255
        pixels = background * (1 - ink) + ink * 255 * tint
        photo = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).resize(
            (side, int(side * rng.uniform(1.0, 1.3))), Image.Resampling.BICUBIC)
        folder = root / CLASSES[int(label)]
        folder.mkdir(parents=True, exist_ok=True)
        if k % 3 == 0:  # stored sideways with the tag that says so, as a phone does
            exif = Image.Exif()
            exif[0x0112] = 6
            photo.transpose(Image.Transpose.ROTATE_90).save(folder / f"{k:05d}.jpg", quality=88, exif=exif)
        else:
            photo.save(folder / f"{k:05d}.jpg", quality=88)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--per-class", type=int, default=300)
    parser.add_argument("--folder", type=Path, help="write the photos here (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="own-data-"))
    folder = args.folder or work / "photos"
    if not folder.is_dir() or not any(folder.iterdir()):
        write_garment_photos(folder, args.per_class)
    env = {**os.environ, "HARNESS_HOME": str(work / "home"), "HARNESS_CACHE": str(work / "cache")}
    harness = Path(sys.executable).with_name("harness")
    command = [str(harness), "select", "--data", str(folder), "--budget", "quick", "--format", "json"]
    started = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    sys.stderr.write(done.stderr)
    if done.returncode != 0:
        raise SystemExit(f"select failed ({done.returncode})")
    result = json.loads(done.stdout)
    primary = result["primary_metric"]
    print(f"photos: {sum(1 for _ in folder.rglob('*.jpg'))} in {folder}")
    print(f"select --data DIR --budget quick: {seconds:.0f} s (fresh HARNESS_HOME and HARNESS_CACHE)")
    print(f"chosen: {result['winner']}")
    for row in result["rows"]:
        print(f"  {row['candidate']}: {row['status']}, val {row.get('val')}, test {primary} {row.get(primary)}")
    if not args.keep and args.folder is None:
        import shutil

        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
