"""Decoded images on disk: each split of your data is decoded once, at the size training uses, into
a uint8 ``.npy`` file that later runs and other processes map instead of decoding again.

The key covers the source (every file's path, size and modification time, or a Hugging Face
dataset's fingerprint), the split, the size and the decoder's version, so a changed file is decoded
again and never served stale. An entry is written to a temporary folder and renamed when complete
(a killed run leaves no half entry; temporaries of dead writers are swept).

Why it is written and read the way it is:

- **Damage is caught.** ``meta.json`` holds a CRC-32 of the pixels and the file's identity stamp
  (inode, size, modification and *change* time). Every use compares the stamp (free); any write to
  the file since the last check, even one that restores the modification time, changes the change
  time, and then the whole checksum is verified: 0.7 s per GiB read from the page cache on a busy
  2-core machine, of which CRC-32 is 0.25 s (blake2b would be 1.2 s, sha256 0.6 s; xxh3 0.03 s, but
  xxhash is not a dependency). A damaged entry is decoded again, with a warning.
- **A full disk is an error, not a crash.** Writing through a memory map turns a full disk into
  SIGBUS. A split that fits in RAM is decoded there and written with plain writes; a larger one
  gets its space reserved first (``posix_fallocate``), so a full disk is an ``ENOSPC`` before any
  pixel is decoded, and the temporary folder is removed.
- **One copy in RAM.** A split is handed out memory-mapped (copy-on-write), never read whole;
  :func:`take` reads the rows a run uses from the file (``preadv``, not through the map, so they
  are not resident twice) into RAM when they fit comfortably in the memory this process may use
  (its cgroup's limit included), and into an unlinked, mapped scratch file when they do not, so a
  split larger than RAM trains with bounded memory. The same rows asked for again while the first
  answer is alive are that answer.

Location: ``$HARNESS_CACHE`` (default: the user cache folder, ``~/.cache/harness``) ``/decoded``.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import uuid
import warnings
import weakref
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from registry import DataError

DECODER_VERSION = "2"  # bump when decoding changes what pixels come out
IMAGES, META = "images.npy", "meta.json"
CHUNK = 16 << 20
"""Bytes per read or write when checksumming, writing and spilling."""
IN_MEMORY_LIMIT = 1 << 30
"""Splits and selections of more bytes than this (or than a quarter of the memory this process may
still use) stay in (or go to) memory-mapped files instead of RAM."""


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


def ram_budget() -> int:
    """Bytes of images that may be read into RAM at once: :data:`IN_MEMORY_LIMIT`, or a quarter of
    the free memory (host or cgroup, the smaller) when that is less."""
    from harness.environment import available_memory

    return min(IN_MEMORY_LIMIT, (available_memory(None) or 1 << 62) // 4)


# -- entries ---------------------------------------------------------------------------------------


def decoded(key: str, count: int, size: int, fill: Callable[[Any], None]) -> Any:
    """The (count, 3, size, size) uint8 tensor of entry ``key``, memory-mapped from the cache; made
    first by ``fill(array)`` (which writes every image into ``array``) when the entry is missing or
    damaged. Use :func:`take` to get rows of it in RAM."""
    from harness.progress import current

    shape = (count, 3, size, size)
    final = cache_root() / key
    if (final / IMAGES).is_file():
        opened = _open(final, shape)
        if not isinstance(opened, str):
            return opened
        current().warn(f"the decoded-image cache entry {final} is damaged ({opened}); decoding its images again")
        shutil.rmtree(final, ignore_errors=True)
    _build(final, shape, fill)
    opened = _open(final, shape)
    if isinstance(opened, str):
        raise DataError(f"the decoded-image cache entry {final} was damaged right after it was written ({opened}); "
                        "check the disk under HARNESS_CACHE or point HARNESS_CACHE at another one")
    return opened


def _open(final: Path, shape: tuple[int, ...]) -> Any:
    """The mapped entry, or a string saying what is wrong with it."""
    try:
        meta = json.loads((final / META).read_text())
        file = open(final / IMAGES, "rb")  # noqa: SIM115 - kept open for take()'s reads, closed with the map
    except (OSError, ValueError) as exc:
        return f"unreadable: {type(exc).__name__}"
    try:
        offset, problem = _check(file, meta if isinstance(meta, dict) else {}, shape)
    except BaseException:
        file.close()
        raise
    if problem is not None:
        file.close()
        return problem
    if meta.get("stamp") != _stamp(file):
        _rewrite_meta(final, {**meta, "stamp": _stamp(file)})  # verified in full: the next use need not
    return _map(file, offset, shape)


def _check(file: IO[bytes], meta: dict[str, Any], shape: tuple[int, ...]) -> tuple[int, str | None]:
    """(offset of the pixels, None) when ``file`` holds ``shape`` and its pixels are the ones written
    (stamp unchanged since the last check, else the checksum recomputed), else (0, why)."""
    import numpy as np

    if not isinstance(meta.get("crc32"), int):
        return 0, "no checksum: written by an older harness"
    try:
        version = np.lib.format.read_magic(file)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        found, fortran, dtype = read(file)
    except (OSError, ValueError) as exc:
        return 0, f"unreadable header: {str(exc)[:80]}"
    offset, nbytes = file.tell(), _nbytes(shape)
    if tuple(found) != shape or fortran or dtype != np.uint8:
        return 0, f"holds {dtype} {tuple(found)}, expected uint8 {shape}"
    if os.fstat(file.fileno()).st_size != offset + nbytes:
        return 0, f"{os.fstat(file.fileno()).st_size} bytes, expected {offset + nbytes}"
    if meta.get("stamp") == _stamp(file):
        return offset, None
    if _crc(file.fileno(), offset, nbytes) != meta["crc32"]:
        return 0, "checksum mismatch: the file was changed after it was written"
    return offset, None


def _build(final: Path, shape: tuple[int, ...], fill: Callable[[Any], None]) -> None:
    """Write the entry in a temporary folder (decoded in RAM and written plainly when it fits, else
    into a mapped file whose space is reserved first) and rename it into place."""
    root = final.parent
    with _disk_errors(root):
        root.mkdir(parents=True, exist_ok=True)
        _sweep(root)
        tmp = root / f".tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        try:
            tmp.mkdir()
            with open(tmp / IMAGES, "w+b") as file:
                offset = _write_header(file, shape)
                fits = _nbytes(shape) <= ram_budget()
                crc = _fill_in_ram(file, shape, fill) if fits else _fill_mapped(file, offset, shape, fill)
                file.flush()
                os.fsync(file.fileno())
                stamp = _stamp(file)
            (tmp / META).write_text(json.dumps({"count": shape[0], "size": shape[-1], "decoder": DECODER_VERSION,
                                                "crc32": crc, "stamp": stamp}))
            try:
                os.replace(tmp, final)
            except OSError:  # another process finished the same entry first: use theirs
                pass
        finally:
            shutil.rmtree(tmp, ignore_errors=True)


def _fill_in_ram(file: IO[bytes], shape: tuple[int, ...], fill: Callable[[Any], None]) -> int:
    """Decode into RAM, then write with plain writes (a full disk is ENOSPC, not SIGBUS); the CRC-32."""
    import numpy as np

    array = np.empty(shape, dtype=np.uint8)
    fill(array)
    crc = 0
    data = array.reshape(-1).data  # a memoryview of the bytes
    for start in range(0, len(data), CHUNK):
        piece = data[start:start + CHUNK]
        file.write(piece)
        crc = zlib.crc32(piece, crc)
    return crc


def _fill_mapped(file: IO[bytes], offset: int, shape: tuple[int, ...], fill: Callable[[Any], None]) -> int:
    """Reserve the file's space (a full disk fails here, as ENOSPC), then decode into its map."""
    import numpy as np

    file.flush()
    try:
        os.posix_fallocate(file.fileno(), 0, offset + _nbytes(shape))
    except AttributeError:  # no posix_fallocate (macOS): a sparse file, as before
        file.truncate(offset + _nbytes(shape))
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS):  # ENOSPC: the disk is full
            raise
        file.truncate(offset + _nbytes(shape))  # a filesystem that cannot reserve: sparse, as before
    array = np.memmap(file, dtype=np.uint8, mode="r+", offset=offset, shape=shape)
    fill(array)
    array.flush()
    del array
    return _crc(file.fileno(), offset, _nbytes(shape))


def _write_header(file: IO[bytes], shape: tuple[int, ...]) -> int:
    import numpy as np

    np.lib.format.write_array_header_1_0(file, {"descr": "|u1", "fortran_order": False, "shape": shape})
    return file.tell()


def _crc(fd: int, offset: int, nbytes: int) -> int:
    """CRC-32 of ``nbytes`` of file ``fd`` from ``offset``, read in chunks."""
    buffer = memoryview(bytearray(min(CHUNK, max(nbytes, 1))))
    crc, done = 0, 0
    while done < nbytes:
        got = os.preadv(fd, [buffer[:min(CHUNK, nbytes - done)]], offset + done)
        if got == 0:
            break
        crc = zlib.crc32(buffer[:got], crc)
        done += got
    return crc


def _stamp(file: IO[bytes]) -> list[int]:
    """What changes whenever the file is written or replaced: inode, size, mtime and ctime (which
    no one can set back)."""
    st = os.fstat(file.fileno())
    return [st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns]


def _rewrite_meta(final: Path, meta: dict[str, Any]) -> None:
    from registry.files import atomic_write_bytes

    with contextlib.suppress(OSError):  # a read-only cache: the checksum is verified again next time
        atomic_write_bytes(final / META, json.dumps(meta).encode())


def _nbytes(shape: tuple[int, ...]) -> int:
    count = 1
    for n in shape:
        count *= n
    return count


@contextlib.contextmanager
def _disk_errors(where: Path) -> Iterator[None]:
    """Name ``where`` in a full-disk error that names no file (a write or an allocation)."""
    try:
        yield
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT) and not exc.filename:
            raise OSError(exc.errno, exc.strerror or os.strerror(exc.errno), str(where)) from None
        raise


def _sweep(root: Path) -> None:
    """Remove the temporaries of writers that died."""
    from registry.files import pid_alive

    for tmp in [*root.glob(".tmp-*"), *root.glob(".scratch-*")]:
        try:
            pid = int(tmp.name.split("-")[1].split(".")[0])
        except (IndexError, ValueError):
            continue
        if not pid_alive(pid):
            if tmp.is_dir():
                shutil.rmtree(tmp, ignore_errors=True)
            else:
                tmp.unlink(missing_ok=True)


# -- mapped tensors and the rows taken from them ---------------------------------------------------


@dataclass(frozen=True)
class _Backing:
    """The open file under a mapped tensor, and where the mapping's first byte is in it."""

    file: IO[bytes]
    offset: int


_FILES: dict[int, _Backing] = {}
"""Mapped tensors' files, by the address of the mapping (a tensor's storage pointer), while mapped."""
_TAKEN: weakref.WeakValueDictionary[tuple, Any] = weakref.WeakValueDictionary()
"""Rows taken from mapped tensors, while someone holds them: asked again, they are not read again."""


def _map(file: IO[bytes], offset: int, shape: tuple[int, ...]) -> Any:
    """A copy-on-write mapping of ``file`` from ``offset`` as a uint8 tensor of ``shape``; the file
    stays open (for :func:`take`) until the last tensor on the mapping is gone."""
    import numpy as np
    import torch

    if _nbytes(shape) == 0:
        file.close()
        return torch.empty(shape, dtype=torch.uint8)
    array = np.memmap(file, dtype=np.uint8, mode="c", offset=offset, shape=shape)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        tensor = torch.from_numpy(array)
    address = tensor.untyped_storage().data_ptr()
    _FILES[address] = _Backing(file, offset)
    weakref.finalize(array, _unmapped, address, file)
    return tensor


def _unmapped(address: int, file: IO[bytes]) -> None:
    _FILES.pop(address, None)
    for key in [k for k in list(_TAKEN.keys()) if k[0] == address]:
        _TAKEN.pop(key, None)
    file.close()


def is_mapped(images: Any) -> bool:
    """Whether ``images`` lies in a cache or scratch file (mapped) rather than in RAM."""
    return _backing(images) is not None


def _backing(images: Any) -> _Backing | None:
    try:
        return _FILES.get(images.untyped_storage().data_ptr())
    except (AttributeError, RuntimeError):
        return None


def take(images: Any, index: Any) -> Any:
    """``images[index]`` (rows of a uint8 tensor): in RAM when they fit (:func:`ram_budget`), else
    in an unlinked, memory-mapped scratch file, so carving subsets and validation splits out of a
    split larger than RAM stays bounded in memory. Rows of a mapped split are read from its file;
    all rows of a split already in RAM are that split, not a copy. Results may be shared (the same
    rows asked twice): treat them, like the splits, as read-only."""
    import torch

    if images.dtype.is_floating_point:
        return images[index]
    count = int(index.numel())
    backing = _backing(images)
    fits = count * _row_bytes(images) <= ram_budget()
    if count == len(images) and torch.equal(index.cpu(), torch.arange(count)) and (backing is None or not fits):
        return images
    key = _memo_key(images, index) if backing is not None else None
    found = _TAKEN.get(key) if key is not None else None
    if found is not None:
        return found
    rows = _gather(images, index, backing) if fits else _spill(images, index, backing)
    if key is not None:
        _TAKEN[key] = rows
    return rows


def _row_bytes(images: Any) -> int:
    return int(images[0].numel()) * images.element_size() if len(images) else 0


def _memo_key(images: Any, index: Any) -> tuple:
    digest = hashlib.blake2b(index.cpu().numpy().tobytes(), digest_size=16).hexdigest()
    return (images.untyped_storage().data_ptr(), images.storage_offset(), tuple(images.shape),
            tuple(images.stride()), str(index.dtype), digest)


def _gather(images: Any, index: Any, backing: _Backing | None) -> Any:
    """The rows in RAM: read from the file under a mapped tensor, indexed from one in RAM."""
    import torch

    order = index.cpu().long().numpy()
    if backing is None or not images.is_contiguous() or (len(order) and order.min() < 0):
        return images[index]
    if len(order) and order.max() >= len(images):
        raise IndexError(f"row {int(order.max())} is out of range for {len(images)} images")
    out = torch.empty((len(order), *images.shape[1:]), dtype=images.dtype)
    _read_rows(backing, images, order, out.numpy())
    return out


def _read_rows(backing: _Backing, images: Any, order: Any, out: Any) -> None:
    """Read rows ``order`` of mapped ``images`` into array ``out``, one read per run of consecutive rows."""
    import numpy as np

    row = _row_bytes(images)
    start = backing.offset + images.storage_offset() * images.element_size()
    target = memoryview(out.reshape(-1)).cast("B")
    breaks = np.flatnonzero(np.diff(order) != 1) + 1
    for first, last in zip(np.r_[0, breaks], np.r_[breaks, len(order)], strict=True):
        if first == last:
            continue
        view, position = target[int(first) * row:int(last) * row], start + int(order[first]) * row
        while len(view):
            got = os.preadv(backing.file.fileno(), [view], position)
            if got == 0:
                raise DataError(f"a decoded-image cache file under {cache_root()} is shorter than its header says; "
                                "delete that folder and run again")
            view, position = view[got:], position + got


def _spill(images: Any, index: Any, backing: _Backing | None) -> Any:
    """The rows in a scratch file under the cache folder, written plainly (a full disk is ENOSPC),
    unlinked at once (it vanishes with the last reference, or with the process) and mapped."""
    root = cache_root()
    count = int(index.numel())
    step = max(1, CHUNK // max(1, _row_bytes(images)))
    with _disk_errors(root):
        root.mkdir(parents=True, exist_ok=True)
        path = root / f".scratch-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        file = open(path, "w+b")  # noqa: SIM115 - closed with the map
        path.unlink()
        try:
            for start in range(0, count, step):
                file.write(memoryview(_gather(images, index[start:start + step], backing).numpy().reshape(-1)))
            file.flush()
        except BaseException:
            file.close()
            raise
    return _map(file, 0, (count, *images.shape[1:]))


def mapped_note(name: str, images: Any) -> str:
    """The line that says a split stays memory-mapped, and why (so a slower epoch is explained)."""
    from harness.environment import available_memory, cgroup_memory_free

    free, limited = available_memory(None), cgroup_memory_free()
    why = "the memory free" if free is None else f"the {free / 1e6:,.0f} MB of memory free"
    if limited is not None and free is not None and limited <= free:
        why += " under this process's cgroup limit"
    return (f"{name}: {len(images):,} training images ({images.numel() * images.element_size() / 1e6:,.0f} MB) stay "
            f"memory-mapped from {cache_root()}, read from disk as batches need them: they are more than "
            f"{IN_MEMORY_LIMIT >> 30} GiB or a quarter of {why}")
