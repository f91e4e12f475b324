"""Fault injection, part 3: the decoded-image cache and the machine's limits, through the installed
console script in subprocesses. A cache entry overwritten with same-size garbage (modification time
kept) is decoded again, not trained on; a full disk under ``HARNESS_CACHE`` (a real 2 MB tmpfs) is one
``Error:`` line, exit 1, nothing left behind, whether the split is written from RAM or into a map;
a real memory cgroup keeps a split mapped that a host-sized rule would have copied; a real CPU quota
and ``HARNESS_THREADS`` set torch's threads.

Mounting and cgroups need root (as in CI's container); elsewhere those tests skip, saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pytest
from faultlib import assert_clean_failure, can_mount, small_disk
from fileformats import write_photos
from helpers import harness_exe
from PIL import Image

pytestmark = pytest.mark.slow
MAPPED_PATH = ("import sys; from harness.data import cache; cache.IN_MEMORY_LIMIT = 0; "
               "from harness.cli import main; sys.argv[0] = 'harness'; main()")
"""The real CLI with every split too large for RAM, so that the cache is written into a map."""


def _run(*args: str, env: dict[str, str] | None = None, prefix: tuple[str, ...] = (),
         timeout: int = 300) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in (env or os.environ).items() if k != "PYTHONPATH"}
    return subprocess.run([*prefix, *args], env=env, capture_output=True, text=True, timeout=timeout)


def _accuracy(proc: subprocess.CompletedProcess[str]) -> float:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)["accuracy"]


# -- the cache ------------------------------------------------------------------------------------


def test_a_same_size_overwrite_of_the_cache_is_decoded_again_not_trained_on(tmp_path):
    photos = write_photos(tmp_path / "photos")
    args = ("finetune", "cifar_convnet_xs", "--data", str(photos), "--epochs", "1", "--batch-size", "8",
            "--format", "json")
    clean = _accuracy(_run(*harness_exe(), *args))
    entries = list((Path(os.environ["HARNESS_CACHE"]) / "decoded").glob("*/images.npy"))
    assert len(entries) == 2
    for path in entries:  # the pixels, not the header: a valid .npy of the right shape, wrong content
        before, header = os.stat(path), int(np.load(path, mmap_mode="r").offset)
        with open(path, "r+b") as f:
            f.seek(header)
            f.write(bytes((i * 37 + 11) % 256 for i in range(before.st_size - header)))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    again = _run(*harness_exe(), *args)
    assert _accuracy(again) == clean
    warned = [line for line in again.stderr.splitlines() if line.startswith("harness: warning: the decoded-image")]
    assert len(warned) == 2 and all("checksum mismatch" in line for line in warned), again.stderr[-2000:]


@pytest.mark.skipif(not can_mount(), reason="needs permission to mount a tmpfs (root, as in CI)")
@pytest.mark.parametrize("mapped", [False, True], ids=["written-from-ram", "written-into-a-map"])
def test_a_full_cache_disk_is_one_line_exit_1_and_leaves_nothing(tmp_path, mapped):
    photos = write_photos(tmp_path / "photos")  # at 224 px: test 1.1 MB fits the 2 MB disk, train 4.4 MB not
    with small_disk(tmp_path / "disk", 2048) as disk:
        env = {**os.environ, "HARNESS_CACHE": str(disk)}
        prefix = (sys.executable, "-c", MAPPED_PATH) if mapped else tuple(harness_exe())
        proc = _run("finetune", "cifar_convnet_xs", "--data", str(photos), "--epochs", "1", "--input-size", "224",
                    env=env, prefix=prefix)
        assert proc.returncode != -7, "SIGBUS: the cache was written through a map onto a full disk"
        assert_clean_failure(proc, 1, "no space left on the device")
        assert "HARNESS_CACHE" in proc.stderr
        left = [p.name for p in disk.rglob("*") if p.name.startswith((".tmp-", ".scratch-"))]
        assert left == []
        assert len(list(disk.glob("decoded/*/images.npy"))) == 1  # the test split, complete and usable


# -- cgroups ---------------------------------------------------------------------------------------


def _cgroup_parent(controller: str) -> tuple[Path, bool] | None:
    """A folder to make a child cgroup with ``controller`` in, and whether it is cgroup v2."""
    root = Path("/sys/fs/cgroup")
    if controller in (root / "cgroup.controllers").read_text().split() if (root / "cgroup.controllers").exists() \
            else False:
        return root, True
    v1 = root / controller
    if not v1.is_dir():
        return None
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if controller in controllers.split(",") and (v1 / path.lstrip("/")).is_dir():
            return v1 / path.lstrip("/"), False
    return v1, False


@contextmanager
def _cgroup(controller: str, v1: dict[str, str], v2: dict[str, str]) -> Iterator[Path]:
    """A real child cgroup with these settings (the v1 or v2 files, whichever this machine has);
    skips the test where cgroups cannot be made here."""
    found = _cgroup_parent(controller)
    if found is None:
        pytest.skip(f"no {controller} cgroup controller on this machine")
    parent, is_v2 = found
    folder = parent / f"harness-test-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    try:
        if is_v2 and controller not in (parent / "cgroup.subtree_control").read_text().split():
            (parent / "cgroup.subtree_control").write_text(f"+{controller}")
        folder.mkdir()
        for name, value in (v2 if is_v2 else v1).items():
            (folder / name).write_text(value)
    except OSError as exc:
        if folder.exists():
            folder.rmdir()
        pytest.skip(f"cannot make a {controller} cgroup under {parent} ({exc.strerror}); needs root, as in CI")
    try:
        yield folder
    finally:
        folder.rmdir()  # its processes have exited


def _in(folder: Path) -> tuple[str, ...]:
    """A command prefix that moves the command into cgroup ``folder`` before it starts."""
    return ("sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(folder))


def _anon_after_imports() -> int:
    """Anonymous memory of a fresh process that imported what ``harness finetune`` imports."""
    probe = ("import torch, torchvision, torchmetrics, harness.cli.train_cmds, harness.train.finetune\n"
             "print([l for l in open('/proc/self/status') if l.startswith('RssAnon')][0].split()[1])")
    return int(subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout) * 1024


def _large_photos(root: Path, per_class: int) -> Path:
    """``train/<class>/`` and a small ``test/<class>/`` of tiny JPEGs (decoded at 224 px: 150 KB each)."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(("cat", "dog", "emu")):
        for part, count in (("train", per_class), ("test", 4)):
            folder = root / part / name
            folder.mkdir(parents=True, exist_ok=True)
            for k in range(count):
                pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8)
                pixels[..., c] += 150
                Image.fromarray(pixels).save(folder / f"{k}.jpg", quality=80)
    return root


def test_a_memory_cgroup_keeps_a_large_split_mapped_and_the_run_succeeds(tmp_path):
    """The split (about 135 MB at 224 px) is more than a quarter of what the limit leaves after the
    imports (250 MB, and less than 540 MB even where finetune imports less than the probe), so it must
    stay mapped although the host has gigabytes free; the run trains, evaluates and registers within
    the limit. (95 MB was too close: with lazier imports a quarter of the free memory exceeded it.)"""
    photos = _large_photos(tmp_path / "photos", 300)
    limit = _anon_after_imports() + (250 << 20)
    with _cgroup("memory", {"memory.limit_in_bytes": str(limit)}, {"memory.max": str(limit)}) as folder:
        proc = _run(*harness_exe(), "finetune", "mobilenet_v3_small", "--data", str(photos), "--input-size", "224",
                    "--epochs", "1", "--batch-size", "8", "--strategy", "linear", "--val-fraction", "0.02",
                    prefix=_in(folder), timeout=600)
    assert proc.returncode == 0, f"exit {proc.returncode} under a {limit >> 20} MiB limit: {proc.stderr[-2000:]}"
    mapped = [line for line in proc.stderr.splitlines() if "stay memory-mapped" in line]
    assert len(mapped) == 1 and "cgroup limit" in mapped[0], proc.stderr[-2000:]
    assert "registered photos@1" in proc.stderr


def test_the_cgroup_limits_are_what_harness_reports(tmp_path):
    with _cgroup("memory", {"memory.limit_in_bytes": str(300 << 20)}, {"memory.max": str(300 << 20)}) as folder:
        proc = _run(*harness_exe(), "--version", prefix=_in(folder))
    assert proc.returncode == 0, proc.stderr
    memory = proc.stdout.splitlines()[1].split("; ")[1]
    assert memory.endswith("GiB of memory free (cgroup limit)") and float(memory.split()[0]) <= 0.3, memory
    env = {k: v for k, v in os.environ.items() if k not in ("HARNESS_THREADS", "OMP_NUM_THREADS")}
    with _cgroup("cpu", {"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"},
                 {"cpu.max": "50000 100000"}) as folder:
        quota = _run(*harness_exe(), "--version", env=env, prefix=_in(folder))
        chosen = _run(*harness_exe(), "--version", env={**env, "HARNESS_THREADS": "3"}, prefix=_in(folder))
    assert "1 thread (the cgroup CPU quota of 0.5 CPUs)" in quota.stdout, quota.stdout
    assert "3 threads (--threads/HARNESS_THREADS)" in chosen.stdout, chosen.stdout


# -- threads ---------------------------------------------------------------------------------------


def test_harness_threads_sets_torch_threads_in_a_real_run(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    proc = _run(*harness_exe(), "finetune", "cifar_convnet_xs", "--task", "synthetic", "--epochs", "1",
                "--train-limit", "200", env={**env, "HARNESS_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "cpu (1 threads)" in proc.stderr
    shown = _run(*harness_exe(), "registry", "show", "synthetic@1", "--format", "json", env=env)
    assert json.loads(shown.stdout)["environment"]["device"] == "cpu (1 threads)"
    flag = _run(*harness_exe(), "--threads", "2", "--version", env={**env, "OMP_NUM_THREADS": "1"})
    assert "2 threads (--threads/HARNESS_THREADS)" in flag.stdout  # the flag beats torch's own variable


@pytest.mark.parametrize(("args", "env"), [(("--threads", "0", "list", "tasks"), {}),
                                           (("list", "tasks"), {"HARNESS_THREADS": "two"}),
                                           (("list", "tasks"), {"HARNESS_THREADS": "-1"})])
def test_an_invalid_thread_count_is_one_line_exit_2(args, env):
    proc = _run(*harness_exe(), *args, env={**os.environ, **env})
    assert_clean_failure(proc, 2, "--threads/HARNESS_THREADS must be a whole number of threads")
