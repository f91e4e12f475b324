"""Readers for the standard datasets in their real on-disk formats, same layout as torchvision's.

- CIFAR-10/100: ``<root>/cifar-10-batches-py/`` and ``<root>/cifar-100-python/`` (pickled
  batches). They are read with a restricted unpickler that accepts numpy arrays and nothing else,
  so a tampered file cannot run code; checksums are verified and a mismatch is reported.
- MNIST / Fashion-MNIST: torchvision's own classes (idx files under ``<root>/<Name>/raw``).
  Fashion-MNIST is also found in Debian's ``dataset-fashion-mnist`` package.
- SVHN: ``<root>/{train,test,extra}_32x32.mat`` (MATLAB files, read with scipy).

Missing files are downloaded (unless downloading is off) by :mod:`harness.data.download`:
checksummed, atomic, with a progress bar; archives are extracted with ``tarfile``'s ``data``
filter, which refuses absolute paths, ``..`` and links out of the folder. Offline, the error names
the files, the folder to put them in and, for Fashion-MNIST, Debian's ``dataset-fashion-mnist``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import shutil
import sys
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from registry import DataError, ImageSplit

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")

CIFAR: dict[str, dict[str, Any]] = {
    "cifar10": {
        "folder": "cifar-10-batches-py",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        "archive_md5": "c58f30108f718f92721af3b95e74349a",
        "train": [("data_batch_1", "c99cafc152244af753f735de768cd75f"),
                  ("data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"),
                  ("data_batch_3", "54ebc095f3ab1f0389bbae665268c751"),
                  ("data_batch_4", "634d18415352ddfa80567beed471001a"),
                  ("data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb")],
        "test": [("test_batch", "40351d587109b95175f43aff81a1287e")],
        "labels_key": "labels",
    },
    "cifar100": {
        "folder": "cifar-100-python",
        "url": "https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        "archive_md5": "eb9058c3a382ffc7106e4002c42a8d85",
        "train": [("train", "16019d7e3df5f24257cddd939b257f8d")],
        "test": [("test", "f0ef6b0ae62326f3e7ffdfab6717acfc")],
        "labels_key": "fine_labels",
    },
}

_NUMPY_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
    ("numpy._core.multiarray", "scalar"), ("numpy._core.numeric", "_frombuffer"),
    ("numpy.core.numeric", "_frombuffer"), ("_codecs", "encode"),
}


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays; refuses every other global (no code runs)."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _NUMPY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refused to load {module}.{name}: data files may hold arrays only")


def safe_unpickle(path: Path) -> Any:
    """Load a pickled dict of arrays (CIFAR's format) without executing anything."""
    with open(path, "rb") as f:
        try:
            return _NumpyOnlyUnpickler(f, encoding="latin1").load()
        except pickle.UnpicklingError as exc:
            raise DataError(f"{path}: {exc}") from None
        except (EOFError, ValueError, TypeError, IndexError) as exc:
            raise DataError(f"{path} is truncated or not a CIFAR batch ({type(exc).__name__}); "
                            "delete it and download again") from None


def md5sum(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def warn_if_modified(path: Path, expected_md5: str) -> None:
    """Report files that differ from the official release (a custom or damaged copy)."""
    if md5sum(path) != expected_md5:
        print(f"harness: warning: {path} differs from the official release (md5 mismatch); "
              "using it as found", file=sys.stderr)


def safe_extract(archive: Path, destination: Path) -> None:
    """Extract a tar archive, refusing members that would land outside ``destination``."""
    with tarfile.open(archive) as tar:
        if hasattr(tarfile, "data_filter"):
            tar.extractall(destination, filter="data")
            return
        root = destination.resolve()
        for member in tar.getmembers():
            target = (destination / member.name).resolve()
            if not target.is_relative_to(root) or member.issym() or member.islnk():
                raise DataError(f"{archive}: refusing unsafe archive member {member.name!r}")
        tar.extractall(destination)


def _download_archive(dataset: str, url: str, root: Path, md5: str) -> None:
    from harness.data.download import RemoteFile, fetch, missing_folders, remove_if_empty, sources

    base, _, filename = url.rpartition("/")
    made = missing_folders(root)
    archive = fetch(RemoteFile(filename, sources(dataset, filename, [base]), md5=md5, dataset=dataset),
                    root / filename)
    try:
        extract_atomically(archive, root)
    finally:
        archive.unlink(missing_ok=True)
        remove_if_empty(made)


def extract_atomically(archive: Path, root: Path) -> None:
    """Extract ``archive`` into a temporary folder in ``root``, then move what it holds into place:
    a folder that is not there yet is renamed in whole, into one that is only its missing files; an
    extraction that fails (a full disk, an unsafe member) leaves no half folder to be taken for data."""
    staging = Path(tempfile.mkdtemp(dir=root, prefix=f".{archive.name}.", suffix=".extract"))
    try:
        safe_extract(archive, staging)
        _move_missing(staging, root)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _move_missing(source: Path, target: Path) -> None:
    """Rename each entry of ``source`` into ``target`` where it is absent (folders merged)."""
    for entry in sorted(source.iterdir()):
        there = target / entry.name
        if entry.is_dir() and not entry.is_symlink() and there.is_dir():
            _move_missing(entry, there)
        elif not os.path.lexists(there):
            os.replace(entry, there)


def downloads_off(name: str, where: Path, files: str, also: str = "") -> DataError:
    """The error of a missing dataset that may not be downloaded: why not, and what to place
    where (``also``: another way to get it, said first)."""
    from harness.environment import offline_by_environment

    why = offline_by_environment(hub=True) or "--no-download or --offline"
    return DataError(f"{name} is not in {where} and downloading is off ({why}); {also}place {files} there, "
                     "or allow downloading")


def _str_keys(entry: Any) -> Any:
    """Python 2 pickles give str keys under latin1; Python 3 writers may have used bytes."""
    if isinstance(entry, dict):
        return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}
    return entry


def load_cifar(name: str, split: str, root: Path, download: bool) -> ImageSplit:
    """Read CIFAR-10/100 python batches from ``root`` (downloading them if allowed)."""
    import numpy as np
    import torch

    spec = CIFAR[name]
    folder = root / spec["folder"]
    files = spec[split]
    if not all((folder / f).is_file() for f, _ in files):
        if not download:
            raise downloads_off(name, folder, f"the files of {spec['url']} (extracted into {root})")
        _download_archive(name, spec["url"], root, spec["archive_md5"])
    data: list[Any] = []
    labels: list[int] = []
    for filename, md5 in files:
        path = folder / filename
        warn_if_modified(path, md5)
        entry = _str_keys(safe_unpickle(path))
        if not isinstance(entry, dict) or "data" not in entry or spec["labels_key"] not in entry:
            raise DataError(f"{path} is not a {name} batch (no 'data'/{spec['labels_key']!r} keys)")
        data.append(np.asarray(entry["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        labels.extend(int(v) for v in entry[spec["labels_key"]])
    meta_name = "batches.meta" if name == "cifar10" else "meta"
    meta_key = "label_names" if name == "cifar10" else "fine_label_names"
    meta_path = folder / meta_name
    class_names: tuple[str, ...] = ()
    if meta_path.is_file():
        names = _str_keys(safe_unpickle(meta_path)).get(meta_key, [])
        class_names = tuple(c.decode() if isinstance(c, bytes) else str(c) for c in names)
    images = torch.from_numpy(np.concatenate(data))
    return ImageSplit(images, torch.tensor(labels, dtype=torch.int64), class_names)


IDX_NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
             "t10k-labels-idx1-ubyte")
IDX_UPSTREAM = {"fashion-mnist": ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com",),
                "mnist": ("https://ossci-datasets.s3.amazonaws.com/mnist", "http://yann.lecun.com/exdb/mnist")}
IDX_CHECKSUMS: dict[str, dict[str, tuple[str, str | None]]] = {
    # (md5 of the published .gz, sha256 of the idx content): Debian's dataset-fashion-mnist recompressed
    # the same files, so its copy (or a mirror of it) matches by content
    "fashion-mnist": {
        "train-images-idx3-ubyte": ("8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                                    "c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888"),
        "train-labels-idx1-ubyte": ("25c81989df183df01b3e8a0aad5dffbe",
                                    "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9"),
        "t10k-images-idx3-ubyte": ("bef4ecab320f06d8554ea6380940ec79",
                                   "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b"),
        "t10k-labels-idx1-ubyte": ("bb300cfdad3c16e7a12a480ee83cd310",
                                   "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    },
    "mnist": {  # torchvision's
        "train-images-idx3-ubyte": ("f68b3c2dcbeaaa9fbdd348bbdeb94873", None),
        "train-labels-idx1-ubyte": ("d53e105ee54ea40749a09fcbcd1e9432", None),
        "t10k-images-idx3-ubyte": ("9fb629c4189551a2d022fa330f9573f3", None),
        "t10k-labels-idx1-ubyte": ("ec29112dd5afa0611ce80d1b7f02629c", None),
    },
}


def idx_problem(path: Path) -> str | None:
    """Why ``path`` is not a complete idx file (MNIST's format), or None when it is: the header
    gives the dimensions, so a truncated or padded file is caught without decoding it."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(4)
            if len(header) < 4 or header[:2] != b"\0\0" or header[2] != 0x08 or not 1 <= header[3] <= 4:
                return f"not an idx file ({size} bytes)"
            dims = [int.from_bytes(f.read(4), "big") for _ in range(header[3])]
    except OSError as exc:
        return f"unreadable ({exc.strerror})"
    count = 1
    for d in dims:
        count *= d
    expected = 4 + 4 * len(dims) + count
    return None if size == expected else f"truncated or damaged ({size} bytes, its header says {expected})"


def _prepare_debian_fashion_mnist(root: Path) -> None:
    """Decompress Debian's Fashion-MNIST into torchvision's layout (``<root>/FashionMNIST/raw``);
    a damaged copy there (truncated by a full disk, say) is extracted again."""
    raw = root / "FashionMNIST" / "raw"
    names = IDX_NAMES
    if all((raw / n).is_file() and idx_problem(raw / n) is None for n in names):
        return
    source = Path(os.environ.get("HARNESS_FASHION_MNIST_DIR", DEBIAN_FASHION_MNIST))
    if not all((source / f"{n}.gz").is_file() for n in names):
        return
    raw.mkdir(parents=True, exist_ok=True)
    for n in names:
        if (raw / n).is_file() and idx_problem(raw / n) is None:
            continue
        with gzip.open(source / f"{n}.gz", "rb") as src, \
                tempfile.NamedTemporaryFile(dir=raw, delete=False, prefix=f".{n}.") as tmp:
            shutil.copyfileobj(src, tmp)
            tmp.flush()
            os.fsync(tmp.fileno())
        os.replace(tmp.name, raw / n)


def load_mnist_family(name: str, split: str, root: Path, download: bool) -> ImageSplit:
    """MNIST or Fashion-MNIST through torchvision's own reader."""
    import torch
    from torchvision import datasets

    cls = {"mnist": datasets.MNIST, "fashion-mnist": datasets.FashionMNIST}[name]
    if name == "fashion-mnist":
        _prepare_debian_fashion_mnist(root)
    raw = root / cls.__name__ / "raw"
    prefix = "train" if split == "train" else "t10k"
    for n in (f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"):
        problem = (raw / n).is_file() and idx_problem(raw / n)
        if problem:
            raise DataError(f"{raw / n} is {problem}; delete it and rerun: it is fetched again"
                            + (" (downloaded, or from Debian's dataset-fashion-mnist)" if name == "fashion-mnist"
                               else " (downloaded, unless downloading is off)"))
    if not all((raw / n).is_file() for n in IDX_NAMES):
        _get_idx(name, raw, download)
    try:
        ds = cls(str(root), train=(split == "train"), download=False)
    except RuntimeError as exc:
        raise DataError(f"{name} could not be read from {raw}: {exc}; delete the folder and run again") from None
    images = ds.data.unsqueeze(1).contiguous()
    return ImageSplit(images, ds.targets.to(dtype=torch.int64), tuple(ds.classes))


def _get_idx(name: str, raw: Path, download: bool) -> None:
    """Make ``raw`` hold the four idx files: decompress the ``.gz`` files placed there, download
    the others (each checked, then decompressed in place, atomically), or say what to install or
    place when downloading is off or fails."""
    from harness.data.download import missing_folders, remove_if_empty

    debian = ""
    if name == "fashion-mnist":  # a local copy of the .gz files: Debian's folder, or HARNESS_FASHION_MNIST_DIR's
        chosen = os.environ.get("HARNESS_FASHION_MNIST_DIR")
        debian = (f"put its four .gz files in HARNESS_FASHION_MNIST_DIR ({chosen!r} does not hold them) or unset "
                  "it and install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist; "
                  f"harness then reads {DEBIAN_FASHION_MNIST}), or "
                  if chosen else
                  f"install Debian's package dataset-fashion-mnist (apt-get install dataset-fashion-mnist; harness "
                  f"reads {DEBIAN_FASHION_MNIST}), or set HARNESS_FASHION_MNIST_DIR to a folder holding its four .gz "
                  "files, or ")
    absent = [n for n in IDX_NAMES if not (raw / n).is_file() and not (raw / f"{n}.gz").is_file()]
    if absent and not download:
        raise downloads_off(name, raw, ", ".join(f"{n}.gz" for n in IDX_NAMES), also=debian)
    made = missing_folders(raw)
    raw.mkdir(parents=True, exist_ok=True)
    try:
        _fetch_idx(name, raw, debian)
    finally:  # each file is whole or absent; a folder left empty by a failure is removed
        remove_if_empty(made)


def _fetch_idx(name: str, raw: Path, debian: str) -> None:
    """:func:`_get_idx`'s downloads and decompressions, one file at a time."""
    from harness.data.download import RemoteFile, fetch, gunzip, sources

    for n in IDX_NAMES:
        if (raw / n).is_file():
            continue
        archive, placed = raw / f"{n}.gz", (raw / f"{n}.gz").is_file()
        if not placed:
            md5, content = IDX_CHECKSUMS[name][n]
            try:
                fetch(RemoteFile(archive.name, sources(name, archive.name, IDX_UPSTREAM[name]), md5, content,
                                 dataset=name), archive)
            except DataError as exc:
                raise DataError(f"{exc}" + (f"; or {debian.removesuffix(', or ')}" if debian else "")) from None
        gunzip(archive, raw / n)
        if not placed:
            archive.unlink()


SVHN = {"train": "e26dedcc434d2e4c54c9b2d4a06d8373", "test": "eb5a983be6a315427106f1b164d9cef3",
        "extra": "a93ce644f1a588dc4d68dda5feec44a7"}


def load_svhn(split: str, root: Path, download: bool) -> ImageSplit:
    """SVHN cropped digits from ``<root>/<split>_32x32.mat`` (label 10 means digit 0)."""
    import numpy as np
    import scipy.io
    import torch

    path = root / f"{split}_32x32.mat"
    if not path.is_file():
        if not download:
            raise downloads_off(f"svhn ({split})", root, path.name)
        from harness.data.download import RemoteFile, fetch, sources

        fetch(RemoteFile(path.name, sources("svhn", path.name, ["http://ufldl.stanford.edu/housenumbers"]),
                         md5=SVHN[split], dataset="svhn"), path)
    warn_if_modified(path, SVHN[split])
    try:
        mat = scipy.io.loadmat(str(path))
    except Exception as exc:
        raise DataError(f"{path} is not a readable SVHN .mat file ({type(exc).__name__}: {exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path} has no 'X'/'y' arrays: not an SVHN file")
    images = np.ascontiguousarray(np.transpose(mat["X"], (3, 2, 0, 1))).astype(np.uint8)
    labels = mat["y"].astype(np.int64).reshape(-1) % 10
    return ImageSplit(torch.from_numpy(images), torch.from_numpy(labels),
                      tuple(str(i) for i in range(10)))
