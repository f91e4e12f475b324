"""Which artifact files the store may delete, and when: the bookkeeping that keeps garbage
collection from ever removing a file someone still needs.

Two tables back it. ``pending_blobs`` holds the files a writer is placing right now (committed
*before* the file is renamed into place, cleared in the transaction that references it), so a
``remove`` running meanwhile leaves them alone. ``known_blobs`` holds every file the store itself
placed; :func:`collect` deletes only those, when unreferenced, so files the database has no record
of (an emptied or replaced ``store.db``) are never deleted, only reported by ``registry check``.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sqlite3
import time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from registry.files import is_regular, pid_alive

if TYPE_CHECKING:
    from registry.store import ModelStore

PENDING_MAX_AGE_S = 24 * 3600
"""A pending file of a writer on another host is protected this long (its pid cannot be checked)."""

Stored = dict[str, tuple[str, int]]  # role -> (sha256, size)


def pending_alive(row: sqlite3.Row) -> bool:
    """Whether a pending record may still belong to a writer at work: its process is alive (same
    host), or it is recent (another host, whose processes cannot be checked)."""
    if row["host"] == socket.gethostname():
        return pid_alive(int(row["pid"]))
    return time.time() - float(row["created_at"]) < PENDING_MAX_AGE_S


def adopt(conn: sqlite3.Connection, stored: Mapping[str, tuple[str, int]]) -> None:
    """In the caller's transaction: ``stored`` files are now the store's (known), no longer pending."""
    conn.executemany("INSERT OR IGNORE INTO known_blobs (sha256, size) VALUES (?, ?)", list(stored.values()))
    conn.executemany("DELETE FROM pending_blobs WHERE sha256 = ? AND host = ? AND pid = ?",
                     [(sha, socket.gethostname(), os.getpid()) for sha, _ in stored.values()])


def adopt_dead_writers(conn: sqlite3.Connection) -> set[str]:
    """Pending records of writers that died between placing and committing make their files the
    store's garbage (known, unreferenced); returns the files live writers still have pending."""
    protected = set()
    for row in conn.execute("SELECT * FROM pending_blobs").fetchall():
        if pending_alive(row):
            protected.add(row["sha256"])
            continue
        conn.execute("INSERT OR IGNORE INTO known_blobs (sha256, size) VALUES (?, 0)", (row["sha256"],))
        conn.execute("DELETE FROM pending_blobs WHERE sha256 = ? AND host = ? AND pid = ?",
                     (row["sha256"], row["host"], row["pid"]))
    return protected


@contextlib.contextmanager
def placing(store: ModelStore, files: Mapping[str, str | os.PathLike[str]]) -> Iterator[Stored]:
    """Stage ``files`` into the blob folder, record them as pending (committed), place them, and
    yield ``{role: (sha256, size)}``; the caller's transaction references them and calls
    :func:`adopt`. On failure the placed files become garbage for :func:`collect`."""
    staged = {role: store.blobs.stage(path) for role, path in files.items()}
    host, pid = socket.gethostname(), os.getpid()
    try:
        with store.transaction() as conn:
            conn.executemany("INSERT OR REPLACE INTO pending_blobs (sha256, host, pid, created_at) VALUES (?, ?, ?, ?)",
                             [(sha, host, pid, time.time()) for _, sha, _ in staged.values()])
        slow = float(os.environ.get("HARNESS_TEST_PLACE_DELAY", "0") or 0)
        for tmp, sha, _ in staged.values():
            store.blobs.place(tmp, sha)
            if slow:  # the fault-injection tests widen the window between placing and committing
                time.sleep(slow)
        yield {role: (sha, size) for role, (_, sha, size) in staged.items()}
    except BaseException:
        for tmp, _, _ in staged.values():
            tmp.unlink(missing_ok=True)
        with contextlib.suppress(Exception), store.transaction() as conn:
            adopt(conn, {role: (sha, size) for role, (_, sha, size) in staged.items()})
        raise


def collect(store: ModelStore) -> int:
    """Delete the files the store placed that no version references and no live writer has
    pending; returns how many. Files the database never recorded are left alone."""
    removed = 0
    with store.transaction() as conn:
        used = {r[0] for r in conn.execute("SELECT sha256 FROM artifacts")}
        protected = adopt_dead_writers(conn)
        for (sha,) in conn.execute("SELECT sha256 FROM known_blobs").fetchall():
            if sha in used or sha in protected:
                continue
            path = store.blobs.path(sha)
            if os.path.lexists(path) and not is_regular(path):
                continue  # a folder or device in a blob's place is never deleted (registry check reports it)
            path.unlink(missing_ok=True)
            conn.execute("DELETE FROM known_blobs WHERE sha256 = ?", (sha,))
            removed += 1
    return removed
