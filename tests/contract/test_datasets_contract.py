"""Every dataset loads a split from files in its real on-disk format, through the real loader."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
from fileformats import (
    write_cifar10,
    write_cifar100,
    write_imagefolder,
    write_mnist_gz,
    write_mnist_raw,
    write_svhn,
)
from helpers import data_ctx, make_plugins

from harness.data import data_root, load_split
from harness.errors import DataError, PluginError, UsageError
from registry import ImageSplit

# How to lay out each dataset's files; (writer, expected train size, image shape CxHxW).
LAYOUTS = {
    "cifar10": (write_cifar10, 100, (3, 32, 32)),
    "cifar100": (write_cifar100, 50, (3, 32, 32)),
    "mnist": (lambda root: write_mnist_raw(root, "MNIST"), 30, (1, 28, 28)),
    "fashion-mnist": (lambda root: write_mnist_raw(root, "FashionMNIST"), 30, (1, 28, 28)),
    "svhn": (write_svhn, 20, (3, 32, 32)),
    "imagefolder": (write_imagefolder, 9, (3, 24, 24)),
    "synthetic": (lambda root: None, 1000, (3, 32, 32)),
}


def test_every_dataset_has_a_file_layout_test(catalogue):
    assert set(catalogue.datasets.names()) == set(LAYOUTS), "add a writer for each new dataset"


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_dataset_loads_train_and_test(builtin_plugins, catalogue, tmp_path, name):
    writer, n_train, shape = LAYOUTS[name]
    writer(tmp_path)
    entry = catalogue.datasets.get(name)
    for split in ("train", "test"):
        data = load_split(data_ctx(builtin_plugins, tmp_path), name, split, image_size=24)
        assert isinstance(data, ImageSplit)
        assert data.images.dtype == torch.uint8 and tuple(data.images.shape[1:]) == shape
        assert data.labels.dtype == torch.int64 and len(data) == data.images.shape[0] > 0
        classes = entry.num_classes or len(data.class_names)
        assert int(data.labels.min()) >= 0 and int(data.labels.max()) < classes
        if entry.class_names:
            assert tuple(data.class_names) == entry.class_names
    assert len(load_split(data_ctx(builtin_plugins, tmp_path), name, "train", image_size=24)) == n_train


def test_cifar_pixels_and_labels_round_trip(builtin_plugins, catalogue, tmp_path):
    write_cifar10(tmp_path)
    batch = pickle.loads((tmp_path / "cifar-10-batches-py" / "test_batch").read_bytes(), encoding="latin1")
    data = load_split(data_ctx(builtin_plugins, tmp_path), "cifar10", "test")
    assert torch.equal(data.images.reshape(len(data), -1), torch.from_numpy(batch["data"]))
    assert data.labels.tolist() == batch["labels"]


def test_svhn_label_ten_means_zero(builtin_plugins, catalogue, tmp_path):
    write_svhn(tmp_path)
    data = load_split(data_ctx(builtin_plugins, tmp_path), "svhn", "extra")
    assert data.labels[:10].tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 0]


def test_fashion_mnist_from_debian_style_gz_folder(builtin_plugins, catalogue, tmp_path, monkeypatch):
    system = tmp_path / "system"
    write_mnist_gz(system, n_train=40, n_test=12)
    monkeypatch.setenv("HARNESS_FASHION_MNIST_DIR", str(system))
    data = load_split(data_ctx(builtin_plugins, tmp_path / "cache"), "fashion-mnist", "test")
    assert len(data) == 12
    assert (tmp_path / "cache" / "FashionMNIST" / "raw" / "t10k-images-idx3-ubyte").is_file()


def test_cifar_pickle_with_code_is_refused(builtin_plugins, catalogue, tmp_path):
    write_cifar10(tmp_path)

    class Exploit:
        def __reduce__(self):
            return (Path("/tmp/harness-cifar-pwned").touch, ())

    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({"data": Exploit()}))
    with pytest.raises(DataError, match="refused to load"):
        load_split(data_ctx(builtin_plugins, tmp_path), "cifar10", "test")
    assert not Path("/tmp/harness-cifar-pwned").exists()


def test_modified_cifar_files_are_reported(builtin_plugins, catalogue, tmp_path, capsys):
    write_cifar10(tmp_path)
    load_split(data_ctx(builtin_plugins, tmp_path), "cifar10", "test")
    assert "md5 mismatch" in capsys.readouterr().err


def test_missing_data_offline_says_what_to_place_where(builtin_plugins, catalogue, tmp_path):
    with pytest.raises(DataError, match="cifar-10-batches-py and downloading is off"):
        load_split(data_ctx(builtin_plugins, tmp_path, download=False), "cifar10", "train")
    with pytest.raises(DataError, match="no 'train' folder"):
        load_split(data_ctx(builtin_plugins, tmp_path), "imagefolder", "train")


def test_unknown_split_suggests(builtin_plugins, catalogue):
    with pytest.raises(UsageError, match="did you mean 'test'"):
        load_split(data_ctx(builtin_plugins), "synthetic", "tset")


def test_bad_labels_and_empty_split_are_refused(tmp_path):
    import harness
    from registry import Dataset

    class Bad:
        @harness.hookimpl
        def register_datasets(self, register):
            images = torch.zeros(4, 3, 8, 8, dtype=torch.uint8)
            register(Dataset("bad-labels", num_classes=3, loader=lambda *a, **k: ImageSplit(
                images, torch.tensor([0, 1, 2, 3]), ("a", "b", "c"))))
            register(Dataset("empty", num_classes=3, loader=lambda *a, **k: ImageSplit(
                images[:0], torch.zeros(0, dtype=torch.int64), ("a", "b", "c"))))
            register(Dataset("four-channels", num_classes=3, loader=lambda *a, **k: ImageSplit(
                torch.zeros(2, 4, 8, 8, dtype=torch.uint8), torch.tensor([0, 1]), ("a", "b", "c"))))

    plugins = make_plugins([Bad()], builtins=False)
    with pytest.raises(DataError, match=r"label 3 is outside \[0, 3\)"):
        load_split(data_ctx(plugins), "bad-labels", "train")
    with pytest.raises(DataError, match="empty"):
        load_split(data_ctx(plugins), "empty", "train")
    with pytest.raises(PluginError, match="4 channels"):
        load_split(data_ctx(plugins), "four-channels", "train")


def test_decoded_splits_are_reused_within_a_process(builtin_plugins, catalogue, tmp_path):
    write_cifar10(tmp_path)
    first = load_split(data_ctx(builtin_plugins, tmp_path), "cifar10", "test")
    assert load_split(data_ctx(builtin_plugins, tmp_path), "cifar10", "test") is first
    assert load_split(data_ctx(builtin_plugins, tmp_path), "cifar10", "test", image_size=64) is not first


def test_data_root_precedence(tmp_path, monkeypatch):
    assert data_root(tmp_path / "x") == tmp_path / "x"
    monkeypatch.setenv("HARNESS_DATA", str(tmp_path / "env"))
    assert data_root() == tmp_path / "env"
    monkeypatch.delenv("HARNESS_DATA")
    assert data_root().name == "data"


def test_synthetic_is_deterministic(builtin_plugins, catalogue):
    from plugins.synthetic import load_synthetic

    a, b = load_synthetic("train"), load_synthetic("train")
    assert a.images is not b.images
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)
    a = load_split(data_ctx(builtin_plugins), "synthetic", "train")
    assert torch.bincount(a.labels).tolist() == [100] * 10


def test_safe_extract_refuses_traversal(tmp_path):
    import io
    import tarfile

    from plugins.dataset_files import safe_extract

    archive = tmp_path / "evil.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        payload = b"x"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    (tmp_path / "out").mkdir()
    with pytest.raises((tarfile.TarError, DataError)):
        safe_extract(archive, tmp_path / "out")
    assert not (tmp_path / "escaped.txt").exists()


def test_an_archive_that_fails_to_extract_leaves_no_half_folder(tmp_path):
    """CIFAR's archive is extracted beside its place and moved in whole: an extraction that stops
    half way (here an unsafe member after a good one) leaves no folder to be taken for the data."""
    import io
    import tarfile

    from plugins.dataset_files import extract_atomically

    def archive(name: str, members: list[str]) -> Path:
        path = tmp_path / name
        with tarfile.open(path, "w:gz") as tar:
            for member in members:
                info = tarfile.TarInfo(member)
                info.size = 1
                tar.addfile(info, io.BytesIO(b"x"))
        return path

    root = tmp_path / "data"
    root.mkdir()
    with pytest.raises((tarfile.TarError, DataError)):
        extract_atomically(archive("bad.tar.gz", ["cifar-10-batches-py/data_batch_1", "../escaped.txt"]), root)
    assert list(root.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()
    extract_atomically(archive("good.tar.gz", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"]),
                       root)
    assert sorted(p.name for p in (root / "cifar-10-batches-py").iterdir()) == ["data_batch_1", "test_batch"]
    (root / "cifar-10-batches-py" / "test_batch").write_text("mine")  # a file there already is kept
    (root / "cifar-10-batches-py" / "data_batch_1").unlink()
    extract_atomically(archive("good.tar.gz", ["cifar-10-batches-py/data_batch_1", "cifar-10-batches-py/test_batch"]),
                       root)
    assert (root / "cifar-10-batches-py" / "test_batch").read_text() == "mine"
    assert (root / "cifar-10-batches-py" / "data_batch_1").is_file() and [p.name for p in root.iterdir()] == [
        "cifar-10-batches-py"]
