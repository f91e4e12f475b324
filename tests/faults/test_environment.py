"""Fault injection, part 2: the machine fails, not the input. A real full disk (a small tmpfs), a
read-only home (a tmpfs remounted read-only, so root gets EROFS too), a remove racing an import
that is slowed between placing its file and committing. Each runs the installed console script
and asserts the exit code, one ``Error:`` line, no traceback, and the store's integrity after.

Mounting needs root (as in CI's container); elsewhere these tests skip with that reason.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from faultlib import assert_clean_failure, can_mount, fill, read_only, small_disk, store_refs
from helpers import harness_exe

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
    return next(p for p in (trained_home / "artifacts").rglob("*") if p.is_file() and len(p.name) == 64)


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
