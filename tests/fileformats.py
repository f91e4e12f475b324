"""Write small datasets in the exact on-disk formats the real loaders read.

No dataset can be downloaded on CI, so the loaders are tested on files made here: CIFAR's pickled
batches, MNIST's idx files (raw and gzipped), SVHN's MATLAB files and an image folder of PNGs.
"""

from __future__ import annotations

import gzip
import pickle
import struct
from pathlib import Path

import numpy as np


def _images(n: int, h: int, w: int, c: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def write_cifar10(root: Path, n_per_batch: int = 20) -> None:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        data = _images(n_per_batch, 32, 32, 3, i).reshape(n_per_batch, -1)
        batch = {"batch_label": name, "labels": [int(x) % 10 for x in range(n_per_batch)],
                 "data": data, "filenames": [f"{k}.png" for k in range(n_per_batch)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"label_names": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                            "ship", "truck"],
            "num_cases_per_batch": n_per_batch, "num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))


def write_cifar100(root: Path, n: int = 50) -> None:
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(("train", "test")):
        batch = {"data": _images(n, 32, 32, 3, 10 + i).reshape(n, -1),
                 "fine_labels": [k % 100 for k in range(n)], "coarse_labels": [k % 20 for k in range(n)]}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
    meta = {"fine_label_names": [f"c{k}" for k in range(100)],
            "coarse_label_names": [f"s{k}" for k in range(20)]}
    (folder / "meta").write_bytes(pickle.dumps(meta, protocol=2))


def idx_images(images: np.ndarray) -> bytes:
    n, h, w = images.shape
    return struct.pack(">IIII", 0x00000803, n, h, w) + images.astype(np.uint8).tobytes()


def idx_labels(labels: np.ndarray) -> bytes:
    return struct.pack(">II", 0x00000801, len(labels)) + labels.astype(np.uint8).tobytes()


def write_mnist_raw(root: Path, folder_name: str, n_train: int = 30, n_test: int = 10) -> None:
    """torchvision's layout: ``<root>/<MNIST|FashionMNIST>/raw/*-ubyte`` (uncompressed)."""
    raw = root / folder_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        imgs = _images(n, 28, 28, 1, seed)[:, 0]
        (raw / f"{prefix}-images-idx3-ubyte").write_bytes(idx_images(imgs))
        (raw / f"{prefix}-labels-idx1-ubyte").write_bytes(idx_labels(np.arange(n) % 10))


def write_mnist_gz(folder: Path, n_train: int = 30, n_test: int = 10) -> None:
    """The distribution layout (gzipped idx files), as Debian's dataset-fashion-mnist ships it."""
    folder.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        imgs = _images(n, 28, 28, 1, seed)[:, 0]
        (folder / f"{prefix}-images-idx3-ubyte.gz").write_bytes(gzip.compress(idx_images(imgs)))
        (folder / f"{prefix}-labels-idx1-ubyte.gz").write_bytes(gzip.compress(idx_labels(np.arange(n) % 10)))


def write_svhn(root: Path, n: int = 20) -> None:
    """``<root>/<split>_32x32.mat``: X is (32, 32, 3, N), y is (N, 1) with 10 meaning digit 0."""
    import scipy.io

    root.mkdir(parents=True, exist_ok=True)
    for i, split in enumerate(("train", "test", "extra")):
        x = _images(n, 32, 32, 3, 20 + i).transpose(2, 3, 1, 0)  # N,C,H,W -> H,W,C,N
        y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)
        scipy.io.savemat(str(root / f"{split}_32x32.mat"), {"X": x, "y": y})


def write_imagefolder(root: Path, classes=("cat", "dog", "emu"), per_class: int = 3) -> None:
    """PNG files of varying sizes in ``<root>/<split>/<class>/``."""
    import numpy as np
    from PIL import Image

    for s, split in enumerate(("train", "test")):
        for c, name in enumerate(classes):
            folder = root / split / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(per_class):
                h, w = 20 + 4 * k, 30 - 2 * k
                img = np.full((h, w, 3), 40 * c + 10 * s, dtype=np.uint8)
                Image.fromarray(img).save(folder / f"{k}.png")


def write_photos(root: Path, classes=("cat", "dog", "emu"), per_class: int = 12, split: bool = False) -> Path:
    """Real JPEG and PNG files of varying sizes, one colour per class, in ``root/<class>/`` (or
    ``root/train|test/<class>/``)."""
    from PIL import Image

    rng = np.random.default_rng(0)
    for c, name in enumerate(classes):
        for k in range(per_class):
            part = ("test" if k % 4 == 0 else "train") if split else ""
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            h, w = 40 + k % 5, 48 - k % 3
            pixels = np.zeros((h, w, 3), np.uint8)
            pixels[..., c] = 170
            pixels += rng.integers(0, 50, (h, w, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{k}.{'jpg' if k % 2 else 'png'}")
    return root
