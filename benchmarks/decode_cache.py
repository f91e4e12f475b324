"""Decoding a folder of your photos: harness's ``decode_all`` against the loop one writes by hand,
side by side in one run; optionally (``--extras``) torchvision.io, harness's first and cached
``--data`` runs, and training from the memory-mapped cache against an in-memory tensor.

The photos are real Fashion-MNIST garments (``/usr/share/datasets/fashion-mnist``, Debian's
dataset-fashion-mnist), each tinted and resized to a random 64-400 x 64-400 px and written as an
RGB JPEG (quality 90), one folder per class, in a temporary folder (or ``--folder``). Each phase
runs in its own process after its imports, and reports:

- wall images/s, and CPU seconds per image from ``getrusage`` (this process, all its threads, and
  its worker processes, which are reaped before the figure is read);
- pillow loop: one process, one thread: ``Image.open -> convert RGB -> resize shorter side
  (bilinear) -> centre crop``, into one uint8 array;
- harness: ``harness.data.decode.decode_all`` on the same files in the same order (libjpeg-turbo
  at reduced scale through simplejpeg, the centre square resized once, a worker process per
  usable core beyond the first, which this process takes);
- the ratios (harness / pillow loop) and the mean absolute difference of their pixels (0..255),
  which shows harness's faster path keeps the picture (reduced-scale decoding and the exact centre
  square differ from the loop's by 2-3 levels in 255 per pixel; the loop's own rounding of the
  resized size and crop offset is 1.1 of that, measured against a full decode of the exact square).

Phases run A-B-B-A (``--rounds 2``) so that a machine that gets busier or quieter during the run
does not favour one side; every round is printed, and the medians. The 2-core machines these
figures come from are shared: run it a few times and report every run.

Measured here (2026-12, 2 cores shared with other sessions: load average 7.4-9.3 throughout, and
the kernel's autogroup scheduling gives each session a share, so while the machine is saturated a
phase gets about the same CPU whatever its threads and the wall ratio approaches the inverse of the
CPU ratio), 20,000 photos at 64 px, four runs of two A-B-B-A rounds each, medians:

    pillow loop   994 / 868 / 980 / 1449 img/s    0.589 / 0.595 / 0.599 / 0.552 CPU-ms per image
    harness      1719 / 1498 / 2047 / 2534 img/s  0.280 / 0.332 / 0.280 / 0.284 CPU-ms per image
    ratio        1.73 / 1.72 / 2.09 / 1.75x wall, 0.48 / 0.56 / 0.47 / 0.51 CPU per image
    mean abs diff 2.72 (0..255) in every run

On a machine whose second core is free, the worker process adds it on top (not measured here).

    python benchmarks/decode_cache.py [--images 20000] [--size 64] [--rounds 2] [--folder DIR] [--extras]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
phase, folder, size, listing, out_path = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
files = Path(listing).read_text().splitlines()
import numpy as np
from PIL import Image
if phase == "torchvision":
    import torch
    from torchvision.io import decode_jpeg, read_file
    from torchvision.transforms.v2.functional import center_crop, resize
elif phase == "harness":
    from harness.data.decode import decode_all, usable_cores
    from harness.data.sources import DataSpec, open_source
    source = open_source(DataSpec(str(folder)))  # the folder walk is not decoding: not timed
elif phase != "pillow":
    import torch
    from harness.data.datatask import load_split, make_spec
    from harness.data.sources import DataSpec

def cpu(who=resource.RUSAGE_SELF):
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime

# after the imports: decoding is what is timed; this process (all threads) and its reaped workers
started, own_started, kids_started = time.perf_counter(), cpu(), cpu(resource.RUSAGE_CHILDREN)
extra, out = {}, None
if phase == "pillow":
    out = np.empty((len(files), size, size, 3), np.uint8)
    for i, f in enumerate(files):
        with Image.open(f) as im:
            im = im.convert("RGB")
            w, h = im.size
            s = size / min(w, h)
            im = im.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BILINEAR)
            l, t = (im.width - size) // 2, (im.height - size) // 2
            out[i] = np.asarray(im.crop((l, t, l + size, t + size)))
elif phase == "harness":
    out = decode_all(source, [Path(f) for f in files], size).transpose(0, 2, 3, 1)
    extra["workers"] = usable_cores()
elif phase == "torchvision":
    torch.set_num_threads(1)
    images = torch.empty((len(files), 3, size, size), dtype=torch.uint8)
    for i, f in enumerate(files):
        images[i] = center_crop(resize(decode_jpeg(read_file(f)), size, antialias=True), size)
    out = images.permute(0, 2, 3, 1).numpy()
else:  # harness first / cached: the whole --data path with the on-disk cache
    spec = make_spec("bench", DataSpec(str(folder)), input_size=size)
    split = load_split(spec, "train", folder)
    if phase == "cached-read":  # touch every page once, a row block at a time
        total = sum(int(split.images[i:i + 1024].sum(dtype=torch.int64)) for i in range(0, len(split.images), 1024))
    files = range(len(split.images))
seconds = time.perf_counter() - started
own_s, kids_s = cpu() - own_started, cpu(resource.RUSAGE_CHILDREN) - kids_started
cpu_s = own_s + kids_s
if kids_s:
    extra["cpu_ms_per_image_in_workers"] = round(kids_s / len(files) * 1e3, 3)
if out is not None:
    np.save(out_path, out)
print(json.dumps({"phase": phase, "images": len(files), "seconds": round(seconds, 3),
                  "images_per_s": round(len(files) / seconds, 1),
                  "cpu_ms_per_image": round(cpu_s / len(files) * 1e3, 3),
                  "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1), **extra}))
"""

FASHION = Path("/usr/share/datasets/fashion-mnist")
CLASSES = ("t-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "boot")


def garments(count: int) -> tuple[Any, Any]:
    """The first ``count`` Fashion-MNIST training images (28x28 grey) and labels, from the idx files."""
    import numpy as np

    if not (FASHION / "train-images-idx3-ubyte.gz").is_file():
        sys.exit(f"no Fashion-MNIST in {FASHION}: apt-get install dataset-fashion-mnist")
    with gzip.open(FASHION / "train-images-idx3-ubyte.gz") as f:
        _, n, h, w = struct.unpack(">IIII", f.read(16))
        images = np.frombuffer(f.read(min(count, n) * h * w), np.uint8).reshape(-1, h, w)
    with gzip.open(FASHION / "train-labels-idx1-ubyte.gz") as f:
        f.read(8)
        labels = np.frombuffer(f.read(len(images)), np.uint8)
    return images, labels


def make_folder(folder: Path, count: int) -> float:
    """``count`` garments as RGB JPEGs of 64-400 px a side in one folder per class; returns seconds."""
    import numpy as np
    from PIL import Image

    started = time.perf_counter()
    images, labels = garments(count)
    rng = np.random.default_rng(0)
    for i, (pixels, label) in enumerate(zip(images, labels, strict=True)):
        w, h = (int(x) for x in rng.integers(64, 401, 2))
        grey = np.asarray(Image.fromarray(pixels).resize((w, h), Image.Resampling.BICUBIC), np.float32)
        rgb = grey[..., None] * rng.uniform(0.5, 1.0, 3) + rng.uniform(0, 40, 3)  # a tint and a background
        sub = folder / CLASSES[label]
        sub.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rgb.clip(0, 255).astype(np.uint8)).save(sub / f"{i:06d}.jpg", quality=90)
    return time.perf_counter() - started


def run_phase(phase: str, folder: Path, size: int, listing: Path, work: Path, env: dict[str, str]) -> dict:
    """One phase in a fresh process; its pixels (N, S, S, 3) are left in ``work/<phase>.npy``."""
    out = subprocess.run([sys.executable, "-c", CHILD, phase, str(folder), str(size), str(listing),
                          str(work / f"{phase}.npy")], env=env, capture_output=True, text=True)
    if out.returncode:
        sys.exit(f"phase {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def mean_abs_diff(work: Path, a: str, b: str) -> float:
    """Mean absolute difference (0..255) of two phases' pixels, a block at a time."""
    import numpy as np

    x, y = np.load(work / f"{a}.npy", mmap_mode="r"), np.load(work / f"{b}.npy", mmap_mode="r")
    total = sum(float(np.abs(x[i:i + 1024].astype(np.int16) - y[i:i + 1024]).sum()) for i in range(0, len(x), 1024))
    return round(total / x.size, 3)


def training(folder: Path, size: int, env: dict[str, str], steps: int, rounds: int) -> dict:
    """images/s of TensorBatches + one SGD step, from the mapped cache and from a clone in RAM."""
    os.environ.update(env)
    import torch

    from harness.data import cache
    from harness.data.batches import TensorBatches
    from harness.data.datatask import load_split, make_spec
    from harness.data.preprocess import Preprocess
    from harness.data.sources import DataSpec
    from harness.plugins import load_plugins

    cache.IN_MEMORY_LIMIT = 0  # keep the split mapped, as a split larger than RAM would be
    split = load_split(make_spec("bench", DataSpec(str(folder)), input_size=size), "train", folder)
    mapped, memory = split.images, split.images.clone()
    model = load_plugins().catalogue.backbones.get("cifar_convnet_xs").builder(10, None)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    pre = Preprocess(input_size=size, augmentation=("hflip",))
    results: dict[str, list[float]] = {"mapped": [], "memory": []}
    for _ in range(rounds):
        for name, images in (("mapped", mapped), ("memory", memory)):
            batches = TensorBatches(images, split.labels, 64, pre, torch.device("cpu"), train=True,
                                    generator=torch.Generator().manual_seed(0))
            started, seen = time.perf_counter(), 0
            for step, (x, y) in enumerate(batches):
                if step == steps:
                    break
                opt.zero_grad()
                torch.nn.functional.cross_entropy(model(x), y).backward()
                opt.step()
                seen += len(y)
            results[name].append(seen / (time.perf_counter() - started))
    return {k: round(statistics.median(v), 1) for k, v in results.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2, help="A-B-B-A rounds of the pillow loop and harness.")
    parser.add_argument("--folder", type=Path, help="Reuse (or keep) the generated folder here.")
    parser.add_argument("--extras", action="store_true", help="Also torchvision.io, harness's first and cached "
                                                               "--data runs, and training from the cache.")
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="harness-bench-decode-"))
    try:
        run(args, work)
    finally:  # the pixels of each phase (~0.25 GB each at 20,000 x 64 px), and the photos unless --folder
        shutil.rmtree(work, ignore_errors=True)


def run(args: argparse.Namespace, work: Path) -> None:
    folder = args.folder or work / "photos"
    made = 0.0
    if not folder.is_dir() or len(list(folder.rglob("*.jpg"))) < args.images:
        made = make_folder(folder, args.images)
    files = sorted(folder.rglob("*.jpg"), key=lambda p: (p.parent.name, p))[:args.images]  # the source's order
    listing = work / "files.txt"
    listing.write_text("\n".join(str(f) for f in files))
    env = {**os.environ, "HARNESS_CACHE": str(work / "cache"), "HARNESS_HOME": str(work / "home")}
    load = os.getloadavg()[0]
    rows: dict[str, list[dict]] = {"pillow": [], "harness": []}
    for r in range(args.rounds):
        for phase in ("pillow", "harness") if r % 2 == 0 else ("harness", "pillow"):
            rows[phase].append(run_phase(phase, folder, args.size, listing, work, env))
            print(json.dumps({"round": r + 1, **rows[phase][-1]}), flush=True)
    median = {p: {k: statistics.median(row[k] for row in v) for k in ("images_per_s", "cpu_ms_per_image")}
              for p, v in rows.items()}
    print(json.dumps({"images": len(files), "size": args.size, "cores": os.cpu_count(),
                      "load_before": round(load, 2), "load_after": round(os.getloadavg()[0], 2),
                      "pillow_loop": median["pillow"], "harness": median["harness"],
                      "wall_ratio": round(median["harness"]["images_per_s"] / median["pillow"]["images_per_s"], 2),
                      "cpu_per_image_ratio": round(median["harness"]["cpu_ms_per_image"]
                                                   / median["pillow"]["cpu_ms_per_image"], 2),
                      "mean_abs_diff_0_255": mean_abs_diff(work, "harness", "pillow"),
                      "folder": str(folder), "generated_s": round(made, 1)}))
    if args.extras:
        extras(folder, args, listing, work, env)


def extras(folder: Path, args: argparse.Namespace, listing: Path, work: Path, env: dict[str, str]) -> None:
    """torchvision.io's decoder, the --data path with an empty and a full cache, training from it."""
    pillow = run_phase("pillow", folder, args.size, listing, work, env)["images_per_s"]
    for phase in ("torchvision", "first", "cached", "cached-read"):
        row = run_phase(phase, folder, args.size, listing, work, env)
        print(json.dumps({**row, "vs_pillow_loop": round(row["images_per_s"] / pillow, 2)}), flush=True)
    train = training(folder, args.size, env, args.steps, 3)
    print(json.dumps({"training_images_per_s": train, "mapped_vs_memory": round(train["mapped"] / train["memory"], 3)}))


if __name__ == "__main__":
    main()
