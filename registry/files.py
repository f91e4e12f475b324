"""Atomic file writes and a content-addressed artifact folder.

Every write goes to a temporary file in the destination folder, is fsynced, then renamed over the
target with ``os.replace``: a reader sees the old file or the new one, never half of one. Temporary
names carry the writer's pid, so files left by a killed process can be recognised and swept.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO

TMP_PREFIX = ".tmp-"


def _tmp_name(folder: Path) -> Path:
    return folder / f"{TMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex}"


@contextlib.contextmanager
def atomic_writer(target: str | os.PathLike[str]) -> Iterator[IO[bytes]]:
    """Open a temporary file next to ``target``; on success it replaces ``target`` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(target.parent)
    try:
        with open(tmp, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        if tmp.exists():
            tmp.unlink()


LOW_SPACE = 16 << 20


def as_disk_full(exc: BaseException, target: str | os.PathLike[str]) -> BaseException:
    """Libraries that write through C++ (torch.save) report a full disk as a RuntimeError about a
    write position; with little space left where ``target`` goes, say what happened instead."""
    try:
        free = shutil.disk_usage(Path(target).parent).free
    except OSError:
        return exc
    if free < LOW_SPACE:
        import errno

        return OSError(errno.ENOSPC, "No space left on device", str(target))
    return exc


def atomic_write_bytes(target: str | os.PathLike[str], data: bytes) -> None:
    with atomic_writer(target) as f:
        f.write(data)


def check_out_path(path: str | os.PathLike[str], param: str = "out", *, folder: bool = False,
                   example: str = "report.html") -> Path:
    """Refuse, before any work, an output path that cannot be written: a file path that is a folder
    (``folder=True``: a folder path that is a file), or one whose folder neither exists nor can be
    created, or does not take new files (read-only, ``/proc``). The nearest existing folder is probed
    by creating and deleting a temporary file there: permission bits alone say yes to root. Raises a
    :class:`~registry.errors.UsageError` naming ``{param}`` and the path; returns the path."""
    from registry.errors import UsageError

    out = Path(path)
    fix = "give a path in a folder you can write to"
    if folder and out.exists() and not out.is_dir():
        raise UsageError(f"{{param}} {str(out)!r} is a file, not a folder; give a folder to write into", param=param)
    if not folder and out.is_dir():
        raise UsageError(f"{{param}} {str(out)!r} is a folder; give a file name such as {example}", param=param)
    existing = out if folder else out.parent
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    if not existing.is_dir():
        raise UsageError(f"{{param}} {str(out)!r} cannot be written: {str(existing)!r} is a file, not a folder; "
                         f"{fix}", param=param)
    probe = _tmp_name(existing)
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except OSError as exc:
        raise UsageError(f"{{param}} {str(out)!r} cannot be written: the folder {str(existing)!r} does not take new "
                         f"files ({exc.strerror}); {fix}", param=param) from None
    probe.unlink(missing_ok=True)
    return out


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def sha256_file(path: str | os.PathLike[str]) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pid_alive(pid: int) -> bool:
    """Whether a process with this id runs on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_temporaries(folder: Path) -> int:
    """Delete temporary files whose writing process is gone; returns how many were removed."""
    removed = 0
    if not folder.is_dir():
        return 0
    for path in folder.rglob(f"{TMP_PREFIX}*"):
        try:
            pid = int(path.name[len(TMP_PREFIX):].split("-", 1)[0])
        except ValueError:
            continue
        if not pid_alive(pid):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


def is_regular(path: str | os.PathLike[str]) -> bool:
    """A regular file itself (not through a symbolic link): the only kind the store writes or deletes."""
    import stat

    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


class BlobStore:
    """Files named by their sha256 under ``root/ab/abcdef...``; identical content is stored once."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        return self.root / sha256[:2] / sha256

    def put(self, source: str | os.PathLike[str]) -> tuple[str, int]:
        """Copy ``source`` in (atomically); returns ``(sha256, size)``."""
        tmp, sha, size = self.stage(source)
        try:
            self.place(tmp, sha)
        finally:
            tmp.unlink(missing_ok=True)
        return sha, size

    def stage(self, source: str | os.PathLike[str]) -> tuple[Path, str, int]:
        """Copy ``source`` to a temporary file in the store, hashing it on the way; returns
        ``(temporary path, sha256, size)``. The caller places it with :meth:`place` (or deletes it)."""
        self.root.mkdir(parents=True, exist_ok=True)
        tmp = _tmp_name(self.root)
        digest = hashlib.sha256()
        size = 0
        try:
            with open(source, "rb") as src, open(tmp, "wb") as dst:
                for chunk in iter(lambda: src.read(1 << 20), b""):
                    digest.update(chunk)
                    dst.write(chunk)
                    size += len(chunk)
                dst.flush()
                os.fsync(dst.fileno())
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return tmp, digest.hexdigest(), size

    def place(self, tmp: Path, sha256: str) -> Path:
        """Rename a staged file to its content address. An existing file of that name is replaced
        too: it may be a damaged copy, and the staged one was just hashed (readers that have the old
        file open keep reading it)."""
        final = self.path(sha256)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, final)
        _fsync_dir(final.parent)
        return final

    def files(self) -> Iterator[Path]:
        """Every blob file (not temporaries, not other folders' files)."""
        if not self.root.is_dir():
            return
        for path in self.root.glob("??/*"):
            if len(path.name) == 64 and not path.name.startswith(".") and path.is_file():
                yield path

    def verify(self, sha256: str) -> bool:
        path = self.path(sha256)
        return path.is_file() and sha256_file(path) == sha256

    def export(self, sha256: str, destination: str | os.PathLike[str]) -> None:
        with open(self.path(sha256), "rb") as src, atomic_writer(destination) as dst:
            shutil.copyfileobj(src, dst)
