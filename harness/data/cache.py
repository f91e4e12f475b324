"""Decoded images on disk: each split of your data is decoded once, at the size training uses, into
a uint8 array file that later runs and other processes memory-map instead of decoding again.

The key covers the source (every file's path, size and modification time, or a Hugging Face
dataset's fingerprint), the split, the size and the decoder's version, so a changed file is decoded
again and never served stale. An entry is written to a temporary folder and renamed when complete
(a killed run leaves no half entry; temporaries of dead writers are swept). Memory-mapped arrays
(copy-on-write) are paged in by the OS as batches touch them, so a split larger than RAM can still
be trained on.

Location: ``$HARNESS_CACHE`` (default: the user cache folder, ``~/.cache/harness``) ``/decoded``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

DECODER_VERSION = "1"  # bump when decoding changes what pixels come out


def harness_cache_dir() -> Path:
    """harness's cache folder: ``$HARNESS_CACHE``, else the user cache folder (``~/.cache/harness``)."""
    if os.environ.get("HARNESS_CACHE"):
        return Path(os.environ["HARNESS_CACHE"]).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("harness"))


def cache_root() -> Path:
    return harness_cache_dir() / "decoded"


def key_of(*parts: Any) -> str:
    return hashlib.sha256(json.dumps([DECODER_VERSION, *parts], default=str).encode()).hexdigest()[:32]


def _as_tensor(array: Any) -> Any:
    import torch

    # the maps are copy-on-write ("c"): a write would change this process's pages, never the file
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def _sweep(root: Path) -> None:
    from registry.files import pid_alive

    for tmp in root.glob(".tmp-*"):
        try:
            pid = int(tmp.name.split("-")[1])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            shutil.rmtree(tmp, ignore_errors=True)


def _in_memory(array: Any) -> Any:
    """The mapped ``array`` read into RAM when it fits comfortably (training from RAM is ~10% faster
    than from mapped pages on 2 cores); left mapped when it does not, so memory stays bounded."""
    import numpy as np

    if array.nbytes <= min(IN_MEMORY_LIMIT, _available() // 4):
        return _as_tensor(np.array(array))
    return _as_tensor(array)


def decoded(key: str, count: int, size: int, fill: Callable[[Any], None]) -> Any:
    """The (count, 3, size, size) uint8 tensor of entry ``key``: read (or memory-mapped, when large)
    from the cache, or made by ``fill(array)`` (which writes every image into a memory-mapped
    array) and kept."""
    import numpy as np

    root = cache_root()
    final = root / key
    if (final / "images.npy").is_file():
        try:
            images = np.load(final / "images.npy", mmap_mode="c")
            if images.shape == (count, 3, size, size) and images.dtype == np.uint8:
                return _in_memory(images)
        except (OSError, ValueError):  # damaged entry: make it again
            pass
        shutil.rmtree(final, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    _sweep(root)
    tmp = root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        array = np.lib.format.open_memmap(tmp / "images.npy", mode="w+", dtype=np.uint8,
                                          shape=(count, 3, size, size))
        fill(array)
        array.flush()
        del array
        (tmp / "meta.json").write_text(json.dumps({"count": count, "size": size, "decoder": DECODER_VERSION}))
        try:
            os.replace(tmp, final)
        except OSError:  # another process finished the same entry first: use theirs
            shutil.rmtree(tmp, ignore_errors=True)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return _in_memory(np.load(final / "images.npy", mmap_mode="c"))


IN_MEMORY_LIMIT = 1 << 30
"""Splits and selections of more bytes than this (or than a quarter of the free memory) stay in
(or go to) memory-mapped files instead of RAM."""


def _available() -> int:
    from harness.environment import available_memory

    return available_memory(None) or 1 << 62


def take(images: Any, index: Any) -> Any:
    """``images[index]`` (rows of a uint8 tensor), kept in a memory-mapped scratch file when it is
    large, so carving subsets and validation splits out of a split larger than RAM stays bounded
    in memory. The scratch file is unlinked at once and vanishes with the last reference."""
    import numpy as np

    count = int(index.numel())
    row = int(images[0].numel()) * images.element_size() if len(images) else 0
    if count * row <= min(IN_MEMORY_LIMIT, _available() // 4) or images.dtype.is_floating_point:
        return images[index]
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    path = root / f".scratch-{os.getpid()}-{uuid.uuid4().hex[:8]}.npy"
    out = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(count, *images.shape[1:]))
    try:
        source = images.numpy()
        order = index.numpy()
        for start in range(0, count, 1024):
            out[start:start + 1024] = source[order[start:start + 1024]]
        out.flush()
    finally:
        path.unlink(missing_ok=True)  # the mapping keeps the data; the name goes now
    return _as_tensor(out)
