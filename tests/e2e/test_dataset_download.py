"""A registered dataset that is not on disk is downloaded by default: checksummed, atomically, with
a progress bar on stderr; offline, the error names Debian's package and the folder.

These machines have no internet, so the real files (Debian's dataset-fashion-mnist) are served by
Python's own http.server on localhost through ``HARNESS_DATA_MIRROR``, once as published, once with
a wrong file, once cut off in the middle of a transfer."""

from __future__ import annotations

import gzip
import io
import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from helpers import make_plugins

from harness.context import Context, DataOptions
from harness.data.loading import load_split
from harness.progress import Progress
from registry import DataError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
NAMES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
pytestmark = pytest.mark.skipif(not (DEBIAN / "t10k-images-idx3-ubyte.gz").is_file(),
                                reason="needs Debian's dataset-fashion-mnist (apt-get install dataset-fashion-mnist)")


class Handler(SimpleHTTPRequestHandler):
    """Serves files; under /cut/ it announces the whole file and sends half of it, then hangs up."""

    def do_GET(self) -> None:
        if not self.path.startswith("/cut/"):
            return super().do_GET()
        data = Path(self.translate_path(self.path.replace("/cut/", "/good/", 1))).read_bytes()
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data[: len(data) // 2])
        self.wfile.flush()
        self.close_connection = True

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mirror")
    good, bad = root / "good" / "fashion-mnist", root / "bad" / "fashion-mnist"
    good.mkdir(parents=True)
    bad.mkdir(parents=True)
    for name in NAMES:
        (good / f"{name}.gz").symlink_to(DEBIAN / f"{name}.gz")
        (bad / f"{name}.gz").symlink_to(DEBIAN / f"{name}.gz")
    (bad / "train-labels-idx1-ubyte.gz").unlink()  # a wrong file under the right name: one label changed
    labels = bytearray(gzip.decompress((DEBIAN / "train-labels-idx1-ubyte.gz").read_bytes()))
    labels[-1] = (labels[-1] + 1) % 10
    (bad / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(Handler, directory=str(root)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class Terminal(io.StringIO):
    """stderr as a terminal, so that progress bars are drawn."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def nowhere(tmp_path, monkeypatch) -> Path:
    """No local copy: an empty data folder, and Debian's folder pointed at an empty one."""
    monkeypatch.setenv("HARNESS_FASHION_MNIST_DIR", str(tmp_path / "no-debian"))
    for name in ("HARNESS_OFFLINE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "data"


def _load(data: Path, stream: io.StringIO | None = None, download: bool | None = None):
    ctx = Context(make_plugins(), data=DataOptions(str(data), download),
                  progress=Progress(stream=stream or io.StringIO()))
    return load_split(ctx, "fashion-mnist", "test")


def _left(raw: Path) -> list[str]:
    return sorted(p.name for p in raw.iterdir()) if raw.is_dir() else []


def test_missing_fashion_mnist_is_downloaded_checked_and_decompressed(server, nowhere, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_MIRROR", f"{server}/good")
    stderr = Terminal()
    split = _load(nowhere, stderr)  # download=None: the default
    assert split.images.shape == (10_000, 1, 28, 28) and int(split.labels.sum()) == 45_000
    assert _left(nowhere / "FashionMNIST" / "raw") == sorted(NAMES)  # idx files only: no .gz, no .part
    log = stderr.getvalue()
    assert f"downloading {server}/good/fashion-mnist/train-images-idx3-ubyte.gz" in log
    assert "downloading train-images-idx3-ubyte.gz" in log and "100%" in log and "kB" in log  # the bar


def test_a_wrong_file_is_refused_and_nothing_of_it_is_kept(server, nowhere, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_MIRROR", f"{server}/bad")
    with pytest.raises(DataError, match=r"train-labels-idx1-ubyte\.gz .*checksum mismatch.*nothing was kept"):
        _load(nowhere)
    raw = nowhere / "FashionMNIST" / "raw"
    assert _left(raw) == ["train-images-idx3-ubyte"]  # the good file before it stays; no part, no wrong file


def test_an_interrupted_transfer_is_refused_and_a_rerun_completes(server, nowhere, monkeypatch):
    monkeypatch.setenv("HARNESS_DATA_MIRROR", f"{server}/cut")
    with pytest.raises(DataError, match="interrupted"):
        _load(nowhere)
    raw = nowhere / "FashionMNIST" / "raw"
    assert not any(name.endswith((".gz", ".part")) for name in _left(raw))  # no half file taken for the file
    monkeypatch.setenv("HARNESS_DATA_MIRROR", f"{server}/good")
    assert len(_load(nowhere)) == 10_000


def test_a_failed_download_leaves_no_empty_folder_behind(server, nowhere, monkeypatch):
    """Nothing came (the mirror lacks the files): the folders made for the download are gone again,
    so a later run does not find an empty FashionMNIST/raw (or data root) where the data should be."""
    monkeypatch.setenv("HARNESS_DATA_MIRROR", f"{server}/absent")
    with pytest.raises(DataError, match=r"could not download train-images-idx3-ubyte\.gz.*nothing was kept"):
        _load(nowhere)
    assert not nowhere.exists()
    nowhere.mkdir()  # a data root that was there already is kept, and stays as it was
    with pytest.raises(DataError, match="could not download"):
        _load(nowhere)
    assert nowhere.is_dir() and list(nowhere.iterdir()) == []


@pytest.mark.parametrize("switch", ["--no-download", "HARNESS_OFFLINE", "HF_HUB_OFFLINE"])
def test_offline_the_error_names_the_debian_package_and_the_folder(run_cli, server, nowhere, monkeypatch, switch):
    monkeypatch.setenv("HARNESS_DATA_MIRROR", f"{server}/good")  # reachable: only the switch stops it
    args = ["finetune", "cifar_convnet_xs", "--task", "fashion-mnist", "--epochs", "1", "--data-dir", str(nowhere)]
    if switch.startswith("--"):
        args.append(switch)
    else:
        monkeypatch.setenv(switch, "1")
    result = run_cli(*args)
    assert result.exit_code == 2, result.output
    message = result.output
    assert "dataset-fashion-mnist" in message and str(nowhere / "FashionMNIST" / "raw") in message
    assert (f"{switch}=1" if not switch.startswith("--") else "--no-download") in message
    assert "Traceback" not in message and not (nowhere / "FashionMNIST" / "raw").exists()
    # the environment variable that points harness at a copy of the .gz files is one fix
    assert f"put its four .gz files in HARNESS_FASHION_MNIST_DIR ('{nowhere.parent / 'no-debian'}'" in message
    monkeypatch.delenv("HARNESS_FASHION_MNIST_DIR")  # unset: Debian's package, or setting it
    monkeypatch.setattr("plugins.dataset_files.DEBIAN_FASHION_MNIST", nowhere.parent / "no-package")
    unset = run_cli(*args).output
    assert "apt-get install dataset-fashion-mnist" in unset, unset
    assert "or set HARNESS_FASHION_MNIST_DIR to a folder holding its four .gz files" in unset


def test_gz_files_placed_by_hand_are_used_offline(nowhere):
    raw = nowhere / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for name in NAMES:
        shutil.copy(DEBIAN / f"{name}.gz", raw / f"{name}.gz")
    assert len(_load(nowhere, download=False)) == 10_000
    assert os.path.isfile(raw / "t10k-images-idx3-ubyte")
