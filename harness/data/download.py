"""Fetch a registered dataset's files: checksummed, atomic, with a progress bar on stderr.

A file is streamed into a temporary file beside its destination, then checked: its length against
the server's ``Content-Length`` (an interrupted transfer is never taken for the file), then its
checksum. Only then is it fsynced and renamed into place, so the destination is whole or absent and
a failed download leaves nothing behind (nor the folders it made for it). The bar is
:func:`harness.progress.current`'s (silent with ``--quiet``; plain lines off a terminal).

A checksum is the published file's md5 or the sha256 of its decompressed content: a mirror that
recompressed the same data (Debian's ``dataset-fashion-mnist`` did) still matches.

``HARNESS_DATA_MIRROR`` names a server that holds the files as ``<mirror>/<dataset>/<file name>``
(an internal mirror for machines without the internet); it is used instead of the upstream URLs.
Whether to download at all is the caller's decision (see :meth:`harness.context.DataOptions.may_download`).
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from registry import DataError

MIRROR_ENV = "HARNESS_DATA_MIRROR"
CHUNK = 1 << 16
TIMEOUT_S = 30.0


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its name, where to fetch it, and how to know it is the right one."""

    name: str
    urls: tuple[str, ...]
    md5: str | None = None  # of the file as published upstream
    content_sha256: str | None = None  # of its decompressed content (.gz), whoever compressed it
    dataset: str = ""  # whose file it is, for messages

    def __post_init__(self) -> None:
        if self.md5 is None and self.content_sha256 is None:
            raise ValueError(f"{self.name}: a downloaded file needs a checksum")


class _Failed(Exception):
    """One URL did not give the file (the next is tried; all failing is a DataError)."""


def sources(dataset: str, name: str, upstream: Sequence[str]) -> tuple[str, ...]:
    """The URLs of ``name``: ``$HARNESS_DATA_MIRROR/<dataset>/<name>`` when set, else each
    upstream base URL followed by the name."""
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return (f"{mirror.rstrip('/')}/{dataset}/{name}",)
    return tuple(f"{base.rstrip('/')}/{name}" for base in upstream)


def fetch(file: RemoteFile, dest: Path) -> Path:
    """Download ``file`` to ``dest`` (atomically, checked); a :class:`DataError` naming every URL
    tried and where to place the file by hand when none gave it."""
    errors = []
    for url in file.urls:
        try:
            return _fetch_one(url, dest, file)
        except _Failed as exc:
            errors.append(f"{url}: {exc}")
    whose = f" of {file.dataset}" if file.dataset else ""
    raise DataError(f"could not download {file.name}{whose} ({'; '.join(errors)}); nothing was kept. Run again, "
                    f"or download it elsewhere and place it at {dest}")


def missing_folders(folder: Path) -> list[Path]:
    """The folders ``folder.mkdir(parents=True)`` would create, outermost first (to undo it)."""
    missing: list[Path] = []
    while not folder.exists() and folder != folder.parent:
        missing.insert(0, folder)
        folder = folder.parent
    return missing


def remove_if_empty(folders: Sequence[Path]) -> None:
    """Remove ``folders`` (outermost first, as :func:`missing_folders` lists them) that are still
    empty, innermost first: a failed download leaves no empty folder that looks like a dataset's."""
    for folder in reversed(folders):
        try:
            folder.rmdir()
        except OSError:  # not empty (something was kept), or gone already
            return


def _fetch_one(url: str, dest: Path, file: RemoteFile) -> Path:
    import http.client
    import urllib.error
    import urllib.request

    from harness.progress import current

    made = missing_folders(dest.parent)
    dest.parent.mkdir(parents=True, exist_ok=True)
    current().info(f"downloading {url} -> {dest}")
    tmp = Path(tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")[1])
    done = False
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_S) as response, open(tmp, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0)
            digest = _stream(response, out, total, dest.name)
            out.flush()
            os.fsync(out.fileno())
        problem = _checksum_problem(tmp, digest, file)
        if problem:
            raise _Failed(problem)
        os.replace(tmp, dest)
        done = True
        return dest
    except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError) as exc:
        if isinstance(exc, http.client.IncompleteRead):
            raise _Failed(f"the transfer was interrupted after {len(exc.partial):,} bytes of a chunk") from None
        raise _Failed(str(getattr(exc, "reason", None) or exc) or type(exc).__name__) from None
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk is the machine's failure: said as such by the CLI
        raise _Failed(f"{type(exc).__name__}: {exc}") from None
    finally:
        tmp.unlink(missing_ok=True)
        if not done:
            remove_if_empty(made)


def _stream(response: Any, out: BinaryIO, total: int, label: str) -> str:
    """Copy the body into ``out`` with a bar; the md5 of what came. A body shorter than the
    announced length is an interrupted transfer."""
    from harness.progress import current

    md5 = hashlib.md5(usedforsecurity=False)
    got = 0
    bar = current().bar(total // 1024, f"downloading {label}", unit="kB", leave=True)  # stays: a record
    try:
        while chunk := response.read(CHUNK):
            out.write(chunk)
            md5.update(chunk)
            got += len(chunk)
            bar.update(got // 1024 - bar.n)
    finally:
        bar.close()
    if total and got != total:
        raise _Failed(f"the transfer was interrupted after {got:,} of {total:,} bytes")
    return md5.hexdigest()


def _checksum_problem(path: Path, md5: str, file: RemoteFile) -> str | None:
    """None when ``path`` is ``file`` (its md5, or its content's sha256), else what differs."""
    if file.md5 is not None and md5 == file.md5:
        return None
    if file.content_sha256 is not None and content_sha256(path) == file.content_sha256:
        return None
    expected = f"md5 {file.md5}" if file.md5 else f"content sha256 {file.content_sha256}"
    return f"checksum mismatch (got md5 {md5}, expected {expected}): not the published file, discarded"


def content_sha256(path: Path) -> str | None:
    """The sha256 of ``path``'s content, decompressed when it is gzip; None when it cannot be read."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as raw:
            gz = raw.read(2) == b"\x1f\x8b"
        with (gzip.open(path, "rb") if gz else open(path, "rb")) as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, EOFError):
        return None
    return digest.hexdigest()


def gunzip(source: Path, dest: Path) -> Path:
    """Decompress ``source`` into ``dest`` atomically (a temporary file renamed into place)."""
    tmp = Path(tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")[1])
    try:
        with gzip.open(source, "rb") as src, open(tmp, "wb") as out:
            while chunk := src.read(1 << 20):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)
    return dest
