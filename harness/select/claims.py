"""Claims on a row's fingerprint, so two selections on one store never train the same row twice.

Before a candidate's seed is trained, :func:`claim` takes an exclusive lock on a file named after the
row's fingerprint (``HOME/locks/<fingerprint>.lock``) and holds it until the trained version carries
the fingerprint tag. A second ``select`` (another process, terminal or machine sharing the store) that
reaches the same row waits on the lock, then finds the row in the store and reuses it.

The lock is ``fcntl.flock``: the kernel releases it when its holder exits, however it dies, so a
crashed selection never leaves a stale claim behind (the lock file stays; it is a few bytes and is
reused). Local filesystems and NFSv4 honour it; where ``fcntl`` does not exist (Windows), selections
are not serialised. The holder's pid and host are written into the file for the waiting message.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

try:
    import fcntl
except ImportError:  # Windows: no flock
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from harness.progress import Progress


def lock_path(home: Path, fingerprint: str) -> Path:
    return home / "locks" / f"{fingerprint}.lock"


@contextlib.contextmanager
def claim(home: Path, fingerprint: str, progress: Progress, label: str) -> Iterator[float]:
    """Hold the claim on ``fingerprint`` in the store at ``home``; yields the seconds spent waiting
    for another holder (0.0 when it was free)."""
    if fcntl is None:  # no flock on this platform: run unserialised, as before claims existed
        yield 0.0
        return
    path = lock_path(home, fingerprint)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        waited = _acquire(fd, progress, label)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
        try:
            yield waited
        finally:
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _acquire(fd: int, progress: Progress, label: str) -> float:
    """Take the lock, saying who holds it when it is taken; the seconds waited."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return 0.0
    except BlockingIOError:
        pass
    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    progress.info(f"{label}: waiting for another select training the same run ({holder}) to reuse its model")
    started = time.perf_counter()
    fcntl.flock(fd, fcntl.LOCK_EX)
    return time.perf_counter() - started
