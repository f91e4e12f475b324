"""What this process may use, read from cgroup files in both formats (folders laid out as the
kernel lays them out, v1 and v2), and the thread count's sources in order. Real cgroups are
exercised in tests/faults/test_cache_and_limits.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness import environment
from registry import UsageError

MiB = 1 << 20


def _folder(root: Path, files: dict[str, str]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (root / name).write_text(text + "\n")
    return root


def test_memory_free_under_a_v2_limit_counts_clean_unmapped_cache_as_free(tmp_path):
    level = _folder(tmp_path, {"memory.max": str(700 * MiB), "memory.current": str(600 * MiB),
                               "memory.stat": f"anon {400 * MiB}\nfile {200 * MiB}\nfile_mapped {50 * MiB}\n"
                                              f"file_dirty {30 * MiB}\nfile_writeback 0"})
    assert environment._level_free(level, v2=True) == (700 - 600 + 200 - 50 - 30) * MiB


def test_memory_free_under_a_v1_limit_and_no_limit(tmp_path):
    v1 = _folder(tmp_path / "v1", {"memory.limit_in_bytes": str(700 * MiB), "memory.usage_in_bytes": str(650 * MiB),
                                   "memory.stat": f"cache {MiB}\ntotal_cache {100 * MiB}\ntotal_mapped_file 0\n"
                                                  "total_dirty 0\ntotal_writeback 0"})
    assert environment._level_free(v1, v2=False) == 150 * MiB
    unlimited = _folder(tmp_path / "root", {"memory.limit_in_bytes": "9223372036854771712",
                                            "memory.usage_in_bytes": str(MiB)})
    assert environment._level_free(unlimited, v2=False) is None
    assert environment._level_free(_folder(tmp_path / "v2", {"memory.max": "max", "memory.current": "5"}), True) is None


@pytest.mark.parametrize(("files", "v2", "cpus"), [
    ({"cpu.max": "150000 100000"}, True, 1.5), ({"cpu.max": "max 100000"}, True, None),
    ({"cpu.cfs_quota_us": "50000", "cpu.cfs_period_us": "100000"}, False, 0.5),
    ({"cpu.cfs_quota_us": "-1", "cpu.cfs_period_us": "100000"}, False, None), ({}, False, None)])
def test_cpu_quota_in_both_formats(tmp_path, files, v2, cpus):
    assert environment._level_quota(_folder(tmp_path, files), v2) == cpus


def test_a_cgroup_path_is_found_under_its_mount(tmp_path):
    (tmp_path / "kubepods" / "pod1").mkdir(parents=True)
    assert environment._inside(tmp_path, "/", "/kubepods/pod1") == tmp_path / "kubepods" / "pod1"
    (tmp_path / "pod1").mkdir()
    assert environment._inside(tmp_path, "/kubepods", "/kubepods/pod1") == tmp_path / "pod1"  # a subtree mounted
    assert environment._inside(tmp_path, "/elsewhere", "/kubepods/pod1") == tmp_path  # a container's own mount
    assert environment._inside(tmp_path, "/", "/gone") == tmp_path


def test_this_process_reads_its_own_limits():
    free = environment.available_memory(None)
    assert free is None or free > 0
    threads, why = environment.cpu_threads()
    assert threads >= 1 and why
    assert "thread" in environment.limits_summary()


def test_thread_count_sources_in_order(monkeypatch):
    monkeypatch.delenv("HARNESS_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3")
    assert environment.cpu_threads() == (3, "OMP_NUM_THREADS")
    monkeypatch.setenv("HARNESS_THREADS", "1")
    assert environment.cpu_threads() == (1, "--threads/HARNESS_THREADS")
    monkeypatch.delenv("HARNESS_THREADS")
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert environment.cpu_threads() == environment.default_threads()
    for bad in ("0", "two", "-1", "1.5", ""):
        with pytest.raises(UsageError, match="whole number of threads"):
            environment.parse_threads(bad, "--threads")


def test_a_bench_batch_too_big_for_memory_is_refused_before_any_work():
    from harness.onnx.bench import _check_memory

    _check_memory(32, (3, 224, 224))  # 19 MB: fine anywhere
    with pytest.raises(UsageError, match=r"batch 100,000,000 at 3x32x32 needs 1144.4 GiB for its input alone"):
        _check_memory(100_000_000, (3, 32, 32))
    with pytest.raises(UsageError, match=r"needs over a million GiB for its input alone"):
        _check_memory(10**22, (3, 32, 32))
