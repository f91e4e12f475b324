"""The decoded-image cache on a real folder: entries carry a checksum and are rebuilt, with a
warning, when damaged (even by a same-size overwrite that keeps the modification time); splits
are handed out mapped and rows are read from the file into RAM once, never twice."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from harness.data import cache
from harness.progress import Progress

SHAPE = (12, 3, 8, 8)


def _pixels(seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, SHAPE, dtype=np.uint8)


def _decoded(key: str, fills: list[int], seed: int = 0) -> tuple[torch.Tensor, list[str]]:
    """``cache.decoded`` of ``key`` with a fill that counts its calls; returns the tensor and the
    warnings printed meanwhile."""
    lines: list[str] = []

    def fill(array: np.ndarray) -> None:
        fills.append(1)
        array[:] = _pixels(seed)

    with Progress(sink=lines.append).using():
        images = cache.decoded(key, SHAPE[0], SHAPE[-1], fill)
    return images, lines


def _overwrite_keeping_mtime(path: Path) -> None:
    """Same-size garbage in place, modification time put back (as a tester's ``touch -r`` does)."""
    before = os.stat(path)
    with open(path, "r+b") as f:
        f.seek(before.st_size - 64 * 24)
        f.write(bytes((i * 37 + 11) % 256 for i in range(64 * 24)))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns


@pytest.mark.parametrize("in_ram", [True, False], ids=["decoded-in-ram", "decoded-into-a-map"])
def test_entry_has_a_checksum_and_is_mapped_not_read(monkeypatch, in_ram):
    if not in_ram:
        monkeypatch.setattr(cache, "IN_MEMORY_LIMIT", 0)  # as for a split larger than RAM
    fills: list[int] = []
    images, lines = _decoded("k1", fills)
    assert torch.equal(images, torch.from_numpy(_pixels())) and fills == [1] and lines == []
    assert cache.is_mapped(images)
    meta = json.loads((cache.cache_root() / "k1" / "meta.json").read_text())
    assert isinstance(meta["crc32"], int) and len(meta["stamp"]) == 4
    assert np.array_equal(np.load(cache.cache_root() / "k1" / "images.npy"), _pixels())  # a plain .npy file
    again, lines = _decoded("k1", fills)
    assert fills == [1] and lines == [] and torch.equal(again, images)


@pytest.mark.parametrize("damage", ["same-size-garbage", "truncated", "meta-deleted", "no-checksum"])
def test_a_damaged_entry_is_decoded_again_with_a_warning(damage):
    fills: list[int] = []
    _decoded("k2", fills)
    entry = cache.cache_root() / "k2"
    if damage == "same-size-garbage":
        _overwrite_keeping_mtime(entry / "images.npy")
    elif damage == "truncated":
        os.truncate(entry / "images.npy", 500)
    elif damage == "meta-deleted":
        (entry / "meta.json").unlink()
    else:  # an entry written before checksums existed
        meta = json.loads((entry / "meta.json").read_text())
        (entry / "meta.json").write_text(json.dumps({k: v for k, v in meta.items() if k != "crc32"}))
    images, lines = _decoded("k2", fills)
    assert fills == [1, 1], "the damaged entry was used"
    assert torch.equal(images, torch.from_numpy(_pixels()))
    (line,) = lines
    assert line.startswith("harness: warning: the decoded-image cache entry") and "decoding its images again" in line
    _, lines = _decoded("k2", fills)
    assert fills == [1, 1] and lines == []  # rebuilt entry verified, used as is


def test_a_copied_entry_is_verified_once_then_trusted():
    """A restore (new inode and change time, same bytes) costs one full check, not a rebuild."""
    fills: list[int] = []
    _decoded("k3", fills)
    entry = cache.cache_root() / "k3"
    data = (entry / "images.npy").read_bytes()
    (entry / "images.npy").unlink()
    (entry / "images.npy").write_bytes(data)
    stamp = json.loads((entry / "meta.json").read_text())["stamp"]
    _, lines = _decoded("k3", fills)
    assert fills == [1] and lines == []
    assert json.loads((entry / "meta.json").read_text())["stamp"] != stamp  # re-stamped after the check


def test_take_reads_rows_once_and_never_copies_a_split_twice():
    fills: list[int] = []
    images, _ = _decoded("k4", fills)
    index = torch.tensor([0, 1, 2, 5, 7, 8, 11])
    rows = cache.take(images, index)
    assert torch.equal(rows, torch.from_numpy(_pixels())[index]) and not cache.is_mapped(rows)
    assert cache.take(images, index.clone()) is rows  # asked again while alive: the same tensor
    whole = cache.take(images, torch.arange(SHAPE[0]))
    assert torch.equal(whole, images) and not cache.is_mapped(whole)  # read into RAM: it fits
    assert cache.take(whole, torch.arange(SHAPE[0])) is whole  # already in RAM: not copied
    view = images[4:]
    assert torch.equal(cache.take(view, torch.tensor([3, 0])), view[torch.tensor([3, 0])])


def test_take_spills_to_a_mapped_scratch_file_when_rows_do_not_fit(monkeypatch):
    fills: list[int] = []
    images, _ = _decoded("k5", fills)
    monkeypatch.setattr(cache, "IN_MEMORY_LIMIT", 100)  # two rows (384 bytes) are "large" now
    index = torch.tensor([9, 2, 3])
    rows = cache.take(images, index)
    assert torch.equal(rows, torch.from_numpy(_pixels())[index]) and cache.is_mapped(rows)
    assert cache.take(images, torch.arange(SHAPE[0])) is images  # everything, too large: the map itself
    assert not list(cache.cache_root().glob(".scratch-*"))  # unlinked at once
    assert ".scratch-" in Path("/proc/self/maps").read_text()
    plain = torch.from_numpy(_pixels(1))
    assert torch.equal(cache.take(plain, index), plain[index])  # rows of a tensor in RAM spill too
