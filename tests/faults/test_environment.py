"""Fault injection, part 2: the machine fails, not the input. A real full disk (a small tmpfs), a
read-only home (a tmpfs remounted read-only, so root gets EROFS too), a remove racing an import
that is slowed between placing its file and committing. Each runs the installed console script
and asserts the exit code, one ``Error:`` line, no traceback, and the store's integrity after.

Mounting needs root (as in CI's container); elsewhere these tests skip with that reason.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from faultlib import assert_clean_failure, can_mount, fill, read_only, small_disk, store_refs
from helpers import harness_exe

import harness
from registry import Backbone, Budget, Dataset, Protocol, Task

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not can_mount(), reason="needs permission to mount a tmpfs (root, as in CI)")]


def _run(*args: str, env: dict[str, str], timeout: int = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*harness_exe(), *args], env=env, capture_output=True, text=True, timeout=timeout)


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return {**env, "HARNESS_HOME": str(home), **extra}


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _temporaries(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.name.startswith(".tmp-")]


@pytest.fixture
def disk(tmp_path):
    with small_disk(tmp_path / "disk", 6144) as folder:
        yield folder


def _weights(trained_home: Path) -> Path:
    """The stored weights: a content-addressed blob that is a .safetensors file (8-byte header size, then JSON)."""
    return next(p for p in (trained_home / "artifacts").rglob("*")
                if p.is_file() and len(p.name) == 64 and p.read_bytes()[8:9] == b"{")


def test_full_disk_import_export_finetune_and_check_onnx(disk, trained_home, tmp_path):
    home = disk / "home"
    shutil.copytree(trained_home, home)
    env = _env(home, TMPDIR=str(disk))
    before = store_refs(home)
    out = disk / "out"
    assert _run("export", "synthetic@1", "--out", str(out), env=env).returncode == 0
    good = next(out.glob("*.onnx"))
    good_sha = _sha(good)
    big = tmp_path / "spare.safetensors"  # a file that cannot fit once the disk is full
    big.write_bytes(_weights(trained_home).read_bytes())
    fill(disk, leave_kb=64)

    assert_clean_failure(_run("registry", "import", "cifar_convnet_s", str(big), "--name", "spare", env=env),
                         1, "no space left")
    assert_clean_failure(_run("export", "synthetic@1", "--out", str(out), "--opset", "17", env=env),
                         1, "no space left")
    assert _sha(good) == good_sha  # the good export was neither replaced nor truncated
    assert_clean_failure(_run("finetune", "cifar_convnet_s", "--task", "synthetic", "--epochs", "1", env=env),
                         1, "no space left")
    assert_clean_failure(_run("check-onnx", "synthetic@1", env=env), 1, "no space left")

    (disk / "ballast").unlink()
    assert store_refs(home) == before  # no version was added, every artifact intact
    assert _temporaries(home) == [] and list(out.iterdir()) == [good]  # nothing partial left behind


def test_int8_export_on_a_disk_with_room_for_the_fp32_file_only_says_the_disk_is_full(disk, trained_home,
                                                                                     tmp_path):
    home = tmp_path / "home"  # the store has room; the export folder's disk does not
    shutil.copytree(trained_home, home)
    env = _env(home)
    size = _weights(trained_home).stat().st_size  # about the fp32 ONNX file's size
    fill(disk, leave_kb=int(2.5 * size / 1024))  # the fp32 file fits, the quantizer's copies do not
    result = _run("export", "synthetic@1", "--out", str(disk / "out"), "--int8", "--force-int8", env=env)
    assert_clean_failure(result, 1, "no space left")  # was: internal error (DecodeError ... corrupt)
    assert _temporaries(disk) == [] and not list((disk / "out").glob("*int8*"))


def test_read_only_home_serves_reading_commands_and_refuses_writes(disk, trained_home):
    home = disk / "home"
    shutil.copytree(trained_home, home)
    env = _env(home)
    read_only(disk)
    for args in (("registry", "list"), ("registry", "show", "synthetic@1"), ("registry", "check"),
                 ("leaderboard", "--task", "synthetic"), ("show", "cifar_convnet_s"),
                 ("evaluate", "synthetic@1", "--no-save", "--test-limit", "32")):
        result = _run(*args, env=env)
        assert result.returncode == 0, (args, result.stderr[-1500:])
    assert_clean_failure(_run("registry", "tag", "synthetic@1", "--alias", "prod", env=env), 1, "read-only")
    refused = _run("finetune", "cifar_convnet_s", "--task", "synthetic", "--epochs", "1", env=env)
    assert_clean_failure(refused, 1, "read-only")
    assert "epoch" not in refused.stderr  # refused before any training


def test_remove_during_a_slow_import_never_deletes_its_file(trained_home, tmp_path):
    """Version A holds blob W; an import of the same file (version B) is paused after placing W and
    before committing; ``registry remove A`` runs gc in that window. W must survive."""
    home = tmp_path / "home"
    shutil.copytree(trained_home, home)
    source = tmp_path / "same.safetensors"
    env = _env(home)
    with_a = _run("registry", "show", "synthetic@1", "--format", "json", env=env)
    import json

    shutil.copyfile(json.loads(with_a.stdout)["artifacts"]["weights"]["path"], source)
    assert _run("registry", "import", "cifar_convnet_s", str(source), "--name", "a", env=env).returncode == 0
    slow = subprocess.Popen([*harness_exe(), "registry", "import", "cifar_convnet_s", str(source), "--name", "b"],
                            env={**env, "HARNESS_TEST_PLACE_DELAY": "4"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    time.sleep(2.5)  # the importer has started, staged and placed the file, and now waits
    removed = _run("registry", "remove", "a", env=env)
    assert removed.returncode == 0, removed.stderr
    _, err = slow.communicate(timeout=120)
    assert slow.returncode == 0, err
    check = _run("registry", "check", env=env)
    assert check.returncode == 0, check.stderr
    assert "b@1" in _run("registry", "list", env=env).stdout


def test_read_only_home_refuses_every_writer_before_its_work(disk, trained_home, tmp_path):
    """Issue 27: evaluate (saving), export, check-onnx, bench, gate --apply and registry import did the
    work (a minute) and then refused; each must refuse first, as finetune does."""
    home = disk / "home"
    shutil.copytree(trained_home, home)
    weights = tmp_path / "w.safetensors"
    weights.write_bytes(_weights(trained_home).read_bytes())
    env = _env(home)
    read_only(disk)
    out = tmp_path / "exports"
    for args in (("evaluate", "synthetic@1"), ("export", "synthetic@1", "--out", str(out)),
                 ("check-onnx", "synthetic@1"), ("bench", "synthetic@1", "--iters", "1", "--rounds", "1"),
                 ("gate", "synthetic@1", "--against", "synthetic:production", "--apply"),
                 ("registry", "import", "cifar_convnet_s", str(weights))):
        started = time.perf_counter()
        refused = _run(*args, env=env)
        assert_clean_failure(refused, 1, "read-only")
        assert refused.stdout == "" and "%" not in refused.stderr, args  # no result, no progress bar
        assert time.perf_counter() - started < 30, args
    assert not out.exists()  # export wrote nothing before refusing


class Watched:
    """A backbone and a dataset that record every build and load: a refusal that comes first leaves
    ``calls`` empty; one that comes after the work does not."""

    calls: list[str] = []

    @staticmethod
    def build(num_classes, weights):
        from torch import nn

        Watched.calls.append("build")
        return nn.Sequential(nn.Conv2d(3, 4, 3, stride=4), nn.Flatten(), nn.Linear(4 * 8 * 8, num_classes))

    @staticmethod
    def load(split, root, download=False, image_size=None):
        from plugins.synthetic import load_synthetic

        Watched.calls.append(f"load {split}")
        return load_synthetic(split, root, download, image_size)

    @harness.hookimpl
    def register_backbones(self, register):
        register(Backbone(name="watched_net", builder=Watched.build, head="2", input_size=32))

    @harness.hookimpl
    def register_datasets(self, register):
        register(Dataset(name="watched", loader=Watched.load, num_classes=10))

    @harness.hookimpl
    def register_tasks(self, register):
        budgets = {b: Budget(epochs=1) for b in ("quick", "standard", "full")}
        register(Task(name="watched", dataset="watched", metrics=("accuracy",),
                      protocol=Protocol(input_size=32, budgets=budgets, candidates=("watched_net",))))


def test_read_only_home_refuses_before_loading_data_or_building_the_model(disk, run_cli, tmp_path, monkeypatch):
    from helpers import make_plugins
    from safetensors.torch import save_file

    plugins = make_plugins([Watched()])
    home = disk / "home"
    monkeypatch.setenv("HARNESS_HOME", str(home))
    weights = tmp_path / "watched.safetensors"
    save_file(dict(Watched.build(10, None).state_dict()), str(weights))
    assert run_cli("registry", "import", "watched_net", str(weights), "--name", "watched",
                   plugins=plugins).exit_code == 0
    read_only(disk)
    for args in (("evaluate", "watched@1", "--task", "watched"), ("export", "watched@1", "--out", str(tmp_path / "x")),
                 ("check-onnx", "watched@1", "--task", "watched"), ("bench", "watched@1", "--iters", "1"),
                 ("registry", "import", "watched_net", str(weights))):
        Watched.calls.clear()
        assert_clean_failure(run_cli(*args, plugins=plugins), 1, "read-only")
        assert Watched.calls == [], args
    Watched.calls.clear()
    assert run_cli("evaluate", "watched@1", "--task", "watched", "--no-save", plugins=plugins).exit_code == 0
    assert "build" in Watched.calls and any(c.startswith("load") for c in Watched.calls)  # reading still works


def test_read_only_home_refuses_robustness_before_its_work_unless_no_record(disk, run_cli, tmp_path, monkeypatch):
    """``harness robustness`` records its result with the version: on a read-only home it refused only
    after 41 passes; now it refuses first, and ``--no-record`` (which writes nothing) still works."""
    from helpers import make_plugins
    from safetensors.torch import save_file

    plugins = make_plugins([Watched()])
    monkeypatch.setenv("HARNESS_HOME", str(disk / "home"))
    weights = tmp_path / "watched.safetensors"
    save_file(dict(Watched.build(10, None).state_dict()), str(weights))
    assert run_cli("registry", "import", "watched_net", str(weights), "--name", "watched",
                   plugins=plugins).exit_code == 0
    read_only(disk)
    Watched.calls.clear()
    args = ("robustness", "watched@1", "--task", "watched", "--samples", "8", "--corruptions", "contrast")
    assert_clean_failure(run_cli(*args, plugins=plugins), 1, "read-only")
    assert Watched.calls == []
    done = run_cli(*args, "--no-record", "--format", "json", plugins=plugins)
    assert done.exit_code == 0, done.output
    report = json.loads(done.stdout)
    assert report["model"] == "watched@1" and len(report["scores"]) == 5 and "load test" in Watched.calls
